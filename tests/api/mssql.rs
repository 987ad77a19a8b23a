//! SQL Server only: the binary's commands on a SQL Server database. Needs
//! `STARSONGS_TEST_MSSQL_URL` (an `mssql://` URL of a login that may create databases);
//! without it the test prints why and skips. The GitHub workflow runs it against a SQL
//! Server 2022 service container.

use crate::server_db::{MSSQL_URL_VAR, TestDatabase, server_url};

#[tokio::test]
async fn migrate_user_create_and_serve_work_on_sql_server() {
    let Some(admin_url) = server_url(MSSQL_URL_VAR, "mssql") else {
        return;
    };
    let database = TestDatabase::create_mssql(&admin_url).await;

    crate::postgres::commands_work_on(&database.url);
}
