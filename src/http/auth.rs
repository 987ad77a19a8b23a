//! Authentication on the wire: reading `Authorization: Bearer` or `X-API-Key`, and the
//! extractors that require a minimum role. A handler states its rule in its signature:
//!
//! | extractor | admits | otherwise |
//! |---|---|---|
//! | [`Reader`] | any principal; anyone when `auth.public_read` | 401 |
//! | [`Editor`] | role editor or admin (users and editor keys) | 401 without credentials, 403 |
//! | [`Admin`] | role admin | 401 without credentials, 403 |
//! | [`SignedInUser`] | an account (not an API key) | 401, 403 for API keys |
//!
//! Invalid credentials are always 401 with `WWW-Authenticate: Bearer error="invalid_token"`,
//! even on routes that would admit anyone: a client with a broken token should learn so.
//! The principal is resolved once per request and kept in the request's extensions.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, header};
use chrono::Utc;

use super::error::ApiError;
use crate::auth::AuthError;
use crate::auth::accounts::{AccountError, Accounts, CredentialError, LoginError, Principal};
use crate::domain::ids::UserId;
use crate::domain::user::Role;
use crate::state::AppState;

/// The API-key header.
pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The single value of `name`, if sent; several values are a 400.
fn single_header<'a>(parts: &'a Parts, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "Send one {name} header, not several"
        )));
    }
    value.to_str().map(Some).map_err(|_| invalid_credentials())
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized(
        "The access token or API key is invalid, expired or revoked",
        Some("invalid_token"),
    )
}

fn invalid_refresh_token() -> ApiError {
    ApiError::unauthorized(
        "The refresh token is invalid, expired, spent or revoked; sign in again",
        Some("invalid_token"),
    )
}

/// A hashing or signing failure is a server error; its cause goes to the log only.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::internal(error.into())
    }
}

impl From<CredentialError> for ApiError {
    fn from(error: CredentialError) -> Self {
        match error {
            CredentialError::Invalid => invalid_credentials(),
            CredentialError::InvalidRefreshToken => invalid_refresh_token(),
            CredentialError::Store(store) => store.into(),
            CredentialError::Auth(auth) => auth.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Store(store) => store.into(),
            AccountError::Auth(auth) => auth.into(),
        }
    }
}

/// Unknown user, wrong password and inactive account get one 401 (no `error` code: no
/// token was presented); a locked username gets 429 until the lockout ends.
impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::BadCredentials => Self::unauthorized("Invalid username or password", None),
            LoginError::Locked(until) => {
                let secs = (until - Utc::now()).num_seconds().max(1);
                Self::too_many_requests(
                    "Too many failed logins for this username; try again later",
                    u64::try_from(secs).unwrap_or(1),
                )
            }
            LoginError::Store(store) => store.into(),
            LoginError::Auth(auth) => auth.into(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (`None` for another scheme or
/// an empty token). The rate limiter and [`resolve`] read the header the same way.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// Marks a request whose credential was already refused as invalid, so a second extractor
/// does not verify it again.
#[derive(Debug, Clone, Copy)]
struct Refused;

/// Resolves (once per request) who is calling; the result, or the refusal of an invalid
/// credential, is kept in the request's extensions, so the extractors share one lookup.
/// Only requests the rate limiter let through get here: it keys its budgets without any
/// lookup.
///
/// # Errors
/// 400 for ambiguous credentials, 401 for invalid ones, 503 when the store is down.
pub async fn resolve(parts: &mut Parts, accounts: &Accounts) -> Result<Principal, ApiError> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(*principal);
    }
    if parts.extensions.get::<Refused>().is_some() {
        return Err(invalid_credentials());
    }
    let authorization = single_header(parts, &header::AUTHORIZATION)?;
    let api_key = single_header(parts, &X_API_KEY)?;
    let authenticated = match (authorization, api_key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Send either Authorization or X-API-Key, not both",
            ));
        }
        (Some(value), None) => {
            let token = bearer_token(value).ok_or_else(|| {
                ApiError::unauthorized(
                    "Authorization must be `Bearer <access token>`",
                    Some("invalid_request"),
                )
            })?;
            accounts.authenticate_token(token).await
        }
        (None, Some(key)) => accounts.authenticate_api_key(key.trim()).await,
        (None, None) => Ok(Principal::Anonymous),
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(CredentialError::Invalid) => {
            parts.extensions.insert(Refused);
            return Err(invalid_credentials());
        }
        Err(error) => return Err(error.into()),
    };
    if principal != Principal::Anonymous {
        tracing::Span::current().record("principal", principal.scope());
    }
    parts.extensions.insert(principal);
    Ok(principal)
}

async fn principal(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    resolve(parts, &state.accounts).await
}

fn authentication_required() -> ApiError {
    ApiError::unauthorized(
        "Authentication required: send `Authorization: Bearer <access token>` or `X-API-Key`",
        None,
    )
}

/// Requires `minimum` (401 for anonymous callers, 403 for a lower role).
async fn require(
    parts: &mut Parts,
    state: &AppState,
    minimum: Role,
) -> Result<Principal, ApiError> {
    let principal = principal(parts, state).await?;
    match principal.role() {
        None => Err(authentication_required()),
        Some(role) if role < minimum => Err(ApiError::forbidden(format!(
            "This needs the {minimum} role; you have {role}"
        ))),
        Some(_) => Ok(principal),
    }
}

/// Any principal, or anyone at all when `auth.public_read` is on.
#[derive(Debug, Clone, Copy)]
pub struct Reader(pub Principal);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal(parts, state).await?;
        if principal == Principal::Anonymous && !state.settings.auth.public_read {
            return Err(authentication_required());
        }
        Ok(Self(principal))
    }
}

/// Role editor or admin.
#[derive(Debug, Clone, Copy)]
pub struct Editor(pub Principal);

impl FromRequestParts<AppState> for Editor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        require(parts, state, Role::Editor).await.map(Self)
    }
}

/// Role admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        require(parts, state, Role::Admin).await.map(Self)
    }
}

/// A signed-in account (API keys have none).
#[derive(Debug, Clone, Copy)]
pub struct SignedInUser {
    /// The account's id.
    pub id: UserId,
}

impl FromRequestParts<AppState> for SignedInUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match require(parts, state, Role::Viewer).await? {
            Principal::User { id, .. } => UserId::try_from(id)
                .map(|id| Self { id })
                .map_err(|()| invalid_credentials()),
            _ => Err(ApiError::forbidden(
                "API keys have no account; sign in as a user",
            )),
        }
    }
}
