//! `origin bench-queries` on a tiny data set in a real PostgreSQL, with a real
//! Redis: every row is there and its figures are numbers above zero. Speed is
//! not asserted; only that the table is whole and honest.

use clap::Parser as _;
use indicatif::ProgressBar;
use origin::bench::{self, BenchArgs, BenchReport};
use origin::configuration::{Cli, Command, ScyllaArgs};
use origin::datagen::Dataset;
use origin::datagen::postgres::{self as loader, Existing};
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::RedisServer;

const QUERIES: [&str; 3] = ["single song read", "comments query", "song-comments feed"];
const PATHS: [&str; 3] = ["storage", "HTTP, no Redis", "HTTP + Redis"];

fn args(database_url: &str, redis_url: Option<String>, json: std::path::PathBuf) -> BenchArgs {
    let cli = Cli::parse_from([
        "origin",
        "bench-queries",
        "--seconds",
        "0.3",
        "--warmup-seconds",
        "0.1",
        "--concurrency",
        "4",
    ]);
    let Command::BenchQueries(mut args) = cli.command else {
        unreachable!("parsed bench-queries")
    };
    // Environment twins must not leak in from the developer's shell.
    args.database_url = Some(database_url.to_owned());
    args.redis_url = redis_url;
    args.scylla = ScyllaArgs::default();
    args.songs = None;
    args.json = Some(json);
    args
}

/// The figures of the Markdown row for (PostgreSQL, query, path).
fn row<'a>(table: &'a str, query: &str, path: &str) -> Vec<&'a str> {
    let prefix = format!("| PostgreSQL | {query} | {path} |");
    let line = table
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row {prefix} in\n{table}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

fn positive(cell: &str, what: &str, table: &str) -> f64 {
    let value: f64 = cell
        .parse()
        .unwrap_or_else(|e| panic!("{what} {cell:?} is not a number ({e}) in\n{table}"));
    assert!(value > 0.0, "{what} is {value} in\n{table}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_every_row_with_figures() {
    let postgres = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start PostgreSQL");
    let redis = RedisServer::start(Default::default())
        .await
        .expect("start Redis");
    let url = postgres.create_database("bench").await.unwrap();
    let dataset = Dataset {
        seed: 42,
        songs: 300,
        users: 100,
        comments: 3_000,
        zipf_exponent: 0.5,
    };
    loader::load(&url, dataset, Existing::Refuse, &ProgressBar::hidden())
        .await
        .expect("seed");
    let dir = tempfile::tempdir().unwrap();

    let json_path = dir.path().join("bench.json");
    let args = args(&url, Some(redis.url()), json_path.clone());
    let report: BenchReport = bench::run(&args).await.expect("bench");
    let table = report.markdown();
    println!("{table}");
    assert_eq!(report.settings.songs, 300, "the range is the loaded songs");
    for query in QUERIES {
        for path in PATHS {
            let cells = row(&table, query, path);
            // backend, query, path, p50, p99, throughput, requests, errors, hits, original
            assert_eq!(cells.len(), 10, "{cells:?}");
            let p50 = positive(cells[3], "p50", &table);
            let p99 = positive(cells[4], "p99", &table);
            assert!(p99 >= p50, "p99 {p99} < p50 {p50}");
            positive(cells[5], "throughput", &table);
            positive(cells[6], "requests", &table);
            assert_eq!(cells[7], "0", "no errors: {table}");
            if path == "HTTP + Redis" {
                assert!(cells[8].ends_with('%'), "hit ratio: {}", cells[8]);
            }
        }
    }
    assert!(table.contains("Cassandra single read: 2–11 ms"));
    assert!(table.contains("PostgreSQL comments query: 0.6 ms"));
    assert!(table.contains("PostgreSQL song-comments join: 0.9 ms"));
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("ScyllaDB: skipped: SCYLLA_URI is not set")),
        "{table}"
    );

    // The same figures in the JSON file.
    bench::run_cli(args).await.expect("bench with --json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 9);
    for cell in cells {
        assert!(cell["measured"]["p50_ms"].as_f64().unwrap() > 0.0, "{cell}");
        assert!(cell["measured"]["throughput_per_s"].as_f64().unwrap() > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_cached_rows_say_not_measured() {
    let postgres = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start PostgreSQL");
    let url = postgres.create_database("bench").await.unwrap();
    let dataset = Dataset {
        seed: 7,
        songs: 50,
        users: 20,
        comments: 200,
        zipf_exponent: 0.5,
    };
    loader::load(&url, dataset, Existing::Refuse, &ProgressBar::hidden())
        .await
        .expect("seed");
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(&url, None, dir.path().join("bench.json"));
    args.distribution = bench::Draw::Zipf;
    args.seed = 7;
    let table = bench::run(&args).await.expect("bench").markdown();
    println!("{table}");
    assert!(table.contains("by the data set's Zipf popularity law"));
    for query in QUERIES {
        let cached = row(&table, query, "HTTP + Redis");
        assert_eq!(cached[3], "not measured", "{table}");
        positive(row(&table, query, "storage")[3], "p50", &table);
        positive(row(&table, query, "HTTP, no Redis")[3], "p50", &table);
    }
    assert!(table.contains(
        "HTTP + Redis rows not measured: no Redis URL given (--redis-url or REDIS_URL)."
    ));
}
