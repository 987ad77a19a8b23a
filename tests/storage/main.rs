//! Storage contract suite: every case in `cases.rs` runs against every backend in
//! `backends.rs`, so all backends keep the same behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod backends;
mod cases;
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
            login_failures_lock_after_five_and_clear,
            failures_outside_the_window_start_a_new_count,
            users_change_and_the_last_admin_stays,
            api_keys_are_found_by_digest_and_deleted,
            text_sorts_by_code_point_and_cursors_walk_it,
            full_precision_distances_walk_by_cursor_exactly_once,
            concurrent_migrations_apply_each_once,
            typed_errors_for_conflicts_and_unsupported_operations,
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
