//! The `loadtest` command line: `run`, `merge`, `calibrate`, `study`, `compare` and
//! `test-server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadtest::client::{Target, TlsOptions};
use loadtest::results::RunResults;
use loadtest::runner::{LoadModel, RunOptions};
use loadtest::scenario::{MixEntry, RequestKind, Scenario, parse_duration};
use loadtest::testserver::{Behaviour, TestServer, TlsFiles};
use loadtest::threshold::Threshold;
use loadtest::workload::Workload;

/// Exit code when a threshold fails (k6's convention).
const THRESHOLDS_FAILED: u8 = 99;

#[derive(Parser)]
#[command(
    version,
    about = "Open-model HTTP load generator with coordinated-omission-corrected latency, and the scaling study"
)]
struct Cli {
    /// Runtime threads (1 = a single-threaded runtime on one core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (default: the built-in read-heavy mix) and write JSON results.
    Run(RunArgs),
    /// Merge results files (e.g. from several machines) without loss.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "merged-results.json")]
        out: PathBuf,
        /// Thresholds to check on the merged results.
        #[arg(long = "threshold")]
        thresholds: Vec<Threshold>,
    },
    /// Compare the generator on one core with `wrk -t1 -c64` against nginx `return 200`.
    Calibrate {
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// The scaling study on the local stack; writes report.md, index.html and results.json.
    Study(loadtest::study::StudyArgs),
    /// Two study reports side by side: capacity, p50, p99 and error rates, each change
    /// against the noise of its figures; prints, and writes compare.html with a chart.
    Compare {
        /// The earlier report (its directory, or its results.json).
        old: PathBuf,
        /// The later report.
        new: PathBuf,
        /// Where to write compare.md, compare.html and capacity.svg (default: NEW/compare).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print an HS256 token for a user (for the k6 and Artillery scripts' TOKEN).
    Token {
        #[arg(
            long,
            env = "JWT_SECRET",
            hide_env_values = true,
            default_value = "local-stack-secret-change-me"
        )]
        jwt_secret: String,
        #[arg(long, default_value_t = 1)]
        user: u64,
        #[arg(long, default_value_t = 86_400)]
        lifetime_s: u64,
    },
    /// A test target that answers at once, or stalls once on purpose.
    TestServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        #[arg(long, value_parser = parse_duration)]
        stall_at: Option<Duration>,
        #[arg(long, value_parser = parse_duration, default_value = "500ms")]
        stall_for: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        delay: Duration,
        /// Stop by itself after this long.
        #[arg(long, value_parser = parse_duration, default_value = "10m")]
        lifetime: Duration,
        /// Serve HTTPS with this certificate chain (PEM; needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM, PKCS#8 or PKCS#1 or SEC1).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (TOML); default: the built-in read-heavy mix.
    scenario: Option<PathBuf>,
    /// Base URL, e.g. http://127.0.0.1:8000 or https://d111111abcdef8.cloudfront.net
    /// (overrides the scenario's).
    #[arg(long, env = "TARGET")]
    target: Option<String>,
    /// For https targets: trust only the CA certificates in this PEM file
    /// (default: the web PKI roots built in).
    #[arg(long, conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// For https targets: accept any certificate (testing only).
    #[arg(long)]
    insecure: bool,
    /// Constant arrival rate (overrides the scenario's schedule; needs --duration).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[arg(long)]
    max_in_flight: Option<usize>,
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Closed loop: this many connections back to back (latency from the send, uncorrected).
    #[arg(long)]
    closed: Option<usize>,
    /// Replace the mix with GETs of this one path.
    #[arg(long)]
    get: Option<String>,
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Extra thresholds, e.g. "p99 < 50ms" (added to the scenario's).
    #[arg(long = "threshold")]
    thresholds: Vec<Threshold>,
    #[arg(long, default_value = "loadtest-results.json")]
    out: PathBuf,
    #[arg(long)]
    quiet: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Merge {
            files,
            out,
            thresholds,
        } => merge(&files, &out, &thresholds),
        Command::Calibrate {
            duration,
            connections,
        } => {
            let figure = loadtest::calibrate::calibrate(duration, connections).await?;
            println!("{figure}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Study(args) => loadtest::study::run(args).await,
        Command::Compare { old, new, out } => compare(&old, &new, out),
        Command::Token {
            jwt_secret,
            user,
            lifetime_s,
        } => {
            println!(
                "{}",
                loadtest::workload::mint_token(&jwt_secret, user, lifetime_s)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::TestServer {
            listen,
            stall_at,
            stall_for,
            delay,
            lifetime,
            tls_cert,
            tls_key,
        } => {
            let behaviour = Behaviour {
                stall: stall_at.map(|at| (at, stall_for)),
                delay,
            };
            let tls = tls_cert
                .zip(tls_key)
                .map(|(certificate, key)| TlsFiles { certificate, key });
            test_server(listen, behaviour, tls, lifetime).await
        }
    }
}

/// `loadtest merge`: one results file from several runs' files, its thresholds
/// checked on the merged figures.
fn merge(files: &[PathBuf], out: &Path, thresholds: &[Threshold]) -> anyhow::Result<ExitCode> {
    let runs = files
        .iter()
        .map(|path| RunResults::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut merged = RunResults::merge(&runs)?;
    merged.thresholds = thresholds
        .iter()
        .map(|threshold| threshold.check(&merged))
        .collect();
    merged.save(out)?;
    print_summary(&merged);
    eprintln!("merged {} runs into {}", merged.merged_runs, out.display());
    Ok(exit_for(&merged))
}

/// `loadtest compare`: two study reports side by side, written beside the new
/// one unless `out` says where.
fn compare(old: &Path, new: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use loadtest::study::compare;
    let comparison = compare::Comparison::of(&compare::load(old)?, &compare::load(new)?);
    let out = out.unwrap_or_else(|| {
        let base = if new.is_dir() {
            new.to_path_buf()
        } else {
            new.parent().map(PathBuf::from).unwrap_or_default()
        };
        base.join("compare")
    });
    compare::write(&out, &comparison).with_context(|| format!("writing {}", out.display()))?;
    print!("{}", comparison.text());
    eprintln!("written: {}/compare.html", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `loadtest test-server`: the stalling server, for `lifetime`.
async fn test_server(
    listen: SocketAddr,
    behaviour: Behaviour,
    tls: Option<TlsFiles>,
    lifetime: Duration,
) -> anyhow::Result<ExitCode> {
    let server = TestServer::start_with(listen, behaviour, tls.as_ref())
        .context("starting the test server")?;
    println!("listening on {}", server.url());
    tokio::time::sleep(lifetime).await;
    drop(server);
    Ok(ExitCode::SUCCESS)
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::read_heavy(10_000, 1_000),
    };
    if let Some(path) = &args.get {
        scenario.mix = vec![MixEntry {
            name: Some("get".into()),
            kind: RequestKind::Get,
            weight: 1,
            path: Some(path.clone()),
        }];
    }
    if let Some(rate) = args.rate {
        scenario.arrival.rate = Some(rate);
        scenario.arrival.stages.clear();
    }
    if let Some(duration) = args.duration {
        scenario.arrival.duration = Some(duration);
    }
    scenario.max_in_flight = args.max_in_flight.unwrap_or(scenario.max_in_flight);
    scenario.timeout = args.timeout.unwrap_or(scenario.timeout);
    scenario.thresholds.extend(args.thresholds.iter().cloned());
    scenario.validate()?;
    let target_url = args
        .target
        .clone()
        .or(scenario.target.clone())
        .context("no target: pass --target or set it in the scenario")?;
    let target = Target::resolve_with(
        &target_url,
        &TlsOptions {
            ca_file: args.ca_file.clone(),
            insecure: args.insecure,
        },
    )
    .await?;
    let secret = args.jwt_secret.clone().or(scenario.jwt_secret.clone());
    let workload = Arc::new(Workload::new(&scenario, secret.as_deref())?);
    let model = match args.closed {
        Some(connections) => LoadModel::Closed {
            connections,
            duration: args.duration.unwrap_or_else(|| {
                scenario
                    .schedule()
                    .map(|s| s.duration())
                    .unwrap_or_default()
            }),
        },
        None => LoadModel::Open {
            schedule: scenario.schedule()?,
            max_in_flight: scenario.max_in_flight,
        },
    };
    let results = loadtest::runner::run(RunOptions {
        scenario: scenario.name.clone(),
        target,
        model,
        timeout: scenario.timeout,
        workload,
        thresholds: scenario.thresholds.clone(),
        progress: (!args.quiet).then(|| format!("[{}]", scenario.name)),
        seed: args.seed,
    })
    .await;
    results.save(&args.out)?;
    print_summary(&results);
    eprintln!("results written to {}", args.out.display());
    Ok(exit_for(&results))
}

fn exit_for(results: &RunResults) -> ExitCode {
    if results.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(THRESHOLDS_FAILED)
    }
}

fn print_summary(results: &RunResults) {
    println!(
        "{} ({}) against {}: {} requests in {:.1}s, offered {:.1}/s, achieved {:.1}/s, dropped {}, errors {:.3}% \
         (connection {}, timeout {}, 4xx {}, 5xx {})",
        results.scenario,
        results.mode,
        results.target,
        results.requests,
        results.duration_s,
        results.offered_rate,
        results.achieved_rate,
        results.dropped,
        results.overall.error_rate * 100.0,
        results.overall.errors.connection,
        results.overall.errors.timeout,
        results.overall.errors.status_4xx,
        results.overall.errors.status_5xx,
    );
    if results.overall.errors.total() > 0 {
        println!("errors by status: {}", results.overall.errors.describe());
    }
    println!(
        "{:<16} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9", "p99.99", "max ms"
    );
    let rows = results
        .endpoints
        .iter()
        .map(|(name, e)| (name.as_str(), e))
        .chain([("overall", &results.overall)]);
    for (name, endpoint) in rows {
        let l = &endpoint.latency;
        println!(
            "{name:<16} {:>9} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            endpoint.requests,
            endpoint.errors.total(),
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.p9999_ms,
            l.max_ms
        );
    }
    if !results.writes.is_empty() {
        println!(
            "acknowledged writes: {} (recorded in the results for the lost-write check)",
            results.writes.len()
        );
    }
    for outcome in &results.thresholds {
        println!(
            "threshold {:<28} actual {:>10.4}  {}",
            outcome.threshold,
            outcome.actual,
            if outcome.passed { "PASS" } else { "FAIL" }
        );
    }
}
