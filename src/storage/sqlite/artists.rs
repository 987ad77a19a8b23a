//! Artist use cases on SQLite: `impl ArtistStore`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor};

use super::idempotency::create_once;
use super::list::{SortColumn, fetch_page_with_total, trigram_phrase};
use super::{
    Error, Result, SqliteStore, check_expected, decode, is_foreign_key_violation, now,
    out_of_range, timed,
};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::ids::ArtistId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{ArtistStore, ConflictKind, Entity, StoreError, StoreResult};
use crate::storage::{Created, Idempotency};

const COLUMNS: &str = "id, name, version, created_at, updated_at";

/// An `artist` row as read.
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

#[async_trait]
impl ArtistStore for SqliteStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        timed("list_artists", async {
            Ok(fetch_page_with_total(
                &self.pool,
                "artist",
                COLUMNS,
                query,
                |qb| push_total(qb, &query.filter),
                |qb| push_filter(qb, &query.filter),
                column,
                decode::<ArtistRow, Artist>,
            )
            .await?)
        })
        .await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        timed("get_artist", async { current(&self.pool, id).await }).await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        timed("insert_artist", async {
            self.writer
                .write_statement(new, |conn, new| Box::pin(insert(conn, new)))
                .await
        })
        .await
    }

    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed("insert_artist_once", async {
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

    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed("replace_artist", async {
            let change = |_: &Artist| new.clone();
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(update(conn, id, expected, change))
                })
                .await
        })
        .await
    }

    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed("patch_artist", async {
            let change = |current: &Artist| changes.apply(current);
            self.writer
                .write(&(id, expected, &change), |conn, &(id, expected, change)| {
                    Box::pin(update(conn, id, expected, change))
                })
                .await
        })
        .await
    }

    /// Deletes the artist (and, with `cascade`, its songs); on failure the writer undoes
    /// both.
    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed("delete_artist", async {
            self.writer
                .write(
                    &(id, cascade, expected),
                    |conn, &(id, cascade, expected)| {
                        Box::pin(async move {
                            let existing = current(&mut *conn, id).await?;
                            check_expected(expected, existing.version)?;
                            if cascade {
                                sqlx::query("delete from song where artist_id = ?")
                                    .bind(id.get())
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            let deleted = sqlx::query("delete from artist where id = ?")
                                .bind(id.get())
                                .execute(&mut *conn)
                                .await;
                            match deleted {
                                Ok(_) => Ok(()),
                                Err(error) if is_foreign_key_violation(&error) => {
                                    let songs: i64 = sqlx::query_scalar(
                                        "select count(*) from song where artist_id = ?",
                                    )
                                    .bind(id.get())
                                    .fetch_one(&mut *conn)
                                    .await?;
                                    Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                                        artist: id,
                                        songs,
                                    })
                                    .into())
                                }
                                Err(error) => Err(error.into()),
                            }
                        })
                    },
                )
                .await
        })
        .await
    }
}

/// The artist `id` as it is now, on the pool or on the writer's connection.
async fn current<'e>(executor: impl SqliteExecutor<'e>, id: ArtistId) -> Result<Artist> {
    sqlx::query_as::<_, ArtistRow>(
        "select id, name, version, created_at, updated_at from artist where id = ?",
    )
    .bind(id.get())
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| not_found(id))?
    .try_into()
}

/// Inserts the artist (on the writer's connection, inside its batch): one statement, for
/// `insert_artist`, `insert_artist_once` and the demo seed.
pub(super) async fn insert(conn: &mut SqliteConnection, new: &NewArtist) -> Result<Artist> {
    let at = now();
    sqlx::query_as::<_, ArtistRow>(
        "insert into artist (name, name_key, version, created_at, updated_at) \
         values (?, ?, 1, ?, ?) \
         returning id, name, version, created_at, updated_at",
    )
    .bind(new.name.as_str())
    .bind(search_key(new.name.as_str()))
    .bind(&at)
    .bind(&at)
    .fetch_one(conn)
    .await?
    .try_into()
}

/// Reads, checks `If-Match`, computes the replacement and writes it (`replace_artist`,
/// `patch_artist`). It runs on the writer's connection, so no other write comes between
/// the read and the update.
async fn update(
    conn: &mut SqliteConnection,
    id: ArtistId,
    expected: Option<&ExpectedVersions>,
    change: &(dyn Fn(&Artist) -> NewArtist + Send + Sync),
) -> Result<Artist> {
    let existing = current(&mut *conn, id).await?;
    check_expected(expected, existing.version)?;
    let next = change(&existing);
    sqlx::query_as::<_, ArtistRow>(
        "update artist set name = ?, name_key = ?, version = version + 1, updated_at = ? \
         where id = ? \
         returning id, name, version, created_at, updated_at",
    )
    .bind(next.name.as_str())
    .bind(search_key(next.name.as_str()))
    .bind(now())
    .bind(id.get())
    .fetch_one(conn)
    .await?
    .try_into()
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
