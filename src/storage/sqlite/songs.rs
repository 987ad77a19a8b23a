//! Song use cases on SQLite: `impl SongStore`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor};

use super::idempotency::create_once;
use super::list::{
    SortColumn, into_page, needs_null_tail, push_limit, push_null_tail, push_order_by, push_seek,
    trigram_phrase,
};
use super::{
    Error, Result, SqliteStore, check_expected, date_key, is_foreign_key_violation, map_error, now,
    out_of_range, timed,
};
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

/// [`column`] where the search index drives the query: the id is the index's rowid.
fn fts_column(field: SongSortField) -> SortColumn {
    match field {
        SongSortField::Id => SortColumn {
            sql: "f.rowid",
            is_nullable: false,
        },
        other => column(other),
    }
}

/// A `song` row as read; `artist_name` only where a query joins the artist
/// (`include=artist`).
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

fn not_found(id: SongId) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Song,
        id: id.get(),
    }
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, filter: &SongFilter) {
    if let Some(q) = &filter.q {
        if let Some(phrase) = trigram_phrase(q) {
            // The trigram index finds the same rows as the scan below (see trigram_phrase).
            qb.push(" and s.id in (select rowid from song_search where song_search match ");
            qb.push_bind(phrase);
            qb.push(")");
        } else {
            // instr() on the folded column: `%`, `_` and quotes in q are plain text.
            qb.push(" and instr(s.title_key, ");
            qb.push_bind(q.clone());
            qb.push(") > 0");
        }
    }
    push_filter_except_q(qb, filter);
}

/// The filters other than `q`.
fn push_filter_except_q(qb: &mut QueryBuilder<Sqlite>, filter: &SongFilter) {
    if let Some(artist_id) = filter.artist_id {
        qb.push(" and s.artist_id = ");
        qb.push_bind(artist_id.get());
    }
    // ISO dates compare correctly as text; NULL dates fail both comparisons (API.md).
    if let Some(from) = filter.released_from {
        qb.push(" and s.release_date >= ");
        qb.push_bind(date_key(from));
    }
    if let Some(to) = filter.released_to {
        qb.push(" and s.release_date <= ");
        qb.push_bind(date_key(to));
    }
}

/// The statement that reads the exact total of `filter`, never a count of the whole table:
/// the maintained count without filters, the search index's count for an indexable `q`
/// alone, otherwise a count that the filter's index covers (`(artist_id, id)`,
/// `(release_date, id)`, the search index's rowids).
fn total_query(filter: &SongFilter) -> QueryBuilder<Sqlite> {
    let q_only = filter.artist_id.is_none()
        && filter.released_from.is_none()
        && filter.released_to.is_none();
    let phrase = filter.q.as_deref().and_then(trigram_phrase);
    match (&filter.q, phrase) {
        (None, _) if q_only => QueryBuilder::new("select total from row_count where name = 'song'"),
        (Some(_), Some(phrase)) if q_only => {
            let mut qb =
                QueryBuilder::new("select count(*) from song_search where song_search match ");
            qb.push_bind(phrase);
            qb
        }
        _ => {
            let mut qb = QueryBuilder::new("select count(*) from song s where 1 = 1");
            push_filter(&mut qb, filter);
            qb
        }
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
    conn: &mut SqliteConnection,
    query: &ListQuery<SongSortField, SongFilter>,
    part: Part<'_>,
    limit: u32,
) -> Result<Vec<Song>> {
    let include = query.filter.include_artist;
    let keys = query.sort.keys();
    let phrase = query.filter.q.as_deref().and_then(trigram_phrase);
    // include=artist: the artist comes from the same query (no per-item lookups).
    let join_artist = if include {
        ", a.name as artist_name"
    } else {
        ""
    };
    let artist_join = if include {
        " left join artist a on a.id = s.artist_id"
    } else {
        ""
    };
    if let (Some(phrase), [only]) = (phrase, keys)
        && only.field == SongSortField::Id
    {
        // In id order the search index drives: FTS5 yields rowids in order (either
        // direction, from a cursor's rowid on), so the page stops after `limit` matches
        // instead of collecting every match first.
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "{SELECT}{join_artist} from song_search f cross join song s on s.id = f.rowid\
             {artist_join} where f.song_search match "
        ));
        select.push_bind(phrase);
        push_filter_except_q(&mut select, &query.filter);
        let offset = match part {
            Part::Offset(offset) => offset,
            Part::After(values) => {
                push_seek(&mut select, keys, values, fts_column);
                0
            }
            // Ids are never NULL.
            Part::NullTail => return Ok(Vec::new()),
        };
        push_order_by(&mut select, keys, fts_column);
        push_limit(&mut select, limit, offset);
        let rows = select.build_query_as::<SongRow>().fetch_all(conn).await?;
        return rows.into_iter().map(Song::try_from).collect();
    }
    let mut select = QueryBuilder::<Sqlite>::new(format!(
        "{SELECT}{join_artist} from song s{artist_join} where 1 = 1"
    ));
    match part {
        Part::Offset(offset) if offset > 0 => {
            // A deep offset skips ids only, in an index that holds the sort key and the id
            // (`song_id_idx` for the default order: the table's rows are wide), then reads
            // the page's rows by id: the same rows in the same order, far fewer pages.
            select.push(" and s.id in (select s.id from song s where 1 = 1");
            push_filter(&mut select, &query.filter);
            push_order_by(&mut select, keys, column);
            push_limit(&mut select, limit, offset);
            select.push(")");
            push_order_by(&mut select, keys, column);
        }
        Part::Offset(offset) => {
            push_filter(&mut select, &query.filter);
            push_order_by(&mut select, keys, column);
            push_limit(&mut select, limit, offset);
        }
        Part::After(values) => {
            push_filter(&mut select, &query.filter);
            push_seek(&mut select, keys, values, column);
            push_order_by(&mut select, keys, column);
            push_limit(&mut select, limit, 0);
        }
        Part::NullTail => {
            push_filter(&mut select, &query.filter);
            push_null_tail(&mut select, keys, column);
            push_order_by(&mut select, keys, column);
            push_limit(&mut select, limit, 0);
        }
    }
    let rows = select.build_query_as::<SongRow>().fetch_all(conn).await?;
    rows.into_iter().map(Song::try_from).collect()
}

#[async_trait]
impl SongStore for SqliteStore {
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        timed("list_songs", async {
            // One read transaction: the count and the page see the same snapshot.
            let mut tx = self.pool.begin().await?;
            let total: i64 = total_query(&query.filter)
                .build_query_scalar()
                .fetch_one(&mut *tx)
                .await?;

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
        timed("get_song", async { current(&self.pool, id).await }).await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        timed("insert_song", async {
            self.writer
                .write_statement(new, |conn, new| Box::pin(insert(conn, new)))
                .await
        })
        .await
    }

    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed("insert_song_once", async {
            self.writer
                .write(&(new, idempotency), |conn, (new, idempotency)| {
                    Box::pin(create_once(conn, *new, idempotency, |conn, new| {
                        Box::pin(insert(conn, new))
                    }))
                })
                .await
        })
        .await
    }

    async fn replace_song(
        &self,
        id: SongId,
        new: &NewSong,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed("replace_song", async {
            let change = |_: &Song| new.clone();
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(update(conn, id, expected, change))
                })
                .await
        })
        .await
    }

    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed("patch_song", async {
            let change = |current: &Song| changes.apply(current);
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(update(conn, id, expected, change))
                })
                .await
        })
        .await
    }

    /// Deletes the song after the `If-Match` check.
    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed("delete_song", async {
            self.writer
                .write(&(id, expected), |conn, &(id, expected)| {
                    Box::pin(async move {
                        let existing = current(&mut *conn, id).await?;
                        check_expected(expected, existing.version)?;
                        sqlx::query("delete from song where id = ?")
                            .bind(id.get())
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
        })
        .await
    }
}

/// The song `id` as it is now (without its artist), on the pool or on the writer's
/// connection.
async fn current<'e>(executor: impl SqliteExecutor<'e>, id: SongId) -> Result<Song> {
    sqlx::query_as::<_, SongRow>(
        "select s.id, s.title, s.artist_id, s.release_date, s.url, s.distance, s.version, \
         s.created_at, s.updated_at from song s where s.id = ?",
    )
    .bind(id.get())
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| not_found(id))?
    .try_into()
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

/// Inserts the song (on the writer's connection, inside its batch): one statement, for
/// `insert_song`, `insert_song_once` and the demo seed.
pub(super) async fn insert(conn: &mut SqliteConnection, new: &NewSong) -> Result<Song> {
    let at = now();
    let sql = format!(
        "insert into song (title, title_key, artist_id, release_date, url, distance, version, \
         created_at, updated_at) values (?, ?, ?, ?, ?, ?, 1, ?, ?){RETURNING}"
    );
    sqlx::query_as::<_, SongRow>(sqlx::AssertSqlSafe(sql))
        .bind(new.title.as_str())
        .bind(search_key(new.title.as_str()))
        .bind(new.artist_id.map(ArtistId::get))
        .bind(new.release_date.map(date_key))
        .bind(new.url.as_ref().map(SongUrl::as_str))
        .bind(new.distance)
        .bind(&at)
        .bind(&at)
        .fetch_one(conn)
        .await
        .map_err(|error| write_error(error, new))?
        .try_into()
}

/// Reads, checks `If-Match`, computes the replacement and writes it (`replace_song`,
/// `patch_song`). It runs on the writer's connection, so no other write comes between
/// the read and the update.
async fn update(
    conn: &mut SqliteConnection,
    id: SongId,
    expected: Option<&ExpectedVersions>,
    change: &(dyn Fn(&Song) -> NewSong + Send + Sync),
) -> Result<Song> {
    let existing = current(&mut *conn, id).await?;
    check_expected(expected, existing.version)?;
    let next = change(&existing);
    let sql = format!(
        "update song set title = ?, title_key = ?, artist_id = ?, release_date = ?, url = ?, \
         distance = ?, version = version + 1, updated_at = ? where id = ?{RETURNING}"
    );
    sqlx::query_as::<_, SongRow>(sqlx::AssertSqlSafe(sql))
        .bind(next.title.as_str())
        .bind(search_key(next.title.as_str()))
        .bind(next.artist_id.map(ArtistId::get))
        .bind(next.release_date.map(date_key))
        .bind(next.url.as_ref().map(SongUrl::as_str))
        .bind(next.distance)
        .bind(now())
        .bind(id.get())
        .fetch_one(conn)
        .await
        .map_err(|error| write_error(error, &next))?
        .try_into()
}
