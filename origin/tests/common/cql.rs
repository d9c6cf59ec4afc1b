//! The CQL backend in tests: a keyspace of its own per test on a node (the local Cassandra
//! node a test process shares, or an external cluster at `SCYLLA_URI`), with the schema
//! and the fixture songs and users, served by the real app.

use std::sync::Arc;
use std::time::Duration;

use origin::configuration::{Backend, ScyllaArgs, ServeArgs};
use origin::storage::scylla::{ScyllaOptions, ScyllaStorage};
use scylla::client::session::Session;

use super::{FIXTURE_SONGS, FIXTURE_USERS, TestApp};

/// Bounds each CQL request a test makes (schema changes have their own, longer bound).
pub const CQL_TIMEOUT: Duration = Duration::from_secs(5);

/// A keyspace name unique to this process and call (CQL names are at most 48 characters).
pub fn fresh_keyspace() -> String {
    format!("t{}_{:016x}", std::process::id(), rand::random::<u64>())
}

/// The backend's settings for `keyspace` on the node at `uri`. `SCYLLA_CONSISTENCY` and
/// `SCYLLA_REPLICATION` apply, for an external cluster of several nodes.
pub fn args(uri: &str, keyspace: &str) -> ScyllaArgs {
    let mut args = ScyllaArgs {
        uri: Some(uri.to_owned()),
        keyspace: keyspace.to_owned(),
        ..Default::default()
    };
    if let Ok(consistency) = std::env::var("SCYLLA_CONSISTENCY") {
        args.consistency = origin::configuration::parse_consistency(&consistency).unwrap();
    }
    if let Ok(replication) = std::env::var("SCYLLA_REPLICATION") {
        args.replication = replication;
    }
    args
}

pub fn options(uri: &str, keyspace: &str) -> ScyllaOptions {
    args(uri, keyspace)
        .options(CQL_TIMEOUT)
        .expect("a contact point")
}

/// The app's settings on the CQL backend (it applies the schema as it starts).
pub fn serve_args(uri: &str, keyspace: &str, redis_url: Option<String>) -> ServeArgs {
    let mut serve = super::test_args("", redis_url);
    serve.database.backend = Backend::Scylla;
    serve.database.database_url = None;
    serve.database.scylla = args(uri, keyspace);
    serve
}

/// A fresh keyspace with the schema and the fixture, and the storage over it.
pub async fn fresh_storage(uri: &str) -> (Arc<ScyllaStorage>, String) {
    let keyspace = fresh_keyspace();
    let storage = ScyllaStorage::connect_and_migrate(&options(uri, &keyspace))
        .await
        .unwrap_or_else(|e| panic!("CQL node at {uri}: {}", origin::error::error_chain(&e)));
    seed_fixture(storage.session(), &keyspace).await;
    (Arc::new(storage), keyspace)
}

/// The fixture songs and users, written into `keyspace`.
pub async fn seed_fixture(session: &Session, keyspace: &str) {
    let now = scylla::value::CqlTimestamp(chrono::Utc::now().timestamp_millis());
    for (id, title, artist, duration) in FIXTURE_SONGS {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.songs (id, title, artist, duration_ms, created_at) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                (id, title, artist, duration, now),
            )
            .await
            .unwrap();
    }
    for (id, name, avatar) in FIXTURE_USERS {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.users (id, name, avatar_url, location) \
                     VALUES (?, ?, ?, 'here')"
                ),
                (id, name, avatar),
            )
            .await
            .unwrap();
    }
}

/// A fresh keyspace served by the app over the same storage the test holds.
pub async fn fresh_app(uri: &str, redis_url: Option<String>) -> (TestApp, Arc<ScyllaStorage>) {
    let (storage, keyspace) = fresh_storage(uri).await;
    let app = super::spawn_app_with_storage(
        serve_args(uri, &keyspace, redis_url),
        Arc::clone(&storage) as Arc<dyn origin::storage::Storage>,
    )
    .await;
    (app, storage)
}

/// How many rows `table` of `keyspace` holds (a full scan: for tiny test keyspaces).
pub async fn count_rows(session: &Session, keyspace: &str, table: &str) -> i64 {
    session
        .query_unpaged(format!("SELECT count(*) FROM {keyspace}.{table}"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(i64,)>()
        .unwrap()
        .0
}
