//! The study's results and its pure decisions: the profiles, the original
//! study's figures, capacity search, recovery time, and run summaries. No I/O
//! except [`Meta::collect`], which reads the machine's description.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recorder::Second;
use crate::results::RunResults;

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
    pub search_start: f64,
    pub search_max: f64,
    pub bisect_steps: u32,
    pub search_step: Duration,
    pub fixed_duration: Duration,
    /// Send the original's request counts (at its rate) instead of a short run.
    pub full_original_counts: bool,
    pub fault_duration: Duration,
    pub tier_duration: Duration,
    pub seed_scale: &'static str,
}

impl Profile {
    pub fn settings(self) -> ProfileSettings {
        match self {
            Profile::Quick => ProfileSettings {
                sizes: &[1, 2, 3, 5, 10],
                search_start: 200.0,
                search_max: 40_000.0,
                bisect_steps: 2,
                search_step: Duration::from_millis(1500),
                fixed_duration: Duration::from_secs(3),
                full_original_counts: false,
                fault_duration: Duration::from_secs(9),
                tier_duration: Duration::from_secs(3),
                seed_scale: "small",
            },
            Profile::Full => ProfileSettings {
                sizes: &[1, 2, 3, 5, 10],
                search_start: 200.0,
                search_max: 80_000.0,
                bisect_steps: 5,
                search_step: Duration::from_secs(10),
                fixed_duration: Duration::from_secs(60),
                full_original_counts: true,
                fault_duration: Duration::from_secs(45),
                tier_duration: Duration::from_secs(30),
                seed_scale: "medium",
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

/// Exponential growth until the objective fails, then bisection.
#[derive(Debug, Clone)]
pub struct CapacitySearch {
    next: Option<f64>,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
    max: f64,
    bisections_left: u32,
}

impl CapacitySearch {
    pub fn new(start: f64, max: f64, bisections: u32) -> Self {
        Self {
            next: Some(start.min(max)),
            highest_pass: None,
            lowest_fail: None,
            max,
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
            (Some(pass), None) if pass < self.max => Some((pass * 2.0).min(self.max)),
            (Some(_), None) => None,
            // Even the first rate failed: halve until something passes.
            (None, Some(fail)) if fail > 25.0 => Some((fail / 2.0).floor()),
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

    pub fn description(self) -> &'static str {
        match self {
            Fault::KillOne => "SIGKILL instance 1 of 4 at 1/3 of the run, restart it at 2/3",
            Fault::KillHalf => "SIGKILL instances 1-2 of 4 at 1/3, restart them at 2/3",
            Fault::StopRedis => "stop Redis at 1/3, start it again at 2/3",
            Fault::RestartPostgres => "restart PostgreSQL at 1/3 (same data, same port)",
            Fault::AllOriginsAway => {
                "SIGKILL every instance at 1/3, restart them at 2/3: the edge answers from its cache (stale-if-error)"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRun {
    pub name: String,
    pub description: String,
    pub rate: f64,
    pub fault_at_s: f64,
    pub repair_at_s: f64,
    pub summary: RunSummary,
    /// Seconds from the fault until the run was clean again (no errors, no
    /// drops) to its end; `None` if it never was.
    pub recovery_s: Option<u64>,
    pub timeline: Vec<Second>,
}

/// Seconds from `fault_second` until every later second is clean.
pub fn recovery_seconds(timeline: &[Second], fault_second: usize) -> Option<u64> {
    if timeline.len() <= fault_second {
        return None;
    }
    // The last second is usually partial (tail of in-flight requests): judge all of it anyway.
    let last_bad = timeline
        .iter()
        .rposition(|second| second.errors > 0 || second.dropped > 0);
    match last_bad {
        None => Some(0),
        Some(bad) if bad < fault_second => Some(0),
        Some(bad) if bad + 1 < timeline.len() => Some((bad + 1 - fault_second) as u64),
        Some(_) => None,
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
    pub profile: String,
    pub slo_ms: f64,
    pub configuration: Vec<(String, String)>,
}

impl Meta {
    pub fn collect(
        args: &super::StudyArgs,
        config: &stack::StackConfig,
        profile: &ProfileSettings,
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
        let configuration = vec![
            ("origin instances".into(), format!("{:?} (capacity search), 4 (faults), 3 (cache tiers)", profile.sizes)),
            (
                "CPU quota per instance".into(),
                config.cpu_per_instance.map_or("none".into(), |cpu| format!("{cpu} core")),
            ),
            ("worker threads per instance".into(), config.worker_threads.to_string()),
            ("database pool per instance".into(), config.db_pool_size.to_string()),
            ("seed scale".into(), config.seed_scale.clone()),
            ("mix".into(), "read-heavy: 25% song, 40% comments page, 25% feed, 8% post, 1% patch, 1% delete; Zipf(1) songs".into()),
            ("capacity objective".into(), format!("p99 < {} ms, errors < 0.1%, dropped < 0.1%", args.slo_ms)),
            ("capacity search".into(), format!("x2 from {}/s per instance, then {} bisections, {:?} per step", profile.search_start, profile.bisect_steps, profile.search_step)),
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
            profile: format!("{:?}", args.profile).to_lowercase(),
            slo_ms: args.slo_ms,
            configuration,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyResults {
    pub meta: Meta,
    pub scaling: Vec<ScalingResult>,
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
