//! `/v1/admin/*`: account and API-key management, admin only.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::UserOut;
use crate::domain::credential::{ApiKey, ApiKeySortField, NewApiKey};
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::list::RawPaging;
use crate::domain::user::{NewUser, Role, UserPatch, UserSortField};
use crate::domain::validation::ValidationErrors;
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::http::list::{ListEnvelope, ListRequest};
use crate::state::AppState;

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
}

/// Paging of the admin lists (same rules as the catalog lists).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminListParams {
    /// Page number, from 1 (default 1). Not with `cursor`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// Each list documents its own `sort` (the fields differ): see `list_users` and
    /// `list_api_keys`.
    #[param(ignore)]
    pub sort: Option<String>,
    /// `next_cursor` of a previous response with the same `sort`.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

impl AdminListParams {
    fn raw(&self) -> RawPaging<'_> {
        RawPaging {
            page: self.page.as_deref(),
            page_size: self.page_size.as_deref(),
            sort: self.sort.as_deref(),
            cursor: self.cursor.as_deref(),
        }
    }
}

/// Body of `POST /v1/admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "editor1", "email": "editor1@example.com", "password": "a long passphrase", "role": "editor"}))]
pub struct CreateUserInput {
    /// 3–32 characters of letters, digits, `_`, `.` and `-`.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// An address such as `ziggy@example.com`: a dot-atom local part of at most 64 characters, `@`, and two or more host-name labels; no padding, display name, quotes or address literal.
    #[schema(
        max_length = 254,
        pattern = r"^(?![^@]*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: String,
    /// 12–128 characters, not the username or email.
    #[schema(value_type = String, min_length = 12, max_length = 128, format = Password)]
    pub password: SecretString,
    /// `viewer`, `editor` or `admin`.
    #[schema(pattern = "^(viewer|editor|admin)$")]
    pub role: String,
}

/// Body of `PATCH /v1/admin/users/{id}`: absent fields are kept; `null` is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "editor", "is_active": false}))]
pub struct PatchUserInput {
    /// New address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, max_length = 254, pattern = r"^(?![^@]*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")]
    pub email: Option<Option<String>>,
    /// New role. Demoting or deactivating the last active admin is a 409.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, pattern = "^(viewer|editor|admin)$")]
    pub role: Option<Option<String>>,
    /// `false` deactivates: sign-in stops at once, and tokens stop working within 60 s.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool)]
    pub is_active: Option<Option<bool>>,
    /// New password (12–128 characters). Ends the account's sessions.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 12, max_length = 128, format = Password)]
    pub password: Option<Option<SecretString>>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// Database-assigned id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The first 12 characters of the key, to tell keys apart.
    pub prefix: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id.get(),
            name: key.name,
            prefix: key.prefix,
            role: key.role.as_str().to_owned(),
            created_at: key.created_at,
        }
    }
}

/// Body of `POST /v1/admin/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly import", "role": "editor"}))]
pub struct CreateApiKeyInput {
    /// 1–64 characters once trimmed, no control characters (padding included).
    #[schema(
        pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// `viewer` or `editor`.
    #[schema(pattern = "^(viewer|editor)$")]
    pub role: String,
}

/// A new API key with its secret, shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "name": "nightly import", "role": "editor", "key": "ssk_Q2hhbmdlIG1lIQ…", "created_at": "2026-11-25T18:42:12.000000Z"}))]
pub struct CreatedApiKeyOut {
    /// Database-assigned id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// The secret, for `X-API-Key`. It cannot be shown again.
    pub key: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

fn created(location: String, body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Lists accounts.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    params(AdminListParams,
        ("sort" = Option<String>, Query, nullable = false, example = "-created_at",
            description = "Comma-separated fields from `id`, `username`, `created_at`, each at most once, no spaces; `-` prefix for descending. Ties are broken by `id` ascending. Usernames sort ignoring case (ASCII).",
            pattern = r"^(?!(.*,)?-?(id|username|created_at)(,.*)?,-?\2(,|$))-?(id|username|created_at)(,-?(id|username|created_at))*$")),
    responses(
        (status = 200, description = "A page of accounts", body = ListEnvelope<UserOut>),
        (status = 422, description = "Invalid parameter"),
    ))]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<AdminListParams>,
) -> Result<Json<ListEnvelope<UserOut>>, ApiError> {
    let request = ListRequest::<UserSortField, ()>::parse(
        "admin/users",
        params.raw(),
        (),
        "",
        ValidationErrors::new(),
    )?;
    let page = state.store.list_users(&request.query).await?;
    Ok(Json(request.envelope(page, UserOut::from)))
}

/// Creates an account with any role.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", request_body = CreateUserInput,
    responses(
        (status = 201, description = "Created", body = UserOut, headers(("Location" = String, description = "Path of the new account"))),
        (status = 400, description = "Malformed JSON"),
        (status = 409, description = "Username or email already registered"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid field"),
    ))]
async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(input): ApiJson<CreateUserInput>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::new();
    let role = errors.check(Role::parse("role", &input.role));
    let new = NewUser::parse(
        &input.username,
        &input.email,
        &input.password,
        role.unwrap_or(Role::Viewer),
    );
    let new = match new {
        Ok(new) if errors.is_empty() => new,
        Ok(_) => return Err(errors.into()),
        Err(more) => {
            for error in more.errors() {
                errors.add(error.field.clone(), error.message.clone());
            }
            return Err(errors.into());
        }
    };
    let user = state.accounts.create_user(&new).await?;
    Ok(created(
        format!("/v1/admin/users/{}", user.id),
        UserOut::from(user),
    ))
}

/// Reads an account.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Account id, 1–2147483647", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "The account", body = UserOut),
        (status = 404, description = "No such account"),
        (status = 422, description = "Invalid id"),
    ))]
async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(state.store.get_user(id).await?.into()))
}

/// Changes an account's email, role, active flag or password. Deactivating, changing the
/// role or the password ends the account's sessions (refresh tokens are revoked; access
/// tokens stop working within 60 s).
///
/// The change is judged against the account as stored and written in the same
/// transaction; an unknown account is 404 before the values are checked against the field
/// rules.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin",
    request_body(content(
        (PatchUserInput = "application/merge-patch+json"),
        (PatchUserInput = "application/json"))),
    params(("id" = i64, Path, description = "Account id, 1–2147483647", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "The changed account", body = UserOut),
        (status = 400, description = "Malformed JSON"),
        (status = 404, description = "No such account"),
        (status = 409, description = "Email taken, or this would leave no active admin"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid id or field"),
    ))]
async fn patch_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(input): ApiJson<PatchUserInput>,
) -> Result<Json<UserOut>, ApiError> {
    let patch = UserPatch {
        email: input.email.as_ref().map(Option::as_deref),
        role: input.role.as_ref().map(Option::as_deref),
        is_active: input.is_active,
        password: input.password.as_ref().map(Option::as_ref),
    };
    Ok(Json(state.accounts.patch_user(id, &patch).await?.into()))
}

/// Deletes an account and its sessions. The last active admin cannot be deleted.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Account id, 1–2147483647", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such account"),
        (status = 409, description = "The last active admin"),
        (status = 422, description = "Invalid id"),
    ))]
async fn delete_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists API keys (never their secrets).
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin",
    params(AdminListParams,
        ("sort" = Option<String>, Query, nullable = false, example = "-created_at",
            description = "Comma-separated fields from `id`, `name`, `created_at`, each at most once, no spaces; `-` prefix for descending. Ties are broken by `id` ascending. Names sort ignoring case.",
            pattern = r"^(?!(.*,)?-?(id|name|created_at)(,.*)?,-?\2(,|$))-?(id|name|created_at)(,-?(id|name|created_at))*$")),
    responses(
        (status = 200, description = "A page of API keys", body = ListEnvelope<ApiKeyOut>),
        (status = 422, description = "Invalid parameter"),
    ))]
async fn list_api_keys(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<AdminListParams>,
) -> Result<Json<ListEnvelope<ApiKeyOut>>, ApiError> {
    let request = ListRequest::<ApiKeySortField, ()>::parse(
        "admin/api-keys",
        params.raw(),
        (),
        "",
        ValidationErrors::new(),
    )?;
    let page = state.store.list_api_keys(&request.query).await?;
    Ok(Json(request.envelope(page, ApiKeyOut::from)))
}

/// Creates an API key (role viewer or editor). The secret is in this response only.
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "admin", request_body = CreateApiKeyInput,
    responses(
        (status = 201, description = "Created; store `key` now (it is not shown again)", body = CreatedApiKeyOut),
        (status = 400, description = "Malformed JSON"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid field"),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(input): ApiJson<CreateApiKeyInput>,
) -> Result<Response, ApiError> {
    let new = NewApiKey::parse(&input.name, &input.role)?;
    let created_key = state.accounts.create_api_key(&new).await?;
    let key = created_key.key;
    // No `Location`: a key cannot be read back, only listed and revoked.
    let mut response = (
        StatusCode::CREATED,
        Json(CreatedApiKeyOut {
            id: key.id.get(),
            name: key.name,
            role: key.role.as_str().to_owned(),
            key: created_key.secret.expose_secret().to_owned(),
            created_at: key.created_at,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Revokes an API key; requests with it are refused from now on (within 60 s on other
/// replicas).
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = i64, Path, description = "API key id, 1–2147483647", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such API key"),
        (status = 422, description = "Invalid id"),
    ))]
async fn delete_api_key(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_api_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
