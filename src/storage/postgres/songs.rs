//! Song use cases on PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::idempotency::create_once;
use super::list::{
    SortColumn, begin_snapshot, contains_pattern, into_page, needs_null_tail, push_limit,
    push_null_tail, push_order_by, push_seek,
};
use super::{check_expected, is_foreign_key_violation, map_error, now, versions_param};
use crate::domain::artist::ArtistSummary;
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{ListQuery, Page, Position, SortValue};
use crate::domain::song::{NewSong, Song, SongChanges, SongUrl};
use crate::domain::song::{SongFilter, SongSortField};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{Created, Idempotency};
use crate::storage::{Entity, StoreError, StoreResult};

const SELECT: &str = "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, \
                      s.version, s.created_at, s.updated_at";
const RETURNING: &str = " returning id, title, artist_id, release_date, url, distance, version, \
                         created_at, updated_at";

fn column(field: SongSortField) -> SortColumn {
    let (sql, is_nullable) = match field {
        SongSortField::Id => ("s.id", false),
        SongSortField::Title => ("s.title", false),
        SongSortField::ReleaseDate => ("s.release_date", true),
        SongSortField::Distance => ("s.distance", true),
        SongSortField::CreatedAt => ("s.created_at", false),
    };
    SortColumn { sql, is_nullable }
}

fn out_of_range(what: &str, raw: i64) -> StoreError {
    StoreError::Other(anyhow::anyhow!("{what} {raw} out of range"))
}

/// Maps a song row; `with_artist` reads the joined `artist_name` column too.
fn from_row(row: &PgRow, with_artist: bool) -> StoreResult<Song> {
    let id: i64 = row.try_get("id").map_err(map_error)?;
    let artist_id = match row
        .try_get::<Option<i64>, _>("artist_id")
        .map_err(map_error)?
    {
        Some(raw) => Some(ArtistId::try_from(raw).map_err(|()| out_of_range("artist id", raw))?),
        None => None,
    };
    let artist = if with_artist {
        let name: Option<String> = row.try_get("artist_name").map_err(map_error)?;
        artist_id
            .zip(name)
            .map(|(id, name)| ArtistSummary { id, name })
    } else {
        None
    };
    Ok(Song {
        id: SongId::try_from(id).map_err(|()| out_of_range("song id", id))?,
        title: row.try_get("title").map_err(map_error)?,
        artist_id,
        release_date: row.try_get("release_date").map_err(map_error)?,
        url: row.try_get("url").map_err(map_error)?,
        distance: row.try_get("distance").map_err(map_error)?,
        version: row.try_get("version").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
        artist,
    })
}

fn not_found(id: SongId) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Song,
        id: id.get(),
    }
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &SongFilter) {
    if let Some(q) = &filter.q {
        // `like` on the folded column, metacharacters escaped; pg_trgm's GIN index serves it.
        qb.push(" and s.title_key like ");
        qb.push_bind(contains_pattern(q));
    }
    if let Some(artist_id) = filter.artist_id {
        qb.push(" and s.artist_id = ");
        qb.push_bind(artist_id.get());
    }
    // NULL dates fail both comparisons (API.md).
    if let Some(from) = filter.released_from {
        qb.push(" and s.release_date >= ");
        qb.push_bind(from);
    }
    if let Some(to) = filter.released_to {
        qb.push(" and s.release_date <= ");
        qb.push_bind(to);
    }
}

/// Which rows of the order a page query reads.
enum Part<'a> {
    /// From an offset (page mode).
    Offset(u64),
    /// Strictly after a cursor position.
    After(&'a [SortValue]),
    /// The NULL tail of a nullable leading key.
    NullTail,
}

async fn select_page(
    conn: &mut PgConnection,
    query: &ListQuery<SongSortField, SongFilter>,
    part: Part<'_>,
    limit: u32,
) -> StoreResult<Vec<Song>> {
    let include = query.filter.include_artist;
    // include=artist: the artist comes from the same query (no per-item lookups).
    let mut select = QueryBuilder::<Postgres>::new(if include {
        format!(
            "{SELECT}, a.name as artist_name from song s left join artist a on a.id = s.artist_id where true"
        )
    } else {
        format!("{SELECT} from song s where true")
    });
    push_filter(&mut select, &query.filter);
    let keys = query.sort.keys();
    let offset = match part {
        Part::Offset(offset) => offset,
        Part::After(values) => {
            push_seek(&mut select, keys, values, column);
            0
        }
        Part::NullTail => {
            push_null_tail(&mut select, keys, column);
            0
        }
    };
    push_order_by(&mut select, keys, column);
    push_limit(&mut select, limit, offset);
    let rows = select.build().fetch_all(conn).await.map_err(map_error)?;
    rows.iter().map(|row| from_row(row, include)).collect()
}

pub(super) async fn list(
    pool: &PgPool,
    query: &ListQuery<SongSortField, SongFilter>,
) -> StoreResult<Page<Song>> {
    // One snapshot: the count and the page agree.
    let mut tx = begin_snapshot(pool).await?;
    let mut count = QueryBuilder::<Postgres>::new("select count(*) from song s where true");
    push_filter(&mut count, &query.filter);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;

    let wanted = query.page_size + 1;
    let items = match &query.position {
        Position::Page(_) => {
            select_page(&mut tx, query, Part::Offset(query.offset()), wanted).await?
        }
        Position::After(values) => {
            let mut items = select_page(&mut tx, query, Part::After(values), wanted).await?;
            let missing = wanted.saturating_sub(u32::try_from(items.len()).unwrap_or(wanted));
            if missing > 0 && needs_null_tail(query.sort.keys(), values, column) {
                items.extend(select_page(&mut tx, query, Part::NullTail, missing).await?);
            }
            items
        }
    };
    tx.commit().await.map_err(map_error)?;
    Ok(into_page(items, total, query.page_size))
}

async fn get_with(conn: &mut PgConnection, id: SongId, lock: bool) -> StoreResult<Song> {
    let sql = if lock {
        "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, s.version, \
         s.created_at, s.updated_at from song s where s.id = $1 for update"
    } else {
        "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, s.version, \
         s.created_at, s.updated_at from song s where s.id = $1"
    };
    let row = sqlx::query(sql)
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_error)?;
    row.as_ref()
        .map(|row| from_row(row, false))
        .unwrap_or_else(|| Err(not_found(id)))
}

pub(super) async fn get(pool: &PgPool, id: SongId) -> StoreResult<Song> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    get_with(&mut conn, id, false).await
}

/// Maps a foreign-key violation on a song write to "Artist with id N not found".
fn write_error(error: sqlx::Error, new: &NewSong) -> StoreError {
    match new.artist_id {
        Some(artist_id) if is_foreign_key_violation(&error) => StoreError::NotFound {
            entity: Entity::Artist,
            id: artist_id.get(),
        },
        _ => map_error(error),
    }
}

pub(super) async fn insert_with(conn: &mut PgConnection, new: &NewSong) -> StoreResult<Song> {
    let sql = format!(
        "insert into song (title, title_key, artist_id, release_date, url, distance, version, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, 1, $7, $7){RETURNING}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(new.title.as_str())
        .bind(search_key(new.title.as_str()))
        .bind(new.artist_id.map(ArtistId::get))
        .bind(new.release_date)
        .bind(new.url.as_ref().map(SongUrl::as_str))
        .bind(new.distance)
        .bind(now())
        .fetch_one(conn)
        .await
        .map_err(|error| write_error(error, new))?;
    from_row(&row, false)
}

pub(super) async fn insert(pool: &PgPool, new: &NewSong) -> StoreResult<Song> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    insert_with(&mut conn, new).await
}

/// Creates the song at most once per idempotency key (see `idempotency::create_once`).
pub(super) async fn insert_once(
    pool: &PgPool,
    new: &NewSong,
    idempotency: &Idempotency<'_, Song>,
) -> StoreResult<Created<Song>> {
    create_once(pool, new, idempotency, |conn, new| {
        Box::pin(insert_with(conn, new))
    })
    .await
}

/// Writes `next` over song `id`, only at an `expected` version when one is given.
async fn write(
    conn: &mut PgConnection,
    id: SongId,
    next: &NewSong,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Option<Song>> {
    let sql = format!(
        "update song set title = $1, title_key = $2, artist_id = $3, release_date = $4, \
         url = $5, distance = $6, version = version + 1, updated_at = $7 \
         where id = $8 and ($9::bigint[] is null or version = any($9)){RETURNING}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(next.title.as_str())
        .bind(search_key(next.title.as_str()))
        .bind(next.artist_id.map(ArtistId::get))
        .bind(next.release_date)
        .bind(next.url.as_ref().map(SongUrl::as_str))
        .bind(next.distance)
        .bind(now())
        .bind(id.get())
        .bind(versions_param(expected))
        .fetch_optional(conn)
        .await
        .map_err(|error| write_error(error, next))?;
    row.as_ref().map(|row| from_row(row, false)).transpose()
}

/// Replaces the song in one conditional statement. No row updated means absent (404) or
/// at another version (412).
pub(super) async fn replace(
    pool: &PgPool,
    id: SongId,
    new: &NewSong,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Song> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    match write(&mut conn, id, new, expected).await? {
        Some(song) => Ok(song),
        None => {
            get_with(&mut conn, id, false).await?;
            Err(StoreError::PreconditionFailed)
        }
    }
}

/// Applies a merge patch to the locked row (`for update`).
pub(super) async fn patch(
    pool: &PgPool,
    id: SongId,
    changes: &SongChanges,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Song> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let current = get_with(&mut tx, id, true).await?;
    check_expected(expected, current.version)?;
    let next = changes.apply(&current);
    let song = write(&mut tx, id, &next, None)
        .await?
        .ok_or_else(|| not_found(id))?;
    tx.commit().await.map_err(map_error)?;
    Ok(song)
}

/// Deletes the song in one conditional statement; nothing deleted means absent (404) or
/// at another version (412).
pub(super) async fn delete(
    pool: &PgPool,
    id: SongId,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    let deleted = sqlx::query(
        "delete from song where id = $1 and ($2::bigint[] is null or version = any($2))",
    )
    .bind(id.get())
    .bind(versions_param(expected))
    .execute(&mut *conn)
    .await
    .map_err(map_error)?
    .rows_affected();
    if deleted == 1 {
        return Ok(());
    }
    get_with(&mut conn, id, false).await?;
    Err(StoreError::PreconditionFailed)
}
