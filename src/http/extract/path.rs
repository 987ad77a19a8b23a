//! `ApiPath<Id>`: the `{id}` path segment as a domain id, 422 when it is not an integer
//! from 1 to 2147483647.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::domain::ids::ID_RANGE_MESSAGE;
use crate::domain::validation::FieldError;
use crate::http::error::ApiError;

/// A validated id from the route's single `{id}` segment.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: TryFrom<i64> + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = || ApiError::from(FieldError::new("id", ID_RANGE_MESSAGE));
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        let number: i64 = raw.parse().map_err(|_| invalid())?;
        T::try_from(number).map(Self).map_err(|_| invalid())
    }
}
