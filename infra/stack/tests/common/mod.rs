//! Helpers shared by the stack's integration tests: small upstream HTTP servers and load loops.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use stack::probe::HttpClient;

/// How a test upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with the upstream's name as the body.
    Healthy,
    /// Reads the request, then closes the connection without answering (a crash mid-request).
    HangUp,
}

/// An HTTP/1.1 server on 127.0.0.1 standing in for an origin in nginx-only tests.
pub struct Upstream {
    pub port: u16,
    pub requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &'static str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    if behaviour == Behaviour::HangUp {
                        // Count the request, then drop the connection unanswered.
                        let mut stream = stream;
                        let mut buffer = [0u8; 4096];
                        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            counter.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                name.as_bytes(),
                            ))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops accepting; established connections end with their tasks.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Outcome of a stream of GETs.
#[derive(Debug, Default)]
pub struct StreamReport {
    pub ok: u64,
    /// GETs sent again after a keep-alive connection closed under them (RFC 9112 9.3.1).
    pub retried: u64,
    pub failures: Vec<String>,
    /// True when the stream ended at its time bound instead of on [`GetStream::stop`]: the
    /// test's sequence outlasted it, so part of the sequence was not watched.
    pub ran_out_of_time: bool,
}

/// Closed-loop workers sending GETs until told to stop, bounded in time only, so that the
/// whole of a test's fault sequence is watched whatever the machine's speed.
pub struct GetStream {
    stop: tokio::sync::watch::Sender<bool>,
    answered: Arc<AtomicU64>,
    task: JoinHandle<StreamReport>,
}

impl GetStream {
    /// Starts `workers` loops of GETs at `url_for(n)`; they end on [`stop`](Self::stop) or
    /// after `bound`, whichever comes first.
    pub fn start(
        workers: usize,
        url_for: Arc<dyn Fn(u64) -> String + Send + Sync>,
        bound: Duration,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let answered = Arc::new(AtomicU64::new(0));
        let deadline = tokio::time::Instant::now() + bound;
        let counter = answered.clone();
        let next = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            let mut handles = Vec::new();
            for _ in 0..workers {
                let url_for = url_for.clone();
                let stopped = stopped.clone();
                let counter = counter.clone();
                let next = next.clone();
                handles.push(tokio::spawn(async move {
                    let client = HttpClient::new(Duration::from_secs(10));
                    let mut report = StreamReport::default();
                    while !*stopped.borrow() {
                        if tokio::time::Instant::now() >= deadline {
                            report.ran_out_of_time = true;
                            break;
                        }
                        let url = url_for(next.fetch_add(1, Ordering::SeqCst));
                        let outcome = client.get(&url).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                        match outcome {
                            Ok(response) if response.status.is_success() => report.ok += 1,
                            Ok(response) => report
                                .failures
                                .push(format!("{url}: status {}", response.status)),
                            Err(error) => report
                                .failures
                                .push(format!("{url}: {}", stack::probe::error_chain(&error))),
                        }
                    }
                    report.retried = client.retries();
                    report
                }));
            }
            let mut total = StreamReport::default();
            for handle in handles {
                let report = handle.await.unwrap();
                total.ok += report.ok;
                total.retried += report.retried;
                total.failures.extend(report.failures);
                total.ran_out_of_time |= report.ran_out_of_time;
            }
            total
        });
        Self {
            stop,
            answered,
            task,
        }
    }

    /// Waits until `count` more GETs have been answered (or failed) since this call, so the
    /// stream is known to run across the step before and after, within `patience`.
    pub async fn wait_for(&self, count: u64, patience: Duration) {
        let target = self.answered.load(Ordering::SeqCst) + count;
        let deadline = tokio::time::Instant::now() + patience;
        while self.answered.load(Ordering::SeqCst) < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the GET stream completed fewer than {count} requests in {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the workers and returns what they saw; the stream must not have run out of time.
    pub async fn stop(self) -> StreamReport {
        self.stop.send_replace(true);
        let report = self.task.await.unwrap();
        assert!(
            !report.ran_out_of_time,
            "the GET stream reached its time bound before the test stopped it: the sequence it was to watch took too long"
        );
        report
    }
}

/// Polls `condition` until it holds; fails the test naming `what` after `patience`.
pub async fn wait_until(patience: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + patience;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {patience:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
