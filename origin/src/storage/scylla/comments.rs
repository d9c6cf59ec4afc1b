//! Comments on ScyllaDB / Cassandra: where each one lives, and the writes that keep it
//! right when requests race.
//!
//! `comments_by_song` holds each comment whole and is its one source of truth. Every write
//! to it is conditional (a lightweight transaction: Paxos on the row's partition), so the
//! writes to one comment happen in one order on every replica, and none can act on a state
//! it did not see:
//! - a new comment is `INSERT ... IF NOT EXISTS`;
//! - an edit is `UPDATE ... IF user_id = author AND updated_at = <what it read>`: an edit
//!   that lost a race with another edit reads the winner's `updated_at` from the answer and
//!   tries again (so `updated_at` only moves forward), and one that lost a race with a
//!   delete finds no author and answers "not found", leaving nothing behind;
//! - a delete is `DELETE ... IF user_id = author`: of two racing deletes one is done, the
//!   other finds nothing ("not found", never "forbidden").
//!
//! No plain write ever touches that table after the loader, so Paxos ballots never compete
//! with clock timestamps on it (the known hazard of mixing the two).
//!
//! `comments_by_id` is an index from id to the row's key and author, all columns that never
//! change. It is written before the row and removed after it, so a crash between the two
//! leaves at most an index entry without its row, which reads as "not found" and is
//! removed by the next delete that meets it.

use chrono::Utc;
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::response::query_result::QueryResult;
use scylla::statement::SerialConsistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use super::{
    PAGE_COLUMNS, PageRow, ScyllaError, ScyllaStorage, first_row, prepare, to_cql, to_millis,
};
use crate::domain::{Comment, CommentBody, CommentId, NewComment, SongId, UserId};
use crate::storage::{Mutation, StorageError};

/// How many times an edit tries again after losing to concurrent edits of the same
/// comment before it answers "unavailable" (a 503 with Retry-After).
const EDIT_ATTEMPTS: usize = 8;

/// The prepared statements of the comment tables (`{ks}` is the keyspace).
pub(super) struct CommentStatements {
    index_insert: PreparedStatement,
    index_lookup: PreparedStatement,
    index_delete: PreparedStatement,
    row: PreparedStatement,
    row_insert: PreparedStatement,
    row_edit: PreparedStatement,
    row_delete: PreparedStatement,
}

impl CommentStatements {
    pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Self, ScyllaError> {
        Ok(Self {
            index_insert: prepare(
                session,
                ks,
                "INSERT INTO {ks}.comments_by_id (id, song_id, track_ms, user_id) \
                 VALUES (?, ?, ?, ?)",
            )
            .await?,
            index_lookup: prepare(
                session,
                ks,
                "SELECT song_id, track_ms, user_id FROM {ks}.comments_by_id WHERE id = ?",
            )
            .await?,
            index_delete: prepare(session, ks, "DELETE FROM {ks}.comments_by_id WHERE id = ?")
                .await?,
            row: prepare(
                session,
                ks,
                &format!(
                    "SELECT {PAGE_COLUMNS} FROM {{ks}}.comments_by_song \
                     WHERE song_id = ? AND track_ms = ? AND id = ?"
                ),
            )
            .await?,
            row_insert: conditional(
                session,
                ks,
                "INSERT INTO {ks}.comments_by_song (song_id, track_ms, id, user_id, body, \
                 created_at, updated_at, author_name, author_avatar_url) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            )
            .await?,
            row_edit: conditional(
                session,
                ks,
                "UPDATE {ks}.comments_by_song SET body = ?, updated_at = ? \
                 WHERE song_id = ? AND track_ms = ? AND id = ? IF user_id = ? AND updated_at = ?",
            )
            .await?,
            row_delete: conditional(
                session,
                ks,
                "DELETE FROM {ks}.comments_by_song WHERE song_id = ? AND track_ms = ? AND id = ? \
                 IF user_id = ?",
            )
            .await?,
        })
    }
}

/// A conditional statement: serialised within the local data centre, and not retried by
/// the driver (a retry after an unknown outcome would compare against its own write).
async fn conditional(
    session: &Session,
    ks: &str,
    cql: &str,
) -> Result<PreparedStatement, ScyllaError> {
    let mut statement = prepare(session, ks, cql).await?;
    statement.set_is_idempotent(false);
    statement.set_serial_consistency(Some(SerialConsistency::LocalSerial));
    Ok(statement)
}

/// A comment found for its author, with the version an edit compares against: step one of
/// an edit or a delete ([`ScyllaStorage::locate`]), before any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    comment: Comment,
    /// `updated_at` exactly as stored.
    version: Option<CqlTimestamp>,
}

impl Located {
    pub fn comment(&self) -> &Comment {
        &self.comment
    }
}

/// What a conditional write answered: whether it was applied and, when it was not, the
/// current values of the columns it compared (none when the row is gone).
#[derive(Debug, Default)]
struct Outcome {
    applied: bool,
    user_id: Option<i64>,
    updated_at: Option<CqlTimestamp>,
}

/// Reads the answer by column name: Cassandra sends only `[applied]` when the row does not
/// exist and the compared columns otherwise; ScyllaDB always sends the old row.
fn outcome(result: QueryResult) -> Result<Outcome, StorageError> {
    let backend = |e: &dyn std::fmt::Display| StorageError::Backend(e.to_string().into());
    let rows = result.into_rows_result().map_err(|e| backend(&e))?;
    let names: Vec<String> = rows
        .column_specs()
        .iter()
        .map(|spec| spec.name().to_owned())
        .collect();
    let row: Row = rows
        .maybe_first_row::<Row>()
        .map_err(|e| backend(&e))?
        .ok_or_else(|| backend(&"a conditional write answered no row"))?;
    let mut outcome = Outcome::default();
    for (name, value) in names.iter().zip(row.columns) {
        match (name.as_str(), value) {
            ("[applied]", Some(CqlValue::Boolean(applied))) => outcome.applied = applied,
            ("user_id", Some(CqlValue::BigInt(user))) => outcome.user_id = Some(user),
            ("updated_at", Some(CqlValue::Timestamp(at))) => outcome.updated_at = Some(at),
            _ => {}
        }
    }
    Ok(outcome)
}

/// What an id leads to.
enum Found {
    Nothing,
    /// An index entry whose row is gone.
    IndexOnly,
    /// The comment, and its `updated_at` exactly as stored.
    Comment(Comment, Option<CqlTimestamp>),
}

#[derive(DeserializeRow)]
struct IndexRow {
    song_id: Option<SongId>,
    track_ms: Option<i32>,
    user_id: Option<UserId>,
}

impl ScyllaStorage {
    /// A comment by id: its index entry, then its row.
    pub(super) async fn stored_comment(
        &self,
        id: CommentId,
    ) -> Result<Option<Comment>, StorageError> {
        Ok(match self.find(id).await? {
            Found::Comment(comment, _) => Some(comment),
            Found::Nothing | Found::IndexOnly => None,
        })
    }

    async fn find(&self, id: CommentId) -> Result<Found, StorageError> {
        let statements = &self.statements.comments;
        let index: Option<IndexRow> =
            first_row(self.execute(&statements.index_lookup, (id,)).await?)?;
        let Some(IndexRow {
            song_id: Some(song),
            track_ms: Some(track_ms),
            user_id: Some(_),
        }) = index
        else {
            return Ok(Found::Nothing);
        };
        let row: Option<PageRow> =
            first_row(self.execute(&statements.row, (song, track_ms, id)).await?)?;
        Ok(row
            .and_then(|row| {
                let version = row.updated_at;
                row.into_feed_comment(song)
                    .map(|found| Found::Comment(found.comment, version))
            })
            .unwrap_or(Found::IndexOnly))
    }

    /// Writes the index entry, then the row (conditionally: it is new).
    pub(super) async fn insert(
        &self,
        comment: NewComment,
        author_name: &str,
        author_avatar_url: &str,
    ) -> Result<Comment, StorageError> {
        let statements = &self.statements.comments;
        let created_at = to_millis(comment.created_at);
        let stored = Comment {
            id: comment.id,
            song_id: comment.song_id,
            user_id: comment.user_id,
            body: comment.body.into_inner(),
            track_ms: comment.track_ms,
            created_at,
            updated_at: created_at,
        };
        self.execute(
            &statements.index_insert,
            (stored.id, stored.song_id, stored.track_ms, stored.user_id),
        )
        .await?;
        let at = to_cql(created_at);
        let values = (
            stored.song_id,
            stored.track_ms,
            stored.id,
            stored.user_id,
            stored.body.as_str(),
            at,
            at,
            author_name,
            author_avatar_url,
        );
        // Not applied means the row exists already: ids are fresh UUIDv7s, so it can only
        // be this very comment, written by an attempt whose answer was lost.
        outcome(self.execute(&statements.row_insert, values).await?)?;
        Ok(stored)
    }

    /// Step one of an edit or a delete by `author`: finds the comment and checks its author
    /// (a comment's author never changes, so this check cannot go stale). Writes nothing.
    /// [`edit_located`](Self::edit_located) and [`delete_located`](Self::delete_located)
    /// finish the change, conditionally on what the comment is by then.
    pub async fn locate(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Located>, StorageError> {
        Ok(match self.find(id).await? {
            Found::Nothing => Mutation::NotFound,
            Found::IndexOnly => {
                // What a crash between the two writes of an insert or a delete left.
                self.execute(&self.statements.comments.index_delete, (id,))
                    .await?;
                Mutation::NotFound
            }
            Found::Comment(comment, _) if comment.user_id != author => Mutation::Forbidden,
            Found::Comment(comment, version) => Mutation::Done(Located { comment, version }),
        })
    }

    /// Step two of an edit: sets the body if the comment is still its author's and still at
    /// the version read; after a concurrent edit, tries again on top of it.
    pub async fn edit_located(
        &self,
        located: Located,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError> {
        let Located {
            mut comment,
            mut version,
        } = located;
        comment.body = body.into_inner();
        for _ in 0..EDIT_ATTEMPTS {
            let base = version.map_or(comment.created_at, super::from_cql);
            comment.updated_at =
                to_millis(Utc::now()).max(base + chrono::Duration::milliseconds(1));
            let values = (
                comment.body.as_str(),
                to_cql(comment.updated_at),
                comment.song_id,
                comment.track_ms,
                comment.id,
                comment.user_id,
                version,
            );
            let answer = outcome(
                self.execute(&self.statements.comments.row_edit, values)
                    .await?,
            )?;
            if answer.applied {
                return Ok(Mutation::Done(comment));
            }
            if answer.user_id.is_none() {
                // Deleted since it was read: the delete came first.
                return Ok(Mutation::NotFound);
            }
            version = answer.updated_at;
        }
        Err(StorageError::Unavailable(
            format!(
                "comment {} is being edited by others: {EDIT_ATTEMPTS} attempts lost the race",
                comment.id
            )
            .into(),
        ))
    }

    /// Step two of a delete: removes the row if it is still its author's, then the index
    /// entry (also when the row was already gone, which mends what a crash left).
    pub async fn delete_located(
        &self,
        located: Located,
    ) -> Result<Mutation<Comment>, StorageError> {
        let comment = located.comment;
        let statements = &self.statements.comments;
        let answer = outcome(
            self.execute(
                &statements.row_delete,
                (
                    comment.song_id,
                    comment.track_ms,
                    comment.id,
                    comment.user_id,
                ),
            )
            .await?,
        )?;
        self.execute(&statements.index_delete, (comment.id,))
            .await?;
        Ok(if answer.applied {
            Mutation::Done(comment)
        } else {
            Mutation::NotFound
        })
    }
}
