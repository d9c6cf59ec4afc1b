//! The ScyllaDB / Cassandra backend: one driver session (token- and
//! shard-aware routing, a configurable consistency level, a timeout on every
//! request), prepared statements, and the schema of `cql/schema.cql`.
//!
//! CQL has no joins, so each query has its table: `songs` and `users` by id,
//! `comments_by_song` (one partition per song, rows in `(track_ms, id)` order,
//! the author's name and avatar copied in so the feed reads one partition) and
//! `comments_by_id` (single reads, and the key of the per-song row for edits
//! and deletes). A write touches both comment tables in one logged batch.
//!
//! Semantics match the PostgreSQL backend, with these differences:
//! - Times are stored in milliseconds (CQL `timestamp`); a comment's times are
//!   rounded down to the millisecond before they are stored and returned, so
//!   what a write returns is what later reads return. An edit moves
//!   `updated_at` at least one millisecond forward.
//! - Author-only edits and deletes read the comment, check the author, then
//!   write; there is no lock. Edits are UPDATEs of `body` and `updated_at`, so
//!   an edit that races a delete can leave only a row without `user_id`, which
//!   every read skips: the delete wins. A page whose last rows were such
//!   remnants may then hold fewer than `limit` comments and still have `next`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scylla::DeserializeRow;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Mutation, Storage, StorageError};
use crate::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, FeedComment, NewComment, Page, Song, SongId,
    User, UserId,
};

/// The schema, with the default keyspace name and replication in place.
pub const SCHEMA_CQL: &str = include_str!("../../cql/schema.cql");
/// The keyspace name `cql/schema.cql` uses (and Terraform's default).
pub const DEFAULT_KEYSPACE: &str = "song_comments";
/// One replica: a development node. Production clusters pass their own map.
pub const DEFAULT_REPLICATION: &str =
    "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}";

/// Bounds each schema change: creating a table takes the cluster far longer
/// than a read or write.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

const COMMENT_COLUMNS: &str = "id, song_id, track_ms, user_id, body, created_at, updated_at";
const PAGE_COLUMNS: &str =
    "id, track_ms, user_id, body, created_at, updated_at, author_name, author_avatar_url";

#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`; the driver discovers the rest of the cluster.
    pub known_nodes: Vec<String>,
    pub keyspace: String,
    pub consistency: Consistency,
    /// The CQL replication map used when the schema creates the keyspace.
    pub replication: String,
    /// Bounds each request (the driver's client-side request timeout).
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ScyllaError {
    #[error("no ScyllaDB contact point given (--scylla-uri / SCYLLA_URI)")]
    NoContactPoint,
    #[error("keyspace name {0:?} is not valid: use 1 to 48 letters, digits and _")]
    BadKeyspace(String),
    #[error("could not connect to ScyllaDB at {nodes}")]
    Connect {
        nodes: String,
        #[source]
        source: Box<NewSessionError>,
    },
    #[error("could not apply the CQL schema ({statement})")]
    Schema {
        statement: String,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("could not prepare {statement}")]
    Prepare {
        statement: String,
        #[source]
        source: Box<PrepareError>,
    },
}

/// Opens a session with the defaults every user of the cluster here shares:
/// token-aware routing (requests go straight to a replica of their partition,
/// and on ScyllaDB to the right shard), the configured consistency, and a
/// client-side timeout on every request.
pub async fn session(options: &ScyllaOptions) -> Result<Session, ScyllaError> {
    if options.known_nodes.is_empty() {
        return Err(ScyllaError::NoContactPoint);
    }
    check_keyspace(&options.keyspace)?;
    let profile = ExecutionProfile::builder()
        .consistency(options.consistency)
        .request_timeout(Some(options.timeout))
        .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
        .build();
    SessionBuilder::new()
        .known_nodes(&options.known_nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|source| ScyllaError::Connect {
            nodes: options.known_nodes.join(","),
            source: Box::new(source),
        })
}

fn check_keyspace(keyspace: &str) -> Result<(), ScyllaError> {
    let valid = (1..=48).contains(&keyspace.len())
        && keyspace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ScyllaError::BadKeyspace(keyspace.to_owned()))
    }
}

/// The statements of `cql/schema.cql` for `keyspace`, created with `replication`.
pub fn schema_statements(keyspace: &str, replication: &str) -> Vec<String> {
    let without_comments: String = SCHEMA_CQL
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|statement| !statement.is_empty())
        .map(|statement| {
            if statement.starts_with("CREATE KEYSPACE") {
                format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
            } else {
                statement.replace(&format!("{DEFAULT_KEYSPACE}."), &format!("{keyspace}."))
            }
        })
        .collect()
}

/// Creates the keyspace and tables that do not exist yet. Safe to run again,
/// and from several instances at once (the driver waits for the cluster to
/// agree on the schema after each change).
pub async fn migrate(session: &Session, options: &ScyllaOptions) -> Result<(), ScyllaError> {
    check_keyspace(&options.keyspace)?;
    for statement in schema_statements(&options.keyspace, &options.replication) {
        let mut ddl = Statement::new(statement.as_str());
        ddl.set_request_timeout(Some(SCHEMA_TIMEOUT));
        session
            .query_unpaged(ddl, ())
            .await
            .map_err(|source| ScyllaError::Schema {
                statement: statement.clone(),
                source: Box::new(source),
            })?;
    }
    tracing::info!(keyspace = %options.keyspace, "CQL schema in place");
    Ok(())
}

/// Prepares `cql` (with `{ks}` standing for the keyspace) as an idempotent
/// statement: every statement here may be retried safely, since writes carry
/// their own ids and values.
pub(crate) async fn prepare(
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

pub(crate) fn logged_batch(statements: &[&PreparedStatement]) -> Batch {
    let mut batch = Batch::new(BatchType::Logged);
    for statement in statements {
        batch.append_statement((*statement).clone());
    }
    batch.set_is_idempotent(true);
    batch
}

struct Statements {
    ping: PreparedStatement,
    song: PreparedStatement,
    user: PreparedStatement,
    first_page: PreparedStatement,
    page_after: PreparedStatement,
    comment: PreparedStatement,
    /// Inserts into comments_by_song and comments_by_id.
    insert: Batch,
    /// Sets body and updated_at in both tables.
    update: Batch,
    /// Deletes from both tables.
    delete: Batch,
}

impl Statements {
    async fn prepare(session: &Session, ks: &str) -> Result<Self, ScyllaError> {
        let insert_by_song = prepare(
            session,
            ks,
            "INSERT INTO {ks}.comments_by_song (song_id, track_ms, id, user_id, body, created_at, \
             updated_at, author_name, author_avatar_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .await?;
        let insert_by_id = prepare(
            session,
            ks,
            "INSERT INTO {ks}.comments_by_id (id, song_id, track_ms, user_id, body, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .await?;
        let update_by_song = prepare(
            session,
            ks,
            "UPDATE {ks}.comments_by_song SET body = ?, updated_at = ? \
             WHERE song_id = ? AND track_ms = ? AND id = ?",
        )
        .await?;
        let update_by_id = prepare(
            session,
            ks,
            "UPDATE {ks}.comments_by_id SET body = ?, updated_at = ? WHERE id = ?",
        )
        .await?;
        let delete_by_song = prepare(
            session,
            ks,
            "DELETE FROM {ks}.comments_by_song WHERE song_id = ? AND track_ms = ? AND id = ?",
        )
        .await?;
        let delete_by_id =
            prepare(session, ks, "DELETE FROM {ks}.comments_by_id WHERE id = ?").await?;
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
            comment: prepare(
                session,
                ks,
                &format!("SELECT {COMMENT_COLUMNS} FROM {{ks}}.comments_by_id WHERE id = ?"),
            )
            .await?,
            insert: logged_batch(&[&insert_by_song, &insert_by_id]),
            update: logged_batch(&[&update_by_song, &update_by_id]),
            delete: logged_batch(&[&delete_by_song, &delete_by_id]),
        })
    }
}

pub struct ScyllaStorage {
    session: Session,
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
            session,
            statements,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
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

    async fn batch(
        &self,
        batch: &Batch,
        values: impl scylla::serialize::batch::BatchValues,
    ) -> Result<(), StorageError> {
        self.session
            .batch(batch, values)
            .await
            .map(drop)
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

    async fn stored_comment(&self, id: CommentId) -> Result<Option<Comment>, StorageError> {
        let result = self.execute(&self.statements.comment, (id,)).await?;
        let row: Option<CommentRow> = first_row(result)?;
        Ok(row.and_then(CommentRow::into_comment))
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
        // `next` follows the rows read, remnants included, so a page that ends in
        // a remnant still leads on to the rest.
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

#[derive(DeserializeRow)]
struct SongRow {
    id: i64,
    title: Option<String>,
    artist: Option<String>,
    duration_ms: Option<i32>,
    created_at: Option<CqlTimestamp>,
}

#[derive(DeserializeRow)]
struct UserRow {
    id: i64,
    name: Option<String>,
    avatar_url: Option<String>,
    location: Option<String>,
}

/// A row of comments_by_id. Columns other than the key are optional because an
/// edit that raced a delete can leave a row with only `body` and `updated_at`.
#[derive(DeserializeRow)]
struct CommentRow {
    id: Uuid,
    song_id: Option<i64>,
    track_ms: Option<i32>,
    user_id: Option<i64>,
    body: Option<String>,
    created_at: Option<CqlTimestamp>,
    updated_at: Option<CqlTimestamp>,
}

impl CommentRow {
    fn into_comment(self) -> Option<Comment> {
        let created_at = from_cql(self.created_at?);
        Some(Comment {
            id: self.id,
            song_id: self.song_id?,
            user_id: self.user_id?,
            body: self.body?,
            track_ms: self.track_ms?,
            created_at,
            updated_at: self.updated_at.map_or(created_at, from_cql),
        })
    }
}

/// A row of comments_by_song (its partition key, the song, is known).
#[derive(DeserializeRow)]
struct PageRow {
    id: Uuid,
    track_ms: i32,
    user_id: Option<i64>,
    body: Option<String>,
    created_at: Option<CqlTimestamp>,
    updated_at: Option<CqlTimestamp>,
    author_name: Option<String>,
    author_avatar_url: Option<String>,
}

impl PageRow {
    fn into_feed_comment(self, song_id: SongId) -> Option<FeedComment> {
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

pub(crate) fn to_cql(time: DateTime<Utc>) -> CqlTimestamp {
    CqlTimestamp(time.timestamp_millis())
}

fn from_cql(time: CqlTimestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.0).unwrap_or_default()
}

/// `time` rounded down to what a CQL timestamp holds.
fn to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    from_cql(to_cql(time))
}

fn first_row<R>(result: QueryResult) -> Result<Option<R>, StorageError>
where
    R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StorageError::Backend(Box::new(e)))?;
    rows.maybe_first_row::<R>()
        .map_err(|e| StorageError::Backend(Box::new(e)))
}

fn all_rows<R>(result: QueryResult) -> Result<Vec<R>, StorageError>
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
    ) -> Result<Page<Comment>, StorageError> {
        let page = self.page(song, after, limit).await?;
        Ok(Page {
            items: page.items.into_iter().map(|item| item.comment).collect(),
            next: page.next,
        })
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
    /// unknown users as PostgreSQL's foreign key does), then writes both tables
    /// in one logged batch.
    async fn insert_comment(&self, comment: NewComment) -> Result<Comment, StorageError> {
        let author = self
            .user(comment.user_id)
            .await?
            .ok_or(StorageError::UnknownUser(comment.user_id))?;
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
        let at = to_cql(created_at);
        self.batch(
            &self.statements.insert,
            (
                (
                    stored.song_id,
                    stored.track_ms,
                    stored.id,
                    stored.user_id,
                    stored.body.as_str(),
                    at,
                    at,
                    author.name.as_str(),
                    author.avatar_url.as_str(),
                ),
                (
                    stored.id,
                    stored.song_id,
                    stored.track_ms,
                    stored.user_id,
                    stored.body.as_str(),
                    at,
                    at,
                ),
            ),
        )
        .await?;
        Ok(stored)
    }

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError> {
        let Some(mut comment) = self.stored_comment(id).await? else {
            return Ok(Mutation::NotFound);
        };
        if comment.user_id != author {
            return Ok(Mutation::Forbidden);
        }
        let now = to_millis(Utc::now());
        comment.updated_at = now.max(comment.updated_at + chrono::Duration::milliseconds(1));
        comment.body = body.into_inner();
        let at = to_cql(comment.updated_at);
        self.batch(
            &self.statements.update,
            (
                (
                    comment.body.as_str(),
                    at,
                    comment.song_id,
                    comment.track_ms,
                    comment.id,
                ),
                (comment.body.as_str(), at, comment.id),
            ),
        )
        .await?;
        Ok(Mutation::Done(comment))
    }

    async fn delete_comment(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Comment>, StorageError> {
        let Some(comment) = self.stored_comment(id).await? else {
            return Ok(Mutation::NotFound);
        };
        if comment.user_id != author {
            return Ok(Mutation::Forbidden);
        }
        self.batch(
            &self.statements.delete,
            (
                (comment.song_id, comment.track_ms, comment.id),
                (comment.id,),
            ),
        )
        .await?;
        Ok(Mutation::Done(comment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_statements_name_the_keyspace_and_replication() {
        let statements = schema_statements(
            "test_ks",
            "{'class': 'SimpleStrategy', 'replication_factor': 3}",
        );
        assert_eq!(statements.len(), 5, "{statements:#?}");
        assert_eq!(
            statements[0],
            "CREATE KEYSPACE IF NOT EXISTS test_ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}"
        );
        for statement in &statements[1..] {
            assert!(
                statement.starts_with("CREATE TABLE IF NOT EXISTS test_ks."),
                "{statement}"
            );
            assert!(!statement.contains(DEFAULT_KEYSPACE), "{statement}");
            assert!(!statement.contains("--"), "{statement}");
        }
        assert!(
            statements
                .iter()
                .any(|s| s.contains("PRIMARY KEY ((song_id), track_ms, id)")
                    && s.contains("CLUSTERING ORDER BY (track_ms ASC, id ASC)"))
        );
        let default = schema_statements(DEFAULT_KEYSPACE, DEFAULT_REPLICATION);
        assert!(default[0].ends_with(DEFAULT_REPLICATION));
    }

    #[test]
    fn keyspace_names_are_checked() {
        assert!(check_keyspace("song_comments_01").is_ok());
        for bad in ["", "a-b", "x; DROP", &"k".repeat(49)] {
            assert!(check_keyspace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_round_down_to_milliseconds() {
        let time = DateTime::from_timestamp_micros(1_700_000_000_123_999).unwrap();
        assert_eq!(to_millis(time).timestamp_micros(), 1_700_000_000_123_000);
        assert_eq!(from_cql(to_cql(time)), to_millis(time));
    }

    #[test]
    fn rows_missing_their_author_are_remnants() {
        let remnant = PageRow {
            id: Uuid::now_v7(),
            track_ms: 5,
            user_id: None,
            body: Some("edited".into()),
            created_at: None,
            updated_at: Some(CqlTimestamp(1)),
            author_name: None,
            author_avatar_url: None,
        };
        assert!(remnant.into_feed_comment(1).is_none());
        let whole = CommentRow {
            id: Uuid::now_v7(),
            song_id: Some(1),
            track_ms: Some(5),
            user_id: Some(2),
            body: Some("hi".into()),
            created_at: Some(CqlTimestamp(1_000)),
            updated_at: None,
        };
        let comment = whole.into_comment().unwrap();
        assert_eq!(comment.updated_at, comment.created_at);
    }
}
