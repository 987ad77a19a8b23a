//! List requests: paging limits, sort specifications, filters and keyset positions.
//!
//! Parsing lives here so every backend receives the same validated request; the cursor's
//! wire encoding lives in `http::cursor`.

use chrono::{DateTime, NaiveDate, Utc};

use super::validation::{FieldError, ValidationErrors, is_storable_date, search_key};

/// Page size when the client gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// Largest page size a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Largest page number accepted (keeps the offset arithmetic far from overflow).
pub const MAX_PAGE: u32 = i32::MAX as u32;
/// Longest search text accepted in `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Longest text sort value a cursor may carry, in characters (stored names, titles and
/// username keys are at most 64).
pub const MAX_CURSOR_TEXT_CHARS: usize = 256;

/// A value of one sort key of one item, as carried in a cursor.
///
/// Values are typed: a backend binds each as its own column type (a PostgreSQL seek binds a
/// timestamp as `timestamptz`), and any text encoding belongs to the cursor codec or to the
/// backend that stores text.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// Integer column (ids).
    Int(i64),
    /// Floating-point column (distance); compared bit for bit after a round trip.
    Float(f64),
    /// Text column (names, titles, case-folded keys), ordered by Unicode code point.
    Text(String),
    /// Timestamp column (`created_at`), microsecond precision.
    Timestamp(DateTime<Utc>),
    /// Date column (`release_date`).
    Date(NaiveDate),
    /// SQL NULL; sorts after every value in both directions.
    Null,
}

/// The kind of value a sort field holds, used to check decoded cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKind {
    /// Never null integer.
    Int,
    /// Never null text.
    Text,
    /// Never null timestamp.
    Timestamp,
    /// Date or null.
    NullableDate,
    /// Float or null.
    NullableFloat,
}

impl SortKind {
    /// Whether `value` can be a value of a field of this kind, and one that every backend
    /// accepts as a parameter. A cursor's checksum is not a secret, so a client can write
    /// any values into one: text must have no NUL byte (PostgreSQL refuses one in `text`)
    /// and at most [`MAX_CURSOR_TEXT_CHARS`] characters, and a date must have a four-digit
    /// year, as every date the API accepts has (PostgreSQL's `date` ends in 5874897).
    pub fn admits(self, value: &SortValue) -> bool {
        match (self, value) {
            (Self::Text, SortValue::Text(text)) => {
                !text.contains('\0') && text.chars().count() <= MAX_CURSOR_TEXT_CHARS
            }
            (Self::NullableDate, SortValue::Date(date)) => is_storable_date(*date),
            _ => matches!(
                (self, value),
                (Self::Int, SortValue::Int(_))
                    | (Self::Timestamp, SortValue::Timestamp(_))
                    | (Self::NullableFloat, SortValue::Float(_))
                    | (Self::NullableDate | Self::NullableFloat, SortValue::Null)
            ),
        }
    }

    /// Whether the column may hold NULL.
    pub fn is_nullable(self) -> bool {
        matches!(self, Self::NullableDate | Self::NullableFloat)
    }
}

/// A field a list can be sorted by.
pub trait SortField: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Every field, in the order the API documents them.
    const ALL: &'static [Self];
    /// The id field, appended to every order to make it total.
    const ID: Self;
    /// The name used in the `sort` parameter.
    fn name(self) -> &'static str;
    /// The kind of value the field holds.
    fn kind(self) -> SortKind;
}

/// Something that can report its sort-key values (for building cursors).
pub trait Sortable<F: SortField> {
    /// The value of `field` for this item.
    fn sort_value(&self, field: F) -> SortValue;
}

/// One key of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey<F> {
    /// The field.
    pub field: F,
    /// True for descending (`-field`).
    pub descending: bool,
}

/// A total order: the requested keys, then `id` ascending unless `id` was already given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort<F>(Vec<SortKey<F>>);

impl<F: SortField> Sort<F> {
    /// Parses a `sort` parameter: comma-separated field names, `-` prefix for descending.
    ///
    /// # Errors
    /// A [`FieldError`] on `sort` for an empty item, an unknown or a repeated field.
    pub fn parse(raw: Option<&str>) -> Result<Self, FieldError> {
        let mut keys: Vec<SortKey<F>> = Vec::new();
        // Items are taken as sent, without trimming: the OpenAPI pattern admits no spaces.
        for item in raw.unwrap_or("id").split(',') {
            let (descending, name) = match item.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let Some(field) = F::ALL.iter().copied().find(|f| f.name() == name) else {
                let allowed: Vec<&str> = F::ALL.iter().map(|f| f.name()).collect();
                return Err(FieldError::new(
                    "sort",
                    format!("must list only these fields: {}", allowed.join(", ")),
                ));
            };
            if keys.iter().any(|k| k.field == field) {
                return Err(FieldError::new("sort", "must not repeat a field"));
            }
            keys.push(SortKey { field, descending });
        }
        if !keys.iter().any(|k| k.field == F::ID) {
            keys.push(SortKey {
                field: F::ID,
                descending: false,
            });
        }
        Ok(Self(keys))
    }

    /// The keys, ending with the id key.
    pub fn keys(&self) -> &[SortKey<F>] {
        &self.0
    }

    /// Canonical text form (`-title,id`), used to bind cursors to their order.
    pub fn canonical(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.field.name()))
            .collect();
        parts.join(",")
    }

    /// The cursor values of `item` for this order.
    pub fn values_of(&self, item: &impl Sortable<F>) -> Vec<SortValue> {
        self.0.iter().map(|k| item.sort_value(k.field)).collect()
    }

    /// Whether `values` has one value of the right kind per key.
    pub fn admits(&self, values: &[SortValue]) -> bool {
        values.len() == self.0.len()
            && self
                .0
                .iter()
                .zip(values)
                .all(|(k, v)| k.field.kind().admits(v))
    }
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// Offset paging: page number from 1.
    Page(u32),
    /// Keyset paging: strictly after the item with these sort values.
    After(Vec<SortValue>),
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery<F, Filter> {
    /// The total order.
    pub sort: Sort<F>,
    /// Items per page.
    pub page_size: u32,
    /// Where the page starts.
    pub position: Position,
    /// Resource-specific filters.
    pub filter: Filter,
}

impl<F, Filter> ListQuery<F, Filter> {
    /// Rows to skip in offset mode (0 in keyset mode).
    pub fn offset(&self) -> u64 {
        match self.position {
            Position::Page(page) => u64::from(page - 1) * u64::from(self.page_size),
            Position::After(_) => 0,
        }
    }
}

/// One page of results, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// At most `page_size` items.
    pub items: Vec<T>,
    /// Items matching the filters, over all pages.
    pub total_items: u64,
    /// Whether more items follow this page.
    pub has_next: bool,
}

/// Raw paging parameters as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPaging<'a> {
    /// `page`
    pub page: Option<&'a str>,
    /// `page_size`
    pub page_size: Option<&'a str>,
    /// `sort`
    pub sort: Option<&'a str>,
    /// `cursor`
    pub cursor: Option<&'a str>,
}

/// Validated paging parameters; the cursor is still in wire form because decoding it
/// needs the filters it was issued for.
#[derive(Debug, Clone, PartialEq)]
pub struct Paging<'a, F> {
    /// The order.
    pub sort: Sort<F>,
    /// Items per page.
    pub page_size: u32,
    /// Page number, when given.
    pub page: Option<u32>,
    /// Cursor token, when given.
    pub cursor: Option<&'a str>,
}

impl<'a, F: SortField> Paging<'a, F> {
    /// Validates paging parameters, recording every problem in `errors`.
    pub fn parse(raw: RawPaging<'a>, errors: &mut ValidationErrors) -> Option<Self> {
        let page = raw.page.map(|p| parse_bounded("page", p, 1, MAX_PAGE));
        let page = match page {
            Some(result) => errors.check(result).map(Some),
            None => Some(None),
        };
        let page_size = match raw.page_size {
            Some(p) => errors.check(parse_bounded("page_size", p, 1, MAX_PAGE_SIZE)),
            None => Some(DEFAULT_PAGE_SIZE),
        };
        let sort = errors.check(Sort::parse(raw.sort));
        if raw.cursor.is_some() && raw.page.is_some() {
            errors.add("cursor", "must not be combined with page");
        }
        if raw.cursor.is_some_and(str::is_empty) {
            errors.add("cursor", "must not be empty");
        }
        Some(Self {
            sort: sort?,
            page_size: page_size?,
            page: page?,
            cursor: raw.cursor,
        })
    }
}

fn parse_bounded(field: &str, raw: &str, min: u32, max: u32) -> Result<u32, FieldError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| FieldError::new(field, format!("must be an integer from {min} to {max}")))
}

/// Parses the `q` search text: at most 256 characters, matched case-insensitively as plain
/// text. Empty text means no filter.
///
/// # Errors
/// A [`FieldError`] on `q` when it is too long or contains control characters.
pub fn parse_search(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(FieldError::new(
            "q",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(FieldError::new("q", "must not contain control characters"));
    }
    Ok(Some(search_key(raw)).filter(|q| !q.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::artist::ArtistSortField;
    use crate::domain::song::{RawSongFilter, SongFilter, SongSortField};

    #[test]
    fn sort_parsing() {
        let sort = Sort::<SongSortField>::parse(Some("-release_date,title")).unwrap();
        assert_eq!(sort.canonical(), "-release_date,title,id");
        assert_eq!(
            Sort::<SongSortField>::parse(None).unwrap().canonical(),
            "id"
        );
        assert_eq!(
            Sort::<ArtistSortField>::parse(Some("-id,name"))
                .unwrap()
                .canonical(),
            "-id,name"
        );
        for bad in [
            "",
            "nope",
            "name;drop table artist",
            "id,,name",
            "name,name",
            "--name",
            "title",
            "NAME",
        ] {
            assert!(
                Sort::<ArtistSortField>::parse(Some(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paging_bounds() {
        let parse = |page: Option<&'static str>, size: Option<&'static str>| {
            let mut errors = ValidationErrors::new();
            let raw = RawPaging {
                page,
                page_size: size,
                ..RawPaging::default()
            };
            let paging = Paging::<ArtistSortField>::parse(raw, &mut errors);
            (paging, errors)
        };

        let (ok, errors) = parse(None, None);
        assert!(errors.is_empty());
        assert_eq!(ok.unwrap().page_size, DEFAULT_PAGE_SIZE);
        for (page, size) in [
            (Some("0"), None),
            (Some("-1"), None),
            (Some("abc"), None),
            (Some("99999999999999999999"), None),
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("1.5")),
        ] {
            let (_, errors) = parse(page, size);
            assert_eq!(errors.errors().len(), 1, "{page:?} {size:?}");
        }
        let (ok, errors) = parse(Some("2147483647"), Some("100"));
        assert!(errors.is_empty());
        assert_eq!(ok.unwrap().page, Some(2_147_483_647));
    }

    #[test]
    fn cursor_and_page_together_are_rejected() {
        let mut errors = ValidationErrors::new();
        let raw = RawPaging {
            page: Some("1"),
            cursor: Some("abc"),
            ..RawPaging::default()
        };

        Paging::<ArtistSortField>::parse(raw, &mut errors);

        assert_eq!(errors.errors()[0].field, "cursor");
    }

    #[test]
    fn song_filter_rules() {
        let mut errors = ValidationErrors::new();
        let filter = SongFilter::parse(
            RawSongFilter {
                q: Some("  Star%_'"),
                artist_id: Some("3"),
                released_from: Some("1970-01-01"),
                released_to: Some("1969-01-01"),
                include: Some("artist"),
            },
            &mut errors,
        );

        assert_eq!(filter.q.as_deref(), Some("  star%_'"));
        assert!(filter.include_artist);
        assert_eq!(errors.errors()[0].field, "released_to");

        let mut errors = ValidationErrors::new();
        SongFilter::parse(
            RawSongFilter {
                artist_id: Some("0"),
                include: Some("songs"),
                q: Some(&"x".repeat(257)),
                ..RawSongFilter::default()
            },
            &mut errors,
        );
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["q", "artist_id", "include"]);
    }

    #[test]
    fn sort_kind_checks_cursor_values() {
        let sort = Sort::<SongSortField>::parse(Some("distance")).unwrap();

        assert!(sort.admits(&[SortValue::Float(1.0), SortValue::Int(1)]));
        assert!(sort.admits(&[SortValue::Null, SortValue::Int(1)]));
        assert!(!sort.admits(&[SortValue::Text("x".into()), SortValue::Int(1)]));
        assert!(!sort.admits(&[SortValue::Int(1)]));
    }

    #[test]
    fn cursor_values_a_backend_would_refuse_are_not_admitted() {
        let by_title = Sort::<SongSortField>::parse(Some("title")).unwrap();
        let by_date = Sort::<SongSortField>::parse(Some("release_date")).unwrap();
        let date = |y, m, d| SortValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let text = |t: &str| SortValue::Text(t.to_owned());

        assert!(by_title.admits(&[text("Starman"), SortValue::Int(1)]));
        assert!(by_title.admits(&[text(&"é".repeat(256)), SortValue::Int(1)]));
        assert!(!by_title.admits(&[text("a\0b"), SortValue::Int(1)]));
        assert!(!by_title.admits(&[text(&"x".repeat(257)), SortValue::Int(1)]));
        assert!(by_date.admits(&[date(1, 1, 1), SortValue::Int(1)]));
        assert!(by_date.admits(&[date(9999, 12, 31), SortValue::Int(1)]));
        assert!(
            !by_date.admits(&[date(0, 12, 31), SortValue::Int(1)]),
            "SQL Server's date starts at 0001"
        );
        assert!(!by_date.admits(&[date(10_000, 1, 1), SortValue::Int(1)]));
        assert!(!by_date.admits(&[date(-1, 12, 31), SortValue::Int(1)]));
    }
}
