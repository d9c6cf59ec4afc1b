//! Validated domain types and the records the API returns. No I/O here.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest comment body, in characters (not bytes).
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Largest page a client may ask for.
pub const MAX_PAGE_LIMIT: u32 = 200;
/// Page size when the client does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Why a piece of client input was refused. The message is safe to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("comment body must not be empty")]
    EmptyBody,
    #[error("comment body is {0} characters; the limit is {MAX_COMMENT_CHARS}")]
    BodyTooLong(usize),
    #[error("track_ms must not be negative")]
    NegativeTrackPosition,
    #[error("track_ms {track_ms} is past the end of the song ({duration_ms} ms)")]
    TrackPositionPastEnd { track_ms: i64, duration_ms: i32 },
    #[error("limit must be between 1 and {MAX_PAGE_LIMIT}")]
    LimitOutOfRange,
    #[error("cursor is malformed")]
    BadCursor,
}

pub type SongId = i64;
pub type UserId = i64;
pub type CommentId = Uuid;

/// A comment body: trimmed of nothing, 1..=1000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentBody(String);

impl CommentBody {
    pub fn parse(body: String) -> Result<Self, InvalidInput> {
        let chars = body.chars().count();
        if body.trim().is_empty() {
            Err(InvalidInput::EmptyBody)
        } else if chars > MAX_COMMENT_CHARS {
            Err(InvalidInput::BodyTooLong(chars))
        } else {
            Ok(Self(body))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A position in a song, checked against the song's duration.
pub fn check_track_position(track_ms: i64, duration_ms: i32) -> Result<i32, InvalidInput> {
    if track_ms < 0 {
        Err(InvalidInput::NegativeTrackPosition)
    } else if track_ms > i64::from(duration_ms) {
        Err(InvalidInput::TrackPositionPastEnd {
            track_ms,
            duration_ms,
        })
    } else {
        Ok(track_ms as i32)
    }
}

/// A page size, 1..=200, defaulting to 50.
pub fn page_limit(limit: Option<u32>) -> Result<u32, InvalidInput> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(InvalidInput::LimitOutOfRange),
    }
}

/// Keyset position in a song's comments: the last (track_ms, id) a page returned.
/// Sent to clients as opaque URL-safe base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub track_ms: i32,
    pub id: CommentId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut raw = [0u8; 20];
        raw[..4].copy_from_slice(&self.track_ms.to_be_bytes());
        raw[4..].copy_from_slice(self.id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str) -> Result<Self, InvalidInput> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| InvalidInput::BadCursor)?;
        let raw: [u8; 20] = raw.try_into().map_err(|_| InvalidInput::BadCursor)?;
        let track_ms = i32::from_be_bytes(raw[..4].try_into().expect("4 bytes"));
        if track_ms < 0 {
            return Err(InvalidInput::BadCursor);
        }
        let id = Uuid::from_slice(&raw[4..]).map_err(|_| InvalidInput::BadCursor)?;
        Ok(Self { track_ms, id })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Song {
    pub id: SongId,
    pub title: String,
    pub artist: String,
    pub duration_ms: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub avatar_url: String,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: CommentId,
    pub song_id: SongId,
    pub user_id: UserId,
    pub body: String,
    pub track_ms: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Comment {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            track_ms: self.track_ms,
            id: self.id,
        }
    }
}

/// A comment as the feed shows it: with its author's name and avatar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedComment {
    #[serde(flatten)]
    pub comment: Comment,
    pub author_name: String,
    pub author_avatar_url: String,
}

/// One page of a song's comments, in (track_ms, id) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// The song with its first page of comments and their authors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub song: Song,
    pub comments: Page<FeedComment>,
}

/// A comment to be stored; the id (UUIDv7) and times are made by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub id: CommentId,
    pub song_id: SongId,
    pub user_id: UserId,
    pub body: CommentBody,
    pub track_ms: i32,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            track_ms: 12_345,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in ["", "abc", "!!!!", &"A".repeat(40)] {
            assert_eq!(Cursor::decode(bad), Err(InvalidInput::BadCursor), "{bad:?}");
        }
    }

    #[test]
    fn comment_body_limits() {
        assert_eq!(
            CommentBody::parse(String::new()),
            Err(InvalidInput::EmptyBody)
        );
        assert_eq!(
            CommentBody::parse("  \n".into()),
            Err(InvalidInput::EmptyBody)
        );
        assert!(CommentBody::parse("é".repeat(1000)).is_ok());
        assert_eq!(
            CommentBody::parse("é".repeat(1001)),
            Err(InvalidInput::BodyTooLong(1001))
        );
    }

    #[test]
    fn track_position_and_limit() {
        assert_eq!(check_track_position(0, 1000), Ok(0));
        assert_eq!(check_track_position(1000, 1000), Ok(1000));
        assert_eq!(
            check_track_position(-1, 1000),
            Err(InvalidInput::NegativeTrackPosition)
        );
        assert!(check_track_position(1001, 1000).is_err());
        assert_eq!(page_limit(None), Ok(DEFAULT_PAGE_LIMIT));
        assert_eq!(page_limit(Some(200)), Ok(200));
        assert_eq!(page_limit(Some(0)), Err(InvalidInput::LimitOutOfRange));
        assert_eq!(page_limit(Some(201)), Err(InvalidInput::LimitOutOfRange));
    }
}
