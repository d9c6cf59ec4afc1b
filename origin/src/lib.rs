//! The song-comments origin: an axum service over a storage backend
//! (PostgreSQL or ScyllaDB) with a Redis cache in front of the reads.
//!
//! Layout:
//! - [`domain`]: validated types (ids, comment bodies, track positions, cursors)
//!   and the records the API returns. No I/O.
//! - [`storage`]: the [`storage::Storage`] trait and one backend per file.
pub mod domain;
pub mod storage;
