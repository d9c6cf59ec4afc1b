//! Phase: the database tier, PostgreSQL and Cassandra side by side in one run. A second
//! stack on the other database (one Cassandra node beside the study's PostgreSQL stack, or
//! PostgreSQL beside a study on Cassandra: `--backend`) comes up with the same data set,
//! quota and Redis, no edge; `origin bench-queries` measures the original's query table
//! (song read, comments query, feed) through the storage layer and through the HTTP API on
//! both databases at once; and the capacity of [`DATABASE_POOL`] instances straight to
//! nginx is searched on the second stack through [`Session::measure`], beside the study
//! stack's pool from the capacity phase. A second stack that cannot start costs its
//! column, not the study: the report says why.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use stack::binaries::{self, Binary};
use stack::probe::error_chain;
use stack::{DatabaseBackend, PortPlan, Stack, StackConfig};

use super::capacity::search_steps;
use super::model::{
    BackendCapacity, DATABASE_TIER, DatabaseTier, QueryCell, QuerySettings, ScalingResult,
    StudyResults, WriteCheck,
};
use super::search::CapacitySearch;
use super::session::Session;

/// The pool size whose capacity is measured on each backend.
pub const DATABASE_POOL: usize = 2;

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let mut tier = DatabaseTier::default();
    let dir = session.out.join("database-tier");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let main = session.stack.backend();
    let other = other_backend(main);
    let second = start_second_stack(session, other, &mut tier).await?;

    let second_url = second.as_ref().map(Stack::database_url);
    let main_url = session.stack.database_url();
    let (postgres_url, cassandra_uri) = match main {
        DatabaseBackend::Postgres => (Some(main_url), second_url),
        DatabaseBackend::Cassandra => (second_url, Some(main_url)),
    };
    match query_table(session, postgres_url, cassandra_uri.as_deref(), &dir).await {
        Ok((cells, settings)) => {
            tier.queries = cells;
            tier.query_settings = Some(settings);
        }
        Err(error) => {
            let why = format!("the query table was not measured: {}", error_chain(&*error));
            session.step(&format!("  {why}"));
            tier.problems.push(why);
        }
    }

    tier.capacity.push(main_capacity(session, results).await?);
    if let Some(second) = second {
        let start = tier.capacity[0].result.capacity_rps;
        let (capacity, writes, second) = second_capacity(session, second, start).await;
        match capacity {
            Ok(result) => tier.capacity.push(BackendCapacity {
                backend: other.label().to_owned(),
                result,
                measured_in: DATABASE_TIER.to_owned(),
            }),
            Err(error) => tier.problems.push(format!(
                "the {} capacity search stopped: {}",
                other.label(),
                error_chain(&*error)
            )),
        }
        match writes {
            Ok(check) => tier.cassandra_writes = Some(check),
            Err(error) => tier.problems.push(format!(
                "the {} stack's writes were not checked: {}",
                other.label(),
                error_chain(&*error)
            )),
        }
        session.step(&format!("stopping the {} stack", other.label()));
        second.down().await;
    }
    results.database_tier = Some(tier);
    Ok(())
}

/// The second stack, on `other`: its start time in `tier`, or why it did not
/// come up among `tier`'s problems (the tier then measures the study's stack only).
async fn start_second_stack(
    session: &Session,
    other: DatabaseBackend,
    tier: &mut DatabaseTier,
) -> anyhow::Result<Option<Stack>> {
    let main = session.stack.backend();
    session.step(&format!(
        "bringing up a second stack on {} ({DATABASE_POOL} instances, Redis, no edge)",
        other.label()
    ));
    let clock = Instant::now();
    let second = match Stack::up(second_config(&session.config, other)?).await {
        Ok(stack) => {
            tier.cassandra_stack_up_s = Some(clock.elapsed().as_secs_f64());
            session.step(&format!(
                "  {} stack up in {:.0} s",
                other.label(),
                clock.elapsed().as_secs_f64()
            ));
            Some(stack)
        }
        Err(error) => {
            let why = format!(
                "the {} stack did not come up: {}",
                other.label(),
                error_chain(&error)
            );
            session.step(&format!("  {why}; {} only", main.label()));
            tier.problems.push(why);
            None
        }
    };
    Ok(second)
}

/// The database the study's stack does not run on.
pub fn other_backend(main: DatabaseBackend) -> DatabaseBackend {
    match main {
        DatabaseBackend::Postgres => DatabaseBackend::Cassandra,
        DatabaseBackend::Cassandra => DatabaseBackend::Postgres,
    }
}

/// The second stack, on `backend`: the study stack's data set, quota and secret, beside
/// its root of runs (so its database's data are kept and reused like the study stack's, on
/// the port(s) the study stack's plan has for that database, which it does not use), and
/// free ports for the rest.
fn second_config(study: &StackConfig, backend: DatabaseBackend) -> std::io::Result<StackConfig> {
    let mut ports = PortPlan::ephemeral()?;
    match backend {
        DatabaseBackend::Postgres => ports.postgres = study.ports.postgres,
        DatabaseBackend::Cassandra => {
            ports.cassandra = study.ports.cassandra;
            ports.cassandra_storage = study.ports.cassandra_storage;
        }
    }
    Ok(StackConfig {
        instances: DATABASE_POOL,
        backend,
        edge: false,
        ports,
        ..study.clone()
    })
}

/// `origin bench-queries` on both databases: the same code as the command, run as the
/// built executable with its JSON output.
async fn query_table(
    session: &Session,
    postgres_url: Option<String>,
    cassandra_uri: Option<&str>,
    dir: &Path,
) -> anyhow::Result<(Vec<QueryCell>, QuerySettings)> {
    let postgres_url = postgres_url.context("no PostgreSQL stack came up")?;
    let profile = &session.profile;
    let origin = match &session.config.origin_bin {
        Some(path) => path.clone(),
        None => binaries::find(Binary::Origin)?,
    };
    let json = dir.join("bench-queries.json");
    let log = dir.join("bench-queries.log");
    let clients: Vec<String> = profile
        .db_query_clients
        .iter()
        .map(usize::to_string)
        .collect();
    let mut command = tokio::process::Command::new(origin);
    command
        .arg("bench-queries")
        .arg("--database-url")
        .arg(postgres_url)
        .arg("--concurrency")
        .arg(clients.join(","))
        .arg("--seconds")
        .arg(profile.db_query_seconds.to_string())
        .arg("--warmup-seconds")
        .arg(profile.db_query_warmup.to_string())
        .arg("--backend-warmup-seconds")
        .arg(profile.db_backend_warmup.to_string())
        .arg("--json")
        .arg(&json)
        .env_remove("SCYLLA_URI")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    if let Some(uri) = cassandra_uri {
        command.arg("--scylla-uri").arg(uri);
    }
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    // Two backends, three reads, storage and HTTP, each client count; far above any run.
    let cells = 2 * 3 * 2 * profile.db_query_clients.len();
    let bound = Duration::from_secs_f64(
        60.0 + 4.0
            * (cells as f64 * (profile.db_query_seconds + profile.db_query_warmup)
                + 2.0 * profile.db_backend_warmup),
    );
    session.step(&format!(
        "query table: origin bench-queries, each database warmed for {} s, then {} clients, {} s per cell (+{} s warm-up); log in {}",
        profile.db_backend_warmup,
        clients.join(" and "),
        profile.db_query_seconds,
        profile.db_query_warmup,
        log.display()
    ));
    let status = tokio::time::timeout(bound, command.status())
        .await
        .map_err(|_| anyhow::anyhow!("no result within {} s", bound.as_secs()))?
        .context("running origin bench-queries")?;
    anyhow::ensure!(
        status.success(),
        "origin bench-queries failed ({status}); see {}",
        log.display()
    );
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let report: BenchJson = serde_json::from_str(&text).context("reading bench-queries' JSON")?;
    Ok(report.into_tier())
}

/// The part of `origin bench-queries --json` the report uses.
#[derive(Debug, Deserialize)]
struct BenchJson {
    settings: BenchSettings,
    cells: Vec<BenchCell>,
}

#[derive(Debug, Deserialize)]
struct BenchSettings {
    songs: u64,
    distribution: String,
    seconds: f64,
    warmup_seconds: f64,
    backend_warmup_seconds: f64,
    limit: u32,
}

#[derive(Debug, Deserialize)]
struct BenchCell {
    backend: String,
    query: String,
    through: String,
    clients: usize,
    original: String,
    measured: Option<BenchMeasured>,
}

#[derive(Debug, Deserialize)]
struct BenchMeasured {
    p50_ms: f64,
    p99_ms: f64,
    throughput_per_s: f64,
    requests: u64,
    errors: u64,
}

impl BenchJson {
    /// The measured cells (the HTTP + Redis ones are not asked for) and the settings.
    fn into_tier(self) -> (Vec<QueryCell>, QuerySettings) {
        let cells = self
            .cells
            .into_iter()
            .filter_map(|cell| {
                let measured = cell.measured?;
                Some(QueryCell {
                    backend: cell.backend,
                    query: cell.query,
                    through: cell.through,
                    clients: cell.clients,
                    original: cell.original,
                    p50_ms: measured.p50_ms,
                    p99_ms: measured.p99_ms,
                    throughput_per_s: measured.throughput_per_s,
                    requests: measured.requests,
                    errors: measured.errors,
                })
            })
            .collect();
        let settings = QuerySettings {
            songs: self.settings.songs,
            distribution: self.settings.distribution,
            seconds: self.settings.seconds,
            warmup_seconds: self.settings.warmup_seconds,
            backend_warmup_seconds: self.settings.backend_warmup_seconds,
            limit: self.settings.limit,
        };
        (cells, settings)
    }
}

/// The study stack's capacity at [`DATABASE_POOL`]: the capacity phase's when it searched
/// that size in this run, else searched now on the study's stack.
async fn main_capacity(
    session: &mut Session,
    results: &StudyResults,
) -> anyhow::Result<BackendCapacity> {
    let backend = session.stack.backend().label().to_owned();
    if let Some(result) = results.capacity_of(DATABASE_POOL) {
        return Ok(BackendCapacity {
            backend,
            result: result.clone(),
            measured_in: "the capacity phase".to_owned(),
        });
    }
    session.stack.scale_to(DATABASE_POOL).await?;
    let start = session.profile.search_start * DATABASE_POOL as f64;
    let label = format!(
        "database-tier-{}",
        session.stack.backend().label().to_lowercase()
    );
    let result = search(session, start, &label).await?;
    Ok(BackendCapacity {
        backend,
        result,
        measured_in: DATABASE_TIER.to_owned(),
    })
}

/// The second stack's capacity, measured with it in the study stack's place after the
/// same cache fill as the study stack's, from `start` (the study stack's capacity); then
/// its acknowledged writes looked up through its API.
/// The study's stack is back in place whatever happened; the second stack is returned.
async fn second_capacity(
    session: &mut Session,
    second: Stack,
    start: f64,
) -> (
    anyhow::Result<ScalingResult>,
    anyhow::Result<WriteCheck>,
    Stack,
) {
    let lent = session.lend_stack(second);
    let start = if start > 0.0 {
        start
    } else {
        session.profile.search_start * DATABASE_POOL as f64
    };
    let label = format!(
        "database-tier-{}",
        session.stack.backend().label().to_lowercase()
    );
    // The study stack's pools were searched on a Redis the same fill had warmed first:
    // without it this stack's origins found a third to a half of their lookups in Redis
    // where the study stack's found seven in ten, and each miss is a database read, so the
    // two capacities compared Redis as much as the databases.
    let capacity = async {
        session.fill_cache().await?;
        session.stack.scale_to(DATABASE_POOL).await?;
        search(session, start, &label).await
    }
    .await;
    let (second, writes, deleted) = session.return_stack(lent);
    let check = super::writes::check_through_api(&second.nginx_url(), &writes, &deleted).await;
    (capacity, check, second)
}

async fn search(session: &mut Session, start: f64, label: &str) -> anyhow::Result<ScalingResult> {
    let profile = &session.profile;
    let mut search = CapacitySearch::with_growth(
        start,
        profile.search_max,
        profile.bisect_steps,
        profile.search_growth,
    );
    let step = profile.search_step;
    session.step(&format!(
        "capacity search with {DATABASE_POOL} instances on {}, from {start:.0}/s, {} s per step",
        session.stack.backend().label(),
        step.as_secs_f64()
    ));
    let url = session.stack.nginx_url();
    let steps = search_steps(session, &mut search, &url, label, step).await?;
    session.step(&format!(
        "  capacity with {DATABASE_POOL} instances on {}: {:.0} requests/s",
        session.stack.backend().label(),
        search.capacity()
    ));
    Ok(ScalingResult {
        instances: DATABASE_POOL,
        capacity_rps: search.capacity(),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `origin bench-queries --json` writes (origin/cli/src/bench/).
    const BENCH_JSON: &str = r#"{
      "settings": {"songs": 10000, "songs_from": "the largest song id in PostgreSQL",
                   "distribution": "uniform", "concurrency": [1, 16], "seconds": 0.75,
                   "warmup_seconds": 0.25, "backend_warmup_seconds": 1.5, "limit": 50, "cores": 2},
      "cells": [
        {"backend": "PostgreSQL", "query": "single song read", "through": "storage", "clients": 1,
         "original": "Cassandra single read: 2–11 ms",
         "measured": {"p50_ms": 0.2, "p99_ms": 0.9, "max_ms": 3.0, "throughput_per_s": 4000.0,
                      "requests": 3000, "errors": 0, "first_error": null,
                      "redis_hit_ratio": null, "redis_bypasses": null},
         "not_measured": null},
        {"backend": "Cassandra", "query": "song-comments feed", "through": "HTTP + Redis", "clients": 16,
         "original": "PostgreSQL song-comments join: 0.9 ms",
         "measured": null, "not_measured": "no Redis URL given (--redis-url or REDIS_URL)"}
      ],
      "skipped": []
    }"#;

    #[test]
    fn bench_queries_json_becomes_the_measured_cells() {
        let report: BenchJson = serde_json::from_str(BENCH_JSON).unwrap();
        let (cells, settings) = report.into_tier();
        assert_eq!(cells.len(), 1, "cells not measured are left out");
        let cell = &cells[0];
        assert_eq!(
            (
                cell.backend.as_str(),
                cell.query.as_str(),
                cell.through.as_str()
            ),
            ("PostgreSQL", "single song read", "storage")
        );
        assert_eq!((cell.clients, cell.requests, cell.errors), (1, 3000, 0));
        assert_eq!((cell.p50_ms, cell.p99_ms), (0.2, 0.9));
        assert_eq!(cell.original, "Cassandra single read: 2–11 ms");
        assert_eq!(settings.songs, 10000);
        assert_eq!(settings.distribution, "uniform");
        assert_eq!((settings.seconds, settings.warmup_seconds), (0.75, 0.25));
        assert_eq!(settings.backend_warmup_seconds, 1.5);
    }

    #[test]
    fn the_second_stack_copies_the_study_stack_but_its_database_ports_and_edge() {
        let study = StackConfig {
            seed_scale: "small".into(),
            jwt_secret: "secret".into(),
            ..StackConfig::default()
        };
        let config = second_config(&study, DatabaseBackend::Cassandra).unwrap();
        assert_eq!(config.backend, DatabaseBackend::Cassandra);
        assert_eq!(config.instances, DATABASE_POOL);
        assert!(!config.edge && config.redis);
        assert_eq!(config.seed_scale, "small");
        assert_eq!(config.jwt_secret, "secret");
        assert_eq!(config.cpu_per_instance, study.cpu_per_instance);
        assert_eq!(config.run_dir, study.run_dir);
        assert_ne!(config.ports.nginx, study.ports.nginx);
        assert_eq!(config.ports.cassandra, study.ports.cassandra);

        // A study on Cassandra compares it with PostgreSQL on the port its plan keeps for it.
        assert_eq!(
            other_backend(DatabaseBackend::Cassandra),
            DatabaseBackend::Postgres
        );
        let config = second_config(&study, DatabaseBackend::Postgres).unwrap();
        assert_eq!(config.backend, DatabaseBackend::Postgres);
        assert_eq!(config.ports.postgres, study.ports.postgres);
        assert_ne!(config.ports.nginx, study.ports.nginx);
    }
}
