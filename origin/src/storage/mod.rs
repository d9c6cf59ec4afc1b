//! Storage behind one trait, one backend per file. Every backend passes the
//! same conformance suite (`tests/conformance.rs`) over the HTTP API.

use async_trait::async_trait;

use crate::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, NewComment, Page, Song, SongId, UserId,
};

pub mod postgres;
pub mod scylla;

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
    /// `next` is set when the page is full.
    async fn comments(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Comment>, StorageError>;

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
