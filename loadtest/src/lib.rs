//! Open-model load generation with corrected tail latency, and the scaling
//! study that drives the local stack and writes the report.
//!
//! Layout:
//! - [`schedule`]: when each iteration is meant to start (constant or ramping arrival rates).
//! - [`scenario`]: scenarios as TOML data; [`workload`] turns one into concrete requests.
//! - [`client`]: hand-written HTTP/1.1 keep-alive connections over TCP or TLS (rustls),
//!   one per request slot.
//! - [`runner`]: the engine: scheduler, bounded slots, dropped iterations, measurement
//!   from the intended start.
//! - [`recorder`] and [`results`]: HDR histograms, errors by class, timeline, the results
//!   file and lossless merging; [`threshold`]: pass/fail criteria.
//! - [`testserver`]: a server that stalls on purpose, for testing the generator.
//! - [`calibrate`]: the generator against `wrk` on an nginx `return 200`.
//! - [`study`]: the scaling study on the local stack and its report.
pub mod calibrate;
pub mod client;
pub mod recorder;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod study;
pub mod testserver;
pub mod threshold;
pub mod workload;
