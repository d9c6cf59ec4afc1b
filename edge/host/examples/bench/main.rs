//! Benchmark of the edge against nginx, in one run on one machine, all on loopback.
//!
//! Starts a small real stack (PostgreSQL, Redis, four origin instances without a
//! CPU quota, nginx in front of them: `infra/stack`), the edge (edge-host with the
//! embedded component, in this process) in front of that nginx, and a second nginx
//! with `proxy_cache` in front of the same pool, a plain proxy to it and a
//! `return 200` server. It
//! warms every cache, then drives each target with `wrk -t1 -c32 -d10s --latency`,
//! row after row, for several rounds (`EDGE_BENCH_ROUNDS`, 3 by default). It
//! prints each row's median round (requests/s, p50, p99) and the ratio of its
//! rate to nginx `return 200`'s in each round: the median of those ratios (which
//! may come from another round than the median rate), and the lowest and
//! highest, since a ratio from one round moves by several hundredths:
//!
//! - nginx `return 200`: the ceiling of one HTTP hop with this client;
//! - nginx `proxy_cache` HIT and edge HIT: a song read served from the cache;
//! - edge floor: a component that answers at once with a HIT-shaped response
//!   (`edge/floor`) on the same host: what the component model and `edge-host`
//!   cost before any cache logic, about the most an edge HIT could reach here;
//! - nginx → origin → Redis: the same read with a new query string each time,
//!   which the origin ignores and answers from Redis (no edge);
//! - edge MISS → nginx → origin → Redis: those reads through the edge, where
//!   each new query string is a new cache key: a miss, an origin fetch, a store;
//! - nginx `proxy_cache` MISS → nginx → origin → Redis: the same reads through
//!   nginx's cache instead, which also fetches and stores each one: what a
//!   native cache's miss costs on the same path, the reference for the edge's;
//! - nginx proxy (no cache) → nginx → origin → Redis: the same reads through
//!   that nginx without its cache: what one more native HTTP hop costs here.
//!
//! Run: `cargo run --release -p edge-host --example bench` (needs `nginx`, `wrk`,
//! PostgreSQL and Redis, as `scripts/setup` installs them; builds the origin).
//! The figures are only comparable within one run: say the load average with them.
//! `EDGE_BENCH_ROUNDS=1` gives one quick round.
//! `EDGE_BENCH_BASELINE=<component.wasm>` adds another edge serving that component
//! (say, the one built before a change) with its HIT and MISS rows beside the
//! embedded component's, in the same run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use bytes::Bytes;
use stack::binaries::{self, Binary};
use stack::ports::free_port;
use stack::stack::{Stack, StackConfig};

use nginx::{NginxPorts, nginx_cache_dir, start_nginx, wait_for_trim};

mod nginx;

const SONG: &str = "/api/songs/1";
/// Song ids the miss rows spread over (the `tiny` data set has 1,000 songs).
const SONGS: u32 = 1_000;
const WRK_ARGS: [&str; 3] = ["-t1", "-c32", "--latency"];
const MEASURED: &str = "10s";
/// Rounds over all rows when `EDGE_BENCH_ROUNDS` does not say.
const DEFAULT_ROUNDS: usize = 3;

/// A wrk script giving every request a new query string on songs 1..=SONGS.
fn write_miss_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("miss.lua");
    std::fs::write(
        &path,
        format!(
            "-- a new cache key per request; the origin ignores the query and reads Redis\n\
             local prefix = tostring(os.time()) .. tostring(math.random(1000000))\n\
             local n = 0\n\
             request = function()\n  n = n + 1\n  return wrk.format(\"GET\", \"/api/songs/\" .. (n % {SONGS} + 1) .. \"?bench=\" .. prefix .. \"-\" .. n)\nend\n"
        ),
    )?;
    Ok(path)
}

struct Figures {
    requests_per_sec: f64,
    p50: String,
    p99: String,
    socket_errors: Option<String>,
}

fn wrk(url: &str, script: Option<&Path>, duration: &str) -> anyhow::Result<Figures> {
    let mut command = Command::new("wrk");
    command.args(WRK_ARGS).arg(format!("-d{duration}"));
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        anyhow::bail!("{url}: {}", line.trim());
    }
    Ok(Figures {
        requests_per_sec: find("Requests/sec:").parse().unwrap_or(0.0),
        p50: find("50%"),
        p99: find("99%"),
        socket_errors: text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .map(|l| l.trim().to_owned()),
    })
}

/// Asks `url` until it answers with `X-Cache: expect_header`; returns how many
/// requests that took.
async fn warm(url: &str, expect_header: &str) -> anyhow::Result<usize> {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut last = String::new();
    for tries in 1..=50 {
        let response = client.get(url.parse()?).await?;
        last = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if last == expect_header {
            return Ok(tries);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} never answered X-Cache: {expect_header} (last {last:?})")
}

/// The load averages over 1, 5 and 15 minutes, as the table's footer gives them.
fn load_average() -> String {
    stack::cpu::load_averages().map_or_else(
        || "?".to_owned(),
        |loads| loads.map(|load| format!("{load:.2}")).join(" "),
    )
}

struct Row {
    name: &'static str,
    url: String,
    script: Option<PathBuf>,
    /// One entry per round, in the order they ran.
    rounds: Vec<Figures>,
}

/// The median of `values` (the lower middle one of an even count), or 0.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// `over`'s rate divided by `under`'s in each round both ran (0 where `under` had none).
fn ratios(over: &Row, under: &Row) -> Vec<f64> {
    over.rounds
        .iter()
        .zip(&under.rounds)
        .map(|(o, u)| {
            if u.requests_per_sec > 0.0 {
                o.requests_per_sec / u.requests_per_sec
            } else {
                0.0
            }
        })
        .collect()
}

/// The median of `values` and their range, as `0.47 (0.45-0.49)`.
fn spread(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() < 2 || low == high {
        return format!("{:.2}", median(values));
    }
    format!("{:.2} ({low:.2}-{high:.2})", median(values))
}

/// Prints the table; `nginx_cache` is the directory nginx kept its cache in.
fn print_table(rows: &[Row], load_before: &str, nginx_cache: &Path) -> anyhow::Result<()> {
    let find = |name: &str| rows.iter().find(|row| row.name == name);
    let Some(ceiling) = find(RETURN_200) else {
        anyhow::bail!("no {RETURN_200} row");
    };
    let rounds = ceiling.rounds.len();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nload average before {load_before}, after {}; {rounds} round(s), the median round of each row; nginx's cache in {}",
        load_average(),
        nginx_cache.display()
    )?;
    writeln!(
        out,
        "{:<NAME_WIDTH$} {:>12} {:>10} {:>10}  x return 200 (range)",
        "wrk -t1 -c32 -d10s", "requests/s", "p50", "p99"
    )?;
    for row in rows {
        let rates: Vec<f64> = row.rounds.iter().map(|f| f.requests_per_sec).collect();
        let middle = median(&rates);
        let Some(f) = row.rounds.iter().find(|f| f.requests_per_sec == middle) else {
            continue;
        };
        writeln!(
            out,
            "{:<NAME_WIDTH$} {:>12.0} {:>10} {:>10}  {}",
            row.name,
            f.requests_per_sec,
            f.p50,
            f.p99,
            spread(&ratios(row, ceiling))
        )?;
        for (round, f) in row.rounds.iter().enumerate() {
            if let Some(errors) = &f.socket_errors {
                writeln!(out, "{:<NAME_WIDTH$} round {}: {errors}", "", round + 1)?;
            }
        }
    }
    for (label, over, under, note) in [
        (
            "edge HIT / edge floor",
            EDGE_HIT,
            FLOOR,
            " (the caching flow's share of a HIT is the rest)",
        ),
        (
            "edge miss path / same path without the edge",
            EDGE_MISS,
            NO_EDGE,
            "",
        ),
        (
            "nginx proxy_cache miss path / same path without it",
            NGINX_MISS,
            NO_EDGE,
            " (a native cache's miss, for reference)",
        ),
        (
            "nginx proxy hop / same path without it",
            NGINX_HOP,
            NO_EDGE,
            " (a native hop that stores nothing)",
        ),
        (
            "edge miss path / nginx proxy_cache miss path",
            EDGE_MISS,
            NGINX_MISS,
            "",
        ),
    ] {
        if let (Some(over), Some(under)) = (find(over), find(under)) {
            writeln!(out, "{label}: {}{note}", spread(&ratios(over, under)))?;
        }
    }
    Ok(())
}

/// Serves `component` (`None`: the embedded one) from this process in front of
/// `origins`; returns the edge's URL. Every host of the bench gets the same share
/// of the process's instance pool ([`edge_host::POOLED_INSTANCES`]), the default
/// layout's if the pool has room for it, so that the edge and the floor compare
/// on equal terms on any number of cores.
async fn start_edge(
    origins: &str,
    component: Option<PathBuf>,
    hosts: usize,
) -> anyhow::Result<String> {
    let mut options = edge_host::HostOptions::new(
        "127.0.0.1:0".parse()?,
        vec![("origins".into(), origins.to_owned())],
    );
    let per_thread = edge_host::INSTANCES_PER_CORE;
    options.serving_threads = options
        .serving_threads
        .min(edge_host::POOLED_INSTANCES / (per_thread * hosts))
        .max(1);
    options.max_instances = per_thread * options.serving_threads;
    options.component = component;
    let edge = edge_host::EdgeHost::bind(options).await?;
    let url = format!("http://127.0.0.1:{}", edge.local_addr().port());
    tokio::spawn(edge.run(std::future::pending()));
    Ok(url)
}

const RETURN_200: &str = "nginx return 200";
const EDGE_HIT: &str = "edge HIT";
const FLOOR: &str = "edge floor (a component that only answers)";
/// Width of the table's first column: the longest row name.
const NAME_WIDTH: usize = 50;
const NO_EDGE: &str = "nginx -> origin -> Redis (no edge)";
const EDGE_MISS: &str = "edge MISS -> nginx -> origin -> Redis";
const NGINX_MISS: &str = "nginx proxy_cache MISS -> nginx -> origin -> Redis";
const NGINX_HOP: &str = "nginx proxy (no cache) -> nginx -> origin -> Redis";

/// The base URLs the rows measure.
struct Targets {
    /// nginx `return 200`.
    plain: String,
    /// nginx `proxy_cache` in front of the pool.
    cache: String,
    /// nginx `proxy_pass` to the pool, without a cache.
    proxy: String,
    edge: String,
    floor: String,
    /// nginx in front of the origin pool.
    pool: String,
    baseline: Option<String>,
}

/// The rows in the order they run: HITs and the floor, then the misses.
fn rows(targets: &Targets, miss_script: &Path) -> Vec<Row> {
    let row = |name, url: String, script: Option<&Path>| Row {
        name,
        url,
        script: script.map(Path::to_path_buf),
        rounds: Vec::new(),
    };
    let mut rows = vec![
        row(RETURN_200, format!("{}/", targets.plain), None),
        row(
            "nginx proxy_cache HIT",
            format!("{}{SONG}", targets.cache),
            None,
        ),
        row(EDGE_HIT, format!("{}{SONG}", targets.edge), None),
        row(FLOOR, format!("{}{SONG}", targets.floor), None),
        row(NO_EDGE, targets.pool.clone(), Some(miss_script)),
        row(EDGE_MISS, targets.edge.clone(), Some(miss_script)),
        row(NGINX_HOP, targets.proxy.clone(), Some(miss_script)),
        row(NGINX_MISS, targets.cache.clone(), Some(miss_script)),
    ];
    if let Some(url) = &targets.baseline {
        rows.insert(
            4,
            row(
                "edge HIT (baseline component)",
                format!("{url}{SONG}"),
                None,
            ),
        );
        rows.push(row(
            "edge MISS (baseline component)",
            url.clone(),
            Some(miss_script),
        ));
    }
    rows
}

/// `EDGE_BENCH_ROUNDS`, or [`DEFAULT_ROUNDS`] when it is not set.
fn rounds() -> anyhow::Result<usize> {
    match std::env::var_os("EDGE_BENCH_ROUNDS") {
        None => Ok(DEFAULT_ROUNDS),
        Some(text) => text
            .to_str()
            .and_then(|text| text.parse::<usize>().ok())
            .filter(|&rounds| rounds > 0)
            .ok_or_else(|| {
                anyhow::anyhow!("EDGE_BENCH_ROUNDS={text:?}: not a number of rounds above 0")
            }),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let rounds = rounds()?;
    // On Ctrl-C the bench's future is dropped, and with it nginx, the stack
    // and their directories, the cache on tmpfs among them; the exit status
    // says it was interrupted (128 + SIGINT, as a shell reports it).
    tokio::select! {
        result = run(rounds) => result.map(|()| ExitCode::SUCCESS),
        Ok(()) = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping nginx and the stack, removing their files");
            Ok(ExitCode::from(130))
        }
    }
}

async fn run(rounds: usize) -> anyhow::Result<()> {
    let load_before = load_average();
    let dir = tempfile::tempdir()?;
    let stack = start_stack(dir.path()).await?;
    let pool_url = stack.nginx_url();
    let pool_port: u16 = pool_url.rsplit(':').next().unwrap_or_default().parse()?;

    eprintln!("starting edge-host (compiling the component) ...");
    let baseline = std::env::var_os("EDGE_BENCH_BASELINE").map(PathBuf::from);
    let hosts = 2 + usize::from(baseline.is_some());
    let edge_url = start_edge(&pool_url, None, hosts).await?;
    let floor = PathBuf::from(env!("EDGE_FLOOR_WASM"));
    let floor_url = start_edge(&pool_url, Some(floor), hosts).await?;
    let baseline_url = match baseline {
        Some(component) => {
            eprintln!("starting a third edge-host on {}", component.display());
            Some(start_edge(&pool_url, Some(component), hosts).await?)
        }
        None => None,
    };

    let ports = NginxPorts {
        cache: free_port()?,
        proxy: free_port()?,
        plain: free_port()?,
    };
    let cache_dir = nginx_cache_dir(dir.path())?;
    let _nginx = start_nginx(
        &dir.path().join("nginx"),
        cache_dir.path(),
        pool_port,
        &ports,
    )
    .await?;
    let miss_script = write_miss_script(dir.path())?;
    let targets = Targets {
        plain: format!("http://127.0.0.1:{}", ports.plain),
        cache: format!("http://127.0.0.1:{}", ports.cache),
        proxy: format!("http://127.0.0.1:{}", ports.proxy),
        edge: edge_url,
        floor: floor_url,
        pool: pool_url,
        baseline: baseline_url,
    };
    warm_redis(&targets, &miss_script).await?;
    let mut rows = rows(&targets, &miss_script);
    measure(&mut rows, rounds, &targets, cache_dir.path()).await?;
    print_table(&rows, &load_before, cache_dir.path())?;
    stack.down().await;
    Ok(())
}

/// The small real stack the miss rows read through: four origins without a CPU
/// quota behind nginx, with Redis.
async fn start_stack(dir: &Path) -> anyhow::Result<Stack> {
    // Off the runtime's thread, so that Ctrl-C during the build is heard.
    let origin_bin = tokio::task::spawn_blocking(|| binaries::build(&[Binary::Origin], true))
        .await??
        .remove(0);
    let config = StackConfig {
        instances: 4,
        cpu_per_instance: None,
        memory_per_instance: None,
        redis: true,
        edge: false,
        origin_bin: Some(origin_bin),
        ..StackConfig::for_tests(dir.join("stack"))?
    };
    Ok(Stack::up(config).await?)
}

/// Redis holds every song the miss rows read (the caches get the HIT rows' song
/// before each round: [`warm_hits`]).
async fn warm_redis(targets: &Targets, miss_script: &Path) -> anyhow::Result<()> {
    eprintln!("warming Redis: every song read once through the pool");
    let pool = targets.pool.clone();
    let script = miss_script.to_path_buf();
    tokio::task::spawn_blocking(move || wrk(&pool, Some(&script), "3s")).await??;
    Ok(())
}

/// Every cache holds the HIT rows' song. Between two rounds it has expired (the
/// origin gives it 10 s, `s-maxage`, and a cache serves it stale while it
/// refreshes it, as the rows themselves see) or been evicted: a round's miss
/// rows fill the caches past their bounds, and what goes first is what was used
/// longest ago, that song. On an evicted entry nginx's HIT row began with a
/// miss, and its other requests for the song waited on `proxy_cache_lock`,
/// which it looks at every 500 ms: a p99 of about 400 ms (wrk counts the
/// requests a stall held back), an artefact of the rows' order.
async fn warm_hits(targets: &Targets) -> anyhow::Result<()> {
    let hit_targets = [&targets.edge, &targets.floor, &targets.cache]
        .into_iter()
        .chain(&targets.baseline);
    for url in hit_targets {
        if warm(&format!("{url}{SONG}"), "HIT").await? > 1 {
            eprintln!("{url}{SONG} was expired or evicted: asked until it answered HIT");
        }
    }
    Ok(())
}

/// Runs every row once per round, in order, with the HIT rows' song cached
/// before each round, and waits after nginx's cache miss until its cache is
/// trimmed.
async fn measure(
    rows: &mut [Row],
    rounds: usize,
    targets: &Targets,
    nginx_cache: &Path,
) -> anyhow::Result<()> {
    for round in 1..=rounds {
        warm_hits(targets).await?;
        for row in rows.iter_mut() {
            eprintln!(
                "round {round}/{rounds}, {}: wrk {} -d{MEASURED} {}",
                row.name,
                WRK_ARGS.join(" "),
                row.url
            );
            let (url, script) = (row.url.clone(), row.script.clone());
            row.rounds.push(
                tokio::task::spawn_blocking(move || wrk(&url, script.as_deref(), MEASURED))
                    .await??,
            );
            if row.name == NGINX_MISS {
                wait_for_trim(nginx_cache).await;
            }
        }
    }
    Ok(())
}
