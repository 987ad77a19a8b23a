//! `If-Match` and `If-None-Match` headers as domain preconditions; a malformed value is 400.

use axum::extract::FromRequestParts;
use axum::http::HeaderName;
use axum::http::header::{IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use utoipa::IntoParams;

use crate::domain::version::ExpectedVersions;
use crate::http::error::ApiError;
use crate::http::etag::Precondition;

/// The `If-Match` precondition, if sent.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(pub Option<Precondition>);

/// The `If-None-Match` precondition, if sent.
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(pub Option<Precondition>);

/// The `If-Match` header as documented: `params(IfMatchParam)` on a conditional write.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchParam {
    /// Only if the current tag matches
    #[param(
        rename = "If-Match",
        nullable = false,
        pattern = r#"^[ \t]*(\*|([ \t]*,)*[ \t]*(W/)?"[\t\x20\x21\x23-\x7E]*"([ \t]*,([ \t]*,)*[ \t]*(W/)?"[\t\x20\x21\x23-\x7E]*")*([ \t]*,)*)[ \t]*$"#
    )]
    pub if_match: Option<String>,
}

/// The `If-None-Match` header as documented: `params(IfNoneMatchParam)` on a read.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchParam {
    /// Entity tags the client already has
    #[param(
        rename = "If-None-Match",
        nullable = false,
        pattern = r#"^[ \t]*(\*|([ \t]*,)*[ \t]*(W/)?"[\t\x20\x21\x23-\x7E]*"([ \t]*,([ \t]*,)*[ \t]*(W/)?"[\t\x20\x21\x23-\x7E]*")*([ \t]*,)*)[ \t]*$"#
    )]
    pub if_none_match: Option<String>,
}

fn read(parts: &Parts, name: &HeaderName) -> Result<Option<Precondition>, ApiError> {
    let values: Vec<&str> = parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    Precondition::parse(&values.join(","))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name} must be `*` or a comma-separated list of quoted entity tags"
            ))
        })
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        read(parts, &IF_MATCH).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        read(parts, &IF_NONE_MATCH).map(Self)
    }
}

impl IfMatch {
    /// The versions of resource `id` this header accepts, for store calls; `None` when
    /// no header (or `*`) was sent.
    pub fn expected(&self, id: i64) -> Option<ExpectedVersions> {
        self.0.as_ref().and_then(|p| p.expected_versions(id))
    }
}
