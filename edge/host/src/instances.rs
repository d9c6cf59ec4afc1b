//! The component's instances: one engine per process with its pooling
//! allocator and epoch ticks, the compiled component, and what `ProxyHandler`
//! asks of a host for each instance: how to make one ([`HostState`]), when it
//! takes another request (`Worker`), and when it has lived long enough
//! (`Expiration`). [`PoolReservation`] shares the engine's pool among the
//! hosts of one process.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::outbound::OriginClient;
use crate::spin::SpinShared;
use crate::{EMBEDDED_COMPONENT, HostOptions, POOLED_INSTANCES, StoreData, http_view};

/// One engine per process: compiling the component takes seconds, and tests
/// start many hosts.
pub(crate) fn engine() -> anyhow::Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    // `EDGE_HOST_PROFILING=1` is for profiling runs (see docs/edge-performance.md):
    // valgrind cannot map the pool's up-front address-space reservation, so
    // instances are allocated on demand (they are reused, so the steady state does
    // not depend on it), and the JIT code's symbols go to /tmp/perf-PID.map, where
    // perf and our callgrind post-processing find the guest's function names.
    let profiling = std::env::var_os("EDGE_HOST_PROFILING").is_some_and(|v| v != "0");
    // Under valgrind a request runs ~50 times slower, and a 10 ms tick would make
    // the guest yield in most of them: the profile would show ticks, not requests.
    let tick = if profiling {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(10)
    };
    if profiling {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    } else {
        let mut pooling = PoolingAllocationConfig::default();
        pooling.total_component_instances(POOLED_INSTANCES as u32);
        pooling.total_core_instances(8 * POOLED_INSTANCES as u32);
        pooling.total_memories(4 * POOLED_INSTANCES as u32);
        pooling.total_tables(4 * POOLED_INSTANCES as u32);
        pooling.max_memory_size(256 * 1024 * 1024);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = ENGINE.get_or_init(|| engine);
    // Epoch ticks let a busy guest yield to other tasks and be interrupted.
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("edge-host-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .context("start the epoch thread")?;
    Ok(engine)
}

pub(crate) fn compile(engine: &Engine, path: Option<&PathBuf>) -> anyhow::Result<Component> {
    static EMBEDDED: OnceLock<Component> = OnceLock::new();
    match path {
        Some(path) => Component::from_file(engine, path)
            .map_err(|e| anyhow::anyhow!("compile {}: {e}", path.display())),
        None => {
            if let Some(component) = EMBEDDED.get() {
                return Ok(component.clone());
            }
            let component = Component::new(engine, EMBEDDED_COMPONENT)
                .map_err(|e| anyhow::anyhow!("compile the embedded component: {e}"))?;
            Ok(EMBEDDED.get_or_init(|| component).clone())
        }
    }
}

/// The most a `fields` resource the guest makes may hold (wasmtime-wasi-http's
/// own default, stated here so that [`most_header_bytes`] follows it): the bytes
/// of its names and values, and for each field the size of a `HeaderName` and
/// a `HeaderValue`.
const FIELD_SIZE_LIMIT: usize = 128 * 1024;

/// hyper's limit on a request's fields (its default, which `serve` keeps; a
/// request with more gets hyper's 431).
const MOST_REQUEST_FIELDS: usize = 100;

/// What the edge may add to a request it forwards, in fields and in bytes: `Via`,
/// `Content-Length`, the validators of a revalidation, the cookies it keeps.
const ADDED_FIELDS: usize = 8;
const ADDED_BYTES: usize = 4 * 1024;

/// The largest `max_header_bytes` whose requests the component can always pass
/// on. edge-core counts `name: value\r\n`; wasmtime counts a field's name and
/// value and two structures' sizes, so the most fields a request can have cost
/// more there. A larger setting let requests through that the component then
/// could not forward: a 502 that blamed, and counted against, the origin.
pub(crate) fn most_header_bytes() -> u64 {
    let per_field = size_of::<http::HeaderName>() + size_of::<http::HeaderValue>();
    let most = FIELD_SIZE_LIMIT - (MOST_REQUEST_FIELDS + ADDED_FIELDS) * per_field - ADDED_BYTES;
    most as u64
}

/// Refuses a `max_header_bytes` above [`most_header_bytes`], with the reason.
pub(crate) fn check_max_header_bytes(max_header_bytes: u64) -> anyhow::Result<()> {
    let most = most_header_bytes();
    anyhow::ensure!(
        max_header_bytes <= most,
        "variable `max_header_bytes` = {max_header_bytes} is more than edge-host can pass \
         on: at most {most}, for wasmtime's limit of {FIELD_SIZE_LIMIT} bytes on a message's \
         fields (which counts more than their bytes on the wire)"
    );
    Ok(())
}

pub(crate) struct HostState {
    pub(crate) engine: Engine,
    pub(crate) pre: ServicePre<StoreData>,
    pub(crate) spin: Arc<SpinShared>,
    pub(crate) client: OriginClient,
    pub(crate) instance_slots: Arc<Semaphore>,
    /// This serving thread's share of `options.max_instances`.
    pub(crate) slots: usize,
    pub(crate) options: HostOptions,
    /// Set once the host stops: instances cancelled then are not failures.
    pub(crate) stopping: Arc<AtomicBool>,
}

impl HandlerState for HostState {
    type StoreData = StoreData;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<StoreData, Expiration, Worker>> {
        let permit = self
            .instance_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                wasmtime::format_err!(
                    "all {} instances of this serving thread are busy",
                    self.slots
                )
            })?;
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_SIZE_LIMIT);
        let data = StoreData {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http,
            table: ResourceTable::new(),
            hooks: self.client.clone(),
            spin: self.spin.clone(),
        };
        let mut store = Store::new(&self.engine, data);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy: Proxy::P3(proxy),
            view: http_view,
            expiration: Expiration::new(self.options.idle_timeout, self.options.request_timeout),
            state: Worker {
                _slot: permit,
                max_concurrent: self.options.max_concurrent_per_instance,
                request_timeout: self.options.request_timeout,
                stopping: self.stopping.clone(),
            },
        })
    }
}

/// Keeps an instance slot for as long as the instance lives.
pub(crate) struct Worker {
    _slot: OwnedSemaphorePermit,
    max_concurrent: usize,
    request_timeout: Duration,
    stopping: Arc<AtomicBool>,
}

impl WorkerState for Worker {
    type StoreData = StoreData;
    type RequestData = ();

    fn should_accept_request(&self, concurrent_count: usize, _total_count: usize) -> ShouldAccept {
        if concurrent_count >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, StoreData>,
        _data: (),
        _task: wasmtime::component::GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, _store: Store<StoreData>, result: wasmtime::Result<()>) {
        match result {
            // wasmtime reports an instance whose task was cancelled as "worker
            // panicked"; when the host is stopping that is the runtime shutting down.
            Err(error) if self.stopping.load(Ordering::Relaxed) => {
                tracing::debug!("edge component instance stopped with the host: {error:?}");
            }
            Err(error) => tracing::warn!("edge component instance ended with an error: {error:?}"),
            Ok(()) => {}
        }
    }
}

/// Ends an instance that stayed idle too long, or whose requests overran the
/// time limit (the second line of defence that `WorkerState` asks for).
pub(crate) struct Expiration {
    timer: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    request: Duration,
}

impl Expiration {
    fn new(idle: Duration, request: Duration) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep(idle)),
            idle,
            request,
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match state {
            WorkerStatus::Idle => this.idle,
            WorkerStatus::Requests => this.request + Duration::from_secs(1),
            WorkerStatus::PostReturn => this.request,
        };
        let deadline = tokio::time::Instant::from_std(start + limit);
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        this.timer.as_mut().poll(cx)
    }
}

/// A host's share of the engine's instance pool, which every host in the process
/// draws on: a host that could ask for more than is left is refused at start,
/// where instantiations would otherwise fail under load.
pub(crate) struct PoolReservation(usize);

static POOL_RESERVED: AtomicUsize = AtomicUsize::new(0);

impl PoolReservation {
    pub(crate) fn take(instances: usize) -> anyhow::Result<Self> {
        POOL_RESERVED
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |reserved| {
                (reserved + instances <= POOLED_INSTANCES).then_some(reserved + instances)
            })
            .map_err(|reserved| {
                anyhow::anyhow!(
                    "at most {POOLED_INSTANCES} instances (the engine's pool), not {instances} \
                     ({reserved} already held by other hosts in this process)"
                )
            })?;
        Ok(Self(instances))
    }
}

impl Drop for PoolReservation {
    fn drop(&mut self) {
        POOL_RESERVED.fetch_sub(self.0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi_http::FieldMap;

    /// `count` distinct fields whose `name: value\r\n` lines take `wire_bytes`.
    fn fields(count: usize, wire_bytes: usize) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let per_field = wire_bytes / count;
        (0..count)
            .map(|index| {
                let name = format!("x-f{index:03}");
                let value_bytes =
                    per_field - name.len() - 4 + usize::from(index == 0) * (wire_bytes % count);
                let value = "v".repeat(value_bytes);
                (name.parse().unwrap(), value.parse().unwrap())
            })
            .collect()
    }

    /// Whether a forwarded request with these fields, and what the edge adds,
    /// fits in a `fields` resource under the guest's limit.
    fn fits(fields: Vec<(http::HeaderName, http::HeaderValue)>) -> bool {
        let mut map = FieldMap::new_mutable(FIELD_SIZE_LIMIT);
        let added = (0..ADDED_FIELDS).map(|index| {
            let name = format!("x-edge-{index}").parse().unwrap();
            let value = "a".repeat(ADDED_BYTES / ADDED_FIELDS - 16).parse().unwrap();
            (name, value)
        });
        fields
            .into_iter()
            .chain(added)
            .all(|(name, value)| map.append_raw(name, value).is_ok())
    }

    #[test]
    fn every_request_the_edge_takes_fits_the_fields_it_forwards() {
        let most = usize::try_from(most_header_bytes()).unwrap();
        assert!(most > 100 * 1024, "{most}");
        for count in [1, 10, MOST_REQUEST_FIELDS] {
            assert!(fits(fields(count, most)), "{count} fields of {most} bytes");
        }
        // What edge-host took before: 128 KiB in a hundred fields cannot be forwarded.
        assert!(!fits(fields(MOST_REQUEST_FIELDS, FIELD_SIZE_LIMIT)));
    }

    #[test]
    fn a_header_limit_the_host_cannot_forward_is_refused() {
        assert!(check_max_header_bytes(16 * 1024).is_ok());
        assert!(check_max_header_bytes(most_header_bytes()).is_ok());
        let refused = check_max_header_bytes(128 * 1024).unwrap_err().to_string();
        assert!(
            refused.starts_with(&format!(
                "variable `max_header_bytes` = 131072 is more than edge-host can pass on: at most {}",
                most_header_bytes()
            )),
            "{refused}"
        );
    }
}
