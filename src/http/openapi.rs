//! The root OpenAPI document: metadata, tags and security. Paths and schemas come from the
//! handlers' `#[utoipa::path]` attributes via each resource's `router()`; [`Security`]
//! then marks every protected operation with its schemes and its 401/403 answers, so the
//! rule lives in one place.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder, Responses};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes,
    SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToResponse};

use super::error::{PROBLEM_JSON, Problem};

/// Name of the bearer-JWT scheme.
pub const BEARER: &str = "bearer";
/// Name of the OAuth2 password-flow scheme (Swagger UI's Authorize with username and
/// password; it posts the form to the login endpoint).
pub const OAUTH2: &str = "oauth2";
/// Name of the API-key scheme.
pub const API_KEY: &str = "api_key";

/// The answer of every error status: an RFC 9457 problem (`components.responses.Problem`).
/// A handler documents an error status with its description only, `(status = 404,
/// description = "No such artist")`; [`Security`] turns every such 4xx/5xx response into
/// a reference to this one, keeping the description, or, when it declares headers, gives
/// it this content.
pub struct ProblemResponse;

impl<'r> ToResponse<'r> for ProblemResponse {
    fn response() -> (&'r str, RefOr<Response>) {
        (
            "Problem",
            RefOr::T(
                problem_content(ResponseBuilder::new().description(
                    "An RFC 9457 problem details document; `type` names the kind of problem",
                ))
                .build(),
            ),
        )
    }
}

fn problem_content(response: ResponseBuilder) -> ResponseBuilder {
    response.content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

/// A reference to [`ProblemResponse`] with its own description.
fn problem_ref(description: &str) -> RefOr<Response> {
    let mut reference = Ref::from_response_name(ProblemResponse::response().0);
    reference.description = description.to_owned();
    RefOr::Ref(reference)
}

/// Makes every error response a handler declared without content a problem (see
/// [`ProblemResponse`]).
fn fold_problems(responses: &mut Responses) {
    for (status, response) in &mut responses.responses {
        let is_error = status.parse::<u16>().is_ok_and(|code| code >= 400);
        let RefOr::T(inner) = response else { continue };
        if !is_error || !inner.content.is_empty() {
            continue;
        }
        if inner.headers.is_empty() {
            *response = problem_ref(&inner.description);
        } else {
            let content = ProblemResponse::response();
            if let (_, RefOr::T(problem)) = content {
                inner.content = problem.content;
            }
        }
    }
}

/// Root document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Star Songs API",
        description = "Music catalog API: artists and their songs.\n\n\
            **Authentication.** Every `/v1` endpoint needs a credential unless noted: an access \
            token (`Authorization: Bearer <jwt>` from `POST /v1/auth/login`, 15 minutes, renewed \
            with the refresh token at `POST /v1/auth/refresh`) or an API key (`X-API-Key`). \
            Reading the catalog needs any role (or nothing when the service runs with \
            `auth.public_read`); changing it needs editor; `DELETE /v1/artists/{id}?cascade=true` \
            and `/v1/admin/*` need admin. Missing or invalid credentials get 401 with \
            `WWW-Authenticate`; a role too low gets 403. In Swagger UI, use **Authorize** with \
            the `oauth2` scheme (username and password) or paste a token or key.\n\n\
            Errors are RFC 9457 `application/problem+json` documents. Lists are paged with \
            `page`/`page_size` or with the opaque `cursor` from `pagination.next_cursor`. \
            Single resources carry a strong `ETag`; send it in `If-Match` to update safely. \
            Unknown query parameters are ignored; unknown JSON body fields are rejected (422).",
        license(name = "MIT"),
    ),
    tags(
        (name = "artists", description = "Artists and their songs"),
        (name = "songs", description = "Songs"),
        (name = "auth", description = "Sign in, tokens and your account (responses are `Cache-Control: no-store`)"),
        (name = "admin", description = "Accounts and API keys (admin only)"),
        (name = "operations", description = "Probes, docs and service facts (no authentication)"),
    ),
    components(schemas(Problem), responses(ProblemResponse))
)]
pub struct ApiDoc;

/// Adds the security schemes and, per operation, its requirements and 401/403 responses,
/// and the answers of the edge layers (413, 429, 431, 503, 504) to every `/v1` operation.
/// Applied to the finished document (after every router has added its paths).
pub struct Security;

/// Operations anyone may call.
const PUBLIC: [&str; 4] = [
    "/v1/auth/register",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/auth/logout",
];

impl Modify for Security {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from `POST /v1/auth/login`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            OAUTH2,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new(
                    "/v1/auth/login",
                    Scopes::new(),
                ))],
                "Username and password; Swagger UI posts them to the login endpoint",
            )),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "API key from `POST /v1/admin/api-keys` (role viewer or editor)",
            ))),
        );
        for (path, item) in &mut document.paths.paths {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                fold_problems(&mut operation.responses);
            }
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                edge_responses(operation);
            }
            if PUBLIC.contains(&path.as_str()) {
                continue;
            }
            let accounts_only = path.starts_with("/v1/admin/") || path == "/v1/auth/me";
            let operations = [
                (&mut item.get, true),
                (&mut item.post, false),
                (&mut item.put, false),
                (&mut item.patch, false),
                (&mut item.delete, false),
            ];
            for (operation, is_read) in operations {
                if let Some(operation) = operation.as_mut() {
                    secure(operation, accounts_only, !is_read || accounts_only);
                }
            }
        }
    }
}

fn problem(description: &str) -> ResponseBuilder {
    problem_content(ResponseBuilder::new().description(description))
}

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some(description))
        .build()
}

/// The answers every `/v1` operation can get from the layers in front of it (API.md
/// "Errors" and "Cross-cutting headers").
fn edge_responses(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let mut limited = problem(
        "Rate limit exceeded for this client (the principal, else the client IP); `/v1/auth` \
         has a stricter budget. Every limited response, successful or not, carries \
         `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and their `X-RateLimit-*` \
         twins.",
    )
    .header(
        "Retry-After",
        integer_header("Seconds until a request is allowed again"),
    );
    for (name, description) in [
        ("RateLimit-Limit", "Requests allowed at once (the burst)"),
        ("RateLimit-Remaining", "Requests left at once"),
        ("RateLimit-Reset", "Seconds until the budget is full again"),
    ] {
        limited = limited
            .header(name, integer_header(description))
            .header(format!("X-{name}"), integer_header(description));
    }
    responses
        .entry("429".to_owned())
        .or_insert_with(|| RefOr::T(limited.build()));
    responses.entry("431".to_owned()).or_insert_with(|| {
        problem_ref("Request line and headers larger than `server.max_header_bytes`")
    });
    if has_body {
        responses
            .entry("413".to_owned())
            .or_insert_with(|| problem_ref("Body larger than `server.max_body_bytes`"));
    }
    responses.entry("503".to_owned()).or_insert_with(|| {
        RefOr::T(
            problem(
                "Overloaded (too many requests in flight), database unavailable, rate limiter \
                 unavailable (when configured to fail closed), or shutting down",
            )
            .header(
                "Retry-After",
                integer_header("Seconds to wait before retrying"),
            )
            .build(),
        )
    });
    responses.entry("504".to_owned()).or_insert_with(|| {
        problem_ref("The request took longer than `server.request_timeout_secs`")
    });
}

fn secure(operation: &mut Operation, accounts_only: bool, may_forbid: bool) {
    let mut schemes = vec![BEARER, OAUTH2];
    if !accounts_only {
        schemes.push(API_KEY);
    }
    operation.security = Some(
        schemes
            .into_iter()
            .map(|name| SecurityRequirement::new(name, Vec::<String>::new()))
            .collect(),
    );
    let problem = problem_ref;
    let responses = &mut operation.responses.responses;
    // Two credentials are ambiguous (which one acts?), so the service refuses them rather
    // than pick one; OpenAPI cannot say "at most one of these schemes", so it is said here.
    const AMBIGUOUS: &str = "both `Authorization` and `X-API-Key`, or either header twice";
    match responses.get_mut("400") {
        Some(RefOr::T(Response { description, .. }) | RefOr::Ref(Ref { description, .. })) => {
            *description = format!("{description}; or {AMBIGUOUS}");
        }
        None => {
            responses.insert(
                "400".to_owned(),
                problem(&format!("Ambiguous credentials: {AMBIGUOUS}")),
            );
        }
    }
    responses.entry("401".to_owned()).or_insert_with(|| {
        problem(
            "No credentials, or an invalid, expired or revoked one (`WWW-Authenticate: Bearer`)",
        )
    });
    if may_forbid {
        responses
            .entry("403".to_owned())
            .or_insert_with(|| problem("Authenticated, but the role does not allow this"));
    }
}
