//! Serving threads. Each runs a single-threaded tokio runtime with its own
//! component instances and origin pool, and serves the connections the accept
//! loop hands it, so a request stays on one thread from its first byte to its
//! last: hyper's connection task, the instance's event loop and the origin
//! client wake each other without crossing threads. Measured on the 2-core
//! machine with wrk (docs/edge-performance.md): the host on tokio's
//! multi-threaded runtime served 21k cache HITs/s per core of CPU it used, on
//! one runtime thread 28k, and with these threads 26k, on both cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use wasmtime_wasi_http::handler::ProxyHandler;

use crate::HostState;
use crate::framing::{close_if_body_refused, has_body, remove_connection_named};

/// An accepted connection and its place under the host's connection limit.
type Accepted = (std::net::TcpStream, OwnedSemaphorePermit);

/// One serving thread, as the accept loop sees it.
pub(crate) struct ServingThread {
    connections: mpsc::UnboundedSender<Accepted>,
    finished: oneshot::Receiver<()>,
}

impl ServingThread {
    /// Starts thread `index` serving with `handler` (whose instances then live on
    /// it). `stopping` is the thread's own: set once it has drained, before its
    /// runtime and the instances on it are dropped.
    pub(crate) async fn start(
        index: usize,
        handler: ProxyHandler<HostState>,
        request_timeout: Duration,
        stopping: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (connections, accepted) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let (started, running) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("edge-serve-{index}"))
            .spawn(move || {
                // Built here: a runtime may not be dropped on an async caller's thread.
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(serve(accepted, handler, request_timeout));
                // Their cancellation is the host stopping, not a failure.
                stopping.store(true, Ordering::Relaxed);
                drop(runtime);
                let _ = done.send(());
            })?;
        running
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the serving thread ended at start")))?;
        Ok(Self {
            connections,
            finished,
        })
    }

    /// Hands a connection over; gives it back if the thread has ended.
    pub(crate) fn take(&self, connection: Accepted) -> Result<(), Accepted> {
        self.connections
            .send(connection)
            .map_err(|refused| refused.0)
    }

    /// Stops taking connections: the thread lets open requests finish (at most
    /// the request time limit) and ends; the receiver says when it has.
    pub(crate) fn close(self) -> oneshot::Receiver<()> {
        drop(self.connections);
        self.finished
    }
}

/// Serves every connection handed over until the accept loop lets go, then
/// drains: open connections get the request time limit to finish.
async fn serve(
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    handler: ProxyHandler<HostState>,
    request_timeout: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while let Some((stream, permit)) = accepted.recv().await {
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!("cannot serve an accepted connection: {error}");
                continue;
            }
        };
        let handler = handler.clone();
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            async move {
                remove_connection_named(request.headers_mut());
                let has_body = has_body(&request);
                let mut response = crate::dispatch(&handler, request, request_timeout).await;
                close_if_body_refused(has_body, &mut response);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        // Flattened writes: hyper copies a response's body behind its head and
        // writes one buffer, instead of queueing both for `writev`. Most answers
        // are a small body collected whole (`framing.rs`); on the bench a HIT then
        // cost 2% less CPU (docs/edge-performance.md, sixth pass). A larger body
        // pays one more copy into hyper's buffer.
        let connection = http1::Builder::new()
            .writev(false)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        // A connection's error ends that connection only: logged, and serving
        // goes on. Clients that go away mid-request are normal.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if error.is_user() {
                    tracing::warn!("connection failed: {error:#}");
                } else {
                    tracing::debug!("connection ended: {error:#}");
                }
            }
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(request_timeout, graceful.shutdown()).await;
}
