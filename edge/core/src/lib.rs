//! Every caching and routing decision of the edge, and the caching flow that
//! carries them out, as pure Rust: no I/O, no async runtime, no platform types.
//! The Spin component (`edge/spin`) and the Cloudflare Worker (`edge/worker`)
//! implement [`EdgeIo`] (their key-value store, one origin attempt, the clock,
//! background work) and translate requests and responses; [`flow::handle`] does
//! the rest.
//!
//! Architecture invariant: this crate depends on nothing platform-specific
//! (CI: `cargo tree -p edge-core --edges normal` lists no tokio, hyper, spin,
//! wasmtime or worker). Its flow is `async` without a runtime: the adapters'
//! platforms poll it, and its own tests drive it with `futures::executor`.
//!
//! # Layout
//! - [`flow`]: the caching flow over [`EdgeIo`]: [`flow::handle`], failover,
//!   collapsing, background refreshes, invalidation after writes.
//! - [`config`]: [`EdgeConfig`] from named string variables; [`behaviour`]:
//!   CloudFront-style behaviours (path patterns, origin groups, methods, TTLs,
//!   what is forwarded and keyed).
//! - [`headers`]: [`Headers`], the case-insensitive header list used everywhere.
//! - [`request`]: [`classify`] a request (health, `/api/*`, 4xx), and
//!   [`forward_headers`] that an origin may see.
//! - [`cache_control`], [`policy`]: RFC 9111 storability, freshness and age.
//! - [`conditional`]: entity tags, client 304s, which stored response a 304 updates.
//! - [`key`]: normalised [`CacheKey`]s and per-song generations.
//! - [`stored`]: [`StoredResponse`], the record kept in the key-value store.
//! - [`serve`]: [`lookup`] (HIT, stale-while-revalidate, revalidate, MISS),
//!   [`stale_if_error`], and [`client_headers`] (`X-Cache`, `Age`).
//! - [`origin`]: the ordered origin group with retries and [`OriginHealth`].
//! - [`invalidate`]: what a successful write makes stale.
//!
//! # What an adapter does
//! 1. Once per instance: `Edge::new(EdgeConfig::from_vars(lookup)?)`, kept for
//!    the instance's life (it holds passive health and the misses in flight).
//! 2. Per request: build a [`RequestHead`] and an [`EdgeIo`], call
//!    [`flow::handle`] with a future that reads the body (stopping at
//!    `config.max_body_bytes` with [`Rejection::body_too_large`]), and send the
//!    [`EdgeResponse`] as it is.
//! 3. In [`EdgeIo::attempt`], report whether a failed attempt was sent at all
//!    ([`AttemptError::NotSent`] or [`AttemptError::Broken`]): it decides
//!    whether a POST may go to the next origin. An answer whose body passes
//!    `config.max_origin_body_bytes` is left unread and reported with its
//!    status ([`AttemptError::TooLarge`]): the origin is up, and answered.
//!
//! Cache-poisoning defence: cacheable requests reach the origin with an allow-list of
//! headers only ([`forward_headers`]), and stored variants are selected by the
//! request's values of every `Vary`'d header ([`StoredResponse::vary_matches`]);
//! one variant is kept per key, and a request with other values replaces it.

pub mod behaviour;
pub mod cache_control;
pub mod conditional;
pub mod config;
pub mod decimal;
pub mod flow;
pub mod headers;
pub mod invalidate;
pub mod key;
pub mod origin;
pub mod policy;
pub mod request;
pub mod serve;
pub mod stored;

pub use cache_control::CacheControl;
pub use config::{ConfigError, EdgeConfig};
pub use flow::{
    AttemptError, Edge, EdgeIo, EdgeResponse, Encoded, KeyValue, OriginRequest, OriginResponse,
    RecordStore, handle,
};
pub use headers::Headers;
pub use invalidate::{Invalidation, invalidation};
pub use key::{
    CacheKey, generation_key, generation_retention_secs, next_generation, parse_generation,
    song_generation_key, song_of_path,
};
pub use origin::{
    AttemptOutcome, OriginHealth, attempt_timeout_ms, is_idempotent, origin_url, should_retry,
};
pub use policy::{NotStorable, format_http_date, parse_http_date};
pub use request::{
    HEALTH_BODY, ProxyKind, Rejection, RequestHead, Route, classify, error_body, forward_headers,
    origin_method,
};
pub use serve::{
    CacheStatus, Lookup, client_headers, is_origin_error_status, lookup, stale_if_error,
};
pub use stored::{DecodeError, StoredResponse};
