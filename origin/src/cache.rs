//! Cache-aside in Redis for the reads (song, comment, comments page, feed),
//! holding the serialised response bodies.
//!
//! - Invalidation by generation: pages and feeds of a song are keyed by the
//!   song's generation (`o:gen:{song}`), so one INCR on a write makes every page
//!   of that song unreachable at once. The page lookup reads the generation and
//!   the page in one round trip (a Lua script).
//! - Single flight: concurrent misses for one key share one database read, run
//!   in its own task so a cancelled request does not cancel the others.
//! - Redis down or slow: every command has a short timeout; after a failure
//!   Redis is skipped for a moment (reads go to the database, no errors), and
//!   invalidations that could not be sent are retried before Redis is read
//!   again, so nobody reads a page a write made stale.
//!
//! Key format (documented for operators and the other backends):
//! `o:song:{id}`, `o:comment:{uuid}`, `o:gen:{song}` (no TTL),
//! `o:comments:{song}:{gen}:{limit}:{cursor|-}`, `o:feed:{song}:{gen}:{limit}`.
//! Generation keys have no TTL, so run Redis with a `volatile-*` eviction
//! policy (or none): evicting a generation would resurrect old pages.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use redis::aio::ConnectionManager;

use crate::domain::{CommentId, Cursor, SongId};
use crate::metrics::{CacheOutcome, Metrics};
use crate::storage::StorageError;

/// How long Redis is left alone after it failed, before it is tried again.
const REDIS_BACKOFF: Duration = Duration::from_millis(500);

const PAGE_SCRIPT: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
";

/// What a read is for; decides the Redis key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKey {
    Song(SongId),
    Comment(CommentId),
    CommentsPage {
        song: SongId,
        limit: u32,
        after: Option<Cursor>,
    },
    Feed {
        song: SongId,
        limit: u32,
    },
}

impl CacheKey {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Song(_) => "song",
            Self::Comment(_) => "comment",
            Self::CommentsPage { .. } => "comments",
            Self::Feed { .. } => "feed",
        }
    }

    /// For keys that follow a song's generation: (generation key, prefix, suffix).
    fn generational(&self) -> Option<(String, String, String)> {
        match self {
            Self::CommentsPage { song, limit, after } => Some((
                generation_key(*song),
                format!("o:comments:{song}:"),
                format!(
                    ":{limit}:{}",
                    after.map_or_else(|| "-".to_string(), |c| c.encode())
                ),
            )),
            Self::Feed { song, limit } => Some((
                generation_key(*song),
                format!("o:feed:{song}:"),
                format!(":{limit}"),
            )),
            Self::Song(_) | Self::Comment(_) => None,
        }
    }

    fn plain(&self) -> String {
        match self {
            Self::Song(id) => format!("o:song:{id}"),
            Self::Comment(id) => format!("o:comment:{id}"),
            Self::CommentsPage { .. } | Self::Feed { .. } => {
                let (_, prefix, suffix) = self.generational().expect("generational key");
                format!("{prefix}-{suffix}")
            }
        }
    }
}

pub fn generation_key(song: SongId) -> String {
    format!("o:gen:{song}")
}

/// A database read's result as the single flight shares it.
pub type Loaded = Result<Option<Bytes>, Arc<StorageError>>;

type Flight = Shared<BoxFuture<'static, Loaded>>;

#[derive(Clone)]
struct Redis {
    connection: ConnectionManager,
    timeout: Duration,
    ttl_secs: u64,
    page_script: Arc<redis::Script>,
    /// Milliseconds since `epoch` before which Redis is not tried.
    skip_until_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// Writes whose invalidation did not reach Redis yet.
    pending_songs: Arc<Mutex<HashSet<SongId>>>,
    pending_comments: Arc<Mutex<HashSet<CommentId>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the Redis URL is not valid")]
    BadUrl(#[source] redis::RedisError),
    #[error("could not set up the Redis connection")]
    Connect(#[source] redis::RedisError),
}

pub struct Cache {
    redis: Option<Redis>,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    /// No Redis: every read goes to the database (still single-flighted).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            redis: None,
            flights: Arc::default(),
            metrics,
        }
    }

    /// Connects lazily: Redis may be down now and come up later.
    pub fn redis(
        url: &str,
        timeout: Duration,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(CacheError::BadUrl)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(CacheError::Connect)?;
        Ok(Self {
            redis: Some(Redis {
                connection,
                timeout,
                ttl_secs: ttl.as_secs().max(1),
                page_script: Arc::new(redis::Script::new(PAGE_SCRIPT)),
                skip_until_ms: Arc::default(),
                epoch: Instant::now(),
                pending_songs: Arc::default(),
                pending_comments: Arc::default(),
            }),
            flights: Arc::default(),
            metrics,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.redis.is_some()
    }

    /// The cached body for `key`, or `load`'s (stored in Redis when it is some).
    /// `load` runs at most once at a time per key in this process.
    pub async fn fetch<F, Fut>(&self, key: CacheKey, load: F) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, StorageError>> + Send + 'static,
    {
        let kind = key.kind();
        let Some(redis) = self.usable_redis().await else {
            if self.redis.is_some() {
                self.metrics.cache(kind, CacheOutcome::Bypass);
            }
            return self.single_flight(key.plain(), None, load).await;
        };
        let mut connection = redis.connection.clone();
        let lookup = match key.generational() {
            Some((generation_key, prefix, suffix)) => {
                let mut invocation = redis.page_script.key(&generation_key);
                invocation.arg(&prefix).arg(&suffix);
                let exchange =
                    invocation.invoke_async::<(String, Option<Vec<u8>>)>(&mut connection);
                redis
                    .within(exchange)
                    .await
                    .map(|(generation, value)| (format!("{prefix}{generation}{suffix}"), value))
            }
            None => {
                let plain = key.plain();
                let mut command = redis::cmd("GET");
                command.arg(&plain);
                let exchange = command.query_async::<Option<Vec<u8>>>(&mut connection);
                redis
                    .within(exchange)
                    .await
                    .map(|value| (plain.clone(), value))
            }
        };
        match lookup {
            Ok((_, Some(value))) => {
                self.metrics.cache(kind, CacheOutcome::Hit);
                Ok(Some(Bytes::from(value)))
            }
            Ok((full_key, None)) => {
                self.metrics.cache(kind, CacheOutcome::Miss);
                self.single_flight(full_key, Some(redis.clone()), load)
                    .await
            }
            Err(error) => {
                self.redis_failed(redis, &error);
                self.metrics.cache(kind, CacheOutcome::Bypass);
                self.single_flight(key.plain(), None, load).await
            }
        }
    }

    /// Makes every cached page and feed of `song` (and the comment, if given)
    /// unreachable. Must run after the write is durable and before it is
    /// acknowledged, so the writer reads their own write.
    pub async fn invalidate(&self, song: SongId, comment: Option<CommentId>) {
        let Some(redis) = &self.redis else { return };
        redis
            .pending_songs
            .lock()
            .expect("pending lock")
            .insert(song);
        if let Some(comment) = comment {
            redis
                .pending_comments
                .lock()
                .expect("pending lock")
                .insert(comment);
        }
        if let Err(error) = redis.flush_pending().await {
            self.metrics.invalidation_failure();
            self.redis_failed(redis, &error);
        }
    }

    /// Redis, unless it failed a moment ago or has invalidations it still owes.
    async fn usable_redis(&self) -> Option<&Redis> {
        let redis = self.redis.as_ref()?;
        let now_ms = redis.epoch.elapsed().as_millis() as u64;
        if now_ms < redis.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        if redis.has_pending()
            && let Err(error) = redis.flush_pending().await
        {
            self.redis_failed(redis, &error);
            return None;
        }
        Some(redis)
    }

    fn redis_failed(&self, redis: &Redis, error: &redis::RedisError) {
        self.metrics.cache_error();
        let until = redis.epoch.elapsed() + REDIS_BACKOFF;
        redis
            .skip_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        tracing::debug!(%error, "redis failed; reading from the database for a moment");
    }

    async fn single_flight<F, Fut>(&self, key: String, store_in: Option<Redis>, load: F) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, StorageError>> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().expect("flights lock");
            if let Some(flight) = flights.get(&key) {
                self.metrics.coalesced_load();
                flight.clone()
            } else {
                let loading = load();
                let flights_map = Arc::clone(&self.flights);
                let task_key = key.clone();
                // The removal below waits for this lock, so it cannot run before
                // the flight is inserted.
                let task = tokio::spawn(async move {
                    let loaded = loading.await.map_err(Arc::new);
                    if let (Ok(Some(body)), Some(redis)) = (&loaded, store_in) {
                        let mut connection = redis.connection.clone();
                        let mut command = redis::cmd("SET");
                        command
                            .arg(&task_key)
                            .arg(body.as_ref())
                            .arg("EX")
                            .arg(redis.ttl_secs);
                        let exchange = command.query_async::<()>(&mut connection);
                        let stored = redis.within(exchange).await;
                        if let Err(error) = stored {
                            tracing::debug!(%error, "could not store in redis");
                        }
                    }
                    flights_map.lock().expect("flights lock").remove(&task_key);
                    loaded
                });
                let flight = async move {
                    task.await.unwrap_or_else(|join_error| {
                        Err(Arc::new(StorageError::Backend(Box::new(join_error))))
                    })
                }
                .boxed()
                .shared();
                flights.insert(key, flight.clone());
                flight
            }
        };
        flight.await
    }
}

impl Redis {
    /// Waits for one Redis exchange within the timeout; a timeout is an error.
    async fn within<T>(
        &self,
        exchange: impl Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis did not answer in time",
            ))),
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending_songs.lock().expect("pending lock").is_empty()
            || !self
                .pending_comments
                .lock()
                .expect("pending lock")
                .is_empty()
    }

    /// Sends every owed invalidation in one pipeline; they stay owed on failure.
    async fn flush_pending(&self) -> redis::RedisResult<()> {
        let songs: Vec<SongId> = self
            .pending_songs
            .lock()
            .expect("pending lock")
            .iter()
            .copied()
            .collect();
        let comments: Vec<CommentId> = self
            .pending_comments
            .lock()
            .expect("pending lock")
            .iter()
            .copied()
            .collect();
        if songs.is_empty() && comments.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for song in &songs {
            pipeline.cmd("INCR").arg(generation_key(*song)).ignore();
        }
        for comment in &comments {
            pipeline
                .cmd("DEL")
                .arg(CacheKey::Comment(*comment).plain())
                .ignore();
        }
        let mut connection = self.connection.clone();
        self.within(pipeline.query_async::<()>(&mut connection))
            .await?;
        let mut pending_songs = self.pending_songs.lock().expect("pending lock");
        for song in &songs {
            pending_songs.remove(song);
        }
        drop(pending_songs);
        let mut pending_comments = self.pending_comments.lock().expect("pending lock");
        for comment in &comments {
            pending_comments.remove(comment);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_format() {
        let id = uuid::Uuid::nil();
        let seven = SongId::new(7).unwrap();
        assert_eq!(CacheKey::Song(seven).plain(), "o:song:7");
        assert_eq!(CacheKey::Comment(id).plain(), format!("o:comment:{id}"));
        let (generation, prefix, suffix) = CacheKey::CommentsPage {
            song: seven,
            limit: 50,
            after: None,
        }
        .generational()
        .unwrap();
        assert_eq!(
            (generation.as_str(), prefix.as_str(), suffix.as_str()),
            ("o:gen:7", "o:comments:7:", ":50:-")
        );
        let cursor = Cursor { track_ms: 5, id };
        let (_, _, suffix) = CacheKey::CommentsPage {
            song: seven,
            limit: 10,
            after: Some(cursor),
        }
        .generational()
        .unwrap();
        assert_eq!(suffix, format!(":10:{}", cursor.encode()));
        assert_eq!(
            CacheKey::Feed {
                song: seven,
                limit: 50
            }
            .plain(),
            "o:feed:7:-:50"
        );
    }
}
