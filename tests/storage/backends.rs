//! One constructor per backend: a fresh, migrated, empty store. Server backends read their
//! URL from `STARSONGS_TEST_<BACKEND>_URL` and print `skipped: <VAR> unset` without one.

use std::collections::HashMap;

use starsongs::config::Settings;
use starsongs::storage::{self, DynStore};
use tempfile::TempDir;

/// A store and whatever keeps its database alive.
pub struct Backend {
    pub store: DynStore,
    _dir: TempDir,
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("contract.db").display()
    );
    let vars = HashMap::from([
        ("STARSONGS_ENV".to_owned(), "test".to_owned()),
        ("DATABASE_URL".to_owned(), url),
    ]);
    let settings = Settings::load_from(&vars).unwrap();
    let store = storage::connect(&settings.database).await.unwrap();
    store.migrator().up().await.unwrap();
    Some(Backend { store, _dir: dir })
}
