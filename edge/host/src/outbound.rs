//! Outbound HTTP for the guest: one pooled keep-alive hyper client shared by all
//! instances (`wasmtime-wasi-http`'s default opens a connection per request), and
//! only to the configured origins.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, RequestOptions, WasiBody, WasiHttpHooks,
};

/// Why the origin list was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadOrigin {
    #[error("origin `{0}` is not an http://host:port base URL")]
    NotABaseUrl(String),
    /// edge-core takes `https://` origins (Spin and the Worker reach them), but
    /// this client would refuse every request to one: refused at start instead.
    #[error(
        "origin `{0}`: edge-host reaches origins over plain http:// only (its outbound \
         client has no TLS); give it an http:// origin, such as a TLS-terminating proxy \
         in front of this one, or serve the edge on Spin or as the Worker"
    )]
    Https(String),
}

/// The scheme and lower-case authority of each origin in `origins` (the
/// comma-separated list), all of them `http://`.
pub fn allowed_origins(origins: &str) -> Result<Vec<(String, String)>, BadOrigin> {
    let mut allowed = Vec::new();
    for origin in origins.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let bad = || BadOrigin::NotABaseUrl(origin.to_owned());
        let uri: http::Uri = origin.parse().map_err(|_| bad())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad());
        };
        match scheme {
            "http" => {}
            "https" => return Err(BadOrigin::Https(origin.to_owned())),
            _ => return Err(bad()),
        }
        allowed.push((scheme.to_owned(), authority.as_str().to_ascii_lowercase()));
    }
    Ok(allowed)
}

/// The guest's only way out: the origin group, over pooled connections.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, WasiBody>,
    allowed: Arc<Vec<(String, String)>>,
}

impl OriginClient {
    /// `origins` is the comma-separated list of every origin the guest may reach.
    pub fn new(origins: &str) -> Result<Self, BadOrigin> {
        let allowed = allowed_origins(origins)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            .build(connector);
        Ok(Self {
            client,
            allowed: Arc::new(allowed),
        })
    }

    fn is_allowed(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        let authority = authority.as_str().to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|(s, a)| s == scheme && *a == authority)
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for OriginClient {
    /// The default rule, [`DEFAULT_FORBIDDEN_HEADERS`], without the default's way
    /// to it: that builds the rule as a new `Arc`'d closure for every field of
    /// every `fields` the guest makes (7 a HIT, the most expensive host call it has).
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    /// Sends within the guest's `first-byte-timeout` (the head, and a small body
    /// with it) and `between-bytes-timeout` (each later part of a larger body): the
    /// guest's time limit then needs no timer of its own. A limit that passes is
    /// `connection-read-timeout`, as in wasmtime's own client.
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let client = self.client.clone();
        let allowed = self.is_allowed(request.uri());
        let (first_byte, between_bytes) = options.map_or((None, None), |options| {
            (options.first_byte_timeout, options.between_bytes_timeout)
        });
        Box::new(async move {
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            if request.uri().scheme_str() != Some("http") {
                return Err(Error::HttpProtocolError);
            }
            let exchange = exchange(client, request);
            let mut response = match first_byte {
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|_| Error::ConnectionReadTimeout)??,
                None => exchange.await?,
            };
            if let Some(limit) = between_bytes {
                response = response.map(|body| BetweenBytes::new(body, limit).boxed_unsync());
            }
            crate::framing::remove_connection_named(response.headers_mut());
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// The origin's answer; one of at most 64 KiB comes whole, so that the guest reads
/// it at once and the connection is back in the pool before the guest runs again.
/// An answer framed by `Transfer-Encoding` loses any `Content-Length` beside it
/// first ([`crate::framing::remove_length_beside_chunking`]).
async fn exchange(
    client: Client<HttpConnector, WasiBody>,
    request: http::Request<WasiBody>,
) -> Result<http::Response<WasiBody>, Error> {
    let mut response = client.request(request).await.map_err(|error| {
        if error.is_connect() {
            Error::ConnectionRefused
        } else {
            Error::HttpProtocolError
        }
    })?;
    crate::framing::remove_length_beside_chunking(response.headers_mut());
    let small = crate::framing::content_length(response.headers())
        .is_some_and(|length| length <= crate::framing::BUFFERED_BODY_BYTES);
    if !small {
        return Ok(response.map(|body| body.map_err(Error::from).boxed_unsync()));
    }
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Error::HttpProtocolError)?
        .to_bytes();
    Ok(http::Response::from_parts(
        parts,
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    ))
}

/// A body that fails with `connection-read-timeout` when its next part takes longer
/// than `limit` to come. The clock starts when a read finds nothing waiting, not
/// when the last part came: a reader that comes back late is not the origin's delay.
struct BetweenBytes {
    body: WasiBody,
    limit: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BetweenBytes {
    fn new(body: WasiBody, limit: Duration) -> Self {
        Self {
            body,
            limit,
            waiting: None,
        }
    }
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(context) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let limit = this.limit;
                let waiting = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(waiting.as_mut().poll(context));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An origin on loopback that answers one request with `answer`, as given.
    async fn origin_answering(answer: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            stream.write_all(answer).await.expect("answer");
        });
        format!("http://{address}/")
    }

    #[test]
    fn only_plain_http_origins_are_taken() {
        assert_eq!(
            allowed_origins("http://127.0.0.1:8100, http://Origin.Example").unwrap(),
            [
                ("http".to_owned(), "127.0.0.1:8100".to_owned()),
                ("http".to_owned(), "origin.example".to_owned())
            ]
        );
        let refused = allowed_origins("http://a:1,https://lb.example").unwrap_err();
        assert!(matches!(&refused, BadOrigin::Https(origin) if origin == "https://lb.example"));
        let message = refused.to_string();
        assert!(
            message.starts_with(
                "origin `https://lb.example`: edge-host reaches origins over plain http:// only"
            ),
            "{message}"
        );
        assert!(matches!(
            allowed_origins("ftp://a"),
            Err(BadOrigin::NotABaseUrl(_))
        ));
        assert!(OriginClient::new("https://lb.example").is_err());
    }

    /// RFC 9112 section 6.3: `Transfer-Encoding` frames the body, and the
    /// `Content-Length` beside it goes before the guest, which would otherwise
    /// take it for the body's length, sees the answer. Here the first chunk is
    /// as long as that length: a guest that read to the length would stop after it.
    #[tokio::test]
    async fn a_length_beside_chunking_is_removed_and_the_body_comes_whole() {
        let url = origin_answering(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n\
              5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
        )
        .await;
        let client = OriginClient::new(&url).expect("origin").client;
        let request = http::Request::get(url)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .expect("request");
        let response = exchange(client, request).await.expect("answer");
        assert_eq!(response.headers().get(http::header::CONTENT_LENGTH), None);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "hello, world");
    }
}
