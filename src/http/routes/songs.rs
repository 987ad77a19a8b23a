//! `/v1/songs`: handlers, wire types and the router.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{CreateRequest, ServerManaged, Tagged, create, not_modified, present, same_id};
use crate::domain::ids::{ArtistId, SongId};
use crate::domain::list::RawPaging;
use crate::domain::song::{NewSong, Patch, Song, SongChanges, SongFields, SongPatchFields};
use crate::domain::song::{RawSongFilter, SongFilter, SongSortField};
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

/// The song routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_songs, create_song))
        .routes(routes!(get_song, replace_song, patch_song, delete_song))
}

/// An artist embedded in a song by `include=artist`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtistRef {
    /// Artist id.
    pub id: i64,
    /// Artist name.
    pub name: String,
}

/// A song as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "title": "Space Oddity", "artist_id": 1, "release_date": "1969-07-11",
    "url": "https://www.youtube.com/watch?v=iYYRH4apXDo", "distance": 238900.0,
    "created_at": "2026-11-25T18:42:12.000000Z", "updated_at": "2026-11-25T18:42:12.000000Z"
}))]
pub struct SongOut {
    /// Database-assigned id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Artist id, or null for an unknown artist.
    pub artist_id: Option<i64>,
    /// Release date (`YYYY-MM-DD`), or null.
    pub release_date: Option<NaiveDate>,
    /// Absolute http(s) URL, or null.
    pub url: Option<String>,
    /// Distance, or null.
    pub distance: Option<f64>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last modification time (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
    /// Present only with `include=artist`: the artist's id and name, or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ArtistRef>)]
    pub artist: Option<Option<ArtistRef>>,
}

impl SongOut {
    /// The wire form; `include_artist` adds the `artist` member.
    pub fn new(song: Song, include_artist: bool) -> Self {
        let artist = include_artist.then(|| {
            song.artist.map(|a| ArtistRef {
                id: a.id.get(),
                name: a.name,
            })
        });
        Self {
            id: song.id.get(),
            title: song.title,
            artist_id: song.artist_id.map(ArtistId::get),
            release_date: song.release_date,
            url: song.url,
            distance: song.distance,
            created_at: song.created_at,
            updated_at: song.updated_at,
            artist,
        }
    }
}

/// Body of POST: every writable field (absent optional fields become null). Unknown
/// fields, read-only ones included, are rejected.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Space Oddity", "artist_id": 1, "release_date": "1969-07-11",
    "url": "https://www.youtube.com/watch?v=iYYRH4apXDo", "distance": 238900.0
}))]
pub struct SongInput {
    /// 1–64 characters once trimmed, no control characters (padding included).
    #[schema(
        pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// An existing artist's id, or null.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub artist_id: Option<JsonInteger>,
    /// `YYYY-MM-DD` (years 0001–9999), or null.
    #[schema(value_type = Option<String>, format = Date)]
    pub release_date: Option<String>,
    /// An http or https URL with a host name or an IPv4 address (no user info or IPv6
    /// literal), an optional port, then visible ASCII only; at most 1024 characters; or null.
    #[schema(
        max_length = 1024,
        pattern = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][\x21-\x7E]*)?$"
    )]
    pub url: Option<String>,
    /// A finite number, or null.
    pub distance: Option<f64>,
}

impl SongInput {
    fn fields(&self) -> SongFields<'_> {
        SongFields {
            title: &self.title,
            artist_id: self.artist_id.map(|n| n.0),
            release_date: self.release_date.as_deref(),
            url: self.url.as_deref(),
            distance: self.distance,
        }
    }
}

/// Body of PUT: every writable field (absent optional fields become null), optionally with
/// the read-only members of the song's GET representation, so GET-modify-PUT works. `id`,
/// when present, must equal the path id; `created_at` and `updated_at` are server-managed
/// and ignored. Other unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": 1, "title": "Space Oddity", "artist_id": 1, "release_date": "1969-07-11",
    "url": "https://www.youtube.com/watch?v=iYYRH4apXDo", "distance": 238900.0,
    "created_at": "2026-11-25T18:42:12.000000Z", "updated_at": "2026-11-25T18:42:12.000000Z"
}))]
pub struct SongReplace {
    /// The song's id, as GET returns it; when present, it must equal the path id.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64, minimum = 1, maximum = 2147483647)]
    pub id: Option<JsonInteger>,
    /// 1–64 characters once trimmed, no control characters (padding included).
    #[schema(
        pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// An existing artist's id, or null.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub artist_id: Option<JsonInteger>,
    /// `YYYY-MM-DD` (years 0001–9999), or null.
    #[schema(value_type = Option<String>, format = Date)]
    pub release_date: Option<String>,
    /// An http or https URL with a host name or an IPv4 address (no user info or IPv6
    /// literal), an optional port, then visible ASCII only; at most 1024 characters; or null.
    #[schema(
        max_length = 1024,
        pattern = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][\x21-\x7E]*)?$"
    )]
    pub url: Option<String>,
    /// A finite number, or null.
    pub distance: Option<f64>,
    /// Server-managed: accepted (an RFC 3339 date-time) and ignored.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Option<ServerManaged>,
    /// Server-managed: accepted (an RFC 3339 date-time) and ignored.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Option<ServerManaged>,
}

impl SongReplace {
    fn fields(&self) -> SongFields<'_> {
        SongFields {
            title: &self.title,
            artist_id: self.artist_id.map(|n| n.0),
            release_date: self.release_date.as_deref(),
            url: self.url.as_deref(),
            distance: self.distance,
        }
    }
}

/// Body of PATCH (JSON merge patch): absent members are kept, `null` clears a value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"release_date": null, "distance": 384400.0}))]
pub struct SongPatch {
    /// New title; `null` is rejected (the title is required).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, pattern = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$")]
    pub title: Option<Option<String>>,
    /// New artist id, or null for none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub artist_id: Option<Option<JsonInteger>>,
    /// New release date (`YYYY-MM-DD`, years 0001–9999), or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub release_date: Option<Option<String>>,
    /// New URL, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 1024, pattern = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][\x21-\x7E]*)?$")]
    pub url: Option<Option<String>>,
    /// New distance, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f64>)]
    pub distance: Option<Option<f64>>,
}

impl SongPatch {
    fn fields(&self) -> SongPatchFields<'_> {
        fn text(value: &Option<Option<String>>) -> Patch<&str> {
            Patch::from_double_option(value.as_ref().map(Option::as_deref))
        }
        SongPatchFields {
            title: text(&self.title),
            artist_id: Patch::from_double_option(self.artist_id.map(|n| n.map(|n| n.0))),
            release_date: text(&self.release_date),
            url: text(&self.url),
            distance: Patch::from_double_option(self.distance),
        }
    }
}

/// Query parameters of `GET /v1/songs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SongListParams {
    /// Page number, from 1 (default 1). Not with `cursor`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// Comma-separated fields from `id`, `title`, `release_date`, `distance`, `created_at`,
    /// each at most once, no spaces; `-` prefix for descending. Nulls sort last in both
    /// directions; ties are broken by `id` ascending. Titles sort by the Unicode code points
    /// of the stored text (case-sensitive: `B` before `a`, `é` after `z`), on every backend.
    #[param(
        example = "-release_date,title",
        pattern = r"^(?!(.*,)?-?(id|title|release_date|distance|created_at)(,.*)?,-?\2(,|$))-?(id|title|release_date|distance|created_at)(,-?(id|title|release_date|distance|created_at))*$"
    )]
    pub sort: Option<String>,
    /// `next_cursor` of a previous response with the same `sort` and filters.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Case-insensitive substring of the title (plain text).
    #[param(max_length = 256, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub q: Option<String>,
    /// Only this artist's songs.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub artist_id: Option<String>,
    /// Released on or after this date (`YYYY-MM-DD`, years 0001–9999); excludes songs
    /// without a date.
    #[param(value_type = Option<String>, format = Date)]
    pub released_from: Option<String>,
    /// Released on or before this date (`YYYY-MM-DD`, years 0001–9999); excludes songs
    /// without a date.
    #[param(value_type = Option<String>, format = Date)]
    pub released_to: Option<String>,
    /// `artist` embeds each song's artist (`{id, name}` or null), read in the same query;
    /// empty is the same as absent.
    #[param(example = "artist", pattern = "^(artist)?$")]
    pub include: Option<String>,
}

/// Query parameters of `GET /v1/artists/{id}/songs` (those of `GET /v1/songs` but
/// `artist_id`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtistSongsParams {
    /// Page number, from 1 (default 1). Not with `cursor`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// As for `GET /v1/songs`.
    #[param(
        pattern = r"^(?!(.*,)?-?(id|title|release_date|distance|created_at)(,.*)?,-?\2(,|$))-?(id|title|release_date|distance|created_at)(,-?(id|title|release_date|distance|created_at))*$"
    )]
    pub sort: Option<String>,
    /// `next_cursor` of a previous response with the same `sort` and filters.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Case-insensitive substring of the title (plain text).
    #[param(max_length = 256, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub q: Option<String>,
    /// Released on or after this date (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    pub released_from: Option<String>,
    /// Released on or before this date (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    pub released_to: Option<String>,
    /// `artist` embeds the artist in each song; empty is the same as absent.
    #[param(pattern = "^(artist)?$")]
    pub include: Option<String>,
}

impl ArtistSongsParams {
    /// The list request for artist `id`'s songs.
    ///
    /// # Errors
    /// 422 naming every invalid parameter.
    pub fn into_request(
        self,
        id: ArtistId,
    ) -> Result<ListRequest<SongSortField, SongFilter>, ApiError> {
        let params = SongListParams {
            page: self.page,
            page_size: self.page_size,
            sort: self.sort,
            cursor: self.cursor,
            q: self.q,
            artist_id: Some(id.to_string()),
            released_from: self.released_from,
            released_to: self.released_to,
            include: self.include,
        };
        params.into_request("artist-songs")
    }
}

impl SongListParams {
    fn into_request(
        self,
        endpoint: &str,
    ) -> Result<ListRequest<SongSortField, SongFilter>, ApiError> {
        let mut errors = ValidationErrors::new();
        let raw_filter = RawSongFilter {
            q: self.q.as_deref(),
            artist_id: self.artist_id.as_deref(),
            released_from: self.released_from.as_deref(),
            released_to: self.released_to.as_deref(),
            include: self.include.as_deref(),
        };
        let filter = SongFilter::parse(raw_filter, &mut errors);
        let raw = RawPaging {
            page: self.page.as_deref(),
            page_size: self.page_size.as_deref(),
            sort: self.sort.as_deref(),
            cursor: self.cursor.as_deref(),
        };
        let canonical = filter.canonical();
        ListRequest::parse(endpoint, raw, filter, &canonical, errors)
    }
}

fn song_location(song: &Song) -> String {
    format!("/v1/songs/{}", song.id)
}

/// Lists songs, filtered, sorted and paged; `include=artist` embeds each song's artist.
#[utoipa::path(get, path = "/v1/songs", tag = "songs", params(SongListParams),
    responses(
        (status = 200, description = "A page of songs", body = ListEnvelope<SongOut>),
        (status = 422, description = "Invalid parameter"),
    ))]
pub async fn list_songs(
    State(store): State<DynStore>,
    _reader: Reader,
    ApiQuery(params): ApiQuery<SongListParams>,
) -> Result<Json<ListEnvelope<SongOut>>, ApiError> {
    let request = params.into_request("songs")?;
    let page = store.list_songs(&request.query).await?;
    let include = request.query.filter.include_artist;
    Ok(Json(
        request.envelope(page, |song| SongOut::new(song, include)),
    ))
}

/// Creates a song; a missing artist is 404 "Artist with id N not found". With
/// `Idempotency-Key`, a retry of the same request within 24 h returns the original
/// response (`Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(post, path = "/v1/songs", tag = "songs", request_body = SongInput,
    params(IdempotencyKeyParam),
    responses(
        (status = 201, description = "Created (or replayed); `Location` names the new song", body = SongOut,
            headers(("Location" = String, description = "Path of the new song"), ("ETag" = String, description = "Entity tag"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key"),
        (status = 404, description = "The artist does not exist"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid field, or Idempotency-Key reused with another body"),
    ))]
pub async fn create_song(
    State(store): State<DynStore>,
    editor: Editor,
    idempotency_key: IdempotencyKeyHeader,
    ApiJson(input): ApiJson<SongInput>,
) -> Result<Response, ApiError> {
    let new = NewSong::parse(input.fields())?;
    let created =
        |song: Song| Tagged::created(song.etag(), song_location(&song), SongOut::new(song, false));
    let request = CreateRequest {
        key: idempotency_key,
        principal: editor.0,
        route: "POST /v1/songs",
        input: &input,
    };
    create(
        request,
        created,
        async || store.insert_song(&new).await,
        async |once| store.insert_song_once(&new, once).await,
    )
    .await
}

/// Reads a song; `If-None-Match` with its current tag gives 304.
#[utoipa::path(get, path = "/v1/songs/{id}", tag = "songs",
    params(("id" = i64, Path, description = "Song id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfNoneMatchParam),
    responses(
        (status = 200, description = "The song", body = SongOut, headers(("ETag" = String, description = "Entity tag"))),
        (status = 304, description = "Unchanged since the given tag"),
        (status = 400, description = "Malformed If-None-Match"),
        (status = 404, description = "No such song"),
        (status = 422, description = "Invalid id"),
    ))]
pub async fn get_song(
    State(store): State<DynStore>,
    _reader: Reader,
    ApiPath(id): ApiPath<SongId>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let song = store.get_song(id).await?;
    let etag = song.etag();
    if if_none_match.0.is_some_and(|p| p.matches_weak(&etag)) {
        return Ok(not_modified(&etag));
    }
    Ok(Tagged::ok(etag, SongOut::new(song, false)).into_response())
}

/// Replaces a song; never creates one (404 for an unknown id). Absent optional fields
/// become null. The body may be the song's own GET representation (`id` must then be the
/// path id; timestamps are ignored).
#[utoipa::path(put, path = "/v1/songs/{id}", tag = "songs", request_body = SongReplace,
    params(("id" = i64, Path, description = "Song id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfMatchParam),
    responses(
        (status = 200, description = "The replaced song", body = SongOut, headers(("ETag" = String, description = "New entity tag"))),
        (status = 400, description = "Malformed JSON or If-Match"),
        (status = 404, description = "No such song, or no such artist"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid id or field, or a body `id` other than the path id"),
    ))]
pub async fn replace_song(
    State(store): State<DynStore>,
    _editor: Editor,
    ApiPath(id): ApiPath<SongId>,
    if_match: IfMatch,
    ApiJson(input): ApiJson<SongReplace>,
) -> Result<Tagged<SongOut>, ApiError> {
    let body_id = input.id.map(|n| n.0);
    let new = same_id(body_id, id.get(), NewSong::parse(input.fields()))?;
    let song = store
        .replace_song(id, &new, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(Tagged::ok(song.etag(), SongOut::new(song, false)))
}

/// Changes some fields of a song (JSON merge patch, RFC 7396).
#[utoipa::path(patch, path = "/v1/songs/{id}", tag = "songs",
    request_body(content(
        (SongPatch = "application/merge-patch+json"),
        (SongPatch = "application/json"))),
    params(("id" = i64, Path, description = "Song id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfMatchParam),
    responses(
        (status = 200, description = "The patched song", body = SongOut, headers(("ETag" = String, description = "New entity tag"))),
        (status = 400, description = "Malformed JSON or If-Match"),
        (status = 404, description = "No such song, or no such artist"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Invalid id or field"),
    ))]
pub async fn patch_song(
    State(store): State<DynStore>,
    _editor: Editor,
    ApiPath(id): ApiPath<SongId>,
    if_match: IfMatch,
    ApiJson(patch): ApiJson<SongPatch>,
) -> Result<Tagged<SongOut>, ApiError> {
    let changes = SongChanges::parse(patch.fields())?;
    let song = store
        .patch_song(id, &changes, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(Tagged::ok(song.etag(), SongOut::new(song, false)))
}

/// Deletes a song.
#[utoipa::path(delete, path = "/v1/songs/{id}", tag = "songs",
    params(("id" = i64, Path, description = "Song id, 1–2147483647", minimum = 1, maximum = 2147483647),
        IfMatchParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed If-Match"),
        (status = 404, description = "No such song"),
        (status = 412, description = "If-Match did not match; nothing changed"),
        (status = 422, description = "Invalid id"),
    ))]
pub async fn delete_song(
    State(store): State<DynStore>,
    _editor: Editor,
    ApiPath(id): ApiPath<SongId>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    store
        .delete_song(id, if_match.expected(id.get()).as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
