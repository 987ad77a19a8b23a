//! The performance ceiling: bare axum + sqlx on SQLite with no middleware.
//!
//! This is the project's copy of `../shared/bench/ceiling/sqlite`, the yardstick that
//! BENCHMARKS.md and `scripts/path-bench.py` divide the service's figures by. It answers
//! the four scenarios on a file made by `../shared/bench/gen_data.py` (tables `Artist`
//! and `Song`), with the pragmas the service uses: WAL, `busy_timeout` 5 s and
//! `synchronous=FULL` unless `SYNC=NORMAL`.
//!
//! ```text
//! cargo build --release --example ceiling
//! DB_PATH=/tmp/ceiling.db POOL=8 BIND=127.0.0.1:8101 target/release/examples/ceiling
//! ```
//!
//! Kept in the repository so that a benchmark run builds the ceiling with the same
//! compiler, dependency versions and release profile as the service it is compared with.

use std::{str::FromStr, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[derive(Serialize)]
struct Artist {
    id: i64,
    name: String,
}

#[derive(Serialize)]
struct Song {
    id: i64,
    title: String,
    artist_id: Option<i64>,
    release_date: Option<String>,
    url: Option<String>,
    distance: Option<f64>,
}

#[derive(Serialize)]
struct Pagination {
    page: i64,
    page_size: i64,
    total_items: i64,
    total_pages: i64,
    has_next: bool,
    has_prev: bool,
}

#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    pagination: Pagination,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<i64>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
struct NewArtist {
    name: String,
}

type SongRow = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<f64>,
);

fn server_error(e: sqlx::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

fn pagination(page: i64, page_size: i64, total: i64) -> Pagination {
    let total_pages = if total > 0 {
        (total + page_size - 1) / page_size
    } else {
        0
    };
    Pagination {
        page,
        page_size,
        total_items: total,
        total_pages,
        has_next: page < total_pages,
        has_prev: page > 1,
    }
}

/// The page and page size asked for, or `None` when they are out of range.
fn page_args(q: &PageQuery) -> Option<(i64, i64)> {
    let page = q.page.unwrap_or(1);
    let size = q.page_size.unwrap_or(10);
    (page >= 1 && (1..=100).contains(&size)).then_some((page, size))
}

fn bad_paging() -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, "bad paging").into_response()
}

async fn get_artist(State(db): State<SqlitePool>, Path(id): Path<i64>) -> Response {
    match sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM Artist WHERE id = ?")
        .bind(id)
        .fetch_optional(&db)
        .await
    {
        Ok(Some((id, name))) => Json(Artist { id, name }).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "not found").into_response(),
        Err(e) => server_error(e),
    }
}

async fn list_artists(State(db): State<SqlitePool>, Query(q): Query<PageQuery>) -> Response {
    let Some((page, size)) = page_args(&q) else {
        return bad_paging();
    };
    let total: i64 = match sqlx::query_scalar("SELECT COUNT(*) FROM Artist")
        .fetch_one(&db)
        .await
    {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let rows = match sqlx::query_as::<_, (i64, String)>(
        "SELECT id, name FROM Artist ORDER BY id LIMIT ? OFFSET ?",
    )
    .bind(size)
    .bind((page - 1) * size)
    .fetch_all(&db)
    .await
    {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let items = rows
        .into_iter()
        .map(|(id, name)| Artist { id, name })
        .collect();
    Json(Page {
        items,
        pagination: pagination(page, size, total),
    })
    .into_response()
}

async fn list_songs(State(db): State<SqlitePool>, Query(q): Query<PageQuery>) -> Response {
    let Some((page, size)) = page_args(&q) else {
        return bad_paging();
    };
    let total: i64 = match sqlx::query_scalar("SELECT COUNT(*) FROM Song")
        .fetch_one(&db)
        .await
    {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let rows = match sqlx::query_as::<_, SongRow>(
        "SELECT id, title, artistID, released, URL, distance FROM Song ORDER BY id LIMIT ? OFFSET ?",
    )
    .bind(size)
    .bind((page - 1) * size)
    .fetch_all(&db)
    .await
    {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let items = rows
        .into_iter()
        .map(|(id, title, artist_id, release_date, url, distance)| Song {
            id,
            title,
            artist_id,
            release_date,
            url,
            distance,
        })
        .collect();
    Json(Page {
        items,
        pagination: pagination(page, size, total),
    })
    .into_response()
}

async fn create_artist(State(db): State<SqlitePool>, Json(a): Json<NewArtist>) -> Response {
    match sqlx::query_as::<_, (i64, String)>(
        "INSERT INTO Artist (name) VALUES (?) RETURNING id, name",
    )
    .bind(a.name)
    .fetch_one(&db)
    .await
    {
        Ok((id, name)) => (StatusCode::CREATED, Json(Artist { id, name })).into_response(),
        Err(e) => server_error(e),
    }
}

// Startup only: a bad environment ends the process before it serves anything.
#[allow(clippy::expect_used)]
#[tokio::main]
async fn main() {
    let path = std::env::var("DB_PATH").expect("DB_PATH names gen_data.py's SQLite file");
    let pool_size: u32 = std::env::var("POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8101".into());
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .expect("DB_PATH is a usable path")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match std::env::var("SYNC").as_deref() {
            Ok("NORMAL") => SqliteSynchronous::Normal,
            _ => SqliteSynchronous::Full,
        })
        .busy_timeout(Duration::from_secs(5));
    let db = SqlitePoolOptions::new()
        .min_connections(pool_size)
        .max_connections(pool_size)
        .connect_with(options)
        .await
        .expect("the database opens");
    let app = Router::new()
        .route("/v1/artists/{id}", get(get_artist))
        .route("/v1/artists", get(list_artists).post(create_artist))
        .route("/v1/songs", get(list_songs))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .expect("BIND is free");
    eprintln!("listening on {addr} pool={pool_size}");
    axum::serve(listener, app).await.expect("the server runs");
}
