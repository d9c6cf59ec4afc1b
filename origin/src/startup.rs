//! Building and running the application: storage, cache, router and the
//! layers around it (metrics, load shedding, body limit), bound to a port and
//! served until a shutdown signal, with in-flight requests finished within a bound.
//!
//! Tests and benchmarks start the real app in-process:
//! `let app = Application::build(args).await?; let port = app.port(); tokio::spawn(app.run_until_stopped());`

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtKeys;
use crate::cache::{Cache, CacheError};
use crate::configuration::{Backend, ServeArgs};
use crate::error::ApiError;
use crate::http_cache::CachePolicy;
use crate::metrics::Metrics;
use crate::routes;
use crate::storage::Storage;
use crate::storage::postgres::{
    self, ConnectError, MigrateError, PostgresOptions, PostgresStorage,
};
use crate::storage::scylla::{ScyllaError, ScyllaStorage};

/// What every handler can reach.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub cache: Cache,
    pub jwt: JwtKeys,
    pub metrics: Arc<Metrics>,
    pub http_cache: CachePolicy,
    limiter: Arc<Semaphore>,
    request_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("--database-url (DATABASE_URL) is required for the postgres backend")]
    MissingDatabaseUrl,
    #[error("--scylla-uri (SCYLLA_URI) is required for the scylla backend")]
    MissingScyllaUri,
    #[error("could not set up ScyllaDB")]
    Scylla(#[source] ScyllaError),
    #[error("could not migrate the database")]
    Migrate(#[source] MigrateError),
    #[error("could not set up the database pool")]
    Pool(#[source] ConnectError),
    #[error("could not set up the Redis cache")]
    Cache(#[source] CacheError),
    #[error("could not bind {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
}

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
        let storage: Arc<dyn Storage> = match args.backend {
            Backend::Postgres => {
                let url = args
                    .database_url
                    .clone()
                    .ok_or(StartupError::MissingDatabaseUrl)?;
                postgres::migrate(&url)
                    .await
                    .map_err(StartupError::Migrate)?;
                let options = PostgresOptions {
                    pool_size: args.db_pool_size,
                    timeout: args.db_timeout(),
                };
                Arc::new(PostgresStorage::connect(&url, &options).map_err(StartupError::Pool)?)
            }
            Backend::Scylla => {
                let options = args
                    .scylla
                    .options(args.db_timeout())
                    .ok_or(StartupError::MissingScyllaUri)?;
                Arc::new(
                    ScyllaStorage::connect_and_migrate(&options)
                        .await
                        .map_err(StartupError::Scylla)?,
                )
            }
        };
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
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = self.shutdown_grace;
        tokio::select! {
            served = server.into_future() => served.map_err(StartupError::Serve),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight requests did not finish within the grace period; stopping");
                Ok(())
            }
        }
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
    let api = routes::api_routes()
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            shed_load,
        ))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(api)
        .merge(routes::health_routes())
        .fallback(|| async { ApiError::NoRoute })
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
