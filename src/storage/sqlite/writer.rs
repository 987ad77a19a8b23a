//! Group commit on SQLite: every write of the store runs on one connection, inside a
//! transaction shared by the writes that arrive together, and is answered only after that
//! transaction's `commit` (one fsync at `synchronous=FULL`) has returned. It also keeps
//! the WAL bounded. Reads never come here: they use the pool.
//!
//! How a batch forms: a write takes the lock, opens the batch's transaction if none is
//! open, runs inside its own savepoint (so a failing write is undone alone; a write that
//! is a single statement needs none, see [`Writer::write_statement`]), and releases
//! the lock. It then queues for the lock again, in a spawned task, to commit. The lock is
//! fair, so the writes that were already waiting run first and join the same transaction;
//! the first of them to come back commits for all, and the others find their batch
//! committed. A cancelled request cannot strand a batch: the commit runs in a spawned task,
//! and a write cancelled inside its savepoint poisons the batch, which the next holder of
//! the lock rolls back (every member of that batch is then answered 503, none 2xx).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Result, map_error};
use crate::storage::{StoreError, StoreResult};

/// The future of one write on the writer's connection.
pub(super) type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// Above this WAL size a commit is followed by a `TRUNCATE` checkpoint, which waits for
/// the readers of older snapshots to finish. SQLite's own checkpoint (every 1,000 pages,
/// `PASSIVE`) normally keeps the WAL near 4 MiB; this bounds it when readers never pause.
const WAL_TRUNCATE_BYTES: u64 = 32 * 1024 * 1024;

/// `journal_size_limit`: a WAL that was reset is cut back to this size.
pub(super) const JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// How often the idle checkpointer looks: a WAL left behind by a burst of writes is
/// checkpointed and truncated to zero within about this long after the writes stop.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How many failed batch numbers are remembered for the members still to be answered.
const FAILED_MEMORY: usize = 1024;

/// The single writer of one SQLite database.
pub(super) struct Writer {
    shared: Arc<Shared>,
    idle_checkpointer: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Arc<Mutex<State>>,
    options: SqliteConnectOptions,
    /// `<database>-wal`, or `None` for an in-memory database.
    wal_path: Option<PathBuf>,
    /// The WAL's size in bytes when last looked at (after each commit and checkpoint).
    wal_bytes: AtomicU64,
    /// Counts commits, so the idle checkpointer can tell whether writes came meanwhile.
    commits: AtomicU64,
}

struct State {
    /// `None` after the connection failed; reopened by the next write.
    conn: Option<SqliteConnection>,
    /// The number of the open batch, whose transaction is open on `conn`.
    open_batch: Option<u64>,
    next_batch: u64,
    /// A write was cancelled inside its savepoint: the open batch must be rolled back.
    poisoned: bool,
    /// Batches that were rolled back, newest last, with the reason.
    failed: VecDeque<(u64, String)>,
}

impl Writer {
    /// The writer of the database `options` names. Its connection opens on the first
    /// write, so after the start-up migrations: a connection that read the schema before
    /// migration 0006 failed later inserts (see `SqliteMigrator::retire_idle_connections`).
    ///
    /// # Errors
    /// None today (the connection opens later); kept so that opening can check more.
    pub(super) async fn open(options: SqliteConnectOptions) -> anyhow::Result<Self> {
        let filename = options.get_filename();
        let wal_path = (!filename.as_os_str().is_empty()
            && filename != std::path::Path::new(":memory:"))
        .then(|| {
            let mut path = filename.as_os_str().to_owned();
            path.push("-wal");
            PathBuf::from(path)
        });
        let shared = Arc::new(Shared {
            state: Arc::new(Mutex::new(State {
                conn: None,
                open_batch: None,
                next_batch: 1,
                poisoned: false,
                failed: VecDeque::new(),
            })),
            options,
            wal_path,
            wal_bytes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        });
        shared.sample_wal();
        let idle_checkpointer = tokio::spawn(idle_checkpoints(Arc::downgrade(&shared)));
        Ok(Self {
            shared,
            idle_checkpointer,
        })
    }

    /// Runs `op` with `input` in the current batch and returns its result once the batch
    /// has committed. An `Err` from `op` undoes only `op`'s changes.
    ///
    /// # Errors
    /// `op`'s error; `Unavailable` when the batch could not commit (nothing of it was
    /// written) or the connection failed.
    pub(super) async fn write<I, T>(
        &self,
        input: &I,
        op: impl for<'c> FnOnce(&'c mut SqliteConnection, &'c I) -> WriteFuture<'c, T>,
    ) -> Result<T>
    where
        I: Sync + ?Sized,
        T: Send,
    {
        self.run(Undo::Savepoint, input, op).await
    }

    /// [`Writer::write`] for an `op` that runs exactly one statement: SQLite undoes a
    /// statement that fails (a constraint, a missing artist) by itself, so the savepoint
    /// and its two round trips to the connection's thread are left out. Should `op` fail
    /// after its statement succeeded (a row it cannot decode), the whole batch is rolled
    /// back, since nothing else could undo that statement.
    ///
    /// # Errors
    /// As [`Writer::write`].
    pub(super) async fn write_statement<I, T>(
        &self,
        input: &I,
        op: impl for<'c> FnOnce(&'c mut SqliteConnection, &'c I) -> WriteFuture<'c, T>,
    ) -> Result<T>
    where
        I: Sync + ?Sized,
        T: Send,
    {
        self.run(Undo::Statement, input, op).await
    }

    async fn run<I, T>(
        &self,
        undo: Undo,
        input: &I,
        op: impl for<'c> FnOnce(&'c mut SqliteConnection, &'c I) -> WriteFuture<'c, T>,
    ) -> Result<T>
    where
        I: Sync + ?Sized,
        T: Send,
    {
        let mut section = Section::enter(&self.shared, undo).await?;
        let batch = section.batch;
        let result = op(section.conn(), input).await.map_err(StoreError::from);
        section.leave(&result).await?;
        drop(section);
        let shared = self.shared.clone();
        match tokio::spawn(async move { shared.finish(batch).await }).await {
            Ok(Ok(())) => Ok(result?),
            Ok(Err(error)) => Err(error.into()),
            Err(join) => {
                Err(StoreError::Other(anyhow::anyhow!("the commit task failed: {join}")).into())
            }
        }
    }

    /// The WAL's size in bytes as last sampled; `None` for an in-memory database.
    pub(super) fn wal_size_bytes(&self) -> Option<u64> {
        self.shared
            .wal_path
            .as_ref()
            .map(|_| self.shared.wal_bytes.load(Ordering::Relaxed))
    }

    /// Stops the idle checkpointer, checkpoints the WAL away and closes the connection.
    pub(super) async fn close(&self) {
        self.idle_checkpointer.abort();
        let mut state = self.shared.state.lock().await;
        state.recover().await;
        if state.open_batch.is_some() {
            self.shared.commit(&mut state).await;
        }
        if let Some(mut conn) = state.conn.take() {
            if let Err(error) = sqlx::query("pragma wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await
            {
                tracing::warn!(error = %error, "wal checkpoint on close failed");
            }
            let _ = conn.close().await;
        }
        self.shared.sample_wal();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.idle_checkpointer.abort();
    }
}

/// How a failed write is undone without undoing the rest of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// The write runs inside its own savepoint, rolled back on failure.
    Savepoint,
    /// The write is one statement, which SQLite backs out itself when it fails.
    Statement,
}

/// The lock held while one write runs (inside its savepoint, unless it is one statement).
struct Section {
    guard: Option<OwnedMutexGuard<State>>,
    batch: u64,
    undo: Undo,
    shared: Arc<Shared>,
}

impl Section {
    /// Takes the lock, rolls back a poisoned batch, reopens a failed connection, opens the
    /// batch's transaction if none is open and starts a savepoint for this write (unless
    /// it is one statement).
    async fn enter(shared: &Arc<Shared>, undo: Undo) -> StoreResult<Self> {
        let mut guard = shared.state.clone().lock_owned().await;
        guard.recover().await;
        if guard.conn.is_none() {
            guard.conn = Some(shared.options.connect().await.map_err(map_error)?);
        }
        let batch = match guard.open_batch {
            Some(batch) => batch,
            None => {
                let conn = guard.conn.as_mut().ok_or_else(no_connection)?;
                if let Err(error) = sqlx::query("begin immediate").execute(&mut *conn).await {
                    guard.conn = None;
                    return Err(map_error(error));
                }
                let batch = guard.next_batch;
                guard.next_batch += 1;
                guard.open_batch = Some(batch);
                batch
            }
        };
        let mut section = Self {
            guard: Some(guard),
            batch,
            undo,
            shared: shared.clone(),
        };
        if undo == Undo::Statement {
            return Ok(section);
        }
        let begun = sqlx::query("savepoint write")
            .execute(&mut *section.conn())
            .await;
        if let Err(error) = begun {
            section.abort(&error.to_string()).await;
            return Err(map_error(error));
        }
        Ok(section)
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        #[allow(
            clippy::expect_used,
            reason = "enter() made sure there is a connection"
        )]
        self.guard
            .as_mut()
            .and_then(|guard| guard.conn.as_mut())
            .expect("a section always holds a connection")
    }

    /// Keeps (`release`) or undoes (`rollback to`) this write's savepoint. A storage
    /// failure (I/O, disk full) may have rolled back the whole transaction already, so it
    /// fails the whole batch.
    async fn leave<T>(&mut self, result: &StoreResult<T>) -> StoreResult<()> {
        let sql = match (result, self.undo) {
            (Err(StoreError::Unavailable(error)), _) => {
                let reason = format!("a write in the batch failed: {error}");
                self.abort(&reason).await;
                return Err(StoreError::Unavailable(anyhow::anyhow!(reason)));
            }
            // The statement may have written before the failure: only the batch's
            // rollback can undo it.
            (Err(StoreError::Other(error)), Undo::Statement) => {
                let reason = format!("a write in the batch failed after its statement: {error}");
                self.abort(&reason).await;
                return Err(StoreError::Unavailable(anyhow::anyhow!(reason)));
            }
            (Ok(_) | Err(_), Undo::Statement) => {
                drop(self.guard.take());
                return Ok(());
            }
            (Ok(_), Undo::Savepoint) => "release write",
            (Err(_), Undo::Savepoint) => "rollback to write; release write",
        };
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *self.conn())
            .await;
        if let Err(error) = done {
            let reason = error.to_string();
            self.abort(&reason).await;
            return Err(map_error(error));
        }
        // Done: dropping the section now only unlocks.
        drop(self.guard.take());
        Ok(())
    }

    /// Rolls the whole batch back and remembers it failed.
    async fn abort(&mut self, reason: &str) {
        if let Some(guard) = self.guard.as_mut() {
            guard.fail_batch(reason).await;
        }
        drop(self.guard.take());
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        // Still holding the lock: the write was cancelled inside its savepoint, and its
        // statement may still be running. Poison the batch and let a task roll it back,
        // in case no other write comes to do it.
        if let Some(mut guard) = self.guard.take() {
            guard.poisoned = true;
            drop(guard);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let shared = self.shared.clone();
                runtime.spawn(async move {
                    shared.state.lock().await.recover().await;
                });
            }
        }
    }
}

impl State {
    /// Rolls back a poisoned batch.
    async fn recover(&mut self) {
        if self.poisoned {
            self.poisoned = false;
            self.fail_batch("a write in the batch was cancelled").await;
        }
    }

    /// Rolls back the open batch (if any) and records it as failed. A connection that
    /// cannot even roll back is dropped, and reopened by the next write.
    async fn fail_batch(&mut self, reason: &str) {
        if let Some(conn) = self.conn.as_mut()
            && let Err(error) = sqlx::query("rollback").execute(&mut *conn).await
            // "no transaction is active": SQLite already rolled back (I/O error, full
            // disk). Anything else leaves the connection in doubt.
            && !error.to_string().contains("no transaction")
        {
            self.conn = None;
        }
        if let Some(batch) = self.open_batch.take() {
            tracing::warn!(db.batch = batch, reason, "sqlite write batch rolled back");
            if self.failed.len() == FAILED_MEMORY {
                self.failed.pop_front();
            }
            self.failed.push_back((batch, reason.to_owned()));
        }
    }

    fn outcome(&self, batch: u64) -> StoreResult<()> {
        match self.failed.iter().find(|(failed, _)| *failed == batch) {
            Some((_, reason)) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "the write was not committed: {reason}"
            ))),
            None => Ok(()),
        }
    }
}

impl Shared {
    /// Commits `batch` unless another member already did, then says how it ended.
    async fn finish(&self, batch: u64) -> StoreResult<()> {
        let mut state = self.state.lock().await;
        state.recover().await;
        if state.open_batch == Some(batch) {
            self.commit(&mut state).await;
        }
        state.outcome(batch)
    }

    /// Commits the open batch; on failure rolls it back. Then bounds the WAL.
    async fn commit(&self, state: &mut State) {
        let Some(conn) = state.conn.as_mut() else {
            state.fail_batch("the connection was lost").await;
            return;
        };
        // `commit` runs to completion, so SQLite's automatic checkpoint runs after it
        // (SQLite runs it only when a statement finishes, never from a reset).
        match sqlx::query("commit").execute(&mut *conn).await {
            Ok(_) => {
                state.open_batch = None;
                self.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                state.fail_batch(&format!("commit failed: {error}")).await;
                return;
            }
        }
        if self.sample_wal() > WAL_TRUNCATE_BYTES {
            self.checkpoint(state).await;
        }
    }

    /// Copies the WAL into the database and truncates it, waiting (`busy_timeout`) for
    /// readers of older snapshots. Only between batches.
    async fn checkpoint(&self, state: &mut State) {
        if state.open_batch.is_some() {
            return;
        }
        if let Some(conn) = state.conn.as_mut() {
            match sqlx::query_as::<_, (i64, i64, i64)>("pragma wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await
            {
                Ok((0, _, _)) => {}
                Ok((_, log, done)) => {
                    tracing::debug!(
                        wal.frames = log,
                        wal.checkpointed = done,
                        "wal checkpoint was busy"
                    );
                }
                Err(error) => tracing::warn!(error = %error, "wal checkpoint failed"),
            }
        }
        self.sample_wal();
    }

    /// Reads the WAL's size, stores and returns it.
    fn sample_wal(&self) -> u64 {
        let bytes = self
            .wal_path
            .as_ref()
            .and_then(|path| std::fs::metadata(path).ok())
            .map_or(0, |meta| meta.len());
        self.wal_bytes.store(bytes, Ordering::Relaxed);
        bytes
    }
}

/// Once the writes stop, checkpoints and truncates what they left in the WAL. Ends when
/// the writer is dropped.
async fn idle_checkpoints(shared: std::sync::Weak<Shared>) {
    let mut interval = tokio::time::interval(IDLE_CHECK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = u64::MAX;
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let commits = shared.commits.load(Ordering::Relaxed);
        let is_idle = commits == seen;
        seen = commits;
        if is_idle && shared.sample_wal() > 0 {
            let mut state = shared.state.lock().await;
            state.recover().await;
            shared.checkpoint(&mut state).await;
        }
    }
}

fn no_connection() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the sqlite writer has no connection"))
}

// A truncating checkpoint must start before the file reaches the limit.
const _: () = assert!(WAL_TRUNCATE_BYTES < JOURNAL_SIZE_LIMIT_BYTES);
