//! What a stack is made of and where it listens: [`StackConfig`] and its [`PortPlan`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DatabaseBackend, MAX_INSTANCES};
use crate::binaries;
use crate::ports;

/// CPU share per instance, chosen by measurement (see the crate docs and `stack bench-scaling`):
/// one instance saturates far below the machine's two cores, and ten (2.0 CPU in all)
/// just fit, so the pool's throughput grows with its size instead of with idle cores.
pub const DEFAULT_CPU_PER_INSTANCE: f64 = 0.2;

/// Memory ceiling per instance: generous for a single-threaded origin, small for a node.
pub const DEFAULT_MEMORY_PER_INSTANCE: u64 = 256 << 20;

/// The loopback ports of every part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlan {
    pub edge: u16,
    pub nginx: u16,
    /// One port per possible instance; instance `i` (from 1) uses `instances[i - 1]`.
    pub instances: Vec<u16>,
    pub postgres: u16,
    pub redis: u16,
    /// Cassandra's CQL port (used with [`DatabaseBackend::Cassandra`]).
    pub cassandra: u16,
    /// Cassandra's inter-node port, bound even by a single node.
    pub cassandra_storage: u16,
}

impl PortPlan {
    /// The documented local ports: edge 8000, nginx 8100, instances 8101..=8110,
    /// PostgreSQL 15432, Redis 16379, Cassandra 19042 (CQL) and 17000.
    pub fn fixed() -> Self {
        Self {
            edge: ports::EDGE_PORT,
            nginx: ports::NGINX_PORT,
            instances: (0..MAX_INSTANCES as u16)
                .map(|offset| ports::FIRST_INSTANCE_PORT + offset)
                .collect(),
            postgres: ports::POSTGRES_PORT,
            redis: ports::REDIS_PORT,
            cassandra: ports::CASSANDRA_PORT,
            cassandra_storage: ports::CASSANDRA_STORAGE_PORT,
        }
    }

    /// Free ports chosen now, for tests and benches that run beside a local stack.
    pub fn ephemeral() -> std::io::Result<Self> {
        let mut instances = Vec::with_capacity(MAX_INSTANCES);
        for _ in 0..MAX_INSTANCES {
            instances.push(ports::free_port()?);
        }
        Ok(Self {
            edge: ports::free_port()?,
            nginx: ports::free_port()?,
            instances,
            postgres: ports::free_port()?,
            redis: ports::free_port()?,
            cassandra: ports::free_port()?,
            cassandra_storage: ports::free_port()?,
        })
    }
}

/// Everything `Stack::up` needs to know.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Origin instances at start, 1 to 10.
    pub instances: usize,
    /// The database the origins run on.
    pub backend: DatabaseBackend,
    /// CPU share per instance (1.0 = one core); `None` runs instances without a CPU quota.
    pub cpu_per_instance: Option<f64>,
    /// CFS period of that quota; `None` picks [`crate::cgroup::cfs_period`] of the share.
    pub cpu_period: Option<Duration>,
    /// Memory ceiling per instance in bytes; `None` for no limit.
    pub memory_per_instance: Option<u64>,
    /// Tokio worker threads per instance: one, as on a small node.
    pub worker_threads: usize,
    /// Database connections per instance.
    pub db_pool_size: usize,
    /// Start Redis and point the origins at it.
    pub redis: bool,
    /// Start the edge in front of nginx.
    pub edge: bool,
    /// Let the edge cache; off makes it a pure proxy, for the study's comparisons.
    pub edge_cache: bool,
    /// Root of all runs: `pgdata/` or `cassandra/` (kept across runs) and `<timestamp>/`
    /// with each run's logs.
    pub run_dir: PathBuf,
    pub ports: PortPlan,
    /// `origin seed --scale` (tiny, small, medium, full).
    pub seed_scale: String,
    pub jwt_secret: String,
    /// `None` finds the binary (see [`binaries::find`]).
    pub origin_bin: Option<PathBuf>,
    pub edge_host_bin: Option<PathBuf>,
    /// Print one progress line per step on stderr.
    pub progress: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            instances: 2,
            backend: DatabaseBackend::Postgres,
            cpu_per_instance: Some(DEFAULT_CPU_PER_INSTANCE),
            cpu_period: None,
            memory_per_instance: Some(DEFAULT_MEMORY_PER_INSTANCE),
            worker_threads: 1,
            db_pool_size: 8,
            redis: true,
            edge: true,
            edge_cache: true,
            run_dir: binaries::workspace_root().join("run"),
            ports: PortPlan::fixed(),
            seed_scale: "small".to_owned(),
            jwt_secret: "local-stack-secret-change-me".to_owned(),
            origin_bin: None,
            edge_host_bin: None,
            progress: true,
        }
    }
}

impl StackConfig {
    /// A stack for tests: every port free, everything under `run_dir`, the smallest seed.
    pub fn for_tests(run_dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        Ok(Self {
            run_dir: run_dir.into(),
            ports: PortPlan::ephemeral()?,
            seed_scale: "tiny".to_owned(),
            ..Self::default()
        })
    }
}
