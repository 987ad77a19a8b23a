//! Domain types: values that can only be built valid, and the rules that build them.
//! Knows nothing of HTTP, wire formats or SQL.

pub mod artist;
pub mod credential;
pub mod demo;
pub mod idempotency;
pub mod ids;
pub mod list;
pub mod song;
pub mod user;
pub mod validation;
pub mod version;
