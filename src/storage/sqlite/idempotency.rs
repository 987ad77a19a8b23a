//! Idempotency-key bookkeeping on SQLite, used inside the creating transaction.

use std::pin::Pin;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::timestamp_key;
use super::{map_error, now};
use crate::domain::idempotency::expiry_cutoff;
use crate::storage::{Created, Idempotency, SavedResponse};
use crate::storage::{StoreError, StoreResult};

/// The future of one insert on a borrowed connection.
pub(super) type InsertFuture<'c, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'c>>;

/// Claims the key, runs `insert` and saves the rendered response, all in the writer's
/// batch (which commits the three together or undoes them); or replays the response
/// saved for the same request.
pub(super) async fn create_once<N: Sync, T>(
    conn: &mut SqliteConnection,
    new: &N,
    idempotency: &Idempotency<'_, T>,
    insert: impl for<'c> Fn(&'c mut SqliteConnection, &'c N) -> InsertFuture<'c, T>,
) -> StoreResult<Created<T>> {
    if let Claim::Saved(saved) = claim(conn, idempotency).await? {
        return Ok(Created::Replayed(saved));
    }
    let created = insert(conn, new).await?;
    save(conn, idempotency, &(idempotency.render)(&created)).await?;
    Ok(Created::New(created))
}

/// Whether the caller should create the resource, or answer with a saved response.
enum Claim {
    /// The key is new (or expired): create, then `save`.
    Fresh,
    /// The key was used with the same request: replay this.
    Saved(SavedResponse),
}

/// Claims `(principal, key)` on the writer's connection: a concurrent request with the
/// same key runs after this one and finds its saved response.
async fn claim<T>(
    conn: &mut SqliteConnection,
    idempotency: &Idempotency<'_, T>,
) -> StoreResult<Claim> {
    sqlx::query(
        "delete from idempotency_key where principal = ? and request_key = ? and created_at < ?",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .bind(timestamp_key(&expiry_cutoff(Utc::now())))
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    let inserted = sqlx::query(
        "insert into idempotency_key (principal, request_key, fingerprint, status, body, created_at) \
         values (?, ?, ?, 0, '', ?) on conflict (principal, request_key) do nothing",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .bind(idempotency.fingerprint)
    .bind(now())
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query(
        "select fingerprint, status, body, location, etag from idempotency_key \
         where principal = ? and request_key = ?",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_error)?;
    let fingerprint: String = row.try_get("fingerprint").map_err(map_error)?;
    if fingerprint != idempotency.fingerprint {
        return Err(StoreError::IdempotencyKeyReused);
    }
    let status: i64 = row.try_get("status").map_err(map_error)?;
    Ok(Claim::Saved(SavedResponse {
        status: u16::try_from(status).unwrap_or(500),
        body: row.try_get("body").map_err(map_error)?,
        location: row.try_get("location").map_err(map_error)?,
        etag: row.try_get("etag").map_err(map_error)?,
    }))
}

/// Saves the response of a fresh claim (same transaction as the creation).
async fn save<T>(
    conn: &mut SqliteConnection,
    idempotency: &Idempotency<'_, T>,
    response: &SavedResponse,
) -> StoreResult<()> {
    sqlx::query(
        "update idempotency_key set status = ?, body = ?, location = ?, etag = ? \
         where principal = ? and request_key = ?",
    )
    .bind(i64::from(response.status))
    .bind(&response.body)
    .bind(response.location.as_deref())
    .bind(response.etag.as_deref())
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .execute(&mut *conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

/// Deletes keys created before `created_before`.
pub(super) async fn prune(
    conn: &mut SqliteConnection,
    created_before: DateTime<Utc>,
) -> StoreResult<u64> {
    sqlx::query("delete from idempotency_key where created_at < ?")
        .bind(timestamp_key(&created_before))
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_error)
}
