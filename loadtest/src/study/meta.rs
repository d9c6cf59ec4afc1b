//! Where and how the study ran: the machine, the revision, the generator check, the CPU
//! quota and the configuration table.

use serde::{Deserialize, Serialize};

use super::profile::ProfileSettings;

/// Where and how the study ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub date: String,
    pub git_revision: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    /// The 1-minute load average before the calibration (so before the study's
    /// own load) and when the study ended: other work on the machine shows up in
    /// every figure.
    #[serde(default)]
    pub load_average_start: Option<f64>,
    #[serde(default)]
    pub load_average_end: Option<f64>,
    pub profile: String,
    pub slo_ms: f64,
    /// The load went through the edge (false: `--no-edge`).
    #[serde(default)]
    pub edge: bool,
    /// The database of the study's stack (`--backend`); reports before it ran on PostgreSQL.
    #[serde(default)]
    pub backend: stack::DatabaseBackend,
    /// The generator against wrk on nginx `return 200`, measured before the
    /// stack came up; `Err` says why it was not.
    #[serde(default)]
    pub calibration: Option<Result<CalibrationFigure, String>>,
    /// The origin instances' CPU quota and how it was chosen.
    #[serde(default)]
    pub quota: Option<QuotaChoice>,
    /// How long the generator waits for a response before counting a timeout: a
    /// percentile at or above it is the timeout, not a latency.
    #[serde(default)]
    pub client_timeout_ms: Option<f64>,
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
    /// The configuration table's value for `name`, if this report has that row.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.configuration
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn collect(
        args: &super::StudyArgs,
        config: &stack::StackConfig,
        profile: &ProfileSettings,
        calibration: Option<Result<CalibrationFigure, String>>,
        quota: QuotaChoice,
        load_average_start: Option<f64>,
    ) -> Self {
        let git_revision = git_revision();
        let memory_kib = memory_kib();
        let cpu_model = cpu_model();
        let configuration = configuration(args, config, profile, &quota);
        Self {
            date: chrono::Utc::now().to_rfc3339(),
            git_revision,
            cores: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            cpu_model,
            load_average_start,
            load_average_end: None,
            profile: profile_name(args),
            slo_ms: args.slo_ms,
            edge: config.edge,
            backend: config.backend,
            calibration,
            quota: Some(quota),
            client_timeout_ms: None,
            configuration,
        }
    }
}

/// Runs git in the workspace root; its trimmed output, or `None` if it could not.
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .current_dir(stack::binaries::workspace_root())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The short revision of `HEAD`, marked when tracked files have uncommitted changes.
fn git_revision() -> String {
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Tracked files only: an untracked file (a report, a scratch note) changes no build.
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    if dirty {
        format!("{revision} (with uncommitted changes)")
    } else {
        revision
    }
}

/// The machine's memory from `/proc/meminfo`, 0 if it cannot be read.
fn memory_kib() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// The first processor's model name from `/proc/cpuinfo`.
fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The profile as the command line spells it (`quick`, `full`).
fn profile_name(args: &super::StudyArgs) -> String {
    format!("{:?}", args.profile).to_lowercase()
}

/// The report's configuration table: what ran, with which settings, in the order shown.
fn configuration(
    args: &super::StudyArgs,
    config: &stack::StackConfig,
    profile: &ProfileSettings,
    quota: &QuotaChoice,
) -> Vec<(String, String)> {
    vec![
        ("profile".into(), profile.trade.into()),
        ("origin instances".into(), format!("{:?} (capacity search), {} (faults), {} (cache tiers)", profile.sizes, super::FAULT_POOL, super::CDN_POOL)),
        ("load path".into(), load_path(config.edge).into()),
        ("CPU quota per instance".into(), quota.describe()),
        ("worker threads per instance".into(), config.worker_threads.to_string()),
        ("database pool per instance".into(), config.db_pool_size.to_string()),
        ("seed scale".into(), config.seed_scale.clone()),
        ("mix".into(), "read-heavy: 25% song, 40% comments page, 25% feed, 8% post, 1% patch, 1% delete; Zipf(1) songs".into()),
        ("capacity objective".into(), format!("p99 < {} ms, errors < 0.1%, dropped < 0.1%", args.slo_ms)),
        ("capacity search".into(), format!(
            "1st size: from {}/s, x2 while it meets the objective (÷2 while it fails), then {} bisections; later sizes: x{} from the previous size's capacity (÷{} while it fails), then {} bisection(s)",
            profile.search_start, profile.bisect_steps + 1, profile.search_growth, profile.search_growth, profile.bisect_steps,
        )),
        ("healthy start".into(), healthy_start(profile)),
        ("capacity step duration".into(), format!(
            "{} s per step ({} profile; at 1000/s a step's p99 rests on its {} slowest requests)",
            profile.search_step.as_secs_f64(),
            profile_name(args),
            (profile.search_step.as_secs_f64() * 1000.0 / 100.0).round()
        )),
        ("warm-up".into(), format!(
            "{} s at {}/s before the first capacity step (not reported)",
            profile.warm_up.as_secs_f64(),
            profile.search_start * 0.5,
        )),
        (CACHE_FILL.into(), format!(
            "{} s at {}/s through the largest pool ({} instances) before the capacity searches (not reported): the pools are searched one after another on one Redis, and without it each found a warmer cache than the one before",
            profile.cache_fill.as_secs_f64(),
            profile.cache_fill_rate,
            profile.sizes.iter().max().copied().unwrap_or(1),
        )),
        (RUN_LENGTHS.into(), run_durations(profile)),
        ("edge capacity search".into(), edge_search(config.edge, profile)),
        ("database tier".into(), format!(
            "origin bench-queries on PostgreSQL and one Cassandra node, {:?} closed-loop clients, {} s per cell after {} s of warm-up, each database warmed by {} s of the three reads before its first cell; capacity of {} instances on each (the study stack's from the capacity search)",
            profile.db_query_clients,
            profile.db_query_seconds,
            profile.db_query_warmup,
            profile.db_backend_warmup,
            super::database::DATABASE_POOL,
        )),
        ("load generator".into(), "loadtest (open model, latency from the intended start), on the same machine".into()),
    ]
}

/// Which runs go through the edge and which straight to nginx.
fn load_path(edge: bool) -> &'static str {
    if edge {
        "capacity and fixed-rate runs straight to nginx (the edge cache would hide the origins); faults through the edge; cache tiers both ways"
    } else {
        "every run straight to nginx (--no-edge: no edge, no edge-cache tiers)"
    }
}

/// What a measured run waits for before it starts, and for how long.
fn healthy_start(profile: &ProfileSettings) -> String {
    format!(
        "before every measured run: every instance's /readyz, nginx sending to every instance (each one's own request counter rises), and a {} s read-only probe at {}/s whose p50 is back within {} × the baseline + {} ms, without errors; waited for up to {} s, else the run is marked",
        super::health::PROBE_DURATION.as_secs_f64(),
        super::health::PROBE_RATE,
        super::health::BASELINE_FACTOR,
        super::health::BASELINE_SLACK_MS,
        profile.settle_within.as_secs_f64()
    )
}

/// The configuration's line with the load that filled Redis before the capacity searches.
pub const CACHE_FILL: &str = "cache fill";

/// The configuration's line with the lengths of the fixed-rate, fault and tier runs.
pub const RUN_LENGTHS: &str = "fixed-rate, fault and tier runs";

/// How long the fixed-rate, fault and tier runs last.
fn run_durations(profile: &ProfileSettings) -> String {
    let fixed = if profile.full_original_counts {
        let seconds: Vec<String> = super::profile::ORIGINAL_SUMMARY
            .iter()
            .map(|row| format!("{}", row.requests as f64 / super::profile::ORIGINAL_RATE))
            .collect();
        format!(
            "the original's request counts at {}/s ({} s)",
            super::profile::ORIGINAL_RATE,
            seconds.join(", ")
        )
    } else {
        format!("{} s", profile.fixed_duration.as_secs_f64())
    };
    format!(
        "fixed: {fixed}; faults: {} s each (fault at 1/3, repair at 2/3; a restart of the \
         database repairs itself); tiers: {} s each",
        profile.fault_duration.as_secs_f64(),
        profile.tier_duration.as_secs_f64()
    )
}

/// How the edge's capacity is searched, or that it is not (`--no-edge`).
fn edge_search(edge: bool, profile: &ProfileSettings) -> String {
    if !edge {
        return "none (no edge)".into();
    }
    format!(
        "steps of {} s on {} instances, from the larger of that pool's nginx capacity and {}/s, x{} (÷{} while it fails), then {} bisection(s)",
        profile.search_step.as_secs_f64(),
        super::CDN_POOL,
        profile.search_start,
        profile.search_growth,
        profile.search_growth,
        profile.bisect_steps
    )
}

/// The machine's 1-minute load average.
pub fn load_average() -> Option<f64> {
    stack::cpu::load_averages().map(|[one_minute, ..]| one_minute)
}

/// The share of the machine's cores the largest pool gets: at 7,777/s a pool of three
/// (0.6 core of quota) left the other parts using about 1.4 cores, so the pool may have
/// about a quarter of the machine and the rest of the stack the other three quarters.
pub const POOL_SHARE_OF_MACHINE: f64 = 0.25;

/// The origin instances' CPU quota and how it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaChoice {
    /// Cores per instance; `None` runs the instances without a quota.
    pub per_instance: Option<f64>,
    /// The CFS period it is enforced over, in milliseconds.
    pub period_ms: Option<f64>,
    /// Derived from the machine (true) or set on the command line.
    pub derived: bool,
    pub cores: usize,
    pub largest_pool: usize,
}

impl QuotaChoice {
    /// `cores × 25 % / largest pool`, rounded down to a thousandth of a core, unless
    /// `requested` sets it (0 for no quota); the period is `requested_period` or the
    /// shortest the kernel's 1 ms minimum quota allows ([`stack::cgroup::cfs_period`]).
    pub fn choose(
        cores: usize,
        largest_pool: usize,
        requested: Option<f64>,
        requested_period: Option<std::time::Duration>,
    ) -> Self {
        let derived = (cores as f64 * POOL_SHARE_OF_MACHINE / largest_pool.max(1) as f64 * 1000.0)
            .floor()
            / 1000.0;
        let per_instance = match requested {
            Some(share) if share <= 0.0 => None,
            Some(share) => Some(share),
            None => Some(derived.max(0.001)),
        };
        let period = per_instance
            .map(|share| requested_period.unwrap_or_else(|| stack::cgroup::cfs_period(share)));
        Self {
            per_instance,
            period_ms: period.map(|period| period.as_secs_f64() * 1000.0),
            derived: requested.is_none(),
            cores,
            largest_pool,
        }
    }

    /// Refuses a quota this machine cannot enforce: without a writable cgroup hierarchy
    /// the stack runs its instances unlimited (with a warning, which `stack up` can live
    /// with), and a report whose every capacity says "0.05 core per instance" would then
    /// describe instances that shared every core.
    pub fn check_enforceable(
        &self,
        hierarchy: Result<stack::cgroup::Hierarchy, stack::cgroup::CgroupError>,
    ) -> anyhow::Result<()> {
        match (self.per_instance, hierarchy) {
            (Some(share), Err(error)) => anyhow::bail!(
                "the study runs each origin instance under a CPU quota ({share} core), and {error}: \
                 its instances would share every core, so no pool size would model separate nodes. \
                 Run it as root (or with a delegated cgroup), or pass --cpu-per-instance 0 to study \
                 without a quota (the report then says so)"
            ),
            _ => Ok(()),
        }
    }

    /// The period as the stack takes it.
    pub fn period(&self) -> Option<std::time::Duration> {
        self.period_ms
            .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
    }

    /// One line for the report: the figures and the rule.
    pub fn describe(&self) -> String {
        let Some(share) = self.per_instance else {
            return "none (--cpu-per-instance 0): instances share every core, so pool sizes are not comparable nodes".into();
        };
        let period = self.period_ms.unwrap_or(100.0);
        let stall = period * (1.0 - share.min(1.0));
        let how = if self.derived {
            format!(
                "derived: {} cores × {:.0} % for the largest pool of {}, so that pool has {:.2} core and nginx, the edge, the database, Redis and the generator keep {:.2}; --cpu-per-instance overrides",
                self.cores,
                POOL_SHARE_OF_MACHINE * 100.0,
                self.largest_pool,
                share * self.largest_pool as f64,
                self.cores as f64 - share * self.largest_pool as f64
            )
        } else {
            "set by --cpu-per-instance".to_owned()
        };
        format!(
            "{share} core, CFS period {period:.0} ms (a throttled instance waits at most {stall:.0} ms; --cpu-period-ms overrides); {how}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_the_machine_cannot_enforce_is_refused() {
        use stack::cgroup::{CgroupError, Hierarchy};
        let quota = QuotaChoice::choose(2, 10, None, None);
        let refused = quota
            .check_enforceable(Err(CgroupError::Unavailable))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("CPU quota (0.05 core)")
                && refused.contains("is writable here")
                && refused.contains("--cpu-per-instance 0"),
            "{refused}"
        );
        let v2 = Hierarchy::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        assert!(quota.check_enforceable(Ok(v2)).is_ok());
        let none = QuotaChoice::choose(2, 10, Some(0.0), None);
        assert!(
            none.check_enforceable(Err(CgroupError::Unavailable))
                .is_ok()
        );
    }

    #[test]
    fn the_quota_leaves_the_rest_of_the_stack_room() {
        let two = QuotaChoice::choose(2, 10, None, None);
        assert_eq!(two.per_instance, Some(0.05));
        assert_eq!(two.period_ms, Some(20.0));
        assert!(two.derived);
        let text = two.describe();
        assert!(
            text.starts_with(
                "0.05 core, CFS period 20 ms (a throttled instance waits at most 19 ms"
            ),
            "{text}"
        );
        assert!(
            text.contains("pool has 0.50 core") && text.contains("keep 1.50"),
            "{text}"
        );
        assert_eq!(
            QuotaChoice::choose(8, 10, None, None).per_instance,
            Some(0.2)
        );
        assert_eq!(
            QuotaChoice::choose(2, 3, None, None).per_instance,
            Some(0.166)
        );
        let set = QuotaChoice::choose(
            2,
            10,
            Some(0.2),
            Some(std::time::Duration::from_millis(100)),
        );
        assert_eq!(
            (set.per_instance, set.period_ms, set.derived),
            (Some(0.2), Some(100.0), false)
        );
        let none = QuotaChoice::choose(2, 10, Some(0.0), None);
        assert_eq!((none.per_instance, none.period()), (None, None));
        assert!(none.describe().starts_with("none"));
    }
}
