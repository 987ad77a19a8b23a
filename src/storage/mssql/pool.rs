//! The SQL Server connection pool: bb8 with a manager of our own for tiberius 0.13.
//!
//! bb8-tiberius and deadpool-tiberius both pin tiberius 0.12 (a second major version of
//! the driver, with native-tls by default); the manager is the three methods bb8 asks
//! for. bb8 checks each connection on checkout (`is_valid`, a `SELECT 1`), replaces it
//! after `database.max_lifetime_secs`, closes idle ones after `database.idle_timeout_secs`,
//! and gives up on a checkout after `database.acquire_timeout_secs`.

use tiberius::{Client, Config};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// A tiberius client on a tokio TCP stream.
pub(crate) type TdsClient = Client<Compat<TcpStream>>;

/// A pooled connection: the client, and whether a statement on it was abandoned half-way
/// (a timed-out future was dropped), in which case the pool must not hand it out again.
pub(crate) struct Conn {
    pub(crate) client: TdsClient,
    busy: bool,
}

impl Conn {
    /// Marks the connection busy for the statement about to run.
    pub(crate) fn start(&mut self) {
        self.busy = true;
    }

    /// Marks the statement as read to its end.
    pub(crate) fn finish(&mut self) {
        self.busy = false;
    }
}

/// The session options every connection sets before its first statement, whatever the
/// server's `user options` or the database's defaults say:
/// - `NOCOUNT OFF`: the idempotency claim and the demo-data marker read the row counts
///   of DONE tokens; a server configured with NOCOUNT would report none.
/// - `ANSI_NULLS`, `ANSI_PADDING`, `ANSI_WARNINGS`, `ARITHABORT`, `CONCAT_NULL_YIELDS_NULL`,
///   `QUOTED_IDENTIFIER` ON and `NUMERIC_ROUNDABORT` OFF: the options SQL Server requires
///   for any write to a table with an index on a computed column (`dbo.Song`), or it
///   refuses the write (Msg 1934).
/// - `XACT_ABORT ON`: any statement error rolls the whole transaction back, so a
///   connection never goes back to the pool inside a broken transaction.
/// - `IMPLICIT_TRANSACTIONS OFF`, `TRANSACTION ISOLATION LEVEL READ COMMITTED`: each
///   statement commits on its own unless the code began a transaction, at the isolation
///   level the SQL was written for (row versioned when the database has
///   `READ_COMMITTED_SNAPSHOT` on, as docs/operations/mssql.md asks).
/// - `DATEFORMAT ymd`, `LANGUAGE us_english`: no statement depends on them (dates are
///   bound, not parsed), but messages and any cast stay the same on every server.
pub(crate) const SESSION_OPTIONS: &str = "SET NOCOUNT OFF; SET ANSI_NULLS ON; \
     SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; \
     SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF; \
     SET XACT_ABORT ON; SET IMPLICIT_TRANSACTIONS OFF; \
     SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET DATEFORMAT ymd; \
     SET LANGUAGE us_english;";

/// Opens connections from one tiberius [`Config`].
pub(crate) struct Manager {
    config: Config,
    /// Sent on every new connection: [`SESSION_OPTIONS`] and `SET LOCK_TIMEOUT`.
    session_setup: String,
}

impl Manager {
    pub(crate) fn new(config: Config, lock_timeout_ms: u64) -> Self {
        Self {
            config,
            session_setup: session_setup(lock_timeout_ms),
        }
    }

    async fn open(config: Config) -> tiberius::Result<TdsClient> {
        let stream = TcpStream::connect(config.get_addr()).await?;
        stream.set_nodelay(true)?;
        Client::connect(config, stream.compat_write()).await
    }
}

/// The batch a new connection runs: [`SESSION_OPTIONS`], then the lock timeout. A lock
/// wait longer than the statement bound fails with 1222 (a 503) instead of holding the
/// request; 0 (no bound) waits as long as it takes.
pub(crate) fn session_setup(lock_timeout_ms: u64) -> String {
    let lock_timeout = if lock_timeout_ms == 0 {
        "-1".to_owned()
    } else {
        lock_timeout_ms.to_string()
    };
    format!("{SESSION_OPTIONS} SET LOCK_TIMEOUT {lock_timeout};")
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = tiberius::error::Error;

    async fn connect(&self) -> Result<Conn, Self::Error> {
        let mut client = match Self::open(self.config.clone()).await {
            // Azure SQL's gateway may redirect to the node that holds the database.
            Err(tiberius::error::Error::Routing { host, port }) => {
                let mut config = self.config.clone();
                config.host(host);
                config.port(port);
                Self::open(config).await?
            }
            other => other?,
        };
        client
            .simple_query(self.session_setup.as_str())
            .await?
            .into_results()
            .await?;
        Ok(Conn {
            client,
            busy: false,
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_row()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.busy
    }
}
