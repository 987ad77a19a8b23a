//! Artist use cases on SQL Server (`dbo.Artist`, the original system's table).

use tiberius::Row;

use super::idempotency::create_once;
use super::list::{SortColumn, contains_pattern, fetch_page};
use super::pool::Conn;
use super::sql::{Sql, begin, finish};
use super::{DbError, Pool, check_expected, is_foreign_key_violation, map_error, now};
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::artist::{ArtistFilter, ArtistSortField};
use crate::domain::ids::ArtistId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::validation::search_key;
use crate::domain::version::ExpectedVersions;
use crate::storage::{ConflictKind, Entity, StoreError, StoreResult};
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

pub(super) fn from_row(row: &Row) -> StoreResult<Artist> {
    let get = |e: tiberius::error::Error| map_error(e);
    let id: i32 = row.try_get("id").map_err(get)?.unwrap_or_default();
    Ok(Artist {
        id: ArtistId::try_from(i64::from(id))
            .map_err(|()| StoreError::Other(anyhow::anyhow!("artist id {id} out of range")))?,
        name: row
            .try_get::<&str, _>("name")
            .map_err(get)?
            .unwrap_or_default()
            .to_owned(),
        version: row.try_get("version").map_err(get)?.unwrap_or_default(),
        created_at: row
            .try_get("created_at")
            .map_err(get)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("artist without created_at")))?,
        updated_at: row
            .try_get("updated_at")
            .map_err(get)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("artist without updated_at")))?,
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

pub(super) async fn list(
    pool: &Pool,
    query: &ListQuery<ArtistSortField, ArtistFilter>,
) -> StoreResult<Page<Artist>> {
    fetch_page(
        pool,
        "dbo.Artist",
        COLUMNS,
        query,
        |sql| push_filter(sql, &query.filter),
        column,
        from_row,
    )
    .await
}

async fn get_with(conn: &mut Conn, id: ArtistId, lock: bool) -> StoreResult<Artist> {
    let text = if lock { SELECT_ONE_LOCKED } else { SELECT_ONE };
    let row = Sql::with(text, vec![Box::new(id.get())]).row(conn).await?;
    row.as_ref()
        .map(from_row)
        .unwrap_or_else(|| Err(not_found(id)))
}

pub(super) async fn get(pool: &Pool, id: ArtistId) -> StoreResult<Artist> {
    let mut conn = pool.get().await.map_err(map_error)?;
    get_with(&mut conn, id, false).await
}

pub(super) async fn insert_with(conn: &mut Conn, new: &NewArtist) -> StoreResult<Artist> {
    let row = Sql::with(
        INSERT,
        vec![
            Box::new(new.name.as_str().to_owned()),
            Box::new(search_key(new.name.as_str())),
            Box::new(now().fixed_offset()),
        ],
    )
    .row(conn)
    .await?;
    row.as_ref()
        .map(from_row)
        .unwrap_or_else(|| Err(StoreError::Other(anyhow::anyhow!("insert returned no row"))))
}

pub(super) async fn insert(pool: &Pool, new: &NewArtist) -> StoreResult<Artist> {
    let mut conn = pool.get().await.map_err(map_error)?;
    insert_with(&mut conn, new).await
}

/// Creates the artist at most once per idempotency key (see `idempotency::create_once`).
pub(super) async fn insert_once(
    pool: &Pool,
    new: &NewArtist,
    idempotency: &Idempotency<'_, Artist>,
) -> StoreResult<Created<Artist>> {
    create_once(pool, new, idempotency, |conn, new| {
        Box::pin(insert_with(conn, new))
    })
    .await
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

/// Replaces the artist in one conditional statement. No row updated means absent (404)
/// or at another version (412).
pub(super) async fn replace(
    pool: &Pool,
    id: ArtistId,
    new: &NewArtist,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Artist> {
    let mut conn = pool.get().await.map_err(map_error)?;
    let row = update_statement(id, new, expected).row(&mut conn).await?;
    match row {
        Some(row) => from_row(&row),
        None => {
            get_with(&mut conn, id, false).await?;
            Err(StoreError::PreconditionFailed)
        }
    }
}

/// Applies a merge patch to the locked row.
pub(super) async fn patch(
    pool: &Pool,
    id: ArtistId,
    changes: &ArtistChanges,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<Artist> {
    let mut conn = pool.get().await.map_err(map_error)?;
    begin(&mut conn).await?;
    let result = async {
        let current = get_with(&mut conn, id, true).await?;
        check_expected(expected, current.version)?;
        let row = update_statement(id, &changes.apply(&current), None)
            .row(&mut conn)
            .await?;
        row.as_ref()
            .map(from_row)
            .unwrap_or_else(|| Err(not_found(id)))
    }
    .await;
    finish(&mut conn, result).await
}

/// Deletes the artist (and, with `cascade`, its songs) in one transaction; without it,
/// `FK_Song_Artist` (NO ACTION) refuses while songs refer to it (547, a conflict).
pub(super) async fn delete(
    pool: &Pool,
    id: ArtistId,
    cascade: bool,
    expected: Option<&ExpectedVersions>,
) -> StoreResult<()> {
    let mut conn = pool.get().await.map_err(map_error)?;
    begin(&mut conn).await?;
    // The outer result is the checks; the inner one the delete, kept as a driver error so
    // a foreign-key refusal can be told apart.
    let result: StoreResult<Result<u64, DbError>> = async {
        let current = get_with(&mut conn, id, true).await?;
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
            finish(&mut conn, Err::<(), _>(map_error(error))).await.ok();
            let songs =
                super::list::count(&mut conn, &Sql::with(COUNT_SONGS, vec![Box::new(id.get())]))
                    .await?;
            Err(StoreError::Conflict(ConflictKind::ArtistHasSongs {
                artist: id,
                songs,
            }))
        }
        Ok(deleted) => finish(&mut conn, deleted.map(|_| ()).map_err(map_error)).await,
        Err(error) => finish(&mut conn, Err(error)).await,
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
