//! Turning raw path segments, query strings and JSON bodies into checked
//! values, with a 4xx error that names the problem when they do not parse.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::domain::{CommentId, Cursor, SongId, page_limit, parse_comment_id};
use crate::error::ApiError;

/// The song id of the path. A segment that is not UTF-8 once percent-decoded
/// (`/api/songs/%FF`) is refused by the extractor, before any parsing of ours:
/// its rejection becomes our JSON 400 here, not axum's plain-text one.
pub fn song_id(path: Result<Path<String>, PathRejection>) -> Result<SongId, ApiError> {
    Ok(SongId::parse(&raw_segment(path)?)?)
}

/// The comment id of the path; see [`song_id`] for a segment that is not UTF-8.
pub fn comment_id(path: Result<Path<String>, PathRejection>) -> Result<CommentId, ApiError> {
    Ok(parse_comment_id(&raw_segment(path)?)?)
}

fn raw_segment(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(raw)| raw)
        .map_err(|rejection| ApiError::BadRequest {
            status: rejection.status(),
            message: rejection.body_text(),
        })
}

pub fn json_body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::BadRequest {
            status: rejection.status(),
            message: rejection.body_text(),
        })
}

/// Where a page of comments starts and how long it is.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Comments per page.
    #[param(minimum = 1, maximum = 200, default = 50, nullable = false)]
    pub limit: Option<u32>,
    /// The `next` of the previous page: an opaque cursor.
    #[param(pattern = "^[A-Za-z0-9_-]{27}$", nullable = false)]
    pub after: Option<String>,
}

/// How many comments the feed shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Comments in the feed.
    #[param(minimum = 1, maximum = 200, default = 50, nullable = false)]
    pub limit: Option<u32>,
}

/// A query string that parsed, or a 400 that says why not.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            message: rejection.body_text(),
        })
}

/// A checked page request: the limit (1..=200, default 50) and where to start.
pub fn page(
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(u32, Option<Cursor>), ApiError> {
    let query = query(page)?;
    let limit = page_limit(query.limit)?;
    let after = query.after.as_deref().map(Cursor::decode).transpose()?;
    Ok((limit, after))
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;
    use proptest::prelude::*;

    use super::*;

    fn page_of(query: &str) -> Result<(u32, Option<Cursor>), ApiError> {
        let uri: Uri = format!("/api/songs/1/comments?{query}").parse().unwrap();
        page(Query::try_from_uri(&uri))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any query string a URI can carry gets a checked page or a 400, never a panic.
        #[test]
        fn query_strings_give_a_checked_page_or_a_400(query in prop_oneof![
            "[a-z=&%0-9_-]{0,40}",
            "limit=[0-9-]{0,12}(&after=[A-Za-z0-9_-]{0,30})?",
        ]) {
            prop_assume!(format!("/x?{query}").parse::<Uri>().is_ok());
            match page_of(&query) {
                Ok((limit, after)) => {
                    prop_assert!((1..=200).contains(&limit));
                    if let Some(cursor) = after {
                        prop_assert!(query.contains(&cursor.encode()));
                    }
                }
                Err(error) => prop_assert_eq!(error.status(), StatusCode::BAD_REQUEST),
            }
        }
    }

    #[test]
    fn a_page_query_reads_limit_and_cursor() {
        let cursor = Cursor {
            track_ms: 7,
            id: uuid::Uuid::nil(),
        };
        let query = format!("limit=3&after={}", cursor.encode());
        assert_eq!(page_of(&query).unwrap(), (3, Some(cursor)));
        assert_eq!(page_of("").unwrap(), (50, None));
        assert!(page_of("limit=0").is_err());
        assert!(page_of("limit=x").is_err());
    }
}
