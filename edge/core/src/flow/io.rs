//! The few calls the caching flow makes to its platform: the record store, one
//! attempt at one origin, the clock, background work, and a timer for collapsed
//! requests. An adapter implements [`EdgeIo`] by translating these calls to its
//! platform's APIs and decides nothing itself.
//!
//! The store speaks in decoded records ([`StoredResponse`] behind an `Rc`), so
//! a store may keep decoded records in memory and serve a HIT without decoding
//! or copying the body; [`Encoded`] is the plain implementation over any byte
//! key-value store, encoding on write and decoding on read.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::headers::Headers;
use crate::key::{CacheKey, parse_generation};
use crate::stored::StoredResponse;

/// Work that outlives the response (a stale-while-revalidate refresh).
pub type Background = Pin<Box<dyn Future<Output = ()>>>;

/// Everything the flow asks of its platform.
///
/// The futures need not be `Send`: both platforms run one instance on one thread.
#[allow(async_fn_in_trait)]
pub trait EdgeIo: 'static {
    type Store: RecordStore;

    /// The record store, or `None` when the platform has none for this request
    /// (then cacheable requests are forwarded and nothing is stored).
    fn store(&self) -> Option<&Self::Store>;

    /// One attempt at one origin, bounded by `limit_ms` for the response head
    /// and body together. A complete response of any status is `Ok`.
    ///
    /// A platform whose host enforces per-read timeouts may check the whole
    /// against the limit as the body's parts come: a body still coming at the
    /// limit is then given up when its next part comes, at most one more
    /// `limit_ms` later (edge-spin on edge-host or Spin; the Worker keeps a timer).
    async fn attempt(
        &self,
        request: &OriginRequest<'_>,
        limit_ms: u64,
    ) -> Result<OriginResponse, AttemptError>;

    /// Unix milliseconds.
    fn now_ms(&self) -> u64;

    /// Runs `work` after (or while) the response goes out, in the same instance.
    fn spawn(&self, work: Background);

    /// Whether concurrent misses for one key in one instance may wait for each
    /// other. A platform that cannot wake one request from another's I/O (Workers)
    /// says no, and every miss fetches for itself.
    fn can_collapse(&self) -> bool;

    /// Waits `ms` milliseconds; collapsed requests poll their leader's outcome with it.
    async fn sleep_ms(&self, ms: u64);
}

/// Where records and generations live. Failures are the store's to log:
/// a failed read is a miss, a failed write costs a later miss.
#[allow(async_fn_in_trait)]
pub trait RecordStore {
    /// The record under `key`; anything unreadable counts as nothing stored.
    async fn get(&self, key: &CacheKey) -> Option<Rc<StoredResponse>>;
    /// Stores `record`; `keep_secs` is how long it can still be of use, for
    /// stores that expire entries (others may ignore it).
    async fn put(&self, key: &CacheKey, record: Rc<StoredResponse>, keep_secs: u64);
    async fn delete(&self, key: &CacheKey);
    /// The generation under `key` ([`crate::generation_key`]); `None` when
    /// never written, evicted, or unreadable (see [`crate::key`]).
    async fn generation(&self, key: &str) -> Option<u64>;
    async fn set_generation(&self, key: &str, generation: u64, keep_secs: u64);
}

/// A byte key-value store, as Spin key-value or the Cache API offer one.
#[allow(async_fn_in_trait)]
pub trait KeyValue {
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    async fn set(&self, key: &str, value: Vec<u8>, keep_secs: u64);
    async fn delete(&self, key: &str);
}

/// Records kept in a byte key-value store with [`StoredResponse::encode`].
#[derive(Debug)]
pub struct Encoded<K>(pub K);

impl<K: KeyValue> RecordStore for Encoded<K> {
    async fn get(&self, key: &CacheKey) -> Option<Rc<StoredResponse>> {
        let bytes = self.0.get(key.as_str()).await?;
        StoredResponse::decode(&bytes).ok().map(Rc::new)
    }

    async fn put(&self, key: &CacheKey, record: Rc<StoredResponse>, keep_secs: u64) {
        self.0.set(key.as_str(), record.encode(), keep_secs).await;
    }

    async fn delete(&self, key: &CacheKey) {
        self.0.delete(key.as_str()).await;
    }

    async fn generation(&self, key: &str) -> Option<u64> {
        parse_generation(&self.0.get(key).await?)
    }

    async fn set_generation(&self, key: &str, generation: u64, keep_secs: u64) {
        let value = generation.to_string().into_bytes();
        self.0.set(key, value, keep_secs).await;
    }
}

/// One request to one origin.
#[derive(Debug, Clone)]
pub struct OriginRequest<'a> {
    pub method: &'a str,
    /// Absolute URL: the origin's base URL and the request target.
    pub url: String,
    pub headers: &'a Headers,
    /// Empty for requests without a body.
    pub body: Bytes,
}

/// One origin's complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Bytes,
}

/// Why an attempt produced no response. Whether the request may have reached
/// the origin decides whether a non-idempotent request may go to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// Nothing was sent: no connection (refused, unreachable, name not found,
    /// TLS handshake failed), or the platform refused the request. Safe to send
    /// elsewhere, whatever the method.
    NotSent(String),
    /// The connection broke after the request was (maybe partly) sent: the
    /// origin may have acted on it.
    Broken(String),
    /// No complete response within the attempt's time limit.
    TimedOut,
    /// The origin answered with `status`, but with a body longer than
    /// `max_origin_body_bytes`, left unread. The origin is up and has acted on
    /// the request: another would answer the same, so this is not held against
    /// its health nor retried elsewhere (unless `status` itself is a 502-504);
    /// the client gets a 502.
    TooLarge { status: u16 },
}
