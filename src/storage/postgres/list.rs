//! PostgreSQL's side of the keyset list queries (`storage::keyset` holds the shared order
//! and seek): binding, NULLs last, limit, the `like` pattern and the page read in one
//! snapshot.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::map_error;
use crate::domain::list::{ListQuery, Page, Position, SortField, SortValue};
use crate::storage::StoreResult;
pub(super) use crate::storage::into_page;
use crate::storage::keyset::{KeysetSql, LOWERCASE, Words, bound_op, direction, push_is_null};
pub(super) use crate::storage::keyset::{
    SortColumn, needs_null_tail, push_null_tail, push_order_by, push_seek,
};

/// PostgreSQL's keyset SQL: `nulls last`, matching the indexes, and sort values bound with
/// their own types (`timestamptz`, `date`, `float8`, `int8`, `text`). The coarse bound on a
/// non-NULL value (`c >= v`) keeps to non-NULL rows; the caller reads the NULL tail with
/// [`push_null_tail`] when the page is not full.
impl KeysetSql for QueryBuilder<Postgres> {
    type Column = SortColumn;
    const WORDS: Words = LOWERCASE;

    fn push_sql(&mut self, sql: &str) {
        self.push(sql);
    }

    fn push_value(&mut self, value: &SortValue) {
        match value {
            SortValue::Int(v) => self.push_bind(*v),
            SortValue::Float(v) => self.push_bind(*v),
            SortValue::Text(v) => self.push_bind(v.clone()),
            SortValue::Timestamp(at) => self.push_bind(*at),
            SortValue::Date(date) => self.push_bind(*date),
            SortValue::Null => self.push("null"),
        };
    }

    fn push_order_key(&mut self, column: SortColumn, descending: bool) {
        self.push(column.sql).push(direction::<Self>(descending));
        if column.is_nullable {
            self.push(" nulls last");
        }
    }

    fn push_lead_bound(&mut self, column: SortColumn, descending: bool, value: &SortValue) {
        if matches!(value, SortValue::Null) {
            push_is_null(self, column);
            return;
        }
        self.push(" and ")
            .push(column.sql)
            .push(bound_op(descending));
        self.push_value(value);
    }
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
