//! `MeteredStore`: any store, with each operation timed into
//! `db_query_duration_seconds{operation}` (the operation is the method name: one
//! transaction each) and run inside a `db` span (an OpenTelemetry client span with
//! `db.system` and `db.operation.name`, never parameter values). Delegation keeps the
//! backends free of metrics and tracing code.

use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::migrate::Migrator;
use super::{Backend, DynStore, PoolStats, Store, StoreResult};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LoginGate, NewApiKey, NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::demo::DemoArtist;
use crate::domain::etag::ExpectedVersions;
use crate::domain::idempotency::{Created, Idempotency};
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{
    ArtistFilter, ArtistSortField, ListQuery, Page, SongFilter, SongSortField,
};
use crate::domain::song::{NewSong, Song, SongChanges};
use crate::domain::user::{NewUser, User, UserChanges, UserSortField, UsernameKey};
use crate::telemetry::metrics::DB_QUERY_DURATION_SECONDS;

/// A store whose operations are timed and traced.
pub struct MeteredStore {
    inner: DynStore,
    /// `db.system` of the spans: `sqlite`, `postgresql` or `mssql`.
    system: &'static str,
}

impl MeteredStore {
    /// Wraps `inner`, a store of `backend`.
    pub fn new(inner: DynStore, backend: Backend) -> Self {
        let system = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
            Backend::Mssql => "mssql",
        };
        Self { inner, system }
    }
}

/// Runs one store call in its span (DEBUG: created only while spans are exported or the
/// log level asks for it) and times it.
async fn timed<T>(
    system: &'static str,
    operation: &'static str,
    call: impl Future<Output = T>,
) -> T {
    let span = tracing::debug_span!(
        "db",
        otel.name = operation,
        otel.kind = "client",
        db.system = system,
        db.operation.name = operation,
    );
    let started = Instant::now();
    let result = call.instrument(span).await;
    metrics::histogram!(DB_QUERY_DURATION_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for MeteredStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        timed(self.system, "list_artists", self.inner.list_artists(query)).await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        timed(self.system, "get_artist", self.inner.get_artist(id)).await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        timed(self.system, "insert_artist", self.inner.insert_artist(new)).await
    }

    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed(
            self.system,
            "insert_artist_once",
            self.inner.insert_artist_once(new, idempotency),
        )
        .await
    }

    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(
            self.system,
            "replace_artist",
            self.inner.replace_artist(id, new, expected),
        )
        .await
    }

    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(
            self.system,
            "patch_artist",
            self.inner.patch_artist(id, changes, expected),
        )
        .await
    }

    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(
            self.system,
            "delete_artist",
            self.inner.delete_artist(id, cascade, expected),
        )
        .await
    }

    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        timed(self.system, "list_songs", self.inner.list_songs(query)).await
    }

    async fn get_song(&self, id: SongId) -> StoreResult<Song> {
        timed(self.system, "get_song", self.inner.get_song(id)).await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        timed(self.system, "insert_song", self.inner.insert_song(new)).await
    }

    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed(
            self.system,
            "insert_song_once",
            self.inner.insert_song_once(new, idempotency),
        )
        .await
    }

    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(
            self.system,
            "replace_song",
            self.inner.replace_song(id, new, expected),
        )
        .await
    }

    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(
            self.system,
            "patch_song",
            self.inner.patch_song(id, changes, expected),
        )
        .await
    }

    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(
            self.system,
            "delete_song",
            self.inner.delete_song(id, expected),
        )
        .await
    }

    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed(
            self.system,
            "insert_user",
            self.inner.insert_user(new, password_hash),
        )
        .await
    }

    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<(User, String)>> {
        timed(
            self.system,
            "find_user_by_username",
            self.inner.find_user_by_username(username),
        )
        .await
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        timed(self.system, "get_user", self.inner.get_user(id)).await
    }

    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>> {
        timed(self.system, "list_users", self.inner.list_users(query)).await
    }

    async fn update_user(
        &self,
        id: i64,
        changes: &UserChanges,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        timed(
            self.system,
            "update_user",
            self.inner.update_user(id, changes, password_hash),
        )
        .await
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        timed(self.system, "delete_user", self.inner.delete_user(id)).await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        timed(
            self.system,
            "has_active_admin",
            self.inner.has_active_admin(),
        )
        .await
    }

    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed(
            self.system,
            "insert_refresh_token",
            self.inner.insert_refresh_token(token),
        )
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        timed(
            self.system,
            "rotate_refresh_token",
            self.inner
                .rotate_refresh_token(presented, next_hash, next_expires_at, session_max),
        )
        .await
    }

    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed(
            self.system,
            "revoke_refresh_family",
            self.inner.revoke_refresh_family(presented),
        )
        .await
    }

    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed(
            self.system,
            "is_session_active",
            self.inner.is_session_active(family_id),
        )
        .await
    }

    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed(
            self.system,
            "prune_credentials",
            self.inner.prune_credentials(at),
        )
        .await
    }

    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed(
            self.system,
            "claim_login_attempt",
            self.inner.claim_login_attempt(username_key, at),
        )
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed(
            self.system,
            "clear_login_failures",
            self.inner.clear_login_failures(username_key),
        )
        .await
    }

    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey> {
        timed(
            self.system,
            "insert_api_key",
            self.inner.insert_api_key(new, key_hash, prefix),
        )
        .await
    }

    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>> {
        timed(
            self.system,
            "list_api_keys",
            self.inner.list_api_keys(query),
        )
        .await
    }

    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>> {
        timed(
            self.system,
            "find_api_key",
            self.inner.find_api_key(key_hash),
        )
        .await
    }

    async fn delete_api_key(&self, id: i64) -> StoreResult<()> {
        timed(self.system, "delete_api_key", self.inner.delete_api_key(id)).await
    }

    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> StoreResult<u64> {
        timed(
            self.system,
            "prune_idempotency_keys",
            self.inner.prune_idempotency_keys(created_before),
        )
        .await
    }

    async fn seed_demo_data(&self, catalog: &[DemoArtist]) -> StoreResult<bool> {
        timed(
            self.system,
            "seed_demo_data",
            self.inner.seed_demo_data(catalog),
        )
        .await
    }

    async fn backup_to(&self, destination: &std::path::Path) -> StoreResult<()> {
        timed(self.system, "backup_to", self.inner.backup_to(destination)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        timed(self.system, "ping", self.inner.ping()).await
    }

    fn migrator(&self) -> &dyn Migrator {
        self.inner.migrator()
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    fn wal_size_bytes(&self) -> Option<u64> {
        self.inner.wal_size_bytes()
    }

    async fn close(&self) {
        timed(self.system, "close", self.inner.close()).await
    }
}
