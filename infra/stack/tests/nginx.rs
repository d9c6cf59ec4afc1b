//! nginx as the pool's balancer against small upstream servers: balancing, reload under load, and retries for GETs only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Behaviour, Upstream, spawn_get_stream};
use stack::nginx::{Nginx, NginxSettings};
use stack::ports::free_port;
use stack::probe::HttpClient;

async fn start_nginx(run_dir: &std::path::Path, upstream_ports: Vec<u16>) -> Nginx {
    let settings = NginxSettings::new(run_dir.join("nginx"), free_port().unwrap(), upstream_ports);
    Nginx::start(settings).await.expect("nginx starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_spreads_requests_over_every_upstream() {
    let run_dir = tempfile::tempdir().unwrap();
    let first = Upstream::start("first", Behaviour::Healthy).await;
    let second = Upstream::start("second", Behaviour::Healthy).await;
    let nginx = start_nginx(run_dir.path(), vec![first.port, second.port]).await;

    let client = HttpClient::new(Duration::from_secs(5));
    let url = format!("{}/api/songs/1/comments", nginx.url());
    // Concurrent requests: least_conn only differs from round robin under concurrency.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..25 {
                assert_eq!(client.get(&url).await.unwrap().status, 200);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(first.count() + second.count(), 200);
    assert!(first.count() > 20, "first upstream got {}", first.count());
    assert!(
        second.count() > 20,
        "second upstream got {}",
        second.count()
    );
    nginx.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reload_under_load_drops_no_request() {
    let run_dir = tempfile::tempdir().unwrap();
    let first = Upstream::start("first", Behaviour::Healthy).await;
    let second = Upstream::start("second", Behaviour::Healthy).await;
    let third = Upstream::start("third", Behaviour::Healthy).await;
    let mut nginx = start_nginx(run_dir.path(), vec![first.port, second.port]).await;

    let base = nginx.url();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The stop signal ends the stream after the reloads; the count is only a safety
    // bound, set so that a fast machine cannot finish before the last reload.
    let stream = spawn_get_stream(
        8,
        100_000,
        Arc::new(move |n| format!("{base}/api/songs/{}/comments", n % 100 + 1)),
        stopped,
    );
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nginx
            .reload(vec![first.port, second.port, third.port])
            .await
            .unwrap_or_else(|error| panic!("reload {round} up: {error}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        nginx
            .reload(vec![first.port, second.port])
            .await
            .unwrap_or_else(|error| panic!("reload {round} down: {error}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An error here only means the stream already reached its count bound.
    let _ = stop.send(true);
    let report = stream.await.unwrap();
    assert!(report.ok > 100, "only {} requests completed", report.ok);
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed during reloads, first: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        report.failures.first()
    );
    assert!(
        third.count() > 0,
        "the upstream added by reload got no traffic"
    );
    println!(
        "{} GETs across 6 reloads, none failed; {} were re-sent after an old worker closed their idle keep-alive connection",
        report.ok, report.retried
    );
    nginx.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_retries_gets_but_never_posts_on_another_upstream() {
    let run_dir = tempfile::tempdir().unwrap();
    let broken = Upstream::start("broken", Behaviour::HangUp).await;
    let healthy = Upstream::start("healthy", Behaviour::Healthy).await;
    let nginx = start_nginx(run_dir.path(), vec![broken.port, healthy.port]).await;
    let client = HttpClient::new(Duration::from_secs(5));

    for n in 0..20 {
        let url = format!("{}/api/songs/{n}/comments", nginx.url());
        let response = client.get(&url).await.unwrap();
        assert_eq!(
            response.status, 200,
            "GET {n} was not retried on the healthy upstream"
        );
    }
    assert!(broken.count() >= 1, "the broken upstream was never tried");

    // POSTs: each must reach exactly one upstream; one that hit the broken one fails (502).
    let posts = 20u64;
    let before = broken.count() + healthy.count();
    let mut bad_gateway = 0u64;
    for n in 0..posts {
        let status = post(nginx.url(), n).await;
        if status == 502 {
            bad_gateway += 1;
        } else {
            assert_eq!(status, 200);
        }
        // Let fail_timeout lapse now and then so the broken upstream is tried again.
        if n % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
    }
    let delivered = broken.count() + healthy.count() - before;
    assert_eq!(
        delivered, posts,
        "a POST was sent to more than one upstream"
    );
    assert!(
        bad_gateway >= 1,
        "no POST reached the broken upstream, so nothing was checked"
    );
    nginx.stop();
}

/// A POST over a fresh connection, returning the status code.
async fn post(base: String, n: u64) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = format!("{{\"n\":{n}}}");
    let request = format!(
        "POST /api/songs/1/comments HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
