//! Refresh tokens, API keys and failed-login counters on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::list::{SortColumn, fetch_page};
use super::out_of_range;
use super::{Error, PgStore, Result, decode, is_unique_violation, now, retry, timed};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LOGIN_FAILURE_WINDOW, LoginGate, MAX_LOGIN_FAILURES, NewApiKey,
    NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{Role, UsernameKey};
use crate::domain::validation::search_key;
use crate::storage::{CredentialStore, Entity, StoreError, StoreResult};

const KEY_COLUMNS: &str = "id, name, prefix, role, created_at";

/// A presented refresh token joined with its owner's `is_active`, as the rotation reads it.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: i64,
    family_id: String,
    user_id: i64,
    expires_at: Option<DateTime<Utc>>,
    spent_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    session_started_at: DateTime<Utc>,
    is_active: bool,
}

/// A `login_failure` row's counter.
#[derive(sqlx::FromRow)]
struct FailureRow {
    failures: i32,
    last_failure_at: DateTime<Utc>,
}

/// An `api_key` row as [`KEY_COLUMNS`] reads it.
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: i64,
    name: String,
    prefix: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = Error;

    fn try_from(row: ApiKeyRow) -> Result<Self> {
        let role = match Role::parse("role", &row.role) {
            Ok(role @ (Role::Viewer | Role::Editor)) => role,
            _ => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "stored API key role `{}` is invalid",
                    row.role
                ))
                .into());
            }
        };
        Ok(Self {
            id: ApiKeyId::try_from(row.id).map_err(|()| out_of_range("API key id", row.id))?,
            name: row.name,
            prefix: row.prefix,
            role,
            created_at: row.created_at,
        })
    }
}

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

async fn insert_refresh_with(conn: &mut PgConnection, token: &NewRefreshToken) -> Result<()> {
    sqlx::query(
        "insert into refresh_token \
           (token_hash, family_id, user_id, expires_at, created_at, session_started_at) \
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.token_hash.as_str())
    .bind(&token.family_id)
    .bind(token.user_id.get())
    .bind(token.expires_at)
    .bind(now())
    .bind(token.session_started_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn revoke_family(conn: &mut PgConnection, family_id: &str) -> Result<()> {
    sqlx::query(
        "update refresh_token set revoked_at = $1 where family_id = $2 and revoked_at is null",
    )
    .bind(now())
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl CredentialStore for PgStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed("insert_refresh_token", async {
            let mut conn = self.pool.acquire().await?;
            insert_refresh_with(&mut conn, token).await
        })
        .await
    }

    /// Exchanges the token with digest `presented` for one with digest `next_hash`. The
    /// presented token's row is locked (`for update`) first, so of two concurrent exchanges
    /// of one token (on any replicas) the second sees it spent.
    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        timed(
            "rotate_refresh_token",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let token = sqlx::query_as::<_, RefreshRow>(
                    "select t.id, t.family_id, t.user_id, t.expires_at, t.spent_at, \
                     t.revoked_at, t.session_started_at, u.is_active \
                     from refresh_token t join app_user u on u.id = t.user_id \
                     where t.token_hash = $1 for update of t",
                )
                .bind(presented.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(token) = token else {
                    return Ok(Rotation::Rejected);
                };
                let at = now();
                if token.revoked_at.is_some() {
                    return Ok(Rotation::Rejected);
                }
                if token.spent_at.is_some() {
                    // A spent token presented again: it was stolen, or a client replayed
                    // it. Either way nobody may go on with this login.
                    revoke_family(&mut tx, &token.family_id).await?;
                    tx.commit().await?;
                    return Ok(Rotation::Reused {
                        family_id: token.family_id,
                    });
                }
                let expired = token.expires_at.is_none_or(|expires| expires <= at);
                let started = token.session_started_at;
                let session_ends = started + session_max;
                if expired || !token.is_active || session_ends <= at {
                    return Ok(Rotation::Rejected);
                }
                sqlx::query("update refresh_token set spent_at = $1 where id = $2")
                    .bind(at)
                    .bind(token.id)
                    .execute(&mut *tx)
                    .await?;
                insert_refresh_with(
                    &mut tx,
                    &NewRefreshToken {
                        token_hash: next_hash.clone(),
                        family_id: token.family_id.clone(),
                        user_id: UserId::try_from(token.user_id)
                            .map_err(|()| out_of_range("user id", token.user_id))?,
                        expires_at: next_expires_at.min(session_ends),
                        session_started_at: started,
                    },
                )
                .await?;
                let user = super::users::get_in(&mut tx, token.user_id, false).await?;
                tx.commit().await?;
                Ok(Rotation::Rotated {
                    user,
                    family_id: token.family_id,
                })
            }),
        )
        .await
    }

    /// Revokes the family of the token with digest `presented`; its id, or `None` if no
    /// such token.
    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed(
            "revoke_refresh_family",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let family: Option<String> =
                    sqlx::query_scalar("select family_id from refresh_token where token_hash = $1")
                        .bind(presented.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(family) = family else {
                    return Ok(None);
                };
                revoke_family(&mut tx, &family).await?;
                tx.commit().await?;
                Ok(Some(family))
            }),
        )
        .await
    }

    /// Whether some token of the family `family_id` is not revoked.
    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed("is_session_active", async {
            Ok(sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from refresh_token \
                 where family_id = $1 and revoked_at is null)",
            )
            .bind(family_id)
            .fetch_one(&self.pool)
            .await?)
        })
        .await
    }

    /// Deletes expired refresh tokens, tokens revoked over a day ago, and failure counters
    /// older than the lockout window. Returns the number of rows deleted.
    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed(
            "prune_credentials",
            retry(|| async {
                let mut tx = self.pool.begin().await?;
                let tokens = sqlx::query(
                    "delete from refresh_token where expires_at <= $1 or revoked_at <= $2",
                )
                .bind(at)
                .bind(at - chrono::Duration::days(1))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let failures = sqlx::query("delete from login_failure where last_failure_at <= $1")
                    .bind(at - LOGIN_FAILURE_WINDOW)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(tokens + failures)
            }),
        )
        .await
    }

    /// Claims one attempt (see `CredentialStore::claim_login_attempt`) in one atomic
    /// upsert: the row lock of `on conflict do update` serialises concurrent attempts on
    /// every replica, and its `where` clause leaves a locked name alone (no row returned).
    /// Failures are counted in a window that starts at the first failure and lasts
    /// [`LOGIN_FAILURE_WINDOW`]; an attempt after the window starts a new count.
    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed(
            "claim_login_attempt",
            retry(|| async {
                let claimed = sqlx::query(
                    "insert into login_failure as f \
                       (username_key, failures, window_started_at, last_failure_at) \
                     values ($1, 1, $2, $2) \
                     on conflict (username_key) do update set \
                       failures = case when f.window_started_at <= $3 then 1 \
                         else f.failures + 1 end, \
                       window_started_at = case when f.window_started_at <= $3 then $2 \
                         else f.window_started_at end, \
                       last_failure_at = $2 \
                     where not (f.failures >= $4 and f.last_failure_at > $3) \
                     returning failures",
                )
                .bind(username_key.as_str())
                .bind(at)
                .bind(at - LOGIN_FAILURE_WINDOW)
                .bind(i32::try_from(MAX_LOGIN_FAILURES).unwrap_or(i32::MAX))
                .fetch_optional(&self.pool)
                .await?;
                if claimed.is_some() {
                    return Ok(LoginGate::Open);
                }
                let row = sqlx::query_as::<_, FailureRow>(
                    "select failures, last_failure_at from login_failure where username_key = $1",
                )
                .bind(username_key.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map_or(LoginGate::Open, |row| {
                    LoginGate::from_failures(
                        u32::try_from(row.failures).unwrap_or_default(),
                        row.last_failure_at,
                        at,
                    )
                }))
            }),
        )
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed("clear_login_failures", async {
            sqlx::query("delete from login_failure where username_key = $1")
                .bind(username_key.as_str())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey> {
        timed("insert_api_key", async {
            sqlx::query_as::<_, ApiKeyRow>(
                "insert into api_key (name, name_key, key_hash, prefix, role, created_at) \
                 values ($1, $2, $3, $4, $5, $6) returning id, name, prefix, role, created_at",
            )
            .bind(&new.name)
            .bind(search_key(&new.name))
            .bind(key_hash.as_str())
            .bind(prefix)
            .bind(new.role.as_str())
            .bind(now())
            .fetch_one(&self.pool)
            .await
            .map_err(|error| match error {
                error if is_unique_violation(&error) => {
                    StoreError::Other(anyhow::anyhow!("generated API key collided")).into()
                }
                error => Error::from(error),
            })?
            .try_into()
        })
        .await
    }

    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>> {
        timed("list_api_keys", async {
            Ok(fetch_page(
                &self.pool,
                "api_key",
                KEY_COLUMNS,
                query,
                |_| {},
                key_column,
                decode::<ApiKeyRow, ApiKey>,
            )
            .await?)
        })
        .await
    }

    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>> {
        timed("find_api_key", async {
            sqlx::query_as::<_, ApiKeyRow>(
                "select id, name, prefix, role, created_at from api_key where key_hash = $1",
            )
            .bind(key_hash.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(ApiKey::try_from)
            .transpose()
        })
        .await
    }

    async fn delete_api_key(&self, id: ApiKeyId) -> StoreResult<()> {
        timed("delete_api_key", async {
            let id = id.get();
            let deleted = sqlx::query("delete from api_key where id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound {
                    entity: Entity::ApiKey,
                    id,
                }
                .into());
            }
            Ok(())
        })
        .await
    }
}
