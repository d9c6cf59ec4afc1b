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
}

/// Runs `workers` loops of GETs against `urls(i)` until `stop` resolves or `max_requests`
/// per worker were sent; bounded in count and time.
pub fn spawn_get_stream(
    workers: usize,
    max_requests: usize,
    url_for: Arc<dyn Fn(usize) -> String + Send + Sync>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<StreamReport> {
    tokio::spawn(async move {
        let mut handles = Vec::new();
        for worker in 0..workers {
            let url_for = url_for.clone();
            let stop = stop.clone();
            handles.push(tokio::spawn(async move {
                let client = HttpClient::new(Duration::from_secs(10));
                let mut report = StreamReport::default();
                for n in 0..max_requests {
                    if *stop.borrow() {
                        break;
                    }
                    let url = url_for(worker * max_requests + n);
                    match client.get(&url).await {
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
        }
        total
    })
}
