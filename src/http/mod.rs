//! The HTTP layer: routes, extractors, errors and middleware. Turns wire input into domain
//! types and store calls; never sees SQL.

pub mod admin_listener;
pub mod auth;
pub mod conn;
pub mod cursor;
pub mod error;
pub mod etag;
pub mod extract;
pub mod idempotency;
pub mod list;
pub mod middleware;
pub mod openapi;
pub mod routes;

use axum::Router;
use axum::http::StatusCode;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;
use error::ApiError;

/// Every documented route, with the document they produce.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::artists::router())
        .merge(routes::songs::router())
        .merge(routes::auth::router())
        .merge(routes::admin::router())
        .merge(routes::health::router())
        .merge(routes::docs::router())
}

/// The OpenAPI document, as served at `/openapi.json` and printed by `starsongs openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api_router().into_openapi();
    openapi::Security.modify(&mut document);
    document
}

/// The complete application: routes, Swagger UI at `/docs`, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, mut document) = api_router().split_for_parts();
    openapi::Security.modify(&mut document);
    let app = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .fallback(unknown_route)
        .with_state(state.clone());
    middleware::apply(app, &state)
}

/// 404 problem for paths that match no route.
async fn unknown_route() -> ApiError {
    ApiError::from_status(StatusCode::NOT_FOUND)
}
