//! The tools behind the `origin` command, kept out of the library the server
//! links (with their dependencies: indicatif, hdrhistogram, a hyper client):
//! - [`datagen`]: `origin seed`, the deterministic data set and its bulk loaders.
//! - [`bench`]: `origin bench-queries`, the query benchmark (storage and HTTP,
//!   with and without Redis) beside the original study's figures.
//!
//! `serve` and `migrate` are the `origin` library's; `src/main.rs` is the
//! command line of all four.
pub mod bench;
pub mod datagen;
