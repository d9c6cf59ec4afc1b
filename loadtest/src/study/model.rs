//! The study's results: what each phase measured, as `results.json` keeps it and the
//! report and `loadtest compare` read it back. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::meta::Meta;
use super::profile::OriginalRow;
use crate::recorder::{CacheCounts, ErrorCounts, Second};
use crate::results::{EndpointResults, RunResults};

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
    /// Successful responses per second.
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
    /// Requests the origin instances answered during the run (their own counters).
    #[serde(default)]
    pub origin_requests: Option<u64>,
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
            throughput: results.overall.ok as f64 / results.duration_s.max(1e-9),
            duration_s: results.duration_s,
            p50_noise_ms: standard_error(whole.iter().map(Second::p50_ms)),
            p99_noise_ms: standard_error(whole.iter().map(Second::p99_ms)),
            start: None,
            cpu: None,
            cache: results.cache,
            origin_requests: None,
        }
    }

    /// Within the objective: p99 under the SLO, errors and drops under 0.1 %.
    pub fn meets(&self, slo_ms: f64) -> bool {
        self.requests > 0
            && self.p99_ms < slo_ms
            && self.error_rate < 0.001
            && self.dropped_rate < 0.001
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

/// The noise of an error rate of `errors` in `requests`: the binomial standard error, or
/// 3/n (the "rule of three") when there were none.
pub fn error_rate_noise(errors: u64, error_rate: f64, requests: u64) -> f64 {
    let n = requests.max(1) as f64;
    if errors == 0 {
        3.0 / n
    } else {
        (error_rate * (1.0 - error_rate) / n).sqrt()
    }
}

/// The seconds of a timeline that the schedule filled completely: the last bucket after
/// the schedule's end holds only the tail of in-flight requests and would read as a drop.
pub fn whole_seconds(duration_s: f64, timeline: &[Second]) -> &[Second] {
    let whole = (duration_s + 1e-6).floor().max(0.0) as usize;
    &timeline[..whole.min(timeline.len())]
}

/// Standard error of the mean of `values` (`None` for fewer than two).
pub fn standard_error(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.filter(|value| *value > 0.0).collect();
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((variance / n).sqrt())
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingResult {
    pub instances: usize,
    pub capacity_rps: f64,
    /// Every step of the search, in the order run.
    pub steps: Vec<RunSummary>,
}

impl ScalingResult {
    /// The step at capacity: the highest offered rate within the objective.
    pub fn at_capacity(&self, slo_ms: f64) -> Option<&RunSummary> {
        self.steps
            .iter()
            .filter(|step| step.meets(slo_ms))
            .max_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate))
    }

    /// The knee: the lowest offered rate above capacity that missed the objective.
    pub fn knee(&self, slo_ms: f64) -> Option<&RunSummary> {
        self.steps
            .iter()
            .filter(|step| !step.meets(slo_ms) && step.offered_rate > self.capacity_rps)
            .min_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate))
    }

    /// How far the true capacity may lie above the figure: up to the knee's rate (the
    /// search's resolution), as a fraction of the capacity.
    pub fn resolution(&self, slo_ms: f64) -> Option<f64> {
        let knee = self.knee(slo_ms)?;
        (self.capacity_rps > 0.0)
            .then(|| (knee.offered_rate - self.capacity_rps) / self.capacity_rps)
    }

    /// Steps that started on a stack that was not healthy and idle.
    pub fn unhealthy_starts(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| !step.started_healthy())
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedRun {
    pub original: OriginalRow,
    pub ours: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierRun {
    pub edge_cache: bool,
    pub redis: bool,
    pub rate: f64,
    pub summary: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRun {
    pub name: String,
    /// What was done, true to the configuration run (pool size, edge or not).
    pub description: String,
    /// What the design promises under this fault.
    pub promise: String,
    /// Where the load went: "the edge" or "nginx (no edge)".
    pub through: String,
    pub rate: f64,
    pub fault_at_s: f64,
    pub repair_at_s: f64,
    pub summary: RunSummary,
    pub reads: ClassSummary,
    pub writes: ClassSummary,
    /// Seconds from the fault until the run was clean again (no errors, no
    /// drops) to its end; `None` if it never was.
    pub recovery_s: Option<u64>,
    /// The same for reads alone (read errors or drops) and writes alone.
    pub read_recovery_s: Option<u64>,
    pub write_recovery_s: Option<u64>,
    pub timeline: Vec<Second>,
}

impl FaultRun {
    /// Error classes of reads and of writes, e.g.
    /// `reads: none; writes: 503 ×40 (all with Retry-After)`.
    pub fn error_classes(&self) -> String {
        format!(
            "reads: {}; writes: {}",
            self.reads.classes.describe(),
            self.writes.classes.describe()
        )
    }
}

/// Seconds from `fault_second` until every later second is clean.
pub fn recovery_seconds(timeline: &[Second], fault_second: usize) -> Option<u64> {
    recovery_seconds_by(timeline, fault_second, |second| {
        second.errors > 0 || second.dropped > 0
    })
}

/// Seconds from `fault_second` until no later second is `bad`.
pub fn recovery_seconds_by(
    timeline: &[Second],
    fault_second: usize,
    bad: impl Fn(&Second) -> bool,
) -> Option<u64> {
    if timeline.len() <= fault_second {
        return None;
    }
    // The last second is usually partial (tail of in-flight requests): judge all of it anyway.
    let last_bad = timeline.iter().rposition(bad);
    match last_bad {
        None => Some(0),
        Some(bad) if bad < fault_second => Some(0),
        Some(bad) if bad + 1 < timeline.len() => Some((bad + 1 - fault_second) as u64),
        Some(_) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCheck {
    pub acknowledged: u64,
    pub deleted_by_the_run: u64,
    pub checked: u64,
    pub lost: u64,
}

/// How long one phase of the study took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
}

/// Everything the study measured: `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    pub meta: Meta,
    pub scaling: Vec<ScalingResult>,
    /// The edge's capacity (cache on) in front of the CDN phase's pool; `None` without
    /// an edge.
    pub edge_capacity: Option<ScalingResult>,
    pub fixed: Vec<FixedRun>,
    pub tiers: Vec<TierRun>,
    pub faults: Vec<FaultRun>,
    pub writes: WriteCheck,
    /// Each phase's running time, in the order run.
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    /// PostgreSQL and Cassandra side by side (`None` in reports from before the tier).
    #[serde(default)]
    pub database_tier: Option<DatabaseTier>,
}

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
    /// PostgreSQL when the study's stack ran on Cassandra ([`super::meta::Meta::backend`]).
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

impl StudyResults {
    /// An empty result that the phases fill in.
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            scaling: Vec::new(),
            edge_capacity: None,
            fixed: Vec::new(),
            tiers: Vec::new(),
            faults: Vec::new(),
            writes: WriteCheck {
                acknowledged: 0,
                deleted_by_the_run: 0,
                checked: 0,
                lost: 0,
            },
            phases: Vec::new(),
            database_tier: None,
        }
    }

    /// The capacity of `instances` straight to nginx, if that pool size was searched.
    pub fn capacity_of(&self, instances: usize) -> Option<&ScalingResult> {
        self.scaling
            .iter()
            .find(|result| result.instances == instances)
    }

    /// How many times the capacity of one instance the largest pool carries.
    pub fn scaling_factor(&self) -> Option<(usize, f64)> {
        let first = self.scaling.first()?;
        let last = self.scaling.last()?;
        (first.capacity_rps > 0.0 && last.instances > first.instances)
            .then(|| (last.instances, last.capacity_rps / first.capacity_rps))
    }

    /// Every measured run that started on a stack that was not healthy and idle, by name.
    pub fn unhealthy_starts(&self) -> Vec<String> {
        let mut names = Vec::new();
        for result in &self.scaling {
            for step in &result.steps {
                if !step.started_healthy() {
                    names.push(format!(
                        "capacity step {:.0}/s with {} instance(s)",
                        step.offered_rate, result.instances
                    ));
                }
            }
        }
        if let Some(edge) = &self.edge_capacity {
            for step in edge.steps.iter().filter(|step| !step.started_healthy()) {
                names.push(format!("edge capacity step {:.0}/s", step.offered_rate));
            }
        }
        for run in self.fixed.iter().filter(|run| !run.ours.started_healthy()) {
            names.push(format!("fixed rate, {}", run.original.configuration));
        }
        for tier in self
            .tiers
            .iter()
            .filter(|tier| !tier.summary.started_healthy())
        {
            names.push(format!(
                "cache tier edge {} Redis {}",
                on_off(tier.edge_cache),
                on_off(tier.redis)
            ));
        }
        for fault in self
            .faults
            .iter()
            .filter(|fault| !fault.summary.started_healthy())
        {
            names.push(format!("fault '{}'", fault.name));
        }
        let tier_capacity = self.database_tier.iter().flat_map(|tier| &tier.capacity);
        for backend in tier_capacity.filter(|backend| backend.measured_in == DATABASE_TIER) {
            for step in backend
                .result
                .steps
                .iter()
                .filter(|step| !step.started_healthy())
            {
                names.push(format!(
                    "{} capacity step {:.0}/s (database tier)",
                    backend.backend, step.offered_rate
                ));
            }
        }
        names
    }
}

/// [`BackendCapacity::measured_in`] of a capacity the database tier searched itself.
pub const DATABASE_TIER: &str = "the database tier";

pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests;
