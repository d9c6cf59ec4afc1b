//! nginx as the pool's balancer against small upstream servers: balancing, reload under load, and retries for GETs only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Behaviour, GetStream, Upstream, wait_until};
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
    nginx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reload_under_load_drops_no_request() {
    let run_dir = tempfile::tempdir().unwrap();
    let first = Upstream::start("first", Behaviour::Healthy).await;
    let second = Upstream::start("second", Behaviour::Healthy).await;
    let third = Upstream::start("third", Behaviour::Healthy).await;
    let mut nginx = start_nginx(run_dir.path(), vec![first.port, second.port]).await;

    let base = nginx.url();
    // The stream runs until stopped; between reloads the test waits for it to complete more
    // requests (not for a fixed time), so every reload happens under load on any machine.
    let stream = GetStream::start(
        8,
        Arc::new(move |n| format!("{base}/api/songs/{}/comments", n % 100 + 1)),
        Duration::from_secs(300),
    );
    let patience = Duration::from_secs(60);
    for round in 0..3 {
        stream.wait_for(50, patience).await;
        let third_before = third.count();
        nginx
            .reload(vec![first.port, second.port, third.port])
            .await
            .unwrap_or_else(|error| panic!("reload {round} up: {error}"));
        wait_until(
            patience,
            "the upstream added by reload gets traffic",
            || third.count() > third_before,
        )
        .await;
        stream.wait_for(50, patience).await;
        nginx
            .reload(vec![first.port, second.port])
            .await
            .unwrap_or_else(|error| panic!("reload {round} down: {error}"));
    }
    stream.wait_for(50, patience).await;
    let report = stream.stop().await;
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed during reloads, first: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        report.failures.first()
    );
    println!(
        "{} GETs across 6 reloads, none failed; {} were re-sent after an old worker closed their idle keep-alive connection",
        report.ok, report.retried
    );
    nginx.stop().await;
}

/// A client connection that never sends a request keeps an old worker alive for
/// nginx's `client_header_timeout` (60 s): the reload goes on without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_wait_on_a_connection_that_sent_nothing() {
    let run_dir = tempfile::tempdir().unwrap();
    let first = Upstream::start("first", Behaviour::Healthy).await;
    let second = Upstream::start("second", Behaviour::Healthy).await;
    let mut nginx = start_nginx(run_dir.path(), vec![first.port]).await;
    let address = nginx.url().trim_start_matches("http://").to_owned();
    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Let a worker accept it before the reload.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    nginx
        .reload(vec![first.port, second.port])
        .await
        .expect("the reload finishes");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the reload waited {:?}",
        started.elapsed()
    );
    let client = HttpClient::new(Duration::from_secs(5));
    let url = format!("{}/api/songs/1/comments", nginx.url());
    for _ in 0..20 {
        assert_eq!(client.get(&url).await.unwrap().status, 200);
    }
    assert!(second.count() > 0, "the new configuration serves");
    drop(silent);
    nginx.stop().await;
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
    // At least 20, and on until one has reached the broken upstream (bounded): which POST
    // does depends on nginx's balancing and timing, not on a count fixed here.
    let before = broken.count() + healthy.count();
    let mut posts = 0u64;
    let mut bad_gateway = 0u64;
    while (posts < 20 || bad_gateway == 0) && posts < 200 {
        let status = post(nginx.url(), posts).await;
        if status == 502 {
            bad_gateway += 1;
        } else {
            assert_eq!(status, 200);
        }
        posts += 1;
        // Let fail_timeout (2 s) lapse now and then so the broken upstream is tried again.
        if posts.is_multiple_of(5) {
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
    nginx.stop().await;
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
