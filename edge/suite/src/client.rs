//! The suite's view of one running edge: a client that sends requests to it
//! and the answers it gives.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Running;

/// An edge started for one scenario; stopped when dropped.
pub struct TestEdge {
    running: Box<dyn Running>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One answer, as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }

    pub fn age(&self) -> Option<u64> {
        self.header("age").and_then(|a| a.parse().ok())
    }
}

impl TestEdge {
    pub fn new(running: Box<dyn Running>) -> Self {
        Self {
            running,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// What the platform logged, for failure messages.
    pub fn log(&self) -> String {
        self.running.log()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut request =
            hyper::Request::builder()
                .method(method)
                .uri(format!("{}{}", self.url(), path));
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request");
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("edge answers within 20 s\n{}", self.log()))
            .unwrap_or_else(|e| panic!("edge answers: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }

    /// Writes `bytes` as they are on a new connection, closes the sending side
    /// when `then_close` says so (a body cut short), and returns the status
    /// line's code and the body of the answer (no client library would send a
    /// malformed request). `None` when the edge closed without an answer.
    pub async fn send_raw(&self, bytes: &[u8], then_close: bool) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let address = self.url();
        let address = address.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        stream.write_all(bytes).await.expect("write the request");
        if then_close {
            stream.shutdown().await.expect("close the sending side");
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
                if complete_answer(&answer) {
                    break;
                }
            }
        });
        read.await
            .unwrap_or_else(|_| panic!("edge answers within 20 s\n{}", self.log()));
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Some((status, body))
    }
}

/// Whether `answer` holds a whole response head and a `Content-Length` body.
fn complete_answer(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .is_some_and(|length| body.len() >= length)
}
