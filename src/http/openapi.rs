//! The root OpenAPI document: metadata and tags. Paths and schemas come from the handlers'
//! `#[utoipa::path]` attributes via each resource's `router()`.

use utoipa::OpenApi;

/// Root document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Star Songs API",
        description = "Music catalog API: artists and their songs.\n\n\
            Errors are RFC 9457 `application/problem+json` documents. Lists are paged with \
            `page`/`page_size` or with the opaque `cursor` from `pagination.next_cursor`. \
            Single resources carry a strong `ETag`; send it in `If-Match` to update safely. \
            Unknown query parameters are ignored; unknown JSON body fields are rejected (422).",
        license(name = "MIT"),
    ),
    tags(
        (name = "artists", description = "Artists and their songs"),
        (name = "songs", description = "Songs"),
        (name = "operations", description = "Probes, docs and service facts"),
    )
)]
pub struct ApiDoc;
