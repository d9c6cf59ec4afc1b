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

use crate::framing::{
    authority_from_host, close_if_body_refused, has_body, host_error, remove_connection_named,
};
use crate::instances::HostState;

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
        buffer_bytes: usize,
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
                runtime.block_on(serve(accepted, handler, request_timeout, buffer_bytes));
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
    buffer_bytes: usize,
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
                let mut response = match authority_from_host(&mut request) {
                    Ok(()) => crate::dispatch(&handler, request, request_timeout).await,
                    Err(why) => host_error(400, "bad_host", &why),
                };
                close_if_body_refused(has_body, &mut response);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        // Flattened writes: hyper copies every body into its write buffer behind
        // the head and writes one buffer, instead of queueing both for `writev`.
        // Most answers are a small body collected whole (`framing.rs`): a HIT then
        // cost 2.4% less CPU (docs/edge-performance.md, sixth pass). The buffer
        // keeps its size for the connection's life, so `buffer_bytes` bounds it
        // (see [`connection_buffer_bytes`]).
        let connection = http1::Builder::new()
            .writev(false)
            .max_buf_size(buffer_bytes)
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

/// The most hyper buffers for one connection, each way: a response's bytes
/// before it must send them (with flattened writes, a connection keeps what its
/// largest response grew the buffer to, so this bounds a connection's memory at
/// about this plus one part of a body), and a request's head. The head must
/// fit whole for the edge's own `max_header_bytes` to answer one too large
/// (with its JSON error, where hyper would answer a bare 431), with room for
/// the request line beside the fields.
pub(crate) fn connection_buffer_bytes(max_header_bytes: u64) -> usize {
    const LEAST: usize = 128 * 1024;
    const REQUEST_LINE: usize = 16 * 1024;
    usize::try_from(max_header_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(REQUEST_LINE)
        .max(LEAST)
}

#[cfg(test)]
mod tests {
    use super::connection_buffer_bytes;

    #[test]
    fn a_connection_buffer_holds_the_largest_head_the_edge_judges() {
        assert_eq!(connection_buffer_bytes(16 * 1024), 128 * 1024);
        assert_eq!(connection_buffer_bytes(1 << 20), (1 << 20) + 16 * 1024);
        assert_eq!(connection_buffer_bytes(u64::MAX), usize::MAX);
    }
}
