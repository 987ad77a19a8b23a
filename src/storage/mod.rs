//! The storage seam: one trait of use cases per resource, `Store` (all of them), the
//! error type, and `connect`, which picks a backend by URL scheme. No transaction, pool or
//! row type crosses these traits.

mod idempotency;
mod keyset;
mod metered;
pub mod migrate;
pub mod mssql;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::config::DatabaseSettings;
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LoginGate, NewApiKey, NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::demo::DemoArtist;
use crate::domain::ids::{ApiKeyId, ArtistId, SongId, UserId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::song::{NewSong, Song, SongChanges};
use crate::domain::song::{SongFilter, SongSortField};
use crate::domain::user::{
    NewUser, User, UserChanges, UserSortField, UserWithPassword, UsernameKey,
};
use crate::domain::validation::ValidationErrors;
use crate::domain::version::ExpectedVersions;
pub use idempotency::{Created, Idempotency, SavedResponse};
use migrate::Migrator;

/// The store as the application holds it.
pub type DynStore = Arc<dyn Store>;

/// Decides an account change from the account as stored, inside the transaction that
/// writes it, so a rule that depends on the row (a new password must not be the username
/// or the email) sees the row the change is written to. It may run more than once when a
/// backend retries the transaction; a refusal ends the call with
/// [`StoreError::Invalid`] and changes nothing.
pub type DecideUserChanges<'a> =
    dyn Fn(&User) -> Result<UserChanges, ValidationErrors> + Send + Sync + 'a;

/// A kind of resource, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// An artist.
    Artist,
    /// A song.
    Song,
    /// An account.
    User,
    /// An API key.
    ApiKey,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Artist => "Artist",
            Self::Song => "Song",
            Self::User => "User",
            Self::ApiKey => "API key",
        })
    }
}

/// Which rule involving other rows a change would break. A backend reports the kind; the
/// HTTP layer words it for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// The artist still has songs (`song.artist_id` is ON DELETE RESTRICT).
    ArtistHasSongs {
        /// The artist.
        artist: ArtistId,
        /// How many songs refer to it.
        songs: i64,
    },
    /// The username or the email is taken (ignoring case); which one is not said.
    UsernameOrEmailTaken,
    /// The email is taken by another account.
    EmailTaken,
    /// The change would leave no active admin.
    LastAdmin,
    /// A backup's destination file exists already.
    BackupDestinationExists,
}

/// Operators' wording (command line, logs); clients get the HTTP layer's.
impl std::fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ArtistHasSongs { artist, songs } => {
                write!(f, "artist {artist} still has {songs} song(s)")
            }
            Self::UsernameOrEmailTaken => {
                f.write_str("the username or email is already registered")
            }
            Self::EmailTaken => f.write_str("the email is already registered"),
            Self::LastAdmin => f.write_str("the change would leave no active admin"),
            Self::BackupDestinationExists => {
                f.write_str("the destination already exists; choose a new file")
            }
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (or a resource it refers to) does not exist.
    #[error("{entity} with id {id} not found")]
    NotFound {
        /// What was looked for.
        entity: Entity,
        /// Its id.
        id: i64,
    },
    /// The change, decided against the stored row ([`DecideUserChanges`]), breaks a field
    /// rule; nothing changed. Carries every problem found.
    #[error("invalid change: {0}")]
    Invalid(ValidationErrors),
    /// The change would break a rule that involves other rows; nothing changed.
    #[error("{0}")]
    Conflict(ConflictKind),
    /// This backend cannot do the operation (a SQLite-only one on a server database).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// The backend that was asked.
        backend: &'static str,
    },
    /// The idempotency key was used before with a different request; nothing changed.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// `If-Match` did not match the current version; nothing changed.
    #[error("the resource has changed since the given entity tag")]
    PreconditionFailed,
    /// The database cannot be reached or is too busy to answer in time.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or an unexpected driver error.
    #[error("unexpected storage error")]
    Other(#[source] anyhow::Error),
}

/// Runs `decide` on the stored account (for [`AccountStore::update_user`]) and pairs the
/// change with the hash to store: the given one when the change sets a password, which
/// must then be given, and none otherwise.
fn decide_user_changes<'h>(
    decide: &DecideUserChanges<'_>,
    current: &User,
    password_hash: Option<&'h str>,
) -> StoreResult<(UserChanges, Option<&'h str>)> {
    let changes = decide(current).map_err(StoreError::Invalid)?;
    match (&changes.password, password_hash) {
        (Some(_), None) => Err(StoreError::Other(anyhow::anyhow!(
            "a new password came without its hash"
        ))),
        (Some(_), hash) => Ok((changes, hash)),
        (None, _) => Ok((changes, None)),
    }
}

/// Connection pool figures, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Artists. Each method is one use case, run in one transaction inside the backend (as
/// in every resource trait below).
#[async_trait]
pub trait ArtistStore: Send + Sync + 'static {
    /// Lists artists by filter, order and position.
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>>;
    /// Reads one artist.
    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist>;
    /// Creates an artist.
    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist>;
    /// Creates an artist at most once per idempotency key: a repeat with the same request
    /// replays the saved response; with another request it is
    /// [`StoreError::IdempotencyKeyReused`]. Concurrent repeats create one artist.
    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>>;
    /// Replaces an artist's fields; never creates. With `expected`, only a row at one of
    /// those versions is replaced ([`StoreError::PreconditionFailed`] otherwise).
    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist>;
    /// Applies a merge patch to an artist.
    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist>;
    /// Deletes an artist; with `cascade`, its songs too, in the same transaction. Without
    /// it, an artist that still has songs is a [`StoreError::Conflict`].
    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()>;
}

/// Songs.
#[async_trait]
pub trait SongStore: Send + Sync + 'static {
    /// Lists songs by filter, order and position (optionally with each song's artist).
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>>;
    /// Reads one song.
    async fn get_song(&self, id: SongId) -> StoreResult<Song>;
    /// Creates a song; a missing artist is [`StoreError::NotFound`] for that artist.
    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song>;
    /// Creates a song at most once per idempotency key (as [`ArtistStore::insert_artist_once`]).
    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>>;
    /// Replaces a song's fields; never creates.
    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song>;
    /// Applies a merge patch to a song.
    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song>;
    /// Deletes a song.
    async fn delete_song(&self, id: SongId, expected: Option<&ExpectedVersions>)
    -> StoreResult<()>;
}

/// Accounts.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account with an already hashed password. A username or email that is
    /// taken (ignoring case) is a [`StoreError::Conflict`].
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User>;
    /// The account with this username (ignoring case) and its password hash, if any.
    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<UserWithPassword>>;
    /// One account by id.
    async fn get_user(&self, id: UserId) -> StoreResult<User>;
    /// Lists accounts.
    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>>;
    /// Changes an account in one transaction: reads it (locked for the change; an unknown
    /// id is [`StoreError::NotFound`]), asks `decide` for the change (a refusal is
    /// [`StoreError::Invalid`]), then writes it. A change with a new password stores
    /// `password_hash`, which must then be given (hashed before the transaction, which
    /// never waits for the hasher). A taken email, or a change that would leave no active
    /// admin, is a [`StoreError::Conflict`]. When [`UserChanges::revokes_sessions`], every
    /// refresh token of the account is revoked in the same transaction.
    async fn update_user(
        &self,
        id: UserId,
        decide: &DecideUserChanges<'_>,
        password_hash: Option<&str>,
    ) -> StoreResult<User>;
    /// Deletes an account and its refresh tokens; the last active admin cannot be deleted
    /// ([`StoreError::Conflict`]).
    async fn delete_user(&self, id: UserId) -> StoreResult<()>;
    /// Whether any active admin exists.
    async fn has_active_admin(&self) -> StoreResult<bool>;
}

/// What proves who a client is: refresh tokens (logins), failed-login counters and API
/// keys.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Stores a new refresh token (the first of a family, at login).
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Exchanges the refresh token whose digest is `presented` for a new one in the same
    /// family (see [`Rotation`]). A spent token revokes its whole family. A login whose
    /// password sign-in is `session_max` or more in the past is [`Rotation::Rejected`],
    /// and the new token never outlives that bound (its expiry is the earlier of
    /// `next_expires_at` and the login's end).
    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation>;
    /// Revokes the family of the refresh token whose digest is `presented`; the family's
    /// id, or `None` when no such token exists.
    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>>;
    /// Whether the login (refresh family) `family_id` still goes on: some token of it is
    /// not revoked. Logout, reuse of a spent token, a password change and deactivation
    /// revoke; deleting the account deletes.
    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool>;
    /// Deletes expired and long-revoked refresh tokens and stale failed-login counters.
    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64>;

    /// Claims one login attempt for `username_key` at `at`, atomically, before the
    /// password is checked: unless the name is locked, the attempt is counted as a
    /// failure at once ([`LoginGate::Open`]; a successful login then clears the count).
    /// While 5 failures within the window lock it, nothing is counted and the answer is
    /// [`LoginGate::LockedUntil`]. Concurrent requests and replicas share the count, so
    /// of any burst at most 5 attempts are checked per window.
    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate>;
    /// Forgets the failed logins of `username_key` (after a successful login).
    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()>;

    /// Stores an API key by the digest of its secret.
    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey>;
    /// Lists API keys (never their secrets).
    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>>;
    /// The API key whose secret has digest `key_hash`.
    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>>;
    /// Revokes (deletes) an API key.
    async fn delete_api_key(&self, id: ApiKeyId) -> StoreResult<()>;
}

/// The database as a whole: housekeeping, demo data, backup, health and lifecycle.
#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// Forgets idempotency keys created before `created_before`; returns how many.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64>;
    /// Inserts `catalog` (the demo data, [`crate::domain::demo::catalog`]) once per
    /// database: a marker row commits with the rows, so even after the demo rows are
    /// deleted, or when two processes start together, it is never inserted again. Returns
    /// whether anything was inserted.
    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool>;
    /// Writes a consistent copy of the live database to `destination`, a new file. Only
    /// the embedded backend can ([`StoreError::Unsupported`] elsewhere); server databases
    /// use their native tools (docs/operations/backup-restore.md).
    ///
    /// The path is bound as a parameter, never spliced into SQL.
    async fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()>;
    /// One cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// Schema management for this database.
    fn migrator(&self) -> &dyn Migrator;
    /// Current pool figures.
    fn pool_stats(&self) -> PoolStats;

    /// The size of the write-ahead log in bytes, for backends that keep one in a file the
    /// service owns (SQLite); `None` elsewhere.
    fn wal_size_bytes(&self) -> Option<u64> {
        None
    }
    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Every resource trait: what the application holds as [`DynStore`].
pub trait Store:
    ArtistStore + SongStore + AccountStore + CredentialStore + MaintenanceStore
{
}

impl<T> Store for T where
    T: ArtistStore + SongStore + AccountStore + CredentialStore + MaintenanceStore
{
}

/// The page out of `items` fetched with one row more than `page_size`: the extra row only
/// tells that another page follows. Shared by the backends.
pub(crate) fn into_page<T>(mut items: Vec<T>, total: i64, page_size: u32) -> Page<T> {
    let has_next = items.len() > page_size as usize;
    items.truncate(page_size as usize);
    Page {
        items,
        total_items: u64::try_from(total).unwrap_or_default(),
        has_next,
    }
}

/// Fails with [`StoreError::PreconditionFailed`] unless `expected` is absent or admits
/// `version` (for a backend that has read the row under a lock).
pub(crate) fn check_expected(expected: Option<&ExpectedVersions>, version: i64) -> StoreResult<()> {
    match expected {
        Some(expected) if !expected.admits(version) => Err(StoreError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// How often a server backend runs a transaction that lost a race (serialization failure,
/// deadlock) before the client gets 503.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Runs the transaction `attempt` until it succeeds, fails in a way `is_retryable` does
/// not accept, or has lost [`MAX_ATTEMPTS`] races. Each attempt is a whole transaction,
/// so nothing of a lost one remains.
pub(crate) async fn retry<T, F, Fut>(
    is_retryable: impl Fn(&StoreError) -> bool,
    mut attempt: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < MAX_ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(db.attempt = tries, "transaction lost a race; retrying");
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Opens the store named by `settings.url`'s scheme (`sqlite:`, `postgres://` or
/// `postgresql://`, `mssql://` or an ADO.NET connection string). Does not migrate.
///
/// # Errors
/// An unknown scheme, a malformed URL or a database that cannot be opened.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DynStore> {
    let url: &SecretString = settings
        .url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("database.url is not set"))?;
    let backend = Backend::of(url.expose_secret())?;
    Ok(match backend {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(settings).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::connect(settings).await?),
        Backend::Mssql => Arc::new(mssql::MssqlStore::connect(settings).await?),
    })
}

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file (`sqlite:`).
    Sqlite,
    /// A PostgreSQL server (`postgres://`, `postgresql://`).
    Postgres,
    /// SQL Server or Azure SQL (`mssql://`, or an ADO.NET connection string).
    Mssql,
}

/// The schemes `connect` accepts, for error messages.
const SUPPORTED: &str = "sqlite:, postgres://, postgresql://, mssql:// or an ADO.NET string";

impl Backend {
    /// The backend of `url`, by its scheme.
    ///
    /// # Errors
    /// An unsupported scheme (named only when it looks like one: the rest of the URL may
    /// hold a password, and a value without a scheme may be a misplaced secret).
    pub fn of(url: &str) -> anyhow::Result<Self> {
        let lower = url.get(..16).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            return Ok(Self::Sqlite);
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Self::Postgres);
        }
        if lower.starts_with("mssql://") {
            return Ok(Self::Mssql);
        }
        // An ADO.NET connection string: `key=value;` pairs naming a server.
        let ado = url.to_ascii_lowercase();
        if !url.contains("://")
            && url.contains('=')
            && ["server=", "data source=", "address=", "addr="]
                .iter()
                .any(|key| {
                    ado.starts_with(key)
                        || ado.contains(&format!(";{key}"))
                        || ado.contains(&format!("; {key}"))
                })
        {
            return Ok(Self::Mssql);
        }
        match url.split_once("://") {
            Some((scheme, _))
                if scheme.len() <= 16
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                anyhow::bail!(
                    "database.url has an unsupported scheme `{scheme}` (supported: {SUPPORTED})"
                )
            }
            _ => anyhow::bail!(
                "database.url is not a URL with a supported scheme (supported: {SUPPORTED})"
            ),
        }
    }

    /// The backend's name in messages (`sqlite`, `postgres`, `mssql`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mssql => "mssql",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_chosen_by_scheme_and_secrets_are_not_echoed() {
        assert_eq!(
            Backend::of("sqlite://x.db?mode=rwc").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(Backend::of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of("postgres://u:p@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of("PostgreSQL://u:p@h/db").unwrap(),
            Backend::Postgres
        );

        assert_eq!(
            Backend::of("mssql://u:p@h:1433/db").unwrap(),
            Backend::Mssql
        );
        assert_eq!(
            Backend::of("Server=tcp:h.database.windows.net,1433;Database=db;User Id=u;Password=p")
                .unwrap(),
            Backend::Mssql
        );

        let unknown = Backend::of("mysql://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("`mysql`") && !unknown.contains("hunter2"),
            "{unknown}"
        );
        let bare = Backend::of("hunter2").unwrap_err().to_string();
        assert!(!bare.contains("hunter2"), "{bare}");
    }
}
