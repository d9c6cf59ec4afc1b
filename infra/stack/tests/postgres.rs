//! The PostgreSQL launcher against the real server: start, per-test databases,
//! stop/restart on the same port and data, kill and recover, cleanup on drop.

use stack::postgres::{PostgresOptions, PostgresServer};

async fn query_one(url: &str, sql: &str) -> Result<i64, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let row = client.query_one(sql, &[]).await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn postgres_starts_restarts_recovers_and_cleans_up() {
    let mut server = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start");
    let data_dir = server.data_dir().to_path_buf();
    assert!(data_dir.join("PG_VERSION").exists());

    let url = server
        .create_random_database()
        .await
        .expect("create database");
    let other = server
        .create_random_database()
        .await
        .expect("create database");
    assert_ne!(url, other, "random database names must differ");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE t (v bigint); INSERT INTO t VALUES (41), (1);")
        .await
        .unwrap();
    assert_eq!(
        query_one(&url, "SELECT sum(v)::bigint FROM t")
            .await
            .unwrap(),
        42
    );

    let port = server.port();
    server.stop().await.unwrap();
    assert!(
        query_one(&url, "SELECT 1::bigint").await.is_err(),
        "a stopped server must refuse"
    );
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "old connections die with the server"
    );

    server.restart().await.unwrap();
    assert_eq!(server.port(), port, "restart keeps the port");
    assert_eq!(
        query_one(&url, "SELECT sum(v)::bigint FROM t")
            .await
            .unwrap(),
        42,
        "data survives"
    );

    server.kill().await;
    assert!(query_one(&url, "SELECT 1::bigint").await.is_err());
    server.start_again().await.unwrap();
    assert_eq!(
        query_one(&url, "SELECT count(*) FROM t").await.unwrap(),
        2,
        "recovers after a kill"
    );

    drop(server);
    assert!(
        !data_dir.exists(),
        "the temporary directory is removed on drop"
    );
}

#[tokio::test]
async fn postgres_keeps_a_given_data_dir_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = stack::ports::free_port().unwrap();
    let options = PostgresOptions::default()
        .data_dir(dir.path().join("pg"))
        .port(port)
        .max_connections(20);
    let server = PostgresServer::start(options.clone()).await.expect("start");
    assert_eq!(server.port(), port);
    let url = server.create_database("kept").await.unwrap();
    assert_eq!(
        query_one(&url, "SELECT current_setting('max_connections')::bigint")
            .await
            .unwrap(),
        20
    );
    drop(server);
    assert!(
        dir.path().join("pg/data/PG_VERSION").exists(),
        "a given data dir is kept"
    );

    let server = PostgresServer::start(options)
        .await
        .expect("start on the existing cluster");
    assert_eq!(
        query_one(&url, "SELECT 7::bigint").await.unwrap(),
        7,
        "the database is still there"
    );
    drop(server);
}

/// A backend serving a pooled connection lives in a session of its own (PostgreSQL calls
/// `setsid` for each), yet its CPU counts for the server: the study's per-part CPU table
/// once read 0.00 for PostgreSQL at every load.
#[tokio::test]
async fn a_busy_backend_counts_in_the_servers_cpu() {
    let server = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .expect("start");
    let postmaster = server.pid().expect("running");
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let before = stack::cpu::group_seconds(&[postmaster])[0];
    // Work the backend does while the connection stays open (as a pool's would).
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM generate_series(1, 3000000) a, generate_series(1, 2) b WHERE a % 7 <> b",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rows > 0);
    let used = stack::cpu::group_seconds(&[postmaster])[0] - before;
    // The query costs hundreds of milliseconds of CPU; the tick is 10 ms.
    assert!(used >= 0.1, "the server's CPU grew by only {used} s");
}
