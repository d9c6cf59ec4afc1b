//! One behaviour suite for every edge adapter. The scenarios
//! ([`scenarios::SCENARIOS`]) are written once, against a [`Launcher`] that
//! starts the edge on its platform in front of real scripted origins on
//! loopback; `edge/host/tests/behaviour.rs` runs them against the Spin
//! component on edge-host, `edge/worker-e2e/tests/behaviour.rs` against the
//! Worker on workerd. Each scenario is a test of its own name.
//!
//! What a platform cannot hold is said once, in [`Platform`], and the
//! scenarios that touch it assert the platform's own behaviour instead.
//!
//! - [`origin`]: scripted origins with request logs, and misbehaving ones.
//! - [`client`]: [`TestEdge`], the running edge and a client for it.
//! - [`scenarios`]: the table.

pub mod client;
pub mod origin;
pub mod scenarios;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

pub use libtest_mimic::Trial;

pub use client::{Answer, TestEdge};
pub use origin::{
    FileServer, Reply, SeenRequest, TestOrigin, chunked_origin, dead_origin, hang_up_origin,
    silent_origin, trickling_origin,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The platforms the suite runs on, and what each cannot do. This is the one
/// place that says so; scenarios ask here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// The Spin component (`edge/spin`) on edge-host.
    Spin,
    /// The Cloudflare Worker (`edge/worker`) on workerd.
    Worker,
}

impl Platform {
    /// Concurrent misses for one key wait for one origin fetch. Not on
    /// Workers: a request woken by another's I/O cannot answer there (see
    /// edge/worker/README.md), so each miss fetches for itself.
    pub fn collapses(self) -> bool {
        self == Self::Spin
    }

    /// A failed attempt says whether the request was sent at all, so a POST
    /// refused a connection may go to the next origin. Not on Workers: `fetch`
    /// rejects with a TypeError that does not say, so writes never fail over.
    pub fn tells_unsent_attempts(self) -> bool {
        self == Self::Spin
    }

    /// The request target reaches the edge as the client sent it. On Workers
    /// the runtime's URL parser has already resolved dot segments (also
    /// `%2e%2e`), so `/api/%2e%2e/admin` arrives as `/admin`: a 404, where
    /// edge-core refuses the raw target with a 400. Neither reaches an origin.
    pub fn sees_raw_targets(self) -> bool {
        self == Self::Spin
    }

    /// An error answer to a request whose body was refused says
    /// `Connection: close` (edge-host does; on Workers the runtime owns the
    /// client connection and the Worker cannot set that field).
    pub fn says_close_after_a_refused_body(self) -> bool {
        self == Self::Spin
    }
}

/// Starts edges on one platform.
pub trait Launcher: Send + Sync + 'static {
    fn platform(&self) -> Platform;
    /// An edge in front of `origins` (base URLs, in order) with these extra
    /// configuration variables.
    fn start(
        &self,
        origins: Vec<String>,
        vars: Vec<(String, String)>,
    ) -> BoxFuture<Box<dyn Running>>;
}

/// One running edge; stopped when dropped.
pub trait Running: Send + Sync {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    fn url(&self) -> String;
    fn log(&self) -> String {
        String::new()
    }
}

/// The launcher a scenario runs with.
pub type L = Arc<dyn Launcher>;

/// Starts an edge for a scenario.
pub async fn start(launcher: &L, origins: &[&str], vars: &[(&str, &str)]) -> TestEdge {
    let origins = origins.iter().map(|o| (*o).to_owned()).collect();
    let vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TestEdge::new(launcher.start(origins, vars).await)
}

/// Runs every scenario as a test of its own name (libtest-mimic: filters and
/// `--list` work as with `cargo test`) on one shared tokio runtime, with the
/// platform's own `extra` tests beside them.
pub fn run(launcher: L, extra: Vec<libtest_mimic::Trial>) -> ExitCode {
    let arguments = libtest_mimic::Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let trials: Vec<_> = scenarios::SCENARIOS
        .iter()
        .map(|(name, scenario)| {
            let (launcher, runtime, scenario) = (launcher.clone(), runtime.clone(), *scenario);
            libtest_mimic::Trial::test(*name, move || {
                runtime.block_on(scenario(launcher));
                Ok(())
            })
        })
        .chain(extra)
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}
