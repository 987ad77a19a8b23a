//! Idempotency-key bookkeeping on PostgreSQL, used inside the creating transaction.

use std::pin::Pin;

use chrono::Utc;
use sqlx::{PgConnection, PgPool};

use super::{Result, now};
use crate::domain::idempotency::expiry_cutoff;
use crate::storage::StoreError;
use crate::storage::{Created, Idempotency, SavedResponse};

/// The future of one insert on a borrowed connection.
pub(super) type InsertFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// A saved response as stored, with the fingerprint of the request that made it.
#[derive(sqlx::FromRow)]
struct SavedRow {
    fingerprint: String,
    status: i32,
    body: String,
    location: Option<String>,
    etag: Option<String>,
}

impl From<SavedRow> for SavedResponse {
    fn from(row: SavedRow) -> Self {
        Self {
            status: u16::try_from(row.status).unwrap_or(500),
            body: row.body,
            location: row.location,
            etag: row.etag,
        }
    }
}

/// Claims the key, runs `insert` and saves the rendered response, all in one transaction;
/// or replays the response saved for the same request.
///
/// The claim is an `insert ... on conflict do nothing` on the key's primary key: a
/// concurrent request with the same key waits on that index entry until the first
/// transaction ends, then finds its saved response (or, if it rolled back, claims the key
/// itself). So concurrent requests create exactly one resource, on any number of replicas.
pub(super) async fn create_once<N: Sync, T>(
    pool: &PgPool,
    new: &N,
    idempotency: &Idempotency<'_, T>,
    insert: impl for<'c> Fn(&'c mut PgConnection, &'c N) -> InsertFuture<'c, T>,
) -> Result<Created<T>> {
    let mut tx = pool.begin().await?;
    if let Claim::Saved(saved) = claim(&mut tx, idempotency).await? {
        tx.rollback().await?;
        return Ok(Created::Replayed(saved));
    }
    let created = insert(&mut tx, new).await?;
    save(&mut tx, idempotency, &(idempotency.render)(&created)).await?;
    tx.commit().await?;
    Ok(Created::New(created))
}

/// Whether the caller should create the resource, or answer with a saved response.
enum Claim {
    /// The key is new (or expired): create, then `save`.
    Fresh,
    /// The key was used with the same request: replay this.
    Saved(SavedResponse),
}

async fn claim<T>(conn: &mut PgConnection, idempotency: &Idempotency<'_, T>) -> Result<Claim> {
    sqlx::query(
        "delete from idempotency_key where principal = $1 and request_key = $2 \
         and created_at < $3",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .bind(expiry_cutoff(Utc::now()))
    .execute(&mut *conn)
    .await?;
    let inserted = sqlx::query(
        "insert into idempotency_key (principal, request_key, fingerprint, status, body, \
         created_at) values ($1, $2, $3, 0, '', $4) \
         on conflict (principal, request_key) do nothing",
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
    let saved = sqlx::query_as::<_, SavedRow>(
        "select fingerprint, status, body, location, etag from idempotency_key \
         where principal = $1 and request_key = $2",
    )
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .fetch_one(&mut *conn)
    .await?;
    if saved.fingerprint != idempotency.fingerprint {
        return Err(StoreError::IdempotencyKeyReused.into());
    }
    Ok(Claim::Saved(saved.into()))
}

async fn save<T>(
    conn: &mut PgConnection,
    idempotency: &Idempotency<'_, T>,
    response: &SavedResponse,
) -> Result<()> {
    sqlx::query(
        "update idempotency_key set status = $1, body = $2, location = $3, etag = $4 \
         where principal = $5 and request_key = $6",
    )
    .bind(i32::from(response.status))
    .bind(&response.body)
    .bind(response.location.as_deref())
    .bind(response.etag.as_deref())
    .bind(idempotency.principal)
    .bind(idempotency.key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
