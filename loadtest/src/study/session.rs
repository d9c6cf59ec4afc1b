//! What every phase of the study shares: the stack, the load driver, the health probe and
//! its baselines, the CPU quota, the clock of the progress lines. [`Session::measure`] is
//! the one way a phase runs load ([`Session::measure_together`] runs several loads at
//! once): from a healthy, idle stack, with the CPU each part used and the requests that
//! reached the origins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use stack::{Stack, StackConfig};

use super::StudyArgs;
use super::health::{self, Prober};
use super::meta::{CalibrationFigure, Meta, QuotaChoice};
use super::model::{CpuUse, HealthCheck, RunSummary};
use super::observe::{self, Watched};
use super::profile::ProfileSettings;
use crate::client::Target;
use crate::recorder::AckedWrite;
use crate::results::RunResults;
use crate::runner::{LoadModel, RunOptions};
use crate::scenario::Scenario;
use crate::schedule::Schedule;
use crate::workload::Workload;

/// The load runs of the study: every write they acknowledged (for the lost-write check)
/// and every run's full results in `runs/`.
struct Driver {
    scenario: Scenario,
    workload: Arc<Workload>,
    writes: Vec<AckedWrite>,
    deleted: Vec<uuid::Uuid>,
    runs_dir: PathBuf,
    run_count: usize,
}

impl Driver {
    async fn options(
        &self,
        label: &str,
        url: &str,
        schedule: Schedule,
        quiet: bool,
    ) -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            scenario: label.to_owned(),
            target: Target::resolve(url).await?,
            model: LoadModel::Open {
                schedule,
                max_in_flight: self.scenario.max_in_flight,
            },
            timeout: self.scenario.timeout,
            workload: self.workload.clone(),
            thresholds: Vec::new(),
            progress: (!quiet).then(|| format!("  [{label}]")),
            seed: self.run_count as u64 + 1,
        })
    }

    /// Keeps a finished run: its writes, and its results as `runs/NNN-label.json`.
    fn record(&mut self, label: &str, results: &RunResults) -> anyhow::Result<()> {
        self.writes.extend_from_slice(&results.writes);
        self.deleted.extend_from_slice(&results.deleted);
        self.run_count += 1;
        let file_name: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        results.save(
            &self
                .runs_dir
                .join(format!("{:03}-{file_name}.json", self.run_count)),
        )?;
        Ok(())
    }
}

/// The study's shared state; phases borrow it mutably one after the other.
pub struct Session {
    pub args: StudyArgs,
    pub profile: ProfileSettings,
    pub config: StackConfig,
    pub stack: Stack,
    pub quota: QuotaChoice,
    pub out: PathBuf,
    started: Instant,
    driver: Driver,
    prober: Prober,
    /// The probe's p50 on the idle stack, per target URL and Redis state.
    baselines: Vec<(String, f64)>,
    /// Redis stopped on purpose (a cache tier without it): reads cost more, so the probe
    /// is held against a baseline taken in the same state.
    redis_stopped: bool,
}

impl Session {
    /// Chooses the quota (refusing one this machine cannot enforce), prepares the report
    /// directory, checks the generator, brings the stack up with one instance, warms it
    /// up and takes the probe's baselines.
    pub async fn open(args: &StudyArgs) -> anyhow::Result<(Self, Meta)> {
        let started = Instant::now();
        let profile = args.profile.settings();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let largest_pool = profile.sizes.iter().copied().max().unwrap_or(1);
        let quota = QuotaChoice::choose(
            cores,
            largest_pool,
            args.cpu_per_instance,
            args.cpu_period_ms.map(Duration::from_millis),
        );
        // Before the report's directory, so that a refused study leaves nothing behind.
        quota.check_enforceable(stack::cgroup::Hierarchy::detect())?;
        let out = report_dir(args)?;
        let seed_scale = args
            .seed_scale
            .clone()
            .unwrap_or_else(|| profile.seed_scale.to_owned());
        progress(
            started,
            &format!("profile {:?}, report in {}", args.profile, out.display()),
        );
        progress(
            started,
            &format!("CPU quota per instance: {}", quota.describe()),
        );

        let config = stack_config(args, &out, &seed_scale, &quota)?;
        // Before the calibration's own load (both cores for its seconds) and the stack's start.
        let load_average_start = super::meta::load_average();
        let calibration = calibrate(args, &profile, started).await;
        let (driver, prober) = driver(&seed_scale, &config.jwt_secret, out.join("runs"))?;

        progress(
            started,
            &format!(
                "bringing up the stack ({}, Redis, 1 origin instance, nginx{})",
                config.backend.label(),
                if config.edge { ", edge" } else { "; no edge" }
            ),
        );
        let stack = Stack::up(config.clone())
            .await
            .context("bringing up the local stack")?;
        let mut meta = Meta::collect(
            args,
            &config,
            &profile,
            calibration,
            quota.clone(),
            load_average_start,
        );
        meta.client_timeout_ms = Some(driver.scenario.timeout.as_secs_f64() * 1e3);
        let mut session = Self {
            args: args.clone(),
            profile,
            config,
            stack,
            quota,
            out,
            started,
            driver,
            prober,
            baselines: Vec::new(),
            redis_stopped: false,
        };
        session.warm_up().await?;
        Ok((session, meta))
    }

    /// A progress line on stderr, timed from the study's start.
    pub fn step(&self, text: &str) {
        progress(self.started, text);
    }

    pub fn objective_ms(&self) -> f64 {
        self.args.slo_ms
    }

    /// The first seconds on a cold stack (connection pools, caches, page cache) are slower
    /// than any later ones: a warm-up the report leaves out, then the baselines.
    async fn warm_up(&mut self) -> anyhow::Result<()> {
        let rate = self.profile.search_start * 0.5;
        self.step(&format!(
            "warm-up: {rate:.0}/s for {} s (not reported)",
            self.profile.warm_up.as_secs_f64()
        ));
        let nginx = self.stack.nginx_url();
        self.unreported(
            "warm-up",
            &nginx,
            Schedule::constant(rate, self.profile.warm_up),
        )
        .await?;
        let mut targets = vec![nginx];
        targets.extend(self.stack.edge_url());
        for url in targets {
            self.baseline(&url).await?;
        }
        Ok(())
    }

    /// Fills the origins' Redis before the capacity searches, unreported: `cache_fill` of
    /// the mix at `cache_fill_rate` through the largest pool. The pools are searched one
    /// after another on one Redis whose entries outlive the quick profile's searches
    /// (300 s by default), so without this each pool found a warmer cache than the one
    /// before it: at capacity, the first (one instance) found about half of its lookups
    /// there, the last (ten) two thirds; with it, every pool 63 to 76 % in two quick
    /// studies. It is aimed at the quick profile, whose searches all fit in the entries'
    /// lifetime; the full profile's later pools run past it, on a cache their own load
    /// keeps filled. The stack is left at the largest pool.
    pub async fn fill_cache(&mut self) -> anyhow::Result<()> {
        let (rate, duration) = (self.profile.cache_fill_rate, self.profile.cache_fill);
        let Some(&largest) = self.profile.sizes.iter().max() else {
            return Ok(());
        };
        if duration.is_zero() {
            return Ok(());
        }
        self.stack.scale_to(largest).await?;
        self.step(&format!(
            "filling Redis: {rate:.0}/s for {} s through {largest} instances (not reported), so \
             that every pool's search starts from a warm cache",
            duration.as_secs_f64()
        ));
        let nginx = self.stack.nginx_url();
        self.unreported("cache-fill", &nginx, Schedule::constant(rate, duration))
            .await
    }

    /// Load the report leaves out; its results are still written under `runs/`.
    async fn unreported(
        &mut self,
        label: &str,
        url: &str,
        schedule: Schedule,
    ) -> anyhow::Result<()> {
        let options = self.driver.options(label, url, schedule, true).await?;
        let results = crate::runner::run(options).await;
        self.driver.record(label, &results)
    }

    /// The probe's p50 on the idle stack for `url`: the lower of two clean probes, taken
    /// the first time it is asked for.
    async fn baseline(&mut self, url: &str) -> anyhow::Result<f64> {
        let key = if self.redis_stopped {
            format!("{url} without Redis")
        } else {
            url.to_owned()
        };
        if let Some((_, p50)) = self.baselines.iter().find(|(known, _)| *known == key) {
            return Ok(*p50);
        }
        let within = self.profile.settle_within;
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            let check = health::settle(&self.stack, &mut self.prober, url, None, within).await?;
            best = best.min(check.probe_p50_ms.unwrap_or(f64::INFINITY));
        }
        let p50 = if best.is_finite() { best } else { 1.0 };
        self.step(&format!("  baseline for {key}: probe p50 {p50:.2} ms"));
        self.baselines.push((key, p50));
        Ok(p50)
    }

    /// Stops Redis for runs that measure the stack without it.
    pub async fn stop_redis(&mut self) -> anyhow::Result<()> {
        self.stack.stop_redis().await?;
        self.redis_stopped = true;
        Ok(())
    }

    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        self.stack.start_redis().await?;
        self.redis_stopped = false;
        Ok(())
    }

    /// Waits for a healthy, idle stack before a run against `url` (see [`health`]).
    async fn settle(&mut self, url: &str) -> anyhow::Result<HealthCheck> {
        let baseline = self.baseline(url).await?;
        let within = self.profile.settle_within;
        let check =
            health::settle(&self.stack, &mut self.prober, url, Some(baseline), within).await?;
        if !check.healthy {
            self.step(&format!(
                "  WARNING: not healthy after {:.0} s ({}); the run is marked in the report",
                check.waited_s,
                check.problem.as_deref().unwrap_or("unknown")
            ));
        } else if check.waited_s > 2.0 {
            self.step(&format!(
                "  healthy and idle again after {:.1} s",
                check.waited_s
            ));
        }
        Ok(check)
    }

    /// One measured run: a healthy start, `schedule` against `url`, and what the stack
    /// spent on it.
    pub async fn measure(
        &mut self,
        label: &str,
        url: &str,
        schedule: Schedule,
        quiet: bool,
    ) -> anyhow::Result<(RunResults, RunSummary)> {
        let (results, summary, ()) = self
            .measure_during(label, url, schedule, quiet, async |_| Ok(()))
            .await?;
        Ok((results, summary))
    }

    /// [`measure`](Self::measure) with `action` run against the stack while the load runs
    /// (a fault and its repair), and what the action returned.
    pub async fn measure_during<T>(
        &mut self,
        label: &str,
        url: &str,
        schedule: Schedule,
        quiet: bool,
        action: impl AsyncFnOnce(&mut Stack) -> anyhow::Result<T>,
    ) -> anyhow::Result<(RunResults, RunSummary, T)> {
        let start = self.settle(url).await?;
        let options = self.driver.options(label, url, schedule, quiet).await?;
        let ((results, acted), watched) = self
            .watch(async move |stack| {
                let load = tokio::spawn(crate::runner::run(options));
                let acted = action(stack).await?;
                Ok((load.await.context("the load task")?, acted))
            })
            .await?;
        self.driver.record(label, &results)?;
        let mut summary = RunSummary::of(&results);
        summary.start = Some(start);
        let origins = watched.total();
        summary.cpu = Some(watched.cpu);
        summary.origin_requests = origins.map(|counts| counts.requests);
        summary.origin_cache = origins.map(|counts| counts.cache);
        Ok((results, summary, acted))
    }

    /// Several loads at once, each its own run against its own URL (the neighbours
    /// probe), all started together: how the stack was at the start (checked at nginx),
    /// each run's results in the order given (recorded like any other run, each with its
    /// own seed), what the stack spent meanwhile, and the requests each instance's own
    /// counters saw (`None` where not known, see [`Watched::requests_each`]).
    pub async fn measure_together(
        &mut self,
        label: &str,
        loads: Vec<(String, Schedule)>,
    ) -> anyhow::Result<Together> {
        let nginx = self.stack.nginx_url();
        let start = self.settle(&nginx).await?;
        let mut options = Vec::with_capacity(loads.len());
        for (index, (url, schedule)) in loads.into_iter().enumerate() {
            let mut one = self.driver.options(label, &url, schedule, true).await?;
            // Loads with one seed would ask for the same songs at the same moments.
            one.seed ^= (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            options.push(one);
        }
        let (runs, watched) = self
            .watch(async move |_| {
                let tasks: Vec<_> = options
                    .into_iter()
                    .map(|one| tokio::spawn(crate::runner::run(one)))
                    .collect();
                let mut runs = Vec::with_capacity(tasks.len());
                for task in tasks {
                    runs.push(task.await.context("a load task")?);
                }
                Ok(runs)
            })
            .await?;
        for (index, results) in runs.iter().enumerate() {
            self.driver
                .record(&format!("{label}-{}", index + 1), results)?;
        }
        let origin_requests = watched.requests_each();
        Ok(Together {
            start,
            runs,
            cpu: watched.cpu,
            origin_requests,
        })
    }

    /// Runs `work` (a load, with whatever runs beside it) between two readings of the
    /// stack: every part's CPU and each instance's own counters, just before and just
    /// after, so what a run is charged is what the stack spent while it ran.
    async fn watch<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut Stack) -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, Watched)> {
        let client = observe::stack_client();
        let instances = self.stack.instance_urls();
        let before = observe::origin_counts(&client, &instances).await;
        let cpu_before = observe::cpu_snapshot(&mut self.stack);
        let done = work(&mut self.stack).await?;
        let cpu_after = observe::cpu_snapshot(&mut self.stack);
        let after = observe::origin_counts(&client, &instances).await;
        let watched = Watched::new(
            &cpu_before,
            &cpu_after,
            self.quota.per_instance,
            before,
            after,
        );
        Ok((done, watched))
    }

    /// True when a read or write endpoint name is one of the mix's writes.
    pub fn is_write(&self, endpoint: &str) -> bool {
        self.driver
            .scenario
            .mix
            .iter()
            .any(|entry| entry.kind.is_write() && entry.label() == endpoint)
    }

    /// Every write acknowledged so far, and the comments the runs deleted themselves.
    pub fn acknowledged(&self) -> (&[AckedWrite], &[uuid::Uuid]) {
        (&self.driver.writes, &self.driver.deleted)
    }

    /// Puts `other` (the database tier's Cassandra stack) in the study stack's place, so
    /// that [`measure`](Self::measure) runs on it; [`return_stack`](Self::return_stack)
    /// puts the study's back.
    pub fn lend_stack(&mut self, other: Stack) -> LentStack {
        LentStack {
            study: std::mem::replace(&mut self.stack, other),
            writes_from: self.driver.writes.len(),
            deleted_from: self.driver.deleted.len(),
        }
    }

    /// Puts the study's stack back and returns the other one with the writes it
    /// acknowledged and the comments its runs deleted, which leave the study's own
    /// (the lost-write check looks those up in the study's database).
    pub fn return_stack(&mut self, lent: LentStack) -> (Stack, Vec<AckedWrite>, Vec<uuid::Uuid>) {
        let other = std::mem::replace(&mut self.stack, lent.study);
        let writes = self.driver.writes.split_off(lent.writes_from);
        let deleted = self.driver.deleted.split_off(lent.deleted_from);
        (other, writes, deleted)
    }

    /// Stops the stack.
    pub async fn close(self) {
        self.step("stopping the stack");
        self.stack.down().await;
    }
}

/// The report's directory, the one given or `reports/<UTC time>`, with its
/// `runs/` made.
fn report_dir(args: &StudyArgs) -> anyhow::Result<PathBuf> {
    let out = args.out.clone().unwrap_or_else(|| {
        stack::binaries::workspace_root()
            .join("reports")
            .join(chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string())
    });
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("creating {}", runs_dir.display()))?;
    Ok(out)
}

/// The study stack's configuration: one instance to start with, under `quota`.
fn stack_config(
    args: &StudyArgs,
    out: &Path,
    seed_scale: &str,
    quota: &QuotaChoice,
) -> anyhow::Result<StackConfig> {
    let mut config = if args.ephemeral_ports {
        StackConfig::for_tests(out.join("stack"))?
    } else {
        StackConfig::default()
    };
    config.seed_scale = seed_scale.to_owned();
    config.instances = 1;
    config.edge = !args.no_edge;
    config.backend = args.backend;
    config.cpu_per_instance = quota.per_instance;
    config.cpu_period = quota.period();
    Ok(config)
}

/// The read-heavy load over the seeded data's shape, and the probe beside it.
fn driver(
    seed_scale: &str,
    jwt_secret: &str,
    runs_dir: PathBuf,
) -> anyhow::Result<(Driver, Prober)> {
    let (songs, users) = data_shape(seed_scale);
    let mut scenario = Scenario::read_heavy(songs, users);
    scenario.max_in_flight = 1024;
    let workload = Arc::new(Workload::new(&scenario, Some(jwt_secret))?);
    let prober = Prober::new(&scenario, jwt_secret)?;
    let driver = Driver {
        scenario,
        workload,
        writes: Vec::new(),
        deleted: Vec::new(),
        runs_dir,
        run_count: 0,
    };
    Ok((driver, prober))
}

/// What [`Session::measure_together`] measured.
pub struct Together {
    pub start: HealthCheck,
    pub runs: Vec<RunResults>,
    pub cpu: CpuUse,
    /// Requests each instance's own counters saw, in `Stack::instance_urls`' order
    /// (`None` where not known, see [`Watched::requests_each`]).
    pub origin_requests: Vec<Option<u64>>,
}

/// The study's stack while another one stands in its place (see [`Session::lend_stack`]).
pub struct LentStack {
    study: Stack,
    writes_from: usize,
    deleted_from: usize,
}

fn progress(started: Instant, text: &str) {
    eprintln!("[study {:>6.1}s] {text}", started.elapsed().as_secs_f64());
}

fn data_shape(seed_scale: &str) -> (u64, u64) {
    match seed_scale {
        "tiny" => (1_000, 1_000),
        "medium" => (1_000_000, 100_000),
        "full" => (10_000_000, 1_000_000),
        _ => (10_000, 10_000),
    }
}

/// The generator against wrk on nginx `return 200`, before the stack takes the cores.
async fn calibrate(
    args: &StudyArgs,
    profile: &ProfileSettings,
    started: Instant,
) -> Option<Result<CalibrationFigure, String>> {
    let calibrate_for = args
        .calibrate_seconds
        .map_or(profile.calibrate, Duration::from_secs);
    if calibrate_for.is_zero() {
        return None;
    }
    progress(
        started,
        &format!(
            "generator check: wrk and loadtest on nginx `return 200`, {} s each",
            calibrate_for.as_secs()
        ),
    );
    let outcome = crate::calibrate::calibrate(calibrate_for, 64).await;
    match &outcome {
        Ok(calibration) => progress(
            started,
            &format!(
                "  wrk {:.0}/s, loadtest {:.0}/s: ratio {:.2}",
                calibration.wrk_rate,
                calibration.generator_rate,
                calibration.ratio()
            ),
        ),
        Err(error) => progress(started, &format!("  not measured: {error}")),
    }
    Some(
        outcome
            .as_ref()
            .map(CalibrationFigure::from)
            .map_err(|error| format!("{error}")),
    )
}
