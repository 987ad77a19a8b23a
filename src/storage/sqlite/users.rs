//! Account use cases on SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{map_error, now};
use crate::domain::user::{NewUser, Role, User};
use crate::storage::{StoreError, StoreResult};

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

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(super) async fn insert(
    pool: &SqlitePool,
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
    .bind(new.username.key())
    .bind(new.email.as_str())
    .bind(new.email.key())
    .bind(password_hash)
    .bind(new.role.as_str())
    .bind(&at)
    .bind(&at)
    .fetch_one(pool)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            // One message for both: which one is taken is for the admin to see, not to
            // leak through registration.
            StoreError::Conflict("The username or email is already registered".to_owned())
        } else {
            map_error(error)
        }
    })?;
    from_row(&row)
}

pub(super) async fn find_by_username(
    pool: &SqlitePool,
    username: &str,
) -> StoreResult<Option<(User, String)>> {
    let row = sqlx::query(
        "select id, username, email, role, is_active, created_at, updated_at, password_hash \
         from app_user where username_key = ?",
    )
    .bind(username.to_ascii_lowercase())
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
