//! Account use cases on SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::list::{SortColumn, fetch_page};
use super::{map_error, now};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{NewUser, Role, User, UserChanges, UserSortField, UsernameKey};
use crate::storage::{ConflictKind, Entity, StoreError, StoreResult};

const COLUMNS: &str = "id, username, email, role, is_active, created_at, updated_at";

fn column(field: UserSortField) -> SortColumn {
    let sql = match field {
        UserSortField::Id => "id",
        UserSortField::Username => "username_key",
        UserSortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        is_nullable: false,
    }
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        entity: Entity::User,
        id,
    }
}

fn from_row(row: &SqliteRow) -> StoreResult<User> {
    let role: String = row.try_get("role").map_err(map_error)?;
    Ok(User {
        id: row.try_get("id").map_err(map_error)?,
        username: row.try_get("username").map_err(map_error)?,
        email: row.try_get("email").map_err(map_error)?,
        role: Role::parse("role", &role)
            .map_err(|_| StoreError::Other(anyhow::anyhow!("stored role `{role}` is unknown")))?,
        is_active: row.try_get("is_active").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
}

pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    new: &NewUser,
    password_hash: &str,
) -> StoreResult<User> {
    let at = now();
    let row = sqlx::query(
        "insert into app_user (username, username_key, email, email_key, password_hash, role, \
         is_active, version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, 1, 1, ?, ?) \
         returning id, username, email, role, is_active, created_at, updated_at",
    )
    .bind(new.username.as_str())
    .bind(new.username.key().as_str().to_owned())
    .bind(new.email.as_str())
    .bind(new.email.key())
    .bind(password_hash)
    .bind(new.role.as_str())
    .bind(&at)
    .bind(&at)
    .fetch_one(conn)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            StoreError::Conflict(ConflictKind::UsernameOrEmailTaken)
        } else {
            map_error(error)
        }
    })?;
    from_row(&row)
}

pub(super) async fn find_by_username(
    pool: &SqlitePool,
    username: &UsernameKey,
) -> StoreResult<Option<(User, String)>> {
    let row = sqlx::query(
        "select id, username, email, role, is_active, created_at, updated_at, password_hash \
         from app_user where username_key = ?",
    )
    .bind(username.as_str())
    .fetch_optional(pool)
    .await
    .map_err(map_error)?;
    match row {
        Some(row) => {
            let hash: String = row.try_get("password_hash").map_err(map_error)?;
            Ok(Some((from_row(&row)?, hash)))
        }
        None => Ok(None),
    }
}

pub(super) async fn get_in(conn: &mut SqliteConnection, id: i64) -> StoreResult<User> {
    let row = sqlx::query(
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(map_error)?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn get(pool: &SqlitePool, id: i64) -> StoreResult<User> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    get_in(&mut conn, id).await
}

pub(super) async fn list(
    pool: &SqlitePool,
    query: &ListQuery<UserSortField, ()>,
) -> StoreResult<Page<User>> {
    fetch_page(pool, "app_user", COLUMNS, query, |_| {}, column, from_row).await
}

/// Active admins other than `id`.
async fn other_active_admins(conn: &mut SqliteConnection, id: i64) -> StoreResult<i64> {
    sqlx::query_scalar(
        "select count(*) from app_user where role = 'admin' and is_active = 1 and id <> ?",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .map_err(map_error)
}

pub(super) async fn update(
    conn: &mut SqliteConnection,
    id: i64,
    changes: &UserChanges,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let current = get_in(conn, id).await?;
    let role = changes.role.unwrap_or(current.role);
    let is_active = changes.is_active.unwrap_or(current.is_active);
    let loses_admin =
        current.role == Role::Admin && current.is_active && (role != Role::Admin || !is_active);
    if loses_admin && other_active_admins(conn, id).await? == 0 {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin));
    }
    let mut update =
        QueryBuilder::<Sqlite>::new("update app_user set version = version + 1, updated_at = ");
    update.push_bind(now());
    update.push(", role = ");
    update.push_bind(role.as_str());
    update.push(", is_active = ");
    update.push_bind(is_active);
    if let Some(email) = &changes.email {
        update.push(", email = ");
        update.push_bind(email.as_str().to_owned());
        update.push(", email_key = ");
        update.push_bind(email.key());
    }
    if let Some(hash) = password_hash {
        update.push(", password_hash = ");
        update.push_bind(hash.to_owned());
    }
    update.push(" where id = ");
    update.push_bind(id);
    update.push(format!(" returning {COLUMNS}"));
    let row = update
        .build()
        .fetch_one(&mut *conn)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(ConflictKind::EmailTaken)
            } else {
                map_error(error)
            }
        })?;
    let user = from_row(&row)?;
    if changes.revokes_sessions() {
        revoke_sessions(conn, id).await?;
    }
    Ok(user)
}

/// Revokes every refresh token of the account.
async fn revoke_sessions(conn: &mut SqliteConnection, user_id: i64) -> StoreResult<()> {
    sqlx::query("update refresh_token set revoked_at = ? where user_id = ? and revoked_at is null")
        .bind(now())
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(map_error)
}

pub(super) async fn delete(conn: &mut SqliteConnection, id: i64) -> StoreResult<()> {
    let current = get_in(conn, id).await?;
    if current.role == Role::Admin && current.is_active && other_active_admins(conn, id).await? == 0
    {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin));
    }
    // Refresh tokens go with the account (ON DELETE CASCADE).
    sqlx::query("delete from app_user where id = ?")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(map_error)
}

pub(super) async fn has_active_admin(pool: &SqlitePool) -> StoreResult<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from app_user where role = 'admin' and is_active = 1)",
    )
    .fetch_one(pool)
    .await
    .map_err(map_error)
}
