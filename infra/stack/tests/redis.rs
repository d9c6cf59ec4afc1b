//! The Redis launcher against the real server: start, kill, start again on the
//! same port, persistence when asked, cleanup on drop.

use std::time::Duration;

use stack::redis::{RedisOptions, RedisServer};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// Sends one inline command and returns the first reply line.
async fn command(port: u16, line: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    let mut reply = String::new();
    stream.read_line(&mut reply).await?;
    if reply.starts_with('$') && !reply.starts_with("$-1") {
        reply.clear();
        stream.read_line(&mut reply).await?;
    }
    Ok(reply.trim_end().to_string())
}

#[tokio::test]
async fn redis_starts_kills_restarts_and_cleans_up() {
    let mut server = RedisServer::start(RedisOptions::default())
        .await
        .expect("start");
    let port = server.port();
    assert!(server.url().contains(&format!("127.0.0.1:{port}")));
    assert_eq!(command(port, "SET k v").await.unwrap(), "+OK");
    assert_eq!(command(port, "GET k").await.unwrap(), "v");

    server.kill().await;
    assert!(
        command(port, "PING").await.is_err(),
        "a killed server refuses connections"
    );
    server.start_again().await.unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(
        command(port, "GET k").await.unwrap(),
        "$-1",
        "no persistence: the cache starts empty"
    );

    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(!dir.exists(), "the temporary directory is removed on drop");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        command(port, "PING").await.is_err(),
        "dropped server is gone"
    );
}

#[tokio::test]
async fn redis_persistent_keeps_data_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start(RedisOptions::default().dir(dir.path()).persistent(true))
        .await
        .expect("start");
    assert_eq!(command(server.port(), "SET kept yes").await.unwrap(), "+OK");
    server.restart().await.unwrap();
    assert_eq!(command(server.port(), "GET kept").await.unwrap(), "yes");
}
