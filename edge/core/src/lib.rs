//! Every caching and routing decision of the edge, as pure Rust: no I/O, no async
//! runtime, no platform types. The Spin component (`edge/spin`) and the Cloudflare
//! Worker (`edge/worker`) only translate their platform's requests, key-value
//! store and clock into these types and carry out what these functions decide.
//!
//! Architecture invariant: this crate depends on nothing platform-specific
//! (CI: `cargo tree -p edge-core --edges normal` lists no tokio, hyper, spin,
//! wasmtime or worker).
//!
//! # Layout
//! - [`config`]: [`EdgeConfig`] from named string variables.
//! - [`headers`]: [`Headers`], the case-insensitive header list used everywhere.
//! - [`request`]: [`classify`] a request (health, `/api/*`, 4xx), and
//!   [`forward_headers`] that an origin may see.
//! - [`cache_control`], [`policy`]: RFC 9111 storability, freshness and age.
//! - [`key`]: normalised [`CacheKey`]s and per-song generations.
//! - [`stored`]: [`StoredResponse`], the record kept in the key-value store.
//! - [`serve`]: [`lookup`] (HIT, stale-while-revalidate, revalidate, MISS),
//!   [`stale_if_error`], and [`client_headers`] (`X-Cache`, `Age`).
//! - [`origin`]: the ordered origin group with retries and [`OriginHealth`].
//! - [`invalidate`]: what a successful write makes stale.
//!
//! # How an adapter handles one request
//! Times: cache decisions take Unix seconds, origin routing takes milliseconds.
//! 1. Once per instance: `EdgeConfig::from_vars(lookup)` and `OriginHealth::new(config.origins.len())`.
//! 2. Build a [`RequestHead`]; `classify(&head, &config)`:
//!    `Route::Health` → 200 [`HEALTH_BODY`]; `Route::Reject(r)` → `r.status` with `r.body()`
//!    (JSON) and `X-Cache: BYPASS`; `Route::Proxy(kind)` → go on. While reading a
//!    body, stop at `config.max_body_bytes` with [`Rejection::body_too_large`].
//! 3. `ProxyKind::Cacheable`: the key is `CacheKey::new(&head.key_host(), &head.path_and_query, generation)`
//!    where `generation` is `parse_generation(kv.get(generation_key(song)))` if
//!    `song_of_path(head.path())` is `Some(song)`, else 0. Decode the stored value
//!    with `StoredResponse::decode` (an error counts as nothing stored) and act on
//!    `lookup(stored, &head.headers, now)`:
//!    - `Hit { age }` → stored status, `client_headers(&stored.headers, Hit, Some(age))`, body.
//!    - `StaleWhileRevalidate { age }` → the same with `Stale`, then refresh in the background.
//!    - `Revalidate { conditional }` → fetch with `forward_headers(&head)` plus `conditional`;
//!      on 304 store and serve `stored.revalidated(..)` as `Revalidated`; on a new response
//!      treat it as a miss; on failure serve stale as `Stale` if `stale_if_error(&stored, now)`.
//!    - `Miss` → fetch (collapse concurrent misses for one key), then
//!      `StoredResponse::from_origin(..)`; when `Ok`, put `record.encode()` under the key.
//!      Serve as `Miss`. For HEAD send [`origin_method`] and drop the body.
//! 4. `ProxyKind::Bypass`: fetch with retries, never store, `X-Cache: BYPASS`.
//! 5. `ProxyKind::Unsafe`: fetch once per origin order without retries (see
//!    [`should_retry`]); then `invalidation(method, target, host, status, &headers)`:
//!    delete the keys of its `targets`, and for each of its `songs` write
//!    `next_generation(current, now_ms)` under `generation_key(song)`.
//! 6. Fetching: for each index of `health.attempt_order(now_ms)`, limit the attempt to
//!    `attempt_timeout_ms(elapsed, &config)` at `origin_url(&config.origins[i], target)`,
//!    `health.record(i, outcome, now_ms, &config)`, and continue only while
//!    `should_retry(method, outcome, attempts, order.len(), elapsed, &config)`. When
//!    nothing usable came back: [`Rejection::bad_gateway`] or [`Rejection::gateway_timeout`].
//!
//! Cache-poisoning defence: cacheable requests reach the origin with an allow-list of
//! headers only ([`forward_headers`]), and stored variants are selected by the
//! request's values of every `Vary`'d header ([`StoredResponse::vary_matches`]);
//! one variant is kept per key, and a request with other values replaces it.

pub mod cache_control;
pub mod config;
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
pub use headers::Headers;
pub use invalidate::{Invalidation, invalidation};
pub use key::{CacheKey, generation_key, next_generation, parse_generation, song_of_path};
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
