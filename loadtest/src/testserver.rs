//! A small HTTP server for testing the generator itself: it answers at once,
//! except that it can freeze every response for a while, once, at a chosen
//! moment (the stall a coordinated-omission-corrected generator must show).
//! It speaks enough of the song-comments API for the mix to run against it:
//! reads answer 200, `POST .../comments` answers 201 with a `Location`,
//! PATCH 200, DELETE 204, anything under `/missing` 404, and anything under
//! `/unavailable` 503 with `Retry-After: 1`. It runs on its own thread and
//! runtime so that a busy generator in the test cannot slow it. With a
//! certificate and key (PEM) it speaks HTTPS instead.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Freeze all responses from `at` (after the server starts) for `length`.
    pub stall: Option<(Duration, Duration)>,
    /// Added to every response.
    pub delay: Duration,
}

#[derive(Debug, Default)]
struct State {
    comments: Mutex<HashSet<Uuid>>,
    /// Connections accepted (TLS: handshakes completed).
    connections: AtomicU64,
}

/// A certificate chain and its key, both PEM, for an HTTPS test server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

fn tls_acceptor(files: &TlsFiles) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} {}: {error}", path.display()),
        )
    };
    let certificates = crate::client::read_certificates(&files.certificate)
        .map_err(|error| invalid("certificate", &files.certificate, &error))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| invalid("key", &files.key, &error))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| {
        builder
            .with_no_client_auth()
            .with_single_cert(certificates, key)
    })
    .map_err(|error| invalid("TLS set-up with", &files.certificate, &error))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A running test server; dropping it stops it.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    secure: bool,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), behaviour)
    }

    pub fn start_on(listen: SocketAddr, behaviour: Behaviour) -> std::io::Result<Self> {
        Self::start_with(listen, behaviour, None)
    }

    /// An HTTPS server on a free loopback port.
    pub fn start_tls(behaviour: Behaviour, files: &TlsFiles) -> std::io::Result<Self> {
        Self::start_with(
            "127.0.0.1:0".parse().expect("literal address"),
            behaviour,
            Some(files),
        )
    }

    pub fn start_with(
        listen: SocketAddr,
        behaviour: Behaviour,
        tls: Option<&TlsFiles>,
    ) -> std::io::Result<Self> {
        let acceptor = tls.map(tls_acceptor).transpose()?;
        let secure = acceptor.is_some();
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (stop, stopped) = oneshot::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(serve(listener, acceptor, behaviour, thread_state, stopped));
            })?;
        Ok(Self {
            addr,
            secure,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Connections accepted so far (for HTTPS: handshakes completed).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Whether the server holds a comment with this id.
    pub fn has_comment(&self, id: &Uuid) -> bool {
        self.state
            .comments
            .lock()
            .expect("comments lock")
            .contains(id)
    }

    pub fn comment_count(&self) -> usize {
        self.state.comments.lock().expect("comments lock").len()
    }

    /// Blocks until the server is stopped from elsewhere (the CLI's use).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    behaviour: Behaviour,
    state: Arc<State>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("listener joins the runtime");
    let started = Instant::now();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let counter = state.clone();
            let service =
                service_fn(move |request| answer(request, behaviour, started, state.clone()));
            let http = http1::Builder::new();
            match acceptor {
                None => {
                    counter.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    counter.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    behaviour: Behaviour,
    started: Instant,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some((at, length)) = behaviour.stall {
        let (from, until) = (started + at, started + at + length);
        let now = Instant::now();
        if now >= from && now < until {
            tokio::time::sleep_until(until).await;
        }
    }
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let (parts, body) = request.into_parts();
    let _ = body.collect().await;
    let path = parts.uri.path();
    let json = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    let response = if path.starts_with("/missing") {
        json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into())
    } else if path.starts_with("/unavailable") {
        let mut response = json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"unavailable"}"#.into(),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        response
    } else if parts.method == Method::POST && path.ends_with("/comments") {
        let id = Uuid::now_v7();
        state.comments.lock().expect("comments lock").insert(id);
        let mut response = json(StatusCode::CREATED, format!(r#"{{"id":"{id}"}}"#));
        response.headers_mut().insert(
            header::LOCATION,
            header::HeaderValue::from_str(&format!("/api/comments/{id}"))
                .expect("uuid is header-safe"),
        );
        response
    } else if parts.method == Method::DELETE {
        if let Some(id) = crate::workload::comment_id_in_path(path) {
            state.comments.lock().expect("comments lock").remove(&id);
        }
        json(StatusCode::NO_CONTENT, String::new())
    } else {
        json(StatusCode::OK, r#"{"ok":true}"#.into())
    };
    Ok(response)
}
