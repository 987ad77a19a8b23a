//! Artist use cases on SQL Server (`dbo.Artist`, the original system's table).

use async_trait::async_trait;
use tiberius::Row;

use super::idempotency::create_once;
use super::list::{SortColumn, contains_pattern, count, fetch_page};
use super::pool::Conn;
use super::sql::{Sql, begin, column as get, finish, first, required, text};
use super::{
    Error, MssqlStore, Result, SYSTEM, check_expected, is_foreign_key_violation, now, other,
};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::ids::ArtistId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::metered::timed;
use crate::storage::{ArtistStore, ConflictKind, Entity, StoreError, StoreResult};
use crate::storage::{Created, Idempotency};

const COLUMNS: &str = "id, name, version, created_at, updated_at";

const SELECT_ONE: &str =
    "SELECT id, name, version, created_at, updated_at FROM dbo.Artist WHERE id = @P1";
/// `UPDLOCK, ROWLOCK`: the row stays locked for the rest of the transaction, so a
/// concurrent patch or delete waits instead of deciding on a stale version.
const SELECT_ONE_LOCKED: &str = "SELECT id, name, version, created_at, updated_at \
     FROM dbo.Artist WITH (UPDLOCK, ROWLOCK) WHERE id = @P1";
const INSERT: &str = "INSERT INTO dbo.Artist (name, name_key, version, created_at, updated_at) \
     OUTPUT INSERTED.id, INSERTED.name, INSERTED.version, INSERTED.created_at, INSERTED.updated_at \
     VALUES (@P1, @P2, 1, @P3, @P3)";
/// The update of a replace (`version` checked by the caller's `AND version IN (...)`).
const UPDATE: &str = "UPDATE dbo.Artist SET name = @P1, name_key = @P2, version = version + 1, \
     updated_at = @P3 \
     OUTPUT INSERTED.id, INSERTED.name, INSERTED.version, INSERTED.created_at, INSERTED.updated_at \
     WHERE id = @P4";
const DELETE_SONGS: &str = "DELETE FROM dbo.Song WHERE artistID = @P1";
const DELETE: &str = "DELETE FROM dbo.Artist WHERE id = @P1";
const COUNT_SONGS: &str = "SELECT COUNT_BIG(*) FROM dbo.Song WHERE artistID = @P1";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[
    SELECT_ONE,
    SELECT_ONE_LOCKED,
    INSERT,
    UPDATE,
    DELETE_SONGS,
    DELETE,
    COUNT_SONGS,
];

fn column(field: ArtistSortField) -> SortColumn {
    let sql = match field {
        ArtistSortField::Id => "id",
        ArtistSortField::Name => "name",
        ArtistSortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        null_flag: None,
    }
}

/// An artist row (`id, name, version, created_at, updated_at`).
fn artist(row: &Row) -> Result<Artist> {
    let id: i32 = get(row, "id")?.unwrap_or_default();
    Ok(Artist {
        id: ArtistId::try_from(i64::from(id))
            .map_err(|()| other(format!("artist id {id} out of range")))?,
        name: text(row, "name")?,
        version: get(row, "version")?.unwrap_or_default(),
        created_at: required(row, "created_at", "artist")?,
        updated_at: required(row, "updated_at", "artist")?,
    })
}

fn not_found(id: ArtistId) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Artist,
        id: id.get(),
    }
}

fn push_filter(sql: &mut Sql, filter: &ArtistFilter) {
    if let Some(q) = &filter.q {
        sql.push(" AND name_key LIKE ")
            .bind(contains_pattern(q))
            .push(" ESCAPE '\\'");
    }
}

async fn get_in(conn: &mut Conn, id: ArtistId, lock: bool) -> Result<Artist> {
    let text = if lock { SELECT_ONE_LOCKED } else { SELECT_ONE };
    let row = Sql::with(text, vec![Box::new(id.get())]).row(conn).await?;
    row.as_ref()
        .map(artist)
        .unwrap_or_else(|| Err(not_found(id).into()))
}

/// Inserts the artist on `conn` (a plain insert, an idempotent one, the demo seed).
pub(super) async fn insert_artist_in(conn: &mut Conn, new: &NewArtist) -> Result<Artist> {
    let rows = Sql::with(
        INSERT,
        vec![
            Box::new(new.name.as_str().to_owned()),
            Box::new(search_key(new.name.as_str())),
            Box::new(now().fixed_offset()),
        ],
    )
    .rows(conn)
    .await?;
    first(&rows, artist)
}

/// The conditional update: `UPDATE` with `AND version IN (@Pn, ...)` when `expected`.
fn update_statement(id: ArtistId, next: &NewArtist, expected: Option<&ExpectedVersions>) -> Sql {
    let mut sql = Sql::with(
        UPDATE,
        vec![
            Box::new(next.name.as_str().to_owned()),
            Box::new(search_key(next.name.as_str())),
            Box::new(now().fixed_offset()),
            Box::new(id.get()),
        ],
    );
    push_versions(&mut sql, expected);
    sql
}

/// Appends the `If-Match` condition: the row's version is one of `expected`, passed as
/// ONE parameter (`,3,9,`) whatever the number of tags, since SQL Server takes at most
/// 2,100 parameters a statement and a header may list thousands of distinct versions.
/// The row is found by its key first, so the text search costs nothing measurable.
/// No versions is a condition nothing meets.
pub(super) fn push_versions(sql: &mut Sql, expected: Option<&ExpectedVersions>) {
    let Some(expected) = expected else { return };
    if expected.versions().is_empty() {
        sql.push(" AND 1 = 0");
        return;
    }
    sql.push(" AND CHARINDEX(CONCAT(N',', version, N','), ")
        .bind(version_list(expected))
        .push(") > 0");
}

/// The versions as `,v1,v2,...,`, so that `,v,` finds exactly one of them.
fn version_list(expected: &ExpectedVersions) -> String {
    let mut list = String::from(",");
    for version in expected.versions() {
        list.push_str(&version.to_string());
        list.push(',');
    }
    list
}

#[async_trait]
impl ArtistStore for MssqlStore {
    async fn list_artists(
        &self,
        query: &ListQuery<ArtistSortField, ArtistFilter>,
    ) -> StoreResult<Page<Artist>> {
        timed(
            SYSTEM,
            "list_artists",
            self.run(|| async move {
                let page = fetch_page(
                    &self.pool,
                    "dbo.Artist",
                    COLUMNS,
                    query,
                    |sql| push_filter(sql, &query.filter),
                    column,
                    |row| Ok(artist(row)?),
                )
                .await?;
                Ok(page)
            }),
        )
        .await
    }

    async fn get_artist(&self, id: ArtistId) -> StoreResult<Artist> {
        timed(
            SYSTEM,
            "get_artist",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                get_in(&mut conn, id, false).await
            }),
        )
        .await
    }

    async fn insert_artist(&self, new: &NewArtist) -> StoreResult<Artist> {
        timed(
            SYSTEM,
            "insert_artist",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                insert_artist_in(&mut conn, new).await
            }),
        )
        .await
    }

    /// Creates the artist at most once per idempotency key (see `idempotency::create_once`).
    async fn insert_artist_once(
        &self,
        new: &NewArtist,
        idempotency: &Idempotency<'_, Artist>,
    ) -> StoreResult<Created<Artist>> {
        timed(
            SYSTEM,
            "insert_artist_once",
            self.run(|| {
                create_once(&self.pool, new, idempotency, |conn, new| {
                    Box::pin(insert_artist_in(conn, new))
                })
            }),
        )
        .await
    }

    /// Replaces the artist in one conditional statement. No row updated means absent
    /// (404) or at another version (412).
    async fn replace_artist(
        &self,
        id: ArtistId,
        new: &NewArtist,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(
            SYSTEM,
            "replace_artist",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let row = update_statement(id, new, expected).row(&mut conn).await?;
                match row {
                    Some(row) => artist(&row),
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
    async fn patch_artist(
        &self,
        id: ArtistId,
        changes: &ArtistChanges,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<Artist> {
        timed(
            SYSTEM,
            "patch_artist",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let current = get_in(&mut conn, id, true).await?;
                    check_expected(expected, current.version)?;
                    let row = update_statement(id, &changes.apply(&current), None)
                        .row(&mut conn)
                        .await?;
                    row.as_ref()
                        .map(artist)
                        .unwrap_or_else(|| Err(not_found(id).into()))
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    /// Deletes the artist (and, with `cascade`, its songs) in one transaction; without
    /// it, `FK_Song_Artist` (NO ACTION) refuses while songs refer to it (547, a conflict).
    async fn delete_artist(
        &self,
        id: ArtistId,
        cascade: bool,
        expected: Option<&ExpectedVersions>,
    ) -> StoreResult<()> {
        timed(
            SYSTEM,
            "delete_artist",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                // The outer result is the checks; the inner one the delete, kept as a
                // driver error so a foreign-key refusal can be told apart.
                let result: Result<Result<u64, _>> = async {
                    let current = get_in(&mut conn, id, true).await?;
                    check_expected(expected, current.version)?;
                    if cascade {
                        Sql::with(DELETE_SONGS, vec![Box::new(id.get())])
                            .execute(&mut conn)
                            .await?;
                    }
                    Ok(Sql::with(DELETE, vec![Box::new(id.get())])
                        .execute_raw(&mut conn)
                        .await)
                }
                .await;
                match result {
                    Ok(Err(error)) if is_foreign_key_violation(&error) => {
                        finish(&mut conn, Err::<(), _>(Error::from(error)))
                            .await
                            .ok();
                        let songs =
                            count(&mut conn, &Sql::with(COUNT_SONGS, vec![Box::new(id.get())]))
                                .await?;
                        Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                            artist: id,
                            songs,
                        })
                        .into())
                    }
                    Ok(deleted) => {
                        finish(&mut conn, deleted.map(|_| ()).map_err(Error::from)).await
                    }
                    Err(error) => finish(&mut conn, Err(error)).await,
                }
            }),
        )
        .await
    }
}

/// The list statements, for the parse test.
#[cfg(test)]
pub(super) fn sample_statements() -> Vec<String> {
    use crate::domain::list::SortValue;
    let value_of = |field: ArtistSortField| match field {
        ArtistSortField::Id => vec![SortValue::Int(3)],
        ArtistSortField::Name => vec![SortValue::Text("M".into())],
        ArtistSortField::CreatedAt => vec![SortValue::Timestamp(chrono::Utc::now())],
    };
    let mut out = super::list::sample_pages(
        "dbo.Artist",
        COLUMNS,
        ArtistFilter {
            q: Some("x".into()),
        },
        push_filter,
        column,
        value_of,
    );
    for expected in [
        None,
        Some(ExpectedVersions::new(vec![])),
        Some(ExpectedVersions::new(vec![1, 2])),
    ] {
        let new = NewArtist::parse("Sample").unwrap();
        let id = ArtistId::try_from(1).unwrap();
        out.push(
            update_statement(id, &new, expected.as_ref())
                .text()
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_binds_one_parameter_whatever_the_number_of_tags() {
        let new = NewArtist::parse("Sample").unwrap();
        let id = ArtistId::try_from(1).unwrap();
        // More distinct versions than SQL Server's 2,100 parameters a statement.
        let many = ExpectedVersions::new((1..=5_000).collect());

        let sql = update_statement(id, &new, Some(&many));

        assert_eq!(sql.param_count(), 5, "four values and one version list");
        assert!(
            sql.text()
                .ends_with("AND CHARINDEX(CONCAT(N',', version, N','), @P5) > 0")
        );
        assert_eq!(
            version_list(&ExpectedVersions::new(vec![12, 3, 12])),
            ",3,12,",
            "`,2,` cannot match inside `,12,`"
        );
    }
}
