//! Building and running the application: storage, cache, router and the
//! layers around it (metrics, load shedding, body limit), bound to a port and
//! served until a shutdown signal, with in-flight requests finished within a bound.
//!
//! Tests and benchmarks start the real app in-process:
//! `let app = Application::build(args).await?; let port = app.port(); tokio::spawn(app.run_until_stopped());`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtKeys;
use crate::cache::{Cache, CacheError};
use crate::configuration::{ConfigError, ServeArgs};
use crate::error::ApiError;
use crate::http_cache::CachePolicy;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::storage::{self, OpenError, Schema, Storage};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not open the database")]
    Storage(#[source] OpenError),
    #[error("could not set up the Redis cache")]
    Cache(#[source] CacheError),
    #[error("could not bind {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// Longest a client may take to send a whole request head. A stalled head
/// gets 408 and a closed connection, so it cannot hold one for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head read (hyper's default is about 400 KB); a larger one
/// is answered 431. Bodies stream and have their own limit.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
}

impl Application {
    /// Migrates, connects and binds according to `args` (PostgreSQL or
    /// ScyllaDB; the Redis cache sits in front of either).
    pub async fn build(args: ServeArgs) -> Result<Self, StartupError> {
        let database = args
            .database
            .database(args.db_pool_size, args.db_timeout())?;
        let storage = storage::open(&database, Schema::Migrate)
            .await
            .map_err(StartupError::Storage)?;
        Self::build_with_storage(args, storage).await
    }

    /// Like [`build`](Self::build) with a storage the caller made (any backend).
    pub async fn build_with_storage(
        args: ServeArgs,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::default());
        let cache = match &args.redis_url {
            Some(url) => Cache::redis(
                url,
                args.redis_timeout(),
                Duration::from_secs(args.cache_ttl_secs),
                Arc::clone(&metrics),
            )
            .map_err(StartupError::Cache)?,
            None => Cache::disabled(Arc::clone(&metrics)),
        };
        if args.jwt_secret.len() < crate::configuration::MIN_SECRET_BYTES {
            tracing::warn!(
                bytes = args.jwt_secret.len(),
                "the JWT secret is shorter than the 32 bytes RFC 7518 asks of an HS256 key; use a longer one outside tests and the local stack"
            );
        }
        let state = Arc::new(AppState {
            storage,
            cache,
            jwt: JwtKeys::new(args.jwt_secret.as_bytes()),
            metrics,
            http_cache: CachePolicy::new(
                args.http_max_age_secs,
                args.http_s_maxage_secs,
                args.http_stale_while_revalidate_secs,
                args.http_stale_if_error_secs,
            ),
            openapi: crate::openapi::json(),
            limiter: Arc::new(Semaphore::new(args.max_concurrency.max(1))),
            request_timeout: args.request_timeout(),
        });
        let router = router(Arc::clone(&state), args.body_limit_bytes);
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| StartupError::Bind(args.listen, e))?;
        let address = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(args.listen, e))?;
        Ok(Self {
            listener,
            address,
            router,
            state,
            shutdown: CancellationToken::new(),
            shutdown_grace: args.shutdown_grace(),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Cancelling this token shuts the server down as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, Ctrl-C or the shutdown token; then stops accepting
    /// and gives in-flight requests up to the grace period.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let flusher = {
            let (state, stop) = (Arc::clone(&self.state), shutdown.clone());
            tokio::spawn(async move { state.cache.keep_flushing(stop).await })
        };
        // Not axum::serve: it sets no timer, so a client that never finishes
        // its request head holds a connection and a task for ever (slowloris).
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES);
        // The router takes hyper's body as it is (axum routers serve any body).
        let service = TowerToHyperService::new(self.router);
        let connections = GracefulShutdown::new();
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
                .into_owned();
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let grace = self.shutdown_grace;
        tokio::select! {
            () = connections.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!(?grace, "in-flight requests did not finish within the grace period; stopping");
            }
        }
        // Invalidations still owed (Redis was away) would otherwise die with
        // this process, and other instances would serve stale pages until the TTL.
        let _ = flusher.await;
        self.state.cache.flush_owed().await;
        Ok(())
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        () = token.cancelled() => return,
    }
    token.cancel();
}

fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let api = Router::from(routes::api_routes())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            shed_load,
        ))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(api)
        .merge(Router::from(routes::health_routes()))
        .fallback(|| async { ApiError::NoRoute })
        // A method a path does not take: answered here, outside the shedding
        // layer of `/api`, since refusing it costs less than a 503 would.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            record_metrics,
        ))
        .with_state(state)
}

/// An error answer to a request that carried a body says `Connection: close`.
///
/// Such a body may be left unread (over the limit, or refused before the
/// handler read it: shed, unauthorised, wrong type). hyper then drains what
/// has arrived and, when the rest is still on the wire, closes the connection
/// after the answer: without the header a keep-alive client would send its
/// next request into that closing connection and see it fail.
async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Overload is refused at once, not queued: past the concurrency limit or the
/// request timeout the answer is 503 with `Retry-After`.
async fn shed_load(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = Arc::clone(&state.limiter).try_acquire_owned() else {
        state.metrics.shed();
        return ApiError::Overloaded.into_response();
    };
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics.timed_out();
            ApiError::TimedOut.into_response()
        }
    }
}

async fn record_metrics(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().clone();
    let in_flight = InFlight::enter(&state.metrics);
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(&route, method.as_str(), response.status().as_u16(), elapsed);
    tracing::debug!(%method, route, status = response.status().as_u16(), ?elapsed, "request");
    response
}

/// Counts a request as in flight until dropped, also when the client goes away.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.in_flight_add(1);
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight_add(-1);
    }
}
