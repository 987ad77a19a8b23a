//! `/v1/artists`: handlers, wire types and the router.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::songs::{ArtistSongsParams, SongOut};
use super::{CreateRequest, ServerManaged, Tagged, create, not_modified, present, same_id};
use crate::domain::artist::ArtistFilter;
use crate::domain::artist::{Artist, ArtistChanges, NewArtist};
use crate::domain::ids::ArtistId;
use crate::domain::list::RawPaging;
use crate::domain::user::Role;
use crate::domain::validation::ValidationErrors;
use crate::http::auth::{Editor, Reader};
use crate::http::error::ApiError;
use crate::http::etag::Versioned;
use crate::http::extract::{
    ApiJson, ApiPath, ApiQuery, IfMatch, IfMatchParam, IfNoneMatch, IfNoneMatchParam, JsonInteger,
    double_option,
};
use crate::http::idempotency::{IdempotencyKeyHeader, IdempotencyKeyParam};
use crate::http::list::{ListEnvelope, ListRequest};
use crate::state::AppState;
use crate::storage::DynStore;

/// The artist routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_artists, create_artist))
        .routes(routes!(
            get_artist,
            replace_artist,
            patch_artist,
            delete_artist
        ))
        .routes(routes!(list_artist_songs))
}

/// An artist as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "name": "David Bowie",
    "created_at": "2026-11-25T18:42:12.000000Z", "updated_at": "2026-11-25T18:42:12.000000Z"
}))]
pub struct ArtistOut {
    /// Database-assigned id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last modification time (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<Artist> for ArtistOut {
    fn from(artist: Artist) -> Self {
        Self {
            id: artist.id.get(),
            name: artist.name,
            created_at: artist.created_at,
            updated_at: artist.updated_at,
        }
    }
}

/// Body of POST: every writable field. Unknown fields, read-only ones included, are
/// rejected.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "David Bowie"}))]
pub struct ArtistInput {
    /// 1–64 characters once trimmed, no control characters (padding included).
    #[schema(
        pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
}

/// Body of PUT: every writable field, optionally with the read-only members of the
/// artist's GET representation, so GET-modify-PUT works. `id`, when present, must equal
/// the path id; `created_at` and `updated_at` are server-managed and ignored. Other
/// unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": 1, "name": "David Bowie",
    "created_at": "2026-11-25T18:42:12.000000Z", "updated_at": "2026-11-25T18:42:12.000000Z"
}))]
pub struct ArtistReplace {
    /// The artist's id, as GET returns it; when present, it must equal the path id.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64, minimum = 1, maximum = 2147483647)]
    pub id: Option<JsonInteger>,
    /// 1–64 characters once trimmed, no control characters (padding included).
    #[schema(
        pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Server-managed: accepted (an RFC 3339 date-time) and ignored.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Option<ServerManaged>,
    /// Server-managed: accepted (an RFC 3339 date-time) and ignored.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Option<ServerManaged>,
}

/// Body of PATCH (JSON merge patch): absent members are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ziggy Stardust"}))]
pub struct ArtistPatch {
    /// New name; `null` is rejected (the name is required).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$")]
    pub name: Option<Option<String>>,
}

/// Query parameters of `GET /v1/artists`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtistListParams {
    /// Page number, from 1 (default 1). Not with `cursor`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// Comma-separated fields from `id`, `name`, `created_at`, each at most once, no spaces;
    /// `-` prefix for descending. Ties are broken by `id` ascending. Names sort by the
    /// Unicode code points of the stored text (case-sensitive: `B` before `a`, `é` after
    /// `z`), on every backend.
    #[param(
        example = "-name",
        pattern = r"^(?!(.*,)?-?(id|name|created_at)(,.*)?,-?\2(,|$))-?(id|name|created_at)(,-?(id|name|created_at))*$"
    )]
    pub sort: Option<String>,
    /// `next_cursor` of a previous response with the same `sort` and `q`.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Case-insensitive substring of the name (plain text: `%` and `_` match themselves).
    #[param(max_length = 256, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub q: Option<String>,
}

/// Query parameters of `DELETE /v1/artists/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteArtistParams {
    /// Also delete the artist's songs, in the same transaction (admin only).
    pub cascade: Option<bool>,
}

fn artist_location(artist: &Artist) -> String {
    format!("/v1/artists/{}", artist.id)
}

/// Lists artists, filtered, sorted and paged.
#[utoipa::path(get, path = "/v1/artists", tag = "artists", params(ArtistListParams),
    responses(
        (status = 200, description = "A page of artists", body = ListEnvelope<ArtistOut>),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list_artists(
    State(store): State<DynStore>,
    _reader: Reader,
    ApiQuery(params): ApiQuery<ArtistListParams>,
) -> Result<Json<ListEnvelope<ArtistOut>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let filter = ArtistFilter::parse(params.q.as_deref(), &mut errors);
    let raw = RawPaging {
        page: params.page.as_deref(),
        page_size: params.page_size.as_deref(),
        sort: params.sort.as_deref(),
        cursor: params.cursor.as_deref(),
    };
    let request = ListRequest::parse("artists", raw, filter.clone(), &filter.canonical(), errors)?;
    let page = store.list_artists(&request.query).await?;
    Ok(Json(request.envelope(page, ArtistOut::from)))
}

/// Creates an artist. With `Idempotency-Key`, a retry of the same request within 24 h
/// returns the original response (`Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(post, path = "/v1/artists", tag = "artists", request_body = ArtistInput,
    params(IdempotencyKeyParam),
    responses(
        (status = 201, description = "Created (or replayed); `Location` names the new artist", body = ArtistOut,
            headers(("Location" = String, description = "Path of the new artist"), ("ETag" = String, description = "Entity tag"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid field, or Idempotency-Key reused with another body"),
    ))]
pub async fn create_artist(
    State(store): State<DynStore>,
    editor: Editor,
    idempotency_key: IdempotencyKeyHeader,
    ApiJson(input): ApiJson<ArtistInput>,
) -> Result<Response, ApiError> {
    let new = NewArtist::parse(&input.name)?;
    let created = |artist: Artist| {
        Tagged::created(
            artist.etag(),
            artist_location(&artist),
            ArtistOut::from(artist),
        )
    };
    let request = CreateRequest {
        key: idempotency_key,
        principal: editor.0,
        route: "POST /v1/artists",
        input: &input,
    };
    create(
        request,
        created,
        async || store.insert_artist(&new).await,
        async |once| store.insert_artist_once(&new, once).await,
    )
    .await
}

/// Reads an artist; `If-None-Match` with its current tag gives 304.
#[utoipa::path(get, path = "/v1/artists/{id}", tag = "artists",
    params(("id" = i64, Path, description = "Artist id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfNoneMatchParam),
    responses(
        (status = 200, description = "The artist", body = ArtistOut, headers(("ETag" = String, description = "Entity tag"))),
        (status = 304, description = "Unchanged since the given tag"),
        (status = 400, description = "Malformed If-None-Match"),
        (status = 404, description = "No such artist"),
        (status = 422, description = "Invalid id"),
    ))]
pub async fn get_artist(
    State(store): State<DynStore>,
    _reader: Reader,
    ApiPath(id): ApiPath<ArtistId>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let artist = store.get_artist(id).await?;
    let etag = artist.etag();
    if if_none_match.0.is_some_and(|p| p.matches_weak(&etag)) {
        return Ok(not_modified(&etag));
    }
    Ok(Tagged::ok(etag, ArtistOut::from(artist)).into_response())
}

/// Replaces an artist; never creates one (404 for an unknown id). The body may be the
/// artist's own GET representation (`id` must then be the path id; timestamps are ignored).
#[utoipa::path(put, path = "/v1/artists/{id}", tag = "artists", request_body = ArtistReplace,
    params(("id" = i64, Path, description = "Artist id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfMatchParam),
    responses(
        (status = 200, description = "The replaced artist", body = ArtistOut, headers(("ETag" = String, description = "New entity tag"))),
        (status = 400, description = "Malformed JSON or If-Match"),
        (status = 404, description = "No such artist"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid id or field, or a body `id` other than the path id"),
    ))]
pub async fn replace_artist(
    State(store): State<DynStore>,
    _editor: Editor,
    ApiPath(id): ApiPath<ArtistId>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<ArtistReplace>,
) -> Result<Tagged<ArtistOut>, ApiError> {
    let new = same_id(
        input.id.map(|n| n.0),
        id.get(),
        NewArtist::parse(&input.name),
    )?;
    let artist = store
        .replace_artist(id, &new, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(Tagged::ok(artist.etag(), artist.into()))
}

/// Changes some fields of an artist (JSON merge patch, RFC 7396).
#[utoipa::path(patch, path = "/v1/artists/{id}", tag = "artists",
    request_body(content(
        (ArtistPatch = "application/merge-patch+json"),
        (ArtistPatch = "application/json"))),
    params(("id" = i64, Path, description = "Artist id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfMatchParam),
    responses(
        (status = 200, description = "The patched artist", body = ArtistOut, headers(("ETag" = String, description = "New entity tag"))),
        (status = 400, description = "Malformed JSON or If-Match"),
        (status = 404, description = "No such artist"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid id or field"),
    ))]
pub async fn patch_artist(
    State(store): State<DynStore>,
    _editor: Editor,
    ApiPath(id): ApiPath<ArtistId>,
    if_match: IfMatch,
    ApiJson(patch): ApiJson<ArtistPatch>,
) -> Result<Tagged<ArtistOut>, ApiError> {
    let changes = ArtistChanges::parse(patch.name.as_ref().map(Option::as_deref))?;
    let artist = store
        .patch_artist(id, &changes, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(Tagged::ok(artist.etag(), artist.into()))
}

/// Deletes an artist. While songs reference it: 409, unless `cascade=true`, which deletes
/// its songs too, in one transaction.
#[utoipa::path(delete, path = "/v1/artists/{id}", tag = "artists",
    params(("id" = i64, Path, description = "Artist id, 1–2147483647", minimum = 1, maximum = 2147483647), DeleteArtistParams,
        IfMatchParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed If-Match"),
        (status = 404, description = "No such artist"),
        (status = 409, description = "Songs still reference the artist"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 422, description = "Invalid id or parameter"),
    ))]
pub async fn delete_artist(
    State(store): State<DynStore>,
    editor: Editor,
    ApiPath(id): ApiPath<ArtistId>,
    ApiQuery(params): ApiQuery<DeleteArtistParams>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let cascade = params.cascade.unwrap_or(false);
    if cascade && editor.0.role() != Some(Role::Admin) {
        return Err(ApiError::forbidden(
            "Deleting an artist with its songs (cascade=true) needs the admin role",
        ));
    }
    store
        .delete_artist(id, cascade, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists one artist's songs (same filters, sort and paging as `GET /v1/songs`).
#[utoipa::path(get, path = "/v1/artists/{id}/songs", tag = "artists",
    params(("id" = i64, Path, description = "Artist id, 1–2147483647", minimum = 1, maximum = 2147483647), ArtistSongsParams),
    responses(
        (status = 200, description = "A page of the artist's songs", body = ListEnvelope<SongOut>),
        (status = 404, description = "No such artist"),
        (status = 422, description = "Invalid id or parameter"),
    ))]
pub async fn list_artist_songs(
    State(store): State<DynStore>,
    _reader: Reader,
    ApiPath(id): ApiPath<ArtistId>,
    ApiQuery(params): ApiQuery<ArtistSongsParams>,
) -> Result<Json<ListEnvelope<SongOut>>, ApiError> {
    store.get_artist(id).await?;
    let request = params.into_request(id)?;
    let page = store.list_songs(&request.query).await?;
    let include = request.query.filter.include_artist;
    Ok(Json(
        request.envelope(page, |song| SongOut::new(song, include)),
    ))
}
