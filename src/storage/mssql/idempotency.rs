//! Idempotency-key bookkeeping on SQL Server, used inside the creating transaction.

use std::pin::Pin;

use chrono::Utc;

use super::pool::Conn;
use super::sql::{Sql, begin, column, finish, optional_text};
use super::{Pool, Result, now, other};
use crate::domain::idempotency::expiry_cutoff;
use crate::storage::StoreError;
use crate::storage::{Created, Idempotency, SavedResponse};

const FORGET_EXPIRED: &str = "DELETE FROM dbo.idempotency_key \
     WHERE principal = @P1 AND request_key = @P2 AND created_at < @P3";
/// `UPDLOCK, HOLDLOCK` take a key-range lock on the key: a concurrent request with the same
/// key (on any replica) waits until this transaction ends, then finds the saved response.
const CLAIM: &str = "INSERT INTO dbo.idempotency_key (principal, request_key, fingerprint, \
     status, body, created_at) SELECT @P1, @P2, @P3, 0, @P4, @P5 \
     WHERE NOT EXISTS (SELECT 1 FROM dbo.idempotency_key WITH (UPDLOCK, HOLDLOCK) \
     WHERE principal = @P1 AND request_key = @P2)";
const SAVED: &str = "SELECT fingerprint, status, body, location, etag FROM dbo.idempotency_key \
     WHERE principal = @P1 AND request_key = @P2";
const SAVE: &str = "UPDATE dbo.idempotency_key SET status = @P1, body = @P2, location = @P3, \
     etag = @P4 WHERE principal = @P5 AND request_key = @P6";

/// Every fixed statement, for the parse test.
#[cfg(test)]
pub(super) const STATEMENTS: &[&str] = &[FORGET_EXPIRED, CLAIM, SAVED, SAVE];

/// The future of one insert on a borrowed connection.
pub(super) type InsertFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// Claims the key, runs `insert` and saves the rendered response, all in one transaction;
/// or replays the response saved for the same request.
pub(super) async fn create_once<N: Sync, T>(
    pool: &Pool,
    new: &N,
    idempotency: &Idempotency<'_, T>,
    insert: impl for<'c> Fn(&'c mut Conn, &'c N) -> InsertFuture<'c, T>,
) -> Result<Created<T>> {
    let mut conn = pool.get().await?;
    begin(&mut conn).await?;
    let result = async {
        if let Some(saved) = claim(&mut conn, idempotency).await? {
            return Ok(Created::Replayed(saved));
        }
        let created = insert(&mut conn, new).await?;
        save(&mut conn, idempotency, &(idempotency.render)(&created)).await?;
        Ok(Created::New(created))
    }
    .await;
    finish(&mut conn, result).await
}

fn key_params<T>(idempotency: &Idempotency<'_, T>) -> [Box<dyn tiberius::ToSql>; 2] {
    [
        Box::new(idempotency.principal.to_owned()),
        Box::new(idempotency.key.to_owned()),
    ]
}

/// `None` when the key is fresh (create, then `save`); the saved response when it was used
/// with the same request.
async fn claim<T>(
    conn: &mut Conn,
    idempotency: &Idempotency<'_, T>,
) -> Result<Option<SavedResponse>> {
    let [principal, key] = key_params(idempotency);
    Sql::with(
        FORGET_EXPIRED,
        vec![
            principal,
            key,
            Box::new(expiry_cutoff(Utc::now()).fixed_offset()),
        ],
    )
    .execute(conn)
    .await?;
    let [principal, key] = key_params(idempotency);
    let claimed = Sql::with(
        CLAIM,
        vec![
            principal,
            key,
            Box::new(idempotency.fingerprint.to_owned()),
            Box::new(String::new()),
            Box::new(now().fixed_offset()),
        ],
    )
    .execute(conn)
    .await?;
    if claimed == 1 {
        return Ok(None);
    }
    let [principal, key] = key_params(idempotency);
    let row = Sql::with(SAVED, vec![principal, key])
        .row(conn)
        .await?
        .ok_or_else(|| other("claimed key vanished"))?;
    if optional_text(&row, "fingerprint")?.as_deref() != Some(idempotency.fingerprint) {
        return Err(StoreError::IdempotencyKeyReused.into());
    }
    let status: i32 = column(&row, "status")?.unwrap_or_default();
    Ok(Some(SavedResponse {
        status: u16::try_from(status).unwrap_or(500),
        body: optional_text(&row, "body")?.unwrap_or_default(),
        location: optional_text(&row, "location")?,
        etag: optional_text(&row, "etag")?,
    }))
}

async fn save<T>(
    conn: &mut Conn,
    idempotency: &Idempotency<'_, T>,
    response: &SavedResponse,
) -> Result<()> {
    let [principal, key] = key_params(idempotency);
    Sql::with(
        SAVE,
        vec![
            Box::new(i32::from(response.status)),
            Box::new(response.body.clone()),
            Box::new(response.location.clone()),
            Box::new(response.etag.clone()),
            principal,
            key,
        ],
    )
    .execute(conn)
    .await
    .map(|_| ())
}
