//! One measured run's figures: the summary the report shows ([`RunSummary`]), how the
//! run started ([`HealthCheck`]), the CPU each part of the stack used ([`CpuUse`]), and
//! one side of a run, its reads or its writes ([`ClassSummary`]).

use serde::{Deserialize, Serialize};

use super::stats::{error_rate_noise, standard_error, whole_seconds};
use crate::recorder::{CacheCounts, ErrorCounts, Second};
use crate::results::{EndpointResults, RunResults};

/// The objective's bound on errors (a share of the requests sent) and on dropped
/// arrivals (a share of the arrivals offered): 0.1 %.
pub const MAX_ERROR_RATE: f64 = 0.001;

/// The figures of one run that the report shows, with how the run started and what the
/// stack spent on it. Fields added after the first reports default when read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub offered_rate: f64,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub dropped: u64,
    pub dropped_rate: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Successful responses per second while the load was offered (see `delivered_rate`).
    pub throughput: f64,
    pub duration_s: f64,
    /// The noise of p50 and p99: the standard error of the per-second values over the
    /// run's whole seconds (`None` with fewer than two).
    #[serde(default)]
    pub p50_noise_ms: Option<f64>,
    #[serde(default)]
    pub p99_noise_ms: Option<f64>,
    /// The check that the run started from a healthy, idle stack.
    #[serde(default)]
    pub start: Option<HealthCheck>,
    /// CPU each component used during the run.
    #[serde(default)]
    pub cpu: Option<CpuUse>,
    /// Responses by what the edge's `X-Cache` said (all unmarked without the edge).
    #[serde(default)]
    pub cache: CacheCounts,
    /// Requests the origin instances answered during the run (their own counters);
    /// `None` when not read, or when an instance restarted in the run (its counters
    /// began again with it).
    #[serde(default)]
    pub origin_requests: Option<u64>,
    /// The origin instances' Redis lookups during the run (their own counters; `None`
    /// as above): how much of the run's work the database did depends on it.
    #[serde(default)]
    pub origin_cache: Option<CacheLookups>,
}

/// Cache lookups of the origins' Redis: found, not found (the database answered and
/// the answer was stored), and not asked (Redis away or skipped after a failure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheLookups {
    pub hits: u64,
    pub misses: u64,
    pub bypasses: u64,
}

impl CacheLookups {
    /// Hits over every lookup; `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        let all = self.hits + self.misses + self.bypasses;
        (all > 0).then(|| self.hits as f64 / all as f64)
    }
}

/// Successful responses per second while the load was offered: those that completed in
/// the run's whole seconds, over those seconds. Answers that came after the schedule's
/// end (an overloaded pool draining its queue) count among the run's requests and in its
/// latencies, not here: every success over the schedule's length would read as the
/// offered rate whatever the pool delivered. A run shorter than a second has no whole
/// second; it counts every success over its length.
pub(super) fn delivered_rate(ok: u64, duration_s: f64, whole: &[Second]) -> f64 {
    if whole.is_empty() {
        return ok as f64 / duration_s.max(1e-9);
    }
    let ok: u64 = whole
        .iter()
        .map(|second| second.completed.saturating_sub(second.errors))
        .sum();
    ok as f64 / whole.len() as f64
}

impl RunSummary {
    pub fn of(results: &RunResults) -> Self {
        let latency = &results.overall.latency;
        let whole = whole_seconds(results.duration_s, &results.timeline);
        Self {
            offered_rate: results.offered_rate,
            requests: results.requests,
            errors: results.overall.errors.total(),
            error_rate: results.overall.error_rate,
            dropped: results.dropped,
            dropped_rate: results.dropped_rate(),
            mean_ms: latency.mean_ms,
            p50_ms: latency.p50_ms,
            p90_ms: latency.p90_ms,
            p99_ms: latency.p99_ms,
            p999_ms: latency.p999_ms,
            max_ms: latency.max_ms,
            throughput: delivered_rate(results.overall.ok, results.duration_s, whole),
            duration_s: results.duration_s,
            p50_noise_ms: standard_error(whole.iter().map(Second::p50_ms)),
            p99_noise_ms: standard_error(whole.iter().map(Second::p99_ms)),
            start: None,
            cpu: None,
            cache: results.cache,
            origin_requests: None,
            origin_cache: None,
        }
    }

    /// Within the objective: p99 under the SLO, errors and drops under
    /// [`MAX_ERROR_RATE`].
    pub fn meets(&self, slo_ms: f64) -> bool {
        self.requests > 0
            && self.p99_ms < slo_ms
            && self.error_rate < MAX_ERROR_RATE
            && self.dropped_rate < MAX_ERROR_RATE
    }

    /// True unless the run is known to have started on an unhealthy stack.
    pub fn started_healthy(&self) -> bool {
        self.start.as_ref().is_none_or(|check| check.healthy)
    }

    /// The noise of the error rate: its binomial standard error, or for no errors the
    /// "rule of three" bound (3/n), so that 0 of 800 is not read as exactly 0.
    pub fn error_rate_noise(&self) -> f64 {
        error_rate_noise(self.errors, self.error_rate, self.requests)
    }

    /// Requests per second that reached the origins.
    pub fn origin_rate(&self) -> Option<f64> {
        self.origin_requests
            .map(|requests| requests as f64 / self.duration_s.max(1e-9))
    }
}

/// Whether a measured run started from a healthy, idle stack: every instance ready,
/// nginx sending to every instance, and a short low-rate probe back to the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub healthy: bool,
    /// Seconds spent waiting for it (including the probes).
    pub waited_s: f64,
    /// Probes sent until it held (or the bound ran out).
    pub probes: u32,
    /// The last probe's median latency, and the baseline it was held against.
    pub probe_p50_ms: Option<f64>,
    pub baseline_p50_ms: Option<f64>,
    /// What was still wrong when the bound ran out (`None` when healthy).
    pub problem: Option<String>,
    /// What had to be repaired first (fault runs start from a whole pool).
    #[serde(default)]
    pub repaired: Vec<String>,
}

/// CPU each part of the stack used during a run, in cores (CPU seconds per second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// Wall time the figures are averaged over.
    pub seconds: f64,
    /// Every origin instance together, and each one (instance 1 first).
    pub instances: f64,
    #[serde(default)]
    pub per_instance: Vec<f64>,
    pub nginx: f64,
    pub edge: f64,
    pub postgres: f64,
    pub redis: f64,
    /// The load generator (this process).
    pub generator: f64,
    /// Everything else the machine ran meanwhile: other users' work is noise.
    pub other: f64,
    pub machine_cores: usize,
    /// The CPU quota of one instance, if it had one.
    pub instance_quota: Option<f64>,
}

impl CpuUse {
    /// The parts' names, in the report's order.
    pub fn parts_names() -> [&'static str; 7] {
        [
            "origin instances",
            "nginx",
            "edge",
            "database",
            "Redis",
            "load generator",
            "other processes",
        ]
    }

    /// The parts in the report's order, with their names.
    pub fn parts(&self) -> [(&'static str, f64); 7] {
        let names = Self::parts_names();
        let values = [
            self.instances,
            self.nginx,
            self.edge,
            self.postgres,
            self.redis,
            self.generator,
            self.other,
        ];
        std::array::from_fn(|index| (names[index], values[index]))
    }

    /// Every core the machine was busy with.
    pub fn busy(&self) -> f64 {
        self.parts().iter().map(|(_, cores)| cores).sum()
    }

    /// The pool's whole quota (instances × quota per instance).
    pub fn pool_quota(&self) -> Option<f64> {
        self.instance_quota
            .map(|quota| quota * self.per_instance.len().max(1) as f64)
    }

    /// Which part ran out of CPU, in words: the pool at its quota, the machine at its
    /// cores (naming its largest users), or none.
    pub fn bottleneck(&self) -> String {
        const NEAR: f64 = 0.85;
        let busiest_instance = self.per_instance.iter().copied().fold(0.0, f64::max);
        if let (Some(pool), Some(quota)) = (self.pool_quota(), self.instance_quota)
            && (self.instances >= NEAR * pool || busiest_instance >= NEAR * quota)
        {
            return format!(
                "the origin pool at its CPU quota ({:.2} of {:.2} cores; busiest instance {:.3} of {:.3})",
                self.instances, pool, busiest_instance, quota
            );
        }
        let cores = self.machine_cores as f64;
        if self.busy() >= NEAR * cores {
            let mut users: Vec<(&str, f64)> = self.parts().to_vec();
            users.sort_by(|a, b| b.1.total_cmp(&a.1));
            let named: Vec<String> = users
                .iter()
                .take(3)
                .map(|(name, used)| format!("{name} {used:.2}"))
                .collect();
            return format!(
                "the machine's CPU ({:.2} of {} cores busy; largest: {})",
                self.busy(),
                self.machine_cores,
                named.join(", ")
            );
        }
        format!(
            "no part at a CPU limit ({:.2} of {} cores busy): the knee comes from waiting (queues, locks, I/O), not CPU",
            self.busy(),
            self.machine_cores
        )
    }
}

/// One side of a run (its reads, or its writes): counts, latency and error classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub classes: ErrorCounts,
}

impl ClassSummary {
    pub fn of(results: &EndpointResults) -> Self {
        Self {
            requests: results.requests,
            errors: results.errors.total(),
            error_rate: results.error_rate,
            p50_ms: results.latency.p50_ms,
            p99_ms: results.latency.p99_ms,
            max_ms: results.latency.max_ms,
            classes: results.errors.clone(),
        }
    }

    /// The endpoints of `results` that `pick` chooses (by name), as one.
    pub fn of_endpoints(
        results: &RunResults,
        pick: impl Fn(&str) -> bool,
    ) -> Result<Self, crate::results::ResultsError> {
        let parts = results
            .endpoints
            .iter()
            .filter(|(name, _)| pick(name))
            .map(|(_, endpoint)| endpoint);
        Ok(Self::of(&EndpointResults::combine(parts)?))
    }
}
