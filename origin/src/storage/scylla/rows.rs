//! CQL values and rows: song and user ids as `bigint`, times as millisecond
//! `timestamp`s, and the rows the reads deserialize, turned into domain records.

use chrono::{DateTime, Utc};
use scylla::DeserializeRow;
use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::{DeserializationError, FrameSlice, TypeCheckError};
use scylla::frame::response::result::ColumnType;
use scylla::response::query_result::QueryResult;
use scylla::serialize::SerializationError;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use crate::domain::{Comment, FeedComment, SongId, UserId};
use crate::storage::StorageError;

/// Song and user ids are `bigint` columns. One read back that is not positive
/// fails the read (nothing the service writes makes one).
macro_rules! bigint_id {
    ($id:ty) => {
        impl SerializeValue for $id {
            fn serialize<'b>(
                &self,
                typ: &ColumnType,
                writer: CellWriter<'b>,
            ) -> Result<WrittenCellProof<'b>, SerializationError> {
                self.get().serialize(typ, writer)
            }
        }

        impl<'frame, 'metadata> DeserializeValue<'frame, 'metadata> for $id {
            fn type_check(typ: &ColumnType) -> Result<(), TypeCheckError> {
                <i64 as DeserializeValue>::type_check(typ)
            }

            fn deserialize(
                typ: &'metadata ColumnType<'metadata>,
                v: Option<FrameSlice<'frame>>,
            ) -> Result<Self, DeserializationError> {
                let value = <i64 as DeserializeValue>::deserialize(typ, v)?;
                Self::try_from(value).map_err(DeserializationError::new)
            }
        }
    };
}

bigint_id!(SongId);
bigint_id!(UserId);

#[derive(DeserializeRow)]
pub(super) struct SongRow {
    pub(super) id: SongId,
    pub(super) title: Option<String>,
    pub(super) artist: Option<String>,
    pub(super) duration_ms: Option<i32>,
    pub(super) created_at: Option<CqlTimestamp>,
}

#[derive(DeserializeRow)]
pub(super) struct UserRow {
    pub(super) id: UserId,
    pub(super) name: Option<String>,
    pub(super) avatar_url: Option<String>,
    pub(super) location: Option<String>,
}

/// A row of comments_by_song (its partition key, the song, is known). Columns
/// are optional and a row without its author is skipped: before edits were
/// conditional, an edit racing a delete could leave such a remnant, and a
/// keyspace written then may still hold some.
#[derive(DeserializeRow)]
pub(super) struct PageRow {
    pub(super) id: Uuid,
    pub(super) track_ms: i32,
    pub(super) user_id: Option<UserId>,
    pub(super) body: Option<String>,
    pub(super) created_at: Option<CqlTimestamp>,
    pub(super) updated_at: Option<CqlTimestamp>,
    pub(super) author_name: Option<String>,
    pub(super) author_avatar_url: Option<String>,
}

impl PageRow {
    pub(super) fn into_feed_comment(self, song_id: SongId) -> Option<FeedComment> {
        let created_at = from_cql(self.created_at?);
        Some(FeedComment {
            comment: Comment {
                id: self.id,
                song_id,
                user_id: self.user_id?,
                body: self.body?,
                track_ms: self.track_ms,
                created_at,
                updated_at: self.updated_at.map_or(created_at, from_cql),
            },
            author_name: self.author_name.unwrap_or_default(),
            author_avatar_url: self.author_avatar_url.unwrap_or_default(),
        })
    }
}

pub fn to_cql(time: DateTime<Utc>) -> CqlTimestamp {
    CqlTimestamp(time.timestamp_millis())
}

pub(super) fn from_cql(time: CqlTimestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.0).unwrap_or_default()
}

/// `time` rounded down to what a CQL timestamp holds.
pub(super) fn to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    from_cql(to_cql(time))
}

pub(super) fn first_row<R>(result: QueryResult) -> Result<Option<R>, StorageError>
where
    R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StorageError::Backend(Box::new(e)))?;
    rows.maybe_first_row::<R>()
        .map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(super) fn all_rows<R>(result: QueryResult) -> Result<Vec<R>, StorageError>
where
    R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StorageError::Backend(Box::new(e)))?;
    rows.rows::<R>()
        .map_err(|e| StorageError::Backend(Box::new(e)))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(|e| StorageError::Backend(Box::new(e)))
}
