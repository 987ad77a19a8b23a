//! Order and keyset-seek SQL shared by the SQLite list queries.
//!
//! Every order ends with `id`, so it is total; NULLs sort last in both directions. The seek
//! predicate selects rows strictly after the cursor's values under that same order, so a
//! page deep in the list costs what the first page costs (each sort has a `(column, id)`
//! index).
//!
//! Totals and search (#11, migration 0006): `row_count` holds the number of artists and
//! songs, kept by triggers in every writing transaction, so an unfiltered list reads its
//! `total_items` instead of counting; `artist_search` and `song_search` are FTS5 trigram
//! indexes over the folded `*_key` columns, kept by triggers too, which serve `q` of three
//! or more characters ([`trigram_phrase`]); shorter `q` scans with `instr`.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use super::map_error;
use crate::domain::list::{ListQuery, Page, Position, SortField, SortKey, SortValue};
use crate::storage::StoreResult;
pub(super) use crate::storage::into_page;

/// A sortable column: its SQL (a fixed string from a closed enum, never input) and whether
/// it may be NULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct SortColumn {
    pub sql: &'static str,
    pub is_nullable: bool,
}

/// Appends ` order by ...` for `keys`. A nullable column sorts as `c is null, c`, which
/// puts NULLs last in both directions and matches the `(c is null, c, id)` indexes (SQLite
/// cannot index `nulls last`).
pub(super) fn push_order_by<F: Copy>(
    qb: &mut QueryBuilder<Sqlite>,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> SortColumn,
) {
    qb.push(" order by ");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        let col = column(key.field);
        if col.is_nullable {
            qb.push(format!("{} is null, ", col.sql));
        }
        qb.push(col.sql);
        qb.push(if key.descending { " desc" } else { " asc" });
    }
}

/// Appends ` and ...`: rows strictly after `values` under the order `keys`.
///
/// First a coarse bound on the leading key that its index can seek to (`c >= v`,
/// `c <= v` or `c is null`), then the exact condition
/// `k1 after v1 OR (k1 = v1 AND k2 after v2) OR ...`, where "after" a NULL is nothing
/// (NULLs are last) and NULL is after every value.
///
/// When the leading key is nullable and its cursor value is not NULL, the bound keeps to
/// non-NULL rows (`c is not null and c >= v`, an index range); the caller reads the NULL
/// tail separately with [`push_null_tail`] when the page is not full. An `or c is null`
/// here would turn the seek into a scan.
pub(super) fn push_seek<F: Copy>(
    qb: &mut QueryBuilder<Sqlite>,
    keys: &[SortKey<F>],
    values: &[SortValue],
    column: impl Fn(F) -> SortColumn,
) {
    if let (Some(first), Some(value)) = (keys.first(), values.first()) {
        let col = column(first.field);
        let op = if first.descending { "<=" } else { ">=" };
        match value {
            SortValue::Null => {
                qb.push(format!(" and {} is null", col.sql));
            }
            _ if col.is_nullable => {
                qb.push(format!(
                    " and {} is not null and {} {op} ",
                    col.sql, col.sql
                ));
                push_value(qb, value);
            }
            _ => {
                qb.push(format!(" and {} {op} ", col.sql));
                push_value(qb, value);
            }
        }
    }
    let mut terms = 0;
    qb.push(" and (");
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        if matches!(value, SortValue::Null) {
            continue;
        }
        if terms > 0 {
            qb.push(" or ");
        }
        terms += 1;
        qb.push("(");
        for (prev_key, prev_value) in keys[..i].iter().zip(values) {
            let prev = column(prev_key.field).sql;
            if matches!(prev_value, SortValue::Null) {
                qb.push(format!("{prev} is null and "));
            } else {
                qb.push(format!("{prev} = "));
                push_value(qb, prev_value);
                qb.push(" and ");
            }
        }
        let col = column(key.field);
        let op = if key.descending { "<" } else { ">" };
        qb.push(format!("({} {op} ", col.sql));
        push_value(qb, value);
        if col.is_nullable {
            qb.push(format!(" or {} is null", col.sql));
        }
        qb.push("))");
    }
    if terms == 0 {
        // Only reachable with an all-NULL position, which `id` (never NULL) rules out.
        qb.push("0");
    }
    qb.push(")");
}

/// Whether a keyset page must also read the NULL tail of a nullable leading key.
pub(super) fn needs_null_tail<F: Copy>(
    keys: &[SortKey<F>],
    values: &[SortValue],
    column: impl Fn(F) -> SortColumn,
) -> bool {
    keys.first().is_some_and(|k| column(k.field).is_nullable)
        && values
            .first()
            .is_some_and(|v| !matches!(v, SortValue::Null))
}

/// Appends ` and c is null` for the leading key: the rows that follow every non-NULL value.
pub(super) fn push_null_tail<F: Copy>(
    qb: &mut QueryBuilder<Sqlite>,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> SortColumn,
) {
    if let Some(first) = keys.first() {
        qb.push(format!(" and {} is null", column(first.field).sql));
    }
}

fn push_value(qb: &mut QueryBuilder<Sqlite>, value: &SortValue) {
    match value {
        SortValue::Int(v) => qb.push_bind(*v),
        SortValue::Float(v) => qb.push_bind(*v),
        SortValue::Text(v) => qb.push_bind(v.clone()),
        SortValue::Timestamp(at) => qb.push_bind(super::timestamp_key(at)),
        SortValue::Date(date) => qb.push_bind(super::date_key(*date)),
        SortValue::Null => qb.push("null"),
    };
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

    /// A sort whose leading key is nullable and descending (`release`), then `title`,
    /// then `id`; and one whose keys are never NULL.
    const NULLABLE_FIRST: &[SortKey<(&str, bool)>] = &[
        SortKey {
            field: ("release", true),
            descending: true,
        },
        SortKey {
            field: ("title", false),
            descending: false,
        },
        SortKey {
            field: ("id", false),
            descending: false,
        },
    ];
    const NOT_NULL: &[SortKey<(&str, bool)>] = &[
        SortKey {
            field: ("name", false),
            descending: false,
        },
        SortKey {
            field: ("id", false),
            descending: true,
        },
    ];

    fn column((sql, is_nullable): (&'static str, bool)) -> SortColumn {
        SortColumn { sql, is_nullable }
    }

    fn positions() -> [Vec<SortValue>; 3] {
        let date = chrono::NaiveDate::from_ymd_opt(2020, 1, 2).unwrap();
        [
            vec![
                SortValue::Date(date),
                SortValue::Text("x".into()),
                SortValue::Int(7),
            ],
            vec![
                SortValue::Null,
                SortValue::Text("x".into()),
                SortValue::Int(7),
            ],
            vec![SortValue::Null, SortValue::Null, SortValue::Null],
        ]
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
