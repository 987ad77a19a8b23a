//! Song use cases on SQL Server (`dbo.Song`, the original system's table and columns:
//! `artistID`, `released`, `URL`).

use async_trait::async_trait;
use tiberius::Row;

use super::artists::push_versions;
use super::idempotency::create_once;
use super::list::{
    SortColumn, contains_pattern, count, into_page, push_limit, push_order_by, push_seek,
};
use super::pool::Conn;
use super::sql::{Sql, begin, column as get, finish, first, optional_text, required, text};
use super::{
    DbError, Error, MssqlStore, Result, SYSTEM, check_expected, is_foreign_key_violation, now,
    other,
};
use crate::domain::artist::ArtistSummary;
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::{ListQuery, Page, Position};
use crate::domain::song::{NewSong, Song, SongChanges, SongUrl};
use crate::domain::song::{SongFilter, SongSortField};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::metered::timed;
use crate::storage::{Created, Idempotency};
use crate::storage::{Entity, SongStore, StoreError, StoreResult};

/// The song columns under the names the other backends use.
const COLUMNS: &str = "s.id, s.title, s.artistID AS artist_id, s.released AS release_date, \
                       s.URL AS url, s.distance, s.version, s.created_at, s.updated_at";
const SELECT_ONE: &str = "SELECT s.id, s.title, s.artistID AS artist_id, s.released AS release_date, \
     s.URL AS url, s.distance, s.version, s.created_at, s.updated_at FROM dbo.Song s WHERE s.id = @P1";
const SELECT_ONE_LOCKED: &str = "SELECT s.id, s.title, s.artistID AS artist_id, \
     s.released AS release_date, s.URL AS url, s.distance, s.version, s.created_at, s.updated_at \
     FROM dbo.Song s WITH (UPDLOCK, ROWLOCK) WHERE s.id = @P1";
const INSERT: &str = "INSERT INTO dbo.Song (title, title_key, artistID, released, URL, distance, \
     version, created_at, updated_at) \
     OUTPUT INSERTED.id, INSERTED.title, INSERTED.artistID AS artist_id, \
     INSERTED.released AS release_date, INSERTED.URL AS url, INSERTED.distance, \
     INSERTED.version, INSERTED.created_at, INSERTED.updated_at \
     VALUES (@P1, @P2, @P3, @P4, @P5, @P6, 1, @P7, @P7)";
const UPDATE: &str = "UPDATE dbo.Song SET title = @P1, title_key = @P2, artistID = @P3, \
     released = @P4, URL = @P5, distance = @P6, version = version + 1, updated_at = @P7 \
     OUTPUT INSERTED.id, INSERTED.title, INSERTED.artistID AS artist_id, \
     INSERTED.released AS release_date, INSERTED.URL AS url, INSERTED.distance, \
     INSERTED.version, INSERTED.created_at, INSERTED.updated_at \
     WHERE id = @P8";
const DELETE: &str = "DELETE FROM dbo.Song WHERE id = @P1";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[SELECT_ONE, SELECT_ONE_LOCKED, INSERT, UPDATE, DELETE];

fn column(field: SongSortField) -> SortColumn {
    let (sql, null_flag) = match field {
        SongSortField::Id => ("s.id", None),
        SongSortField::Title => ("s.title", None),
        SongSortField::ReleaseDate => ("s.released", Some("s.released_is_null")),
        SongSortField::Distance => ("s.distance", Some("s.distance_is_null")),
        SongSortField::CreatedAt => ("s.created_at", None),
    };
    SortColumn { sql, null_flag }
}

/// A song row (`COLUMNS`); `with_artist` reads the joined `artist_name` column too.
fn song(row: &Row, with_artist: bool) -> Result<Song> {
    let id: i32 = required(row, "id", "song")?;
    let artist_id = match get::<i32>(row, "artist_id")? {
        Some(raw) => Some(
            ArtistId::try_from(i64::from(raw))
                .map_err(|()| other("song row: artist id out of range"))?,
        ),
        None => None,
    };
    let artist = if with_artist {
        let name: Option<&str> = get(row, "artist_name")?;
        artist_id.zip(name).map(|(id, name)| ArtistSummary {
            id,
            name: name.to_owned(),
        })
    } else {
        None
    };
    Ok(Song {
        id: SongId::try_from(i64::from(id)).map_err(|()| other("song row: id out of range"))?,
        title: text(row, "title")?,
        artist_id,
        release_date: get(row, "release_date")?,
        url: optional_text(row, "url")?,
        distance: get(row, "distance")?,
        version: get(row, "version")?.unwrap_or_default(),
        created_at: required(row, "created_at", "song")?,
        updated_at: required(row, "updated_at", "song")?,
        artist,
    })
}

fn not_found(id: SongId) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Song,
        id: id.get(),
    }
}

fn push_filter(sql: &mut Sql, filter: &SongFilter) {
    if let Some(q) = &filter.q {
        sql.push(" AND s.title_key LIKE ")
            .bind(contains_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(artist_id) = filter.artist_id {
        sql.push(" AND s.artistID = ").bind(artist_id.get());
    }
    // NULL dates fail both comparisons (API.md).
    if let Some(from) = filter.released_from {
        sql.push(" AND s.released >= ").bind(from);
    }
    if let Some(to) = filter.released_to {
        sql.push(" AND s.released <= ").bind(to);
    }
}

fn page_statement(query: &ListQuery<SongSortField, SongFilter>) -> Sql {
    // include=artist: the artist comes from the same query (no per-item lookups).
    let mut select = Sql::new(if query.filter.include_artist {
        format!(
            "SELECT {COLUMNS}, a.name AS artist_name FROM dbo.Song s \
             LEFT JOIN dbo.Artist a ON a.id = s.artistID WHERE 1 = 1"
        )
    } else {
        format!("SELECT {COLUMNS} FROM dbo.Song s WHERE 1 = 1")
    });
    push_filter(&mut select, &query.filter);
    if let Position::After(values) = &query.position {
        push_seek(&mut select, query.sort.keys(), values, column);
    }
    push_order_by(&mut select, query.sort.keys(), column);
    push_limit(&mut select, query.page_size + 1, query.offset());
    select
}

async fn get_in(conn: &mut Conn, id: SongId, lock: bool) -> Result<Song> {
    let text = if lock { SELECT_ONE_LOCKED } else { SELECT_ONE };
    let row = Sql::with(text, vec![Box::new(id.get())]).row(conn).await?;
    row.as_ref()
        .map(|row| song(row, false))
        .unwrap_or_else(|| Err(not_found(id).into()))
}

/// Maps a foreign-key violation on a song write to "Artist with id N not found".
fn write_error(error: DbError, new: &NewSong) -> Error {
    match new.artist_id {
        Some(artist_id) if is_foreign_key_violation(&error) => StoreError::NotFound {
            entity: Entity::Artist,
            id: artist_id.get(),
        }
        .into(),
        _ => error.into(),
    }
}

/// The song's values as `@P1..@P7` of [`INSERT`] and [`UPDATE`].
fn values(new: &NewSong) -> Vec<Box<dyn tiberius::ToSql>> {
    vec![
        Box::new(new.title.as_str().to_owned()),
        Box::new(search_key(new.title.as_str())),
        Box::new(new.artist_id.map(ArtistId::get)),
        Box::new(new.release_date),
        Box::new(new.url.as_ref().map(|u| SongUrl::as_str(u).to_owned())),
        Box::new(new.distance),
        Box::new(now().fixed_offset()),
    ]
}

/// Inserts the song on `conn` (a plain insert, an idempotent one, the demo seed).
pub(super) async fn insert_song_in(conn: &mut Conn, new: &NewSong) -> Result<Song> {
    let rows = Sql::with(INSERT, values(new))
        .rows_raw(conn)
        .await
        .map_err(|error| write_error(error, new))?;
    first(&rows, |row| song(row, false))
}

fn update_statement(id: SongId, next: &NewSong, expected: Option<&ExpectedVersions>) -> Sql {
    let mut params = values(next);
    params.push(Box::new(id.get()));
    let mut sql = Sql::with(UPDATE, params);
    push_versions(&mut sql, expected);
    sql
}

async fn write(
    conn: &mut Conn,
    id: SongId,
    next: &NewSong,
    expected: Option<&ExpectedVersions>,
) -> Result<Option<Song>> {
    let rows = update_statement(id, next, expected)
        .rows_raw(conn)
        .await
        .map_err(|error| write_error(error, next))?;
    rows.first().map(|row| song(row, false)).transpose()
}

#[async_trait]
impl SongStore for MssqlStore {
    async fn list_songs(
        &self,
        query: &ListQuery<SongSortField, SongFilter>,
    ) -> StoreResult<Page<Song>> {
        timed(
            SYSTEM,
            "list_songs",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let mut total = Sql::new("SELECT COUNT_BIG(*) FROM dbo.Song s WHERE 1 = 1");
                push_filter(&mut total, &query.filter);
                let total = count(&mut conn, &total).await?;
                let rows = page_statement(query).rows(&mut conn).await?;
                let items = rows
                    .iter()
                    .map(|row| song(row, query.filter.include_artist))
                    .collect::<Result<Vec<_>>>()?;
                Ok(into_page(items, total, query.page_size))
            }),
        )
        .await
    }

    async fn get_song(&self, id: SongId) -> StoreResult<Song> {
        timed(
            SYSTEM,
            "get_song",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                get_in(&mut conn, id, false).await
            }),
        )
        .await
    }

    async fn insert_song(&self, new: &NewSong) -> StoreResult<Song> {
        timed(
            SYSTEM,
            "insert_song",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                insert_song_in(&mut conn, new).await
            }),
        )
        .await
    }

    /// Creates the song at most once per idempotency key (see `idempotency::create_once`).
    async fn insert_song_once(
        &self,
        new: &NewSong,
        idempotency: &Idempotency<'_, Song>,
    ) -> StoreResult<Created<Song>> {
        timed(
            SYSTEM,
            "insert_song_once",
            self.run(|| {
                create_once(&self.pool, new, idempotency, |conn, new| {
                    Box::pin(insert_song_in(conn, new))
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
        timed(
            SYSTEM,
            "replace_song",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                match write(&mut conn, id, new, expected).await? {
                    Some(song) => Ok(song),
                    None => {
                        get_in(&mut conn, id, false).await?;
                        Err(StoreError::PreconditionFailed.into())
                    }
                }
            }),
        )
        .await
    }

    /// Applies a merge patch to the locked row.
    async fn patch_song(
        &self,
        id: SongId,
        changes: &SongChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Song> {
        timed(
            SYSTEM,
            "patch_song",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let current = get_in(&mut conn, id, true).await?;
                    check_expected(expected, current.version)?;
                    write(&mut conn, id, &changes.apply(&current), None)
                        .await?
                        .ok_or_else(|| not_found(id).into())
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    /// Deletes the song in one conditional statement.
    async fn delete_song(
        &self,
        id: SongId,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(
            SYSTEM,
            "delete_song",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let mut sql = Sql::with(DELETE, vec![Box::new(id.get())]);
                push_versions(&mut sql, expected);
                if sql.execute(&mut conn).await? == 1 {
                    return Ok(());
                }
                get_in(&mut conn, id, false).await?;
                Err(StoreError::PreconditionFailed.into())
            }),
        )
        .await
    }
}

/// The list statements, for the parse test.
#[cfg(test)]
pub(super) fn sample_statements() -> Vec<String> {
    use crate::domain::list::SortValue;
    let mut out = Vec::new();
    for include_artist in [false, true] {
        let filter = SongFilter {
            q: Some("x".into()),
            artist_id: Some(ArtistId::try_from(1).unwrap()),
            released_from: chrono::NaiveDate::from_ymd_opt(1970, 1, 1),
            released_to: chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
            include_artist,
        };
        let value_of = |field: SongSortField| match field {
            SongSortField::Id => vec![SortValue::Int(3)],
            SongSortField::Title => vec![SortValue::Text("M".into())],
            SongSortField::ReleaseDate => vec![
                SortValue::Date(chrono::NaiveDate::from_ymd_opt(1972, 4, 28).unwrap()),
                SortValue::Null,
            ],
            SongSortField::Distance => vec![SortValue::Float(1.5), SortValue::Null],
            SongSortField::CreatedAt => vec![SortValue::Timestamp(chrono::Utc::now())],
        };
        for query in super::list::sample_queries(filter, value_of) {
            out.push(page_statement(&query).text().to_owned());
        }
    }
    let new = NewSong::parse(crate::domain::song::SongFields {
        title: "Sample",
        artist_id: Some(1),
        release_date: Some("1969-07-11"),
        url: Some("https://example.com/"),
        distance: Some(1.0),
    })
    .unwrap();
    for expected in [None, Some(ExpectedVersions::new(vec![4]))] {
        let id = SongId::try_from(1).unwrap();
        out.push(
            update_statement(id, &new, expected.as_ref())
                .text()
                .to_owned(),
        );
        let mut delete = Sql::with(DELETE, vec![Box::new(1_i64)]);
        push_versions(&mut delete, expected.as_ref());
        out.push(delete.text().to_owned());
    }
    out
}
