//! The PostgreSQL backend: a deadpool pool of tokio-postgres connections,
//! prepared statements, schema migrations, and a short timeout on every
//! connect and query so that a database that is down answers 503 at once.

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use postgres_types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{BoxError, Mutation, PoolStatus, Storage, StorageError};
use crate::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, FeedComment, NewComment, Page, Song, SongId,
    UserId,
};

/// Schema migrations in order; each runs once, recorded in `schema_migrations`.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_schema",
    include_str!("../../migrations/0001_schema.sql"),
)];

/// Any number, the same in every instance: serialises migrations of instances
/// that start together.
const MIGRATION_LOCK: i64 = 0x5f0c_0de5;

const SONG_SQL: &str = "SELECT id, title, artist, duration_ms, created_at FROM songs WHERE id = $1";
// The song and one page of its comments in one statement, so that an empty
// page tells "no such song" (no row) from "no comments" (one row of NULLs).
// The row comparison walks comments_by_song_position from the cursor on; the
// first page passes (-1, nil) which every row follows.
const COMMENTS_SQL: &str = "SELECT c.id, c.song_id, c.user_id, c.body, c.track_ms, c.created_at, c.updated_at \
     FROM songs s \
     LEFT JOIN LATERAL ( \
         SELECT id, song_id, user_id, body, track_ms, created_at, updated_at FROM comments \
         WHERE song_id = s.id AND (track_ms, id) > ($2, $3) \
         ORDER BY track_ms, id LIMIT $4 \
     ) c ON true \
     WHERE s.id = $1 \
     ORDER BY c.track_ms, c.id";
// One round trip: the song, its first page through the covering index
// (LATERAL ... LIMIT), and each comment's author. A song without comments
// yields one row with NULL comment columns.
const FEED_SQL: &str = "SELECT s.id, s.title, s.artist, s.duration_ms, s.created_at, \
            c.id, c.user_id, c.body, c.track_ms, c.created_at, c.updated_at, u.name, u.avatar_url \
     FROM songs s \
     LEFT JOIN LATERAL ( \
         SELECT id, user_id, body, track_ms, created_at, updated_at FROM comments \
         WHERE song_id = s.id ORDER BY track_ms, id LIMIT $2 \
     ) c ON true \
     LEFT JOIN users u ON u.id = c.user_id \
     WHERE s.id = $1 \
     ORDER BY c.track_ms, c.id";
const COMMENT_SQL: &str = "SELECT id, song_id, user_id, body, track_ms, created_at, updated_at \
     FROM comments WHERE id = $1";
const INSERT_SQL: &str = "INSERT INTO comments (id, song_id, user_id, body, track_ms, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) \
     RETURNING id, song_id, user_id, body, track_ms, created_at, updated_at";
// The author check and the change are one statement, so nothing changes for a
// non-author; the second half tells "not yours" from "not there".
const UPDATE_SQL: &str = "WITH changed AS ( \
         UPDATE comments SET body = $3, updated_at = now() WHERE id = $1 AND user_id = $2 \
         RETURNING id, song_id, user_id, body, track_ms, created_at, updated_at) \
     SELECT true, id, song_id, user_id, body, track_ms, created_at, updated_at FROM changed \
     UNION ALL \
     SELECT false, id, song_id, user_id, body, track_ms, created_at, updated_at FROM comments \
     WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM changed)";
const DELETE_SQL: &str = "WITH gone AS ( \
         DELETE FROM comments WHERE id = $1 AND user_id = $2 \
         RETURNING id, song_id, user_id, body, track_ms, created_at, updated_at) \
     SELECT true, id, song_id, user_id, body, track_ms, created_at, updated_at FROM gone \
     UNION ALL \
     SELECT false, id, song_id, user_id, body, track_ms, created_at, updated_at FROM comments \
     WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM gone)";

/// Song and user ids are `bigint` columns. One read back that is not positive
/// fails the query (nothing the service writes makes one).
macro_rules! bigint_id {
    ($id:ty) => {
        impl ToSql for $id {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                self.get().to_sql(ty, out)
            }

            accepts!(INT8);
            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $id {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                Ok(Self::try_from(i64::from_sql(ty, raw)?)?)
            }

            accepts!(INT8);
        }
    };
}

bigint_id!(SongId);
bigint_id!(UserId);

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub pool_size: usize,
    /// Bounds each connect, each wait for a pooled connection and each query.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the database URL is not valid")]
    BadUrl(#[source] tokio_postgres::Error),
    #[error("could not build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("could not connect to the database")]
    Connect(#[source] tokio_postgres::Error),
    #[error("migration {0} failed")]
    Apply(&'static str, #[source] tokio_postgres::Error),
    #[error("could not record or read migrations")]
    Bookkeeping(#[source] tokio_postgres::Error),
}

pub struct PostgresStorage {
    pool: Pool,
    timeout: Duration,
}

impl PostgresStorage {
    /// Builds the pool; connections are opened on demand, so this succeeds
    /// while the database is down (requests then answer 503 until it is up).
    pub fn connect(url: &str, options: &PostgresOptions) -> Result<Self, ConnectError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(ConnectError::BadUrl)?;
        config.connect_timeout(options.timeout);
        config.application_name("origin");
        // Dropping a query that timed out does not stop it on the server, and a
        // write could commit after the client answered 503. The server gives up
        // a little sooner instead and rolls back. (The client's timeout also
        // covers the wait for a connection, so this narrows the window; the
        // handlers still invalidate after a write of unknown outcome.)
        // A statement_timeout the URL's options already set is the operator's.
        let given = config.get_options().unwrap_or_default().to_owned();
        if !given.contains("statement_timeout") {
            // At least 1 ms: 0 would mean no limit at all.
            let server_timeout = statement_timeout(options.timeout).as_millis().max(1);
            let session = format!("{given} -c statement_timeout={server_timeout}");
            config.options(session.trim_start());
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(ConnectError::Pool)?;
        Ok(Self {
            pool,
            timeout: options.timeout,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(|error| match error {
            PoolError::Timeout(_) => {
                StorageError::Unavailable("timed out waiting for a connection".into())
            }
            PoolError::Backend(error) => classify(error),
            other => StorageError::Unavailable(Box::new(other)),
        })
    }

    /// Runs one query on a pooled connection with a prepared statement, within the timeout.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let work = async {
            let client = self.client().await?;
            let statement = client.prepare_cached(sql).await.map_err(classify)?;
            client.query(&statement, params).await.map_err(classify)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StorageError::Timeout)?
    }
}

/// The server's limit on one statement: a tenth (at most 100 ms) below the
/// client's `timeout`, so that the server cancels first.
fn statement_timeout(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
}

/// Lost connections and a database that is shutting down or starting up are
/// `Unavailable` (retry soon), as are the server's answers that say a retry may
/// succeed ([`transient`]); anything else is a `Backend` error.
fn classify(error: tokio_postgres::Error) -> StorageError {
    match error.code().and_then(transient) {
        Some(Transient::Timeout) => return StorageError::Timeout,
        Some(Transient::Unavailable) => return StorageError::Unavailable(Box::new(error)),
        None => {}
    }
    let unavailable = error.is_closed()
        || std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>())
        // tokio-postgres does not expose its error kinds; these are its
        // messages for a failed connect and a connect timeout.
        || error.to_string().starts_with("error connecting")
        || error.to_string().starts_with("timeout");
    if unavailable {
        StorageError::Unavailable(Box::new(error))
    } else {
        StorageError::Backend(Box::new(error))
    }
}

/// What a server error code says about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transient {
    /// The statement ran out of time (`statement_timeout`, `lock_timeout`):
    /// the 503 the CQL backend gives a replica's read or write timeout.
    Timeout,
    /// The server cannot serve now (shutting down, starting, out of
    /// connections or memory, a standby after a failover, a lost connection)
    /// or asks for the transaction to be retried (serialization failure,
    /// deadlock): the 503 the CQL backend gives an unavailable or overloaded
    /// replica.
    Unavailable,
}

/// `None` for a code that a retry would meet again (a constraint, a syntax
/// error, a bug of ours): those stay 500.
fn transient(code: &SqlState) -> Option<Transient> {
    const UNAVAILABLE: [&SqlState; 18] = [
        // Class 08: connection exception.
        &SqlState::CONNECTION_EXCEPTION,
        // The connection was lost during COMMIT: the outcome is unknown.
        &SqlState::TRANSACTION_RESOLUTION_UNKNOWN,
        &SqlState::CONNECTION_DOES_NOT_EXIST,
        &SqlState::CONNECTION_FAILURE,
        &SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        &SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
        // A standby (say, the old primary after a failover) refuses writes.
        &SqlState::READ_ONLY_SQL_TRANSACTION,
        // Class 40: the transaction may succeed when retried.
        &SqlState::T_R_SERIALIZATION_FAILURE,
        &SqlState::T_R_DEADLOCK_DETECTED,
        &SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN,
        // Class 53: insufficient resources.
        // (Not DISK_FULL: it needs an operator, and a 503 with Retry-After would
        // invite retries that cannot succeed; it stays a 500.)
        &SqlState::INSUFFICIENT_RESOURCES,
        &SqlState::OUT_OF_MEMORY,
        &SqlState::TOO_MANY_CONNECTIONS,
        &SqlState::CONFIGURATION_LIMIT_EXCEEDED,
        // Class 57: operator intervention.
        &SqlState::ADMIN_SHUTDOWN,
        &SqlState::CRASH_SHUTDOWN,
        &SqlState::CANNOT_CONNECT_NOW,
        &SqlState::IDLE_SESSION_TIMEOUT,
    ];
    if [&SqlState::QUERY_CANCELED, &SqlState::LOCK_NOT_AVAILABLE].contains(&code) {
        Some(Transient::Timeout)
    } else if UNAVAILABLE.contains(&code) {
        Some(Transient::Unavailable)
    } else {
        None
    }
}

fn song_from(row: &Row, at: usize) -> Song {
    Song {
        id: row.get(at),
        title: row.get(at + 1),
        artist: row.get(at + 2),
        duration_ms: row.get(at + 3),
        created_at: row.get(at + 4),
    }
}

fn comment_from(row: &Row, at: usize) -> Comment {
    Comment {
        id: row.get(at),
        song_id: row.get(at + 1),
        user_id: row.get(at + 2),
        body: row.get(at + 3),
        track_ms: row.get(at + 4),
        created_at: row.get(at + 5),
        updated_at: row.get(at + 6),
    }
}

fn page_of<T>(items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
    let next = if items.len() == limit as usize {
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next }
}

/// A mutation result from UPDATE_SQL/DELETE_SQL: (changed?, comment columns).
///
/// An unchanged row comes from the statement's snapshot. When its author is
/// the caller, the row was deleted by a concurrent statement while this one
/// waited for its lock (say, a DELETE that a proxy retried racing its own
/// first attempt): it is not found, not forbidden.
fn mutation_from(rows: &[Row], author: UserId) -> Mutation<Comment> {
    match rows.first() {
        None => Mutation::NotFound,
        Some(row) if row.get::<_, bool>(0) => Mutation::Done(comment_from(row, 1)),
        Some(row) if comment_from(row, 1).user_id == author => Mutation::NotFound,
        Some(_) => Mutation::Forbidden,
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    async fn song(&self, id: SongId) -> Result<Option<Song>, StorageError> {
        let rows = self.query(SONG_SQL, &[&id]).await?;
        Ok(rows.first().map(|row| song_from(row, 0)))
    }

    async fn comments(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<Page<Comment>>, StorageError> {
        let (after_ms, after_id) = after.map_or((-1, Uuid::nil()), |c| (c.track_ms, c.id));
        let rows = self
            .query(
                COMMENTS_SQL,
                &[&song, &after_ms, &after_id, &i64::from(limit)],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let items = rows
            .iter()
            .filter(|row| row.get::<_, Option<Uuid>>(0).is_some())
            .map(|row| comment_from(row, 0))
            .collect();
        Ok(Some(page_of(items, limit, Comment::cursor)))
    }

    async fn feed(&self, song: SongId, limit: u32) -> Result<Option<Feed>, StorageError> {
        let rows = self.query(FEED_SQL, &[&song, &i64::from(limit)]).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let song = song_from(first, 0);
        let items = rows
            .iter()
            .filter(|row| row.get::<_, Option<Uuid>>(5).is_some())
            .map(|row| FeedComment {
                comment: Comment {
                    id: row.get(5),
                    song_id: song.id,
                    user_id: row.get(6),
                    body: row.get(7),
                    track_ms: row.get(8),
                    created_at: row.get(9),
                    updated_at: row.get(10),
                },
                author_name: row.get(11),
                author_avatar_url: row.get(12),
            })
            .collect();
        Ok(Some(Feed {
            song,
            comments: page_of(items, limit, |c: &FeedComment| c.comment.cursor()),
        }))
    }

    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StorageError> {
        let rows = self.query(COMMENT_SQL, &[&id]).await?;
        Ok(rows.first().map(|row| comment_from(row, 0)))
    }

    async fn insert_comment(&self, comment: NewComment) -> Result<Comment, StorageError> {
        let result = self
            .query(
                INSERT_SQL,
                &[
                    &comment.id,
                    &comment.song_id,
                    &comment.user_id,
                    &comment.body.as_str(),
                    &comment.track_ms,
                    &comment.created_at,
                ],
            )
            .await;
        match result {
            Ok(rows) => rows
                .first()
                .map(|row| comment_from(row, 0))
                .ok_or_else(|| StorageError::Backend("INSERT returned no row".into())),
            Err(StorageError::Backend(error)) if is_user_foreign_key_violation(error.as_ref()) => {
                Err(StorageError::UnknownUser(comment.user_id))
            }
            Err(error) => Err(error),
        }
    }

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError> {
        let rows = self
            .query(UPDATE_SQL, &[&id, &author, &body.as_str()])
            .await?;
        Ok(mutation_from(&rows, author))
    }

    async fn delete_comment(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Comment>, StorageError> {
        let rows = self.query(DELETE_SQL, &[&id, &author]).await?;
        Ok(mutation_from(&rows, author))
    }

    fn product(&self) -> &'static str {
        "PostgreSQL"
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }
}

fn is_user_foreign_key_violation(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|error| error.as_db_error())
        .is_some_and(|db| {
            db.code() == &SqlState::FOREIGN_KEY_VIOLATION
                && db.constraint() == Some("comments_user_id_fkey")
        })
}

/// Applies the migrations not yet applied, under an advisory lock so that
/// instances starting together do not race. Returns the names applied now.
pub async fn migrate(url: &str) -> Result<Vec<&'static str>, MigrateError> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(MigrateError::Connect)?;
    let connection = tokio::spawn(connection);
    let applied = migrate_with(&mut client).await;
    drop(client);
    let _ = connection.await;
    applied
}

/// [`migrate`] on a connection the caller already has (the seeder uses this).
pub async fn migrate_with(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<&'static str>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(MigrateError::Bookkeeping)?;
    let result = apply_pending(client).await;
    // The lock is per session; unlocking explicitly lets a pooled session go on.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply_pending(
    client: &mut tokio_postgres::Client,
) -> Result<Vec<&'static str>, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ( \
                 name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(MigrateError::Bookkeeping)?;
    let done: Vec<String> = client
        .query("SELECT name FROM schema_migrations", &[])
        .await
        .map_err(MigrateError::Bookkeeping)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for &(name, sql) in MIGRATIONS {
        if done.iter().any(|d| d == name) {
            continue;
        }
        let transaction = client
            .transaction()
            .await
            .map_err(MigrateError::Bookkeeping)?;
        transaction
            .batch_execute(sql)
            .await
            .map_err(|e| MigrateError::Apply(name, e))?;
        transaction
            .execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[&name])
            .await
            .map_err(MigrateError::Bookkeeping)?;
        transaction
            .commit()
            .await
            .map_err(MigrateError::Bookkeeping)?;
        tracing::info!(migration = name, "applied");
        applied.push(name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_a_retry_may_clear_are_503_and_the_rest_500() {
        for code in [
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::OUT_OF_MEMORY,
            SqlState::TRANSACTION_RESOLUTION_UNKNOWN,
            SqlState::CONFIGURATION_LIMIT_EXCEEDED,
        ] {
            assert_eq!(transient(&code), Some(Transient::Unavailable), "{code:?}");
        }
        for code in [SqlState::QUERY_CANCELED, SqlState::LOCK_NOT_AVAILABLE] {
            assert_eq!(transient(&code), Some(Transient::Timeout), "{code:?}");
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_TABLE,
            SqlState::DIVISION_BY_ZERO,
            // Needs an operator: retrying soon cannot clear it.
            SqlState::DISK_FULL,
        ] {
            assert_eq!(transient(&code), None, "{code:?}");
        }
    }
}
