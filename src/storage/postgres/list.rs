//! Order and keyset-seek SQL shared by the PostgreSQL list queries.
//!
//! Every order ends with `id`, so it is total; NULLs sort last in both directions
//! (`nulls last`, matching the indexes). The seek predicate selects rows strictly after the
//! cursor's values under that same order, so a deep page costs what the first page costs.
//! Sort values are bound with their own types (`timestamptz`, `date`, `float8`, `int8`,
//! `text`).

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder};

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

/// Appends ` order by ...` for `keys`, NULLs last in both directions.
pub(super) fn push_order_by<F: Copy>(
    qb: &mut QueryBuilder<Postgres>,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> SortColumn,
) {
    qb.push(" order by ");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        let col = column(key.field);
        qb.push(col.sql);
        qb.push(if key.descending { " desc" } else { " asc" });
        if col.is_nullable {
            qb.push(" nulls last");
        }
    }
}

/// Appends ` and ...`: rows strictly after `values` under the order `keys`.
///
/// First a coarse bound on the leading key that its index can seek to (`c >= v`, `c <= v`
/// or `c is null`), then the exact condition
/// `k1 after v1 OR (k1 = v1 AND k2 after v2) OR ...`, where "after" a NULL is nothing
/// (NULLs are last) and NULL is after every value. When the leading key is nullable and
/// its cursor value is not NULL, the bound keeps to non-NULL rows; the caller reads the
/// NULL tail with [`push_null_tail`] when the page is not full (an `or c is null` here
/// would turn the index range into a scan).
pub(super) fn push_seek<F: Copy>(
    qb: &mut QueryBuilder<Postgres>,
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
        qb.push("false");
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
    qb: &mut QueryBuilder<Postgres>,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> SortColumn,
) {
    if let Some(first) = keys.first() {
        qb.push(format!(" and {} is null", column(first.field).sql));
    }
}

fn push_value(qb: &mut QueryBuilder<Postgres>, value: &SortValue) {
    match value {
        SortValue::Int(v) => qb.push_bind(*v),
        SortValue::Float(v) => qb.push_bind(*v),
        SortValue::Text(v) => qb.push_bind(v.clone()),
        SortValue::Timestamp(at) => qb.push_bind(*at),
        SortValue::Date(date) => qb.push_bind(*date),
        SortValue::Null => qb.push("null"),
    };
}

/// Appends ` limit $n offset $m`; callers ask for one row more than the page to learn
/// whether more follow.
pub(super) fn push_limit(qb: &mut QueryBuilder<Postgres>, limit: u32, offset: u64) {
    qb.push(" limit ");
    qb.push_bind(i64::from(limit));
    qb.push(" offset ");
    qb.push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
}

/// A `like` pattern for a case-folded substring: `%`, `_` and `\` in `q` are escaped, so
/// they match themselves (API.md), and the pg_trgm index can serve the match.
pub(super) fn contains_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A list query on one table whose sort columns are never NULL: the count and the page in
/// one `repeatable read` read-only transaction (one snapshot). `filter` appends
/// ` and ...` conditions to both statements.
pub(super) async fn fetch_page<F: SortField, Filter, T>(
    pool: &PgPool,
    from: &'static str,
    columns: &'static str,
    query: &ListQuery<F, Filter>,
    filter: impl Fn(&mut QueryBuilder<Postgres>),
    column: impl Fn(F) -> SortColumn + Copy,
    from_row: impl Fn(&PgRow) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let mut tx = begin_snapshot(pool).await?;
    let mut count =
        QueryBuilder::<Postgres>::new(format!("select count(*) from {from} where true"));
    filter(&mut count);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
    let mut select =
        QueryBuilder::<Postgres>::new(format!("select {columns} from {from} where true"));
    filter(&mut select);
    if let Position::After(values) = &query.position {
        push_seek(&mut select, query.sort.keys(), values, column);
    }
    push_order_by(&mut select, query.sort.keys(), column);
    push_limit(&mut select, query.page_size + 1, query.offset());
    let rows = select
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(map_error)?;
    tx.commit().await.map_err(map_error)?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(into_page(items, total, query.page_size))
}

/// A read-only transaction whose statements all see one snapshot, so a page and its
/// `total_items` agree.
pub(super) async fn begin_snapshot(
    pool: &PgPool,
) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
    pool.begin_with("begin isolation level repeatable read read only")
        .await
        .map_err(map_error)
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
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_order_by(&mut qb, keys, column);
            out.push(qb.into_string());
            for values in positions() {
                let mut qb = QueryBuilder::<Postgres>::new("");
                push_seek(&mut qb, keys, &values[..keys.len()], column);
                out.push(qb.into_string());
                let tail = needs_null_tail(keys, &values[..keys.len()], column);
                out.push(format!("needs_null_tail: {tail}"));
            }
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_null_tail(&mut qb, keys, column);
            out.push(qb.into_string());
        }
        out
    }

    /// Captured from the builders before they shared `storage::keyset`.
    const EXPECTED: &[&str] = &[
        " order by release desc nulls last, title asc, id asc",
        " and release <= $1 and (((release < $2 or release is null)) or (release = $3 and (title > $4)) or (release = $5 and title = $6 and (id > $7)))",
        "needs_null_tail: true",
        " and release is null and ((release is null and (title > $1)) or (release is null and title = $2 and (id > $3)))",
        "needs_null_tail: false",
        " and release is null and (false)",
        "needs_null_tail: false",
        " and release is null",
        " order by name asc, id desc",
        " and name >= $1 and (((name > $2)) or (name = $3 and (id < $4)))",
        "needs_null_tail: false",
        " and name is null and ((name is null and (id < $1)))",
        "needs_null_tail: false",
        " and name is null and (false)",
        "needs_null_tail: false",
        " and name is null",
    ];

    #[test]
    fn keyset_sql_is_unchanged() {
        assert_eq!(rendered(), EXPECTED);
    }

    #[test]
    fn like_metacharacters_match_themselves() {
        assert_eq!(contains_pattern("star"), "%star%");
        assert_eq!(contains_pattern(r"100% _x\"), r"%100\% \_x\\%");
    }
}
