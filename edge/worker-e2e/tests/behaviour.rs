//! The edge behaviour suite (`edge-suite`) against the Worker: built with
//! worker-build from this source tree and run under local workerd, with a Cache
//! API backend of its own per edge, in front of real scripted origins. Plus
//! what only the Worker has: bare workerd (no cache backend) never hits.
//!
//! Needs worker-build, wasm-bindgen, esbuild and workerd (edge/worker/README.md).
//! Without them the run prints a `SKIPPED:` line and runs nothing, unless
//! `EDGE_WORKER_E2E_REQUIRED=1` is set (CI), which turns that into a failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use edge_suite::{BoxFuture, Launcher, Platform, Reply, Running, TestEdge, TestOrigin, Trial};
use edge_worker_e2e::cache_service::CacheService;
use edge_worker_e2e::toolchain::Toolchain;
use edge_worker_e2e::workerd::{Workerd, WorkerdOptions};

struct WorkerdLauncher {
    toolchain: Toolchain,
    build: PathBuf,
}

struct RunningWorker {
    workerd: Workerd,
    /// Kept alive as long as the Worker that stores into it.
    _cache: Option<CacheService>,
}

impl Running for RunningWorker {
    fn url(&self) -> String {
        self.workerd.url()
    }

    fn log(&self) -> String {
        self.workerd.log()
    }
}

impl WorkerdLauncher {
    async fn start_worker(
        &self,
        origins: Vec<String>,
        vars: Vec<(String, String)>,
        with_cache: bool,
    ) -> RunningWorker {
        let cache = if with_cache {
            Some(CacheService::start().await.expect("cache service"))
        } else {
            None
        };
        let mut all_vars = vec![
            ("origins".to_owned(), origins.join(",")),
            ("origin_timeout_ms".to_owned(), "2000".to_owned()),
            ("total_timeout_ms".to_owned(), "5000".to_owned()),
            ("max_ttl_secs".to_owned(), "300".to_owned()),
        ];
        for (name, value) in vars {
            all_vars.retain(|(n, _)| *n != name);
            all_vars.push((name, value));
        }
        let options = WorkerdOptions {
            workerd: self.toolchain.workerd.clone(),
            build_dir: self.build.clone(),
            vars: all_vars,
            cache_service: cache.as_ref().map(CacheService::address),
            listen: "127.0.0.1:0".parse().expect("address"),
        };
        let workerd = tokio::task::spawn_blocking(move || Workerd::start(&options))
            .await
            .expect("workerd start task")
            .unwrap_or_else(|e| panic!("workerd: {e}"));
        RunningWorker {
            workerd,
            _cache: cache,
        }
    }
}

impl Launcher for WorkerdLauncher {
    fn platform(&self) -> Platform {
        Platform::Worker
    }

    fn start(
        &self,
        origins: Vec<String>,
        vars: Vec<(String, String)>,
    ) -> BoxFuture<Box<dyn Running>> {
        let launcher = Self {
            toolchain: self.toolchain.clone(),
            build: self.build.clone(),
        };
        Box::pin(async move {
            Box::new(launcher.start_worker(origins, vars, true).await) as Box<dyn Running>
        })
    }
}

/// Builds the Worker; `None` (after a SKIPPED line) when the tools are missing.
fn built_worker() -> Option<(Toolchain, PathBuf)> {
    let toolchain = match Toolchain::locate() {
        Ok(toolchain) => toolchain,
        Err(reason) => {
            if std::env::var("EDGE_WORKER_E2E_REQUIRED").is_ok_and(|v| v == "1") {
                panic!(
                    "EDGE_WORKER_E2E_REQUIRED=1 but the Worker tool chain is incomplete: {reason}"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the Worker behaviour suite, because {reason}"
            );
            return None;
        }
    };
    let build = toolchain
        .build_worker()
        .unwrap_or_else(|e| panic!("BUILD FAILED: {e}"));
    Some((toolchain, build))
}

fn main() -> ExitCode {
    let Some((toolchain, build)) = built_worker() else {
        return ExitCode::SUCCESS;
    };
    let launcher = Arc::new(WorkerdLauncher { toolchain, build });
    let own = launcher.clone();
    let bare = Trial::test(
        "without_a_cache_backend_local_workerd_never_hits",
        move || {
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            runtime.block_on(without_a_cache_backend_local_workerd_never_hits(&own));
            Ok(())
        },
    );
    edge_suite::run(launcher, vec![bare])
}

/// Local workerd without a cache service: the Cache API stores nothing, so
/// every read reaches the origin (what `wrangler dev` without a cache gives).
async fn without_a_cache_backend_local_workerd_never_hits(launcher: &WorkerdLauncher) {
    let origin =
        TestOrigin::start(|_, _| Reply::ok("{}").header("cache-control", "public, max-age=60"))
            .await;
    let running = launcher
        .start_worker(vec![origin.url()], Vec::new(), false)
        .await;
    let edge = TestEdge::new(Box::new(running));
    for _ in 0..2 {
        let read = edge.get("/api/songs/1/comments").await;
        assert_eq!(
            (read.status, read.x_cache()),
            (200, "MISS"),
            "{}",
            edge.log()
        );
    }
    assert_eq!(origin.count(), 2, "bare workerd's Cache API stores nothing");
}
