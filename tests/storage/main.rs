//! Storage contract suite: every case in `cases.rs` runs against every backend in
//! `backends.rs`, so all backends keep the same behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod backends;
mod cases;
mod mssql_adoption;
#[path = "../support/server_db.rs"]
mod server_db;
mod sqlite_limits;

/// Instantiates every contract case for one backend as a `#[tokio::test]`.
macro_rules! contract_suite {
    ($backend:ident) => {
        contract_suite!(@cases $backend:
            insert_and_get_round_trip,
            get_missing_is_not_found,
            list_orders_nulls_last_and_breaks_ties_by_id,
            list_filters_and_counts,
            search_treats_metacharacters_as_text,
            keyset_walk_matches_offset_order,
            every_write_bumps_the_version,
            precondition_failure_changes_nothing,
            delete_artist_with_songs_is_conflict_until_cascade,
            song_with_missing_artist_is_artist_not_found,
            replace_and_patch_never_create,
            include_artist_fills_the_summary,
            concurrent_patches_all_apply,
            demo_seed_runs_once,
            migrations_round_trip,
            idempotent_insert_replays_and_rejects_other_requests,
            concurrent_idempotent_inserts_create_one,
            pruned_keys_can_be_used_again,
            users_are_unique_ignoring_case,
            refresh_tokens_rotate_once_and_reuse_revokes_the_family,
            concurrent_refreshes_of_one_token_succeed_once,
            expired_revoked_and_inactive_refreshes_are_rejected,
            login_attempts_lock_after_five_and_clear,
            concurrent_login_attempts_claim_at_most_five,
            attempts_outside_the_window_start_a_new_count,
            a_login_ends_at_its_maximum_age_however_often_refreshed,
            sessions_end_with_logout_reuse_and_password_change,
            users_change_and_the_last_admin_stays,
            a_user_change_is_decided_against_the_stored_row,
            api_keys_are_found_by_digest_and_deleted,
            text_sorts_by_code_point_and_cursors_walk_it,
            full_precision_distances_walk_by_cursor_exactly_once,
            concurrent_migrations_apply_each_once,
            typed_errors_for_conflicts_and_unsupported_operations,
            search_and_totals_match_a_brute_force_filter,
            totals_and_search_stay_exact_after_every_write,
        );
    };
    (@cases $backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = crate::backends::$backend().await else {
                        return;
                    };
                    crate::cases::$case(backend.store.as_ref()).await;
                }
            )+
        }
    };
}

contract_suite!(sqlite);
contract_suite!(postgres);
contract_suite!(mssql);

/// Not a contract case: SQLite only, because it breaks the bookkeeping table by hand.
#[tokio::test]
async fn pending_count_reports_a_broken_bookkeeping_table_instead_of_zero() {
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.as_ref();
    assert_eq!(store.migrator().pending_count().await.unwrap(), 0);
    store.migrator().down_to(0).await.unwrap();
    let url = backends::sqlite_url(&backend);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql("drop table _sqlx_migrations; create table _sqlx_migrations (broken text)")
        .execute(&mut conn)
        .await
        .unwrap();

    let pending = store.migrator().pending_count().await;

    assert!(pending.is_err(), "{pending:?}");
}

/// The objects of the SQLite schema, for comparing one migration level with another.
async fn sqlite_schema(url: &str) -> Vec<(String, String, Option<String>)> {
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query_as("select type, name, sql from sqlite_schema order by type, name")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Not a contract case: SQLite only, because it migrates a database that holds rows
/// written before 0006 existed, and reads the FTS5 index's own integrity check.
#[tokio::test]
async fn migration_0006_backfills_search_and_counts_and_its_down_removes_them() {
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.as_ref();
    let url = backends::sqlite_url(&backend);
    store.migrator().down_to(5).await.unwrap();
    let before = sqlite_schema(&url).await;
    let (first, _) = cases::search_catalog(store).await;
    let doomed = store
        .insert_song(
            &starsongs::domain::song::NewSong::parse(starsongs::domain::song::SongFields {
                title: "Deleted Love",
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    store.delete_song(doomed.id, None).await.unwrap();

    let applied = store.migrator().up().await.unwrap();

    assert_eq!(applied, [6, 7]);
    cases::assert_search_matches_brute_force(store, &["lo", "love", "ove", "straße", "\""], None)
        .await;
    cases::assert_search_matches_brute_force(store, &["love", "é"], Some(first)).await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    for index in ["song_search", "artist_search"] {
        // 'integrity-check' with rank 1 also compares the index with the content table.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into {index} ({index}, rank) values ('integrity-check', 1)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    drop(conn);
    store.migrator().down_to(5).await.unwrap();
    assert_eq!(
        sqlite_schema(&url).await,
        before,
        "the down removes all the up adds"
    );
}

/// Not a contract case: text with U+FFFE or U+FFFF, which FTS5 reads as U+FFFD. `q`
/// holding any of the three scans instead of using the index, so the results stay those
/// of `instr`.
#[tokio::test]
async fn search_for_characters_fts5_reads_as_replacement_stays_exact() {
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.as_ref();
    for title in ["ab\u{fffe}cd", "ab\u{ffff}cd", "ab\u{fffd}cd", "abxcd"] {
        store
            .insert_song(
                &starsongs::domain::song::NewSong::parse(starsongs::domain::song::SongFields {
                    title,
                    ..Default::default()
                })
                .unwrap(),
            )
            .await
            .unwrap();
        store
            .insert_artist(&starsongs::domain::artist::NewArtist::parse(title).unwrap())
            .await
            .unwrap();
    }

    cases::assert_search_matches_brute_force(
        store,
        &[
            "b\u{fffd}c",
            "b\u{fffe}c",
            "ab\u{ffff}",
            "\u{fffd}",
            "bxc",
            "abx",
        ],
        None,
    )
    .await;
}

/// Not a contract case: SQLite only, because it writes rows in the schema before 0007 with
/// raw SQL. Existing logins must keep working after the upgrade and end
/// `auth.session_max_secs` after the first token of their family, not after the latest.
#[tokio::test]
async fn migration_0007_dates_each_login_from_the_first_token_of_its_family() {
    let backend = backends::sqlite().await.unwrap();
    let store = backend.store.as_ref();
    let url = backends::sqlite_url(&backend);
    let user = store
        .insert_user(
            &starsongs::domain::user::NewUser::parse(
                "ziggy",
                "z@example.com",
                &secrecy::SecretString::from("correct horse battery".to_owned()),
                starsongs::domain::user::Role::Viewer,
            )
            .unwrap(),
            "h",
        )
        .await
        .unwrap();
    store.migrator().down_to(6).await.unwrap();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "insert into refresh_token \
           (token_hash, family_id, user_id, expires_at, created_at, spent_at) values \
         ('a', 'fam', ?1, '2999-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', \
          '2026-01-02T00:00:00.000000Z'), \
         ('b', 'fam', ?1, '2999-01-01T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z', null), \
         ('c', 'other', ?1, '2999-01-01T00:00:00.000000Z', '2026-01-03T00:00:00.000000Z', null)",
    )
    .bind(user.id.get())
    .execute(&mut conn)
    .await
    .unwrap();

    let applied = store.migrator().up().await.unwrap();

    assert_eq!(applied, [7]);
    let started: Vec<(String, String)> = sqlx::query_as(
        "select token_hash, session_started_at from refresh_token order by token_hash",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        started,
        [
            ("a".to_owned(), "2026-01-01T00:00:00.000000Z".to_owned()),
            ("b".to_owned(), "2026-01-01T00:00:00.000000Z".to_owned()),
            ("c".to_owned(), "2026-01-03T00:00:00.000000Z".to_owned()),
        ]
    );
    assert!(store.is_session_active("fam").await.unwrap());
}
