//! Outbound HTTP for the guest: one pooled keep-alive hyper client shared by all
//! instances (`wasmtime-wasi-http`'s default opens a connection per request), and
//! only to the configured origins.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Why the origin list was refused.
#[derive(Debug, thiserror::Error)]
#[error("origin `{0}` is not an http://host:port base URL")]
pub struct BadOrigin(String);

/// The guest's only way out: the origin group, over pooled connections.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, WasiBody>,
    allowed: Arc<Vec<(String, String)>>,
}

impl OriginClient {
    /// `origins` is the comma-separated `origins` variable.
    pub fn new(origins: &str) -> Result<Self, BadOrigin> {
        let mut allowed = Vec::new();
        for origin in origins.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let uri: http::Uri = origin.parse().map_err(|_| BadOrigin(origin.to_owned()))?;
            let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
                return Err(BadOrigin(origin.to_owned()));
            };
            allowed.push((scheme.to_owned(), authority.as_str().to_ascii_lowercase()));
        }
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
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let client = self.client.clone();
        let allowed = self.is_allowed(request.uri());
        Box::new(async move {
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            if request.uri().scheme_str() != Some("http") {
                return Err(Error::HttpProtocolError);
            }
            let response = client.request(request).await.map_err(|error| {
                if error.is_connect() {
                    Error::ConnectionRefused
                } else {
                    Error::HttpProtocolError
                }
            })?;
            let small = crate::framing::content_length(response.headers())
                .is_some_and(|length| length <= crate::framing::BUFFERED_BODY_BYTES);
            let mut response = if small {
                // The guest then reads the whole body at once, and the connection
                // is back in the pool before the guest runs again.
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|_| Error::HttpProtocolError)?
                    .to_bytes();
                http::Response::from_parts(
                    parts,
                    http_body_util::Full::new(body)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
            } else {
                response.map(|body| body.map_err(Error::from).boxed_unsync())
            };
            crate::framing::remove_connection_named(response.headers_mut());
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
