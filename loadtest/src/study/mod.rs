//! The scaling study: on the local stack (real PostgreSQL, Redis, nginx,
//! origin instances under CPU quotas, the edge), a capacity search per pool
//! size, fixed-rate runs at the original study's loads, the cache tiers,
//! faults during load, the lost-write check, and the report.
//!
//! Layout: this file runs the steps; [`model`] holds the results' shapes and
//! the pure logic (capacity search decisions, recovery time); [`report`]
//! writes Markdown and HTML; [`svg`] draws the charts.

pub mod model;
pub mod report;
pub mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use stack::{Stack, StackConfig};

use crate::client::Target;
use crate::recorder::AckedWrite;
use crate::results::RunResults;
use crate::runner::{LoadModel, RunOptions};
use crate::scenario::Scenario;
use crate::schedule::Schedule;
use crate::workload::Workload;
use model::{
    CalibrationFigure, CapacitySearch, ClassSummary, FaultRun, FixedRun, Meta, ORIGINAL_SUMMARY,
    Profile, RunSummary, ScalingResult, StudyResults, TierRun, WriteCheck, recovery_seconds,
    recovery_seconds_by,
};

/// Instances in the pool the faults are injected into.
pub const FAULT_POOL: usize = 4;
/// Instances behind the cache-tier runs.
pub const TIER_POOL: usize = 3;
/// Quiet between capacity steps, so that one step's tail does not fall on the next.
pub const STEP_PAUSE: Duration = Duration::from_millis(200);

/// `loadtest study` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StudyArgs {
    /// quick (a couple of minutes: the README's main command) or full.
    #[arg(long, value_enum, default_value = "quick")]
    pub profile: Profile,
    /// Report directory; default reports/<UTC date-time>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Latency objective of the capacity search (p99, milliseconds).
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,
    /// Use free ports and a run directory inside the report directory instead of
    /// the fixed local-stack ports (for tests and for running beside a stack).
    #[arg(long)]
    pub ephemeral_ports: bool,
    /// Seed scale of the database (tiny, small, medium, full).
    #[arg(long)]
    pub seed_scale: Option<String>,
    /// Run without the edge (faults then go through nginx; no edge-cache tiers).
    #[arg(long)]
    pub no_edge: bool,
    /// Seconds for each half of the generator-versus-wrk check run before the
    /// stack comes up (default: the profile's; 0 skips it).
    #[arg(long)]
    pub calibrate_seconds: Option<u64>,
}

fn step(text: &str, started: Instant) {
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

/// Everything a load run in the study shares.
struct Driver {
    scenario: Scenario,
    workload: Arc<Workload>,
    writes: Vec<AckedWrite>,
    deleted: Vec<uuid::Uuid>,
    runs_dir: PathBuf,
    run_count: usize,
}

impl Driver {
    async fn load(
        &mut self,
        label: &str,
        url: &str,
        schedule: Schedule,
        quiet: bool,
    ) -> anyhow::Result<RunResults> {
        let target = Target::resolve(url).await?;
        let results = crate::runner::run(RunOptions {
            scenario: label.to_owned(),
            target,
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
        .await;
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
        Ok(results)
    }
}

pub async fn run(args: StudyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let profile = args.profile.settings();
    let out = args.out.clone().unwrap_or_else(|| {
        stack::binaries::workspace_root()
            .join("reports")
            .join(chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string())
    });
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("creating {}", runs_dir.display()))?;
    let seed_scale = args
        .seed_scale
        .clone()
        .unwrap_or_else(|| profile.seed_scale.to_owned());
    step(
        &format!("profile {:?}, report in {}", args.profile, out.display()),
        started,
    );

    let mut config = if args.ephemeral_ports {
        StackConfig::for_tests(out.join("stack"))?
    } else {
        StackConfig::default()
    };
    config.seed_scale = seed_scale.clone();
    config.instances = 1;
    config.edge = !args.no_edge;
    // The generator against wrk on nginx `return 200`, before the stack takes the cores.
    let calibrate_for = args
        .calibrate_seconds
        .map_or(profile.calibrate, Duration::from_secs);
    let calibration = if calibrate_for.is_zero() {
        None
    } else {
        step(
            &format!(
                "generator check: wrk and loadtest on nginx `return 200`, {} s each",
                calibrate_for.as_secs()
            ),
            started,
        );
        let outcome = crate::calibrate::calibrate(calibrate_for, 64).await;
        match &outcome {
            Ok(calibration) => step(
                &format!(
                    "  wrk {:.0}/s, loadtest {:.0}/s: ratio {:.2}",
                    calibration.wrk_rate,
                    calibration.generator_rate,
                    calibration.ratio()
                ),
                started,
            ),
            Err(error) => step(&format!("  not measured: {error}"), started),
        }
        Some(
            outcome
                .as_ref()
                .map(CalibrationFigure::from)
                .map_err(|error| format!("{error}")),
        )
    };
    let (songs, users) = data_shape(&seed_scale);
    let mut scenario = Scenario::read_heavy(songs, users);
    scenario.max_in_flight = 1024;
    let workload = Arc::new(Workload::new(&scenario, Some(&config.jwt_secret))?);
    let mut driver = Driver {
        scenario,
        workload,
        writes: Vec::new(),
        deleted: Vec::new(),
        runs_dir,
        run_count: 0,
    };

    step(
        if config.edge {
            "bringing up the stack (PostgreSQL, Redis, 1 origin instance, nginx, edge)"
        } else {
            "bringing up the stack (PostgreSQL, Redis, 1 origin instance, nginx; no edge)"
        },
        started,
    );
    let mut stack = Stack::up(config.clone())
        .await
        .context("bringing up the local stack")?;
    let meta = Meta::collect(&args, &config, &profile, calibration);

    // A warm-up the report leaves out: the first seconds on a cold stack
    // (connection pools, caches, page cache) are slower than any later ones,
    // and they would otherwise fall on the first capacity step.
    step(
        &format!(
            "warm-up: {:.0}/s for {} s (not reported)",
            profile.search_start * 0.5,
            profile.warm_up.as_secs_f64()
        ),
        started,
    );
    driver
        .load(
            "warm-up",
            &stack.nginx_url(),
            Schedule::constant(profile.search_start * 0.5, profile.warm_up),
            true,
        )
        .await?;

    // 1. Capacity per pool size, through nginx (the edge cache would hide the origins).
    // The original's fixed-rate runs go right after the search of their pool
    // size, while the pool is up.
    let mut scaling: Vec<ScalingResult> = Vec::new();
    let mut fixed = Vec::new();
    for &instances in profile.sizes {
        stack.scale_to(instances).await?;
        step(
            &format!(
                "capacity search with {instances} instance(s), {} s per step",
                profile.search_step.as_secs_f64()
            ),
            started,
        );
        let previous = scaling.last().map(|previous| previous.capacity_rps);
        let mut search = if previous.is_some_and(|capacity| capacity > 0.0) {
            CapacitySearch::with_growth(
                model::search_start(previous, profile.search_start, instances),
                profile.search_max,
                profile.bisect_steps,
                profile.search_growth,
            )
        } else {
            CapacitySearch::new(
                model::search_start(previous, profile.search_start, instances),
                profile.search_max,
                profile.bisect_steps + 1,
            )
        };
        let steps = search_steps(
            &mut driver,
            &mut search,
            &stack.nginx_url(),
            &format!("capacity-{instances}x"),
            profile.search_step,
            args.slo_ms,
            started,
        )
        .await?;
        step(
            &format!(
                "  capacity with {instances} instance(s): {:.0} requests/s",
                search.capacity()
            ),
            started,
        );
        scaling.push(ScalingResult {
            instances,
            capacity_rps: search.capacity(),
            steps,
        });
        for original in ORIGINAL_SUMMARY
            .iter()
            .filter(|original| original.instances == instances)
        {
            fixed.push(fixed_run(&mut driver, &stack, original, &profile, started).await?);
        }
    }

    // 2. The original's loads at a fixed rate, for its sizes the search did not visit.
    for original in ORIGINAL_SUMMARY {
        if !fixed.iter().any(|run: &FixedRun| run.original == *original) {
            stack.scale_to(original.instances).await?;
            fixed.push(fixed_run(&mut driver, &stack, original, &profile, started).await?);
        }
    }
    fixed.sort_by_key(|run| run.original.instances);

    // 3. Faults during load (through the edge when there is one), on a pool of four,
    //    at half the pool's capacity, or half the edge's when the edge carries less.
    stack.scale_to(FAULT_POOL).await?;
    let nginx_rate = model::fault_rate(&scaling, FAULT_POOL);
    let edge_capacity = match stack.edge_url() {
        Some(edge_url) => {
            step(
                &format!(
                    "edge capacity (cache on, {FAULT_POOL} instances behind it), up to {:.0}/s, {} s per step",
                    2.0 * nginx_rate,
                    profile.edge_step.as_secs_f64()
                ),
                started,
            );
            // From half the nginx-derived rate, doubling up to the pool's capacity, or
            // halving while it fails (the wasm edge is slower than nginx here).
            let mut search =
                CapacitySearch::new(nginx_rate * 0.5, 2.0 * nginx_rate, profile.bisect_steps);
            let steps = search_steps(
                &mut driver,
                &mut search,
                &edge_url,
                "edge",
                profile.edge_step,
                args.slo_ms,
                started,
            )
            .await?;
            step(
                &format!(
                    "  the edge carried {:.0} requests/s within the objective",
                    search.capacity()
                ),
                started,
            );
            Some(ScalingResult {
                instances: FAULT_POOL,
                capacity_rps: search.capacity(),
                steps,
            })
        }
        None => None,
    };
    let fault_rate = model::edge_fault_rate(
        nginx_rate,
        edge_capacity.as_ref().map(|edge| edge.capacity_rps),
    );
    let mut faults = Vec::new();
    for fault in model::Fault::ALL {
        step(
            &format!(
                "fault '{}' during {fault_rate:.0}/s: {}",
                fault.name(),
                fault.description(FAULT_POOL, config.edge)
            ),
            started,
        );
        let run = run_fault(
            &mut driver,
            &mut stack,
            fault,
            fault_rate,
            profile.fault_duration,
            FAULT_POOL,
        )
        .await?;
        let recovered =
            |seconds: Option<u64>| seconds.map_or("never".to_owned(), |s| format!("{s} s"));
        step(
            &format!(
                "  reads: errors {} ({:.3}%), p99 {:.1} ms, clean after {}; writes: errors {} ({:.3}%), p99 {:.1} ms, clean after {}; classes: {}",
                run.reads.errors,
                run.reads.error_rate * 100.0,
                run.reads.p99_ms,
                recovered(run.read_recovery_s),
                run.writes.errors,
                run.writes.error_rate * 100.0,
                run.writes.p99_ms,
                recovered(run.write_recovery_s),
                run.error_classes(),
            ),
            started,
        );
        faults.push(run);
    }

    // 4. Cache tiers: edge cache and Redis, each on and off.
    let tier_rate = fault_rate;
    let mut tiers = Vec::new();
    stack.scale_to(TIER_POOL).await?;
    for redis in [true, false] {
        if !redis {
            stack.stop_redis().await?;
        }
        let mut targets = vec![(false, stack.nginx_url())];
        if let Some(edge_url) = stack.edge_url() {
            targets.insert(0, (true, edge_url));
        }
        for (edge_cache, url) in targets {
            step(
                &format!(
                    "cache tier: edge cache {}, Redis {} at {tier_rate:.0}/s",
                    on_off(edge_cache),
                    on_off(redis)
                ),
                started,
            );
            let label = format!("tier-edge-{}-redis-{}", on_off(edge_cache), on_off(redis));
            let results = driver
                .load(
                    &label,
                    &url,
                    Schedule::constant(tier_rate, profile.tier_duration),
                    true,
                )
                .await?;
            tiers.push(TierRun {
                edge_cache,
                redis,
                rate: tier_rate,
                summary: RunSummary::of(&results),
            });
        }
        if !redis {
            stack.start_redis().await?;
        }
    }

    // 5. Every acknowledged write must be in PostgreSQL.
    step(
        &format!(
            "lost-write check: {} acknowledged writes",
            driver.writes.len()
        ),
        started,
    );
    let writes = check_writes(stack.database_url(), &driver.writes, &driver.deleted).await?;
    step(&format!("  lost writes: {}", writes.lost), started);

    step("stopping the stack", started);
    stack.down().await;

    let mut meta = meta;
    meta.load_average_end = model::load_average();
    meta.configuration.push((
        "fault and tier rate".into(),
        match &edge_capacity {
            Some(edge) => format!(
                "{fault_rate:.0}/s: the lower of half the capacity of the largest pool of at most {FAULT_POOL} instances \
                 ({nginx_rate:.0}/s) and half the edge's capacity ({:.0}/s)",
                edge.capacity_rps * 0.5
            ),
            None => format!(
                "{fault_rate:.0}/s: half the capacity of the largest pool of at most {FAULT_POOL} instances"
            ),
        },
    ));
    let study = StudyResults {
        meta,
        scaling,
        edge_capacity,
        fixed,
        tiers,
        faults,
        writes,
    };
    report::write(&out, &study)?;
    step(
        &format!(
            "report written: {} (index.html, report.md, results.json)",
            out.display()
        ),
        started,
    );
    println!("{}", report::markdown(&study));
    Ok(if study.writes.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One of the original's configurations at its rate (400/s), on the pool as it is.
async fn fixed_run(
    driver: &mut Driver,
    stack: &Stack,
    original: &model::OriginalRow,
    profile: &model::ProfileSettings,
    started: Instant,
) -> anyhow::Result<FixedRun> {
    let seconds = if profile.full_original_counts {
        original.requests as f64 / model::ORIGINAL_RATE
    } else {
        profile.fixed_duration.as_secs_f64()
    };
    step(
        &format!(
            "fixed rate {} /s for {seconds:.0}s with {} instance(s)",
            model::ORIGINAL_RATE,
            original.instances
        ),
        started,
    );
    let schedule = Schedule::constant(model::ORIGINAL_RATE, Duration::from_secs_f64(seconds));
    let results = driver
        .load(
            &format!("fixed-{}x", original.instances),
            &stack.nginx_url(),
            schedule,
            false,
        )
        .await?;
    Ok(FixedRun {
        original: *original,
        ours: RunSummary::of(&results),
    })
}

/// Runs a capacity search's steps against `url`; every step's summary, in order.
async fn search_steps(
    driver: &mut Driver,
    search: &mut CapacitySearch,
    url: &str,
    label: &str,
    step_duration: Duration,
    slo_ms: f64,
    started: Instant,
) -> anyhow::Result<Vec<RunSummary>> {
    let mut steps = Vec::new();
    while let Some(rate) = search.next_rate() {
        let results = driver
            .load(
                &format!("{label}-{rate:.0}"),
                url,
                Schedule::constant(rate, step_duration),
                true,
            )
            .await?;
        let summary = RunSummary::of(&results);
        let passed = summary.meets(slo_ms);
        step(
            &format!(
                "  {rate:>8.0}/s -> p99 {:>8.2} ms, errors {:.3}%, dropped {:.2}%: {}",
                summary.p99_ms,
                summary.error_rate * 100.0,
                summary.dropped_rate * 100.0,
                if passed { "within objective" } else { "over" }
            ),
            started,
        );
        search.record(rate, passed);
        steps.push(summary);
        tokio::time::sleep(STEP_PAUSE).await;
    }
    Ok(steps)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

async fn run_fault(
    driver: &mut Driver,
    stack: &mut Stack,
    fault: model::Fault,
    rate: f64,
    duration: Duration,
    instances: usize,
) -> anyhow::Result<FaultRun> {
    let through_edge = stack.edge_url().is_some();
    let edge = stack.edge_url().unwrap_or_else(|| stack.nginx_url());
    let fault_at = duration / 3;
    let repair_at = duration * 2 / 3;
    let label = format!("fault-{}", fault.name());
    let schedule = Schedule::constant(rate, duration);
    // The load runs in its own task while this one injects and repairs.
    let target = Target::resolve(&edge).await?;
    let options = RunOptions {
        scenario: label.clone(),
        target,
        model: LoadModel::Open {
            schedule,
            max_in_flight: driver.scenario.max_in_flight,
        },
        timeout: driver.scenario.timeout,
        workload: driver.workload.clone(),
        thresholds: Vec::new(),
        progress: Some(format!("  [{label}]")),
        seed: driver.run_count as u64 + 1000,
    };
    let load = tokio::spawn(crate::runner::run(options));
    let began = tokio::time::Instant::now();
    tokio::time::sleep_until(began + fault_at).await;
    let victims = fault.victims(instances);
    match fault {
        model::Fault::StopRedis => stack.stop_redis().await?,
        model::Fault::RestartPostgres => stack.restart_postgres().await?,
        _ => {
            for &victim in &victims {
                stack.kill_instance(victim)?;
            }
        }
    }
    tokio::time::sleep_until(began + repair_at).await;
    match fault {
        model::Fault::StopRedis => stack.start_redis().await?,
        model::Fault::RestartPostgres => {}
        _ => stack.restart_instances(&victims).await?,
    }
    let results = load.await.context("the load task")?;
    driver.writes.extend_from_slice(&results.writes);
    driver.deleted.extend_from_slice(&results.deleted);
    driver.run_count += 1;
    results.save(
        &driver
            .runs_dir
            .join(format!("{:03}-{label}.json", driver.run_count)),
    )?;
    let fault_second = fault_at.as_secs_f64();
    let is_write = |name: &str| {
        driver
            .scenario
            .mix
            .iter()
            .any(|entry| entry.kind.is_write() && entry.label() == name)
    };
    let timeline = &results.timeline;
    let fault_index = fault_second as usize;
    Ok(FaultRun {
        name: fault.name().to_owned(),
        description: fault.description(instances, through_edge),
        promise: fault.promise(through_edge).to_owned(),
        through: if through_edge {
            "the edge"
        } else {
            "nginx (no edge)"
        }
        .to_owned(),
        rate,
        fault_at_s: fault_second,
        repair_at_s: repair_at.as_secs_f64(),
        summary: RunSummary::of(&results),
        reads: ClassSummary::of_endpoints(&results, |name| !is_write(name))?,
        writes: ClassSummary::of_endpoints(&results, is_write)?,
        recovery_s: recovery_seconds(timeline, fault_index),
        read_recovery_s: recovery_seconds_by(timeline, fault_index, |second| {
            second.read_errors() > 0 || second.dropped > 0
        }),
        write_recovery_s: recovery_seconds_by(timeline, fault_index, |second| {
            second.write_errors > 0 || second.dropped > 0
        }),
        timeline: timeline.clone(),
    })
}

/// Looks every acknowledged (and not deleted) write up in PostgreSQL.
async fn check_writes(
    database_url: &str,
    writes: &[AckedWrite],
    deleted: &[uuid::Uuid],
) -> anyhow::Result<WriteCheck> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let deleted: std::collections::HashSet<_> = deleted.iter().copied().collect();
    let expected: Vec<uuid::Uuid> = writes
        .iter()
        .map(|write| write.id)
        .filter(|id| !deleted.contains(id))
        .collect();
    let mut found = 0u64;
    for chunk in expected.chunks(5_000) {
        let row = client
            .query_one(
                "SELECT count(*) FROM comments WHERE id = ANY($1)",
                &[&chunk],
            )
            .await
            .context("looking up acknowledged writes")?;
        found += row.get::<_, i64>(0) as u64;
    }
    drop(client);
    connection.abort();
    Ok(WriteCheck {
        acknowledged: writes.len() as u64,
        deleted_by_the_run: deleted.len() as u64,
        checked: expected.len() as u64,
        lost: expected.len() as u64 - found,
    })
}
