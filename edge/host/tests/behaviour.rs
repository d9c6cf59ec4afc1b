//! The edge behaviour suite (`edge-suite`) against the Spin component: the real
//! component, built from this source tree, served by edge-host in-process, in
//! front of real scripted HTTP origins. One instance per edge, so that requests
//! share it (and its collapsing) as they would under load.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use edge_suite::{BoxFuture, Launcher, Platform, Running};
use tokio::sync::oneshot;

struct EdgeHostLauncher;

struct RunningHost {
    url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Running for RunningHost {
    fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Launcher for EdgeHostLauncher {
    fn platform(&self) -> Platform {
        Platform::Spin
    }

    fn start(
        &self,
        origins: Vec<String>,
        vars: Vec<(String, String)>,
    ) -> BoxFuture<Box<dyn Running>> {
        Box::pin(async move {
            let mut variables = vec![("origins".to_owned(), origins.join(","))];
            variables.extend(vars);
            let mut options =
                edge_host::HostOptions::new("127.0.0.1:0".parse().expect("address"), variables);
            options.request_timeout = Duration::from_secs(10);
            options.max_instances = 1;
            let host = edge_host::EdgeHost::bind(options)
                .await
                .expect("edge-host starts");
            let url = format!("http://{}", host.local_addr());
            let (stop, stopped) = oneshot::channel::<()>();
            tokio::spawn(host.run(async move {
                let _ = stopped.await;
            }));
            Box::new(RunningHost {
                url,
                stop: Some(stop),
            }) as Box<dyn Running>
        })
    }
}

fn main() -> ExitCode {
    edge_suite::run(Arc::new(EdgeHostLauncher), Vec::new())
}
