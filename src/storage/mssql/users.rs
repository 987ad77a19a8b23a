//! Account use cases on SQL Server.

use tiberius::Row;

use super::list::{SortColumn, fetch_page};
use super::pool::Conn;
use super::sql::{Sql, begin, finish};
use super::{Pool, is_unique_violation, map_error, now};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{NewUser, Role, User, UserChanges, UserSortField, UsernameKey};
use crate::storage::{ConflictKind, Entity, StoreError, StoreResult};

const COLUMNS: &str = "id, username, email, role, is_active, created_at, updated_at";

const INSERT: &str = "INSERT INTO dbo.app_user (username, username_key, email, email_key, \
     password_hash, role, is_active, version, created_at, updated_at) \
     OUTPUT INSERTED.id, INSERTED.username, INSERTED.email, INSERTED.role, INSERTED.is_active, \
     INSERTED.created_at, INSERTED.updated_at \
     VALUES (@P1, @P2, @P3, @P4, @P5, @P6, 1, 1, @P7, @P7)";
const FIND_BY_USERNAME: &str = "SELECT id, username, email, role, is_active, created_at, \
     updated_at, password_hash FROM dbo.app_user WHERE username_key = @P1";
const SELECT_ONE: &str = "SELECT id, username, email, role, is_active, created_at, updated_at \
     FROM dbo.app_user WHERE id = @P1";
const SELECT_ONE_LOCKED: &str = "SELECT id, username, email, role, is_active, created_at, \
     updated_at FROM dbo.app_user WITH (UPDLOCK, ROWLOCK) WHERE id = @P1";
/// Serialises every change that could remove an active admin (on any replica), so two
/// concurrent demotions cannot both see the other admin and leave none. Waits up to the
/// session's `LOCK_TIMEOUT`; the return code says whether the lock was granted.
const LOCK_ADMINS: &str = "DECLARE @granted INT; \
     EXEC @granted = sp_getapplock @Resource = N'starsongs_admins', \
     @LockMode = N'Exclusive', @LockOwner = N'Transaction'; \
     SELECT @granted";
const OTHER_ADMINS: &str = "SELECT COUNT_BIG(*) FROM dbo.app_user \
     WHERE role = 'admin' AND is_active = 1 AND id <> @P1";
const UPDATE: &str = "UPDATE dbo.app_user SET version = version + 1, updated_at = @P1, \
     role = @P2, is_active = @P3, email = COALESCE(@P4, email), \
     email_key = COALESCE(@P5, email_key), password_hash = COALESCE(@P6, password_hash) \
     OUTPUT INSERTED.id, INSERTED.username, INSERTED.email, INSERTED.role, INSERTED.is_active, \
     INSERTED.created_at, INSERTED.updated_at \
     WHERE id = @P7";
const REVOKE_SESSIONS: &str = "UPDATE dbo.refresh_token SET revoked_at = @P1 \
     WHERE user_id = @P2 AND revoked_at IS NULL";
const DELETE: &str = "DELETE FROM dbo.app_user WHERE id = @P1";
const HAS_ACTIVE_ADMIN: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM dbo.app_user \
     WHERE role = 'admin' AND is_active = 1) THEN 1 ELSE 0 END";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[
    INSERT,
    FIND_BY_USERNAME,
    SELECT_ONE,
    SELECT_ONE_LOCKED,
    LOCK_ADMINS,
    OTHER_ADMINS,
    UPDATE,
    REVOKE_SESSIONS,
    DELETE,
    HAS_ACTIVE_ADMIN,
];

fn column(field: UserSortField) -> SortColumn {
    let sql = match field {
        UserSortField::Id => "id",
        UserSortField::Username => "username_key",
        UserSortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        null_flag: None,
    }
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        entity: Entity::User,
        id,
    }
}

fn text(row: &Row, name: &str) -> StoreResult<String> {
    Ok(row
        .try_get::<&str, _>(name)
        .map_err(map_error)?
        .unwrap_or_default()
        .to_owned())
}

fn from_row(row: &Row) -> StoreResult<User> {
    let role = text(row, "role")?;
    let missing = |what: &str| StoreError::Other(anyhow::anyhow!("account row without {what}"));
    Ok(User {
        id: i64::from(
            row.try_get::<i32, _>("id")
                .map_err(map_error)?
                .ok_or_else(|| missing("id"))?,
        ),
        username: text(row, "username")?,
        email: text(row, "email")?,
        role: Role::parse("role", &role)
            .map_err(|_| StoreError::Other(anyhow::anyhow!("stored role `{role}` is unknown")))?,
        is_active: row
            .try_get("is_active")
            .map_err(map_error)?
            .unwrap_or_default(),
        created_at: row
            .try_get("created_at")
            .map_err(map_error)?
            .ok_or_else(|| missing("created_at"))?,
        updated_at: row
            .try_get("updated_at")
            .map_err(map_error)?
            .ok_or_else(|| missing("updated_at"))?,
    })
}

pub(super) async fn insert(pool: &Pool, new: &NewUser, password_hash: &str) -> StoreResult<User> {
    let mut conn = pool.get().await.map_err(map_error)?;
    let rows = Sql::with(
        INSERT,
        vec![
            Box::new(new.username.as_str().to_owned()),
            Box::new(new.username.key().as_str().to_owned()),
            Box::new(new.email.as_str().to_owned()),
            Box::new(new.email.key()),
            Box::new(password_hash.to_owned()),
            Box::new(new.role.as_str()),
            Box::new(now().fixed_offset()),
        ],
    )
    .rows_raw(&mut conn)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            StoreError::Conflict(ConflictKind::UsernameOrEmailTaken)
        } else {
            map_error(error)
        }
    })?;
    rows.first()
        .map(from_row)
        .unwrap_or_else(|| Err(StoreError::Other(anyhow::anyhow!("insert returned no row"))))
}

pub(super) async fn find_by_username(
    pool: &Pool,
    username: &UsernameKey,
) -> StoreResult<Option<(User, String)>> {
    let mut conn = pool.get().await.map_err(map_error)?;
    let row = Sql::with(
        FIND_BY_USERNAME,
        vec![Box::new(username.as_str().to_owned())],
    )
    .row(&mut conn)
    .await?;
    match row {
        Some(row) => Ok(Some((from_row(&row)?, text(&row, "password_hash")?))),
        None => Ok(None),
    }
}

pub(super) async fn get_in(conn: &mut Conn, id: i64, lock: bool) -> StoreResult<User> {
    let sql = if lock { SELECT_ONE_LOCKED } else { SELECT_ONE };
    let row = Sql::with(sql, vec![Box::new(id)]).row(conn).await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn get(pool: &Pool, id: i64) -> StoreResult<User> {
    let mut conn = pool.get().await.map_err(map_error)?;
    get_in(&mut conn, id, false).await
}

pub(super) async fn list(
    pool: &Pool,
    query: &ListQuery<UserSortField, ()>,
) -> StoreResult<Page<User>> {
    fetch_page(
        pool,
        "dbo.app_user",
        COLUMNS,
        query,
        |_| {},
        column,
        from_row,
    )
    .await
}

async fn ensure_other_admin(conn: &mut Conn, id: i64) -> StoreResult<()> {
    super::sql::applock(conn, &Sql::new(LOCK_ADMINS)).await?;
    let others = super::list::count(conn, &Sql::with(OTHER_ADMINS, vec![Box::new(id)])).await?;
    if others == 0 {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin));
    }
    Ok(())
}

pub(super) async fn update(
    pool: &Pool,
    id: i64,
    changes: &UserChanges,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let mut conn = pool.get().await.map_err(map_error)?;
    begin(&mut conn).await?;
    let result = async {
        let current = get_in(&mut conn, id, true).await?;
        let role = changes.role.unwrap_or(current.role);
        let is_active = changes.is_active.unwrap_or(current.is_active);
        let loses_admin =
            current.role == Role::Admin && current.is_active && (role != Role::Admin || !is_active);
        if loses_admin {
            ensure_other_admin(&mut conn, id).await?;
        }
        let rows = Sql::with(
            UPDATE,
            vec![
                Box::new(now().fixed_offset()),
                Box::new(role.as_str()),
                Box::new(is_active),
                Box::new(changes.email.as_ref().map(|e| e.as_str().to_owned())),
                Box::new(changes.email.as_ref().map(|e| e.key())),
                Box::new(password_hash.map(str::to_owned)),
                Box::new(id),
            ],
        )
        .rows_raw(&mut conn)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(ConflictKind::EmailTaken)
            } else {
                map_error(error)
            }
        })?;
        let user = rows
            .first()
            .map(from_row)
            .transpose()?
            .ok_or_else(|| not_found(id))?;
        if changes.revokes_sessions() {
            Sql::with(
                REVOKE_SESSIONS,
                vec![Box::new(now().fixed_offset()), Box::new(id)],
            )
            .execute(&mut conn)
            .await?;
        }
        Ok(user)
    }
    .await;
    finish(&mut conn, result).await
}

pub(super) async fn delete(pool: &Pool, id: i64) -> StoreResult<()> {
    let mut conn = pool.get().await.map_err(map_error)?;
    begin(&mut conn).await?;
    let result = async {
        let current = get_in(&mut conn, id, true).await?;
        if current.role == Role::Admin && current.is_active {
            ensure_other_admin(&mut conn, id).await?;
        }
        // Refresh tokens go with the account (ON DELETE CASCADE).
        Sql::with(DELETE, vec![Box::new(id)])
            .execute(&mut conn)
            .await
            .map(|_| ())
    }
    .await;
    finish(&mut conn, result).await
}

pub(super) async fn has_active_admin(pool: &Pool) -> StoreResult<bool> {
    let mut conn = pool.get().await.map_err(map_error)?;
    let row = Sql::new(HAS_ACTIVE_ADMIN).row(&mut conn).await?;
    Ok(row
        .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
        .is_some_and(|v| v == 1))
}

/// The list statements, for the parse test.
#[cfg(test)]
pub(super) fn sample_statements() -> Vec<String> {
    use crate::domain::list::SortValue;
    super::list::sample_pages(
        "dbo.app_user",
        COLUMNS,
        (),
        |_, _| {},
        column,
        |field| match field {
            UserSortField::Id => vec![SortValue::Int(3)],
            UserSortField::Username => vec![SortValue::Text("m".into())],
            UserSortField::CreatedAt => vec![SortValue::Timestamp(chrono::Utc::now())],
        },
    )
}
