//! The `origin` executable itself: `origin serve` prints the address it
//! bound, serves the API over a real PostgreSQL, and exits cleanly on SIGTERM.

use std::time::Duration;

use hyper::StatusCode;
use stack::postgres::{PostgresOptions, PostgresServer};

/// Bounds every wait: longer means the binary hung.
const HANG_LIMIT: Duration = Duration::from_secs(10);

async fn insert_song(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO songs (id, title, artist, duration_ms) VALUES (1, 'Blue Hour', 'Ada Lane', 180000)",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_its_address_serves_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt as _;
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = pg.create_random_database().await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--jwt-secret",
            "test-secret",
        ])
        .env_remove("REDIS_URL")
        .env_remove("ORIGIN_BACKEND")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(HANG_LIMIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let address = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    insert_song(&url).await; // `serve` ran the migrations

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let reply = client
        .get(format!("{address}/api/songs/1").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(HANG_LIMIT, child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "graceful exit: {status}");
    assert!(
        lines.next_line().await.unwrap().is_none(),
        "nothing else on stdout"
    );
}
