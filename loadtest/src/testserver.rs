//! A small HTTP server for testing the generator itself: it answers at once,
//! except that it can freeze every response for a while, once, at a chosen
//! moment (the stall a coordinated-omission-corrected generator must show).
//! It speaks enough of the song-comments API for the mix to run against it:
//! reads answer 200, `POST .../comments` answers 201 with a `Location`,
//! PATCH 200, DELETE 204, and anything under `/missing` 404. It runs on its own
//! thread and runtime so that a busy generator in the test cannot slow it.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;
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
}

/// A running test server; dropping it stops it.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), behaviour)
    }

    pub fn start_on(listen: SocketAddr, behaviour: Behaviour) -> std::io::Result<Self> {
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
                runtime.block_on(serve(listener, behaviour, thread_state, stopped));
            })?;
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
        tokio::spawn(async move {
            let service =
                service_fn(move |request| answer(request, behaviour, started, state.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
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
