//! One HTTP/1.1 keep-alive connection per request slot, written by hand in
//! the way wrk does it: the request is serialised into a reused buffer, the
//! response read into another and parsed in place with `httparse`; no task
//! per connection, no channel, no per-request header map. (A hyper client
//! connection costs two tasks and a channel hop per request, which kept the
//! generator well below wrk on one core.)

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::recorder::ErrorClass;
use crate::workload::PlannedRequest;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {0:?} must look like http://127.0.0.1:8000 (plain HTTP, host and port)")]
    Shape(String),
    #[error("resolving target host {0:?}")]
    Resolve(String, #[source] std::io::Error),
    #[error("target host {0:?} resolved to no address")]
    NoAddress(String),
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub host_header: HeaderValue,
    /// Path prefix prepended to every request path (usually empty).
    pub base_path: String,
}

impl Target {
    pub async fn resolve(url: &str) -> Result<Self, TargetError> {
        let shape = || TargetError::Shape(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(shape)?;
        let (authority, base_path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(shape());
        }
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|source| TargetError::Resolve(authority.to_owned(), source))?
            .next()
            .ok_or_else(|| TargetError::NoAddress(authority.to_owned()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            host_header: HeaderValue::from_str(authority).map_err(|_| shape())?,
            base_path: base_path.to_owned(),
        })
    }
}

/// What a slot keeps of a response: status and, for writes, where the new
/// resource lives.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
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
    stream: TcpStream,
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
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|_| ErrorClass::Connection)?;
        stream
            .set_nodelay(true)
            .map_err(|_| ErrorClass::Connection)?;
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
        let broken = |retry_safe| Failure {
            class: ErrorClass::Connection,
            retry_safe,
        };
        self.serialise(target, planned);
        if self.stream.write_all(&self.request).await.is_err() {
            self.closing = true;
            return Err(broken(reused));
        }
        // Head.
        let (status, head_len, framing, location) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buffer[..self.filled]) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or(0);
                    let mut framing = Framing::UntilClose;
                    let mut location = None;
                    for header in response.headers.iter() {
                        let name = header.name;
                        if name.eq_ignore_ascii_case("content-length") {
                            let length = std::str::from_utf8(header.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok());
                            framing = Framing::Length(length.ok_or(broken(false))?);
                        } else if name.eq_ignore_ascii_case("transfer-encoding") {
                            if header
                                .value
                                .windows(7)
                                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
                            {
                                framing = Framing::Chunked;
                            }
                        } else if name.eq_ignore_ascii_case("connection") {
                            if header.value.eq_ignore_ascii_case(b"close") {
                                self.closing = true;
                            }
                        } else if name.eq_ignore_ascii_case("location") {
                            location = std::str::from_utf8(header.value).ok().map(str::to_owned);
                        }
                    }
                    if matches!(status, 100..=199 | 204 | 304) {
                        framing = Framing::Length(0);
                    }
                    if status == 100 {
                        // An interim answer: drop it and read the real one.
                        self.consume(head_len);
                        continue;
                    }
                    break (status, head_len, framing, location);
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
        };
        self.consume(head_len);
        // Body.
        let mut kept = keep_body.then(Vec::new);
        match framing {
            Framing::Length(length) => {
                while self.filled < length {
                    if !matches!(self.fill().await, Ok(read) if read > 0) {
                        self.closing = true;
                        return Err(broken(false));
                    }
                }
                if let Some(kept) = kept.as_mut() {
                    kept.extend_from_slice(&self.buffer[..length]);
                }
                self.consume(length);
            }
            Framing::Chunked => loop {
                match httparse::parse_chunk_size(&self.buffer[..self.filled]) {
                    Ok(httparse::Status::Complete((size_len, size))) => {
                        let size = size as usize;
                        // The chunk, then its CRLF (after the last chunk: the final CRLF).
                        while self.filled < size_len + size + 2 {
                            if !matches!(self.fill().await, Ok(read) if read > 0) {
                                self.closing = true;
                                return Err(broken(false));
                            }
                        }
                        if let Some(kept) = kept.as_mut() {
                            kept.extend_from_slice(&self.buffer[size_len..size_len + size]);
                        }
                        self.consume(size_len + size + 2);
                        if size == 0 {
                            break;
                        }
                    }
                    Ok(httparse::Status::Partial) => {
                        if !matches!(self.fill().await, Ok(read) if read > 0) {
                            self.closing = true;
                            return Err(broken(false));
                        }
                    }
                    Err(_) => {
                        self.closing = true;
                        return Err(broken(false));
                    }
                }
            },
            Framing::UntilClose => {
                while matches!(self.fill().await, Ok(read) if read > 0) {}
                if let Some(kept) = kept.as_mut() {
                    kept.extend_from_slice(&self.buffer[..self.filled]);
                }
                self.filled = 0;
                self.closing = true;
            }
        }
        Ok(Answer {
            status,
            location,
            body: kept.map(Bytes::from),
        })
    }

    /// Drops the first `count` bytes of the buffer.
    fn consume(&mut self, count: usize) {
        self.buffer.copy_within(count..self.filled, 0);
        self.filled -= count;
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}
