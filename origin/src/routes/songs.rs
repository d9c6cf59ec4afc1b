//! Song reads (the song, its comments page, its feed) and posting a comment.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::input::{self, PageQuery};
use crate::auth::Author;
use crate::cache::CacheKey;
use crate::domain::{
    Comment, CommentBody, Cursor, FeedComment, NewComment, Song, SongId, check_track_position,
    page_limit,
};
use crate::error::ApiError;
use crate::http_cache::{cacheable_json, uncacheable_json};
use crate::startup::AppState;
use crate::storage::StorageError;

#[derive(Debug, Serialize)]
struct CommentsPageBody<'a> {
    song_id: SongId,
    comments: &'a [Comment],
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct FeedBody<'a> {
    song: &'a Song,
    comments: &'a [FeedComment],
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NewCommentRequest {
    body: String,
    track_ms: i64,
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    limit: Option<u32>,
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

pub async fn song(
    State(state): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = input::song_id(&raw_id)?;
    let body = song_json(&state, id)
        .await?
        .ok_or(ApiError::NotFound("song"))?;
    Ok(cacheable_json(&headers, body, &state.http_cache))
}

pub async fn comments(
    State(state): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let song = input::song_id(&raw_id)?;
    let (limit, after) = input::page(query)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        let page = storage.comments(song, after, limit).await?;
        // An empty page cannot tell "no comments (yet)" from "no such song".
        if page.items.is_empty() && storage.song(song).await?.is_none() {
            return Ok::<_, StorageError>(None);
        }
        let next = page.next.as_ref().map(Cursor::encode);
        Ok(Some(to_json(&CommentsPageBody {
            song_id: song,
            comments: &page.items,
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

pub async fn feed(
    State(state): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    query: Result<Query<FeedQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let song = input::song_id(&raw_id)?;
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: rejection.body_text(),
    })?;
    let limit = page_limit(query.limit)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        let Some(feed) = storage.feed(song, limit).await? else {
            return Ok(None);
        };
        let next = feed.comments.next.as_ref().map(Cursor::encode);
        Ok(Some(to_json(&FeedBody {
            song: &feed.song,
            comments: &feed.comments.items,
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

pub async fn create_comment(
    State(state): State<Arc<AppState>>,
    Author(author): Author,
    Path(raw_id): Path<String>,
    request: Result<Json<NewCommentRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let song_id = input::song_id(&raw_id)?;
    let request = input::json_body(request)?;
    let body = CommentBody::parse(request.body)?;
    let song_bytes = song_json(&state, song_id)
        .await?
        .ok_or(ApiError::NotFound("song"))?;
    let song: Song = serde_json::from_slice(&song_bytes)
        .map_err(|error| ApiError::from(StorageError::Backend(Box::new(error))))?;
    let track_ms = check_track_position(request.track_ms, song.duration_ms)?;
    let comment = state
        .storage
        .insert_comment(NewComment {
            id: uuid::Uuid::now_v7(),
            song_id,
            user_id: author,
            body,
            track_ms,
            created_at: Utc::now(),
        })
        .await?;
    state.cache.invalidate(song_id, None).await;
    let mut response = uncacheable_json(StatusCode::CREATED, to_json(&comment));
    let location =
        HeaderValue::from_str(&format!("/api/comments/{}", comment.id)).expect("ASCII location");
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}
