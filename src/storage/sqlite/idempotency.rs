//! Idempotency-key bookkeeping on SQLite, used inside the creating transaction.

use std::pin::Pin;

use chrono::Utc;
use sqlx::SqliteConnection;

use super::{Result, now, timestamp_key};
use crate::domain::idempotency::expiry_cutoff;
use crate::storage::StoreError;
use crate::storage::{Created, Idempotency, SavedResponse};

/// The future of one insert on a borrowed connection.
pub(super) type InsertFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// A claimed key as stored.
#[derive(sqlx::FromRow)]
struct SavedRow {
    fingerprint: String,
    status: i64,
    body: String,
    location: Option<String>,
    etag: Option<String>,
}

/// Claims the key, runs `insert` and saves the rendered response, all in the writer's
/// batch (which commits the three together or undoes them); or replays the response
/// saved for the same request.
pub(super) async fn create_once<N: Sync, T>(
    conn: &mut SqliteConnection,
    new: &N,
    idempotency: &Idempotency<'_, T>,
    insert: impl for<'c> Fn(&'c mut SqliteConnection, &'c N) -> InsertFuture<'c, T>,
) -> Result<Created<T>> {
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
async fn claim<T>(conn: &mut SqliteConnection, idempotency: &Idempotency<'_, T>) -> Result<Claim> {
    sqlx::query(
        "delete from idempotency_key where principal = ? and request_key = ? and created_at < ?",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .bind(timestamp_key(&expiry_cutoff(Utc::now())))
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "insert into idempotency_key (principal, request_key, fingerprint, status, body, created_at) \
         values (?, ?, ?, 0, '', ?) on conflict (principal, request_key) do nothing",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .bind(idempotency.fingerprint)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query_as::<_, SavedRow>(
        "select fingerprint, status, body, location, etag from idempotency_key \
         where principal = ? and request_key = ?",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .fetch_one(&mut *conn)
    .await?;
    if row.fingerprint != idempotency.fingerprint {
        return Err(StoreError::IdempotencyKeyReused.into());
    }
    Ok(Claim::Saved(SavedResponse {
        status: u16::try_from(row.status).unwrap_or(500),
        body: row.body,
        location: row.location,
        etag: row.etag,
    }))
}

/// Saves the response of a fresh claim (same transaction as the creation).
async fn save<T>(
    conn: &mut SqliteConnection,
    idempotency: &Idempotency<'_, T>,
    response: &SavedResponse,
) -> Result<()> {
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
    .await?;
    Ok(())
}
