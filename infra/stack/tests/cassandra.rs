//! The Cassandra launcher against a real node: start, data kept across a graceful stop and
//! across a crash, the same port after each start, cleanup on drop; and the watchdog that
//! cleans up after the node a whole test process shares.

use std::path::Path;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use stack::cassandra::{CassandraOptions, CassandraServer, cql_answers};
use stack::watchdog::Watchdog;

async fn session(uri: &str) -> Session {
    SessionBuilder::new()
        .known_node(uri)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

async fn count(session: &Session) -> i64 {
    let result = session
        .query_unpaged("SELECT count(*) FROM launcher.kv", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    result.single_row::<(i64,)>().unwrap().0
}

async fn insert(session: &Session, key: i32) {
    session
        .query_unpaged("INSERT INTO launcher.kv (k, v) VALUES (?, 'x')", (key,))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_starts_keeps_data_across_stop_and_crash_and_cleans_up() {
    let mut node = CassandraServer::start(CassandraOptions::default())
        .await
        .expect("start");
    let port = node.port();
    assert_eq!(node.uri(), format!("127.0.0.1:{port}"));
    assert!(node.startup_time() > Duration::ZERO);
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(log.contains("Startup complete"), "system.log is written");

    let client = session(&node.uri()).await;
    for ddl in [
        "CREATE KEYSPACE launcher WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
        "CREATE TABLE launcher.kv (k int PRIMARY KEY, v text)",
    ] {
        client.query_unpaged(ddl, ()).await.unwrap();
    }
    insert(&client, 1).await;
    drop(client);

    node.stop().await;
    assert!(
        cql_answers(port).await.is_err(),
        "a stopped node refuses CQL"
    );
    node.start_again().await.unwrap();
    assert_eq!(node.port(), port);
    let client = session(&node.uri()).await;
    assert_eq!(count(&client).await, 1, "kept across a graceful stop");
    insert(&client, 2).await;
    drop(client);

    // A crash: the row is only in the commit log, which the next start replays.
    node.kill();
    assert!(
        cql_answers(port).await.is_err(),
        "a killed node refuses CQL"
    );
    node.start_again().await.unwrap();
    let client = session(&node.uri()).await;
    assert_eq!(count(&client).await, 2, "kept across a crash");
    drop(client);

    let dir = node.dir().to_path_buf();
    drop(node);
    assert!(!dir.exists(), "the temporary directory is removed on drop");
    assert!(cql_answers(port).await.is_err(), "a dropped node is gone");
}

/// A process in a group of its own, as the launchers start servers.
fn sleeper() -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap()
}

fn gone(child: &mut std::process::Child) -> bool {
    // The watchdog signals; we are the parent, so we reap.
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn scratch_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/file"), "x").unwrap();
    dir
}

#[test]
fn watchdog_stops_the_server_and_removes_its_directory_when_the_owner_goes() {
    let root = tempfile::tempdir().unwrap();
    let mut server = sleeper();
    let dir = scratch_dir(root.path(), "node");
    let watchdog = Watchdog::spawn(server.id(), &dir).unwrap();
    assert!(
        server.try_wait().unwrap().is_none(),
        "nothing happens while the owner lives"
    );
    assert!(watchdog.release().unwrap().success());
    assert!(gone(&mut server), "the server's group was stopped");
    assert!(!dir.exists(), "its directory was removed");
}

#[test]
fn watchdog_keeps_the_directory_of_a_failed_test() {
    let root = tempfile::tempdir().unwrap();
    let mut server = sleeper();
    let dir = scratch_dir(root.path(), "node");
    let watchdog = Watchdog::spawn(server.id(), &dir).unwrap();
    Watchdog::keep_dir(&dir);
    assert!(watchdog.release().unwrap().success());
    assert!(gone(&mut server), "the server's group was stopped");
    assert!(dir.join("data/file").exists(), "the directory was kept");
}

/// A node that cannot start says why, with the end of Cassandra's own log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_bind_its_port_fails_with_cassandras_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = match CassandraServer::start(CassandraOptions::for_tests().native_port(port)).await
    {
        Ok(_) => panic!("a node started on a port that was taken"),
        Err(error) => stack::probe::error_chain(&error),
    };
    assert!(error.contains("Failed to bind port"), "{error}");
    assert!(error.contains("system.log"), "{error}");
    assert!(error.contains(&port.to_string()), "{error}");
}
