//! Turning raw path segments, query strings and JSON bodies into checked
//! values, with a 4xx error that names the problem when they do not parse.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::domain::{CommentId, Cursor, SongId, page_limit};
use crate::error::ApiError;

pub fn song_id(raw: &str) -> Result<SongId, ApiError> {
    raw.parse::<SongId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            message: format!("song_id must be a positive integer, got {raw:?}"),
        })
}

pub fn comment_id(raw: &str) -> Result<CommentId, ApiError> {
    CommentId::parse_str(raw).map_err(|_| ApiError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: format!("comment_id must be a UUID, got {raw:?}"),
    })
}

pub fn json_body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::BadRequest {
            status: rejection.status(),
            message: rejection.body_text(),
        })
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// A checked page request: the limit (1..=200, default 50) and where to start.
pub fn page(
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(u32, Option<Cursor>), ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: rejection.body_text(),
    })?;
    let limit = page_limit(query.limit)?;
    let after = query.after.as_deref().map(Cursor::decode).transpose()?;
    Ok((limit, after))
}
