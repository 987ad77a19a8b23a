//! Refresh tokens, API keys and failed-login counters on SQLite.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::list::{SortColumn, fetch_page};
use super::timestamp_key;
use super::users::is_unique_violation;
use super::{map_error, now};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LOGIN_FAILURE_WINDOW, LoginGate, MAX_LOGIN_FAILURES, NewApiKey,
    NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{Role, UsernameKey};
use crate::domain::validation::search_key;
use crate::storage::{Entity, StoreError, StoreResult};

// ---- refresh tokens ----

pub(super) async fn insert_refresh(
    conn: &mut SqliteConnection,
    token: &NewRefreshToken,
) -> StoreResult<()> {
    sqlx::query(
        "insert into refresh_token \
           (token_hash, family_id, user_id, expires_at, created_at, session_started_at) \
         values (?, ?, ?, ?, ?, ?)",
    )
    .bind(token.token_hash.as_str())
    .bind(&token.family_id)
    .bind(token.user_id)
    .bind(timestamp_key(&token.expires_at))
    .bind(now())
    .bind(timestamp_key(&token.session_started_at))
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(map_error)
}

async fn revoke_family(conn: &mut SqliteConnection, family_id: &str) -> StoreResult<()> {
    sqlx::query(
        "update refresh_token set revoked_at = ? where family_id = ? and revoked_at is null",
    )
    .bind(now())
    .bind(family_id)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(map_error)
}

/// Exchanges the token with digest `presented` for one with digest `next_hash` on the
/// writer's connection, so two concurrent exchanges of one token cannot both succeed.
pub(super) async fn rotate_refresh(
    conn: &mut SqliteConnection,
    presented: &SecretDigest,
    next_hash: &SecretDigest,
    next_expires_at: DateTime<Utc>,
    session_max: chrono::Duration,
) -> StoreResult<Rotation> {
    let row = sqlx::query(
        "select t.id, t.family_id, t.user_id, t.expires_at, t.spent_at, t.revoked_at, \
           coalesce(t.session_started_at, t.created_at) as session_started_at, u.is_active \
         from refresh_token t join app_user u on u.id = t.user_id where t.token_hash = ?",
    )
    .bind(presented.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_error)?;
    let Some(row) = row else {
        return Ok(Rotation::Rejected);
    };
    let get = |name: &str| -> StoreResult<Option<String>> { row.try_get(name).map_err(map_error) };
    let family_id: String = row.try_get("family_id").map_err(map_error)?;
    let user_id: i64 = row.try_get("user_id").map_err(map_error)?;
    let token_id: i64 = row.try_get("id").map_err(map_error)?;
    let is_active: bool = row.try_get("is_active").map_err(map_error)?;
    let stamp = now();
    if get("revoked_at")?.is_some() {
        return Ok(Rotation::Rejected);
    }
    if get("spent_at")?.is_some() {
        // A spent token presented again: it was stolen, or a client replayed it. Either
        // way nobody may go on with this login.
        revoke_family(conn, &family_id).await?;
        return Ok(Rotation::Reused { family_id });
    }
    let expired = get("expires_at")?.is_none_or(|at| at <= stamp);
    let started: DateTime<Utc> = row.try_get("session_started_at").map_err(map_error)?;
    let session_ends = started + session_max;
    if expired || !is_active || timestamp_key(&session_ends) <= stamp {
        return Ok(Rotation::Rejected);
    }
    sqlx::query("update refresh_token set spent_at = ? where id = ?")
        .bind(&stamp)
        .bind(token_id)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    insert_refresh(
        &mut *conn,
        &NewRefreshToken {
            token_hash: next_hash.clone(),
            family_id: family_id.clone(),
            user_id,
            expires_at: next_expires_at.min(session_ends),
            session_started_at: started,
        },
    )
    .await?;
    let user = super::users::get_in(conn, user_id).await?;
    Ok(Rotation::Rotated { user, family_id })
}

/// Revokes the family of the token with digest `presented`; its id, or `None` if no such
/// token.
pub(super) async fn revoke_refresh(
    conn: &mut SqliteConnection,
    presented: &SecretDigest,
) -> StoreResult<Option<String>> {
    let family: Option<String> =
        sqlx::query_scalar("select family_id from refresh_token where token_hash = ?")
            .bind(presented.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_error)?;
    let Some(family) = family else {
        return Ok(None);
    };
    revoke_family(conn, &family).await?;
    Ok(Some(family))
}

/// Whether some token of the family `family_id` is not revoked.
pub(super) async fn is_session_active(pool: &SqlitePool, family_id: &str) -> StoreResult<bool> {
    sqlx::query_scalar::<_, i64>(
        "select exists (select 1 from refresh_token where family_id = ? and revoked_at is null)",
    )
    .bind(family_id)
    .fetch_one(pool)
    .await
    .map(|found| found != 0)
    .map_err(map_error)
}

/// Deletes expired refresh tokens, tokens revoked over a day ago, and failure counters
/// older than the lockout window. Returns the number of rows deleted.
pub(super) async fn prune(conn: &mut SqliteConnection, at: DateTime<Utc>) -> StoreResult<u64> {
    let stamp = timestamp_key(&at);
    let day_ago = timestamp_key(&(at - chrono::Duration::days(1)));
    let window_ago = timestamp_key(&(at - LOGIN_FAILURE_WINDOW));
    let tokens = sqlx::query("delete from refresh_token where expires_at <= ? or revoked_at <= ?")
        .bind(&stamp)
        .bind(&day_ago)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?
        .rows_affected();
    let failures = sqlx::query("delete from login_failure where last_failure_at <= ?")
        .bind(&window_ago)
        .execute(conn)
        .await
        .map_err(map_error)?
        .rows_affected();
    Ok(tokens + failures)
}

// ---- failed logins ----

fn gate_from_row(row: Option<&SqliteRow>, at: DateTime<Utc>) -> StoreResult<LoginGate> {
    let Some(row) = row else {
        return Ok(LoginGate::Open);
    };
    let failures: i64 = row.try_get("failures").map_err(map_error)?;
    let last: DateTime<Utc> = row.try_get("last_failure_at").map_err(map_error)?;
    Ok(LoginGate::from_failures(
        u32::try_from(failures).unwrap_or(u32::MAX),
        last,
        at,
    ))
}

/// Claims one attempt (see `Store::claim_login_attempt`) in one upsert on the writer's
/// connection. Failures are counted in a window that starts at the first failure and
/// lasts [`LOGIN_FAILURE_WINDOW`]; an attempt after the window starts a new count. While
/// the name is locked the `where` clause leaves the row alone and nothing is returned.
pub(super) async fn claim_login_attempt(
    conn: &mut SqliteConnection,
    username_key: &UsernameKey,
    at: DateTime<Utc>,
) -> StoreResult<LoginGate> {
    let stamp = timestamp_key(&at);
    let window_start = timestamp_key(&(at - LOGIN_FAILURE_WINDOW));
    let claimed = sqlx::query(
        "insert into login_failure (username_key, failures, window_started_at, last_failure_at) \
         values (?1, 1, ?2, ?2) \
         on conflict (username_key) do update set \
           failures = case when window_started_at <= ?3 then 1 else failures + 1 end, \
           window_started_at = case when window_started_at <= ?3 then ?2 else window_started_at end, \
           last_failure_at = ?2 \
         where not (failures >= ?4 and last_failure_at > ?3) \
         returning failures",
    )
    .bind(username_key.as_str())
    .bind(&stamp)
    .bind(&window_start)
    .bind(i64::from(MAX_LOGIN_FAILURES))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_error)?;
    if claimed.is_some() {
        return Ok(LoginGate::Open);
    }
    let row =
        sqlx::query("select failures, last_failure_at from login_failure where username_key = ?")
            .bind(username_key.as_str())
            .fetch_optional(conn)
            .await
            .map_err(map_error)?;
    gate_from_row(row.as_ref(), at)
}

pub(super) async fn clear_login_failures(
    conn: &mut SqliteConnection,
    username_key: &UsernameKey,
) -> StoreResult<()> {
    sqlx::query("delete from login_failure where username_key = ?")
        .bind(username_key.as_str())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(map_error)
}

// ---- API keys ----

const KEY_COLUMNS: &str = "id, name, prefix, role, created_at";

fn key_column(field: ApiKeySortField) -> SortColumn {
    let sql = match field {
        ApiKeySortField::Id => "id",
        ApiKeySortField::Name => "name_key",
        ApiKeySortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        is_nullable: false,
    }
}

fn key_from_row(row: &SqliteRow) -> StoreResult<ApiKey> {
    let role: String = row.try_get("role").map_err(map_error)?;
    Ok(ApiKey {
        id: row.try_get("id").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        prefix: row.try_get("prefix").map_err(map_error)?,
        role: match Role::parse("role", &role) {
            Ok(role @ (Role::Viewer | Role::Editor)) => role,
            _ => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "stored API key role `{role}` is invalid"
                )));
            }
        },
        created_at: row.try_get("created_at").map_err(map_error)?,
    })
}

pub(super) async fn insert_api_key(
    conn: &mut SqliteConnection,
    new: &NewApiKey,
    key_hash: &SecretDigest,
    prefix: &str,
) -> StoreResult<ApiKey> {
    let row = sqlx::query(
        "insert into api_key (name, name_key, key_hash, prefix, role, created_at) \
         values (?, ?, ?, ?, ?, ?) returning id, name, prefix, role, created_at",
    )
    .bind(&new.name)
    .bind(search_key(&new.name))
    .bind(key_hash.as_str())
    .bind(prefix)
    .bind(new.role.as_str())
    .bind(now())
    .fetch_one(conn)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            StoreError::Other(anyhow::anyhow!("generated API key collided"))
        } else {
            map_error(error)
        }
    })?;
    key_from_row(&row)
}

pub(super) async fn list_api_keys(
    pool: &SqlitePool,
    query: &ListQuery<ApiKeySortField, ()>,
) -> StoreResult<Page<ApiKey>> {
    fetch_page(
        pool,
        "api_key",
        KEY_COLUMNS,
        query,
        |_| {},
        key_column,
        key_from_row,
    )
    .await
}

pub(super) async fn find_api_key(
    pool: &SqlitePool,
    key_hash: &SecretDigest,
) -> StoreResult<Option<ApiKey>> {
    let row =
        sqlx::query("select id, name, prefix, role, created_at from api_key where key_hash = ?")
            .bind(key_hash.as_str())
            .fetch_optional(pool)
            .await
            .map_err(map_error)?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn delete_api_key(conn: &mut SqliteConnection, id: i64) -> StoreResult<()> {
    let deleted = sqlx::query("delete from api_key where id = ?")
        .bind(id)
        .execute(conn)
        .await
        .map_err(map_error)?
        .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound {
            entity: Entity::ApiKey,
            id,
        });
    }
    Ok(())
}
