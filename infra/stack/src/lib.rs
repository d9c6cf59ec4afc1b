//! Real processes on loopback for tests and the local stack: PostgreSQL or Cassandra, Redis, origin
//! instances as resource-limited nodes, nginx as their load balancer, and the edge in front.
//!
//! Layout:
//! - [`stack`]: the whole stack as one value ([`Stack::up`] on PostgreSQL or Cassandra,
//!   scaling, fault injection, `down`).
//! - [`postgres`], [`cassandra`], [`redis`]: launchers of private database and cache servers.
//! - [`nginx`]: configuration from `infra/nginx/nginx.conf.template`, start, reload, stop.
//! - [`cgroup`]: CPU quota and memory limit per instance (cgroup v1 or v2).
//! - [`cpu`]: CPU time per process group and for the machine, from /proc.
//! - [`server`]: a child server in its directory, ready by a probe within a bound, stopped on drop
//!   (the directory kept when a test failed); every launcher above runs through it.
//! - [`process`]: children with logs in files, stopped on drop; [`ports`]: the one free-port
//!   helper; [`probe`]: the small HTTP client behind readiness checks.
//! - [`binaries`], [`packages`]: finding `origin`/`edge-host` and the Debian packages.
//! - [`control`]: the state file and socket through which `stack` commands reach a running `stack up`.
//! - [`bench`]: `stack bench-scaling`, requests/s of 1, 2 and 4 quota-limited instances.
pub mod postgres;
pub mod redis;

pub mod bench;
pub mod binaries;
pub mod cassandra;
pub mod cgroup;
pub mod control;
pub mod cpu;
pub mod nginx;
pub mod packages;
pub mod ports;
pub mod probe;
pub mod process;
pub mod server;
pub mod stack;
pub mod watchdog;

pub use stack::{DatabaseBackend, PortPlan, Stack, StackConfig, StackError, StackState};
