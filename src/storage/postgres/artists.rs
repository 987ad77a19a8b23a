//! Artist use cases on PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::idempotency::create_once;
use super::list::{SortColumn, contains_pattern, fetch_page};
use super::{check_expected, is_foreign_key_violation, map_error, now, versions_param};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::ids::ArtistId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{ConflictKind, Entity, StoreError, StoreResult};
use crate::storage::{Created, Idempotency};

const COLUMNS: &str = "id, name, version, created_at, updated_at";

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

fn from_row(row: &PgRow) -> StoreResult<Artist> {
    let id: i64 = row.try_get("id").map_err(map_error)?;
    Ok(Artist {
        id: ArtistId::try_from(id)
            .map_err(|()| StoreError::Other(anyhow::anyhow!("artist id {id} out of range")))?,
        name: row.try_get("name").map_err(map_error)?,
        version: row.try_get("version").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
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

pub(super) async fn list(
    pool: &PgPool,
    query: &ListQuery<ArtistSortField, ArtistFilter>,
) -> StoreResult<Page<Artist>> {
    fetch_page(
        pool,
        "artist",
        COLUMNS,
        query,
        |qb| push_filter(qb, &query.filter),
        column,
        from_row,
    )
    .await
}

/// Reads one artist; `for update` also locks its row until the transaction ends.
async fn get_with(conn: &mut PgConnection, id: ArtistId, lock: bool) -> StoreResult<Artist> {
    let sql = if lock {
        "select id, name, version, created_at, updated_at from artist where id = $1 for update"
    } else {
        "select id, name, version, created_at, updated_at from artist where id = $1"
    };
    let row = sqlx::query(sql)
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_error)?;
    row.as_ref()
        .map(from_row)
        .unwrap_or_else(|| Err(not_found(id)))
}

pub(super) async fn get(pool: &PgPool, id: ArtistId) -> StoreResult<Artist> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    get_with(&mut conn, id, false).await
}

pub(super) async fn insert_with(conn: &mut PgConnection, new: &NewArtist) -> StoreResult<Artist> {
    let at = now();
    let row = sqlx::query(
        "insert into artist (name, name_key, version, created_at, updated_at) \
         values ($1, $2, 1, $3, $3) \
         returning id, name, version, created_at, updated_at",
    )
    .bind(new.name.as_str())
    .bind(search_key(new.name.as_str()))
    .bind(at)
    .fetch_one(conn)
    .await
    .map_err(map_error)?;
    from_row(&row)
}

pub(super) async fn insert(pool: &PgPool, new: &NewArtist) -> StoreResult<Artist> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    insert_with(&mut conn, new).await
}

/// Creates the artist at most once per idempotency key (see `idempotency::create_once`).
pub(super) async fn insert_once(
    pool: &PgPool,
    new: &NewArtist,
    idempotency: &Idempotency<'_, Artist>,
) -> StoreResult<Created<Artist>> {
    create_once(pool, new, idempotency, |conn, new| {
        Box::pin(insert_with(conn, new))
    })
    .await
}

/// Replaces the artist in one conditional statement (`version = any($n)` when `If-Match`
/// was given). No row updated means absent (404) or at another version (412).
pub(super) async fn replace(
    pool: &PgPool,
    id: ArtistId,
    new: &NewArtist,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Artist> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    let row = sqlx::query(
        "update artist set name = $1, name_key = $2, version = version + 1, updated_at = $3 \
         where id = $4 and ($5::bigint[] is null or version = any($5)) \
         returning id, name, version, created_at, updated_at",
    )
    .bind(new.name.as_str())
    .bind(search_key(new.name.as_str()))
    .bind(now())
    .bind(id.get())
    .bind(versions_param(expected))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_error)?;
    match row {
        Some(row) => from_row(&row),
        None => {
            get_with(&mut conn, id, false).await?;
            Err(StoreError::PreconditionFailed)
        }
    }
}

/// Applies a merge patch: the row is read and locked (`for update`), so concurrent patches
/// apply one after another, each to the result of the last.
pub(super) async fn patch(
    pool: &PgPool,
    id: ArtistId,
    changes: &ArtistChanges,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Artist> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let current = get_with(&mut tx, id, true).await?;
    check_expected(expected, current.version)?;
    let next = changes.apply(&current);
    let row = sqlx::query(
        "update artist set name = $1, name_key = $2, version = version + 1, updated_at = $3 \
         where id = $4 \
         returning id, name, version, created_at, updated_at",
    )
    .bind(next.name.as_str())
    .bind(search_key(next.name.as_str()))
    .bind(now())
    .bind(id.get())
    .fetch_one(&mut *tx)
    .await
    .map_err(map_error)?;
    let artist = from_row(&row)?;
    tx.commit().await.map_err(map_error)?;
    Ok(artist)
}

/// Deletes the artist (and, with `cascade`, its songs) in one transaction. Without
/// `cascade`, the foreign key's RESTRICT refuses while songs refer to it.
pub(super) async fn delete(
    pool: &PgPool,
    id: ArtistId,
    cascade: bool,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let current = get_with(&mut tx, id, true).await?;
    check_expected(expected, current.version)?;
    if cascade {
        sqlx::query("delete from song where artist_id = $1")
            .bind(id.get())
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
    }
    let deleted = sqlx::query("delete from artist where id = $1")
        .bind(id.get())
        .execute(&mut *tx)
        .await;
    match deleted {
        Ok(_) => tx.commit().await.map_err(map_error),
        Err(error) if is_foreign_key_violation(&error) => {
            // The failed statement aborted the transaction; count on a fresh one.
            tx.rollback().await.map_err(map_error)?;
            let songs = count_songs(pool, id).await?;
            Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                artist: id,
                songs,
            }))
        }
        Err(error) => Err(map_error(error)),
    }
}

async fn count_songs(pool: &PgPool, id: ArtistId) -> StoreResult<i64> {
    sqlx::query_scalar("select count(*) from song where artist_id = $1")
        .bind(id.get())
        .fetch_one(pool)
        .await
        .map_err(map_error)
}
