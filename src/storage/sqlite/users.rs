//! Account use cases on SQLite: `impl AccountStore`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor};

use super::list::{SortColumn, fetch_page};
use super::out_of_range;
use super::{Error, Result, SqliteStore, decode, is_unique_violation, map_error, now, timed};
use crate::domain::ids::UserId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::UserWithPassword;
use crate::domain::user::{NewUser, Role, User, UserSortField, UsernameKey};
use crate::storage::{
    AccountStore, ConflictKind, DecideUserChanges, Entity, StoreError, StoreResult,
    decide_user_changes,
};

const COLUMNS: &str = "id, username, email, role, is_active, created_at, updated_at";

/// An `app_user` row as read (never its password hash).
#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: String,
    role: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self> {
        let role = Role::parse("role", &row.role).map_err(|_| {
            StoreError::Other(anyhow::anyhow!("stored role `{}` is unknown", row.role))
        })?;
        Ok(Self {
            id: UserId::try_from(row.id).map_err(|()| out_of_range("user id", row.id))?,
            username: row.username,
            email: row.email,
            role,
            is_active: row.is_active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An `app_user` row with its password hash, for the login check.
#[derive(sqlx::FromRow)]
struct UserWithHashRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

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

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed("insert_user", async {
            self.writer
                .write(&(new, password_hash), |conn, &(new, password_hash)| {
                    Box::pin(async move {
                        let at = now();
                        sqlx::query_as::<_, UserRow>(
                            "insert into app_user (username, username_key, email, email_key, \
                             password_hash, role, is_active, version, created_at, updated_at) \
                             values (?, ?, ?, ?, ?, ?, 1, 1, ?, ?) \
                             returning id, username, email, role, is_active, created_at, \
                             updated_at",
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
                        })?
                        .try_into()
                    })
                })
                .await
        })
        .await
    }

    async fn find_user_by_username(
        &self,
        username: &UsernameKey,
    ) -> StoreResult<Option<UserWithPassword>> {
        timed("find_user_by_username", async {
            let row = sqlx::query_as::<_, UserWithHashRow>(
                "select id, username, email, role, is_active, created_at, updated_at, \
                 password_hash from app_user where username_key = ?",
            )
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(UserWithPassword {
                    user: row.user.try_into()?,
                    password_hash: row.password_hash,
                })
            })
            .transpose()
        })
        .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        timed("get_user", async { user(&self.pool, id.get()).await }).await
    }

    async fn list_users(&self, query: &ListQuery<UserSortField, ()>) -> StoreResult<Page<User>> {
        timed("list_users", async {
            Ok(fetch_page(
                &self.pool,
                "app_user",
                COLUMNS,
                query,
                |_| {},
                column,
                decode::<UserRow, User>,
            )
            .await?)
        })
        .await
    }

    async fn update_user(
        &self,
        id: UserId,
        decide: &DecideUserChanges<'_>,
        password_hash: Option<&str>,
    ) -> StoreResult<User> {
        timed("update_user", async {
            let id = id.get();
            self.writer
                .write(
                    &(id, decide, password_hash),
                    |conn, &(id, decide, password_hash)| {
                        Box::pin(async move {
                        let current = user(&mut *conn, id).await?;
                        let (changes, password_hash) =
                            decide_user_changes(decide, &current, password_hash)?;
                        let role = changes.role.unwrap_or(current.role);
                        let is_active = changes.is_active.unwrap_or(current.is_active);
                        let loses_admin =
                            current.role == Role::Admin && current.is_active && (role != Role::Admin || !is_active);
                        if loses_admin && other_active_admins(conn, id).await? == 0 {
                            return Err(StoreError::Conflict(ConflictKind::LastAdmin).into());
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
                        let updated: User = update
                            .build_query_as::<UserRow>()
                            .fetch_one(&mut *conn)
                            .await
                            .map_err(|error| {
                                if is_unique_violation(&error) {
                                    StoreError::Conflict(ConflictKind::EmailTaken)
                                } else {
                                    map_error(error)
                                }
                            })?
                            .try_into()?;
                        if changes.revokes_sessions() {
                            sqlx::query(
                                "update refresh_token set revoked_at = ? where user_id = ? and revoked_at is null",
                            )
                            .bind(now())
                            .bind(id)
                            .execute(conn)
                            .await?;
                        }
                        Ok(updated)
                        })
                    },
                )
                .await
        })
        .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        timed("delete_user", async {
            let id = id.get();
            self.writer
                .write(&id, |conn, &id| {
                    Box::pin(async move {
                        let current = user(&mut *conn, id).await?;
                        if current.role == Role::Admin
                            && current.is_active
                            && other_active_admins(&mut *conn, id).await? == 0
                        {
                            return Err(StoreError::Conflict(ConflictKind::LastAdmin).into());
                        }
                        // Refresh tokens go with the account (ON DELETE CASCADE).
                        sqlx::query("delete from app_user where id = ?")
                            .bind(id)
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
        })
        .await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        timed("has_active_admin", async {
            Ok(sqlx::query_scalar(
                "select exists (select 1 from app_user where role = 'admin' and is_active = 1)",
            )
            .fetch_one(&self.pool)
            .await?)
        })
        .await
    }
}

/// The account `id`, on the pool or on the writer's connection (`get_user`, the checks
/// of `update_user` and `delete_user`, and a refresh-token rotation).
pub(super) async fn user<'e>(executor: impl SqliteExecutor<'e>, id: i64) -> Result<User> {
    sqlx::query_as::<_, UserRow>(
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = ?",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| not_found(id))?
    .try_into()
}

/// Active admins other than `id`.
async fn other_active_admins(conn: &mut SqliteConnection, id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "select count(*) from app_user where role = 'admin' and is_active = 1 and id <> ?",
    )
    .bind(id)
    .fetch_one(conn)
    .await?)
}
