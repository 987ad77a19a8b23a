//! Artist use cases on SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::idempotency::create_once;
use super::list::{SortColumn, fetch_page_with_total, trigram_phrase};
use super::{check_expected, is_foreign_key_violation, map_error, now};
use crate::domain::artist::{Artist, NewArtist};
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

fn from_row(row: &SqliteRow) -> StoreResult<Artist> {
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

fn push_filter(qb: &mut QueryBuilder<Sqlite>, filter: &ArtistFilter) {
    if let Some(q) = &filter.q {
        if let Some(phrase) = trigram_phrase(q) {
            // The trigram index finds the same rows as the scan below (see trigram_phrase).
            qb.push(" and id in (select rowid from artist_search where artist_search match ");
            qb.push_bind(phrase);
            qb.push(")");
        } else {
            // instr() on the folded column: `%`, `_` and quotes in q are plain text.
            qb.push(" and instr(name_key, ");
            qb.push_bind(q.clone());
            qb.push(") > 0");
        }
    }
}

/// Pushes the expression that reads the exact total of `filter`: the maintained count
/// without a filter, the search index's count for an indexable `q`, the scan's count
/// otherwise.
fn push_total(qb: &mut QueryBuilder<Sqlite>, filter: &ArtistFilter) {
    match filter.q.as_deref().map(|q| (q, trigram_phrase(q))) {
        None => {
            qb.push("(select total from row_count where name = 'artist')");
        }
        Some((_, Some(phrase))) => {
            qb.push("(select count(*) from artist_search where artist_search match ");
            qb.push_bind(phrase);
            qb.push(")");
        }
        Some((_, None)) => {
            qb.push("(select count(*) from artist where 1 = 1");
            push_filter(qb, filter);
            qb.push(")");
        }
    }
}

pub(super) async fn list(
    pool: &SqlitePool,
    query: &ListQuery<ArtistSortField, ArtistFilter>,
) -> StoreResult<Page<Artist>> {
    fetch_page_with_total(
        pool,
        "artist",
        COLUMNS,
        query,
        |qb| push_total(qb, &query.filter),
        |qb| push_filter(qb, &query.filter),
        column,
        from_row,
    )
    .await
}

async fn get_with(conn: &mut SqliteConnection, id: ArtistId) -> StoreResult<Artist> {
    let row =
        sqlx::query("select id, name, version, created_at, updated_at from artist where id = ?")
            .bind(id.get())
            .fetch_optional(conn)
            .await
            .map_err(map_error)?;
    row.as_ref()
        .map(from_row)
        .unwrap_or_else(|| Err(not_found(id)))
}

pub(super) async fn get(pool: &SqlitePool, id: ArtistId) -> StoreResult<Artist> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    get_with(&mut conn, id).await
}

/// Inserts the artist (on the writer's connection, inside its batch).
pub(super) async fn insert(conn: &mut SqliteConnection, new: &NewArtist) -> StoreResult<Artist> {
    let at = now();
    let row = sqlx::query(
        "insert into artist (name, name_key, version, created_at, updated_at) \
         values (?, ?, 1, ?, ?) \
         returning id, name, version, created_at, updated_at",
    )
    .bind(new.name.as_str())
    .bind(search_key(new.name.as_str()))
    .bind(&at)
    .bind(&at)
    .fetch_one(conn)
    .await
    .map_err(map_error)?;
    from_row(&row)
}

/// Creates the artist at most once per idempotency key (see `idempotency::create_once`).
pub(super) async fn insert_once(
    conn: &mut SqliteConnection,
    new: &NewArtist,
    idempotency: &Idempotency<'_, Artist>,
) -> StoreResult<Created<Artist>> {
    create_once(conn, new, idempotency, |conn, new| {
        Box::pin(insert(conn, new))
    })
    .await
}

/// Reads, checks `If-Match`, computes the replacement and writes it. It runs on the
/// writer's connection, so no other write comes between the read and the update.
pub(super) async fn update(
    conn: &mut SqliteConnection,
    id: ArtistId,
    expected: Option<&ExpectedVersions>,
    change: &(dyn Fn(&Artist) -> NewArtist + Send + Sync),
) -> StoreResult<Artist> {
    let current = get_with(conn, id).await?;
    check_expected(expected, current.version)?;
    let next = change(&current);
    let row = sqlx::query(
        "update artist set name = ?, name_key = ?, version = version + 1, updated_at = ? \
         where id = ? \
         returning id, name, version, created_at, updated_at",
    )
    .bind(next.name.as_str())
    .bind(search_key(next.name.as_str()))
    .bind(now())
    .bind(id.get())
    .fetch_one(conn)
    .await
    .map_err(map_error)?;
    from_row(&row)
}

/// Deletes the artist (and, with `cascade`, its songs); on failure the writer undoes
/// both.
pub(super) async fn delete(
    conn: &mut SqliteConnection,
    id: ArtistId,
    cascade: bool,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<()> {
    let current = get_with(conn, id).await?;
    check_expected(expected, current.version)?;
    if cascade {
        sqlx::query("delete from song where artist_id = ?")
            .bind(id.get())
            .execute(&mut *conn)
            .await
            .map_err(map_error)?;
    }
    let deleted = sqlx::query("delete from artist where id = ?")
        .bind(id.get())
        .execute(&mut *conn)
        .await;
    match deleted {
        Ok(_) => Ok(()),
        Err(error) if is_foreign_key_violation(&error) => {
            let songs = count_songs(conn, id).await?;
            Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                artist: id,
                songs,
            }))
        }
        Err(error) => Err(map_error(error)),
    }
}

async fn count_songs(conn: &mut SqliteConnection, id: ArtistId) -> StoreResult<i64> {
    sqlx::query_scalar("select count(*) from song where artist_id = ?")
        .bind(id.get())
        .fetch_one(conn)
        .await
        .map_err(map_error)
}
