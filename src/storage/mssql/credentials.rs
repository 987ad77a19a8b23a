//! Refresh tokens, API keys and failed-login counters on SQL Server.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tiberius::Row;

use super::list::{SortColumn, fetch_page};
use super::pool::Conn;
use super::sql::{Sql, begin, column, finish, first, required, text};
use super::users::get_user_in;
use super::{Error, MssqlStore, Result, SYSTEM, is_unique_violation, now, other};
use crate::domain::credential::{
    ApiKey, ApiKeySortField, LOGIN_FAILURE_WINDOW, LoginGate, MAX_LOGIN_FAILURES, NewApiKey,
    NewRefreshToken, Rotation, SecretDigest,
};
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::user::{Role, UsernameKey};
use crate::domain::validation::search_key;
use crate::storage::metered::timed;
use crate::storage::{CredentialStore, Entity, StoreError, StoreResult};

const INSERT_REFRESH: &str = "INSERT INTO dbo.refresh_token (token_hash, family_id, user_id, \
     expires_at, created_at, session_started_at) VALUES (@P1, @P2, @P3, @P4, @P5, @P6)";
const REVOKE_FAMILY: &str = "UPDATE dbo.refresh_token SET revoked_at = @P1 \
     WHERE family_id = @P2 AND revoked_at IS NULL";
/// `UPDLOCK, ROWLOCK` on the presented token: of two concurrent exchanges of one token
/// (on any replicas) the second waits and then sees it spent.
const SELECT_PRESENTED: &str = "SELECT t.id, t.family_id, t.user_id, t.expires_at, t.spent_at, \
     t.revoked_at, t.session_started_at, u.is_active FROM dbo.refresh_token t WITH (UPDLOCK, ROWLOCK) \
     JOIN dbo.app_user u ON u.id = t.user_id WHERE t.token_hash = @P1";
const SPEND: &str = "UPDATE dbo.refresh_token SET spent_at = @P1 WHERE id = @P2";
const FAMILY_OF: &str = "SELECT family_id FROM dbo.refresh_token WHERE token_hash = @P1";
const SESSION_ACTIVE: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM dbo.refresh_token \
     WHERE family_id = @P1 AND revoked_at IS NULL) THEN 1 ELSE 0 END AS active";
const PRUNE_TOKENS: &str =
    "DELETE FROM dbo.refresh_token WHERE expires_at <= @P1 OR revoked_at <= @P2";
const PRUNE_FAILURES: &str = "DELETE FROM dbo.login_failure WHERE last_failure_at <= @P1";
/// Claims an attempt on an existing counter unless the name is locked. `UPDLOCK,
/// HOLDLOCK` lock the key (even when no row has it yet, or the row is locked out) until
/// the transaction ends, so concurrent attempts for one name (on any replica) take turns.
const CLAIM_ATTEMPT: &str = "UPDATE dbo.login_failure WITH (UPDLOCK, HOLDLOCK) SET \
     failures = CASE WHEN window_started_at <= @P3 THEN 1 ELSE failures + 1 END, \
     window_started_at = CASE WHEN window_started_at <= @P3 THEN @P2 \
       ELSE window_started_at END, \
     last_failure_at = @P2 \
     OUTPUT INSERTED.failures \
     WHERE username_key = @P1 AND NOT (failures >= @P4 AND last_failure_at > @P3)";
/// The counter of a name that was not claimed (locked out, or no row yet), under the key
/// lock taken above.
const GATE: &str = "SELECT failures, last_failure_at FROM dbo.login_failure \
     WITH (UPDLOCK, HOLDLOCK) WHERE username_key = @P1";
/// The first attempt of a name (in the same transaction, under the key lock).
const FIRST_FAILURE: &str = "INSERT INTO dbo.login_failure \
     (username_key, failures, window_started_at, last_failure_at) \
     VALUES (@P1, 1, @P2, @P2)";
const CLEAR_FAILURES: &str = "DELETE FROM dbo.login_failure WHERE username_key = @P1";
const INSERT_KEY: &str = "INSERT INTO dbo.api_key (name, name_key, key_hash, prefix, role, \
     created_at) OUTPUT INSERTED.id, INSERTED.name, INSERTED.prefix, INSERTED.role, \
     INSERTED.created_at VALUES (@P1, @P2, @P3, @P4, @P5, @P6)";
const FIND_KEY: &str = "SELECT id, name, prefix, role, created_at FROM dbo.api_key \
     WHERE key_hash = @P1";
const DELETE_KEY: &str = "DELETE FROM dbo.api_key WHERE id = @P1";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[
    INSERT_REFRESH,
    REVOKE_FAMILY,
    SELECT_PRESENTED,
    SPEND,
    FAMILY_OF,
    SESSION_ACTIVE,
    PRUNE_TOKENS,
    PRUNE_FAILURES,
    CLAIM_ATTEMPT,
    GATE,
    FIRST_FAILURE,
    CLEAR_FAILURES,
    INSERT_KEY,
    FIND_KEY,
    DELETE_KEY,
];

async fn insert_refresh_in(conn: &mut Conn, token: &NewRefreshToken) -> Result<()> {
    Sql::with(
        INSERT_REFRESH,
        vec![
            Box::new(token.token_hash.as_str().to_owned()),
            Box::new(token.family_id.clone()),
            Box::new(token.user_id.get()),
            Box::new(token.expires_at.fixed_offset()),
            Box::new(now().fixed_offset()),
            Box::new(token.session_started_at.fixed_offset()),
        ],
    )
    .execute(conn)
    .await
    .map(|_| ())
}

async fn revoke_family(conn: &mut Conn, family_id: &str) -> Result<()> {
    Sql::with(
        REVOKE_FAMILY,
        vec![
            Box::new(now().fixed_offset()),
            Box::new(family_id.to_owned()),
        ],
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A failure counter row (`failures, last_failure_at`), as the gate it sets at `at`.
fn gate(row: &Row, at: DateTime<Utc>) -> Result<LoginGate> {
    let failures: i32 = column(row, "failures")?.unwrap_or_default();
    let last: DateTime<Utc> = required(row, "last_failure_at", "login failure")?;
    Ok(LoginGate::from_failures(
        u32::try_from(failures).unwrap_or_default(),
        last,
        at,
    ))
}

const KEY_COLUMNS: &str = "id, name, prefix, role, created_at";

fn key_column(field: ApiKeySortField) -> SortColumn {
    let sql = match field {
        ApiKeySortField::Id => "id",
        ApiKeySortField::Name => "name_key",
        ApiKeySortField::CreatedAt => "created_at",
    };
    SortColumn {
        sql,
        null_flag: None,
    }
}

/// An API key row (`KEY_COLUMNS`).
fn api_key(row: &Row) -> Result<ApiKey> {
    let role = text(row, "role")?;
    Ok(ApiKey {
        id: {
            let id = required::<i32>(row, "id", "API key")?;
            ApiKeyId::try_from(i64::from(id))
                .map_err(|()| other(format!("API key id {id} out of range")))?
        },
        name: text(row, "name")?,
        prefix: text(row, "prefix")?,
        role: match Role::parse("role", &role) {
            Ok(role @ (Role::Viewer | Role::Editor)) => role,
            _ => return Err(other(format!("stored API key role `{role}` is invalid"))),
        },
        created_at: required(row, "created_at", "API key")?,
    })
}

#[async_trait]
impl CredentialStore for MssqlStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        timed(
            SYSTEM,
            "insert_refresh_token",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                insert_refresh_in(&mut conn, token).await
            }),
        )
        .await
    }

    /// Exchanges the token with digest `presented` for one with digest `next_hash`, the
    /// presented row locked for the whole transaction.
    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        next_hash: &SecretDigest,
        next_expires_at: DateTime<Utc>,
        session_max: chrono::Duration,
    ) -> StoreResult<Rotation> {
        timed(
            SYSTEM,
            "rotate_refresh_token",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let conn = &mut conn;
                    let row = Sql::with(
                        SELECT_PRESENTED,
                        vec![Box::new(presented.as_str().to_owned())],
                    )
                    .row(conn)
                    .await?;
                    let Some(row) = row else {
                        return Ok(Rotation::Rejected);
                    };
                    let stamp = |name: &str| column::<DateTime<Utc>>(&row, name);
                    let family_id =
                        required::<&str>(&row, "family_id", "refresh token")?.to_owned();
                    let user_id = i64::from(required::<i32>(&row, "user_id", "refresh token")?);
                    let token_id: i32 = required(&row, "id", "refresh token")?;
                    let is_active: bool = column(&row, "is_active")?.unwrap_or_default();
                    let at = now();
                    if stamp("revoked_at")?.is_some() {
                        return Ok(Rotation::Rejected);
                    }
                    if stamp("spent_at")?.is_some() {
                        // A spent token presented again: it was stolen, or a client replayed it. Either
                        // way nobody may go on with this login.
                        revoke_family(conn, &family_id).await?;
                        return Ok(Rotation::Reused { family_id });
                    }
                    let expired = stamp("expires_at")?.is_none_or(|expires| expires <= at);
                    let started: DateTime<Utc> =
                        required(&row, "session_started_at", "refresh token")?;
                    let session_ends = started + session_max;
                    if expired || !is_active || session_ends <= at {
                        return Ok(Rotation::Rejected);
                    }
                    Sql::with(SPEND, vec![Box::new(at.fixed_offset()), Box::new(token_id)])
                        .execute(conn)
                        .await?;
                    insert_refresh_in(
                        conn,
                        &NewRefreshToken {
                            token_hash: next_hash.clone(),
                            family_id: family_id.clone(),
                            user_id: UserId::try_from(user_id).map_err(|()| {
                                other(format!("account id {user_id} out of range"))
                            })?,
                            expires_at: next_expires_at.min(session_ends),
                            session_started_at: started,
                        },
                    )
                    .await?;
                    let user = get_user_in(conn, user_id, false).await?;
                    Ok(Rotation::Rotated { user, family_id })
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    /// Revokes the family of the token with digest `presented`; its id, or `None` if no
    /// such token.
    async fn revoke_refresh_family(&self, presented: &SecretDigest) -> StoreResult<Option<String>> {
        timed(
            SYSTEM,
            "revoke_refresh_family",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let row = Sql::with(FAMILY_OF, vec![Box::new(presented.as_str().to_owned())])
                        .row(&mut conn)
                        .await?;
                    let Some(family) = row
                        .as_ref()
                        .and_then(|r| r.try_get::<&str, _>("family_id").ok().flatten())
                        .map(str::to_owned)
                    else {
                        return Ok(None);
                    };
                    revoke_family(&mut conn, &family).await?;
                    Ok(Some(family))
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    /// Whether some token of the family `family_id` is not revoked.
    async fn is_session_active(&self, family_id: &str) -> StoreResult<bool> {
        timed(
            SYSTEM,
            "is_session_active",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let row = Sql::with(SESSION_ACTIVE, vec![Box::new(family_id.to_owned())])
                    .row(&mut conn)
                    .await?;
                Ok(row
                    .as_ref()
                    .and_then(|r| r.try_get::<i32, _>("active").ok().flatten())
                    == Some(1))
            }),
        )
        .await
    }

    /// Deletes expired refresh tokens, tokens revoked over a day ago, and failure
    /// counters older than the lockout window. Returns the number of rows deleted.
    async fn prune_credentials(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        timed(
            SYSTEM,
            "prune_credentials",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let tokens = Sql::with(
                        PRUNE_TOKENS,
                        vec![
                            Box::new(at.fixed_offset()),
                            Box::new((at - chrono::Duration::days(1)).fixed_offset()),
                        ],
                    )
                    .execute(&mut conn)
                    .await?;
                    let failures = Sql::with(
                        PRUNE_FAILURES,
                        vec![Box::new((at - LOGIN_FAILURE_WINDOW).fixed_offset())],
                    )
                    .execute(&mut conn)
                    .await?;
                    Ok(tokens + failures)
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    /// Claims one attempt in one transaction under the name's key lock. Failures are
    /// counted in a window that starts at the first failure and lasts
    /// [`LOGIN_FAILURE_WINDOW`]; an attempt after the window starts a new count.
    async fn claim_login_attempt(
        &self,
        username_key: &UsernameKey,
        at: DateTime<Utc>,
    ) -> StoreResult<LoginGate> {
        timed(
            SYSTEM,
            "claim_login_attempt",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                begin(&mut conn).await?;
                let result = async {
                    let claimed = Sql::with(
                        CLAIM_ATTEMPT,
                        vec![
                            Box::new(username_key.as_str().to_owned()),
                            Box::new(at.fixed_offset()),
                            Box::new((at - LOGIN_FAILURE_WINDOW).fixed_offset()),
                            Box::new(i32::try_from(MAX_LOGIN_FAILURES).unwrap_or(i32::MAX)),
                        ],
                    )
                    .row(&mut conn)
                    .await?;
                    if claimed.is_some() {
                        return Ok(LoginGate::Open);
                    }
                    let row = Sql::with(GATE, vec![Box::new(username_key.as_str().to_owned())])
                        .row(&mut conn)
                        .await?;
                    if let Some(row) = row {
                        return gate(&row, at);
                    }
                    Sql::with(
                        FIRST_FAILURE,
                        vec![
                            Box::new(username_key.as_str().to_owned()),
                            Box::new(at.fixed_offset()),
                        ],
                    )
                    .execute(&mut conn)
                    .await?;
                    Ok(LoginGate::Open)
                }
                .await;
                finish(&mut conn, result).await
            }),
        )
        .await
    }

    async fn clear_login_failures(&self, username_key: &UsernameKey) -> StoreResult<()> {
        timed(
            SYSTEM,
            "clear_login_failures",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                Sql::with(
                    CLEAR_FAILURES,
                    vec![Box::new(username_key.as_str().to_owned())],
                )
                .execute(&mut conn)
                .await
                .map(|_| ())
            }),
        )
        .await
    }

    async fn insert_api_key(
        &self,
        new: &NewApiKey,
        key_hash: &SecretDigest,
        prefix: &str,
    ) -> StoreResult<ApiKey> {
        timed(
            SYSTEM,
            "insert_api_key",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let rows = Sql::with(
                    INSERT_KEY,
                    vec![
                        Box::new(new.name.clone()),
                        Box::new(search_key(&new.name)),
                        Box::new(key_hash.as_str().to_owned()),
                        Box::new(prefix.to_owned()),
                        Box::new(new.role.as_str()),
                        Box::new(now().fixed_offset()),
                    ],
                )
                .rows_raw(&mut conn)
                .await
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        other("generated API key collided")
                    } else {
                        Error::from(error)
                    }
                })?;
                first(&rows, api_key)
            }),
        )
        .await
    }

    async fn list_api_keys(
        &self,
        query: &ListQuery<ApiKeySortField, ()>,
    ) -> StoreResult<Page<ApiKey>> {
        timed(
            SYSTEM,
            "list_api_keys",
            self.run(|| async move {
                let page = fetch_page(
                    &self.pool,
                    "dbo.api_key",
                    KEY_COLUMNS,
                    query,
                    |_| {},
                    key_column,
                    |row| Ok(api_key(row)?),
                )
                .await?;
                Ok(page)
            }),
        )
        .await
    }

    async fn find_api_key(&self, key_hash: &SecretDigest) -> StoreResult<Option<ApiKey>> {
        timed(
            SYSTEM,
            "find_api_key",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let row = Sql::with(FIND_KEY, vec![Box::new(key_hash.as_str().to_owned())])
                    .row(&mut conn)
                    .await?;
                row.as_ref().map(api_key).transpose()
            }),
        )
        .await
    }

    async fn delete_api_key(&self, id: ApiKeyId) -> StoreResult<()> {
        let id = id.get();
        timed(
            SYSTEM,
            "delete_api_key",
            self.run(|| async move {
                let mut conn = self.pool.get().await?;
                let deleted = Sql::with(DELETE_KEY, vec![Box::new(id)])
                    .execute(&mut conn)
                    .await?;
                if deleted == 0 {
                    return Err(StoreError::NotFound {
                        entity: Entity::ApiKey,
                        id,
                    }
                    .into());
                }
                Ok(())
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
        "dbo.api_key",
        KEY_COLUMNS,
        (),
        |_, _| {},
        key_column,
        |field| match field {
            ApiKeySortField::Id => vec![SortValue::Int(3)],
            ApiKeySortField::Name => vec![SortValue::Text("m".into())],
            ApiKeySortField::CreatedAt => vec![SortValue::Timestamp(chrono::Utc::now())],
        },
    )
}
