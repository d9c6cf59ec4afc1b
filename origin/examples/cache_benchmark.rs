//! Benchmark for the figure: throughput and p50/p99 latency of
//! `GET /api/songs/{id}/comments` with Redis hits versus Redis off, measured
//! side by side in one run on one machine.
//!
//! Starts a private PostgreSQL and Redis, seeds songs and comments, starts two
//! origins in-process (one with Redis, one without), then drives each in turn
//! with `wrk -t1 -c32 -d10s --latency` over random song ids and prints a table.
//!
//! Run: `cargo run --release -p origin --example cache_benchmark [-- --songs 5000 --comments-per-song 40 --seconds 10]`

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use origin::configuration::ServeArgs;
use origin::metrics::CacheOutcome;
use origin::startup::Application;
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::{RedisOptions, RedisServer};

struct Settings {
    songs: i64,
    comments_per_song: i64,
    seconds: u32,
    connections: u32,
}

fn settings() -> Settings {
    let mut settings = Settings {
        songs: 5_000,
        comments_per_song: 40,
        seconds: 10,
        connections: 32,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair
            .get(1)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("bad value for {}", pair[0]));
        match pair[0].as_str() {
            "--songs" => settings.songs = value,
            "--comments-per-song" => settings.comments_per_song = value,
            "--seconds" => settings.seconds = value as u32,
            "--connections" => settings.connections = value as u32,
            other => panic!("unknown flag {other}"),
        }
    }
    settings
}

struct WrkResult {
    requests_per_sec: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
    errors: String,
}

fn main() -> anyhow::Result<()> {
    let settings = settings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let pg = PostgresServer::start(PostgresOptions::for_tests()).await?;
    let redis = RedisServer::start(RedisOptions::default()).await?;
    let url = pg.create_database("bench").await?;
    origin::storage::postgres::migrate(&url).await?;
    seed(&url, &settings).await?;

    let mut rows = Vec::new();
    for (label, redis_url) in [("Redis hits", Some(redis.url())), ("Redis off", None)] {
        let mut args = ServeArgs::for_tests(url.clone(), redis_url, "bench-secret");
        args.max_concurrency = 4096;
        let app = Application::build(args).await?;
        let port = app.port();
        let state = app.state();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        warm_up(port, settings.songs).await?;
        let hits_before = state.metrics.cache_count("comments", CacheOutcome::Hit);
        let misses_before = state.metrics.cache_count("comments", CacheOutcome::Miss);
        eprintln!(
            "driving the origin ({label}) for {} s ...",
            settings.seconds
        );
        let result = tokio::task::spawn_blocking({
            let (songs, seconds, connections) =
                (settings.songs, settings.seconds, settings.connections);
            move || wrk(port, songs, seconds, connections)
        })
        .await??;
        let hits = state.metrics.cache_count("comments", CacheOutcome::Hit) - hits_before;
        let misses = state.metrics.cache_count("comments", CacheOutcome::Miss) - misses_before;
        let hit_ratio = if hits + misses > 0 {
            format!("{:.1} %", 100.0 * hits as f64 / (hits + misses) as f64)
        } else {
            "-".into()
        };
        rows.push((label, result, hit_ratio));
        shutdown.cancel();
        server.await??;
    }

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "GET /api/songs/{{id}}/comments (limit 50) over {} songs x {} comments, wrk -t1 -c{} -d{}s, {cpus} cores, origin in-process with PostgreSQL and Redis on the same machine",
        settings.songs, settings.comments_per_song, settings.connections, settings.seconds
    );
    println!(
        "| origin     | requests/s | p50      | p99      | non-2xx | socket errors | cache hit ratio |"
    );
    println!(
        "|------------|-----------:|---------:|---------:|--------:|---------------|----------------:|"
    );
    for (label, result, hit_ratio) in &rows {
        println!(
            "| {label:<10} | {:>10.0} | {:>8} | {:>8} | {:>7} | {:<13} | {hit_ratio:>15} |",
            result.requests_per_sec, result.p50, result.p99, result.non_2xx, result.errors
        );
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Songs with a comment spread over their length, users to write them.
async fn seed(url: &str, settings: &Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "INSERT INTO users (id, name, avatar_url, location) \
               SELECT u, 'user ' || u, 'https://img.example/' || u || '.png', 'earth' FROM generate_series(1, 1000) u; \
             INSERT INTO songs (id, title, artist, duration_ms) \
               SELECT s, 'song ' || s, 'artist ' || (s % 97), 180000 + (s % 60) * 1000 FROM generate_series(1, {songs}) s; \
             INSERT INTO comments (id, song_id, user_id, body, track_ms) \
               SELECT gen_random_uuid(), s, 1 + (s * 31 + c) % 1000, \
                      'comment ' || c || ' on song ' || s || ', a few words long like a real one', (c * 4111) % 180000 \
               FROM generate_series(1, {songs}) s, generate_series(1, {per_song}) c; \
             ANALYZE;",
            songs = settings.songs,
            per_song = settings.comments_per_song,
        ))
        .await?;
    eprintln!(
        "seeded {} songs and {} comments in {:.1?}",
        settings.songs,
        settings.songs * settings.comments_per_song,
        started.elapsed()
    );
    Ok(())
}

/// Reads every song's first page once, so the Redis run measures hits.
async fn warm_up(port: u16, songs: i64) -> anyhow::Result<()> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let started = Instant::now();
    let mut ids = (1..=songs).collect::<Vec<_>>().into_iter();
    loop {
        let batch: Vec<i64> = ids.by_ref().take(32).collect();
        if batch.is_empty() {
            break;
        }
        let requests = batch.into_iter().map(|id| {
            let client = client.clone();
            async move {
                let uri = format!("http://127.0.0.1:{port}/api/songs/{id}/comments")
                    .parse()
                    .expect("uri");
                client.get(uri).await.map(|r| r.status())
            }
        });
        for status in futures::future::join_all(requests).await {
            anyhow::ensure!(status?.is_success(), "warm-up request failed");
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "warm-up took too long"
        );
    }
    eprintln!("warmed {songs} pages in {:.1?}", started.elapsed());
    Ok(())
}

fn wrk(port: u16, songs: i64, seconds: u32, connections: u32) -> anyhow::Result<WrkResult> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("songs.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(42)\nrequest = function()\n  return wrk.format(\"GET\", \"/api/songs/\" .. math.random(1, {songs}) .. \"/comments\")\nend\n"
        ),
    )?;
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        text.lines().map(str::trim).find_map(|line| {
            line.strip_prefix(prefix)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        })
    };
    Ok(WrkResult {
        requests_per_sec: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        errors: text
            .lines()
            .find(|line| line.contains("Socket errors"))
            .map_or_else(
                || "none".to_string(),
                |line| {
                    line.trim()
                        .trim_start_matches("Socket errors: ")
                        .to_string()
                },
            ),
    })
}
