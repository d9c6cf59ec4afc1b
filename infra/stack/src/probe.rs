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
    #[error("request to {url} failed on a new connection, after a reused one had closed under it")]
    Resent {
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
/// The retry goes out on a new connection: the pool may hold a second idle connection
/// the same old worker is closing, and a retry on it would fail for the same reason.
/// A retry that fails on a fresh connection is the server's failure, and is reported.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
    /// Never reuses a connection: it keeps none idle.
    fresh: Client<HttpConnector, Empty<Bytes>>,
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
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self {
            inner,
            fresh,
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
                    self.fresh
                        .get(uri)
                        .await
                        .map_err(|source| ProbeError::Resent {
                            url: url.to_owned(),
                            source,
                        })?
                }
                Err(source) => {
                    return Err(ProbeError::Request {
                        url: url.to_owned(),
                        source,
                    });
                }
                Ok(response) => response,
            };
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

/// Whether the connection was closed, or reset, before any byte of the response came:
/// an old nginx worker closing an idle keep-alive connection shows up either way,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers the first request on each connection after `delay` and keeps the connection
    /// alive; on a connection's second request it closes without a byte of answer, as an
    /// old nginx worker closes an idle keep-alive connection under a request. Counts
    /// connections.
    async fn closes_reused_connections(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    tokio::time::sleep(delay).await;
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    // The next request on this connection is read, then the connection dropped.
                    let _ = stream.read(&mut buffer).await;
                });
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn a_get_closed_under_it_is_resent_once_on_a_new_connection() {
        let (url, connections) = closes_reused_connections(Duration::from_millis(50)).await;
        let client = HttpClient::new(Duration::from_secs(5));
        // Two GETs at once leave two idle connections in the pool; both will close under
        // their next request, as every idle connection of a reloading nginx worker does.
        let (first, second) = tokio::join!(client.get(&url), client.get(&url));
        assert_eq!(first.unwrap().status, StatusCode::OK);
        assert_eq!(second.unwrap().status, StatusCode::OK);
        assert_eq!(connections.load(Ordering::SeqCst), 2);

        let third = client.get(&url).await.expect("resent on a new connection");
        assert_eq!(third.status, StatusCode::OK);
        assert_eq!(third.body, "ok");
        assert_eq!(client.retries(), 1, "sent twice, no more");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            3,
            "the retry opened one"
        );
    }
}
