//! Artist use cases on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::idempotency::create_once;
use super::list::{SortColumn, contains_pattern, fetch_page};
use super::{Error, PgStore, Result, decode, out_of_range, timed};
use super::{check_expected, is_foreign_key_violation, now, retry, versions_param};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::ids::ArtistId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{ArtistStore, ConflictKind, Entity, StoreError, StoreResult};
use crate::storage::{Created, Idempotency};

const COLUMNS: &str = "id, name, version, created_at, updated_at";

/// An `artist` row as [`COLUMNS`] reads it.
#[derive(sqlx::FromRow)]
struct ArtistRow {
    id: i64,
    name: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ArtistRow> for Artist {
    type Error = Error;

    fn try_from(row: ArtistRow) -> Result<Self> {
        Ok(Self {
            id: ArtistId::try_from(row.id).map_err(|()| out_of_range("artist id", row.id))?,
            name: row.name,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn column(field: ArtistSortField) -> SortColumn {
    let sql = match field {
        ArtistSortField::Id => "id",
        ArtistSortField::Name => "name",
        ArtistSortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        is_nullable: false,
    }
}

fn not_found(id: ArtistId) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Artist,
        id: id.get(),
    }
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &ArtistFilter) {
    if let Some(q) = &filter.q {
        // `like` on the folded column, metacharacters escaped; pg_trgm's GIN index serves it.
        qb.push(" and name_key like ");
        qb.push_bind(contains_pattern(q));
    }
}

/// Reads one artist; `for update` also locks its row until the transaction ends.
async fn get_with(conn: &mut PgConnection, id: ArtistId, lock: bool) -> Result<Artist> {
    let sql = if lock {
        "select id, name, version, created_at, updated_at from artist where id = $1 for update"
    } else {
        "select id, name, version, created_at, updated_at from artist where id = $1"
    };
    let row = sqlx::query_as::<_, ArtistRow>(sql)
        .bind(id.get())
        .fetch_optional(conn)
        .await?;
    row.ok_or_else(|| not_found(id))?.try_into()
}

/// Inserts one artist on `conn` (also used by the idempotent create and the demo seed).
pub(super) async fn insert_with(conn: &mut PgConnection, new: &NewArtist) -> Result<Artist> {
    let at = now();
    sqlx::query_as::<_, ArtistRow>(
        "insert into artist (name, name_key, version, created_at, updated_at) \
         values ($1, $2, 1, $3, $3) \
         returning id, name, version, created_at, updated_at",
    )
    .bind(new.name.as_str())
    .bind(search_key(new.name.as_str()))
    .bind(at)
    .fetch_one(conn)
    .await?
    .try_into()
}

#[async_trait]
impl ArtistStore for PgStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        timed("list_artists", async {
            Ok(fetch_page(
                &self.pool,
                "artist",
                COLUMNS,
                query,
                |qb| push_filter(qb, &query.filter),
                column,
                decode::<ArtistRow, Artist>,
            )
            .await?)
        })
        .await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        timed("get_artist", async {
            let mut conn = self.pool.acquire().await?;
            get_with(&mut conn, id, false).await
        })
        .await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        timed("insert_artist", async {
            let mut conn = self.pool.acquire().await?;
            insert_with(&mut conn, new).await
        })
        .await
    }

    /// Creates the artist at most once per idempotency key (see `idempotency::create_once`).
    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed(
            "insert_artist_once",
            retry(|| {
                create_once(&self.pool, new, idempotency, |conn, new| {
                    Box::pin(insert_with(conn, new))
                })
            }),
        )
        .await
    }

    /// Replaces the artist in one conditional statement (`version = any($n)` when
    /// `If-Match` was given). No row updated means absent (404) or at another version (412).
    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed("replace_artist", async {
            let mut conn = self.pool.acquire().await?;
            let row = sqlx::query_as::<_, ArtistRow>(
                "update artist set name = $1, name_key = $2, version = version + 1, \
                 updated_at = $3 \
                 where id = $4 and ($5::bigint[] is null or version = any($5)) \
                 returning id, name, version, created_at, updated_at",
            )
            .bind(new.name.as_str())
            .bind(search_key(new.name.as_str()))
            .bind(now())
            .bind(id.get())
            .bind(versions_param(expected))
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => row.try_into(),
                None => {
                    get_with(&mut conn, id, false).await?;
                    Err(StoreError::PreconditionFailed.into())
                }
            }
        })
        .await
    }

    /// Applies a merge patch: the row is read and locked (`for update`), so concurrent
    /// patches apply one after another, each to the result of the last.
    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(
            "patch_artist",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let current = get_with(&mut tx, id, true).await?;
                check_expected(expected, current.version)?;
                let next = changes.apply(&current);
                let artist = sqlx::query_as::<_, ArtistRow>(
                    "update artist set name = $1, name_key = $2, version = version + 1, \
                     updated_at = $3 \
                     where id = $4 \
                     returning id, name, version, created_at, updated_at",
                )
                .bind(next.name.as_str())
                .bind(search_key(next.name.as_str()))
                .bind(now())
                .bind(id.get())
                .fetch_one(&mut *tx)
                .await?
                .try_into()?;
                tx.commit().await?;
                Ok(artist)
            }),
        )
        .await
    }

    /// Deletes the artist (and, with `cascade`, its songs) in one transaction. Without
    /// `cascade`, the foreign key's RESTRICT refuses while songs refer to it.
    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(
            "delete_artist",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let current = get_with(&mut tx, id, true).await?;
                check_expected(expected, current.version)?;
                if cascade {
                    sqlx::query("delete from song where artist_id = $1")
                        .bind(id.get())
                        .execute(&mut *tx)
                        .await?;
                }
                let deleted = sqlx::query("delete from artist where id = $1")
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await;
                match deleted {
                    Ok(_) => Ok(tx.commit().await?),
                    Err(error) if is_foreign_key_violation(&error) => {
                        // The failed statement aborted the transaction; count on a fresh one.
                        tx.rollback().await?;
                        let songs: i64 =
                            sqlx::query_scalar("select count(*) from song where artist_id = $1")
                                .bind(id.get())
                                .fetch_one(&self.pool)
                                .await?;
                        Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                            artist: id,
                            songs,
                        })
                        .into())
                    }
                    Err(error) => Err(error.into()),
                }
            }),
        )
        .await
    }
}
