//! The study's results and its pure decisions: the profiles, the original
//! study's figures, capacity search, recovery time, and run summaries. No I/O
//! except [`Meta::collect`], which reads the machine's description.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recorder::{ErrorCounts, Second};
use crate::results::{EndpointResults, RunResults};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Quick,
    Full,
}

/// How long and how wide each part of the study runs.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSettings {
    pub sizes: &'static [usize],
    /// Where the first pool size's search starts (per instance); it doubles
    /// from there and gets one bisection more than the others (its capacity
    /// sets the ideal line).
    pub search_start: f64,
    pub search_max: f64,
    /// Later sizes start at the previous size's capacity and grow by this.
    pub search_growth: f64,
    pub bisect_steps: u32,
    /// How long each capacity-search step offers its rate: long enough that
    /// its p99 rests on more than a handful of requests.
    pub search_step: Duration,
    pub fixed_duration: Duration,
    /// Send the original's request counts (at its rate) instead of a short run.
    pub full_original_counts: bool,
    pub fault_duration: Duration,
    pub tier_duration: Duration,
    pub seed_scale: &'static str,
    /// Each half of the generator-versus-wrk check (0: skip it).
    pub calibrate: Duration,
    /// What this profile gives up for its running time, said in the report.
    pub trade: &'static str,
    /// Load before the first capacity step, left out of the report.
    pub warm_up: Duration,
    /// Each step of the edge's capacity search (it only sets the fault rate).
    pub edge_step: Duration,
}

impl Profile {
    pub fn settings(self) -> ProfileSettings {
        match self {
            // 2¼-2½ minutes on two cores: steps of 3 s (twice the old 1.5 s)
            // paid for with the original's own pool sizes only (no 5), a
            // gentler growth with one bisection after the first size, and 2 s
            // fixed-rate and tier runs.
            Profile::Quick => ProfileSettings {
                sizes: &[1, 2, 3, 10],
                search_start: 400.0,
                search_max: 40_000.0,
                search_growth: 1.5,
                bisect_steps: 1,
                search_step: Duration::from_secs(3),
                fixed_duration: Duration::from_secs(2),
                full_original_counts: false,
                fault_duration: Duration::from_secs(9),
                tier_duration: Duration::from_secs(2),
                seed_scale: "small",
                calibrate: Duration::from_secs(2),
                warm_up: Duration::from_secs(2),
                edge_step: Duration::from_secs(2),
                trade: "quick profile, 2¼ to 2½ minutes on two cores: capacity steps of 3 s bought with the original's own pool sizes only (1, 2, 3, 10; `--profile full` adds 5), one bisection after the first size (about ±12 %), and 2 s fixed-rate, edge-search and tier runs",
            },
            Profile::Full => ProfileSettings {
                sizes: &[1, 2, 3, 5, 10],
                search_start: 200.0,
                search_max: 80_000.0,
                search_growth: 2.0,
                bisect_steps: 5,
                search_step: Duration::from_secs(15),
                fixed_duration: Duration::from_secs(60),
                full_original_counts: true,
                fault_duration: Duration::from_secs(45),
                tier_duration: Duration::from_secs(30),
                seed_scale: "medium",
                calibrate: Duration::from_secs(10),
                warm_up: Duration::from_secs(10),
                edge_step: Duration::from_secs(15),
                trade: "full profile: capacity steps of 15 s, five bisections, the original's request counts",
            },
        }
    }
}

/// The original's load: the only rate it states (three services at 400 RPS).
pub const ORIGINAL_RATE: f64 = 400.0;

/// A row of the original study's Performance Summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OriginalRow {
    pub configuration: &'static str,
    pub instances: usize,
    pub requests: u64,
    pub error_rate: &'static str,
    pub avg_latency: &'static str,
}

pub const ORIGINAL_SUMMARY: &[OriginalRow] = &[
    OriginalRow {
        configuration: "Single Service",
        instances: 1,
        requests: 6000,
        error_rate: "0%",
        avg_latency: "~100ms",
    },
    OriginalRow {
        configuration: "Two Services",
        instances: 2,
        requests: 12000,
        error_rate: "0%",
        avg_latency: "<60ms",
    },
    OriginalRow {
        configuration: "Three Services",
        instances: 3,
        requests: 24000,
        error_rate: "<0.1%",
        avg_latency: "~800ms",
    },
    OriginalRow {
        configuration: "Ten Services + Redis",
        instances: 10,
        requests: 60000,
        error_rate: "~2.2%",
        avg_latency: "Sub-100ms",
    },
];

/// The figures of one run that the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
}

impl RunSummary {
    pub fn of(results: &RunResults) -> Self {
        let latency = &results.overall.latency;
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
        }
    }

    /// Within the objective: p99 under the SLO, errors and drops under 0.1 %.
    pub fn meets(&self, slo_ms: f64) -> bool {
        self.requests > 0
            && self.p99_ms < slo_ms
            && self.error_rate < 0.001
            && self.dropped_rate < 0.001
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

/// Exponential growth until the objective fails, then bisection.
#[derive(Debug, Clone)]
pub struct CapacitySearch {
    next: Option<f64>,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
    max: f64,
    growth: f64,
    bisections_left: u32,
}

impl CapacitySearch {
    /// Doubling from `start`.
    pub fn new(start: f64, max: f64, bisections: u32) -> Self {
        Self::with_growth(start, max, bisections, 2.0)
    }

    /// Growing by `growth` (> 1) from `start`, or shrinking by it while even
    /// the first rate fails.
    pub fn with_growth(start: f64, max: f64, bisections: u32, growth: f64) -> Self {
        Self {
            next: Some(start.min(max)),
            highest_pass: None,
            lowest_fail: None,
            max,
            growth: growth.max(1.1),
            bisections_left: bisections,
        }
    }

    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |best| best.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |worst| worst.min(rate)));
        }
        self.next = match (self.highest_pass, self.lowest_fail) {
            (Some(pass), None) if pass < self.max => {
                Some((pass * self.growth).min(self.max).round())
            }
            (Some(_), None) => None,
            // Even the first rate failed: shrink until something passes.
            (None, Some(fail)) if fail > 25.0 => Some((fail / self.growth).floor()),
            (Some(pass), Some(fail)) if self.bisections_left > 0 && fail - pass > pass * 0.02 => {
                self.bisections_left -= 1;
                Some(((pass + fail) / 2.0).round())
            }
            _ => None,
        };
    }

    /// The highest rate that met the objective (0 if none did).
    pub fn capacity(&self) -> f64 {
        self.highest_pass.unwrap_or(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingResult {
    pub instances: usize,
    pub capacity_rps: f64,
    /// Every step of the search, in the order run.
    pub steps: Vec<RunSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// The faults injected during load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillOne,
    KillHalf,
    StopRedis,
    RestartPostgres,
    AllOriginsAway,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::KillOne,
        Fault::KillHalf,
        Fault::StopRedis,
        Fault::RestartPostgres,
        Fault::AllOriginsAway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillOne => "kill one instance",
            Fault::KillHalf => "kill half the instances",
            Fault::StopRedis => "stop Redis",
            Fault::RestartPostgres => "restart PostgreSQL",
            Fault::AllOriginsAway => "all origins away",
        }
    }

    /// The instances this fault kills in a pool of `pool` (numbered from 1).
    pub fn victims(self, pool: usize) -> Vec<usize> {
        match self {
            Fault::KillOne => vec![1],
            Fault::KillHalf => (1..=pool / 2).collect(),
            Fault::AllOriginsAway => (1..=pool).collect(),
            Fault::StopRedis | Fault::RestartPostgres => Vec::new(),
        }
    }

    /// What is done, in a pool of `pool` instances, with the load going
    /// through the edge or (without it) straight to nginx.
    pub fn description(self, pool: usize, edge: bool) -> String {
        let path = if edge {
            format!("load through the edge → nginx → {pool} instances")
        } else {
            format!("load straight to nginx → {pool} instances (no edge)")
        };
        let action = match self {
            Fault::KillOne => {
                format!("SIGKILL instance 1 of {pool} at 1/3 of the run, restart it at 2/3")
            }
            Fault::KillHalf => {
                let half = pool / 2;
                format!("SIGKILL instances 1-{half} of {pool} at 1/3, restart them at 2/3")
            }
            Fault::StopRedis => "stop Redis at 1/3, start it again at 2/3".to_owned(),
            Fault::RestartPostgres => "restart PostgreSQL at 1/3 (same data, same port)".to_owned(),
            Fault::AllOriginsAway => {
                format!("SIGKILL all {pool} instances at 1/3, restart them at 2/3")
            }
        };
        format!("{action}; {path}")
    }

    /// What the design promises under this fault, for the configuration run.
    pub fn promise(self, edge: bool) -> &'static str {
        match (self, edge) {
            (Fault::KillOne | Fault::KillHalf, _) => {
                "nginx marks a dead instance down after its first failure and retries idempotent requests (GET) on another: reads should not fail; a write in flight on a killed instance may fail (writes are never retried); the survivors carry the load"
            }
            (Fault::StopRedis, _) => {
                "a cache failure never fails a request: no errors, reads go to PostgreSQL (latency may rise)"
            }
            (Fault::RestartPostgres, true) => {
                "requests that need the database are answered 503 with Retry-After until it is back; reads cached in Redis or at the edge keep being served; no acknowledged write is lost"
            }
            (Fault::RestartPostgres, false) => {
                "requests that need the database are answered 503 with Retry-After until it is back; reads cached in Redis keep being served; no acknowledged write is lost"
            }
            (Fault::AllOriginsAway, true) => {
                "the edge serves reads it holds from its cache (stale-if-error); reads it never cached and every write cannot be served and fail (502/503/504) by design, until the instances are back"
            }
            (Fault::AllOriginsAway, false) => {
                "with no edge in front nothing can answer: nginx has no cache, so reads and writes fail until the instances are back (this run shows what the edge buys)"
            }
        }
    }
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

/// The machine's 1-minute load average (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Where the capacity search of a pool size starts: at the previous size's
/// capacity when it found one (a bigger pool is rarely slower, and this spends
/// no steps re-climbing), else at `start` per instance.
pub fn search_start(previous_capacity: Option<f64>, start: f64, instances: usize) -> f64 {
    previous_capacity
        .filter(|capacity| *capacity > 0.0)
        .unwrap_or(start * instances as f64)
}

/// The load for fault and tier runs through the edge: the nginx rate (see
/// [`fault_rate`]) unless the edge carried less than twice that, then half
/// of what the edge carried (so that faults meet an edge with headroom, as
/// they meet the origins).
pub fn edge_fault_rate(nginx_rate: f64, edge_capacity: Option<f64>) -> f64 {
    match edge_capacity {
        Some(capacity) if capacity < 2.0 * nginx_rate => (capacity * 0.5).max(100.0).round(),
        _ => nginx_rate,
    }
}

/// The load for fault and tier runs: half the measured capacity of the
/// nearest pool size at or below `instances`.
pub fn fault_rate(scaling: &[ScalingResult], instances: usize) -> f64 {
    let capacity = scaling
        .iter()
        .filter(|result| result.instances <= instances)
        .map(|result| result.capacity_rps)
        .fold(0.0, f64::max);
    (capacity * 0.5).max(100.0).round()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCheck {
    pub acknowledged: u64,
    pub deleted_by_the_run: u64,
    pub checked: u64,
    pub lost: u64,
}

/// Where and how the study ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub date: String,
    pub git_revision: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    /// The 1-minute load average when the study started and when it ended:
    /// other work on the machine shows up in every figure.
    #[serde(default)]
    pub load_average_start: Option<f64>,
    #[serde(default)]
    pub load_average_end: Option<f64>,
    pub profile: String,
    pub slo_ms: f64,
    /// The load went through the edge (false: `--no-edge`).
    #[serde(default)]
    pub edge: bool,
    /// The generator against wrk on nginx `return 200`, measured before the
    /// stack came up; `Err` says why it was not.
    #[serde(default)]
    pub calibration: Option<Result<CalibrationFigure, String>>,
    pub configuration: Vec<(String, String)>,
}

/// `loadtest calibrate`'s figures, as the report keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFigure {
    pub wrk_rate: f64,
    pub generator_rate: f64,
    pub ratio: f64,
    pub seconds: f64,
    pub connections: usize,
    pub pinned: bool,
}

impl From<&crate::calibrate::Calibration> for CalibrationFigure {
    fn from(calibration: &crate::calibrate::Calibration) -> Self {
        Self {
            wrk_rate: calibration.wrk_rate,
            generator_rate: calibration.generator_rate,
            ratio: calibration.ratio(),
            seconds: calibration.seconds,
            connections: calibration.connections,
            pinned: calibration.pinned,
        }
    }
}

impl Meta {
    pub fn collect(
        args: &super::StudyArgs,
        config: &stack::StackConfig,
        profile: &ProfileSettings,
        calibration: Option<Result<CalibrationFigure, String>>,
    ) -> Self {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(stack::binaries::workspace_root())
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let revision =
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty = git(&["status", "--porcelain"]).is_some_and(|status| !status.is_empty());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let load_path = if config.edge {
            "capacity and fixed-rate runs straight to nginx (the edge cache would hide the origins); faults through the edge; cache tiers both ways"
        } else {
            "every run straight to nginx (--no-edge: no edge, no edge-cache tiers)"
        };
        let configuration = vec![
            ("profile".into(), profile.trade.into()),
            ("origin instances".into(), format!("{:?} (capacity search), {} (faults), {} (cache tiers)", profile.sizes, super::FAULT_POOL, super::TIER_POOL)),
            ("load path".into(), load_path.into()),
            (
                "CPU quota per instance".into(),
                config.cpu_per_instance.map_or("none".into(), |cpu| format!("{cpu} core")),
            ),
            ("worker threads per instance".into(), config.worker_threads.to_string()),
            ("database pool per instance".into(), config.db_pool_size.to_string()),
            ("seed scale".into(), config.seed_scale.clone()),
            ("mix".into(), "read-heavy: 25% song, 40% comments page, 25% feed, 8% post, 1% patch, 1% delete; Zipf(1) songs".into()),
            ("capacity objective".into(), format!("p99 < {} ms, errors < 0.1%, dropped < 0.1%", args.slo_ms)),
            ("capacity search".into(), format!(
                "1st size: x2 from {}/s, then {} bisections; later sizes: x{} from the previous size's capacity (÷{} while it fails), then {} bisection(s); {} s pause between steps",
                profile.search_start, profile.bisect_steps + 1, profile.search_growth, profile.search_growth, profile.bisect_steps,
                super::STEP_PAUSE.as_secs_f64()
            )),
            ("capacity step duration".into(), format!(
                "{} s per step ({} profile; at 1000/s a step's p99 rests on its {} slowest requests)",
                profile.search_step.as_secs_f64(),
                format!("{:?}", args.profile).to_lowercase(),
                (profile.search_step.as_secs_f64() * 1000.0 / 100.0).round()
            )),
            ("warm-up".into(), format!(
                "{} s at {}/s before the first capacity step (not reported)",
                profile.warm_up.as_secs_f64(),
                profile.search_start * 0.5,
            )),
            ("fixed-rate, fault and tier runs".into(), format!(
                "{} s, {} s (fault at 1/3, repair at 2/3), {} s",
                if profile.full_original_counts { "the original's request counts at 400/s:".to_owned() } else { profile.fixed_duration.as_secs_f64().to_string() },
                profile.fault_duration.as_secs_f64(),
                profile.tier_duration.as_secs_f64()
            )),
            ("edge capacity search".into(), if config.edge {
                format!(
                    "steps of {} s, x2 from a quarter of the nginx pool's capacity (÷2 while it fails) up to that capacity, then {} bisection(s); it only sets the fault and tier rate",
                    profile.edge_step.as_secs_f64(),
                    profile.bisect_steps
                )
            } else {
                "none (no edge)".into()
            }),
            ("load generator".into(), "loadtest (open model, latency from the intended start), on the same machine".into()),
        ];
        Self {
            date: chrono::Utc::now().to_rfc3339(),
            git_revision: if dirty {
                format!("{revision} (with uncommitted changes)")
            } else {
                revision
            },
            cores: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            cpu_model,
            load_average_start: load_average(),
            load_average_end: None,
            profile: format!("{:?}", args.profile).to_lowercase(),
            slo_ms: args.slo_ms,
            edge: config.edge,
            calibration,
            configuration,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyResults {
    pub meta: Meta,
    pub scaling: Vec<ScalingResult>,
    /// The edge's capacity (cache on) in front of the fault pool, searched
    /// only up to the nginx pool's capacity; `None` without an edge.
    pub edge_capacity: Option<ScalingResult>,
    pub fixed: Vec<FixedRun>,
    pub tiers: Vec<TierRun>,
    pub faults: Vec<FaultRun>,
    pub writes: WriteCheck,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_with_capacity(true_capacity: f64) -> (f64, Vec<f64>) {
        let mut search = CapacitySearch::new(200.0, 40_000.0, 4);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= true_capacity);
        }
        (search.capacity(), tried)
    }

    #[test]
    fn capacity_search_doubles_then_bisects() {
        let (capacity, tried) = search_with_capacity(2_500.0);
        assert_eq!(&tried[..5], &[200.0, 400.0, 800.0, 1600.0, 3200.0]);
        assert_eq!(tried.len(), 9);
        assert!(
            (2_350.0..=2_500.0).contains(&capacity),
            "capacity {capacity} from {tried:?}"
        );
    }

    #[test]
    fn capacity_search_handles_the_extremes() {
        assert_eq!(search_with_capacity(1e9).0, 40_000.0);
        let (capacity, tried) = search_with_capacity(60.0);
        assert!(
            capacity > 0.0 && capacity <= 60.0,
            "{capacity} from {tried:?}"
        );
        assert_eq!(search_with_capacity(0.0).0, 0.0);
    }

    #[test]
    fn recovery_counts_from_the_fault_to_the_last_bad_second() {
        let second = |errors| Second {
            completed: 100,
            errors,
            ..Second::default()
        };
        let timeline: Vec<Second> = [0, 0, 0, 5, 9, 2, 0, 0, 0]
            .into_iter()
            .map(second)
            .collect();
        assert_eq!(recovery_seconds(&timeline, 3), Some(3));
        let clean: Vec<Second> = [0, 0, 0, 0].into_iter().map(second).collect();
        assert_eq!(recovery_seconds(&clean, 1), Some(0));
        let never: Vec<Second> = [0, 0, 3, 3].into_iter().map(second).collect();
        assert_eq!(recovery_seconds(&never, 1), None);
    }

    #[test]
    fn a_gentler_growth_shrinks_and_grows_by_its_factor() {
        let mut search = CapacitySearch::with_growth(3000.0, 40_000.0, 1, 1.5);
        search.record(3000.0, false);
        assert_eq!(search.next_rate(), Some(2000.0));
        search.record(2000.0, true);
        assert_eq!(search.next_rate(), Some(2500.0));
        search.record(2500.0, true);
        assert_eq!(search.next_rate(), None, "one bisection only");
        assert_eq!(search.capacity(), 2500.0);
        let mut up = CapacitySearch::with_growth(1000.0, 40_000.0, 1, 1.5);
        up.record(1000.0, true);
        assert_eq!(up.next_rate(), Some(1500.0));
    }

    #[test]
    fn a_slow_edge_lowers_the_fault_rate() {
        assert_eq!(edge_fault_rate(1750.0, None), 1750.0);
        assert_eq!(edge_fault_rate(1750.0, Some(3500.0)), 1750.0);
        assert_eq!(edge_fault_rate(1750.0, Some(1300.0)), 650.0);
        assert_eq!(edge_fault_rate(1750.0, Some(0.0)), 100.0);
    }

    #[test]
    fn later_sizes_start_from_the_previous_capacity() {
        assert_eq!(search_start(None, 400.0, 1), 400.0);
        assert_eq!(search_start(Some(0.0), 400.0, 3), 1200.0);
        assert_eq!(search_start(Some(1800.0), 400.0, 5), 1800.0);
    }

    #[test]
    fn recovery_is_judged_for_reads_and_writes_apart() {
        // Writes fail from the fault (second 3) to second 6; reads only at second 3.
        let timeline: Vec<Second> = (0..9)
            .map(|index| Second {
                completed: 100,
                errors: match index {
                    3 => 12,
                    4..=6 => 10,
                    _ => 0,
                },
                writes: 10,
                write_errors: if (3..=6).contains(&index) { 10 } else { 0 },
                ..Second::default()
            })
            .collect();
        let reads = recovery_seconds_by(&timeline, 3, |s| s.read_errors() > 0);
        let writes = recovery_seconds_by(&timeline, 3, |s| s.write_errors > 0);
        assert_eq!((reads, writes), (Some(1), Some(4)));
        assert_eq!(recovery_seconds(&timeline, 3), Some(4));
    }

    #[test]
    fn fault_text_is_true_to_the_configuration() {
        for fault in Fault::ALL {
            let with_edge = fault.description(4, true);
            let without = fault.description(4, false);
            assert!(with_edge.contains("through the edge"), "{with_edge}");
            assert!(
                !without.contains("through the edge") && without.contains("no edge"),
                "{without}"
            );
        }
        assert!(Fault::KillHalf.description(6, true).contains("1-3 of 6"));
        assert_eq!(Fault::KillHalf.victims(4), vec![1, 2]);
        assert_eq!(Fault::AllOriginsAway.victims(3), vec![1, 2, 3]);
        assert!(
            Fault::AllOriginsAway
                .promise(true)
                .contains("stale-if-error")
        );
        assert!(
            !Fault::AllOriginsAway
                .promise(false)
                .contains("stale-if-error")
        );
        assert!(Fault::RestartPostgres.promise(true).contains("Retry-After"));
    }

    #[test]
    fn fault_rate_is_half_the_nearest_capacity() {
        let result = |instances, capacity_rps| ScalingResult {
            instances,
            capacity_rps,
            steps: Vec::new(),
        };
        let scaling = vec![result(1, 1000.0), result(3, 2600.0), result(5, 4000.0)];
        assert_eq!(fault_rate(&scaling, 4), 1300.0);
        assert_eq!(fault_rate(&[], 4), 100.0);
    }
}
