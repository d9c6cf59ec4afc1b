//! Validated domain types and the records the API returns. No I/O here.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
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
    #[error("comment body must not be empty or blank")]
    EmptyBody,
    #[error("comment body must not contain the NUL character (U+0000)")]
    NulInBody,
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
    #[error("{name} must be a positive integer, got {text:?}")]
    NotAnId { name: &'static str, text: String },
    #[error("comment_id must be a UUID (8-4-4-4-12 hex digits), got {0:?}")]
    NotACommentId(String),
}

/// Defines a positive 64-bit id (songs and users are numbered from 1), whose
/// every way in ([`parse`](SongId::parse) from text, `new` from a number,
/// serde) goes through the one positivity check in `new`.
macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// What the id is called in messages (`song_id`, `user id`).
            pub const NAME: &'static str = $what;

            /// The id `value`, when it is positive.
            pub const fn new(value: i64) -> Option<Self> {
                if value > 0 { Some(Self(value)) } else { None }
            }

            /// An id from text, as it comes in a path or a token: decimal digits
            /// of a positive number that fits in 64 bits, nothing else.
            /// One spelling per id (no sign, no leading zero), so a cache
            /// never holds one resource under two URLs.
            pub fn parse(text: &str) -> Result<Self, InvalidInput> {
                let canonical = !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
                canonical
                    .then(|| text.parse::<i64>().ok())
                    .flatten()
                    .and_then(Self::new)
                    .ok_or_else(|| InvalidInput::NotAnId {
                        name: $what,
                        text: echo(text),
                    })
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = InvalidInput;

            fn try_from(value: i64) -> Result<Self, InvalidInput> {
                Self::new(value).ok_or_else(|| InvalidInput::NotAnId {
                    name: $what,
                    text: value.to_string(),
                })
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        /// In the OpenAPI description: a positive `int64`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1))
                    .description(Some(concat!("A positive 64-bit integer: the ", $what, ".")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// A song's id: a positive 64-bit integer.
    SongId,
    "song_id"
);
positive_id!(
    /// A user's id (the subject of a bearer token): a positive 64-bit integer.
    UserId,
    "user id"
);

pub type CommentId = Uuid;

/// Longest piece of client input an error message repeats.
const MAX_ECHOED_CHARS: usize = 64;

/// `text` as an error message may repeat it: at most [`MAX_ECHOED_CHARS`].
fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHOED_CHARS).collect()
}

/// A comment id from a path: a UUID in its hyphenated form (either case).
pub fn parse_comment_id(text: &str) -> Result<CommentId, InvalidInput> {
    // parse_str also takes braced, URN and unhyphenated spellings; one
    // spelling keeps one URL per comment.
    (text.len() == 36)
        .then(|| Uuid::try_parse(text).ok())
        .flatten()
        .ok_or_else(|| InvalidInput::NotACommentId(echo(text)))
}

/// A comment body: 1..=1000 characters, not all blank, no NUL; kept as sent
/// (nothing is trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentBody(String);

/// The characters a body may not consist of alone: Unicode's White_Space,
/// the information separators U+001C..U+001F and U+FEFF, which is the union
/// of what Python's, JavaScript's and Rust's regular-expression `\s` call
/// space. Spelled out so that the published pattern means the same to every
/// validator.
const BLANK_CLASS: &str = r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff";

fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{b}'
            | '\u{c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

impl CommentBody {
    pub fn parse(body: String) -> Result<Self, InvalidInput> {
        let chars = body.chars().count();
        if body.chars().all(is_blank) {
            Err(InvalidInput::EmptyBody)
        } else if chars > MAX_COMMENT_CHARS {
            Err(InvalidInput::BodyTooLong(chars))
        } else if body.contains('\0') {
            // PostgreSQL's text cannot hold it: refused here, not by the database.
            Err(InvalidInput::NulInBody)
        } else {
            Ok(Self(body))
        }
    }

    /// The JSON Schema pattern of a body: no NUL, and one character that is not blank.
    pub fn pattern() -> String {
        format!("^[^\\u0000]*[^\\u0000{BLANK_CLASS}][^\\u0000]*$")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// In the OpenAPI description: the length and pattern [`CommentBody::parse`] checks.
impl utoipa::PartialSchema for CommentBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_COMMENT_CHARS))
            .pattern(Some(Self::pattern()))
            .description(Some(
                "1 to 1000 characters (Unicode scalar values), not all blank, without NUL.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CommentBody {}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Song {
    pub id: SongId,
    pub title: String,
    pub artist: String,
    /// Length of the song; comments are pinned at 0..=duration_ms.
    #[schema(minimum = 1)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Comment {
    /// A UUIDv7 made by the service.
    #[schema(value_type = String, format = Uuid)]
    pub id: CommentId,
    pub song_id: SongId,
    /// The author: the subject of the token that posted it.
    pub user_id: UserId,
    #[schema(min_length = 1, max_length = 1000)]
    pub body: String,
    /// Position in the song, in milliseconds from its start.
    #[schema(minimum = 0)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    fn ids_parse_in_one_spelling_and_only_when_positive() {
        assert_eq!(SongId::parse("42").unwrap().get(), 42);
        assert_eq!(
            UserId::parse("9223372036854775807").unwrap().get(),
            i64::MAX
        );
        for bad in [
            "0",
            "-1",
            "+1",
            "01",
            " 1",
            "1.0",
            "1e3",
            "",
            "abc",
            "9223372036854775808",
        ] {
            assert!(
                matches!(
                    SongId::parse(bad),
                    Err(InvalidInput::NotAnId {
                        name: "song_id",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(SongId::new(0), None);
        assert!(SongId::try_from(-5).is_err());
        let long = "9".repeat(500);
        let message = SongId::parse(&long).unwrap_err().to_string();
        assert!(
            message.len() < 120,
            "the message echoes a bounded prefix: {message}"
        );
        assert_eq!(
            serde_json::to_string(&SongId::new(3).unwrap()).unwrap(),
            "3"
        );
        assert!(serde_json::from_str::<SongId>("0").is_err());
    }

    #[test]
    fn comment_ids_are_hyphenated_uuids() {
        let id = Uuid::now_v7();
        assert_eq!(parse_comment_id(&id.to_string()), Ok(id));
        assert_eq!(parse_comment_id(&id.to_string().to_uppercase()), Ok(id));
        for bad in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            "42".to_owned(),
        ] {
            assert!(parse_comment_id(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blank_is_at_least_what_rust_calls_whitespace_and_matches_the_pattern() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            if c.is_whitespace() {
                assert!(is_blank(c), "{c:?}");
            }
        }
        assert_eq!(
            CommentBody::parse("\u{1f}\u{feff}\u{3000}".into()),
            Err(InvalidInput::EmptyBody)
        );
        assert_eq!(
            CommentBody::parse("a\0b".into()),
            Err(InvalidInput::NulInBody)
        );
        let pattern = CommentBody::pattern();
        assert!(
            pattern.starts_with("^[^\\u0000]*[^\\u0000\\t\\n"),
            "{pattern}"
        );
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
