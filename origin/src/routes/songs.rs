//! Song reads (the song, its comments page, its feed) and posting a comment.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::input::{self, FeedQuery, PageQuery};
use crate::auth::Author;
use crate::cache::CacheKey;
use crate::domain::{
    Comment, CommentBody, Cursor, FeedComment, NewComment, Song, SongId, check_track_position,
    page_limit,
};
use crate::error::{ApiError, ErrorBody};
use crate::http_cache::{cacheable_json, uncacheable_json};
use crate::state::AppState;
use crate::storage::StorageError;

/// One page of a song's comments, in (track_ms, id) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentsPage {
    song_id: SongId,
    comments: Vec<Comment>,
    /// Where the next page starts (`after=`), when this page is full.
    #[schema(pattern = "^[A-Za-z0-9_-]{27}$")]
    next: Option<String>,
}

/// The song with its first comments and their authors, in one answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    song: Song,
    comments: Vec<FeedComment>,
    /// Where the comments list continues (`after=`), when this page is full.
    #[schema(pattern = "^[A-Za-z0-9_-]{27}$")]
    next: Option<String>,
}

/// A new comment. Its author is the token's subject, never a field here.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCommentRequest {
    #[schema(value_type = CommentBody)]
    body: String,
    /// Where in the song, in milliseconds: 0 to the song's `duration_ms`
    /// (a position past the end is refused with 400).
    #[schema(minimum = 0, maximum = 2147483647)]
    track_ms: i64,
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("records serialise to JSON"))
}

/// The song's JSON through the cache; `None` when there is no such song.
pub(super) async fn song_json(
    state: &Arc<AppState>,
    id: SongId,
) -> Result<Option<Bytes>, ApiError> {
    let storage = Arc::clone(&state.storage);
    let loaded = state
        .cache
        .fetch(CacheKey::Song(id), move || async move {
            Ok(storage.song(id).await?.map(|song| to_json(&song)))
        })
        .await;
    loaded.map_err(ApiError::Storage)
}

/// A song.
#[utoipa::path(
    get,
    path = "/api/songs/{song_id}",
    tag = "songs",
    params(("song_id" = SongId, Path, description = "The song.")),
    responses(
        (status = 200, description = "The song.", body = Song),
        (status = 400, description = "song_id is not a positive integer.", body = ErrorBody),
        (status = 404, description = "No such song.", body = ErrorBody),
    )
)]
pub async fn song(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = input::song_id(path)?;
    let body = song_json(&state, id)
        .await?
        .ok_or(ApiError::NotFound("song"))?;
    Ok(cacheable_json(&headers, body, &state.http_cache))
}

/// One page of a song's comments, in (track_ms, id) order.
#[utoipa::path(
    get,
    path = "/api/songs/{song_id}/comments",
    tag = "songs",
    params(("song_id" = SongId, Path, description = "The song."), PageQuery),
    responses(
        (status = 200, description = "A page (empty when the song has no comments).", body = CommentsPage),
        (status = 400, description = "A malformed song_id, limit or cursor.", body = ErrorBody),
        (status = 404, description = "No such song.", body = ErrorBody),
    )
)]
pub async fn comments(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let song = input::song_id(path)?;
    let (limit, after) = input::page(query)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        let Some(page) = storage.comments(song, after, limit).await? else {
            return Ok::<_, StorageError>(None);
        };
        let next = page.next.as_ref().map(Cursor::encode);
        Ok(Some(to_json(&CommentsPage {
            song_id: song,
            comments: page.items,
            next,
        })))
    };
    let body = state
        .cache
        .fetch(CacheKey::CommentsPage { song, limit, after }, load)
        .await
        .map_err(ApiError::Storage)?
        .ok_or(ApiError::NotFound("song"))?;
    Ok(cacheable_json(&headers, body, &state.http_cache))
}

/// The song with its first comments and their authors.
#[utoipa::path(
    get,
    path = "/api/songs/{song_id}/feed",
    tag = "songs",
    params(("song_id" = SongId, Path, description = "The song."), FeedQuery),
    responses(
        (status = 200, description = "The song and its first comments.", body = Feed),
        (status = 400, description = "A malformed song_id or limit.", body = ErrorBody),
        (status = 404, description = "No such song.", body = ErrorBody),
    )
)]
pub async fn feed(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<FeedQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let song = input::song_id(path)?;
    let limit = page_limit(input::query(query)?.limit)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        let Some(feed) = storage.feed(song, limit).await? else {
            return Ok(None);
        };
        let next = feed.comments.next.as_ref().map(Cursor::encode);
        Ok(Some(to_json(&Feed {
            song: feed.song,
            comments: feed.comments.items,
            next,
        })))
    };
    let body = state
        .cache
        .fetch(CacheKey::Feed { song, limit }, load)
        .await
        .map_err(ApiError::Storage)?
        .ok_or(ApiError::NotFound("song"))?;
    Ok(cacheable_json(&headers, body, &state.http_cache))
}

/// Posts a comment on a song, as the token's subject.
#[utoipa::path(
    post,
    path = "/api/songs/{song_id}/comments",
    tag = "comments",
    params(("song_id" = SongId, Path, description = "The song.")),
    request_body = NewCommentRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored; `Location` names the new comment.", body = Comment,
            headers(("Location" = String, description = "`/api/comments/{id}` of the new comment.")),
            links(
                ("ReadTheComment" = (operation_id = "comment", parameters(("comment_id" = "$response.body#/id")))),
                ("EditTheComment" = (operation_id = "edit_comment", parameters(("comment_id" = "$response.body#/id")))),
                ("DeleteTheComment" = (operation_id = "delete_comment", parameters(("comment_id" = "$response.body#/id")))),
            )),
        (status = 400, description = "A malformed song_id, body or position (past the song's end).", body = ErrorBody),
        (status = 404, description = "No such song.", body = ErrorBody),
    )
)]
pub async fn create_comment(
    State(state): State<Arc<AppState>>,
    Author(author): Author,
    path: Result<Path<String>, PathRejection>,
    request: Result<Json<NewCommentRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let song_id = input::song_id(path)?;
    let request = input::json_body(request)?;
    let body = CommentBody::parse(request.body)?;
    let song_bytes = song_json(&state, song_id)
        .await?
        .ok_or(ApiError::NotFound("song"))?;
    let song: Song = serde_json::from_slice(&song_bytes)
        .map_err(|error| ApiError::from(StorageError::Backend(Box::new(error))))?;
    let track_ms = check_track_position(request.track_ms, song.duration_ms)?;
    let inserted = state
        .storage
        .insert_comment(NewComment {
            id: uuid::Uuid::now_v7(),
            song_id,
            user_id: author,
            body,
            track_ms,
            created_at: Utc::now(),
        })
        .await;
    // Also when the insert may have committed unseen (a timeout, a lost
    // connection): the 503 tells the client to retry, and its reads must not
    // be served pages from before the write meanwhile. An INCR is cheap.
    if inserted
        .as_ref()
        .map_or_else(StorageError::outcome_unknown, |_| true)
    {
        state.cache.invalidate(song_id).await;
    }
    let comment = inserted?;
    let mut response = uncacheable_json(StatusCode::CREATED, to_json(&comment));
    let location =
        HeaderValue::from_str(&format!("/api/comments/{}", comment.id)).expect("ASCII location");
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}
