//! SQLite's side of the keyset list queries (`storage::keyset` holds the shared order and
//! seek): binding, NULLs last, limit, search phrases and the page read. Each sort has a
//! `(column, id)` index, so a deep page costs what the first page costs.
//!
//! Totals and search (#11, migration 0006): `row_count` holds the number of artists and
//! songs, kept by triggers in every writing transaction, so an unfiltered list reads its
//! `total_items` instead of counting; `artist_search` and `song_search` are FTS5 trigram
//! indexes over the folded `*_key` columns, kept by triggers too, which serve `q` of three
//! or more characters ([`trigram_phrase`]); shorter `q` scans with `instr`.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use super::map_error;
use crate::domain::list::{ListQuery, Page, Position, SortField, SortValue};
use crate::storage::StoreResult;
pub(super) use crate::storage::into_page;
use crate::storage::keyset::{KeysetSql, LOWERCASE, Words, bound_op, direction, push_is_null};
pub(super) use crate::storage::keyset::{
    SortColumn, needs_null_tail, push_null_tail, push_order_by, push_seek,
};

/// SQLite's keyset SQL. A nullable column sorts as `c is null, c`, which puts NULLs last
/// in both directions and matches the `(c is null, c, id)` indexes (SQLite cannot index
/// `nulls last`). When the leading key is nullable and its cursor value is not NULL, the
/// coarse bound keeps to non-NULL rows (`c is not null and c >= v`, an index range); the
/// caller reads the NULL tail separately with [`push_null_tail`] when the page is not full.
impl KeysetSql for QueryBuilder<Sqlite> {
    type Column = SortColumn;
    const WORDS: Words = Words {
        never: "0",
        ..LOWERCASE
    };

    fn push_sql(&mut self, sql: &str) {
        self.push(sql);
    }

    fn push_value(&mut self, value: &SortValue) {
        match value {
            SortValue::Int(v) => self.push_bind(*v),
            SortValue::Float(v) => self.push_bind(*v),
            SortValue::Text(v) => self.push_bind(v.clone()),
            SortValue::Timestamp(at) => self.push_bind(super::timestamp_key(at)),
            SortValue::Date(date) => self.push_bind(super::date_key(*date)),
            SortValue::Null => self.push("null"),
        };
    }

    fn push_order_key(&mut self, column: SortColumn, descending: bool) {
        if column.is_nullable {
            self.push(column.sql).push(" is null, ");
        }
        self.push(column.sql).push(direction::<Self>(descending));
    }

    fn push_lead_bound(&mut self, column: SortColumn, descending: bool, value: &SortValue) {
        if matches!(value, SortValue::Null) {
            push_is_null(self, column);
            return;
        }
        self.push(" and ");
        if column.is_nullable {
            self.push(column.sql).push(" is not null and ");
        }
        self.push(column.sql).push(bound_op(descending));
        self.push_value(value);
    }
}

/// Appends ` limit <n> offset ?`; callers ask for one row more than the page to learn
/// whether more follow.
///
/// The limit is written into the SQL as an integer literal, the one value of a list
/// query that is not bound: SQLite reads a bound `LIMIT ?` while planning (to size the
/// result), which marks the statement to be prepared again whenever that parameter is
/// bound, so every execution re-parsed and re-planned the whole query (12 % of a cursor
/// page's CPU time; BENCHMARKS.md). `limit` is a `u32` (the page size plus one, at most
/// 101), so the text can only be digits; the cached statements are one per page size.
pub(super) fn push_limit(qb: &mut QueryBuilder<Sqlite>, limit: u32, offset: u64) {
    qb.push(format_args!(" limit {limit} offset "));
    qb.push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
}

/// The FTS5 query for the rows whose folded text contains `q`, when the trigram index
/// answers exactly what `instr(key, q) > 0` answers; `None` when the caller must scan with
/// `instr` instead.
///
/// The trigram tokenizer indexes every window of three characters (no separators, no
/// folding with `case_sensitive 1`), so a `q` of three or more characters is the phrase of
/// its trigrams at consecutive positions: exactly a substring. Shorter text has no trigram
/// and would match nothing, hence the scan. FTS5 reads U+FFFE and U+FFFF as U+FFFD, so a
/// `q` holding any of the three could match text that `instr` tells apart: those scan
/// too. (FTS5 also skips NUL, which stored keys cannot hold: API.md forbids control
/// characters.) The phrase is quoted with `"` doubled, so every character of `q`, FTS5
/// operators and `*` included, is text.
pub(super) fn trigram_phrase(q: &str) -> Option<String> {
    let indexable = q.chars().count() >= 3
        && !q
            .chars()
            .any(|c| matches!(c, '\u{fffd}' | '\u{fffe}' | '\u{ffff}'));
    indexable.then(|| format!("\"{}\"", q.replace('"', "\"\"")))
}

/// A list query on one table whose sort columns are never NULL: the count and the page in
/// one read transaction (the same snapshot). `filter` appends ` and ...` conditions to
/// both statements.
pub(super) async fn fetch_page<F: SortField, Filter, T>(
    pool: &SqlitePool,
    from: &'static str,
    columns: &'static str,
    query: &ListQuery<F, Filter>,
    filter: impl Fn(&mut QueryBuilder<Sqlite>),
    column: impl Fn(F) -> SortColumn + Copy,
    from_row: impl Fn(&SqliteRow) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let total = |qb: &mut QueryBuilder<Sqlite>| {
        qb.push(format!("(select count(*) from {from} where 1 = 1"));
        filter(qb);
        qb.push(")");
    };
    fetch_page_with_total(pool, from, columns, query, total, &filter, column, from_row).await
}

/// [`fetch_page`] with the expression that reads the total given by the caller (a
/// maintained count, a count through an index) instead of `count(*)` over the filter.
///
/// The total is a scalar subquery in the page's own `select`: one statement, so one
/// snapshot and one round trip to the connection's thread, where a read transaction
/// with a separate count took four (`begin`, count, page, `commit`). Only a page past
/// the end, which has no row to carry it, reads the total on its own.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_page_with_total<F: SortField, Filter, T>(
    pool: &SqlitePool,
    from: &'static str,
    columns: &'static str,
    query: &ListQuery<F, Filter>,
    total: impl Fn(&mut QueryBuilder<Sqlite>),
    filter: impl Fn(&mut QueryBuilder<Sqlite>),
    column: impl Fn(F) -> SortColumn + Copy,
    from_row: impl Fn(&SqliteRow) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let mut select = QueryBuilder::<Sqlite>::new("select ");
    total(&mut select);
    select.push(format!(" as page_total, {columns} from {from} where 1 = 1"));
    filter(&mut select);
    if let Position::After(values) = &query.position {
        push_seek(&mut select, query.sort.keys(), values, column);
    }
    push_order_by(&mut select, query.sort.keys(), column);
    push_limit(&mut select, query.page_size + 1, query.offset());
    let rows = select.build().fetch_all(pool).await.map_err(map_error)?;
    let total: i64 = match rows.first() {
        Some(row) => row.try_get("page_total").map_err(map_error)?,
        None => {
            let mut alone = QueryBuilder::<Sqlite>::new("select ");
            total(&mut alone);
            alone
                .build_query_scalar()
                .fetch_one(pool)
                .await
                .map_err(map_error)?
        }
    };
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(into_page(items, total, query.page_size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::keyset::fixture::{NOT_NULL, NULLABLE_FIRST, positions};

    /// A sort whose leading key is nullable and descending (`release`), then `title`,
    /// then `id`; and one whose keys are never NULL.
    fn column((sql, is_nullable): (&'static str, bool)) -> SortColumn {
        SortColumn { sql, is_nullable }
    }

    /// The order, seek and NULL-tail SQL for both sorts, one statement per line.
    fn rendered() -> Vec<String> {
        let mut out = Vec::new();
        for keys in [NULLABLE_FIRST, NOT_NULL] {
            let mut qb = QueryBuilder::<Sqlite>::new("");
            push_order_by(&mut qb, keys, column);
            out.push(qb.into_string());
            for values in positions() {
                let mut qb = QueryBuilder::<Sqlite>::new("");
                push_seek(&mut qb, keys, &values[..keys.len()], column);
                out.push(qb.into_string());
                let tail = needs_null_tail(keys, &values[..keys.len()], column);
                out.push(format!("needs_null_tail: {tail}"));
            }
            let mut qb = QueryBuilder::<Sqlite>::new("");
            push_null_tail(&mut qb, keys, column);
            out.push(qb.into_string());
        }
        out
    }

    /// Captured from the builders before they shared `storage::keyset`.
    const EXPECTED: &[&str] = &[
        " order by release is null, release desc, title asc, id asc",
        " and release is not null and release <= ? and (((release < ? or release is null)) or (release = ? and (title > ?)) or (release = ? and title = ? and (id > ?)))",
        "needs_null_tail: true",
        " and release is null and ((release is null and (title > ?)) or (release is null and title = ? and (id > ?)))",
        "needs_null_tail: false",
        " and release is null and (0)",
        "needs_null_tail: false",
        " and release is null",
        " order by name asc, id desc",
        " and name >= ? and (((name > ?)) or (name = ? and (id < ?)))",
        "needs_null_tail: false",
        " and name is null and ((name is null and (id < ?)))",
        "needs_null_tail: false",
        " and name is null and (0)",
        "needs_null_tail: false",
        " and name is null",
    ];

    #[test]
    fn keyset_sql_is_unchanged() {
        assert_eq!(rendered(), EXPECTED);
    }

    #[test]
    fn trigram_phrase_quotes_text_and_leaves_short_or_lossy_q_to_the_scan() {
        let cases: &[(&str, Option<&str>)] = &[
            ("lo", None),
            ("é", None),
            ("ab\u{1F600}", Some("\"ab\u{1F600}\"")),
            ("love", Some("\"love\"")),
            ("a\"b", Some("\"a\"\"b\"")),
            ("\"\"\"", Some("\"\"\"\"\"\"\"\"")),
            ("x* or y", Some("\"x* or y\"")),
            ("100%", Some("\"100%\"")),
            ("ab\u{fffd}", None),
            ("ab\u{fffe}c", None),
            ("\u{ffff}abc", None),
        ];

        for (q, expected) in cases {
            assert_eq!(trigram_phrase(q).as_deref(), *expected, "q={q:?}");
        }
    }
}
