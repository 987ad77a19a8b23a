//! Statements with bound `@Pn` parameters, run on a pooled connection, and the
//! transaction helpers. Every statement of the backend goes through [`Sql`], so a
//! statement abandoned half-way (a timed-out request) marks its connection broken, while
//! one the server refused (a duplicate, a missing artist, a lock timeout) leaves it in
//! the pool: tiberius reads such a response to its end before it returns the error.

use std::fmt::Write as _;

use tiberius::{FromSql, Row, ToSql};

use super::pool::Conn;
use super::{ApplockRefusal, DbError, Result, other};
/// Starts a transaction (READ COMMITTED, the server default).
const BEGIN: &str = "BEGIN TRANSACTION";
/// Commits it.
const COMMIT: &str = "COMMIT TRANSACTION";
/// Rolls back whatever is open (nothing, after `XACT_ABORT` rolled it back already).
const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

/// A value to bind.
type Param = Box<dyn ToSql>;

/// A T-SQL statement and its parameters, bound as `@P1`, `@P2`, ... in order.
pub(super) struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    /// A statement with no parameters yet.
    pub(super) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// A fixed statement (a constant using `@P1..@Pn` in order) with its parameters.
    pub(super) fn with(text: &'static str, params: Vec<Param>) -> Self {
        Self {
            text: text.to_owned(),
            params,
        }
    }

    /// Appends SQL text (fixed strings only, never input).
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next parameter's placeholder and binds `value` to it.
    pub(super) fn bind(&mut self, value: impl ToSql + 'static) -> &mut Self {
        self.params.push(Box::new(value));
        let _ = write!(self.text, "@P{}", self.params.len());
        self
    }

    /// The statement text, for tests and logs (never values).
    #[cfg(test)]
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// How many parameters the statement binds, for tests.
    #[cfg(test)]
    pub(super) fn param_count(&self) -> usize {
        self.params.len()
    }

    fn args(&self) -> Vec<&dyn ToSql> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &dyn ToSql)
            .collect()
    }

    /// Runs the statement; returns the rows of its first result set.
    pub(super) async fn rows(&self, conn: &mut Conn) -> Result<Vec<Row>> {
        Ok(self.rows_raw(conn).await?)
    }

    /// Runs the statement; returns its first row, if any.
    pub(super) async fn row(&self, conn: &mut Conn) -> Result<Option<Row>> {
        Ok(self.rows(conn).await?.into_iter().next())
    }

    /// Runs the statement; returns the rows it affected.
    pub(super) async fn execute(&self, conn: &mut Conn) -> Result<u64> {
        Ok(self.execute_raw(conn).await?)
    }

    /// As [`Sql::execute`], keeping the driver error so the caller can read its number.
    pub(super) async fn execute_raw(&self, conn: &mut Conn) -> Result<u64, DbError> {
        tracing::debug!(db.statement = self.text.as_str(), "sql");
        conn.start();
        let args = self.args();
        let done = conn.client.execute(self.text.as_str(), &args).await;
        Ok(settle(conn, done)?.total())
    }

    /// As [`Sql::rows`], keeping the driver error so the caller can read its number.
    pub(super) async fn rows_raw(&self, conn: &mut Conn) -> Result<Vec<Row>, DbError> {
        tracing::debug!(db.statement = self.text.as_str(), "sql");
        conn.start();
        let args = self.args();
        let rows = async {
            conn.client
                .query(self.text.as_str(), &args)
                .await?
                .into_first_result()
                .await
        }
        .await;
        Ok(settle(conn, rows)?)
    }
}

/// Ends the statement `conn` started: the connection is reusable after a result or a
/// server error (see [`leaves_connection_clean`]); after anything else it stays marked
/// busy, and the pool drops it.
pub(super) fn settle<T>(conn: &mut Conn, result: tiberius::Result<T>) -> tiberius::Result<T> {
    match &result {
        Err(error) if !leaves_connection_clean(error) => {}
        _ => conn.finish(),
    }
    result
}

/// Whether the connection is in a known state after `error`. A server error (constraint,
/// deadlock victim, lock timeout, a refused statement) arrives as an ERROR token inside a
/// response tiberius reads to its final DONE before it returns the error; an I/O, TLS or
/// protocol error, or anything else, leaves the stream in doubt.
pub(super) fn leaves_connection_clean(error: &tiberius::error::Error) -> bool {
    matches!(error, tiberius::error::Error::Server(_))
}

async fn batch(conn: &mut Conn, text: &str) -> Result<(), DbError> {
    conn.start();
    let done = async { conn.client.simple_query(text).await?.into_results().await }.await;
    settle(conn, done)?;
    Ok(())
}

/// Runs `lock`, a batch that ends `SELECT` of `sp_getapplock`'s return code, and fails
/// unless the lock was granted: `sp_getapplock` reports a timeout (-1), a cancellation
/// (-2) or a deadlock (-3) as a return code, not as an error.
pub(super) async fn applock(conn: &mut Conn, lock: &Sql) -> Result<()> {
    let code = lock
        .row(conn)
        .await?
        .and_then(|row| row.try_get::<i32, _>(0).ok().flatten())
        .unwrap_or(-999);
    Ok(ApplockRefusal::check(code).map_err(DbError::Applock)?)
}

/// Starts a transaction on `conn`.
pub(super) async fn begin(conn: &mut Conn) -> Result<()> {
    Ok(batch(conn, BEGIN).await?)
}

/// Commits on `Ok`, rolls back on `Err`, and passes `result` on.
pub(super) async fn finish<T>(conn: &mut Conn, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            batch(conn, COMMIT).await?;
            Ok(value)
        }
        Err(error) => {
            // A failed rollback leaves the connection in doubt: mark it broken.
            if batch(conn, ROLLBACK).await.is_err() {
                conn.start();
            }
            Err(error)
        }
    }
}

// ---- reading rows: each shape's mapping function (`artist`, `song`, ...) uses these ----

/// Column `name` of `row`, NULL as `None`.
pub(super) fn column<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<Option<T>> {
    Ok(row.try_get(name)?)
}

/// Column `name` of a `shape` row, which the schema makes NOT NULL.
pub(super) fn required<'a, T: FromSql<'a>>(row: &'a Row, name: &str, shape: &str) -> Result<T> {
    column(row, name)?.ok_or_else(|| other(format!("{shape} row without {name}")))
}

/// Text column `name` of `row`, NULL as the empty string.
pub(super) fn text(row: &Row, name: &str) -> Result<String> {
    Ok(column::<&str>(row, name)?.unwrap_or_default().to_owned())
}

/// Text column `name` of `row`, NULL as `None`.
pub(super) fn optional_text(row: &Row, name: &str) -> Result<Option<String>> {
    Ok(column::<&str>(row, name)?.map(str::to_owned))
}

/// The first row a statement returned (`OUTPUT INSERTED...`), mapped by `shape`.
pub(super) fn first<T>(rows: &[Row], shape: impl Fn(&Row) -> Result<T>) -> Result<T> {
    rows.first()
        .map(shape)
        .unwrap_or_else(|| Err(other("the statement returned no row")))
}

/// Every fixed statement of the backend, and the statements the builders make for every
/// sort, filter and position shape, for the parse test.
#[cfg(test)]
pub(super) fn all_statements() -> Vec<String> {
    let mut all: Vec<String> = [BEGIN, COMMIT, ROLLBACK, super::READS_ROW_VERSIONS]
        .iter()
        .chain(super::artists::STATEMENTS)
        .chain(super::songs::STATEMENTS)
        .chain(super::users::STATEMENTS)
        .chain(super::credentials::STATEMENTS)
        .chain(super::idempotency::STATEMENTS)
        .chain(super::maintenance::STATEMENTS)
        .chain(super::migrate::STATEMENTS)
        .map(|s| (*s).to_owned())
        .collect();
    all.extend(super::list::sample_statements());
    all
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::{Expr, Value, Visit, Visitor};
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    /// Fails on any literal in a statement except the small fixed ones the SQL itself
    /// needs (0, 1, `N'...'` names of locks and markers): values are always parameters.
    struct Literals(Vec<String>);

    impl Visitor for Literals {
        type Break = ();

        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Value(value) = expr {
                match &value.value {
                    Value::Number(n, _) if n == "0" || n == "1" => {}
                    Value::Null | Value::Boolean(_) | Value::Placeholder(_) => {}
                    other => self.0.push(other.to_string()),
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }

    /// Literals a statement may contain: fixed words of the schema, never input.
    const ALLOWED_LITERALS: &[&str] = &[
        "N'demo_data_seeded_at'",
        "N'starsongs_admins'",
        "N'starsongs_migrations'",
        "N'Exclusive'",
        "N'Transaction'",
        "N'Session'",
        "N'public'",
        "'admin'",
        "'\\'",
        "N'U'",
        "N'dbo._sqlx_migrations'",
        "N','",
    ];

    /// The literal values in `text` beyond the allowed fixed words; panics when it does
    /// not parse as T-SQL.
    fn spliced_literals(text: &str) -> Vec<String> {
        // sqlparser reads only a literal after FETCH NEXT, where T-SQL takes a parameter:
        // check the parameter is there, then parse with a stand-in.
        let parsable = match text.split_once(" FETCH NEXT @P") {
            Some((head, tail)) => {
                let (digits, rest) = tail.split_at(tail.find(' ').unwrap_or(tail.len()));
                assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{text}");
                format!("{head} FETCH NEXT 1{rest}")
            }
            None => text.to_owned(),
        };
        // Nor does it read `EXEC @status = procedure ...` (the return code of
        // sp_getapplock): parse the call without the assignment.
        let parsable = parsable.replace("EXEC @granted = ", "EXEC ");
        let parsed = Parser::parse_sql(&MsSqlDialect {}, &parsable)
            .unwrap_or_else(|e| panic!("does not parse as T-SQL: {e}\n{text}"));
        let mut literals = Literals(Vec::new());
        let _ = parsed.visit(&mut literals);
        literals
            .0
            .into_iter()
            .filter(|l| !ALLOWED_LITERALS.contains(&l.as_str()))
            .collect()
    }

    #[test]
    fn every_statement_parses_as_tsql_and_binds_its_values() {
        let statements = all_statements();

        assert!(statements.len() > 60, "{} statements", statements.len());
        for text in &statements {
            let spliced = spliced_literals(text);
            assert!(spliced.is_empty(), "literal values {spliced:?} in:\n{text}");
        }
    }

    #[test]
    fn the_check_finds_spliced_values() {
        assert_eq!(
            spliced_literals("SELECT id FROM dbo.Artist WHERE name = N'Queen' AND id > 5"),
            ["N'Queen'", "5"]
        );
        assert!(spliced_literals("SELECT id FROM dbo.Artist WHERE id = @P1").is_empty());
    }

    #[test]
    fn every_connection_pins_the_options_its_statements_depend_on() {
        let setup = super::super::pool::session_setup(5000);
        Parser::parse_sql(&MsSqlDialect {}, &setup)
            .unwrap_or_else(|e| panic!("does not parse as T-SQL: {e}\n{setup}"));

        for option in [
            "SET NOCOUNT OFF;",
            "SET ANSI_NULLS ON;",
            "SET ANSI_PADDING ON;",
            "SET ANSI_WARNINGS ON;",
            "SET ARITHABORT ON;",
            "SET CONCAT_NULL_YIELDS_NULL ON;",
            "SET QUOTED_IDENTIFIER ON;",
            "SET NUMERIC_ROUNDABORT OFF;",
            "SET XACT_ABORT ON;",
            "SET IMPLICIT_TRANSACTIONS OFF;",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;",
            "SET LOCK_TIMEOUT 5000;",
        ] {
            assert!(setup.contains(option), "{option} missing from {setup}");
        }
        assert!(super::super::pool::session_setup(0).ends_with("SET LOCK_TIMEOUT -1;"));
    }

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut sql = Sql::new("SELECT id FROM dbo.Artist WHERE id = ");
        sql.bind(7_i64).push(" AND name = ").bind("x".to_owned());

        assert_eq!(
            sql.text(),
            "SELECT id FROM dbo.Artist WHERE id = @P1 AND name = @P2"
        );
        assert_eq!(sql.args().len(), 2);
    }
}
