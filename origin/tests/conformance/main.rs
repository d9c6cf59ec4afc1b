//! The API's behaviour, checked over HTTP against the real app and real
//! servers. Every check runs on every backend, each pair a test of its own
//! name (`postgres::song_is_served_with_cache_headers`,
//! `postgres_with_redis::...`), so a failure hides nothing and a filter picks
//! one: `cargo test -p origin --test conformance -- postgres_with_redis::feed`.
//!
//! The harness is `libtest-mimic` (the test has `harness = false`): `main`
//! lists the trials, starts each database server once, lazily, for every
//! check that needs it, and stops it when the run ends. Each check gets its
//! own fresh database (or keyspace), its own Redis when it runs with one, and
//! its own app. A new backend is one entry in [`backends`]: PostgreSQL and the
//! CQL backend on a real Apache Cassandra node always, and the CQL backend on
//! an external ScyllaDB or Cassandra cluster when `SCYLLA_URI` names one.

#[path = "../common/mod.rs"]
mod common;
mod reads;
mod writes;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::TestApp;
use hyper::StatusCode;
use libtest_mimic::{Arguments, Trial};
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::RedisServer;
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

use reads::*;
use writes::*;

type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn(TestApp) -> CheckFuture;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|app| Box::pin($name(app)) as CheckFuture) as Check)),*]
    };
}

/// Every check of the suite, by name.
const CHECKS: [(&str, Check); 13] = checks![
    song_is_served_with_cache_headers,
    unknown_song_is_404_everywhere,
    malformed_ids_are_400,
    posted_comment_is_201_with_location_and_readable,
    comments_page_through_in_track_order,
    page_parameters_are_checked,
    song_without_comments_has_an_empty_page,
    feed_joins_comments_with_their_authors,
    bad_comment_input_is_refused_and_nothing_is_stored,
    writes_need_a_valid_token,
    only_the_author_edits_or_deletes,
    readers_see_their_own_writes_at_once,
    health_readiness_and_metrics,
];

/// A database the suite runs on. It seeds the fixture songs and users
/// ([`common::FIXTURE_SONGS`], [`common::FIXTURE_USERS`]) into a database of
/// its own for each check and serves it with the real app.
#[async_trait]
trait Backend: Send + Sync {
    /// The test-name prefix.
    fn name(&self) -> &'static str;
    /// A freshly seeded database served by the app, with Redis when given.
    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp;
    /// Cleans up after the whole run (keyspaces on an external cluster).
    async fn finish(&self) {}
}

/// Every backend the suite runs on, each without and with Redis. Adding a
/// backend is adding it here; one that cannot run says SKIPPED here, once.
fn backends() -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![
        Arc::new(Postgres::default()),
        Arc::new(Cql::local_cassandra()),
    ];
    match std::env::var("SCYLLA_URI") {
        Ok(uri) => all.push(Arc::new(Cql::external(uri))),
        Err(_) => eprintln!("\n{SCYLLA_SKIPPED}\n"),
    }
    all
}

/// The line a run without an external cluster prints, on its own line, to stderr.
const SCYLLA_SKIPPED: &str = "SKIPPED: the suite on a real ScyllaDB, which cannot run here: \
     SCYLLA_URI is not set (the same CQL backend ran on a local Apache Cassandra node; to \
     add ScyllaDB: docker compose -f infra/docker/compose.yaml --profile scylla up -d scylla, \
     then SCYLLA_URI=127.0.0.1:9042; see infra/scylla/README.md)";

fn main() -> std::process::ExitCode {
    let arguments = Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let backends = backends();
    let mut trials = Vec::new();
    for backend in &backends {
        for with_redis in [false, true] {
            let prefix = if with_redis {
                format!("{}_with_redis", backend.name())
            } else {
                backend.name().to_owned()
            };
            for (name, check) in CHECKS {
                let backend = Arc::clone(backend);
                let runtime = Arc::clone(&runtime);
                trials.push(Trial::test(format!("{prefix}::{name}"), move || {
                    run_check(&runtime, backend.as_ref(), with_redis, check);
                    Ok(())
                }));
            }
        }
    }
    let conclusion = libtest_mimic::run(&arguments, trials);
    for backend in &backends {
        runtime.block_on(backend.finish());
    }
    // The servers stop as the backends drop, before the process exits.
    drop(backends);
    conclusion.exit_code()
}

/// One check on a fresh app; a panic in it fails the trial (libtest-mimic catches it).
fn run_check(runtime: &Runtime, backend: &dyn Backend, with_redis: bool, check: Check) {
    runtime.block_on(async {
        // A Redis of its own: checks run in parallel, and every database has
        // songs 1..=3, so a shared Redis would serve one check's pages to another.
        let redis = match with_redis {
            true => Some(
                RedisServer::start(Default::default())
                    .await
                    .expect("start Redis"),
            ),
            false => None,
        };
        let app = backend
            .fresh_app(redis.as_ref().map(RedisServer::url))
            .await;
        check(app).await;
        drop(redis);
    });
}

/// PostgreSQL: one server for the run, started by the first check that needs it.
#[derive(Default)]
struct Postgres {
    server: OnceCell<PostgresServer>,
}

#[async_trait]
impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp {
        let server = self
            .server
            .get_or_init(|| async {
                PostgresServer::start(PostgresOptions::for_tests())
                    .await
                    .expect("start PostgreSQL")
            })
            .await;
        let url = common::fresh_postgres_database(server).await;
        common::spawn_app(common::test_args(&url, redis_url)).await
    }
}

/// The CQL backend, on a fresh keyspace per check: on the Cassandra node this
/// test process shares (started by the first check that needs it, stopped when
/// the process exits), or on the cluster at `SCYLLA_URI` (its keyspaces are
/// dropped when the run ends).
struct Cql {
    external: Option<String>,
    keyspaces: Mutex<Vec<String>>,
}

impl Cql {
    fn local_cassandra() -> Self {
        Self {
            external: None,
            keyspaces: Mutex::new(Vec::new()),
        }
    }

    fn external(uri: String) -> Self {
        Self {
            external: Some(uri),
            keyspaces: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Backend for Cql {
    fn name(&self) -> &'static str {
        match self.external {
            None => "cassandra",
            Some(_) => "scylla",
        }
    }

    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp {
        let Some(uri) = &self.external else {
            let node = stack::cassandra::shared_for_tests()
                .await
                .expect("start the shared Cassandra node");
            let (app, _) = common::cql::fresh_app(node.uri(), redis_url).await;
            return app.holding(node);
        };
        let (app, storage) = common::cql::fresh_app(uri, redis_url).await;
        let keyspace = storage.keyspace().to_owned();
        self.keyspaces.lock().unwrap().push(keyspace);
        app
    }

    async fn finish(&self) {
        let Some(uri) = &self.external else {
            return;
        };
        let keyspaces = std::mem::take(&mut *self.keyspaces.lock().unwrap());
        let session = origin::storage::scylla::session(&common::cql::options(uri, "system"))
            .await
            .unwrap();
        for keyspace in keyspaces {
            if let Err(error) = session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                .await
            {
                eprintln!("could not drop keyspace {keyspace}: {error}");
            }
        }
    }
}

pub(crate) fn assert_error(reply: &common::Reply, status: StatusCode, mentions: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    let message = reply.error();
    assert!(
        message.to_lowercase().contains(&mentions.to_lowercase()),
        "{message:?} should mention {mentions:?}"
    );
    assert_eq!(reply.header("cache-control"), "no-store");
}
