//! Migration 0001 on SQL Server adopting the original system's tables, checked offline: the
//! adoption batches parse as T-SQL and sit where they must. The workflow's `test-mssql`
//! job runs them on a real server (`tests/api/mssql.rs`, on the fixture
//! `tests/fixtures/mssql/original-schema.sql`).
//!
//! What sqlparser 0.64 (`MsSqlDialect`) reads, and what it does not:
//! - Both adoption batches parse whole: `CREATE TABLE #t`, `INSERT ... SELECT ... ORDER BY`,
//!   `CROSS APPLY`, `STRING_AGG(...) WITHIN GROUP (ORDER BY ...)`, `QUOTENAME`,
//!   `CHARINDEX`, `DECLARE`, `SET`, `SELECT TOP (1) @v = ...`, `IF ... THROW`,
//!   `WHILE EXISTS (...) BEGIN ... END`, `EXEC sys.sp_executesql @sql` and
//!   `DROP TABLE #a, #b`. The loops end on `WHILE EXISTS` rather than `BREAK`, which
//!   sqlparser does not read (the T-SQL would be as valid either way).
//! - The parse checks syntax and structure, not meaning: sqlparser reads
//!   `SELECT @v = expr` as `SELECT expr AS @v`, and the statements the batches build and
//!   run with `sp_executesql` exist only at run time (only the server sees them).
//! - sqlparser reads `ALTER COLUMN` only in its ANSI form (`SET DATA TYPE ...`), not
//!   T-SQL's `ALTER COLUMN c NVARCHAR(256) ...`: the two batches of 0001 that alter
//!   columns do not parse, and the test below asserts that this is their only reason.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, ObjectName, Statement, TableObject, Value, visit_expressions,
    visit_relations, visit_statements,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;
use starsongs::storage::mssql::migrate::{SQL, split_batches};

const STEP_1: &str = "-- Adoption, step 1:";
const STEP_2: &str = "-- Adoption, step 2:";
/// The columns 0001 alters that the original schema already had.
const ALTERED: [(&str, &str); 5] = [
    ("dbo.Artist", "name"),
    ("dbo.Song", "title"),
    ("dbo.Song", "released"),
    ("dbo.Song", "URL"),
    ("dbo.Song", "distance"),
];

/// The batches of 0001's up migration, as the runner sends them.
fn batches() -> Vec<String> {
    split_batches(SQL[0].0)
}

/// `batch` without its comment lines.
fn code(batch: &str) -> String {
    batch
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index of the only batch holding `marker`.
fn batch_with(batches: &[String], marker: &str) -> usize {
    let found: Vec<usize> = (0..batches.len())
        .filter(|&i| batches[i].contains(marker))
        .collect();
    assert_eq!(found.len(), 1, "one batch holds {marker:?}");
    found[0]
}

fn parse(batch: &str) -> Vec<Statement> {
    Parser::parse_sql(&MsSqlDialect {}, batch)
        .unwrap_or_else(|e| panic!("does not parse as T-SQL: {e}\n{batch}"))
}

fn name(object: &ObjectName) -> String {
    object.to_string()
}

/// Every table the statements read or write, as written (`sys.indexes`, `#adopt_index`).
fn relations(statements: &[Statement]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let _ = visit_relations(&statements.to_vec(), |relation| {
        found.insert(name(relation));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `(table, column)` of each `ALTER TABLE t ALTER COLUMN c ...` statement in `batch`.
fn altered_columns(batch: &str) -> Vec<(String, String)> {
    code(batch)
        .lines()
        .filter(|line| line.starts_with("ALTER TABLE ") && line.contains(" ALTER COLUMN "))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[2].to_owned(), words[5].to_owned())
        })
        .collect()
}

/// The temporary tables `statements` create (`CREATE TABLE #...`) and drop.
fn temp_tables(statements: &[Statement]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut created, mut dropped) = (BTreeSet::new(), BTreeSet::new());
    for statement in statements {
        match statement {
            Statement::CreateTable(create) => {
                created.insert(name(&create.name));
            }
            Statement::Drop { names, .. } => dropped.extend(names.iter().map(name)),
            _ => {}
        }
    }
    (created, dropped)
}

#[test]
fn adoption_batches_parse_as_tsql_and_only_alter_column_keeps_others_from_parsing() {
    let batches = batches();
    let adoption = [batch_with(&batches, STEP_1), batch_with(&batches, STEP_2)];

    for (i, batch) in batches.iter().enumerate() {
        match Parser::parse_sql(&MsSqlDialect {}, batch) {
            Ok(statements) => assert!(!statements.is_empty(), "batch {i}"),
            Err(e) => {
                assert!(
                    !adoption.contains(&i),
                    "adoption batch {i} does not parse: {e}\n{batch}"
                );
                assert!(
                    e.to_string().contains("after ALTER COLUMN")
                        && !altered_columns(batch).is_empty(),
                    "batch {i} fails for another reason than T-SQL's ALTER COLUMN: {e}"
                );
            }
        }
    }
}

#[test]
fn step_1_drops_what_covers_the_altered_columns_before_the_first_alter_column() {
    let batches = batches();
    let step_1 = batch_with(&batches, STEP_1);
    let statements = parse(&batches[step_1]);
    let first_alter = (0..batches.len())
        .find(|&i| !altered_columns(&batches[i]).is_empty())
        .unwrap();
    let creates_tables = (0..batches.len())
        .find(|&i| code(&batches[i]).contains("CREATE TABLE dbo.Song"))
        .unwrap();
    let read = relations(&statements);
    // The literals of the INSERT that lists the altered columns.
    let listed: BTreeSet<String> = statements
        .iter()
        .filter(|s| {
            matches!(s, Statement::Insert(insert)
            if matches!(&insert.table, TableObject::TableName(t) if name(t) == "#adopt_column"))
        })
        .flat_map(|insert| {
            let mut literals = Vec::new();
            let _ = visit_expressions(insert, |expr| {
                if let Expr::Value(v) = expr
                    && let Value::NationalStringLiteral(text) = &v.value
                {
                    literals.push(text.clone());
                }
                ControlFlow::<()>::Continue(())
            });
            literals
        })
        .collect();

    assert!(creates_tables < step_1 && step_1 < first_alter);
    let expected: Vec<(String, String)> = ALTERED
        .iter()
        .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(altered_columns(&batches[first_alter]), expected);
    let expected_literals: BTreeSet<String> = ALTERED
        .iter()
        .flat_map(|(t, c)| [(*t).to_owned(), (*c).to_owned()])
        .collect();
    assert_eq!(
        listed, expected_literals,
        "step 1 lists the altered columns"
    );
    for catalog in [
        "sys.columns",
        "sys.indexes",
        "sys.index_columns",
        "sys.stats",
        "sys.stats_columns",
    ] {
        assert!(read.contains(catalog), "step 1 reads {catalog}: {read:?}");
    }
    // Later ALTER COLUMNs touch only columns this migration adds, which nothing indexes yet.
    let text = SQL[0].0;
    for later in &batches[first_alter + 1..] {
        for (_, column) in altered_columns(later) {
            assert!(
                text.contains(&format!("ADD\n    {column} ")),
                "{column} is altered after step 1 but not added by 0001"
            );
        }
    }
}

#[test]
fn step_2_recreates_after_the_new_indexes_and_drops_the_temp_tables_of_step_1() {
    let batches = batches();
    let step_1 = parse(&batches[batch_with(&batches, STEP_1)]);
    let step_2_at = batch_with(&batches, STEP_2);
    let step_2 = parse(&batches[step_2_at]);
    let last_create_index = (0..batches.len())
        .rev()
        .find(|&i| code(&batches[i]).contains("CREATE INDEX "))
        .unwrap();

    assert!(last_create_index < step_2_at);
    let (created, _) = temp_tables(&step_1);
    let (_, dropped) = temp_tables(&step_2);
    assert_eq!(
        created,
        BTreeSet::from(
            [
                "#adopt_column",
                "#adopt_index",
                "#adopt_index_column",
                "#adopt_statistics"
            ]
            .map(str::to_owned)
        )
    );
    assert_eq!(dropped, created, "a pooled connection keeps no temp table");
    let read = relations(&step_2);
    for table in [
        "#adopt_index",
        "#adopt_index_column",
        "sys.indexes",
        "sys.index_columns",
    ] {
        assert!(read.contains(table), "step 2 reads {table}: {read:?}");
    }
}

/// The user schema changes only through `sp_executesql` inside a loop over recorded rows:
/// on an empty database nothing is recorded, so nothing runs.
#[test]
fn adoption_changes_the_schema_only_in_loops_over_what_it_found() {
    let batches = batches();
    for marker in [STEP_1, STEP_2] {
        let statements = parse(&batches[batch_with(&batches, marker)]);
        for statement in &statements {
            let ok = match statement {
                Statement::CreateTable(create) => name(&create.name).starts_with('#'),
                Statement::Insert(insert) => {
                    matches!(&insert.table, TableObject::TableName(t) if name(t).starts_with('#'))
                }
                Statement::Drop { names, .. } => names.iter().all(|n| name(n).starts_with('#')),
                Statement::Declare { .. }
                | Statement::Set(_)
                | Statement::Query(_)
                | Statement::If(_)
                | Statement::While(_) => true,
                _ => false,
            };
            assert!(ok, "{marker} top-level statement: {statement}");
            if let Statement::If(_) = statement {
                let text = statement.to_string();
                assert!(
                    !text.contains("EXEC"),
                    "an IF outside a loop only throws: {text}"
                );
            }
        }
        let mut executes = 0;
        let _ = visit_statements(&statements, |s| {
            if let Statement::Execute { name: Some(n), .. } = s {
                assert_eq!(n.to_string(), "sys.sp_executesql");
                executes += 1;
            }
            ControlFlow::<()>::Continue(())
        });
        assert!(
            executes > 0,
            "{marker} runs its statements with sp_executesql"
        );
    }
}

/// Catalog names go into dynamic SQL only through QUOTENAME: no `... + x.name + ...`.
#[test]
fn dynamic_sql_quotes_every_identifier() {
    let batches = batches();
    let statements = parse(&batches[batch_with(&batches, STEP_1)]);
    // A column called `name` or `*_name`, possibly under COLLATE, CAST or parentheses.
    fn is_bare_name(e: &Expr) -> bool {
        match e {
            Expr::Collate { expr, .. } | Expr::Cast { expr, .. } | Expr::Nested(expr) => {
                is_bare_name(expr)
            }
            Expr::Identifier(ident) => is_name(&ident.value),
            Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| is_name(&p.value)),
            _ => false,
        }
    }
    fn is_name(column: &str) -> bool {
        column.eq_ignore_ascii_case("name") || column.ends_with("_name")
    }
    let mut concatenations = 0;

    let _ = visit_expressions(&statements, |expr| {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus,
            right,
        } = expr
        {
            concatenations += 1;
            assert!(
                !is_bare_name(left) && !is_bare_name(right),
                "unquoted name in: {expr}"
            );
        }
        ControlFlow::<()>::Continue(())
    });

    assert!(concatenations > 10, "{concatenations} concatenations seen");
    let text = code(&batches[batch_with(&batches, STEP_1)]);
    assert!(text.matches("QUOTENAME(").count() >= 8);
}
