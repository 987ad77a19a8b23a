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

/// Every documented route but the health probes.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::artists::router())
        .merge(routes::songs::router())
        .merge(routes::auth::router())
        .merge(routes::admin::router())
        .merge(routes::docs::router())
}

/// The documented routes in two parts, the API and the health probes (which the
/// middleware keeps out of load shedding), and the document both produce.
fn documented() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut document) = api_router().split_for_parts();
    let (probes, probes_document) = routes::health::router().split_for_parts();
    document.merge(probes_document);
    openapi::Security.modify(&mut document);
    (api, probes, document)
}

/// The OpenAPI document, as served at `/openapi.json` and printed by `starsongs openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().2
}

/// The complete application: routes, Swagger UI at `/docs`, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (api, probes, document) = documented();
    let api = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .fallback(unknown_route)
        .with_state(state.clone());
    middleware::apply(api, probes.with_state(state.clone()), &state)
}

/// 404 problem for paths that match no route.
async fn unknown_route() -> ApiError {
    ApiError::from_status(StatusCode::NOT_FOUND)
}
