//! Storage behind one trait, one backend per module. Every backend passes the
//! same conformance suite (`tests/conformance/`) over the HTTP API.
//! [`open`] is the one place that turns a chosen [`Database`] into a backend.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, NewComment, Page, Song, SongId, UserId,
};

pub mod postgres;
pub mod scylla;

/// A database to run on, with where it is and how to talk to it.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres {
        url: String,
        options: postgres::PostgresOptions,
    },
    Scylla(scylla::ScyllaOptions),
}

/// What [`open`] does about the schema before it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply whatever migrations are missing (the server does this on start).
    Migrate,
    /// Use the schema as it is (tools reading a loaded data set).
    AsIs,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not migrate the PostgreSQL database")]
    Migrate(#[source] postgres::MigrateError),
    #[error("could not set up the PostgreSQL connection pool")]
    Pool(#[source] postgres::ConnectError),
    #[error("could not set up ScyllaDB")]
    Scylla(#[source] scylla::ScyllaError),
}

/// The backend for `database`: the one place where the choice of database is made.
pub async fn open(database: &Database, schema: Schema) -> Result<Arc<dyn Storage>, OpenError> {
    let storage: Arc<dyn Storage> = match database {
        Database::Postgres { url, options } => {
            if schema == Schema::Migrate {
                migrate(database).await?;
            }
            Arc::new(postgres::PostgresStorage::connect(url, options).map_err(OpenError::Pool)?)
        }
        Database::Scylla(options) => {
            let session = scylla::session(options).await.map_err(OpenError::Scylla)?;
            if schema == Schema::Migrate {
                scylla::migrate(&session, options)
                    .await
                    .map_err(OpenError::Scylla)?;
            }
            Arc::new(
                scylla::ScyllaStorage::with_session(session, &options.keyspace)
                    .await
                    .map_err(OpenError::Scylla)?,
            )
        }
    };
    Ok(storage)
}

/// Applies the schema changes `database` lacks (`origin migrate`; safe to repeat).
pub async fn migrate(database: &Database) -> Result<(), OpenError> {
    match database {
        Database::Postgres { url, .. } => {
            let applied = postgres::migrate(url).await.map_err(OpenError::Migrate)?;
            tracing::info!(?applied, "PostgreSQL migrations applied");
        }
        Database::Scylla(options) => {
            let session = scylla::session(options).await.map_err(OpenError::Scylla)?;
            scylla::migrate(&session, options)
                .await
                .map_err(OpenError::Scylla)?;
        }
    }
    Ok(())
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong below the API. Callers map these to status codes in one place:
/// `Unavailable` and `Timeout` become 503 with `Retry-After`, `Backend` 500.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No connection could be had (database down, restarting, pool exhausted).
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The database did not answer within the configured time.
    #[error("database did not answer in time")]
    Timeout,
    /// The database answered with an error we did not expect.
    #[error("database error")]
    Backend(#[source] BoxError),
    /// A write named a user that does not exist (a token for an unknown user).
    /// Backends without foreign keys may store the write instead.
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
}

impl StorageError {
    /// Whether a write that failed this way may have been applied all the
    /// same: the database may have committed before its answer was lost or
    /// came too late. (`Unavailable` also covers a write never sent, which
    /// cannot be told apart from one whose connection broke.)
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unavailable(_))
    }
}

/// The outcome of an edit or delete, which only the author may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation<T> {
    Done(T),
    NotFound,
    /// The comment exists but belongs to someone else. Nothing was changed.
    Forbidden,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Answers when the database does (for `/readyz`).
    async fn ping(&self) -> Result<(), StorageError>;

    async fn song(&self, id: SongId) -> Result<Option<Song>, StorageError>;

    /// Comments of a song in (track_ms, id) order, strictly after `after`.
    /// `next` is set when the page is full. `None` when the song does not
    /// exist, told apart from an empty page without a second round trip.
    async fn comments(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<Page<Comment>>, StorageError>;

    /// The song and its first `limit` comments with their authors, in one round
    /// trip where the backend allows it. `None` when the song does not exist.
    async fn feed(&self, song: SongId, limit: u32) -> Result<Option<Feed>, StorageError>;

    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StorageError>;

    /// Stores a new comment. The caller has checked that the song exists and the
    /// position is within it. Returns once the write is durable.
    async fn insert_comment(&self, comment: NewComment) -> Result<Comment, StorageError>;

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError>;

    /// Deletes a comment; `Done` carries what was deleted (the cache needs its song).
    async fn delete_comment(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Comment>, StorageError>;

    /// The database product behind the backend, as reports name it:
    /// "PostgreSQL", "Cassandra" or "ScyllaDB".
    fn product(&self) -> &'static str;

    /// Connection pool figures for `/metrics`, where the backend has a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// A snapshot of a connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Connections open now (idle plus in use).
    pub size: usize,
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}
