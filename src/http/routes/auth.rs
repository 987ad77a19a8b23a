//! `/v1/auth/*`: registration, login (JSON or OAuth2 password form), refresh, logout and
//! the caller's own account. Every response carries `Cache-Control: no-store` (set by
//! `middleware::security_headers`, so rejections by the layers carry it too).

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::accounts::TokenPair;
use crate::domain::user::{NewUser, Role, User};
use crate::http::auth::SignedInUser;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::extract::read_body;
use crate::state::AppState;

/// The auth routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// An account as returned by the API (never with its password or hash).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 2, "username": "ziggy", "email": "ziggy@example.com", "role": "viewer",
    "is_active": true,
    "created_at": "2026-11-25T18:42:12.000000Z", "updated_at": "2026-11-25T18:42:12.000000Z"
}))]
pub struct UserOut {
    /// Database-assigned id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// `viewer`, `editor` or `admin`.
    #[schema(pattern = "^(viewer|editor|admin)$")]
    pub role: String,
    /// Whether the account may sign in.
    pub is_active: bool,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last modification time (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        Self {
            id: user.id.get(),
            username: user.username,
            email: user.email,
            role: user.role.as_str().to_owned(),
            is_active: user.is_active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// Body of `POST /v1/auth/register`. The role is always viewer; sending one is a 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ziggy", "email": "ziggy@example.com", "password": "a long passphrase"}))]
pub struct RegisterInput {
    /// 3–32 characters of letters, digits, `_`, `.` and `-`; unique ignoring case.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// An address such as `ziggy@example.com`: a dot-atom local part of at most 64 characters, `@`, and two or more host-name labels; no padding, display name, quotes or address literal. Unique ignoring case.
    #[schema(
        max_length = 254,
        pattern = r"^(?![^@]*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: String,
    /// 12–128 characters, not the username or email.
    #[schema(value_type = String, min_length = 12, max_length = 128, format = Password)]
    pub password: SecretString,
}

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "refresh_token": "ssr_3q2-7w…",
    "token_type": "Bearer", "expires_in": 900
}))]
pub struct TokenPairOut {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque token for `/v1/auth/refresh`; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<TokenPair> for TokenPairOut {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token.expose_secret().to_owned(),
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

/// Login as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "admin", "password": "your password"}))]
pub struct LoginInput {
    /// Login name (any case).
    pub username: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Login as an OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's Authorize sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    /// Must be `password` when sent.
    pub grant_type: Option<String>,
    /// Login name.
    pub username: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// Ignored (roles come from the account).
    pub scope: Option<String>,
    /// Ignored.
    pub client_id: Option<String>,
    /// Ignored.
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<SecretString>,
}

/// Either login body.
struct Credentials {
    username: String,
    password: SecretString,
}

impl FromRequest<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            let ApiJson(input) = ApiJson::<LoginInput>::from_request(req, state)
                .await
                .map_err(|e| {
                    if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                        ApiError::unsupported_media_type(
                            "application/json or application/x-www-form-urlencoded",
                        )
                    } else {
                        e
                    }
                })?;
            return Ok(Self {
                username: input.username,
                password: input.password,
            });
        }
        let bytes = read_body(req, state).await?;
        let form: LoginForm = serde_urlencoded::from_bytes(&bytes).map_err(|error| {
            // Messages name the field in backticks ("missing field `password`"); the value
            // is never part of them.
            let message = error.to_string();
            let field = message.split('`').nth(1).unwrap_or("body").to_owned();
            ApiError::from(crate::domain::validation::FieldError::new(
                field,
                if message.starts_with("unknown field") {
                    "is not a known field"
                } else if message.starts_with("missing field") {
                    "is required"
                } else {
                    "is invalid"
                },
            ))
        })?;
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(crate::domain::validation::FieldError::new(
                "grant_type",
                "must be `password`",
            )
            .into());
        }
        Ok(Self {
            username: form.username,
            password: form.password,
        })
    }
}

/// Passes only while `auth.allow_registration` is on (checked before the body is read).
struct RegistrationOpen;

impl FromRequestParts<AppState> for RegistrationOpen {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.settings.auth.allow_registration {
            Ok(Self)
        } else {
            Err(ApiError::forbidden(
                "Registration is closed; ask an administrator for an account",
            ))
        }
    }
}

/// Body of refresh and logout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "ssr_3q2-7w…"}))]
pub struct RefreshInput {
    /// A refresh token from login or a previous refresh.
    #[schema(value_type = String, format = Password)]
    pub refresh_token: SecretString,
}

/// Creates an account with role viewer (when `auth.allow_registration` is on).
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterInput,
    responses(
        (status = 201, description = "Registered; sign in next", body = UserOut,
            headers(("Location" = String, description = "`/v1/auth/me`"))),
        (status = 400, description = "Malformed JSON"),
        (status = 403, description = "Registration is closed"),
        (status = 409, description = "Username or email already registered (one message for both)"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid field (including `role`, which cannot be chosen)"),
    ))]
async fn register(
    State(state): State<AppState>,
    _open: RegistrationOpen,
    ApiJson(input): ApiJson<RegisterInput>,
) -> Result<Response, ApiError> {
    let new = NewUser::parse(&input.username, &input.email, &input.password, Role::Viewer)?;
    let user = state.accounts.create_user(&new).await?;
    let mut response = (StatusCode::CREATED, Json(UserOut::from(user))).into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/v1/auth/me"));
    Ok(response)
}

/// Signs in. Accepts JSON or an OAuth2 password-grant form (Swagger UI's Authorize).
/// Unknown user, wrong password and deactivated account get the same 401. After 5 failures
/// for one username within 15 minutes, attempts get 429 until 15 minutes after the last
/// failure.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body(content(
        (LoginInput = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Signed in", body = TokenPairOut),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Invalid username or password"),
        (status = 415, description = "Neither JSON nor a form"),
        (status = 422, description = "Missing or unknown field"),
        (status = 429, description = "Too many failed logins for this username",
            headers(("Retry-After" = u64, description = "Seconds until attempts are allowed again"))),
    ))]
async fn login(
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Json<TokenPairOut>, ApiError> {
    let pair = state
        .accounts
        .login(&credentials.username, &credentials.password)
        .await?;
    Ok(Json(pair.into()))
}

/// Exchanges a refresh token for a new pair. The presented token is spent; presenting it
/// again revokes every token of that login.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshInput,
    responses(
        (status = 200, description = "A new pair", body = TokenPairOut),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Invalid, expired, spent or revoked refresh token"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Missing or unknown field"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RefreshInput>,
) -> Result<Json<TokenPairOut>, ApiError> {
    let pair = state.accounts.refresh(&input.refresh_token).await?;
    Ok(Json(pair.into()))
}

/// Signs out: every refresh token of this login is revoked. Access tokens already issued
/// expire on their own (at most `auth.access_ttl_secs`).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshInput,
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Unknown refresh token"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Missing or unknown field"),
    ))]
async fn logout(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RefreshInput>,
) -> Result<StatusCode, ApiError> {
    state.accounts.logout(&input.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth",
    responses(
        (status = 200, description = "Your account", body = UserOut),
        (status = 401, description = "Not signed in"),
        (status = 403, description = "An API key (keys have no account)"),
    ))]
async fn me(State(state): State<AppState>, user: SignedInUser) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(state.store.get_user(user.id).await?.into()))
}
