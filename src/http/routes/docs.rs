//! `GET /` (service facts and links), `/swagger-ui.html` (redirect) and the Swagger UI
//! mount at `/docs`, served from the binary so it works offline.

use axum::Json;
use axum::response::Redirect;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The docs routes (Swagger UI itself is mounted in `http::router`, where the finished
/// document is known).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_info))
        .routes(routes!(swagger_redirect))
}

/// Links to the main entry points.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiLinks {
    /// Swagger UI.
    pub docs: &'static str,
    /// OpenAPI document.
    pub openapi: &'static str,
    /// Readiness probe.
    pub health: &'static str,
    /// Artists collection.
    pub artists: &'static str,
    /// Songs collection.
    pub songs: &'static str,
}

/// Service facts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiInfo {
    /// Service name.
    #[schema(example = "starsongs")]
    pub name: &'static str,
    /// Release version.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// Git commit of the build (`unknown` when built outside git).
    #[schema(example = "7352128c0f1e")]
    pub git_sha: &'static str,
    /// Useful links.
    pub links: ApiLinks,
}

/// Service name, version and links.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "Service facts", body = ApiInfo)))]
pub async fn api_info() -> Json<ApiInfo> {
    Json(ApiInfo {
        name: env!("CARGO_PKG_NAME"),
        version: crate::telemetry::VERSION,
        git_sha: crate::telemetry::GIT_SHA,
        links: ApiLinks {
            docs: "/docs",
            openapi: "/openapi.json",
            health: "/health/ready",
            artists: "/v1/artists",
            songs: "/v1/songs",
        },
    })
}

/// The old Swagger UI address; redirects to `/docs`.
#[utoipa::path(get, path = "/swagger-ui.html", tag = "operations",
    responses((status = 308, description = "Redirect to /docs")))]
pub async fn swagger_redirect() -> Redirect {
    Redirect::permanent("/docs/")
}
