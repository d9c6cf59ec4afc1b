//! The ScyllaDB / Cassandra backend: one driver session (token- and
//! shard-aware routing, a configurable consistency level, a timeout on every
//! request), prepared statements, and the schema of `cql/schema.cql`.
//!
//! CQL has no joins, so each query has its table: `songs` and `users` by id,
//! `comments_by_song` (one partition per song, rows in `(track_ms, id)` order,
//! the author's name and avatar copied in so the feed reads one partition) and
//! `comments_by_id` (an index from a comment's id to its row). Comments are
//! written with conditional writes: see [`comments`] for why and how.
//!
//! Semantics match the PostgreSQL backend, with one difference: times are
//! stored in milliseconds (CQL `timestamp`); a comment's times are rounded down
//! to the millisecond before they are stored and returned, so what a write
//! returns is what later reads return. An edit moves `updated_at` at least one
//! millisecond forward.
//!
//! Nothing here is ScyllaDB-only: the same statements run on Apache Cassandra
//! 4.1+ (the tests run them on a real Cassandra 5.0 node) and on ScyllaDB, whose
//! keyspaces must use vnodes, not tablets, for the conditional writes.
//!
//! The files: [`cluster`] opens a session and says which product answered,
//! [`schema`] applies `cql/schema.cql`, [`rows`] turns CQL values and rows into
//! domain records, and [`comments`] holds the comments' conditional writes. This
//! file holds the prepared statements, the reads and the [`Storage`]
//! implementation.

mod cluster;
mod comments;
mod rows;
mod schema;

pub use cluster::{Product, ScyllaError, ScyllaOptions, session};
pub use comments::Located;
pub use rows::to_cql;
pub use schema::{DEFAULT_KEYSPACE, DEFAULT_REPLICATION, SCHEMA_CQL, migrate, schema_statements};

use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;

use super::{Mutation, Storage, StorageError};
use crate::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, FeedComment, NewComment, Page, Song, SongId,
    User, UserId,
};
use cluster::check_keyspace;
use rows::{PageRow, SongRow, UserRow, all_rows, first_row, from_cql, to_millis};

const PAGE_COLUMNS: &str =
    "id, track_ms, user_id, body, created_at, updated_at, author_name, author_avatar_url";

/// Prepares `cql` (with `{ks}` standing for the keyspace) as an idempotent
/// statement: every statement here may be retried safely, since writes carry
/// their own ids and values.
pub async fn prepare(
    session: &Session,
    keyspace: &str,
    cql: &str,
) -> Result<PreparedStatement, ScyllaError> {
    let statement = cql.replace("{ks}", keyspace);
    let mut prepared = session
        .prepare(statement.as_str())
        .await
        .map_err(|source| ScyllaError::Prepare {
            statement: statement.clone(),
            source: Box::new(source),
        })?;
    prepared.set_is_idempotent(true);
    Ok(prepared)
}

struct Statements {
    ping: PreparedStatement,
    song: PreparedStatement,
    user: PreparedStatement,
    first_page: PreparedStatement,
    page_after: PreparedStatement,
    comments: comments::CommentStatements,
}

impl Statements {
    async fn prepare(session: &Session, ks: &str) -> Result<Self, ScyllaError> {
        Ok(Self {
            ping: prepare(
                session,
                ks,
                "SELECT release_version FROM system.local WHERE key = 'local'",
            )
            .await?,
            song: prepare(
                session,
                ks,
                "SELECT id, title, artist, duration_ms, created_at FROM {ks}.songs WHERE id = ?",
            )
            .await?,
            user: prepare(
                session,
                ks,
                "SELECT id, name, avatar_url, location FROM {ks}.users WHERE id = ?",
            )
            .await?,
            first_page: prepare(
                session,
                ks,
                &format!(
                    "SELECT {PAGE_COLUMNS} FROM {{ks}}.comments_by_song WHERE song_id = ? LIMIT ?"
                ),
            )
            .await?,
            page_after: prepare(
                session,
                ks,
                &format!(
                    "SELECT {PAGE_COLUMNS} FROM {{ks}}.comments_by_song \
                     WHERE song_id = ? AND (track_ms, id) > (?, ?) LIMIT ?"
                ),
            )
            .await?,
            comments: comments::CommentStatements::prepare(session, ks).await?,
        })
    }
}

pub struct ScyllaStorage {
    session: Session,
    product: Product,
    keyspace: String,
    statements: Statements,
}

impl ScyllaStorage {
    /// Connects, applies the schema, and prepares every statement.
    pub async fn connect_and_migrate(options: &ScyllaOptions) -> Result<Self, ScyllaError> {
        let session = session(options).await?;
        migrate(&session, options).await?;
        Self::with_session(session, &options.keyspace).await
    }

    /// Over a session the caller opened, on a keyspace whose schema exists.
    pub async fn with_session(session: Session, keyspace: &str) -> Result<Self, ScyllaError> {
        check_keyspace(keyspace)?;
        let statements = Statements::prepare(&session, keyspace).await?;
        Ok(Self {
            product: Product::of(&session),
            session,
            keyspace: keyspace.to_owned(),
            statements,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<QueryResult, StorageError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(classify)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StorageError> {
        let result = self.execute(&self.statements.user, (id,)).await?;
        let row: Option<UserRow> = first_row(result)?;
        Ok(row.map(|row| User {
            id: row.id,
            name: row.name.unwrap_or_default(),
            avatar_url: row.avatar_url.unwrap_or_default(),
            location: row.location.unwrap_or_default(),
        }))
    }

    async fn page(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<FeedComment>, StorageError> {
        let cql_limit = limit as i32;
        let result = match after {
            None => {
                self.execute(&self.statements.first_page, (song, cql_limit))
                    .await?
            }
            Some(cursor) => {
                self.execute(
                    &self.statements.page_after,
                    (song, cursor.track_ms, cursor.id, cql_limit),
                )
                .await?
            }
        };
        let rows: Vec<PageRow> = all_rows(result)?;
        // `next` follows the rows read, remnants included (see `PageRow`), so a
        // page that ends in a remnant still leads on to the rest.
        let next = if rows.len() == limit as usize {
            rows.last().map(|row| Cursor {
                track_ms: row.track_ms,
                id: row.id,
            })
        } else {
            None
        };
        let items = rows
            .into_iter()
            .filter_map(|row| row.into_feed_comment(song))
            .collect();
        Ok(Page { items, next })
    }
}

/// Timeouts (the driver's or a replica's) are `Timeout`; no reachable replica,
/// overload, bootstrapping and broken connections are `Unavailable`; anything
/// else is a `Backend` error.
pub(crate) fn classify(error: ExecutionError) -> StorageError {
    match &error {
        ExecutionError::RequestTimeout(_) => StorageError::Timeout,
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            StorageError::Unavailable(Box::new(error))
        }
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(
                DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. },
                _,
            ) => StorageError::Timeout,
            RequestAttemptError::DbError(
                DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::RateLimitReached { .. },
                _,
            )
            | RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => {
                StorageError::Unavailable(Box::new(error))
            }
            _ => StorageError::Backend(Box::new(error)),
        },
        _ => StorageError::Backend(Box::new(error)),
    }
}

#[async_trait]
impl Storage for ScyllaStorage {
    fn product(&self) -> &'static str {
        self.product.name()
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.execute(&self.statements.ping, ()).await.map(drop)
    }

    async fn song(&self, id: SongId) -> Result<Option<Song>, StorageError> {
        let result = self.execute(&self.statements.song, (id,)).await?;
        let row: Option<SongRow> = first_row(result)?;
        Ok(row.and_then(|row| {
            Some(Song {
                id: row.id,
                title: row.title.unwrap_or_default(),
                artist: row.artist.unwrap_or_default(),
                duration_ms: row.duration_ms?,
                created_at: row.created_at.map(from_cql).unwrap_or_default(),
            })
        }))
    }

    async fn comments(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<Page<Comment>>, StorageError> {
        // CQL has no join: the song is read beside the page, in the same round trip of time.
        let (found, page) = tokio::try_join!(self.song(song), self.page(song, after, limit))?;
        Ok(found.map(|_| Page {
            items: page.items.into_iter().map(|item| item.comment).collect(),
            next: page.next,
        }))
    }

    /// Two single-partition reads at once (the song, and the first slice of its
    /// comments partition with the authors copied in): one round trip of time.
    async fn feed(&self, song: SongId, limit: u32) -> Result<Option<Feed>, StorageError> {
        let (found, comments) = tokio::try_join!(self.song(song), self.page(song, None, limit))?;
        Ok(found.map(|song| Feed { song, comments }))
    }

    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StorageError> {
        self.stored_comment(id).await
    }

    /// Reads the author (for the name and avatar the feed shows, and to refuse
    /// unknown users as PostgreSQL's foreign key does), then writes the comment.
    async fn insert_comment(&self, comment: NewComment) -> Result<Comment, StorageError> {
        let author = self
            .user(comment.user_id)
            .await?
            .ok_or(StorageError::UnknownUser(comment.user_id))?;
        self.insert(comment, &author.name, &author.avatar_url).await
    }

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError> {
        match self.locate(id, author).await? {
            Mutation::Done(located) => self.edit_located(located, body).await,
            Mutation::NotFound => Ok(Mutation::NotFound),
            Mutation::Forbidden => Ok(Mutation::Forbidden),
        }
    }

    async fn delete_comment(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Comment>, StorageError> {
        match self.locate(id, author).await? {
            Mutation::Done(located) => self.delete_located(located).await,
            Mutation::NotFound => Ok(Mutation::NotFound),
            Mutation::Forbidden => Ok(Mutation::Forbidden),
        }
    }
}

#[cfg(test)]
mod tests;
