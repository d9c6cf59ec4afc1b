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

mod comments;

pub use comments::Located;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scylla::DeserializeRow;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::{DeserializationError, FrameSlice, TypeCheckError};
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};
use scylla::frame::response::result::ColumnType;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::SerializationError;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
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

const PAGE_COLUMNS: &str =
    "id, track_ms, user_id, body, created_at, updated_at, author_name, author_avatar_url";

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

/// Which server a session talks to. ScyllaDB advertises its shards when a
/// connection opens; Cassandra does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Cassandra,
    ScyllaDb,
}

impl Product {
    pub fn of(session: &Session) -> Self {
        let sharded = session
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .any(|node| node.sharder().is_some());
        if sharded {
            Self::ScyllaDb
        } else {
            Self::Cassandra
        }
    }

    /// The name people know it by, for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cassandra => "Cassandra",
            Self::ScyllaDb => "ScyllaDB",
        }
    }
}

/// The statements of `cql/schema.cql` for `keyspace`, created with `replication`.
///
/// On ScyllaDB a new keyspace uses vnodes, not tablets (the default since
/// ScyllaDB 6), because the conditional writes of comments need lightweight
/// transactions, which tablet keyspaces do not offer. That option is
/// ScyllaDB's own CQL: Cassandra is never sent it.
pub fn schema_statements(keyspace: &str, replication: &str, product: Product) -> Vec<String> {
    let keyspace_options = match product {
        Product::Cassandra => String::new(),
        Product::ScyllaDb => " AND tablets = {'enabled': false}".to_owned(),
    };
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
                format!(
                    "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
                     {replication}{keyspace_options}"
                )
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
    let product = Product::of(session);
    for statement in schema_statements(&options.keyspace, &options.replication, product) {
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
    tracing::info!(keyspace = %options.keyspace, product = product.name(), "CQL schema in place");
    Ok(())
}

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

#[derive(DeserializeRow)]
struct SongRow {
    id: SongId,
    title: Option<String>,
    artist: Option<String>,
    duration_ms: Option<i32>,
    created_at: Option<CqlTimestamp>,
}

#[derive(DeserializeRow)]
struct UserRow {
    id: UserId,
    name: Option<String>,
    avatar_url: Option<String>,
    location: Option<String>,
}

/// A row of comments_by_song (its partition key, the song, is known). Columns
/// are optional and a row without its author is skipped: before edits were
/// conditional, an edit racing a delete could leave such a remnant, and a
/// keyspace written then may still hold some.
#[derive(DeserializeRow)]
struct PageRow {
    id: Uuid,
    track_ms: i32,
    user_id: Option<UserId>,
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

pub fn to_cql(time: DateTime<Utc>) -> CqlTimestamp {
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
