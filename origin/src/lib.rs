//! The song-comments origin: an axum service over a storage backend
//! (PostgreSQL or ScyllaDB) with a Redis cache in front of the reads.
//!
//! Layout:
//! - [`domain`]: validated types (ids, comment bodies, track positions, cursors)
//!   and the records the API returns. No I/O.
//! - [`storage`]: the [`storage::Storage`] trait, one backend per module, and
//!   [`storage::open`], the one place a backend is chosen.
//! - [`configuration`]: flags and environment (the command line itself is in
//!   `cli/src/main.rs`); [`startup`]: `Application::build`, the router, load shedding,
//!   graceful shutdown; [`state`]: what handlers reach; [`routes`]: one file per area.
//! - [`cache`]: Redis cache-aside with generation invalidation and single flight;
//!   [`http_cache`]: ETag, 304 and Cache-Control; [`auth`]: bearer JWTs;
//!   [`error`]: every failure mapped to a status and JSON body in one place;
//!   [`metrics`]: Prometheus text; [`telemetry`]: tracing to stderr.
//!
//! The `origin` command (`serve`, `migrate`, `seed`, `bench-queries`) is the
//! `origin-cli` package in `cli/`: its tools (the data generator and the query
//! benchmark) and their dependencies stay out of this library.
pub mod auth;
pub mod cache;
pub mod configuration;
pub mod domain;
pub mod error;
pub mod http_cache;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
