//! Star Songs: a music catalog REST API.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library;
//! tests and the CLI use the same entry points. See `README.md` for the quick start and
//! `../shared/API.md` for the HTTP contract.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod ratelimit;
pub mod shutdown;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tls;
