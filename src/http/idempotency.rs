//! `Idempotency-Key` on POST: the header extractor, request fingerprints and replaying a
//! saved response.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::storage::SavedResponse;

/// The header name.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Marks a replayed response, so clients and logs can tell it from a fresh creation.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A client's idempotency key: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a raw header value; `None` when it breaks the rule.
    pub fn parse(raw: &str) -> Option<Self> {
        let is_valid = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        is_valid.then(|| Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `Idempotency-Key` header as documented: `params(IdempotencyKeyParam)` on a create.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyParam {
    /// 1-255 visible ASCII characters; makes retries safe
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        pattern = r"^[\x21-\x7E]{1,255}$"
    )]
    pub idempotency_key: Option<String>,
}

/// The `Idempotency-Key` header, if sent; a malformed one is 400.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|_| values.next().is_none())
            .and_then(IdempotencyKey::parse);
        key.map(|k| Self(Some(k))).ok_or_else(|| {
            ApiError::bad_request(
                "Idempotency-Key must be one value of 1-255 visible ASCII characters",
            )
        })
    }
}

/// Digest of what makes two requests "the same": the route and the parsed body (so
/// whitespace and member order do not matter).
pub fn fingerprint(route: &str, body: &impl Serialize) -> String {
    let canonical = serde_json::to_value(body)
        .map(|value| value.to_string())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// The response a store saves with the key, kept as rendered, so that a new creation is
/// answered with the saved bytes instead of serialising the resource a second time.
#[derive(Debug, Default)]
pub struct Kept(Mutex<Option<SavedResponse>>);

impl Kept {
    /// Keeps a copy of `saved` (the last one, if the store renders more than once) and
    /// returns it for the store.
    pub fn keep(&self, saved: SavedResponse) -> SavedResponse {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
        saved
    }

    /// The response as saved, if the store rendered one.
    pub fn take(self) -> Option<SavedResponse> {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A saved response, sent as it was saved (a new creation).
pub fn respond(saved: SavedResponse) -> Response {
    let mut response = Response::new(Body::from(saved.body));
    *response.status_mut() = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in [
        (header::LOCATION, saved.location),
        (header::ETAG, saved.etag),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// The saved response, as first sent, marked `Idempotent-Replayed: true`.
pub fn replay(saved: SavedResponse) -> Response {
    let mut response = respond(saved);
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fingerprint_ignores_formatting_but_not_content_or_route() {
        let a = fingerprint("POST /v1/artists", &json!({"name": "x", "b": 1}));
        let reordered = fingerprint("POST /v1/artists", &json!({"b": 1, "name": "x"}));
        let other_body = fingerprint("POST /v1/artists", &json!({"name": "y", "b": 1}));
        let other_route = fingerprint("POST /v1/songs", &json!({"name": "x", "b": 1}));

        assert_eq!(a, reordered);
        assert_ne!(a, other_body);
        assert_ne!(a, other_route);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn a_fingerprint_is_the_hex_sha256_of_route_and_canonical_body() {
        let expected: String = Sha256::digest(b"POST /v1/artists\n{\"name\":\"x\"}")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        assert_eq!(
            fingerprint("POST /v1/artists", &json!({"name": "x"})),
            expected
        );
    }

    #[test]
    fn key_rule() {
        for (raw, ok) in [
            ("a", true),
            ("8e03978e-40d5-43e8-bc93-6894a57f9324", true),
            ("~!@#$%^&*()_+{}|:<>?", true),
            (&"k".repeat(255), true),
            (&"k".repeat(256), false),
            ("", false),
            ("has space", false),
            ("tab\t", false),
            ("ключ", false),
        ] {
            assert_eq!(IdempotencyKey::parse(raw).is_some(), ok, "{raw:?}");
        }
    }
}
