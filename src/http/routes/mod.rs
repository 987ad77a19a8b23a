//! Route handlers, one module per resource; each exposes `router()` (an `OpenApiRouter`, so
//! a route and its documentation are registered together).

pub mod admin;
pub mod artists;
pub mod auth;
pub mod docs;
pub mod health;
pub mod songs;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::accounts::Principal;
use crate::domain::validation::ValidationErrors;
use crate::http::error::ApiError;
use crate::http::etag::EntityTag;
use crate::http::idempotency::{self, IdempotencyKeyHeader};
use crate::storage::{Created, Idempotency, SavedResponse, StoreResult};

/// A server-managed timestamp (`created_at`, `updated_at`) in a PUT body: accepted so that a
/// client can PUT back what it got from GET, and ignored. It must still be what GET
/// writes, an RFC 3339 date-time, as the OpenAPI document says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerManaged;

impl<'de> Deserialize<'de> for ServerManaged {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // chrono also takes a space for the `T`; JSON Schema's `date-time` does not.
        let has_t = text
            .as_bytes()
            .get(10)
            .is_some_and(|b| matches!(b, b'T' | b't'));
        if has_t && chrono::DateTime::parse_from_rfc3339(&text).is_ok() {
            Ok(Self)
        } else {
            Err(de::Error::invalid_value(
                Unexpected::Str(&text),
                &"an RFC 3339 timestamp",
            ))
        }
    }
}

/// Deserializes a member that may be absent (`None`, with `#[serde(default)]`) but is
/// never `null`: present members go through `T` as they are.
///
/// # Errors
/// The inner value's deserialization error (`null` included).
pub fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A PUT body's `id` (GET-modify-PUT sends the resource back whole) must be the path's:
/// otherwise 422, reported with the body's other field errors, and nothing changes.
///
/// # Errors
/// The id mismatch and `parsed`'s own errors, or `parsed`'s errors alone.
pub fn same_id<T>(
    body_id: Option<i64>,
    path_id: i64,
    parsed: Result<T, ValidationErrors>,
) -> Result<T, ValidationErrors> {
    if body_id.is_none_or(|id| id == path_id) {
        return parsed;
    }
    let mut errors = ValidationErrors::new();
    errors.add("id", "must equal the id in the path");
    if let Err(others) = parsed {
        for error in others.errors() {
            errors.add(error.field.clone(), error.message.clone());
        }
    }
    Err(errors)
}

/// A single resource response: status, `ETag`, optional `Location`, JSON body.
pub struct Tagged<T> {
    status: StatusCode,
    etag: EntityTag,
    location: Option<String>,
    body: T,
}

impl<T> Tagged<T> {
    /// 200 with the resource's tag.
    pub fn ok(etag: EntityTag, body: T) -> Self {
        Self {
            status: StatusCode::OK,
            etag,
            location: None,
            body,
        }
    }

    /// 201 with the new resource's tag and location.
    pub fn created(etag: EntityTag, location: String, body: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            etag,
            location: Some(location),
            body,
        }
    }
}

impl<T: Serialize> Tagged<T> {
    /// The response as saved with an idempotency key.
    pub fn saved(&self) -> SavedResponse {
        SavedResponse {
            status: self.status.as_u16(),
            body: serde_json::to_string(&self.body).unwrap_or_default(),
            location: self.location.clone(),
            etag: Some(self.etag.as_str().to_owned()),
        }
    }
}

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(self.etag.as_str()) {
            headers.insert(header::ETAG, value);
        }
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, value);
        }
        response
    }
}

/// 304 Not Modified carrying the current tag (RFC 9110 §15.4.5).
pub fn not_modified(etag: &EntityTag) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// What a `POST` that creates a resource needs to make itself idempotent: the
/// `Idempotency-Key` header, who asks, and the request to fingerprint.
pub struct CreateRequest<'a, I> {
    /// The `Idempotency-Key` header, if sent.
    pub key: IdempotencyKeyHeader,
    /// Who asks (keys are scoped per principal).
    pub principal: Principal,
    /// Method and path, as fingerprinted (`POST /v1/artists`).
    pub route: &'static str,
    /// The parsed body, as fingerprinted.
    pub input: &'a I,
}

/// Creates a resource. Without an `Idempotency-Key`, `insert` stores it. With one,
/// `insert_once` stores it at most once per principal and key: a retry of the same request
/// gets the saved response again (`Idempotent-Replayed: true`), and a new creation is
/// answered with the bytes just saved, not serialised a second time. `created` renders the
/// new resource's 201.
///
/// # Errors
/// The store's, e.g. 422 for a key reused with another body.
pub async fn create<I: Serialize, T: Clone, B: Serialize>(
    request: CreateRequest<'_, I>,
    created: impl Fn(T) -> Tagged<B> + Send + Sync,
    insert: impl AsyncFnOnce() -> StoreResult<T>,
    insert_once: impl AsyncFnOnce(&Idempotency<'_, T>) -> StoreResult<Created<T>>,
) -> Result<Response, ApiError> {
    let Some(key) = request.key.0 else {
        return Ok(created(insert().await?).into_response());
    };
    let principal = request.principal.scope();
    let fingerprint = idempotency::fingerprint(request.route, request.input);
    let kept = idempotency::Kept::default();
    let render = |resource: &T| kept.keep(created(resource.clone()).saved());
    let once = Idempotency {
        principal: &principal,
        key: key.as_str(),
        fingerprint: &fingerprint,
        render: &render,
    };
    Ok(match insert_once(&once).await? {
        Created::New(resource) => kept
            .take()
            .map_or_else(|| created(resource).into_response(), idempotency::respond),
        Created::Replayed(saved) => idempotency::replay(saved),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        #[serde(default, deserialize_with = "present")]
        id: Option<i64>,
        #[serde(default, deserialize_with = "present")]
        created_at: Option<ServerManaged>,
    }

    #[test]
    fn server_managed_members_are_optional_never_null_and_rfc_3339() {
        let ok = |text: &str| serde_json::from_str::<Body>(text).is_ok();

        assert!(ok("{}"));
        assert!(ok(
            r#"{"id": 3, "created_at": "2026-11-25T18:42:12.000000Z"}"#
        ));
        assert!(ok(r#"{"created_at": "2026-11-25t18:42:12+02:00"}"#));
        for bad in [
            r#"{"id": null}"#,
            r#"{"created_at": null}"#,
            r#"{"created_at": 5}"#,
            r#"{"created_at": "yesterday"}"#,
            r#"{"created_at": "2026-11-25 18:42:12Z"}"#,
            r#"{"created_at": "2026-11-25"}"#,
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn every_name_and_title_schema_states_the_domain_text_rule() {
        let document = serde_json::to_value(crate::http::openapi()).unwrap();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let mut checked = Vec::new();

        for (schema, body) in schemas {
            for field in ["name", "title"] {
                if let Some(pattern) = body["properties"][field]["pattern"].as_str() {
                    assert_eq!(
                        pattern,
                        crate::domain::validation::SHORT_TEXT_PATTERN,
                        "{schema}.{field}"
                    );
                    checked.push(format!("{schema}.{field}"));
                }
            }
        }

        for expected in [
            "ArtistInput.name",
            "ArtistReplace.name",
            "ArtistPatch.name",
            "SongInput.title",
            "SongReplace.title",
            "SongPatch.title",
            "CreateApiKeyInput.name",
        ] {
            assert!(
                checked.iter().any(|c| c == expected),
                "{expected}: {checked:?}"
            );
        }
    }

    #[test]
    fn a_different_body_id_is_reported_with_the_other_errors() {
        let invalid: Result<(), ValidationErrors> =
            Err(crate::domain::validation::FieldError::new("name", "must not be empty").into());

        assert_eq!(same_id(None, 7, Ok(1)), Ok(1));
        assert_eq!(same_id(Some(7), 7, Ok(1)), Ok(1));
        let fields: Vec<String> = same_id(Some(8), 7, invalid)
            .unwrap_err()
            .errors()
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(fields, ["id", "name"]);
        assert!(same_id(Some(8), 7, Ok(1)).is_err());
    }
}
