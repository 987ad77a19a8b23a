//! Account use cases on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::list::{SortColumn, fetch_page};
use super::out_of_range;
use super::{Error, PgStore, Result, decode, is_unique_violation, now, retry, timed};
use crate::domain::ids::UserId;
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::UserWithPassword;
use crate::domain::user::{NewUser, Role, User, UserSortField, UsernameKey};
use crate::storage::{
    AccountStore, ConflictKind, DecideUserChanges, Entity, StoreError, StoreResult,
    decide_user_changes,
};

const COLUMNS: &str = "id, username, email, role, is_active, created_at, updated_at";

/// Advisory lock taken by every change that could remove an active admin, so that two
/// concurrent demotions (on any replicas) cannot both see the other admin and leave none.
const ADMIN_LOCK: i64 = 0x5354_4152_4144_4d4e; // "STARADMN"

/// An `app_user` row as [`COLUMNS`] reads it.
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

/// An `app_user` row with its password hash, for signing in.
#[derive(sqlx::FromRow)]
struct UserWithHashRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
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

/// One account; `lock` also locks its row until the transaction ends (also used by the
/// refresh-token rotation).
pub(super) async fn get_in(conn: &mut PgConnection, id: i64, lock: bool) -> Result<User> {
    let sql = if lock {
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = $1 for update"
    } else {
        "select id, username, email, role, is_active, created_at, updated_at \
         from app_user where id = $1"
    };
    let row = sqlx::query_as::<_, UserRow>(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.ok_or_else(|| not_found(id))?.try_into()
}

/// Fails with the last-admin conflict unless another active admin than `id` exists. Takes
/// [`ADMIN_LOCK`] first, held until the transaction ends.
async fn ensure_other_admin(conn: &mut PgConnection, id: i64) -> Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(ADMIN_LOCK)
        .execute(&mut *conn)
        .await?;
    let others: i64 = sqlx::query_scalar(
        "select count(*) from app_user where role = 'admin' and is_active and id <> $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    if others == 0 {
        return Err(StoreError::Conflict(ConflictKind::LastAdmin).into());
    }
    Ok(())
}

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_user(&self, new: &NewUser, password_hash: &str) -> StoreResult<User> {
        timed("insert_user", async {
            sqlx::query_as::<_, UserRow>(
                "insert into app_user (username, username_key, email, email_key, password_hash, \
                 role, is_active, version, created_at, updated_at) \
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
            .fetch_one(&self.pool)
            .await
            .map_err(|error| match error {
                error if is_unique_violation(&error) => {
                    StoreError::Conflict(ConflictKind::UsernameOrEmailTaken).into()
                }
                error => Error::from(error),
            })?
            .try_into()
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
                 password_hash from app_user where username_key = $1",
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
        timed("get_user", async {
            let mut conn = self.pool.acquire().await?;
            get_in(&mut conn, id.get(), false).await
        })
        .await
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
        let id = id.get();
        timed(
            "update_user",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let current = get_in(&mut tx, id, true).await?;
                let (changes, password_hash) =
                    decide_user_changes(decide, &current, password_hash)?;
                let role = changes.role.unwrap_or(current.role);
                let is_active = changes.is_active.unwrap_or(current.is_active);
                let loses_admin = current.role == Role::Admin
                    && current.is_active
                    && (role != Role::Admin || !is_active);
                if loses_admin {
                    ensure_other_admin(&mut tx, id).await?;
                }
                let mut update = QueryBuilder::<Postgres>::new(
                    "update app_user set version = version + 1, updated_at = ",
                );
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
                let user: User = update
                    .build_query_as::<UserRow>()
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|error| match error {
                        error if is_unique_violation(&error) => {
                            StoreError::Conflict(ConflictKind::EmailTaken).into()
                        }
                        error => Error::from(error),
                    })?
                    .try_into()?;
                if changes.revokes_sessions() {
                    sqlx::query(
                        "update refresh_token set revoked_at = $1 \
                         where user_id = $2 and revoked_at is null",
                    )
                    .bind(now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(user)
            }),
        )
        .await
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        let id = id.get();
        timed(
            "delete_user",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let current = get_in(&mut tx, id, true).await?;
                if current.role == Role::Admin && current.is_active {
                    ensure_other_admin(&mut tx, id).await?;
                }
                // Refresh tokens go with the account (ON DELETE CASCADE).
                sqlx::query("delete from app_user where id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }),
        )
        .await
    }

    async fn has_active_admin(&self) -> StoreResult<bool> {
        timed("has_active_admin", async {
            Ok(sqlx::query_scalar(
                "select exists (select 1 from app_user where role = 'admin' and is_active)",
            )
            .fetch_one(&self.pool)
            .await?)
        })
        .await
    }
}
