//! Minimal HTTP/1.1 client for readiness checks and for tests that count failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why a request or a readiness wait failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid URL {0}")]
    Url(String),
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the body from {url} failed")]
    Body {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("request to {url} timed out")]
    Timeout { url: String },
    #[error("{what} at {url} not ready after {waited:?} (last: {last})")]
    NotReady {
        what: String,
        url: String,
        waited: Duration,
        last: String,
    },
}

/// A response with its body read completely.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A keep-alive HTTP client over plain TCP; cheap to clone.
///
/// A server may close an idle keep-alive connection just as a request goes out on it
/// (nginx's old workers do so on every reload). RFC 9112 section 9.3.1 lets a client
/// retry an idempotent request then, and this one does, once, counting each retry.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    retries: Arc<AtomicU64>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Self {
            inner,
            timeout,
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many requests were sent a second time because a keep-alive connection closed under them.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// GETs `url` and reads the whole body, within the client's timeout.
    pub async fn get(&self, url: &str) -> Result<Response, ProbeError> {
        let uri: Uri = url.parse().map_err(|_| ProbeError::Url(url.to_owned()))?;
        let exchange = async {
            let response = match self.inner.get(uri.clone()).await {
                Err(error) if closed_before_response(&error) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    self.inner.get(uri).await
                }
                other => other,
            }
            .map_err(|source| ProbeError::Request {
                url: url.to_owned(),
                source,
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|source| ProbeError::Body {
                    url: url.to_owned(),
                    source,
                })?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProbeError::Timeout {
                url: url.to_owned(),
            })?
    }
}

/// True when the server closed a reused connection before any byte of the response.
/// Whether the connection was closed, or reset, before any of the response came: an
/// old nginx worker closing an idle keep-alive connection shows up either way,
/// depending on whether our request was already on the wire.
fn closed_before_response(error: &hyper_util::client::legacy::Error) -> bool {
    let Some(error) =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<hyper::Error>())
    else {
        return false;
    };
    let reset = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
    error.is_incomplete_message() || reset
}

/// Polls `url` until it answers 200 or `patience` runs out.
///
/// `still_alive` is asked between attempts so that a process that died while starting
/// fails the wait at once instead of after the whole patience.
pub async fn wait_until_ready(
    what: &str,
    url: &str,
    patience: Duration,
    mut still_alive: impl FnMut() -> bool,
) -> Result<(), ProbeError> {
    let client = HttpClient::new(Duration::from_secs(2));
    let started = Instant::now();
    loop {
        let mut last = match client.get(url).await {
            Ok(response) if response.status == StatusCode::OK => return Ok(()),
            Ok(response) => format!("status {}", response.status),
            Err(error) => error_chain(&error),
        };
        if !still_alive() {
            last = format!("process exited ({last})");
        }
        if started.elapsed() >= patience || last.starts_with("process exited") {
            return Err(ProbeError::NotReady {
                what: what.to_owned(),
                url: url.to_owned(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An error and all its sources on one line, for messages and logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
