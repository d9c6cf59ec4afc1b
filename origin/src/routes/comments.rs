//! One comment: read it, and edit or delete it (its author alone).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;

use super::input;
use crate::auth::Author;
use crate::domain::{Comment, CommentBody, CommentId};
use crate::error::{ApiError, ErrorBody};
use crate::http_cache::{cacheable_json, uncacheable_json};
use crate::state::AppState;
use crate::storage::{Mutation, StorageError};

/// The new text of a comment (its position and author stay).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditRequest {
    #[schema(value_type = CommentBody)]
    body: String,
}

/// A comment.
#[utoipa::path(
    get,
    path = "/api/comments/{comment_id}",
    tag = "comments",
    params(("comment_id" = String, Path, format = Uuid, description = "The comment.")),
    responses(
        (status = 200, description = "The comment.", body = Comment),
        (status = 400, description = "comment_id is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such comment.", body = ErrorBody),
    )
)]
pub async fn comment(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = input::comment_id(path)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        Ok(storage.comment(id).await?.map(|comment| {
            let body = Bytes::from(serde_json::to_vec(&comment).expect("records serialise"));
            (comment.song_id, body)
        }))
    };
    let body = state
        .cache
        .fetch_comment(id, load)
        .await
        .map_err(ApiError::Storage)?
        .ok_or(ApiError::NotFound("comment"))?;
    Ok(cacheable_json(&headers, body, &state.http_cache))
}

/// Edits a comment's body; only its author may.
#[utoipa::path(
    patch,
    path = "/api/comments/{comment_id}",
    tag = "comments",
    params(("comment_id" = String, Path, format = Uuid, description = "The comment.")),
    request_body = EditRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The edited comment.", body = Comment,
            headers(("Link" = String, description = "`</api/songs/{song_id}/comments>; rel=\"collection\"`: the comment's song's list, which shared caches drop (RFC 6573)."))),
        (status = 400, description = "A malformed comment_id or body.", body = ErrorBody),
        (status = 403, description = "The comment is someone else's; nothing changed.", body = ErrorBody),
        (status = 404, description = "No such comment.", body = ErrorBody),
    )
)]
pub async fn edit_comment(
    State(state): State<Arc<AppState>>,
    Author(author): Author,
    path: Result<Path<String>, PathRejection>,
    request: Result<Json<EditRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = input::comment_id(path)?;
    let body = CommentBody::parse(input::json_body(request)?.body)?;
    let updated = state.storage.update_comment(id, author, body).await;
    let comment = settle(invalidate_if_unknown(&state, id, updated).await?)?;
    state.cache.invalidate(comment.song_id).await;
    let json = Bytes::from(serde_json::to_vec(&comment).expect("records serialise"));
    Ok(with_collection_link(
        uncacheable_json(StatusCode::OK, json),
        &comment,
    ))
}

/// Deletes a comment; only its author may.
#[utoipa::path(
    delete,
    path = "/api/comments/{comment_id}",
    tag = "comments",
    params(("comment_id" = String, Path, format = Uuid, description = "The comment.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted.",
            headers(("Link" = String, description = "`</api/songs/{song_id}/comments>; rel=\"collection\"`: the comment's song's list, which shared caches drop (RFC 6573)."))),
        (status = 400, description = "comment_id is not a UUID.", body = ErrorBody),
        (status = 403, description = "The comment is someone else's; nothing changed.", body = ErrorBody),
        (status = 404, description = "No such comment.", body = ErrorBody),
    )
)]
pub async fn delete_comment(
    State(state): State<Arc<AppState>>,
    Author(author): Author,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = input::comment_id(path)?;
    let deleted = state.storage.delete_comment(id, author).await;
    let comment = settle(invalidate_if_unknown(&state, id, deleted).await?)?;
    state.cache.invalidate(comment.song_id).await;
    Ok(with_collection_link(
        uncacheable_json(StatusCode::NO_CONTENT, Bytes::new()),
        &comment,
    ))
}

/// Names the song's comment list as the collection the comment belongs to
/// (`Link: <...>; rel="collection"`, RFC 6573). The path of an edit or delete
/// does not say which song it touched; this tells shared caches (the edge) which
/// song's cached pages the write made stale.
fn with_collection_link(mut response: Response, comment: &Comment) -> Response {
    let link = format!(
        "</api/songs/{}/comments>; rel=\"collection\"",
        comment.song_id
    );
    response.headers_mut().insert(
        header::LINK,
        HeaderValue::from_str(&link).expect("an ASCII link"),
    );
    response
}

/// How long a write of unknown outcome may spend asking the database for its
/// comment's song, before it gives up invalidating (and says so).
const SONG_LOOKUP_LIMIT: std::time::Duration = std::time::Duration::from_millis(250);

/// An edit or delete whose outcome is unknown (a timeout, a lost connection:
/// the database may have committed) invalidates the comment's song all the
/// same, so that the client's retry after the 503, and everyone's reads, do
/// not meet pages from before it. The path does not name the song: Redis
/// knows it if the comment was read lately, else the database is asked (an
/// edited comment is still there; a deleted one that is gone leaves the pages
/// to their TTL, which is logged).
async fn invalidate_if_unknown(
    state: &AppState,
    id: CommentId,
    outcome: Result<Mutation<Comment>, StorageError>,
) -> Result<Mutation<Comment>, StorageError> {
    let Err(error) = &outcome else {
        return outcome;
    };
    if !error.outcome_unknown() || !state.cache.is_enabled() {
        return outcome;
    }
    let song = match state.cache.song_of_comment(id).await {
        Some(song) => Some(song),
        // Bounded: the write has just timed out, and its 503 should not wait on
        // a second full database timeout.
        None => tokio::time::timeout(SONG_LOOKUP_LIMIT, state.storage.comment(id))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map(|comment| comment.song_id),
    };
    match song {
        Some(song) => state.cache.invalidate(song).await,
        None => tracing::warn!(
            comment = %id,
            "a write of unknown outcome could not be invalidated: its song is not known"
        ),
    }
    outcome
}

fn settle(mutation: Mutation<Comment>) -> Result<Comment, ApiError> {
    match mutation {
        Mutation::Done(comment) => Ok(comment),
        Mutation::NotFound => Err(ApiError::NotFound("comment")),
        Mutation::Forbidden => Err(ApiError::Forbidden),
    }
}
