//! The database tier's results: `origin bench-queries`'s query table and its settings,
//! and one pool size's capacity on each backend.

use serde::{Deserialize, Serialize};

use super::phases::{ScalingResult, WriteCheck};

/// The database tier: the original's query table through the storage layer and through
/// the HTTP API (`origin bench-queries`), and one pool size's capacity, on each backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseTier {
    /// The measured cells of the query table, both backends.
    #[serde(default)]
    pub queries: Vec<QueryCell>,
    /// How the query table was measured; `None` when it was not.
    #[serde(default)]
    pub query_settings: Option<QuerySettings>,
    /// The capacity of one pool size straight to nginx, per backend.
    #[serde(default)]
    pub capacity: Vec<BackendCapacity>,
    /// How long the second stack took to come up (its database, migration, seeding when
    /// its data were not there yet, the instances and nginx): on Cassandra, or on
    /// PostgreSQL when the study's stack ran on Cassandra
    /// ([`crate::study::meta::Meta::backend`]).
    #[serde(default)]
    pub cassandra_stack_up_s: Option<f64>,
    /// Writes the second stack acknowledged during its capacity search, and how many of
    /// them (not deleted by the run) were found again through its API afterwards.
    #[serde(default)]
    pub cassandra_writes: Option<WriteCheck>,
    /// What was not measured, and why.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One cell of `origin bench-queries`'s table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryCell {
    pub backend: String,
    pub query: String,
    pub through: String,
    pub clients: usize,
    /// The original study's figure for this query.
    pub original: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub throughput_per_s: f64,
    pub requests: u64,
    pub errors: u64,
}

/// The query table's settings, as `origin bench-queries` reported them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySettings {
    pub songs: u64,
    pub distribution: String,
    pub seconds: f64,
    pub warmup_seconds: f64,
    /// Unmeasured load each backend served before its first cell (0 in results
    /// written before there was any).
    #[serde(default)]
    pub backend_warmup_seconds: f64,
    pub limit: u32,
}

/// The capacity of one pool size on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendCapacity {
    pub backend: String,
    pub result: ScalingResult,
    /// Where it was measured (the capacity phase, or the database tier).
    pub measured_in: String,
}

/// [`BackendCapacity::measured_in`] of a capacity the database tier searched itself.
pub const DATABASE_TIER: &str = "the database tier";
