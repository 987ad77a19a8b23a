//! Song use cases on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::idempotency::create_once;
use super::list::{
    SortColumn, begin_snapshot, contains_pattern, into_page, needs_null_tail, push_limit,
    push_null_tail, push_order_by, push_seek,
};
use super::{Error, PgStore, Result, out_of_range, timed};
use super::{check_expected, is_foreign_key_violation, now, retry, versions_param};
use crate::domain::artist::ArtistSummary;
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{ListQuery, Page, Position, SortValue};
use crate::domain::song::{NewSong, Song, SongChanges, SongUrl};
use crate::domain::song::{SongFilter, SongSortField};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{Created, Idempotency};
use crate::storage::{Entity, SongStore, StoreError, StoreResult};

const SELECT: &str = "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, \
                      s.version, s.created_at, s.updated_at";
const RETURNING: &str = " returning id, title, artist_id, release_date, url, distance, version, \
                         created_at, updated_at";

/// A `song` row as [`SELECT`] or [`RETURNING`] reads it; `artist_name` is there only when
/// the query joins the artist (`include=artist`).
#[derive(sqlx::FromRow)]
struct SongRow {
    id: i64,
    title: String,
    artist_id: Option<i64>,
    release_date: Option<NaiveDate>,
    url: Option<String>,
    distance: Option<f64>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[sqlx(default)]
    artist_name: Option<String>,
}

impl TryFrom<SongRow> for Song {
    type Error = Error;

    fn try_from(row: SongRow) -> Result<Self> {
        let artist_id = row
            .artist_id
            .map(|raw| ArtistId::try_from(raw).map_err(|()| out_of_range("artist id", raw)))
            .transpose()?;
        Ok(Self {
            id: SongId::try_from(row.id).map_err(|()| out_of_range("song id", row.id))?,
            title: row.title,
            artist_id,
            release_date: row.release_date,
            url: row.url,
            distance: row.distance,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            artist: artist_id
                .zip(row.artist_name)
                .map(|(id, name)| ArtistSummary { id, name }),
        })
    }
}

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
) -> Result<Vec<Song>> {
    // include=artist: the artist comes from the same query (no per-item lookups).
    let mut select = QueryBuilder::<Postgres>::new(if query.filter.include_artist {
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
    let rows = select.build_query_as::<SongRow>().fetch_all(conn).await?;
    rows.into_iter().map(Song::try_from).collect()
}

async fn get_with(conn: &mut PgConnection, id: SongId, lock: bool) -> Result<Song> {
    let sql = if lock {
        "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, s.version, \
         s.created_at, s.updated_at from song s where s.id = $1 for update"
    } else {
        "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, s.version, \
         s.created_at, s.updated_at from song s where s.id = $1"
    };
    let row = sqlx::query_as::<_, SongRow>(sql)
        .bind(id.get())
        .fetch_optional(conn)
        .await?;
    row.ok_or_else(|| not_found(id))?.try_into()
}

/// Maps a foreign-key violation on a song write to "Artist with id N not found".
fn write_error(error: sqlx::Error, new: &NewSong) -> Error {
    match new.artist_id {
        Some(artist_id) if is_foreign_key_violation(&error) => StoreError::NotFound {
            entity: Entity::Artist,
            id: artist_id.get(),
        }
        .into(),
        _ => error.into(),
    }
}

/// Inserts one song on `conn` (also used by the idempotent create and the demo seed).
pub(super) async fn insert_with(conn: &mut PgConnection, new: &NewSong) -> Result<Song> {
    let sql = format!(
        "insert into song (title, title_key, artist_id, release_date, url, distance, version, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, 1, $7, $7){RETURNING}"
    );
    sqlx::query_as::<_, SongRow>(sqlx::AssertSqlSafe(sql))
        .bind(new.title.as_str())
        .bind(search_key(new.title.as_str()))
        .bind(new.artist_id.map(ArtistId::get))
        .bind(new.release_date)
        .bind(new.url.as_ref().map(SongUrl::as_str))
        .bind(new.distance)
        .bind(now())
        .fetch_one(conn)
        .await
        .map_err(|error| write_error(error, new))?
        .try_into()
}

/// Writes `next` over song `id`, only at an `expected` version when one is given.
async fn write(
    conn: &mut PgConnection,
    id: SongId,
    next: &NewSong,
    expected: Option<&ExpectedVersions>,
) -> Result<Option<Song>> {
    let sql = format!(
        "update song set title = $1, title_key = $2, artist_id = $3, release_date = $4, \
         url = $5, distance = $6, version = version + 1, updated_at = $7 \
         where id = $8 and ($9::bigint[] is null or version = any($9)){RETURNING}"
    );
    let row = sqlx::query_as::<_, SongRow>(sqlx::AssertSqlSafe(sql))
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
    row.map(Song::try_from).transpose()
}

#[async_trait]
impl SongStore for PgStore {
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        timed("list_songs", async {
            // One snapshot: the count and the page agree.
            let mut tx = begin_snapshot(&self.pool).await?;
            let mut count = QueryBuilder::<Postgres>::new("select count(*) from song s where true");
            push_filter(&mut count, &query.filter);
            let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;

            let wanted = query.page_size + 1;
            let items = match &query.position {
                Position::Page(_) => {
                    select_page(&mut tx, query, Part::Offset(query.offset()), wanted).await?
                }
                Position::After(values) => {
                    let mut items =
                        select_page(&mut tx, query, Part::After(values), wanted).await?;
                    let missing =
                        wanted.saturating_sub(u32::try_from(items.len()).unwrap_or(wanted));
                    if missing > 0 && needs_null_tail(query.sort.keys(), values, column) {
                        items.extend(select_page(&mut tx, query, Part::NullTail, missing).await?);
                    }
                    items
                }
            };
            tx.commit().await?;
            Ok(into_page(items, total, query.page_size))
        })
        .await
    }

    async fn get_song(&self, id: SongId) -> StoreResult<Song> {
        timed("get_song", async {
            let mut conn = self.pool.acquire().await?;
            get_with(&mut conn, id, false).await
        })
        .await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        timed("insert_song", async {
            let mut conn = self.pool.acquire().await?;
            insert_with(&mut conn, new).await
        })
        .await
    }

    /// Creates the song at most once per idempotency key (see `idempotency::create_once`).
    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed(
            "insert_song_once",
            retry(|| {
                create_once(&self.pool, new, idempotency, |conn, new| {
                    Box::pin(insert_with(conn, new))
                })
            }),
        )
        .await
    }

    /// Replaces the song in one conditional statement. No row updated means absent (404)
    /// or at another version (412).
    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed("replace_song", async {
            let mut conn = self.pool.acquire().await?;
            match write(&mut conn, id, new, expected).await? {
                Some(song) => Ok(song),
                None => {
                    get_with(&mut conn, id, false).await?;
                    Err(StoreError::PreconditionFailed.into())
                }
            }
        })
        .await
    }

    /// Applies a merge patch to the locked row (`for update`).
    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(
            "patch_song",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let current = get_with(&mut tx, id, true).await?;
                check_expected(expected, current.version)?;
                let next = changes.apply(&current);
                let song = write(&mut tx, id, &next, None)
                    .await?
                    .ok_or_else(|| not_found(id))?;
                tx.commit().await?;
                Ok(song)
            }),
        )
        .await
    }

    /// Deletes the song in one conditional statement; nothing deleted means absent (404)
    /// or at another version (412).
    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed("delete_song", async {
            let mut conn = self.pool.acquire().await?;
            let deleted = sqlx::query(
                "delete from song where id = $1 and ($2::bigint[] is null or version = any($2))",
            )
            .bind(id.get())
            .bind(versions_param(expected))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if deleted == 1 {
                return Ok(());
            }
            get_with(&mut conn, id, false).await?;
            Err(StoreError::PreconditionFailed.into())
        })
        .await
    }
}
