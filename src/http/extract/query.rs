//! `ApiQuery<T>`: query parameters with a 422 problem on failure. Wire query types keep
//! values as text so that the domain can name every bad parameter at once.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::validation::FieldError;
use crate::http::error::ApiError;

/// Deserialized query parameters. Unknown parameters are ignored (caches and proxies add
/// their own); known ones are validated by the domain.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| {
                // The rejection text names the parameter ("page: invalid digit...") but also
                // wraps it in prose; keep the parameter name and a fixed message.
                let text = rejection.body_text();
                let field = text
                    .rsplit("query string: ")
                    .next()
                    .and_then(|rest| rest.split(':').next())
                    .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|f| !f.is_empty())
                    .unwrap_or("query");
                ApiError::from(FieldError::new(field, "has an invalid value"))
            })
    }
}
