//! `ApiError`, the only error a handler returns, and `Problem`, its RFC 9457 rendering.
//!
//! `ApiError::into_response` builds the problem and stores it (and, for 5xx, the source
//! error) in the response extensions; `middleware::problem` adds `instance` and
//! `request_id`, logs 5xx, and writes the body. Nothing here logs or knows the request.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::validation::{FieldError, ValidationErrors};
use crate::storage::{ConflictKind, StoreError};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable problem `type` URIs, one per kind of error.
pub mod problem_type {
    /// 400: the body is not valid JSON, or a header is malformed.
    pub const BAD_REQUEST: &str = "urn:starsongs:problem:bad-request";
    /// 401: no credentials, or credentials that are invalid, expired or revoked.
    pub const UNAUTHORIZED: &str = "urn:starsongs:problem:unauthorized";
    /// 403: authenticated, but the role does not allow this.
    pub const FORBIDDEN: &str = "urn:starsongs:problem:forbidden";
    /// 429: too many attempts; see `Retry-After`.
    pub const TOO_MANY_REQUESTS: &str = "urn:starsongs:problem:too-many-requests";
    /// 404: no such resource or route.
    pub const NOT_FOUND: &str = "urn:starsongs:problem:not-found";
    /// 405: the route exists but not for this method.
    pub const METHOD_NOT_ALLOWED: &str = "urn:starsongs:problem:method-not-allowed";
    /// 409: the change conflicts with other data.
    pub const CONFLICT: &str = "urn:starsongs:problem:conflict";
    /// 412: `If-Match` did not match.
    pub const PRECONDITION_FAILED: &str = "urn:starsongs:problem:precondition-failed";
    /// 413: the body is larger than `server.max_body_bytes`.
    pub const PAYLOAD_TOO_LARGE: &str = "urn:starsongs:problem:payload-too-large";
    /// 431: the request line and headers are larger than `server.max_header_bytes`.
    pub const HEADERS_TOO_LARGE: &str = "urn:starsongs:problem:headers-too-large";
    /// 415: the body's content type is not accepted.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "urn:starsongs:problem:unsupported-media-type";
    /// 422: well-formed input that breaks a rule; see `errors`.
    pub const VALIDATION: &str = "urn:starsongs:problem:validation-error";
    /// 500: a bug; the detail is fixed and the cause is logged.
    pub const INTERNAL: &str = "urn:starsongs:problem:internal-error";
    /// 503: the database is unavailable or the service is shutting down.
    pub const UNAVAILABLE: &str = "urn:starsongs:problem:service-unavailable";
    /// 504: the request took longer than `server.request_timeout_secs`.
    pub const TIMEOUT: &str = "urn:starsongs:problem:timeout";
    /// Any other error status.
    pub const OTHER: &str = "urn:starsongs:problem:http-error";
}

/// Detail of every 500: the cause goes to the log, never to the client.
pub const INTERNAL_DETAIL: &str = "An unexpected error occurred; it has been logged";

/// One field problem in a 422 body.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldErrorOut {
    /// The field (dotted path), `body` for the document as a whole.
    #[schema(example = "name")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must not be empty")]
    pub message: String,
}

/// An RFC 9457 problem details document.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({
    "type": "urn:starsongs:problem:not-found",
    "title": "Not Found",
    "status": 404,
    "detail": "Artist with id 7 not found",
    "instance": "/v1/artists/7",
    "request_id": "0b6f2c1e-9a47-4a4e-8a55-3c5f0f0f6b7a"
}))]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the status.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation for the API user.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id, as in `X-Request-ID` and the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field problems (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorOut>,
}

impl Problem {
    /// A problem for `status` with the given type and detail.
    pub fn new(status: StatusCode, type_uri: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: type_uri.to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: None,
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// The problem for an error status produced outside a handler (router, layers).
    pub fn for_status(status: StatusCode) -> Self {
        let (type_uri, detail) = status_defaults(status);
        Self::new(status, type_uri, detail)
    }
}

/// Problem type and detail for a status that carries no more specific information.
fn status_defaults(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (problem_type::NOT_FOUND, "No resource at this path"),
        StatusCode::METHOD_NOT_ALLOWED => (
            problem_type::METHOD_NOT_ALLOWED,
            "This method is not allowed on this resource; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            problem_type::PAYLOAD_TOO_LARGE,
            "The request body is larger than this service accepts",
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
            problem_type::TIMEOUT,
            "The request took too long and was cancelled",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            problem_type::UNAVAILABLE,
            "The service is temporarily unavailable; retry later",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            problem_type::HEADERS_TOO_LARGE,
            "The request headers are larger than this service accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            problem_type::UNSUPPORTED_MEDIA_TYPE,
            "The request body's content type is not accepted",
        ),
        s if s.is_server_error() => (problem_type::INTERNAL, INTERNAL_DETAIL),
        s => (
            problem_type::OTHER,
            s.canonical_reason().unwrap_or("The request failed"),
        ),
    }
}

/// The problem of an error response, left in its extensions for `middleware::problem`.
#[derive(Debug, Clone)]
pub struct ProblemExtension {
    /// The problem, without `instance` and `request_id`.
    pub problem: Arc<Problem>,
    /// The cause of a 5xx, for the log only.
    pub source: Option<Arc<anyhow::Error>>,
}

/// The error a handler or extractor returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    type_uri: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    www_authenticate: Option<String>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    fn new(status: StatusCode, type_uri: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            type_uri,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            www_authenticate: None,
            source: None,
        }
    }

    /// 401 with a `WWW-Authenticate` challenge (RFC 6750). `error` is the Bearer error
    /// code (`invalid_token`) when credentials were sent but refused.
    pub fn unauthorized(detail: impl Into<String>, error: Option<&str>) -> Self {
        let mut problem = Self::new(StatusCode::UNAUTHORIZED, problem_type::UNAUTHORIZED, detail);
        problem.www_authenticate = Some(match error {
            Some(code) => format!(r#"Bearer realm="starsongs", error="{code}""#),
            None => r#"Bearer realm="starsongs""#.to_owned(),
        });
        problem
    }

    /// 403: the principal is known but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, problem_type::FORBIDDEN, detail)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            problem_type::TOO_MANY_REQUESTS,
            detail,
        );
        error.retry_after_secs = Some(retry_after_secs.max(1));
        error
    }

    /// 400 with the given detail.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, problem_type::BAD_REQUEST, detail)
    }

    /// An error with the default type and detail of `status`.
    pub fn from_status(status: StatusCode) -> Self {
        let (type_uri, detail) = status_defaults(status);
        Self::new(status, type_uri, detail)
    }

    /// 415 naming the accepted media types.
    pub fn unsupported_media_type(accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            problem_type::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {accepted}"),
        )
    }

    /// 422 listing every field problem.
    pub fn validation(errors: ValidationErrors) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type::VALIDATION,
            format!("Invalid request: {errors}"),
        );
        error.errors = errors.errors().to_vec();
        error
    }

    /// 500 with a fixed detail; `source` is logged, never shown.
    pub fn internal(source: anyhow::Error) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            problem_type::INTERNAL,
            INTERNAL_DETAIL,
        );
        error.source = Some(source);
        error
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            problem_type::UNAVAILABLE,
            detail,
        );
        error.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::validation(errors)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::validation(error.into())
    }
}

/// The client's sentence for a conflict kind.
fn conflict_detail(kind: &ConflictKind) -> String {
    match kind {
        ConflictKind::ArtistHasSongs { artist, songs } => format!(
            "Artist with id {artist} still has {songs} song(s); delete or reassign them first, \
             or delete with cascade=true"
        ),
        // One message for both: which one is taken is for the admin to see, not to leak
        // through registration.
        ConflictKind::UsernameOrEmailTaken => "The username or email is already registered".into(),
        ConflictKind::EmailTaken => "The email is already registered".into(),
        ConflictKind::LastAdmin => {
            "This is the last active admin; make another account admin first".into()
        }
        ConflictKind::BackupDestinationExists => {
            "The backup destination exists already; choose a new file".into()
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                problem_type::NOT_FOUND,
                error.to_string(),
            ),
            StoreError::Invalid(errors) => Self::validation(errors),
            StoreError::IdempotencyKeyReused => Self::validation(
                FieldError::new(
                    "Idempotency-Key",
                    "was already used with a different request; use a new key",
                )
                .into(),
            ),
            StoreError::Conflict(kind) => Self::new(
                StatusCode::CONFLICT,
                problem_type::CONFLICT,
                conflict_detail(&kind),
            ),
            StoreError::Unsupported { .. } => Self::internal(error.into()),
            StoreError::PreconditionFailed => Self::new(
                StatusCode::PRECONDITION_FAILED,
                problem_type::PRECONDITION_FAILED,
                "The resource has changed since the given ETag; fetch it again and retry",
            ),
            StoreError::Unavailable(source) => {
                let mut error =
                    Self::unavailable("The database is temporarily unavailable; retry later", 5);
                error.source = Some(source);
                error
            }
            StoreError::Other(source) => Self::internal(source),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(self.status, self.type_uri, self.detail);
        problem.errors = self
            .errors
            .into_iter()
            .map(|e| FieldErrorOut {
                field: e.field,
                message: e.message,
            })
            .collect();
        let mut response = self.status.into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response.extensions_mut().insert(ProblemExtension {
            problem: Arc::new(problem),
            source: self.source.map(Arc::new),
        });
        response
    }
}
