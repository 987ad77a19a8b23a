//! SQL Server's side of the keyset list queries (`storage::keyset` holds the shared order
//! and seek). T-SQL has no `NULLS LAST`: a nullable sort column has a persisted
//! `<column>_is_null` companion (0 or 1) that sorts first, and the indexes are on
//! `(c_is_null, c, id)`. Pages are `OFFSET ... FETCH NEXT ...`.

use tiberius::Row;

use super::pool::Conn;
use super::sql::Sql;
use super::{Pool, map_error};
use crate::domain::list::{ListQuery, Page, Position, SortField, SortValue};
use crate::storage::StoreResult;
pub(super) use crate::storage::into_page;
use crate::storage::keyset::{Column, KeysetSql, Words, bound_op, direction};
pub(super) use crate::storage::keyset::{push_order_by, push_seek};

/// A sortable column: its SQL (a fixed string from a closed enum, never input) and, for a
/// nullable one, its `_is_null` companion (the dialect's form of `keyset::SortColumn`).
#[derive(Debug, Clone, Copy)]
pub(super) struct SortColumn {
    pub sql: &'static str,
    pub null_flag: Option<&'static str>,
}

impl Column for SortColumn {
    fn sql(self) -> &'static str {
        self.sql
    }

    fn is_nullable(self) -> bool {
        self.null_flag.is_some()
    }
}

/// T-SQL's keyset SQL: uppercase keywords, `@Pn` parameters, and NULLs last through the
/// `_is_null` companion. The coarse bound on a non-NULL value keeps the NULLs
/// (`(c >= v OR c_is_null = 1)`), so a page never reads a NULL tail of its own.
impl KeysetSql for Sql {
    type Column = SortColumn;
    const WORDS: Words = Words {
        order_by: " ORDER BY ",
        asc: " ASC",
        desc: " DESC",
        and: " AND ",
        or: " OR ",
        is_null: " IS NULL",
        never: "1 = 0",
    };

    fn push_sql(&mut self, sql: &str) {
        self.push(sql);
    }

    fn push_value(&mut self, value: &SortValue) {
        match value {
            SortValue::Int(v) => self.bind(*v),
            SortValue::Float(v) => self.bind(*v),
            SortValue::Text(v) => self.bind(v.clone()),
            SortValue::Timestamp(at) => self.bind(at.fixed_offset()),
            SortValue::Date(date) => self.bind(*date),
            SortValue::Null => self.push("NULL"),
        };
    }

    fn push_order_key(&mut self, column: SortColumn, descending: bool) {
        if let Some(flag) = column.null_flag {
            self.push(flag).push(" ASC, ");
        }
        self.push(column.sql).push(direction::<Self>(descending));
    }

    fn push_lead_bound(&mut self, column: SortColumn, descending: bool, value: &SortValue) {
        match (value, column.null_flag) {
            (SortValue::Null, Some(flag)) => {
                self.push(" AND ").push(flag).push(" = 1");
            }
            (SortValue::Null, None) => {
                self.push(" AND 1 = 0");
            }
            (value, _) => {
                self.push(" AND (")
                    .push(column.sql)
                    .push(bound_op(descending));
                self.push_value(value);
                if let Some(flag) = column.null_flag {
                    self.push(" OR ").push(flag).push(" = 1");
                }
                self.push(")");
            }
        }
    }
}

/// Appends ` OFFSET @Pn ROWS FETCH NEXT @Pm ROWS ONLY`; callers ask for one row more than
/// the page to learn whether more follow.
pub(super) fn push_limit(sql: &mut Sql, limit: u32, offset: u64) {
    sql.push(" OFFSET ")
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .push(" ROWS FETCH NEXT ")
        .bind(i64::from(limit))
        .push(" ROWS ONLY");
}

/// A `LIKE` pattern for a case-folded substring: `%`, `_`, `[` and the escape character
/// `\` in `q` are escaped (T-SQL treats `[...]` as a character class), so they match
/// themselves (API.md).
pub(super) fn contains_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '[' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Reads a `COUNT_BIG(*)` statement's value.
pub(super) async fn count(conn: &mut Conn, sql: &Sql) -> StoreResult<i64> {
    let row = sql.row(conn).await?;
    Ok(row
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten())
        .unwrap_or_default())
}

/// A list query on one table whose sort columns are never NULL: the count, then the page.
/// `filter` appends ` AND ...` conditions to both statements.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_page<F: SortField, Filter, T>(
    pool: &Pool,
    from: &'static str,
    columns: &'static str,
    query: &ListQuery<F, Filter>,
    filter: impl Fn(&mut Sql),
    column: impl Fn(F) -> SortColumn + Copy,
    from_row: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let mut conn = pool.get().await.map_err(map_error)?;
    let mut total = Sql::new(format!("SELECT COUNT_BIG(*) FROM {from} WHERE 1 = 1"));
    filter(&mut total);
    let total = count(&mut conn, &total).await?;
    let select = page_statement(from, columns, query, &filter, column);
    let rows = select.rows(&mut conn).await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(into_page(items, total, query.page_size))
}

fn page_statement<F: SortField, Filter>(
    from: &str,
    columns: &str,
    query: &ListQuery<F, Filter>,
    filter: &impl Fn(&mut Sql),
    column: impl Fn(F) -> SortColumn + Copy,
) -> Sql {
    let mut select = Sql::new(format!("SELECT {columns} FROM {from} WHERE 1 = 1"));
    filter(&mut select);
    if let Position::After(values) = &query.position {
        push_seek(&mut select, query.sort.keys(), values, column);
    }
    push_order_by(&mut select, query.sort.keys(), column);
    push_limit(&mut select, query.page_size + 1, query.offset());
    select
}

/// The statements the list builders make, for every sort field in both directions, in
/// page and keyset mode (with NULL and non-NULL positions) and with every filter.
#[cfg(test)]
pub(super) fn sample_statements() -> Vec<String> {
    let mut out = Vec::new();
    out.extend(super::artists::sample_statements());
    out.extend(super::songs::sample_statements());
    out.extend(super::users::sample_statements());
    out.extend(super::credentials::sample_statements());
    out
}

/// Every single-key order of `F`, both directions, each with `id` appended.
#[cfg(test)]
pub(super) fn sample_queries<F: SortField, Filter: Clone>(
    filter: Filter,
    value_of: impl Fn(F) -> Vec<SortValue>,
) -> Vec<ListQuery<F, Filter>> {
    let mut out = Vec::new();
    for field in F::ALL {
        for descending in [false, true] {
            let raw = format!("{}{}", if descending { "-" } else { "" }, field.name());
            let Ok(sort) = crate::domain::list::Sort::<F>::parse(Some(&raw)) else {
                continue;
            };
            let mut positions = vec![Position::Page(3)];
            for first in value_of(*field) {
                let mut values = vec![first];
                values.extend(sort.keys()[1..].iter().map(|_| SortValue::Int(5)));
                positions.push(Position::After(values));
            }
            for position in positions {
                out.push(ListQuery {
                    sort: sort.clone(),
                    page_size: 10,
                    position,
                    filter: filter.clone(),
                });
            }
        }
    }
    out
}

/// [`page_statement`] for the sample queries of a single table.
#[cfg(test)]
pub(super) fn sample_pages<F: SortField, Filter: Clone>(
    from: &str,
    columns: &str,
    filter: Filter,
    push_filter: impl Fn(&mut Sql, &Filter),
    column: impl Fn(F) -> SortColumn + Copy,
    value_of: impl Fn(F) -> Vec<SortValue>,
) -> Vec<String> {
    sample_queries(filter, value_of)
        .iter()
        .map(|q| {
            page_statement(
                from,
                columns,
                q,
                &|sql: &mut Sql| push_filter(sql, &q.filter),
                column,
            )
            .text()
            .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::keyset::fixture::{NOT_NULL, NULLABLE_FIRST, positions};

    /// A sort whose leading key is nullable and descending (`release`), then `title`,
    /// then `id`; and one whose keys are never NULL.
    fn column((sql, is_nullable): (&'static str, bool)) -> SortColumn {
        let null_flag = match sql {
            "release" => Some("release_is_null"),
            _ => None,
        };
        assert_eq!(null_flag.is_some(), is_nullable);
        SortColumn { sql, null_flag }
    }

    /// The order, seek and NULL-tail SQL for both sorts, one statement per line.
    fn rendered() -> Vec<String> {
        let mut out = Vec::new();
        for keys in [NULLABLE_FIRST, NOT_NULL] {
            let mut qb = Sql::new("");
            push_order_by(&mut qb, keys, column);
            out.push(qb.text().to_owned());
            for values in positions() {
                let mut qb = Sql::new("");
                push_seek(&mut qb, keys, &values[..keys.len()], column);
                out.push(qb.text().to_owned());
            }
        }
        out
    }

    /// Captured from the builders before they shared `storage::keyset`.
    const EXPECTED: &[&str] = &[
        " ORDER BY release_is_null ASC, release DESC, title ASC, id ASC",
        " AND (release <= @P1 OR release_is_null = 1) AND (((release < @P2 OR release IS NULL)) OR (release = @P3 AND (title > @P4)) OR (release = @P5 AND title = @P6 AND (id > @P7)))",
        " AND release_is_null = 1 AND ((release IS NULL AND (title > @P1)) OR (release IS NULL AND title = @P2 AND (id > @P3)))",
        " AND release_is_null = 1 AND (1 = 0)",
        " ORDER BY name ASC, id DESC",
        " AND (name >= @P1) AND (((name > @P2)) OR (name = @P3 AND (id < @P4)))",
        " AND 1 = 0 AND ((name IS NULL AND (id < @P1)))",
        " AND 1 = 0 AND (1 = 0)",
    ];

    #[test]
    fn keyset_sql_is_unchanged() {
        assert_eq!(rendered(), EXPECTED);
    }

    #[test]
    fn like_metacharacters_match_themselves() {
        assert_eq!(contains_pattern("star"), "%star%");
        assert_eq!(contains_pattern(r"100% _[x]\"), r"%100\% \_\[x]\\%");
    }
}
