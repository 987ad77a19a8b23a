//! Songs: field rules, the values a write carries, merge-patch application and the stored
//! resource.

use chrono::{DateTime, NaiveDate, Utc};

use super::artist::ArtistSummary;
use super::ids::{ArtistId, SongId};
use super::list::{SortField, SortKind, SortValue, Sortable, parse_search};
use super::validation::{FieldError, ValidationErrors, parse_date, short_text};

/// Maximum length of a song URL, in characters (API.md).
pub const MAX_URL_CHARS: usize = 1024;

/// A song title: trimmed, 1–64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SongTitle(String);

impl SongTitle {
    /// Validates and trims a raw title.
    ///
    /// # Errors
    /// A [`FieldError`] on `title` describing the rule broken.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        short_text("title", raw).map(Self)
    }

    /// The validated title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute `http` or `https` URL of at most 1024 characters, kept as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SongUrl(String);

/// [`SongUrl::parse`]'s syntax as a regular expression, for the OpenAPI document: `http` or
/// `https`, an IPv4 address or a host name whose last label starts with a letter, an
/// optional port up to 65535, then optionally a path, query or fragment of visible ASCII.
pub const URL_PATTERN: &str = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][\x21-\x7E]*)?$";

/// Whether `raw` matches [`URL_PATTERN`] (written out: the crate has no regex engine).
fn is_plain_web_url(raw: &str) -> bool {
    let Some(rest) = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"))
    else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let is_label = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let labels: Vec<&str> = host.split('.').collect();
    // Four decimal octets without leading zeros (the URL parser reads `010` as octal), or
    // a host name whose last label starts with a letter (a numeric one would be read as an
    // address).
    let is_octet = |label: &&str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_digit())
            && (label.len() == 1 || !label.starts_with('0'))
            && label.parse::<u8>().is_ok()
    };
    let is_address = labels.len() == 4 && labels.iter().all(is_octet);
    let is_name = labels.iter().all(|label| is_label(label))
        && labels
            .last()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_alphabetic()));
    let is_host = is_address || is_name;
    // 1–4 digits, or 5 without a leading zero up to 65535 (the pattern's alternatives).
    let is_port = port.is_none_or(|port| {
        port.chars().all(|c| c.is_ascii_digit())
            && match port.len() {
                1..=4 => true,
                5 => !port.starts_with('0') && port.parse::<u32>().is_ok_and(|n| n <= 65_535),
                _ => false,
            }
    });
    is_host && is_port && tail.chars().all(|c| matches!(c, '\x21'..='\x7e'))
}

impl SongUrl {
    /// Validates a raw URL: [`URL_PATTERN`], at most 1024 characters.
    ///
    /// # Errors
    /// A [`FieldError`] on `url` describing the rule broken.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(FieldError::new(
                "url",
                format!("must be at most {MAX_URL_CHARS} characters"),
            ));
        }
        let is_web = url::Url::parse(raw).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
        });
        // The parser tolerates embedded tabs and newlines by removing them, and much else
        // (user info, address literals, padding); the API takes only what URL_PATTERN says.
        if !is_web || !is_plain_web_url(raw) {
            return Err(FieldError::new(
                "url",
                "must be an absolute http or https URL",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The validated URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that a distance is a finite number.
///
/// # Errors
/// A [`FieldError`] on `distance` for NaN or an infinity.
pub fn parse_distance(raw: f64) -> Result<f64, FieldError> {
    if raw.is_finite() {
        Ok(raw)
    } else {
        Err(FieldError::new("distance", "must be a finite number"))
    }
}

/// Raw song fields as received, before validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct SongFields<'a> {
    /// Title as sent.
    pub title: &'a str,
    /// Artist id as sent.
    pub artist_id: Option<i64>,
    /// Release date as sent.
    pub release_date: Option<&'a str>,
    /// URL as sent.
    pub url: Option<&'a str>,
    /// Distance as sent.
    pub distance: Option<f64>,
}

/// Everything needed to create or fully replace a song.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSong {
    /// Title.
    pub title: SongTitle,
    /// Artist, if known; it must exist.
    pub artist_id: Option<ArtistId>,
    /// Release date, if known.
    pub release_date: Option<NaiveDate>,
    /// Link to the song.
    pub url: Option<SongUrl>,
    /// Distance, a finite number.
    pub distance: Option<f64>,
}

impl NewSong {
    /// Validates a create or replace request, collecting every field problem.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(fields: SongFields<'_>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = errors.check(SongTitle::parse(fields.title));
        let artist_id = optional(&mut errors, fields.artist_id, |raw| {
            ArtistId::parse("artist_id", raw)
        });
        let release_date = optional(&mut errors, fields.release_date, |raw| {
            parse_date("release_date", raw)
        });
        let url = optional(&mut errors, fields.url, SongUrl::parse);
        let distance = optional(&mut errors, fields.distance, parse_distance);
        match title {
            Some(title) if errors.is_empty() => Ok(Self {
                title,
                artist_id: artist_id.flatten(),
                release_date: release_date.flatten(),
                url: url.flatten(),
                distance: distance.flatten(),
            }),
            _ => Err(errors),
        }
    }
}

/// Parses an optional field; `Some(None)` is an absent value, `None` a rejected one.
fn optional<R, T>(
    errors: &mut ValidationErrors,
    raw: Option<R>,
    parse: impl FnOnce(R) -> Result<T, FieldError>,
) -> Option<Option<T>> {
    match raw {
        None => Some(None),
        Some(raw) => errors.check(parse(raw)).map(Some),
    }
}

/// One field of a JSON merge patch (RFC 7396).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Patch<T> {
    /// The member was absent: keep the current value.
    #[default]
    Keep,
    /// The member was `null`: clear the value.
    Clear,
    /// The member had a value.
    Set(T),
}

impl<T> Patch<T> {
    /// Maps a serde double option (absent / null / value) into a patch field.
    pub fn from_double_option(raw: Option<Option<T>>) -> Self {
        match raw {
            None => Self::Keep,
            Some(None) => Self::Clear,
            Some(Some(value)) => Self::Set(value),
        }
    }

    fn parse<U>(
        self,
        errors: &mut ValidationErrors,
        parse: impl FnOnce(T) -> Result<U, FieldError>,
    ) -> Patch<U> {
        match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(raw) => errors.check(parse(raw)).map_or(Patch::Keep, Patch::Set),
        }
    }

    fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }
}

/// Raw merge-patch members as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SongPatchFields<'a> {
    /// `title` member.
    pub title: Patch<&'a str>,
    /// `artist_id` member.
    pub artist_id: Patch<i64>,
    /// `release_date` member.
    pub release_date: Patch<&'a str>,
    /// `url` member.
    pub url: Patch<&'a str>,
    /// `distance` member.
    pub distance: Patch<f64>,
}

/// A validated JSON merge patch of a song.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SongChanges {
    title: Option<SongTitle>,
    artist_id: Patch<ArtistId>,
    release_date: Patch<NaiveDate>,
    url: Patch<SongUrl>,
    distance: Patch<f64>,
}

impl SongChanges {
    /// Validates a merge patch, collecting every field problem. The title is required, so
    /// `null` is rejected for it.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(fields: SongPatchFields<'_>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = match fields.title {
            Patch::Keep => None,
            Patch::Clear => {
                errors.add("title", "must not be null");
                None
            }
            Patch::Set(raw) => errors.check(SongTitle::parse(raw)),
        };
        let changes = Self {
            title,
            artist_id: fields
                .artist_id
                .parse(&mut errors, |raw| ArtistId::parse("artist_id", raw)),
            release_date: fields
                .release_date
                .parse(&mut errors, |raw| parse_date("release_date", raw)),
            url: fields.url.parse(&mut errors, SongUrl::parse),
            distance: fields.distance.parse(&mut errors, parse_distance),
        };
        errors.into_result(|| changes)
    }

    /// The full replacement that results from applying this patch to `current`.
    pub fn apply(&self, current: &Song) -> NewSong {
        NewSong {
            title: self
                .title
                .clone()
                .unwrap_or_else(|| SongTitle(current.title.clone())),
            artist_id: self.artist_id.apply(current.artist_id),
            release_date: self.release_date.apply(current.release_date),
            url: self.url.clone().apply(current.url.clone().map(SongUrl)),
            distance: self.distance.apply(current.distance),
        }
    }
}

/// A stored song.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// Database-assigned id.
    pub id: SongId,
    /// Title.
    pub title: String,
    /// Artist, if known.
    pub artist_id: Option<ArtistId>,
    /// Release date, if known.
    pub release_date: Option<NaiveDate>,
    /// Link to the song, if known.
    pub url: Option<String>,
    /// Distance, if known.
    pub distance: Option<f64>,
    /// Row version, incremented by every successful modification.
    pub version: i64,
    /// When the song was created.
    pub created_at: DateTime<Utc>,
    /// When the song was last modified.
    pub updated_at: DateTime<Utc>,
    /// The artist, filled only when a list asked for `include=artist` and the artist exists.
    pub artist: Option<ArtistSummary>,
}

impl Sortable<SongSortField> for Song {
    fn sort_value(&self, field: SongSortField) -> SortValue {
        match field {
            SongSortField::Id => SortValue::Int(self.id.get()),
            SongSortField::Title => SortValue::Text(self.title.clone()),
            SongSortField::ReleaseDate => {
                self.release_date.map_or(SortValue::Null, SortValue::Date)
            }
            SongSortField::Distance => self.distance.map_or(SortValue::Null, SortValue::Float),
            SongSortField::CreatedAt => SortValue::Timestamp(self.created_at),
        }
    }
}

/// Song sort fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SongSortField {
    /// `id`
    Id,
    /// `title`
    Title,
    /// `release_date` (nullable)
    ReleaseDate,
    /// `distance` (nullable)
    Distance,
    /// `created_at`
    CreatedAt,
}

impl SortField for SongSortField {
    const ALL: &'static [Self] = &[
        Self::Id,
        Self::Title,
        Self::ReleaseDate,
        Self::Distance,
        Self::CreatedAt,
    ];
    const ID: Self = Self::Id;

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Title => "title",
            Self::ReleaseDate => "release_date",
            Self::Distance => "distance",
            Self::CreatedAt => "created_at",
        }
    }

    fn kind(self) -> SortKind {
        match self {
            Self::Id => SortKind::Int,
            Self::Title => SortKind::Text,
            Self::CreatedAt => SortKind::Timestamp,
            Self::ReleaseDate => SortKind::NullableDate,
            Self::Distance => SortKind::NullableFloat,
        }
    }
}

/// Raw song filters as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawSongFilter<'a> {
    /// `q`
    pub q: Option<&'a str>,
    /// `artist_id`
    pub artist_id: Option<&'a str>,
    /// `released_from`
    pub released_from: Option<&'a str>,
    /// `released_to`
    pub released_to: Option<&'a str>,
    /// `include`
    pub include: Option<&'a str>,
}

/// Filters and embedding options of the song list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SongFilter {
    /// Case-folded substring of the title.
    pub q: Option<String>,
    /// Only songs of this artist.
    pub artist_id: Option<ArtistId>,
    /// Only songs released on or after this date.
    pub released_from: Option<NaiveDate>,
    /// Only songs released on or before this date.
    pub released_to: Option<NaiveDate>,
    /// Embed `{id, name}` of each song's artist.
    pub include_artist: bool,
}

impl SongFilter {
    /// Validates the song filters, recording every problem in `errors`.
    pub fn parse(raw: RawSongFilter<'_>, errors: &mut ValidationErrors) -> Self {
        let mut filter = Self {
            q: errors.check(parse_search(raw.q)).flatten(),
            ..Self::default()
        };
        if let Some(id) = raw.artist_id {
            let parsed = id.trim().parse::<i64>().map_or_else(
                |_| Err(FieldError::new("artist_id", super::ids::ID_RANGE_MESSAGE)),
                |n| ArtistId::parse("artist_id", n),
            );
            filter.artist_id = errors.check(parsed);
        }
        filter.released_from = raw
            .released_from
            .and_then(|d| errors.check(parse_date("released_from", d)));
        filter.released_to = raw
            .released_to
            .and_then(|d| errors.check(parse_date("released_to", d)));
        if let (Some(from), Some(to)) = (filter.released_from, filter.released_to)
            && from > to
        {
            errors.add("released_to", "must not be before released_from");
        }
        match raw.include {
            None | Some("") => {}
            Some("artist") => filter.include_artist = true,
            Some(_) => errors.add("include", "must be `artist` when given"),
        }
        filter
    }

    /// Canonical text form of the filters (not `include`, which changes no position).
    pub fn canonical(&self) -> String {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        format!(
            "q={}&artist_id={}&from={}&to={}",
            self.q.as_deref().unwrap_or(""),
            self.artist_id.map(|a| a.to_string()).unwrap_or_default(),
            date(self.released_from),
            date(self.released_to),
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn fields(title: &str) -> SongFields<'_> {
        SongFields {
            title,
            ..SongFields::default()
        }
    }

    #[test]
    fn url_rules() {
        let long = format!("https://example.com/{}", "a".repeat(1004));
        let too_long = format!("https://example.com/{}", "a".repeat(1005));
        let cases = [
            ("https://www.youtube.com/watch?v=iYYRH4apXDo", true),
            ("http://example.com", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            ("ftp://example.com/song.mp3", false),
            ("javascript:alert(1)", false),
            ("/relative/path", false),
            ("example.com", false),
            ("https://", false),
            ("https://exa\tmple.com", false),
            ("", false),
            ("http://localhost:8080/a?b=c#d", true),
            ("https://a.b-c.example:65535", true),
            ("https://example.com:65536", false),
            ("https://example.com:08080", false),
            ("https://example.com:", false),
            ("https://example.com:+1234", false),
            (" https://example.com", false),
            ("https://user@example.com/", false),
            ("https://[::1]/", false),
            ("https://127.0.0.1/", true),
            ("http://192.0.2.255:8080/x", true),
            ("http://256.1.1.1/", false),
            ("http://01.2.3.4/", false),
            ("http://1.2.3/", false),
            ("http://1.2.3.4.5/", false),
            ("http://1.2.3.a/", true),
            ("https://a..b/", false),
            ("https://-a.example/", false),
            ("https://example.com/ä", false),
            ("https://example.com/a b", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(SongUrl::parse(raw).is_ok(), ok, "{raw}");
        }
    }

    #[test]
    fn date_rules() {
        for (raw, ok) in [
            ("1969-07-11", true),
            ("2024-02-29", true),
            ("2023-02-29", false),
            ("1969-7-11", false),
            ("1969-07-11T00:00:00Z", false),
            ("11/07/1969", false),
            ("+1969-07-11", false),
            ("", false),
            ("0001-01-01", true),
            ("9999-12-31", true),
            ("0000-01-01", false),
            ("0000-12-31", false),
        ] {
            assert_eq!(parse_date("release_date", raw).is_ok(), ok, "{raw}");
        }
    }

    #[test]
    fn new_song_collects_every_error() {
        let errors = NewSong::parse(SongFields {
            title: " ",
            artist_id: Some(0),
            release_date: Some("yesterday"),
            url: Some("ftp://x"),
            distance: Some(f64::NAN),
        })
        .unwrap_err();

        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["title", "artist_id", "release_date", "url", "distance"]
        );
    }

    #[test]
    fn new_song_accepts_minimal_and_rejects_infinity() {
        assert!(NewSong::parse(fields("Space Oddity")).is_ok());
        let infinite = SongFields {
            distance: Some(f64::INFINITY),
            ..fields("x")
        };
        assert!(NewSong::parse(infinite).is_err());
    }

    #[test]
    fn merge_patch_keeps_clears_and_sets() {
        let current = Song {
            id: SongId::try_from(1).unwrap(),
            title: "Starman".into(),
            artist_id: ArtistId::try_from(1).ok(),
            release_date: NaiveDate::from_ymd_opt(1972, 4, 28),
            url: Some("https://example.com/a".into()),
            distance: Some(384_400.0),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            artist: None,
        };
        let changes = SongChanges::parse(SongPatchFields {
            release_date: Patch::Clear,
            distance: Patch::Set(1.5),
            ..SongPatchFields::default()
        })
        .unwrap();

        let merged = changes.apply(&current);

        assert_eq!(merged.title.as_str(), "Starman");
        assert_eq!(merged.artist_id, current.artist_id);
        assert_eq!(merged.release_date, None);
        assert_eq!(
            merged.url.as_ref().map(SongUrl::as_str),
            Some("https://example.com/a")
        );
        assert_eq!(merged.distance, Some(1.5));
    }

    #[test]
    fn merge_patch_rejects_null_title() {
        let errors = SongChanges::parse(SongPatchFields {
            title: Patch::Clear,
            ..SongPatchFields::default()
        })
        .unwrap_err();

        assert_eq!(errors.errors()[0].field, "title");
    }
}
