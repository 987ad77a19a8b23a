//! Account use cases on PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::list::{SortColumn, fetch_page};
use super::{is_unique_violation, map_error, now};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{NewUser, Role, User, UserChanges, UserSortField, UsernameKey};
use crate::storage::{ConflictKind, Entity, StoreError, StoreResult};

const COLUMNS: &str = "id, username, email, role, is_active, created_at, updated_at";

/// Advisory lock taken by every change that could remove an active admin, so that two
/// concurrent demotions (on any replicas) cannot both see the other admin and leave none.
const ADMIN_LOCK: i64 = 0x5354_4152_4144_4d4e; // "STARADMN"

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

fn from_row(row: &PgRow) -> StoreResult<User> {
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

pub(super) async fn insert(pool: &PgPool, new: &NewUser, password_hash: &str) -> StoreResult<User> {
    let row = sqlx::query(
        "insert into app_user (username, username_key, email, email_key, password_hash, role, \
         is_active, version, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, true, 1, $7, $7) \
         returning id, username, email, role, is_active, created_at, updated_at",
    )
    .bind(new.username.as_str())
    .bind(new.username.key().as_str())
    .bind(new.email.as_str())
    .bind(new.email.key())
    .bind(password_hash)
    .bind(new.role.as_str())
    .bind(now())
    .fetch_one(pool)
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
    pool: &PgPool,
    username: &UsernameKey,
) -> StoreResult<Option<(User, String)>> {
    let row = sqlx::query(
        "select id, username, email, role, is_active, created_at, updated_at, password_hash \
         from app_user where username_key = $1",
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

/// One account; `lock` also locks its row until the transaction ends.
pub(super) async fn get_in(conn: &mut PgConnection, id: i64, lock: bool) -> StoreResult<User> {
    let sql = if lock {
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = $1 for update"
    } else {
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = $1"
    };
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(map_error)?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn get(pool: &PgPool, id: i64) -> StoreResult<User> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    get_in(&mut conn, id, false).await
}

pub(super) async fn list(
    pool: &PgPool,
    query: &ListQuery<UserSortField, ()>,
) -> StoreResult<Page<User>> {
    fetch_page(pool, "app_user", COLUMNS, query, |_| {}, column, from_row).await
}

/// Fails with the last-admin conflict unless another active admin than `id` exists. Takes
/// [`ADMIN_LOCK`] first, held until the transaction ends.
async fn ensure_other_admin(conn: &mut PgConnection, id: i64) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(ADMIN_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    let others: i64 = sqlx::query_scalar(
        "select count(*) from app_user where role = 'admin' and is_active and id <> $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .map_err(map_error)?;
    if others == 0 {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin));
    }
    Ok(())
}

pub(super) async fn update(
    pool: &PgPool,
    id: i64,
    changes: &UserChanges,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let current = get_in(&mut tx, id, true).await?;
    let role = changes.role.unwrap_or(current.role);
    let is_active = changes.is_active.unwrap_or(current.is_active);
    let loses_admin =
        current.role == Role::Admin && current.is_active && (role != Role::Admin || !is_active);
    if loses_admin {
        ensure_other_admin(&mut tx, id).await?;
    }
    let mut update =
        QueryBuilder::<Postgres>::new("update app_user set version = version + 1, updated_at = ");
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
    let row = update.build().fetch_one(&mut *tx).await.map_err(|error| {
        if is_unique_violation(&error) {
            StoreError::Conflict(ConflictKind::EmailTaken)
        } else {
            map_error(error)
        }
    })?;
    let user = from_row(&row)?;
    if changes.revokes_sessions() {
        sqlx::query(
            "update refresh_token set revoked_at = $1 where user_id = $2 and revoked_at is null",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
    }
    tx.commit().await.map_err(map_error)?;
    Ok(user)
}

pub(super) async fn delete(pool: &PgPool, id: i64) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    let current = get_in(&mut tx, id, true).await?;
    if current.role == Role::Admin && current.is_active {
        ensure_other_admin(&mut tx, id).await?;
    }
    // Refresh tokens go with the account (ON DELETE CASCADE).
    sqlx::query("delete from app_user where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
    tx.commit().await.map_err(map_error)
}

pub(super) async fn has_active_admin(pool: &PgPool) -> StoreResult<bool> {
    sqlx::query_scalar("select exists (select 1 from app_user where role = 'admin' and is_active)")
        .fetch_one(pool)
        .await
        .map_err(map_error)
}
