//! Refresh tokens, API keys and failed-login counters on SQLite: `impl CredentialStore`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::list::{SortColumn, fetch_page};
use super::out_of_range;
use super::users::user;
use super::{
    Error, Result, SqliteStore, decode, is_unique_violation, map_error, now, timed, timestamp_key,
};
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

/// A presented refresh token with what its rotation decides on.
#[derive(sqlx::FromRow)]
struct PresentedTokenRow {
    id: i64,
    family_id: String,
    user_id: i64,
    expires_at: Option<String>,
    spent_at: Option<String>,
    revoked_at: Option<String>,
    session_started_at: DateTime<Utc>,
    is_active: bool,
}

/// A `login_failure` row: the count and the last failure of one username.
#[derive(sqlx::FromRow)]
struct LoginFailureRow {
    failures: i64,
    last_failure_at: DateTime<Utc>,
}

/// An `api_key` row as read (never its hash).
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

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed("insert_refresh_token", async {
            self.writer
                .write(token, |conn, token| Box::pin(insert_refresh(conn, token)))
                .await
        })
        .await
    }

    /// Exchanges the token with digest `presented` for one with digest `next_hash` on the
    /// writer's connection, so two concurrent exchanges of one token cannot both succeed.
    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        timed("rotate_refresh_token", async {
            self.writer
                .write(
                    &(presented, next_hash, next_expires_at, session_max),
                    |conn, &(presented, next_hash, next_expires_at, session_max)| {
                        Box::pin(async move {
                            let token = sqlx::query_as::<_, PresentedTokenRow>(
                                "select t.id, t.family_id, t.user_id, t.expires_at, t.spent_at, \
                                   t.revoked_at, coalesce(t.session_started_at, t.created_at) \
                                   as session_started_at, u.is_active \
                                 from refresh_token t join app_user u on u.id = t.user_id \
                                 where t.token_hash = ?",
                            )
                            .bind(presented.as_str())
                            .fetch_optional(&mut *conn)
                            .await?;
                            let Some(token) = token else {
                                return Ok(Rotation::Rejected);
                            };
                            let stamp = now();
                            if token.revoked_at.is_some() {
                                return Ok(Rotation::Rejected);
                            }
                            if token.spent_at.is_some() {
                                // A spent token presented again: it was stolen, or a client
                                // replayed it. Either way nobody may go on with this login.
                                revoke_family(conn, &token.family_id).await?;
                                return Ok(Rotation::Reused {
                                    family_id: token.family_id,
                                });
                            }
                            let expired = token.expires_at.is_none_or(|at| at <= stamp);
                            let started = token.session_started_at;
                            let session_ends = started + session_max;
                            if expired || !token.is_active || timestamp_key(&session_ends) <= stamp
                            {
                                return Ok(Rotation::Rejected);
                            }
                            sqlx::query("update refresh_token set spent_at = ? where id = ?")
                                .bind(&stamp)
                                .bind(token.id)
                                .execute(&mut *conn)
                                .await?;
                            insert_refresh(
                                &mut *conn,
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
                            let user = user(conn, token.user_id).await?;
                            Ok(Rotation::Rotated {
                                user,
                                family_id: token.family_id,
                            })
                        })
                    },
                )
                .await
        })
        .await
    }

    /// Revokes the family of the token with digest `presented`; its id, or `None` if no
    /// such token.
    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed("revoke_refresh_family", async {
            self.writer
                .write(presented, |conn, presented| {
                    Box::pin(async move {
                        let family: Option<String> = sqlx::query_scalar(
                            "select family_id from refresh_token where token_hash = ?",
                        )
                        .bind(presented.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                        let Some(family) = family else {
                            return Ok(None);
                        };
                        revoke_family(conn, &family).await?;
                        Ok(Some(family))
                    })
                })
                .await
        })
        .await
    }

    /// Deletes expired refresh tokens, tokens revoked over a day ago, and failure counters
    /// older than the lockout window. Returns the number of rows deleted.
    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed("prune_credentials", async {
            self.writer
                .write(&at, |conn, &at| {
                    Box::pin(async move {
                        let stamp = timestamp_key(&at);
                        let day_ago = timestamp_key(&(at - chrono::Duration::days(1)));
                        let window_ago = timestamp_key(&(at - LOGIN_FAILURE_WINDOW));
                        let tokens = sqlx::query(
                            "delete from refresh_token where expires_at <= ? or revoked_at <= ?",
                        )
                        .bind(&stamp)
                        .bind(&day_ago)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        let failures =
                            sqlx::query("delete from login_failure where last_failure_at <= ?")
                                .bind(&window_ago)
                                .execute(conn)
                                .await?
                                .rows_affected();
                        Ok(tokens + failures)
                    })
                })
                .await
        })
        .await
    }

    /// Whether some token of the family `family_id` is not revoked.
    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed("is_session_active", async {
            let found: i64 = sqlx::query_scalar(
                "select exists (select 1 from refresh_token \
                 where family_id = ? and revoked_at is null)",
            )
            .bind(family_id)
            .fetch_one(&self.pool)
            .await?;
            Ok(found != 0)
        })
        .await
    }

    /// Claims one attempt in one upsert on the writer's connection. Failures are counted
    /// in a window that starts at the first failure and lasts [`LOGIN_FAILURE_WINDOW`]; an
    /// attempt after the window starts a new count. While the name is locked the `where`
    /// clause leaves the row alone and nothing is returned.
    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed("claim_login_attempt", async {
            self.writer
                .write(&(username_key, at), |conn, &(username_key, at)| {
                    Box::pin(async move {
                        let stamp = timestamp_key(&at);
                        let window_start = timestamp_key(&(at - LOGIN_FAILURE_WINDOW));
                        let claimed: Option<i64> = sqlx::query_scalar(
                            "insert into login_failure \
                               (username_key, failures, window_started_at, last_failure_at) \
                             values (?1, 1, ?2, ?2) \
                             on conflict (username_key) do update set \
                               failures = case when window_started_at <= ?3 then 1 \
                                 else failures + 1 end, \
                               window_started_at = case when window_started_at <= ?3 then ?2 \
                                 else window_started_at end, \
                               last_failure_at = ?2 \
                             where not (failures >= ?4 and last_failure_at > ?3) \
                             returning failures",
                        )
                        .bind(username_key.as_str())
                        .bind(&stamp)
                        .bind(&window_start)
                        .bind(i64::from(MAX_LOGIN_FAILURES))
                        .fetch_optional(&mut *conn)
                        .await?;
                        if claimed.is_some() {
                            return Ok(LoginGate::Open);
                        }
                        let row = sqlx::query_as::<_, LoginFailureRow>(
                            "select failures, last_failure_at from login_failure \
                             where username_key = ?",
                        )
                        .bind(username_key.as_str())
                        .fetch_optional(conn)
                        .await?;
                        Ok(row.map_or(LoginGate::Open, |row| {
                            LoginGate::from_failures(
                                u32::try_from(row.failures).unwrap_or(u32::MAX),
                                row.last_failure_at,
                                at,
                            )
                        }))
                    })
                })
                .await
        })
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed("clear_login_failures", async {
            self.writer
                .write(username_key, |conn, username_key| {
                    Box::pin(async move {
                        sqlx::query("delete from login_failure where username_key = ?")
                            .bind(username_key.as_str())
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
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
            self.writer
                .write(
                    &(new, key_hash, prefix),
                    |conn, &(new, key_hash, prefix)| {
                        Box::pin(async move {
                            sqlx::query_as::<_, ApiKeyRow>(
                                "insert into api_key \
                                   (name, name_key, key_hash, prefix, role, created_at) \
                                 values (?, ?, ?, ?, ?, ?) \
                                 returning id, name, prefix, role, created_at",
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
                            })?
                            .try_into()
                        })
                    },
                )
                .await
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
                "select id, name, prefix, role, created_at from api_key where key_hash = ?",
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
            self.writer
                .write(&id, |conn, &id| {
                    Box::pin(async move {
                        let deleted = sqlx::query("delete from api_key where id = ?")
                            .bind(id)
                            .execute(conn)
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
                })
                .await
        })
        .await
    }
}

/// Stores a refresh token (`insert_refresh_token`, and the successor of a rotation).
async fn insert_refresh(conn: &mut SqliteConnection, token: &NewRefreshToken) -> Result<()> {
    sqlx::query(
        "insert into refresh_token \
           (token_hash, family_id, user_id, expires_at, created_at, session_started_at) \
         values (?, ?, ?, ?, ?, ?)",
    )
    .bind(token.token_hash.as_str())
    .bind(&token.family_id)
    .bind(token.user_id.get())
    .bind(timestamp_key(&token.expires_at))
    .bind(now())
    .bind(timestamp_key(&token.session_started_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every token of the family (a reused token's, or on logout).
async fn revoke_family(conn: &mut SqliteConnection, family_id: &str) -> Result<()> {
    sqlx::query(
        "update refresh_token set revoked_at = ? where family_id = ? and revoked_at is null",
    )
    .bind(now())
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}
