//! The song-comments origin: an axum service over a storage backend
//! (PostgreSQL or ScyllaDB) with a Redis cache in front of the reads.
//!
//! Layout:
//! - [`domain`]: validated types (ids, comment bodies, track positions, cursors)
//!   and the records the API returns. No I/O.
//! - [`storage`]: the [`storage::Storage`] trait and one backend per file.
//! - [`configuration`]: flags and environment; [`startup`]: `Application::build`,
//!   the router, load shedding, graceful shutdown; [`routes`]: one file per area.
//! - [`cache`]: Redis cache-aside with generation invalidation and single flight;
//!   [`http_cache`]: ETag, 304 and Cache-Control; [`auth`]: bearer JWTs;
//!   [`error`]: every failure mapped to a status and JSON body in one place;
//!   [`metrics`]: Prometheus text; [`telemetry`]: tracing to stderr.
//! - [`datagen`]: `origin seed`, the deterministic data set and its bulk loaders.
//! - [`bench`]: `origin bench-queries`, the query benchmark (storage and HTTP,
//!   with and without Redis) beside the original study's figures.
pub mod auth;
pub mod bench;
pub mod cache;
pub mod configuration;
pub mod datagen;
pub mod domain;
pub mod error;
pub mod http_cache;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
