//! One HTTP/1.1 keep-alive connection per request slot, on raw hyper
//! connections (no pool lookup, no per-request connection bookkeeping).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::recorder::ErrorClass;

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

/// A keep-alive connection to the target.
#[derive(Debug)]
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self, ErrorClass> {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|_| ErrorClass::Connection)?;
        stream
            .set_nodelay(true)
            .map_err(|_| ErrorClass::Connection)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorClass::Connection)?;
        tokio::spawn(async move {
            // The connection ends when the slot drops its sender or the peer
            // closes; either way the slot sees it on its next request.
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    pub fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request. `Err(true)` means it was never sent (safe to retry
    /// on a fresh connection); `Err(false)` means it failed on the way.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, bool> {
        if self.sender.ready().await.is_err() {
            return Err(true);
        }
        self.sender
            .send_request(request)
            .await
            .map_err(|error| error.is_canceled())
    }
}

/// What a slot keeps of a response: status and, for writes, where the new
/// resource lives.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<HeaderValue>,
    pub body: Option<Bytes>,
}

/// Reads the whole response, keeping the body only when asked (writes).
pub async fn read_answer(
    response: Response<Incoming>,
    keep_body: bool,
) -> Result<Answer, ErrorClass> {
    let (parts, mut body) = response.into_parts();
    let mut kept = keep_body.then(Vec::new);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorClass::Connection)?;
        if let (Some(kept), Ok(data)) = (kept.as_mut(), frame.into_data()) {
            kept.extend_from_slice(&data);
        }
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        location: parts.headers.get(header::LOCATION).cloned(),
        body: kept.map(Bytes::from),
    })
}
