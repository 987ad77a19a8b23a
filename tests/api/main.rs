//! HTTP tests: the real application on 127.0.0.1:0 with its own database (a SQLite file,
//! or a PostgreSQL database with `STARSONGS_TEST_API_BACKEND=postgres`), driven over real
//! HTTP. One binary (one link) for every module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod access;
mod admin;
mod artists;
mod auth;
mod browser;
mod cli;
mod client_ip;
mod connections;
mod dashboards;
mod docs;
mod durability;
mod edge;
mod errors;
mod harness;
mod health;
mod idempotency;
mod lists;
mod mssql;
mod observability;
mod postgres;
mod replicas;
mod restore;
mod sandbox;
#[path = "../support/server_db.rs"]
mod server_db;
mod shutdown;
mod songs;
mod tracing;
