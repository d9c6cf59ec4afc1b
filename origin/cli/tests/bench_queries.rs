//! `origin bench-queries` on a tiny data set in a real PostgreSQL and a real
//! Cassandra node, with a real Redis, at two client counts: every row is there
//! and its figures are numbers above zero. Speed is not asserted; only that the
//! table is whole and honest.

use clap::Parser;
use indicatif::ProgressBar;
use origin::configuration::ScyllaArgs;
use origin_cli::bench::{self, BenchArgs, BenchReport};
use origin_cli::datagen::Dataset;
use origin_cli::datagen::Existing;
use origin_cli::datagen::postgres as loader;
use origin_cli::datagen::scylla as cql_loader;
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::RedisServer;

const QUERIES: [&str; 3] = ["single song read", "comments query", "song-comments feed"];
const PATHS: [&str; 3] = ["storage", "HTTP, no Redis", "HTTP + Redis"];

/// `origin bench-queries` alone as a command line, to fill in every default.
#[derive(Parser)]
struct BenchCli {
    #[command(flatten)]
    args: BenchArgs,
}

fn args(database_url: &str, redis_url: Option<String>, json: std::path::PathBuf) -> BenchArgs {
    let mut args = BenchCli::parse_from([
        "bench-queries",
        "--seconds",
        "0.3",
        "--warmup-seconds",
        "0.1",
        "--backend-warmup-seconds",
        "0.3",
        "--concurrency",
        "1,4",
    ])
    .args;
    // Environment twins must not leak in from the developer's shell.
    args.database_url = Some(database_url.to_owned());
    args.redis_url = redis_url;
    args.scylla = ScyllaArgs::default();
    args.songs = None;
    args.json = Some(json);
    args
}

/// The cells of the Markdown row for (backend, query, path, clients).
fn row<'a>(table: &'a str, backend: &str, query: &str, path: &str, clients: usize) -> Vec<&'a str> {
    let prefix = format!("| {backend} | {query} | {path} | {clients} |");
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
async fn bench_prints_every_row_for_both_backends_at_each_client_count() {
    let postgres = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start PostgreSQL");
    let cassandra = stack::cassandra::shared_for_tests()
        .await
        .expect("start Cassandra");
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
        .expect("seed PostgreSQL");
    let keyspace = format!("bench_{}", std::process::id());
    let cql = ScyllaArgs {
        uri: Some(cassandra.uri().to_owned()),
        keyspace,
        ..ScyllaArgs::default()
    };
    let options = cql.options(std::time::Duration::from_secs(10)).unwrap();
    cql_loader::load(&options, dataset, Existing::Refuse, &ProgressBar::hidden())
        .await
        .expect("seed Cassandra");
    let dir = tempfile::tempdir().unwrap();

    let json_path = dir.path().join("bench.json");
    let mut args = args(&url, Some(redis.url()), json_path.clone());
    args.scylla = cql;
    let report: BenchReport = bench::run(&args).await.expect("bench");
    let table = report.markdown();
    println!("{table}");
    assert_eq!(report.settings.songs, 300, "the range is the loaded songs");
    for backend in ["PostgreSQL", "Cassandra"] {
        for query in QUERIES {
            for path in PATHS {
                for clients in [1, 4] {
                    let cells = row(&table, backend, query, path, clients);
                    // backend, query, path, clients, p50, p99, throughput, requests, errors,
                    // hits, original
                    assert_eq!(cells.len(), 11, "{cells:?}");
                    let p50 = positive(cells[4], "p50", &table);
                    let p99 = positive(cells[5], "p99", &table);
                    assert!(p99 >= p50, "p99 {p99} < p50 {p50}");
                    positive(cells[6], "throughput", &table);
                    positive(cells[7], "requests", &table);
                    assert_eq!(cells[8], "0", "no errors: {table}");
                    if path == "HTTP + Redis" {
                        assert!(cells[9].ends_with('%'), "hit ratio: {}", cells[9]);
                    }
                }
            }
        }
    }
    assert!(table.contains("Cassandra single read: 2–11 ms"));
    assert!(table.contains("PostgreSQL comments query: 0.6 ms"));
    assert!(table.contains("PostgreSQL song-comments join: 0.9 ms"));
    assert!(!table.contains("skipped"), "{table}");

    // The same figures in the JSON file.
    bench::run_cli(args).await.expect("bench with --json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(
        cells.len(),
        2 * 9 * 2,
        "2 backends, 9 cells, 2 client counts"
    );
    for cell in cells {
        assert!(cell["measured"]["p50_ms"].as_f64().unwrap() > 0.0, "{cell}");
        assert!(cell["measured"]["throughput_per_s"].as_f64().unwrap() > 0.0);
    }
    // Written in the table's order, whatever the order measured.
    let order: Vec<(&str, &str, u64, &str)> = cells
        .iter()
        .map(|cell| {
            (
                cell["backend"].as_str().unwrap(),
                cell["through"].as_str().unwrap(),
                cell["clients"].as_u64().unwrap(),
                cell["query"].as_str().unwrap(),
            )
        })
        .collect();
    let mut table_order = Vec::new();
    for backend in ["PostgreSQL", "Cassandra"] {
        for path in PATHS {
            for clients in [1, 4] {
                for query in QUERIES {
                    table_order.push((backend, path, clients, query));
                }
            }
        }
    }
    assert_eq!(order, table_order);
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
        let cached = row(&table, "PostgreSQL", query, "HTTP + Redis", 1);
        assert_eq!(cached[4], "not measured", "{table}");
        positive(
            row(&table, "PostgreSQL", query, "storage", 4)[4],
            "p50",
            &table,
        );
        positive(
            row(&table, "PostgreSQL", query, "HTTP, no Redis", 4)[4],
            "p50",
            &table,
        );
    }
    assert!(table.contains(
        "HTTP + Redis rows not measured: no Redis URL given (--redis-url or REDIS_URL)."
    ));
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("Cassandra/ScyllaDB: skipped: no --scylla-uri")),
        "{table}"
    );
}
