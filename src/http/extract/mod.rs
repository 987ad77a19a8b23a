//! Extractors that reject with `ApiError` (problem+json), used instead of axum's `Json`,
//! `Path` and `Query`, whose rejections are plain text.

mod conditional;
mod json;
mod path;
mod query;

pub use conditional::{IfMatch, IfMatchParam, IfNoneMatch, IfNoneMatchParam};
pub use json::{ApiJson, JsonInteger, double_option, read_body};
pub use path::ApiPath;
pub use query::ApiQuery;
