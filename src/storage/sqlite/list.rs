//! Order and keyset-seek SQL shared by the SQLite list queries.
//!
//! Every order ends with `id`, so it is total; NULLs sort last in both directions. The seek
//! predicate selects rows strictly after the cursor's values under that same order, so a
//! page deep in the list costs what the first page costs (each sort has a `(column, id)`
//! index).

use sqlx::{QueryBuilder, Sqlite};

use crate::domain::list::{SortKey, SortValue};

/// A sortable column: its SQL (a fixed string from a closed enum, never input) and whether
/// it may be NULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct SortColumn {
    pub sql: &'static str,
    pub is_nullable: bool,
}

/// Appends ` order by ...` for `keys`.
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
        qb.push(col.sql);
        qb.push(if key.descending { " desc" } else { " asc" });
        if col.is_nullable {
            qb.push(" nulls last");
        }
    }
}

/// Appends ` and (...)`: rows strictly after `values` under the order `keys`.
///
/// Expanded as `k1 after v1 OR (k1 = v1 AND k2 after v2) OR ...`; "after" a NULL is
/// nothing (NULLs are last), and NULL is after every value.
pub(super) fn push_seek<F: Copy>(
    qb: &mut QueryBuilder<Sqlite>,
    keys: &[SortKey<F>],
    values: &[SortValue],
    column: impl Fn(F) -> SortColumn,
) {
    qb.push(" and (0");
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        if matches!(value, SortValue::Null) {
            continue;
        }
        qb.push(" or (1");
        for (prev_key, prev_value) in keys[..i].iter().zip(values) {
            let prev = column(prev_key.field).sql;
            if matches!(prev_value, SortValue::Null) {
                qb.push(format!(" and {prev} is null"));
            } else {
                qb.push(format!(" and {prev} = "));
                push_value(qb, prev_value);
            }
        }
        let col = column(key.field);
        let op = if key.descending { "<" } else { ">" };
        qb.push(format!(" and ({} {op} ", col.sql));
        push_value(qb, value);
        if col.is_nullable {
            qb.push(format!(" or {} is null", col.sql));
        }
        qb.push("))");
    }
    qb.push(")");
}

fn push_value(qb: &mut QueryBuilder<Sqlite>, value: &SortValue) {
    match value {
        SortValue::Int(v) => qb.push_bind(*v),
        SortValue::Float(v) => qb.push_bind(*v),
        SortValue::Text(v) => qb.push_bind(v.clone()),
        SortValue::Null => qb.push("null"),
    };
}

/// Appends ` limit ? offset ?`, fetching one extra row to learn whether more follow.
pub(super) fn push_limit(qb: &mut QueryBuilder<Sqlite>, page_size: u32, offset: u64) {
    qb.push(" limit ");
    qb.push_bind(i64::from(page_size) + 1);
    qb.push(" offset ");
    qb.push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
}
