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
use serde::Serialize;

use crate::domain::etag::EntityTag;
use crate::domain::idempotency::SavedResponse;

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
