//! Account use cases on SQL Server.

use async_trait::async_trait;
use tiberius::Row;

use super::list::{SortColumn, count, fetch_page};
use super::pool::Conn;
use super::sql::{Sql, applock, begin, column as get, finish, first, required, text};
use super::{DbError, Error, MssqlStore, Result, SYSTEM, is_unique_violation, now, other};
use crate::domain::ids::UserId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::UserWithPassword;
use crate::domain::user::{NewUser, Role, User, UserSortField, UsernameKey};
use crate::storage::metered::timed;
use crate::storage::{
    AccountStore, ConflictKind, DecideUserChanges, Entity, StoreError, StoreResult,
    decide_user_changes,
};

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

/// An account row (`COLUMNS`).
fn user(row: &Row) -> Result<User> {
    let role = text(row, "role")?;
    Ok(User {
        id: {
            let id = required::<i32>(row, "id", "account")?;
            UserId::try_from(i64::from(id))
                .map_err(|()| other(format!("account id {id} out of range")))?
        },
        username: text(row, "username")?,
        email: text(row, "email")?,
        role: Role::parse("role", &role)
            .map_err(|_| other(format!("stored role `{role}` is unknown")))?,
        is_active: get(row, "is_active")?.unwrap_or_default(),
        created_at: required(row, "created_at", "account")?,
        updated_at: required(row, "updated_at", "account")?,
    })
}

/// The account `id` on `conn`, its row locked for the transaction with `lock`.
pub(super) async fn get_user_in(conn: &mut Conn, id: i64, lock: bool) -> Result<User> {
    let sql = if lock { SELECT_ONE_LOCKED } else { SELECT_ONE };
    let row = Sql::with(sql, vec![Box::new(id)]).row(conn).await?;
    row.as_ref()
        .map(user)
        .transpose()?
        .ok_or_else(|| not_found(id).into())
}

async fn ensure_other_admin(conn: &mut Conn, id: i64) -> Result<()> {
    applock(conn, &Sql::new(LOCK_ADMINS)).await?;
    let others = count(conn, &Sql::with(OTHER_ADMINS, vec![Box::new(id)])).await?;
    if others == 0 {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin).into());
    }
    Ok(())
}

/// A unique violation on an account write is the conflict `kind`; anything else is
/// mapped by the table in `mod.rs`.
fn taken(error: DbError, kind: ConflictKind) -> Error {
    if is_unique_violation(&error) {
        StoreError::Conflict(kind).into()
    } else {
        error.into()
    }
}

#[async_trait]
impl AccountStore for MssqlStore {
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed(
            SYSTEM,
            "insert_user",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
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
                .map_err(|error| taken(error, ConflictKind::UsernameOrEmailTaken))?;
                first(&rows, user)
            }),
        )
        .await
    }

    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<UserWithPassword>> {
        timed(
            SYSTEM,
            "find_user_by_username",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let row = Sql::with(
                    FIND_BY_USERNAME,
                    vec![Box::new(username.as_str().to_owned())],
                )
                .row(&mut conn)
                .await?;
                match row {
                    Some(row) => Ok(Some(UserWithPassword {
                        user: user(&row)?,
                        password_hash: text(&row, "password_hash")?,
                    })),
                    None => Ok(None),
                }
            }),
        )
        .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        timed(
            SYSTEM,
            "get_user",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                get_user_in(&mut conn, id.get(), false).await
            }),
        )
        .await
    }

    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>> {
        timed(
            SYSTEM,
            "list_users",
            self.run(|| async move {
                let page = fetch_page(
                    &self.pool,
                    "dbo.app_user",
                    COLUMNS,
                    query,
                    |_| {},
                    column,
                    |row| Ok(user(row)?),
                )
                .await?;
                Ok(page)
            }),
        )
        .await
    }

    async fn update_user(
        &self,
        id: UserId,
        decide: &DecideUserChanges<'_>,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        let id = id.get();
        timed(
            SYSTEM,
            "update_user",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let current = get_user_in(&mut conn, id, true).await?;
                    let (changes, password_hash) =
                        decide_user_changes(decide, &current, password_hash)?;
                    let role = changes.role.unwrap_or(current.role);
                    let is_active = changes.is_active.unwrap_or(current.is_active);
                    let loses_admin = current.role == Role::Admin
                        && current.is_active
                        && (role != Role::Admin || !is_active);
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
                    .map_err(|error| taken(error, ConflictKind::EmailTaken))?;
                    let updated = rows
                        .first()
                        .map(user)
                        .transpose()?
                        .ok_or_else(|| Error::from(not_found(id)))?;
                    if changes.revokes_sessions() {
                        Sql::with(
                            REVOKE_SESSIONS,
                            vec![Box::new(now().fixed_offset()), Box::new(id)],
                        )
                        .execute(&mut conn)
                        .await?;
                    }
                    Ok(updated)
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        let id = id.get();
        timed(
            SYSTEM,
            "delete_user",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let current = get_user_in(&mut conn, id, true).await?;
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
            }),
        )
        .await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        timed(
            SYSTEM,
            "has_active_admin",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let row = Sql::new(HAS_ACTIVE_ADMIN).row(&mut conn).await?;
                Ok(row
                    .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
                    .is_some_and(|v| v == 1))
            }),
        )
        .await
    }
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
