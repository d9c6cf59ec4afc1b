//! One comment: read it, and edit or delete it (its author alone).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use utoipa::ToSchema;

use super::input;
use crate::auth::Author;
use crate::cache::CacheKey;
use crate::domain::{Comment, CommentBody};
use crate::error::{ApiError, ErrorBody};
use crate::http_cache::{cacheable_json, uncacheable_json};
use crate::state::AppState;
use crate::storage::Mutation;

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
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = input::comment_id(&raw_id)?;
    let storage = Arc::clone(&state.storage);
    let load = move || async move {
        Ok(storage
            .comment(id)
            .await?
            .map(|comment| Bytes::from(serde_json::to_vec(&comment).expect("records serialise"))))
    };
    let body = state
        .cache
        .fetch(CacheKey::Comment(id), load)
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
    Path(raw_id): Path<String>,
    request: Result<Json<EditRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = input::comment_id(&raw_id)?;
    let body = CommentBody::parse(input::json_body(request)?.body)?;
    let comment = settle(state.storage.update_comment(id, author, body).await?)?;
    state.cache.invalidate(comment.song_id, Some(id)).await;
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
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = input::comment_id(&raw_id)?;
    let comment = settle(state.storage.delete_comment(id, author).await?)?;
    state.cache.invalidate(comment.song_id, Some(id)).await;
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

fn settle(mutation: Mutation<Comment>) -> Result<Comment, ApiError> {
    match mutation {
        Mutation::Done(comment) => Ok(comment),
        Mutation::NotFound => Err(ApiError::NotFound("comment")),
        Mutation::Forbidden => Err(ApiError::Forbidden),
    }
}
