//! Cache-aside in Redis for the reads (song, comment, comments page, feed),
//! holding the serialised response bodies.
//!
//! - Invalidation by generation: pages and feeds of a song are keyed by the
//!   song's generation (`o:gen:{song}`), so one INCR on a write makes every page
//!   of that song unreachable at once. The page lookup reads the generation and
//!   the page in one round trip (a Lua script). A read stores what it loaded
//!   under the generation it read *before* loading, so a load that raced a
//!   write lands under a generation nobody reads any more, and a read after
//!   the write does not join that load (the flight's key has the generation).
//! - Single comments follow their song's generation the same way, which a
//!   DEL of the comment's key could not do (a racing load would SET it again
//!   after the DEL). The comment's path does not name its song, so Redis keeps
//!   which song a comment is on (`o:comment-song:{uuid}`, which never changes).
//!   Without it (a comment not read yet, or the key evicted) the read loads
//!   the comment, learns its song and stores only that: with no generation
//!   read before the load, its body cannot be stored safely.
//! - Single flight: concurrent misses for one key share one database read, run
//!   in its own task so a cancelled request does not cancel the others.
//! - Redis down or slow: every command has a short timeout; after a failure
//!   Redis is skipped for a moment (reads go to the database, no errors), and
//!   invalidations that could not be sent are retried before Redis is read
//!   again, so this instance never reads a page its own write made stale;
//!   other instances may, until the invalidation reaches Redis (retried in
//!   the background, [`Cache::keep_flushing`]).
//!
//! Key format (documented for operators and the other backends):
//! `o:song:{id}`, `o:gen:{song}` (no TTL), `o:comment-song:{uuid}`,
//! `o:comment:{uuid}:{song}:{gen}`, `o:comments:{song}:{gen}:{limit}:{cursor|-}`,
//! `o:feed:{song}:{gen}:{limit}`.
//! Generation keys have no TTL, so run Redis with a `volatile-*` eviction
//! policy (or none): evicting a generation would resurrect old pages. Every
//! other key has a TTL and may be evicted at no cost but a miss.

use std::collections::HashMap;
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

/// The first and the longest wait of [`Cache::keep_flushing`] between two
/// attempts to send owed invalidations (doubling from the one to the other).
const FLUSH_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Short: other instances serve what an owed invalidation hides until it is sent.
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(1);

/// How long Redis remembers a comment's song. Any TTL is correct (the song
/// never changes); a long one spares the uncached read that relearns it.
const COMMENT_SONG_TTL: Duration = Duration::from_secs(24 * 60 * 60);

const PAGE_SCRIPT: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
";

/// KEYS[1] the comment's song key, ARGV[1] `o:gen:`, ARGV[2] `o:comment:{uuid}:`.
/// Answers {} (song unknown), {song, generation} (a miss) or {song, generation, body}.
const COMMENT_SCRIPT: &str = r"
local song = redis.call('GET', KEYS[1])
if not song then return {} end
local generation = redis.call('GET', ARGV[1] .. song) or '0'
local body = redis.call('GET', ARGV[2] .. song .. ':' .. generation)
if body then return {song, generation, body} end
return {song, generation}
";

/// What a read is for; decides the Redis key. A single comment is not one:
/// its keys differ ([`Cache::fetch_comment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKey {
    Song(SongId),
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
            Self::Song(_) => None,
        }
    }

    fn plain(&self) -> String {
        match self {
            Self::Song(id) => format!("o:song:{id}"),
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

fn comment_song_key(comment: CommentId) -> String {
    format!("o:comment-song:{comment}")
}

/// The key of a comment's body under its song's generation.
fn comment_key(comment: CommentId, song: &str, generation: &str) -> String {
    format!("o:comment:{comment}:{song}:{generation}")
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
    comment_script: Arc<redis::Script>,
    /// Milliseconds since `epoch` before which Redis is not tried.
    skip_until_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// Writes whose invalidation did not reach Redis yet.
    owed: Arc<Mutex<Owed>>,
    /// Told when something is owed, to wake [`Cache::keep_flushing`].
    owing: Arc<tokio::sync::Notify>,
}

/// The invalidations (generations to INCR) owed to Redis, each with the mark
/// of the latest write that owed it.
///
/// A flush sends a snapshot and then settles only the entries whose mark did
/// not change meanwhile: a write that owes the same song again while the
/// pipeline is in flight (its database write may have landed after that INCR
/// ran) keeps its entry, so its own flush still sends one. An entry stays
/// owed until a flush that began after it succeeds, so readers keep skipping
/// Redis until then.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Owed {
    last_mark: u64,
    songs: HashMap<SongId, u64>,
}

impl Owed {
    fn owe(&mut self, song: SongId) {
        self.last_mark += 1;
        self.songs.insert(song, self.last_mark);
    }

    fn is_empty(&self) -> bool {
        self.songs.is_empty()
    }

    /// Forgets what `sent` held, unless it was owed again since.
    fn settle(&mut self, sent: &Owed) {
        self.songs
            .retain(|song, mark| sent.songs.get(song) != Some(mark));
    }
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
    /// Writes this instance has made, counted as each is invalidated: the keys of
    /// loads that Redis does not see carry the count, so a read that starts after a
    /// write never joins a load that began before it (a stored load has the
    /// generation in its key for the same reason).
    writes: AtomicU64,
}

impl Cache {
    /// No Redis: every read goes to the database (still single-flighted).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            redis: None,
            flights: Arc::default(),
            metrics,
            writes: AtomicU64::new(0),
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
                comment_script: Arc::new(redis::Script::new(COMMENT_SCRIPT)),
                skip_until_ms: Arc::default(),
                epoch: Instant::now(),
                owed: Arc::default(),
                owing: Arc::default(),
            }),
            flights: Arc::default(),
            metrics,
            writes: AtomicU64::new(0),
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
            return self.bypass(kind, key.plain(), load).await;
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
                self.bypass(kind, key.plain(), load).await
            }
        }
    }

    /// The cached body of comment `id`, or `load`'s, which also tells the
    /// comment's song; see the module's header for the keys.
    pub async fn fetch_comment<F, Fut>(&self, id: CommentId, load: F) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(SongId, Bytes)>, StorageError>> + Send + 'static,
    {
        let kind = "comment";
        // The flight's key when Redis is not read (nothing is stored then).
        let plain = format!("o:comment:{id}");
        let Some(redis) = self.usable_redis().await else {
            return self.bypass(kind, plain, body_of(load)).await;
        };
        let mut connection = redis.connection.clone();
        let mut invocation = redis.comment_script.key(comment_song_key(id));
        invocation.arg("o:gen:").arg(format!("o:comment:{id}:"));
        let lookup = redis
            .within(invocation.invoke_async::<Vec<Vec<u8>>>(&mut connection))
            .await;
        let found = match lookup {
            Ok(found) => found,
            Err(error) => {
                self.redis_failed(redis, &error);
                return self.bypass(kind, plain, body_of(load)).await;
            }
        };
        let mut found = found.into_iter();
        match (found.next(), found.next(), found.next()) {
            (Some(_), Some(_), Some(body)) => {
                self.metrics.cache(kind, CacheOutcome::Hit);
                Ok(Some(Bytes::from(body)))
            }
            (Some(song), Some(generation), None) => {
                self.metrics.cache(kind, CacheOutcome::Miss);
                let key = comment_key(
                    id,
                    &String::from_utf8_lossy(&song),
                    &String::from_utf8_lossy(&generation),
                );
                self.single_flight(key, Some(redis.clone()), body_of(load))
                    .await
            }
            _ => {
                // Not single-flighted: a flight's key would carry no
                // generation, and a read after a write could join a load
                // that began before it.
                self.metrics.cache(kind, CacheOutcome::Miss);
                let Some((song, body)) = load().await.map_err(Arc::new)? else {
                    return Ok(None);
                };
                let song = song.get().to_string();
                redis
                    .set_ex(
                        &comment_song_key(id),
                        song.as_bytes(),
                        COMMENT_SONG_TTL.as_secs(),
                    )
                    .await;
                Ok(Some(body))
            }
        }
    }

    /// The song of comment `id` if Redis knows it (the comment was read
    /// lately); `None` when it does not or cannot answer.
    pub async fn song_of_comment(&self, id: CommentId) -> Option<SongId> {
        let redis = self.usable_redis().await?;
        let mut connection = redis.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(comment_song_key(id));
        let song = redis
            .within(command.query_async::<Option<i64>>(&mut connection))
            .await
            .ok()??;
        SongId::new(song)
    }

    /// Makes every cached page and feed of `song`, and every cached comment
    /// on it, unreachable. Must run after the write is durable and before it is
    /// acknowledged, so the writer reads their own write.
    pub async fn invalidate(&self, song: SongId) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let Some(redis) = &self.redis else { return };
        redis.owed.lock().expect("owed lock").owe(song);
        if let Err(error) = redis.flush_pending().await {
            self.metrics.invalidation_failure();
            self.redis_failed(redis, &error);
            redis.owing.notify_one();
        }
    }

    /// Sends owed invalidations until `stop`, retrying with a bounded backoff
    /// while any are owed. Without it they would wait for this instance's next
    /// request, while other instances serve the stale pages from Redis.
    pub async fn keep_flushing(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(redis) = &self.redis else { return };
        let mut wait = FLUSH_RETRY_FIRST;
        loop {
            if !redis.has_pending() {
                wait = FLUSH_RETRY_FIRST;
                tokio::select! {
                    () = redis.owing.notified() => continue,
                    () = stop.cancelled() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            match redis.flush_pending().await {
                Ok(()) => wait = FLUSH_RETRY_FIRST,
                Err(error) => {
                    self.redis_failed(redis, &error);
                    wait = (wait * 2).min(FLUSH_RETRY_MAX);
                }
            }
        }
    }

    /// One last attempt to send what is owed (at shutdown); says what is lost.
    pub async fn flush_owed(&self) {
        let Some(redis) = &self.redis else { return };
        if let Err(error) = redis.flush_pending().await {
            let songs = redis.owed.lock().expect("owed lock").songs.len();
            tracing::warn!(
                %error,
                songs,
                "invalidations not sent at shutdown: those songs' cached pages may be stale until their TTL"
            );
        }
    }

    /// The flight key of a load that is not stored: `key` with the count of this
    /// instance's writes so far ([`Cache::writes`]).
    /// A read that does not go through Redis (none configured, none usable, or a
    /// lookup that failed): counted as a bypass where Redis is configured, loaded
    /// in a flight of its own that stores nothing.
    async fn bypass<F, Fut>(&self, kind: &'static str, plain: String, load: F) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, StorageError>> + Send + 'static,
    {
        if self.redis.is_some() {
            self.metrics.cache(kind, CacheOutcome::Bypass);
        }
        self.single_flight(self.unstored(plain), None, load).await
    }

    fn unstored(&self, key: String) -> String {
        format!("{key}#w{}", self.writes.load(Ordering::SeqCst))
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
                        redis.set_ex(&task_key, body, redis.ttl_secs).await;
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

/// A comment loader's answer without the song, as the single flight takes it.
fn body_of<F, Fut>(
    load: F,
) -> impl FnOnce() -> BoxFuture<'static, Result<Option<Bytes>, StorageError>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<(SongId, Bytes)>, StorageError>> + Send + 'static,
{
    move || {
        let loading = load();
        async move { Ok(loading.await?.map(|(_, body)| body)) }.boxed()
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

    /// Stores `value` under `key` for `ttl_secs`; a failure only costs a later
    /// miss, so it is logged and not returned.
    async fn set_ex(&self, key: &str, value: &[u8], ttl_secs: u64) {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value).arg("EX").arg(ttl_secs);
        if let Err(error) = self
            .within(command.query_async::<()>(&mut connection))
            .await
        {
            tracing::debug!(%error, key, "could not store in redis");
        }
    }

    fn has_pending(&self) -> bool {
        !self.owed.lock().expect("owed lock").is_empty()
    }

    /// Sends every owed invalidation in one pipeline; they stay owed on
    /// failure, and those owed again meanwhile stay owed on success ([`Owed`]).
    async fn flush_pending(&self) -> redis::RedisResult<()> {
        let sent = self.owed.lock().expect("owed lock").clone();
        if sent.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for song in sent.songs.keys() {
            pipeline.cmd("INCR").arg(generation_key(*song)).ignore();
        }
        let mut connection = self.connection.clone();
        self.within(pipeline.query_async::<()>(&mut connection))
            .await?;
        self.owed.lock().expect("owed lock").settle(&sent);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race of a flush copying the owed set and then removing what it
    /// copied: a write owing the same song while the pipeline is in flight
    /// must stay owed after that pipeline succeeds.
    #[test]
    fn what_is_owed_again_during_a_flush_stays_owed() {
        let (seven, eight) = (SongId::new(7).unwrap(), SongId::new(8).unwrap());
        let mut owed = Owed::default();
        owed.owe(seven);
        owed.owe(eight);
        let sent = owed.clone();
        owed.owe(seven);
        owed.settle(&sent);
        assert_eq!(owed.songs.keys().collect::<Vec<_>>(), [&seven]);
        let sent = owed.clone();
        owed.settle(&sent);
        assert!(owed.is_empty());
    }

    #[test]
    fn keys_have_the_documented_format() {
        let id = uuid::Uuid::nil();
        let seven = SongId::new(7).unwrap();
        assert_eq!(CacheKey::Song(seven).plain(), "o:song:7");
        assert_eq!(comment_song_key(id), format!("o:comment-song:{id}"));
        assert_eq!(comment_key(id, "7", "3"), format!("o:comment:{id}:7:3"));
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
