//! HTTP tests: the real application on 127.0.0.1:0 with its own SQLite file, driven over
//! real HTTP. One binary (one link) for every module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod access;
mod admin;
mod artists;
mod auth;
mod browser;
mod cli;
mod docs;
mod edge;
mod errors;
mod harness;
mod health;
mod idempotency;
mod lists;
mod observability;
mod shutdown;
mod songs;
