//! The storage seam: one `Store` trait of use cases, its error type, and `connect`, which
//! picks a backend by URL scheme. No transaction, pool or row type crosses this trait.

pub mod metered;
pub mod migrate;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::config::DatabaseSettings;
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LoginGate, NewApiKey, NewRefreshToken, Rotation,
};
use crate::domain::etag::Precondition;
use crate::domain::idempotency::{Created, Idempotency};
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{
    ArtistFilter, ArtistSortField, ListQuery, Page, SongFilter, SongSortField,
};
use crate::domain::song::{NewSong, Song, SongChanges};
use crate::domain::user::{NewUser, User, UserChanges, UserSortField};
use migrate::Migrator;

/// The store as the application holds it.
pub type DynStore = Arc<dyn Store>;

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
    /// The change would break a rule that involves other rows.
    #[error("{0}")]
    Conflict(String),
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

/// The catalog's use cases. Each method runs in one transaction inside the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
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
    /// Replaces an artist's fields; never creates.
    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        if_match: Option<&Precondition>,
    ) -> StoreResult<Artist>;
    /// Applies a merge patch to an artist.
    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        if_match: Option<&Precondition>,
    ) -> StoreResult<Artist>;
    /// Deletes an artist; with `cascade`, its songs too, in the same transaction. Without
    /// it, an artist that still has songs is a [`StoreError::Conflict`].
    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        if_match: Option<&Precondition>,
    ) -> StoreResult<()>;

    /// Lists songs by filter, order and position (optionally with each song's artist).
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>>;
    /// Reads one song.
    async fn get_song(&self, id: SongId) -> StoreResult<Song>;
    /// Creates a song; a missing artist is [`StoreError::NotFound`] for that artist.
    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song>;
    /// Creates a song at most once per idempotency key (as [`Store::insert_artist_once`]).
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
        if_match: Option<&Precondition>,
    ) -> StoreResult<Song>;
    /// Applies a merge patch to a song.
    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        if_match: Option<&Precondition>,
    ) -> StoreResult<Song>;
    /// Deletes a song.
    async fn delete_song(&self, id: SongId, if_match: Option<&Precondition>) -> StoreResult<()>;

    /// Creates an account with an already hashed password. A username or email that is
    /// taken (ignoring case) is a [`StoreError::Conflict`].
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User>;
    /// The account with this username (ignoring case) and its password hash, if any.
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>>;
    /// One account by id.
    async fn get_user(&self, id: i64) -> StoreResult<User>;
    /// Lists accounts.
    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>>;
    /// Changes an account (`password_hash` replaces the password when given). A taken
    /// email, or a change that would leave no active admin, is a [`StoreError::Conflict`].
    /// When [`UserChanges::revokes_sessions`], every refresh token of the account is
    /// revoked in the same transaction.
    async fn update_user(
        &self,
        id: i64,
        changes: &UserChanges,
        password_hash: Option<&str>,
    ) -> StoreResult<User>;
    /// Deletes an account and its refresh tokens; the last active admin cannot be deleted
    /// ([`StoreError::Conflict`]).
    async fn delete_user(&self, id: i64) -> StoreResult<()>;
    /// Whether any active admin exists.
    async fn has_active_admin(&self) -> StoreResult<bool>;

    /// Stores a new refresh token (the first of a family, at login).
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Exchanges the refresh token whose digest is `presented` for a new one in the same
    /// family (see [`Rotation`]). A spent token revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
    ) -> StoreResult<Rotation>;
    /// Revokes the family of the refresh token whose digest is `presented`; false when
    /// no such token exists.
    async fn revoke_refresh_family(&self, presented: &str) -> StoreResult<bool>;
    /// Deletes expired and long-revoked refresh tokens and stale failed-login counters.
    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64>;

    /// Whether logins for `username_key` (case-folded) are locked at `at`.
    async fn login_gate(&self, username_key: &str, at: DateTime<Utc>) -> StoreResult<LoginGate>;
    /// Counts a failed login for `username_key` and returns the gate after it.
    async fn record_login_failure(
        &self,
        username_key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate>;
    /// Forgets the failed logins of `username_key` (after a successful login).
    async fn clear_login_failures(&self, username_key: &str) -> StoreResult<()>;

    /// Stores an API key by the digest of its secret.
    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &str,
        prefix: &str,
    ) -> StoreResult<ApiKey>;
    /// Lists API keys (never their secrets).
    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>>;
    /// The API key whose secret has digest `key_hash`.
    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Revokes (deletes) an API key.
    async fn delete_api_key(&self, id: i64) -> StoreResult<()>;

    /// Forgets idempotency keys created before `created_before`; returns how many.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64>;
    /// Inserts the original catalog's demo data, once per database, idempotently.
    /// Returns whether anything was inserted.
    async fn seed_demo_data(&self) -> StoreResult<bool>;
    /// Writes a consistent copy of the live database to `destination`, a new file. Only
    /// the embedded backend can; server databases use their native tools (OPERATIONS.md).
    ///
    /// The path is bound as a parameter, never spliced into SQL.
    async fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()>;
    /// One cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// Schema management for this database.
    fn migrator(&self) -> &dyn Migrator;
    /// Current pool figures.
    fn pool_stats(&self) -> PoolStats;
    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Opens the store named by `settings.url`'s scheme. Does not migrate.
///
/// # Errors
/// An unknown scheme, a malformed URL or a database that cannot be opened.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DynStore> {
    let url: &SecretString = settings
        .url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("database.url is not set"))?;
    let raw = url.expose_secret();
    if raw.starts_with("sqlite:") {
        let store: DynStore = Arc::new(sqlite::SqliteStore::connect(settings).await?);
        return Ok(Arc::new(metered::MeteredStore::new(store)));
    }
    // Name the scheme only when it looks like one: the rest of the URL may hold a password,
    // and a value without a scheme may be a misplaced secret.
    match raw.split_once("://") {
        Some((scheme, _))
            if scheme.len() <= 16
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            anyhow::bail!("database.url has an unsupported scheme `{scheme}` (supported: sqlite)")
        }
        _ => anyhow::bail!("database.url is not a URL with a supported scheme (supported: sqlite)"),
    }
}
