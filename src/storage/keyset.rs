//! The keyset-list SQL every backend shares: the sort column, the `order by` loop, the seek
//! predicate and the NULL tail of a nullable leading key. Each backend's `list.rs`
//! implements [`KeysetSql`] for its statement builder (keyword case, binding, NULLs last).
//!
//! Every order ends with `id`, so it is total; NULLs sort last in both directions. The seek
//! predicate selects rows strictly after the cursor's values under that same order, so a
//! page deep in the list costs what the first page costs.

use crate::domain::list::{SortKey, SortValue};

/// A sortable column: its SQL (a fixed string from a closed enum, never input) and whether
/// it may be NULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct SortColumn {
    pub sql: &'static str,
    pub is_nullable: bool,
}

/// What the shared pieces read of a dialect's sort column.
pub(super) trait Column: Copy {
    /// The column's SQL.
    fn sql(self) -> &'static str;
    /// Whether the column may be NULL.
    fn is_nullable(self) -> bool;
}

impl Column for SortColumn {
    fn sql(self) -> &'static str {
        self.sql
    }

    fn is_nullable(self) -> bool {
        self.is_nullable
    }
}

/// The words of the keyset SQL in a dialect's spelling.
pub(super) struct Words {
    pub order_by: &'static str,
    pub asc: &'static str,
    pub desc: &'static str,
    pub and: &'static str,
    pub or: &'static str,
    pub is_null: &'static str,
    /// A condition no row meets.
    pub never: &'static str,
}

/// The lowercase spelling (STYLE §6); a dialect sets its own `never`.
pub(super) const LOWERCASE: Words = Words {
    order_by: " order by ",
    asc: " asc",
    desc: " desc",
    and: " and ",
    or: " or ",
    is_null: " is null",
    never: "false",
};

/// A dialect's statement builder, as the shared pieces write to it.
pub(super) trait KeysetSql {
    /// The dialect's sort column.
    type Column: Column;
    /// The dialect's keywords.
    const WORDS: Words;

    /// Appends SQL text (fixed strings only, never input).
    fn push_sql(&mut self, sql: &str);

    /// Appends `value` bound as a parameter (`NULL` as text).
    fn push_value(&mut self, value: &SortValue);

    /// Appends one key of the order: the column, its direction and, for a nullable column,
    /// the dialect's way of putting NULLs last.
    fn push_order_key(&mut self, column: Self::Column, descending: bool);

    /// Appends ` and ...`: a coarse bound on the leading key that its index can seek to,
    /// rows at or after `value` (`>=` ascending, `<=` descending, or the NULLs when `value`
    /// is NULL).
    fn push_lead_bound(&mut self, column: Self::Column, descending: bool, value: &SortValue);
}

/// Appends ` order by ...` for `keys`, each key as the dialect writes it.
pub(super) fn push_order_by<Q: KeysetSql, F: Copy>(
    qb: &mut Q,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> Q::Column,
) {
    qb.push_sql(Q::WORDS.order_by);
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            qb.push_sql(", ");
        }
        qb.push_order_key(column(key.field), key.descending);
    }
}

/// The direction word of a key.
pub(super) fn direction<Q: KeysetSql>(descending: bool) -> &'static str {
    if descending {
        Q::WORDS.desc
    } else {
        Q::WORDS.asc
    }
}

/// The comparison of the coarse bound: rows at or after a value.
pub(super) fn bound_op(descending: bool) -> &'static str {
    if descending { " <= " } else { " >= " }
}

/// Appends ` and ...`: rows strictly after `values` under the order `keys`.
///
/// First the dialect's coarse bound on the leading key ([`KeysetSql::push_lead_bound`]),
/// then the exact condition `k1 after v1 OR (k1 = v1 AND k2 after v2) OR ...`, where
/// "after" a NULL is nothing (NULLs are last) and NULL is after every value.
pub(super) fn push_seek<Q: KeysetSql, F: Copy>(
    qb: &mut Q,
    keys: &[SortKey<F>],
    values: &[SortValue],
    column: impl Fn(F) -> Q::Column,
) {
    let words = Q::WORDS;
    if let (Some(first), Some(value)) = (keys.first(), values.first()) {
        qb.push_lead_bound(column(first.field), first.descending, value);
    }
    let mut terms = 0;
    qb.push_sql(words.and);
    qb.push_sql("(");
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        if matches!(value, SortValue::Null) {
            continue;
        }
        if terms > 0 {
            qb.push_sql(words.or);
        }
        terms += 1;
        qb.push_sql("(");
        for (prev_key, prev_value) in keys[..i].iter().zip(values) {
            qb.push_sql(column(prev_key.field).sql());
            if matches!(prev_value, SortValue::Null) {
                qb.push_sql(words.is_null);
            } else {
                qb.push_sql(" = ");
                qb.push_value(prev_value);
            }
            qb.push_sql(words.and);
        }
        let col = column(key.field);
        qb.push_sql("(");
        qb.push_sql(col.sql());
        qb.push_sql(if key.descending { " < " } else { " > " });
        qb.push_value(value);
        if col.is_nullable() {
            qb.push_sql(words.or);
            qb.push_sql(col.sql());
            qb.push_sql(words.is_null);
        }
        qb.push_sql("))");
    }
    if terms == 0 {
        // Only reachable with an all-NULL position, which `id` (never NULL) rules out.
        qb.push_sql(words.never);
    }
    qb.push_sql(")");
}

/// Whether a keyset page must also read the NULL tail of a nullable leading key: for a
/// dialect whose coarse bound on a non-NULL value keeps to non-NULL rows (an `or c is
/// null` there would turn the index range into a scan).
pub(super) fn needs_null_tail<C: Column, F: Copy>(
    keys: &[SortKey<F>],
    values: &[SortValue],
    column: impl Fn(F) -> C,
) -> bool {
    keys.first().is_some_and(|k| column(k.field).is_nullable())
        && values
            .first()
            .is_some_and(|v| !matches!(v, SortValue::Null))
}

/// Appends ` and c is null` for the leading key: the rows that follow every non-NULL value.
pub(super) fn push_null_tail<Q: KeysetSql, F: Copy>(
    qb: &mut Q,
    keys: &[SortKey<F>],
    column: impl Fn(F) -> Q::Column,
) {
    if let Some(first) = keys.first() {
        push_is_null(qb, column(first.field));
    }
}

/// Appends ` and c is null`.
pub(super) fn push_is_null<Q: KeysetSql>(qb: &mut Q, column: Q::Column) {
    qb.push_sql(Q::WORDS.and);
    qb.push_sql(column.sql());
    qb.push_sql(Q::WORDS.is_null);
}

/// The sorts and positions the backends' pinned-SQL tests render: a nullable leading
/// key (descending) and a sort without nullable keys, sought after a value, after NULL
/// and after an all-NULL position.
#[cfg(test)]
pub(super) mod fixture {
    use crate::domain::list::{SortKey, SortValue};

    pub(in crate::storage) const NULLABLE_FIRST: &[SortKey<(&str, bool)>] = &[
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
    pub(in crate::storage) const NOT_NULL: &[SortKey<(&str, bool)>] = &[
        SortKey {
            field: ("name", false),
            descending: false,
        },
        SortKey {
            field: ("id", false),
            descending: true,
        },
    ];

    pub(in crate::storage) fn positions() -> [Vec<SortValue>; 3] {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A builder that writes values as `{value}` and NULLs last as a clause.
    #[derive(Default)]
    struct Text(String);

    impl KeysetSql for Text {
        type Column = SortColumn;
        const WORDS: Words = LOWERCASE;

        fn push_sql(&mut self, sql: &str) {
            self.0.push_str(sql);
        }

        fn push_value(&mut self, value: &SortValue) {
            self.0.push_str(&format!("{{{value:?}}}"));
        }

        fn push_order_key(&mut self, column: SortColumn, descending: bool) {
            self.push_sql(column.sql);
            self.push_sql(direction::<Self>(descending));
            if column.is_nullable {
                self.push_sql(" nulls last");
            }
        }

        fn push_lead_bound(&mut self, column: SortColumn, descending: bool, value: &SortValue) {
            if matches!(value, SortValue::Null) {
                push_is_null(self, column);
            } else {
                self.push_sql(" and ");
                self.push_sql(column.sql);
                self.push_sql(bound_op(descending));
                self.push_value(value);
            }
        }
    }

    const KEYS: &[SortKey<(&str, bool)>] = &[
        SortKey {
            field: ("release", true),
            descending: true,
        },
        SortKey {
            field: ("id", false),
            descending: false,
        },
    ];

    fn column((sql, is_nullable): (&'static str, bool)) -> SortColumn {
        SortColumn { sql, is_nullable }
    }

    #[test]
    fn a_nullable_leading_key_sorts_nulls_last() {
        let mut qb = Text::default();

        push_order_by(&mut qb, KEYS, column);

        assert_eq!(qb.0, " order by release desc nulls last, id asc");
    }

    #[test]
    fn a_seek_after_a_value_keeps_to_values_and_the_tail_reads_the_nulls() {
        let values = [SortValue::Int(3), SortValue::Int(7)];
        let mut seek = Text::default();
        let mut tail = Text::default();

        push_seek(&mut seek, KEYS, &values, column);
        push_null_tail(&mut tail, KEYS, column);

        assert_eq!(
            seek.0,
            " and release <= {Int(3)} and (((release < {Int(3)} or release is null)) \
             or (release = {Int(3)} and (id > {Int(7)})))"
        );
        assert!(needs_null_tail(KEYS, &values, column));
        assert_eq!(tail.0, " and release is null");
    }

    #[test]
    fn a_seek_after_null_stays_in_the_nulls_and_has_no_tail() {
        let values = [SortValue::Null, SortValue::Int(7)];
        let mut seek = Text::default();

        push_seek(&mut seek, KEYS, &values, column);

        assert_eq!(
            seek.0,
            " and release is null and ((release is null and (id > {Int(7)})))"
        );
        assert!(!needs_null_tail(KEYS, &values, column));
    }

    #[test]
    fn an_all_null_position_selects_nothing() {
        let mut seek = Text::default();

        push_seek(&mut seek, &KEYS[..1], &[SortValue::Null], column);

        assert_eq!(seek.0, " and release is null and (false)");
    }
}
