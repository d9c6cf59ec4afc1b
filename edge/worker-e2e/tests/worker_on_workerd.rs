//! The edge Worker under local workerd, in front of scripted origins on loopback:
//! misses and hits, Age, failover when the first origin is down, no retry of a
//! POST, invalidation after a write, stale-while-revalidate through wait_until,
//! concurrent misses, and what happens when workerd has no Cache API backend.
//!
//! Needs worker-build, wasm-bindgen, esbuild and workerd (edge/worker/README.md).
//! Without them every test prints a `SKIPPED:` line and passes, unless
//! `EDGE_WORKER_E2E_REQUIRED=1` is set (CI), which turns that into a failure.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use edge_worker_e2e::cache_service::CacheService;
use edge_worker_e2e::toolchain::Toolchain;
use edge_worker_e2e::workerd::{Workerd, WorkerdOptions};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Builds the Worker once per test binary; `None` (after a SKIPPED line) when the tools are missing.
fn built_worker() -> Option<(Toolchain, std::path::PathBuf)> {
    static BUILT: OnceLock<Result<(Toolchain, std::path::PathBuf), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let toolchain = Toolchain::locate().map_err(|e| e.to_string())?;
        let dir = toolchain
            .build_worker()
            .map_err(|e| format!("BUILD FAILED: {e}"))?;
        Ok((toolchain, dir))
    });
    match built {
        Ok(built) => Some(built.clone()),
        Err(reason) if reason.starts_with("BUILD FAILED") => panic!("{reason}"),
        Err(reason) => {
            if std::env::var("EDGE_WORKER_E2E_REQUIRED").is_ok_and(|v| v == "1") {
                panic!(
                    "EDGE_WORKER_E2E_REQUIRED=1 but the Worker tool chain is incomplete: {reason}"
                );
            }
            // Straight to stderr: libtest hides print!/eprint! output of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: Worker-on-workerd test, because {reason}"
            );
            None
        }
    }
}

/// What the scripted origin does for every request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// Serves songs and comments; writes bump a version that reads show.
    Normal,
    /// Answers every request with 503.
    Unavailable,
}

/// A scripted origin on loopback that counts requests by `METHOD path`.
struct Origin {
    address: SocketAddr,
    counts: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let address = listener.local_addr().expect("origin address");
        let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let version = Arc::new(Mutex::new(0u64));
        let served = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = served.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        respond(script, counts.clone(), version.clone(), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            counts,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn count(&self, method_and_path: &str) -> u64 {
        self.counts
            .lock()
            .expect("counts")
            .get(method_and_path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(
    script: Script,
    counts: Arc<Mutex<HashMap<String, u64>>>,
    version: Arc<Mutex<u64>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    *counts
        .lock()
        .expect("counts")
        .entry(format!("{method} {path}"))
        .or_default() += 1;
    let _ = request.into_body().collect().await?;
    let reply = |status: u16, cache_control: &str, body: String| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", cache_control)
            .body(Full::new(Bytes::from(body)))
            .expect("response"))
    };
    if script == Script::Unavailable {
        return reply(503, "no-store", "{\"error\":\"unavailable\"}".to_owned());
    }
    let current = *version.lock().expect("version");
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/songs/1/comments") => reply(
            200,
            "public, max-age=60",
            format!("{{\"version\":{current}}}"),
        ),
        ("GET", "/api/songs/2/comments") => reply(
            200,
            "public, max-age=2, stale-while-revalidate=30",
            format!("{{\"version\":{current}}}"),
        ),
        ("GET", "/api/songs/3/comments") => {
            // Slow enough that concurrent misses overlap at the edge.
            tokio::time::sleep(Duration::from_millis(500)).await;
            reply(
                200,
                "public, max-age=60",
                format!("{{\"version\":{current}}}"),
            )
        }
        ("GET", "/api/songs/4/comments") => reply(
            200,
            "public, max-age=1, stale-if-error=60",
            format!("{{\"version\":{current}}}"),
        ),
        ("GET", "/api/users/me") => reply(200, "no-store", "{\"user\":1}".to_owned()),
        ("POST", "/api/songs/1/comments") => {
            *version.lock().expect("version") += 1;
            reply(201, "no-store", "{\"created\":true}".to_owned())
        }
        _ => reply(404, "no-store", "{\"error\":\"not_found\"}".to_owned()),
    }
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: &str,
) -> Reply {
    send_as(client, None, method, url, body).await
}

/// `send` with the `Host` a client of the zone would send, so two local edges share cache keys.
async fn send_as(
    client: &Client<HttpConnector, Full<Bytes>>,
    host: Option<&str>,
    method: &str,
    url: &str,
    body: &str,
) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let request = request
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("edge answered within 20 s")
        .expect("edge request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("edge body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An address where nothing listens: bound, then released.
fn dead_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

fn start_edge(
    toolchain: &Toolchain,
    build_dir: &std::path::Path,
    origins: &str,
    cache: Option<&CacheService>,
) -> Workerd {
    let options = WorkerdOptions {
        workerd: toolchain.workerd.clone(),
        build_dir: build_dir.to_path_buf(),
        vars: vec![
            ("origins".to_owned(), origins.to_owned()),
            ("origin_timeout_ms".to_owned(), "2000".to_owned()),
            ("total_timeout_ms".to_owned(), "5000".to_owned()),
            ("max_ttl_secs".to_owned(), "300".to_owned()),
        ],
        cache_service: cache.map(CacheService::address),
        listen: "127.0.0.1:0".parse().expect("address"),
    };
    Workerd::start(&options).unwrap_or_else(|e| panic!("workerd: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_read_is_a_hit_with_age_and_no_origin_call() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    let edge = start_edge(&toolchain, &build, &origin.url(), Some(&cache));
    let client = client();
    let url = format!("{}/api/songs/1/comments", edge.url());

    let first = send(&client, "GET", &url, "").await;
    assert_eq!(
        (first.status, first.header("x-cache")),
        (200, "MISS"),
        "{}",
        edge.log()
    );
    let second = send(&client, "GET", &url, "").await;
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, "HIT"),
        "{}",
        edge.log()
    );
    assert_eq!(second.body, first.body);
    assert!(
        second.header("age").parse::<u64>().is_ok(),
        "HIT carries Age, got {:?}",
        second.header("age")
    );
    assert_eq!(
        origin.count("GET /api/songs/1/comments"),
        1,
        "the HIT did not reach the origin"
    );
    assert!(
        cache.stats().puts >= 1 && cache.stats().hits >= 1,
        "stored in and served from the Cache API: {:?}",
        cache.stats()
    );

    let health = send(&client, "GET", &format!("{}/healthz", edge.url()), "").await;
    assert_eq!(health.status, 200);
    let outside = send(&client, "GET", &format!("{}/elsewhere", edge.url()), "").await;
    assert_eq!(outside.status, 404);
    assert!(
        outside.body.contains("\"error\""),
        "JSON error body: {}",
        outside.body
    );
    let private = send(&client, "GET", &format!("{}/api/users/me", edge.url()), "").await;
    let private_again = send(&client, "GET", &format!("{}/api/users/me", edge.url()), "").await;
    assert_eq!(
        (private.header("x-cache"), private_again.header("x-cache")),
        ("MISS", "MISS"),
        "no-store is never served from cache"
    );
    assert_eq!(origin.count("GET /api/users/me"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fail_over_past_a_dead_and_an_unavailable_origin() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let unavailable = Origin::start(Script::Unavailable).await;
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    let origins = format!("{},{},{}", dead_origin(), unavailable.url(), origin.url());
    let edge = start_edge(&toolchain, &build, &origins, Some(&cache));
    let client = client();

    let read = send(
        &client,
        "GET",
        &format!("{}/api/songs/1/comments", edge.url()),
        "",
    )
    .await;
    assert_eq!(
        (read.status, read.header("x-cache")),
        (200, "MISS"),
        "{}",
        edge.log()
    );
    assert_eq!(
        unavailable.count("GET /api/songs/1/comments"),
        1,
        "the 503 origin was tried"
    );
    assert_eq!(
        origin.count("GET /api/songs/1/comments"),
        1,
        "the healthy origin answered"
    );

    // A POST is not idempotent: after the first origin that answers (503) it is not sent on.
    let edge_without_dead = start_edge(
        &toolchain,
        &build,
        &format!("{},{}", unavailable.url(), origin.url()),
        None,
    );
    let write = send(
        &client,
        "POST",
        &format!("{}/api/songs/1/comments", edge_without_dead.url()),
        "{}",
    )
    .await;
    assert_eq!(write.status, 503, "{}", edge_without_dead.log());
    assert_eq!(
        origin.count("POST /api/songs/1/comments"),
        0,
        "a POST is never retried on another origin"
    );

    let none_left = start_edge(
        &toolchain,
        &build,
        &format!("{},{}", dead_origin(), dead_origin()),
        None,
    );
    let failed = send(
        &client,
        "GET",
        &format!("{}/api/songs/1/comments", none_left.url()),
        "",
    )
    .await;
    assert_eq!(failed.status, 502, "{}", none_left.log());
    assert!(
        failed.body.contains("origin_unavailable"),
        "{}",
        failed.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_invalidates_what_it_changed() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    let edge = start_edge(&toolchain, &build, &origin.url(), Some(&cache));
    let client = client();
    let url = format!("{}/api/songs/1/comments", edge.url());

    let before = send(&client, "GET", &url, "").await;
    assert_eq!(before.header("x-cache"), "MISS", "{}", edge.log());
    assert_eq!(
        send(&client, "GET", &url, "").await.header("x-cache"),
        "HIT"
    );
    assert_eq!(before.body, "{\"version\":0}");

    let write = send(
        &client,
        "POST",
        &url,
        "{\"body\":\"nice\",\"position_ms\":1000}",
    )
    .await;
    assert_eq!(
        (write.status, write.header("x-cache")),
        (201, "BYPASS"),
        "{}",
        edge.log()
    );

    let after = send(&client, "GET", &url, "").await;
    assert_eq!(
        (after.header("x-cache"), after.body.as_str()),
        ("MISS", "{\"version\":1}"),
        "{}",
        edge.log()
    );
    assert_eq!(origin.count("GET /api/songs/1/comments"), 2);
    assert_eq!(
        send(&client, "GET", &url, "").await.header("x-cache"),
        "HIT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    let edge = start_edge(&toolchain, &build, &origin.url(), Some(&cache));
    let client = client();
    let url = format!("{}/api/songs/2/comments", edge.url());

    assert_eq!(
        send(&client, "GET", &url, "").await.header("x-cache"),
        "MISS",
        "{}",
        edge.log()
    );
    // max-age=2: three seconds later the entry is stale but inside stale-while-revalidate.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let stale = send(&client, "GET", &url, "").await;
    assert_eq!(
        (stale.status, stale.header("x-cache")),
        (200, "STALE"),
        "{}",
        edge.log()
    );
    // The refresh runs after the response, kept alive by wait_until: it reaches
    // the origin and puts the new record (the second put of this test).
    let mut refreshed = false;
    for _ in 0..50 {
        if origin.count("GET /api/songs/2/comments") == 2 && cache.stats().puts >= 2 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refreshed,
        "the background refresh reached the origin and the cache: {:?}; {}",
        cache.stats(),
        edge.log()
    );
    assert_eq!(
        send(&client, "GET", &url, "").await.header("x-cache"),
        "HIT",
        "{}",
        edge.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_backend_local_workerd_never_hits() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let edge = start_edge(&toolchain, &build, &origin.url(), None);
    let client = client();
    let url = format!("{}/api/songs/1/comments", edge.url());
    for _ in 0..2 {
        let read = send(&client, "GET", &url, "").await;
        assert_eq!(
            (read.status, read.header("x-cache")),
            (200, "MISS"),
            "{}",
            edge.log()
        );
    }
    assert_eq!(
        origin.count("GET /api/songs/1/comments"),
        2,
        "bare workerd's Cache API stores nothing"
    );
}

/// workers-rs cannot collapse concurrent misses (see edge/worker/README.md): each
/// must fetch for itself and, above all, each must get its own good response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_each_reach_the_origin_and_all_succeed() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    let edge = start_edge(&toolchain, &build, &origin.url(), Some(&cache));
    let client = client();
    let url = format!("{}/api/songs/3/comments", edge.url());
    let replies = futures_join_all((0..6).map(|_| send(&client, "GET", &url, ""))).await;
    for reply in &replies {
        assert_eq!(
            (reply.status, reply.header("x-cache"), reply.body.as_str()),
            (200, "MISS", "{\"version\":0}"),
            "{}",
            edge.log()
        );
    }
    assert_eq!(
        origin.count("GET /api/songs/3/comments"),
        6,
        "no collapsing on Workers"
    );
    let after = send(&client, "GET", &url, "").await;
    assert_eq!(after.header("x-cache"), "HIT", "{}", edge.log());
    assert!(
        !edge.log().contains("different request"),
        "no response crossed request contexts: {}",
        edge.log()
    );
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => {
                        *result = Some(output);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(results.into_iter().flatten());
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_the_stored_copy_when_every_origin_fails() {
    let Some((toolchain, build)) = built_worker() else {
        return;
    };
    let origin = Origin::start(Script::Normal).await;
    let cache = CacheService::start().await.expect("cache service");
    // Two Worker deployments on one zone's cache: one reaches the origin, one has only dead origins.
    let healthy = start_edge(&toolchain, &build, &origin.url(), Some(&cache));
    let cut_off = start_edge(
        &toolchain,
        &build,
        &format!("{},{}", dead_origin(), dead_origin()),
        Some(&cache),
    );
    let client = client();
    let zone = Some("edge.test");
    let path = "/api/songs/4/comments";

    let fresh = send_as(
        &client,
        zone,
        "GET",
        &format!("{}{path}", healthy.url()),
        "",
    )
    .await;
    assert_eq!(
        (fresh.status, fresh.header("x-cache")),
        (200, "MISS"),
        "{}",
        healthy.log()
    );
    // max-age=1: after two seconds the copy is stale, but inside stale-if-error=60.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let rescued = send_as(
        &client,
        zone,
        "GET",
        &format!("{}{path}", cut_off.url()),
        "",
    )
    .await;
    assert_eq!(
        (
            rescued.status,
            rescued.header("x-cache"),
            rescued.body.as_str()
        ),
        (200, "STALE", fresh.body.as_str()),
        "{}",
        cut_off.log()
    );
    assert!(
        rescued
            .header("age")
            .parse::<u64>()
            .is_ok_and(|age| age >= 2),
        "Age {:?}",
        rescued.header("age")
    );

    let never_stored = send_as(
        &client,
        zone,
        "GET",
        &format!("{}/api/songs/5/comments", cut_off.url()),
        "",
    )
    .await;
    assert_eq!(
        never_stored.status, 502,
        "nothing stored: the edge's own JSON 502"
    );
}
