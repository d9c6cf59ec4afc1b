//! One HTTP/1.1 keep-alive connection per request slot, written by hand in
//! the way wrk does it: the request is serialised into a reused buffer, the
//! response read into another and parsed in place with `httparse`; no task
//! per connection, no channel, no per-request header map. (A hyper client
//! connection costs two tasks and a channel hop per request, which kept the
//! generator well below wrk on one core.)
//!
//! `https://` targets (a deployed CloudFront URL) go through rustls (ring
//! provider, web PKI roots from `webpki-roots`, or a `--ca-file`, or no
//! verification at all with `--insecure`); the handshake counts in the first
//! request's latency on each connection, as the TCP connect does. Plain
//! `http://` stays a bare `TcpStream`: one branch per read or write.

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::HeaderValue;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::recorder::{CacheStatus, ErrorClass};
use crate::workload::PlannedRequest;

use tls::client_config;
pub use tls::{Tls, TlsOptions, read_certificates};

mod tls;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "target {0:?} must look like http://127.0.0.1:8000 or https://d111111abcdef8.cloudfront.net (scheme, host, optional port and path)"
    )]
    Shape(String),
    #[error("resolving target host {0:?}")]
    Resolve(String, #[source] std::io::Error),
    #[error("target host {0:?} resolved to no address")]
    NoAddress(String),
    #[error("reading CA certificates from {0}")]
    CaFile(String, #[source] rustls::pki_types::pem::Error),
    #[error("{0} holds no usable CA certificate (expected PEM `BEGIN CERTIFICATE` blocks)")]
    NoCaCertificate(String),
    #[error("setting up TLS")]
    Tls(#[source] rustls::Error),
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub host_header: HeaderValue,
    /// Path prefix prepended to every request path (usually empty).
    pub base_path: String,
    /// Set for `https://` targets.
    pub tls: Option<Tls>,
}

/// `host` and port of an authority (`example.com`, `127.0.0.1:8000`, `[::1]:8443`).
fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then_some((host, port))
}

impl Target {
    /// A target with the default TLS settings (web PKI roots) for `https://`.
    pub async fn resolve(url: &str) -> Result<Self, TargetError> {
        Self::resolve_with(url, &TlsOptions::default()).await
    }

    pub async fn resolve_with(url: &str, tls: &TlsOptions) -> Result<Self, TargetError> {
        let shape = || TargetError::Shape(url.to_owned());
        let (rest, secure) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(shape());
        };
        let (authority, base_path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) =
            split_authority(authority, if secure { 443 } else { 80 }).ok_or_else(shape)?;
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| TargetError::Resolve(authority.to_owned(), source))?
            .next()
            .ok_or_else(|| TargetError::NoAddress(authority.to_owned()))?;
        let tls = if secure {
            Some(Tls {
                connector: TlsConnector::from(client_config(tls)?),
                server_name: ServerName::try_from(host.to_owned()).map_err(|_| shape())?,
            })
        } else {
            None
        };
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            host_header: HeaderValue::from_str(authority).map_err(|_| shape())?,
            base_path: base_path.to_owned(),
            tls,
        })
    }
}

/// The socket under a connection.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buffer).await,
            Stream::Tls(stream) => stream.read(buffer).await,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.write_all(data).await,
            Stream::Tls(stream) => {
                stream.write_all(data).await?;
                stream.flush().await
            }
        }
    }
}

/// What a slot keeps of a response: status and, for writes, where the new
/// resource lives.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    /// The answer said when to retry (`Retry-After`), as a shed 503 does.
    pub retry_after: bool,
    /// What a cache in front said (`X-Cache`).
    pub cache: Option<CacheStatus>,
    pub body: Option<Bytes>,
}

/// Why an exchange failed, and whether the request may be resent: only when
/// a reused connection turned out closed before any byte of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub retry_safe: bool,
}

const READ_CHUNK: usize = 16 * 1024;
const MAX_HEADERS: usize = 48;

/// A keep-alive connection to the target.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    request: Vec<u8>,
    buffer: Vec<u8>,
    /// Bytes of `buffer` that hold data read from the socket.
    filled: usize,
    /// Requests this connection has carried.
    used: u64,
    /// The server asked to close (or the body ran to EOF): no reuse.
    closing: bool,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self, ErrorClass> {
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|_| ErrorClass::Connection)?;
        tcp.set_nodelay(true).map_err(|_| ErrorClass::Connection)?;
        let stream = match &target.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(
                tls.connector
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|_| ErrorClass::Connection)?,
            )),
        };
        Ok(Self {
            stream,
            request: Vec::with_capacity(1024),
            buffer: vec![0; READ_CHUNK],
            filled: 0,
            used: 0,
            closing: false,
        })
    }

    pub fn is_usable(&self) -> bool {
        !self.closing
    }

    fn serialise(&mut self, target: &Target, planned: &PlannedRequest) {
        let fixed = planned.uri.as_ref().and_then(|uri| uri.path_and_query());
        let path = fixed.map_or(planned.path.as_str(), |path| path.as_str());
        let request = &mut self.request;
        request.clear();
        request.extend_from_slice(planned.method.as_str().as_bytes());
        request.push(b' ');
        request.extend_from_slice(target.base_path.as_bytes());
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(target.host_header.as_bytes());
        request.extend_from_slice(b"\r\n");
        if let Some(authorization) = &planned.authorization {
            request.extend_from_slice(b"Authorization: ");
            request.extend_from_slice(authorization.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        if !planned.body.is_empty() {
            request.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        if !planned.body.is_empty() || planned.method != http::Method::GET {
            let _ = write!(request, "Content-Length: {}\r\n", planned.body.len());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&planned.body);
    }

    /// Reads more bytes into the buffer; `Ok(0)` is EOF.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.filled == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        let read = self.stream.read(&mut self.buffer[self.filled..]).await?;
        self.filled += read;
        Ok(read)
    }

    /// Sends the request and reads the whole response, keeping the body only
    /// when asked (writes).
    pub async fn exchange(
        &mut self,
        target: &Target,
        planned: &PlannedRequest,
        keep_body: bool,
    ) -> Result<Answer, Failure> {
        let reused = self.used > 0;
        self.used += 1;
        self.serialise(target, planned);
        if self.stream.write_all(&self.request).await.is_err() {
            self.closing = true;
            return Err(broken(reused));
        }
        let head = self.read_head(reused).await?;
        let body = self.read_body(head.framing, keep_body).await?;
        Ok(Answer {
            status: head.status,
            location: head.location,
            retry_after: head.retry_after,
            cache: head.cache,
            body: body.map(Bytes::from),
        })
    }

    /// Reads a response's head, after any interim 100s, and consumes it.
    async fn read_head(&mut self, reused: bool) -> Result<Head, Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buffer[..self.filled]) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let head = Head::of(&response);
                    self.consume(head_len);
                    let head = head.inspect_err(|_| self.closing = true)?;
                    self.closing |= head.closes;
                    if head.status != 100 {
                        return Ok(head);
                    }
                    // An interim answer: drop it and read the real one.
                    continue;
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => {
                    self.closing = true;
                    return Err(broken(false));
                }
            }
            match self.fill().await {
                Ok(0) | Err(_) => {
                    self.closing = true;
                    // Nothing at all came back on a reused connection: the
                    // server had closed it while idle; the request is unseen.
                    return Err(broken(reused && self.filled == 0));
                }
                Ok(_) => {}
            }
        }
    }

    /// Reads the body `framing` announces and consumes it; returns it when `keep`.
    async fn read_body(
        &mut self,
        framing: Framing,
        keep: bool,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let mut kept = keep.then(Vec::new);
        match framing {
            Framing::Length(length) => {
                while self.filled < length {
                    self.fill_more().await?;
                }
                if let Some(kept) = kept.as_mut() {
                    kept.extend_from_slice(&self.buffer[..length]);
                }
                self.consume(length);
            }
            Framing::Chunked => self.read_chunks(kept.as_mut()).await?,
            Framing::UntilClose => {
                while matches!(self.fill().await, Ok(read) if read > 0) {}
                if let Some(kept) = kept.as_mut() {
                    kept.extend_from_slice(&self.buffer[..self.filled]);
                }
                self.filled = 0;
                self.closing = true;
            }
        }
        Ok(kept)
    }

    /// Reads a chunked body through its last chunk, appending the chunks to `kept`.
    async fn read_chunks(&mut self, mut kept: Option<&mut Vec<u8>>) -> Result<(), Failure> {
        loop {
            match httparse::parse_chunk_size(&self.buffer[..self.filled]) {
                Ok(httparse::Status::Complete((size_len, size))) => {
                    let size = size as usize;
                    // The chunk, then its CRLF (after the last chunk: the final CRLF).
                    while self.filled < size_len + size + 2 {
                        self.fill_more().await?;
                    }
                    if let Some(kept) = kept.as_mut() {
                        kept.extend_from_slice(&self.buffer[size_len..size_len + size]);
                    }
                    self.consume(size_len + size + 2);
                    if size == 0 {
                        return Ok(());
                    }
                }
                Ok(httparse::Status::Partial) => self.fill_more().await?,
                Err(_) => {
                    self.closing = true;
                    return Err(broken(false));
                }
            }
        }
    }

    /// Reads more of a response that is not complete: an end or an error there
    /// breaks the exchange.
    async fn fill_more(&mut self) -> Result<(), Failure> {
        if matches!(self.fill().await, Ok(read) if read > 0) {
            Ok(())
        } else {
            self.closing = true;
            Err(broken(false))
        }
    }

    /// Drops the first `count` bytes of the buffer.
    fn consume(&mut self, count: usize) {
        self.buffer.copy_within(count..self.filled, 0);
        self.filled -= count;
    }
}

/// A connection failure; `retry_safe` when the request cannot have been seen.
fn broken(retry_safe: bool) -> Failure {
    Failure {
        class: ErrorClass::Connection,
        retry_safe,
    }
}

/// What the generator reads of a response's head.
struct Head {
    status: u16,
    framing: Framing,
    location: Option<String>,
    retry_after: bool,
    cache: Option<CacheStatus>,
    /// The server said `Connection: close`.
    closes: bool,
}

impl Head {
    /// The head's fields; an unreadable `Content-Length` breaks the exchange.
    fn of(response: &httparse::Response<'_, '_>) -> Result<Self, Failure> {
        let status = response.code.unwrap_or(0);
        let mut head = Head {
            status,
            framing: Framing::UntilClose,
            location: None,
            retry_after: false,
            cache: None,
            closes: false,
        };
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                head.framing = Framing::Length(length.ok_or(broken(false))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if header
                    .value
                    .windows(7)
                    .any(|w| w.eq_ignore_ascii_case(b"chunked"))
                {
                    head.framing = Framing::Chunked;
                }
            } else if name.eq_ignore_ascii_case("connection") {
                head.closes |= header.value.eq_ignore_ascii_case(b"close");
            } else if name.eq_ignore_ascii_case("location") {
                head.location = std::str::from_utf8(header.value).ok().map(str::to_owned);
            } else if name.eq_ignore_ascii_case("retry-after") {
                head.retry_after = true;
            } else if name.eq_ignore_ascii_case("x-cache") {
                head.cache = CacheStatus::parse(header.value);
            }
        }
        if matches!(status, 100..=199 | 204 | 304) {
            head.framing = Framing::Length(0);
        }
        Ok(head)
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[cfg(test)]
mod tests;
