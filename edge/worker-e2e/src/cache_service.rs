//! The Cache API's backing service for local workerd. Deployed Workers get
//! Cloudflare's per-data-centre cache; a bare `workerd` forwards `caches.default`
//! operations to the service named by the worker's `cacheApiOutbound` (without
//! one, puts are dropped and every match misses). This is that service, speaking
//! workerd's protocol: `PUT` with the serialised response as body, `GET` answered
//! with `Cf-Cache-Status: HIT` or `MISS`, `PURGE` answered 200 or 404. Entries
//! expire after their `Cache-Control` `s-maxage`/`max-age`, as on Cloudflare.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Most bytes held at once; puts beyond it are refused with 413, as Cloudflare refuses oversize entries.
const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;

struct Entry {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    expires: Instant,
}

/// Operation counts, so tests can tell a cache hit from an origin call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub puts: u64,
    pub hits: u64,
    pub misses: u64,
    pub purges: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    stats: CacheStats,
}

/// A running cache service on loopback; stops when dropped.
pub struct CacheService {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl CacheService {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            state,
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn stats(&self) -> CacheStats {
        lock(&self.state).stats
    }

    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for CacheService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let namespace = header(&request, "cf-cache-namespaces").unwrap_or_default();
    let host = header(&request, "host").unwrap_or_default();
    let key = format!("{namespace}|{host}{}", request.uri());
    let method = request.method().clone();
    let reply = |status: StatusCode| {
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default())
    };
    if method == Method::GET {
        let mut state = lock(&state);
        let now = Instant::now();
        if state
            .entries
            .get(&key)
            .is_some_and(|entry| entry.expires <= now)
        {
            state.entries.remove(&key);
        }
        let Some(entry) = state.entries.get(&key) else {
            state.stats.misses += 1;
            let mut response = Response::new(Full::new(Bytes::new()));
            response.headers_mut().insert(
                "cf-cache-status",
                "MISS".parse().expect("static header value"),
            );
            return Ok(response);
        };
        let mut builder = Response::builder().status(entry.status);
        for (name, value) in &entry.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .header("cf-cache-status", "HIT")
            .body(Full::new(entry.body.clone()))
            .unwrap_or_default();
        state.stats.hits += 1;
        return Ok(response);
    }
    if method == Method::PUT {
        let body = request.into_body().collect().await?.to_bytes();
        let Some(entry) = parse_serialised_response(&body) else {
            return reply(StatusCode::BAD_REQUEST);
        };
        let mut state = lock(&state);
        let held: usize = state.entries.values().map(|e| e.body.len()).sum();
        if held + entry.body.len() > MAX_TOTAL_BYTES {
            return reply(StatusCode::PAYLOAD_TOO_LARGE);
        }
        state.stats.puts += 1;
        if entry.expires > Instant::now() {
            state.entries.insert(key, entry);
        }
        return reply(StatusCode::NO_CONTENT);
    }
    if method.as_str() == "PURGE" {
        let mut state = lock(&state);
        state.stats.purges += 1;
        return match state.entries.remove(&key) {
            Some(_) => reply(StatusCode::OK),
            None => reply(StatusCode::NOT_FOUND),
        };
    }
    reply(StatusCode::METHOD_NOT_ALLOWED)
}

fn header(request: &Request<Incoming>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// Reads `HTTP/1.1 <status> <reason>\r\n<headers>\r\n\r\n<body>` as workerd writes it.
fn parse_serialised_response(bytes: &[u8]) -> Option<Entry> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let mut body = Bytes::copy_from_slice(&bytes[split + 4..]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
        headers.retain(|(n, _)| n != "transfer-encoding");
        headers.push(("content-length".to_owned(), body.len().to_string()));
    }
    let lifetime = freshness_secs(&headers)?;
    Some(Entry {
        status,
        headers,
        body,
        expires: Instant::now() + Duration::from_secs(lifetime),
    })
}

/// `s-maxage`, else `max-age`; `None` (not stored) without either, or with `no-store`/`private`.
fn freshness_secs(headers: &[(String, String)]) -> Option<u64> {
    let directives: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n == "cache-control")
        .flat_map(|(_, v)| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives.iter().any(|d| d == "no-store" || d == "private") {
        return None;
    }
    let value = |name: &str| {
        directives.iter().find_map(|d| {
            d.strip_prefix(name)?
                .strip_prefix('=')?
                .trim_matches('"')
                .parse::<u64>()
                .ok()
        })
    };
    value("s-maxage").or_else(|| value("max-age"))
}

fn dechunk(mut bytes: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(bytes.len());
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Some(Bytes::from(out));
        }
        out.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_responses_parse() {
        let entry = parse_serialised_response(
            b"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        )
        .expect("parses");
        assert_eq!(entry.status, 200);
        assert_eq!(&entry.body[..], b"abc");
        let chunked = parse_serialised_response(
            b"HTTP/1.1 200 OK\r\ncache-control: s-maxage=5\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(&chunked.body[..], b"abcde");
        assert!(
            parse_serialised_response(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none(),
            "no max-age: not stored"
        );
        assert!(
            parse_serialised_response(
                b"HTTP/1.1 200 OK\r\ncache-control: private, max-age=9\r\n\r\n"
            )
            .is_none()
        );
    }
}
