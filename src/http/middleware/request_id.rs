//! `X-Request-ID`: the client's value when it is 1–128 characters of `[A-Za-z0-9._-]`,
//! otherwise a new UUID; stored in the request extensions (tower-http's [`RequestId`])
//! and echoed on the response.
//!
//! tower-http's `SetRequestId` keeps any incoming id, so an unacceptable one is removed
//! first ([`drop_unacceptable`]) and [`NewUuid`] replaces it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};

pub use tower_http::request_id::RequestId;

/// The `X-Request-ID` header name.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn is_acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Removes an incoming id that is not acceptable, so that a new one is made.
fn drop_unacceptable(mut req: Request) -> Request {
    if req
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|id| !is_acceptable(id.as_bytes()))
    {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// Makes a new id: a hyphenated lower-case UUID v4.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewUuid;

impl MakeRequestId for NewUuid {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let mut buffer = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

/// The id of a request as text (only `[A-Za-z0-9._-]` ever becomes one).
pub fn text(id: &RequestId) -> &str {
    id.header_value().to_str().unwrap_or_default()
}

/// The layers that assign the request id and echo it, outermost first.
pub type RequestIdLayers = Stack<
    PropagateRequestIdLayer,
    Stack<SetRequestIdLayer<NewUuid>, Stack<MapRequestLayer<fn(Request) -> Request>, Identity>>,
>;

/// Assigns the request id (see the module documentation) and echoes it.
pub fn layers() -> RequestIdLayers {
    ServiceBuilder::new()
        .layer(MapRequestLayer::new(
            drop_unacceptable as fn(Request) -> Request,
        ))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), NewUuid))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptable_ids() {
        assert!(is_acceptable(b"abc-123_X.y"));
        assert!(is_acceptable("a".repeat(128).as_bytes()));
        assert!(!is_acceptable("a".repeat(129).as_bytes()));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable(b"new\nline"));
        assert!(!is_acceptable("ünïcode".as_bytes()));
    }

    #[test]
    fn unacceptable_ids_are_removed_and_acceptable_ones_kept() {
        let with = |id: &str| {
            let mut req = Request::new(axum::body::Body::empty());
            req.headers_mut()
                .insert(&X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
            drop_unacceptable(req)
        };

        assert_eq!(with("abc-123").headers()[&X_REQUEST_ID], "abc-123");
        assert!(with("has space").headers().get(&X_REQUEST_ID).is_none());
    }

    #[test]
    fn new_ids_are_hyphenated_lowercase_uuids() {
        let req = Request::new(axum::body::Body::empty());
        let id = NewUuid.make_request_id(&req).unwrap();
        let id = text(&id);

        assert_eq!(id.len(), 36);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(id, id.to_lowercase());
    }
}
