//! One constructor per backend: a fresh, migrated, empty store. Server backends read their
//! URL from `STARSONGS_TEST_<BACKEND>_URL` and print `skipped: <VAR> unset` without one
//! (a failure instead when `STARSONGS_TEST_REQUIRE` lists the backend).

use std::collections::HashMap;

use starsongs::config::Settings;
use starsongs::storage::{self, DynStore};
use tempfile::TempDir;

use crate::server_db::{MSSQL_URL_VAR, POSTGRES_URL_VAR, TestDatabase, server_url};

/// A store and whatever keeps its database alive.
pub struct Backend {
    pub store: DynStore,
    dir: Option<TempDir>,
    _database: Option<TestDatabase>,
}

async fn open(url: &str) -> DynStore {
    let vars = HashMap::from([
        ("STARSONGS_ENV".to_owned(), "test".to_owned()),
        ("DATABASE_URL".to_owned(), url.to_owned()),
    ]);
    let settings = Settings::load_from(&vars).unwrap();
    storage::connect(&settings.database).await.unwrap()
}

/// The URL of a SQLite backend's file, for tests that open it directly.
pub fn sqlite_url(backend: &Backend) -> String {
    let dir = backend.dir.as_ref().expect("a SQLite backend");
    format!("sqlite://{}", dir.path().join("contract.db").display())
}

/// The path of a SQLite backend's file.
pub fn sqlite_path(backend: &Backend) -> std::path::PathBuf {
    let dir = backend.dir.as_ref().expect("a SQLite backend");
    dir.path().join("contract.db")
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("contract.db").display()
    );
    let store = open(&url).await;
    store.migrator().up().await.unwrap();
    Some(Backend {
        store,
        dir: Some(dir),
        _database: None,
    })
}

/// A fresh database on the PostgreSQL server of `STARSONGS_TEST_POSTGRES_URL`.
pub async fn postgres() -> Option<Backend> {
    let admin_url = server_url(POSTGRES_URL_VAR, "postgres")?;
    let database = TestDatabase::create(&admin_url).await;
    let store = open(&database.url).await;
    store.migrator().up().await.unwrap();
    Some(Backend {
        store,
        dir: None,
        _database: Some(database),
    })
}

/// A fresh database on the SQL Server of `STARSONGS_TEST_MSSQL_URL`.
pub async fn mssql() -> Option<Backend> {
    let admin_url = server_url(MSSQL_URL_VAR, "mssql")?;
    let database = TestDatabase::create_mssql(&admin_url).await;
    let store = open(&database.url).await;
    store.migrator().up().await.unwrap();
    Some(Backend {
        store,
        dir: None,
        _database: Some(database),
    })
}
