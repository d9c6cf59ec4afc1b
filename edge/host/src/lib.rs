//! `edge-host`: serves the edge component (a `wasi:http/handler@0.3.0` Spin
//! component) on a loopback port with wasmtime, the way `spin up` or
//! `wasmtime serve` would, and provides the host side of its imports.
//!
//! - [`EdgeHost`]: binds the port, links the imports, pre-instantiates the
//!   component once, and serves it with instance reuse through
//!   `wasmtime_wasi_http::handler::ProxyHandler`, a per-request time limit
//!   and a graceful shutdown.
//! - `instances`: one engine per process (the pooling allocator, epoch
//!   interruption), the compiled component, and each instance's slot, request
//!   limit and lifetime.
//! - `serve`: the serving threads, one single-threaded runtime each with its own
//!   instances; the accept loop hands them connections in turn.
//! - [`outbound`]: the pooled keep-alive HTTP client the guest's outbound
//!   requests go through, restricted to the configured origins.
//! - [`spin`]: Spin key-value and variables; [`kv`]: their storage.
//! - `framing`: small bodies collected whole, `Connection` rules, error answers.
//!
//! Profiling: `EDGE_HOST_PROFILING=1` (see docs/edge-performance.md).
//!
//! Instances and collapsing: the component collapses concurrent misses with
//! state inside one instance. `--max-instances N` caps how many instances
//! exist at once; with 1, every request runs in the same instance (concurrently,
//! while others wait on I/O) and collapsing is global for the host.

mod framing;
mod instances;
pub mod kv;
pub mod outbound;
mod serve;
pub mod spin;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{InstantiationError, ProxyHandler};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::framing::{HostResponse, buffer_small_body, host_error};
use crate::instances::{HostState, PoolReservation, compile, engine};
use crate::kv::KvBackend;
use crate::outbound::OriginClient;
use crate::spin::{SpinShared, SpinView};

/// mimalloc instead of glibc malloc: requests allocate on one thread and free on
/// another (hyper's connection tasks and the instance's event loop), where glibc's
/// arenas spent 17% of the host's CPU on the miss path (docs/edge-performance.md).
/// Declared here so that the binary, its tests and the bench run on the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The edge component built from this workspace's `edge/spin` by build.rs.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/edge_spin.wasm"));

/// The in-memory store's default bound, in bytes of keys and values.
pub const DEFAULT_KV_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Where the component's key-value data lives.
#[derive(Debug, Clone)]
pub enum KvConfig {
    /// In process, LRU-evicted beyond this many bytes of keys and values.
    Memory { max_bytes: usize },
    /// A Redis server, e.g. `redis://127.0.0.1:16379`.
    Redis { url: String },
}

/// Everything `edge-host` is started with.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub listen: SocketAddr,
    /// A component file; `None` serves [`EMBEDDED_COMPONENT`].
    pub component: Option<PathBuf>,
    /// Spin variables, e.g. `origins`.
    pub variables: Vec<(String, String)>,
    pub kv: KvConfig,
    /// Time a request may take before the host answers 504 for it.
    pub request_timeout: Duration,
    /// Most component instances alive at once. An instance takes a further
    /// request only while every request it holds waits on I/O
    /// (`wasmtime_wasi_http::handler`); a request that finds a thread's
    /// instances all busy, and none left to start, tries again every
    /// millisecond (`dispatch`), so too few instances make a long tail (see
    /// [`INSTANCES_PER_CORE`]).
    pub max_instances: usize,
    /// Most requests one instance handles concurrently.
    pub max_concurrent_per_instance: usize,
    /// How long an idle instance is kept for reuse.
    pub idle_timeout: Duration,
    /// Threads serving connections, each with its own instances (at most
    /// `max_instances` of them: every thread needs one).
    pub serving_threads: usize,
}

impl HostOptions {
    pub fn new(listen: SocketAddr, variables: Vec<(String, String)>) -> Self {
        Self {
            listen,
            component: None,
            variables,
            kv: KvConfig::Memory {
                max_bytes: DEFAULT_KV_MAX_BYTES,
            },
            request_timeout: Duration::from_secs(30),
            max_instances: INSTANCES_PER_CORE * default_serving_threads(),
            max_concurrent_per_instance: 64,
            idle_timeout: Duration::from_secs(60),
            serving_threads: default_serving_threads(),
        }
    }
}

/// One serving thread per core, as many as the pool can give
/// [`INSTANCES_PER_CORE`] instances each.
fn default_serving_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(POOLED_INSTANCES / INSTANCES_PER_CORE)
}

/// The default `max_instances` per core (per serving thread). With one,
/// misses waited for busy instances: in front of nginx `return 200` (wrk -c32,
/// 2 cores) 9.4k misses/s, p99 74 ms; with 4 per core 12.7k/s, p99 7.4 ms; with
/// 8 per core 15.0k/s, p99 4.9 ms; 16 per core is no better at that
/// concurrency. With 128 connections, 32 per core carry about 18% more with
/// half the p99 (docs/edge-performance.md, "Instances under more
/// concurrency"): more per core trade memory for concurrent misses, which
/// `max_instances` lets a deployment choose. Instances start on demand and end after
/// `idle_timeout` without a request; each keeps up to 16 MiB of decoded
/// records (`edge_core::flow::local`, counting their bytes, not the guest
/// allocator's overhead).
pub const INSTANCES_PER_CORE: usize = 8;

/// Component instances the engine's pool holds: the most the hosts of one
/// process may have together (`PoolReservation`).
pub const POOLED_INSTANCES: usize = 256;

/// Per-store data: WASI, wasi:http, and the Spin host state.
pub struct StoreData {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OriginClient,
    spin: Arc<SpinShared>,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn spin_view(data: &mut StoreData) -> SpinView<'_> {
    SpinView {
        table: &mut data.table,
        shared: &data.spin,
    }
}

fn http_view(data: &mut StoreData) -> WasiHttpCtxView<'_> {
    data.http()
}

/// A bound listener with a ready component and its serving threads;
/// [`EdgeHost::run`] accepts connections for them.
pub struct EdgeHost {
    listener: TcpListener,
    serving: Vec<serve::ServingThread>,
    _pool: PoolReservation,
}

impl EdgeHost {
    /// Compiles (or reuses) the component, links the imports, and binds the port.
    pub async fn bind(options: HostOptions) -> anyhow::Result<Self> {
        let engine = engine()?.clone();
        let component = compile(&engine, options.component.as_ref())?;
        let mut linker = Linker::<StoreData>::new(&engine);
        let wasm = |e: wasmtime::Error| anyhow::anyhow!("{e:?}");
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wasm)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wasm)?;
        spin::add_to_linker(&mut linker, spin_view).map_err(wasm)?;
        let pre =
            ServicePre::new(linker.instantiate_pre(&component).map_err(wasm)?).map_err(wasm)?;

        let max_instances = options.max_instances.max(1);
        let pool = PoolReservation::take(max_instances)?;
        let config = edge_config(&options.variables)?;
        let variables: HashMap<String, String> = options.variables.iter().cloned().collect();
        let origins = config.all_origins().join(",");
        let kv = match &options.kv {
            KvConfig::Memory { max_bytes } => KvBackend::memory(*max_bytes),
            KvConfig::Redis { url } => KvBackend::redis(url, redis_expiry_secs(&config))
                .await
                .with_context(|| format!("connect to key-value Redis at {url}"))?,
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("bind {}", options.listen))?;
        let spin = Arc::new(SpinShared { variables, kv });
        let threads = options.serving_threads.clamp(1, max_instances);
        let mut serving = Vec::with_capacity(threads);
        for index in 0..threads {
            // The instances split between the threads, the first ones taking the rest.
            let slots = max_instances / threads + usize::from(index < max_instances % threads);
            let stopping = Arc::new(AtomicBool::new(false));
            let state = HostState {
                engine: engine.clone(),
                pre: pre.clone(),
                spin: spin.clone(),
                // Each thread's own pool: its connections are driven on that thread.
                client: OriginClient::new(&origins)?,
                instance_slots: Arc::new(Semaphore::new(slots)),
                slots,
                options: options.clone(),
                stopping: stopping.clone(),
            };
            serving.push(
                serve::ServingThread::start(
                    index,
                    ProxyHandler::new(state),
                    options.request_timeout,
                    serve::connection_buffer_bytes(config.max_header_bytes),
                    stopping,
                )
                .await
                .context("start a serving thread")?,
            );
        }
        Ok(Self {
            listener,
            serving,
            _pool: pool,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets open
    /// requests finish (at most the request time limit).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let connections = Arc::new(Semaphore::new(4096));
        let mut shutdown = std::pin::pin!(shutdown);
        let mut turn = 0usize;
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, _) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // The semaphore is never closed; should that change, say so.
            let permit = match connections.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(error) => {
                    tracing::error!("connection limit closed, no longer accepting: {error}");
                    break;
                }
            };
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!("cannot hand an accepted connection over: {error}");
                    continue;
                }
            };
            // In turn; a thread that has ended (it never should) passes its turn on.
            let mut connection = (stream, permit);
            let mut handed = false;
            for _ in 0..self.serving.len() {
                turn = (turn + 1) % self.serving.len();
                match self.serving[turn].take(connection) {
                    Ok(()) => {
                        handed = true;
                        break;
                    }
                    Err(refused) => connection = refused,
                }
            }
            anyhow::ensure!(handed, "every serving thread has ended");
        }
        drop(self.listener);
        // Every thread drains at once, each within the request time limit.
        let closing: Vec<_> = self
            .serving
            .into_iter()
            .map(serve::ServingThread::close)
            .collect();
        for finished in closing {
            let _ = finished.await;
        }
        Ok(())
    }
}

/// The edge's configuration from the host's variables, or why edge-host
/// refuses it at start (instead of the component answering 500 later, or the
/// host failing requests it let in): a variable the edge does not read, a
/// configuration edge-core refuses, an origin this host cannot reach, or a
/// header limit beyond what it can forward.
fn edge_config(variables: &[(String, String)]) -> anyhow::Result<edge_core::EdgeConfig> {
    edge_core::config::check_variable_names(variables.iter().map(|(name, _)| name.as_str()))
        .context("edge configuration")?;
    let config = edge_core::EdgeConfig::from_vars(|name| {
        // The last of a repeated `--var` wins, as in the map the guest reads.
        variables
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    })
    .context("edge configuration")?;
    outbound::allowed_origins(&config.all_origins().join(",")).context("edge configuration")?;
    instances::check_max_header_bytes(config.max_header_bytes).context("edge configuration")?;
    Ok(config)
}

/// How long a key lives in Redis. Spin's key-value interface carries no expiry,
/// so edge-host gives every key the one a song's generation needs
/// ([`edge_core::generation_retention_secs`]) for the longest TTL bound of any
/// behaviour: longer than a record is of use (except in a stale window that
/// outlasts it), and a generation outlives every record stored before it. Keys
/// without one would never leave a Redis that evicts only keys with an expiry
/// (`volatile-lru`, the stack's, which the origin shares): superseded
/// generations' records would fill it.
fn redis_expiry_secs(config: &edge_core::EdgeConfig) -> u64 {
    edge_core::generation_retention_secs(config)
}

/// Hands a request to an instance; when the instance cap is reached the request
/// comes back and is queued again until an instance takes it or time runs out.
async fn dispatch(
    handler: &ProxyHandler<HostState>,
    request: hyper::Request<hyper::body::Incoming>,
    timeout: Duration,
) -> HostResponse {
    let started = Instant::now();
    let mut request =
        request.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
    loop {
        let result = tokio::time::timeout(timeout.saturating_sub(started.elapsed()), async {
            let response = handler.handle((), request).await?;
            Ok::<_, wasmtime::Error>(buffer_small_body(response).await)
        })
        .await;
        match result {
            Err(_) => {
                return host_error(
                    504,
                    "edge_timeout",
                    "the edge component did not answer in time",
                );
            }
            Ok(Ok(response)) => return response,
            Ok(Err(error)) => match error.downcast::<InstantiationError<()>>() {
                Ok(refused) if started.elapsed() < timeout => {
                    request = refused
                        .request
                        .into_inner()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(_) => {
                    return host_error(503, "edge_busy", "no edge instance became free in time");
                }
                Err(error) => {
                    tracing::warn!("edge component failed: {error:?}");
                    return host_error(500, "edge_failed", "the edge component failed");
                }
            },
        }
    }
}
