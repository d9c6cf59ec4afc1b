//! `edge-host`: serve the edge component on a loopback port (see the library docs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use edge_host::{EdgeHost, HostOptions, KvConfig};

#[derive(Debug, Parser)]
#[command(
    about = "Serve the edge component (wasi:http 0.3, Spin key-value and variables) with wasmtime"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Component to serve; default: the one built from this source tree.
    #[arg(long)]
    component: Option<PathBuf>,
    /// A Spin variable, `name=value`; repeatable. `origins` is required;
    /// `origin_groups` and `behaviours` configure CloudFront-style behaviours
    /// (see edge/README.md).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Keep the key-value store in Redis at this URL instead of in memory.
    #[arg(long)]
    kv_redis: Option<String>,
    /// Byte budget of the in-memory key-value store (LRU beyond it).
    #[arg(long, default_value_t = edge_host::DEFAULT_KV_MAX_BYTES)]
    kv_max_bytes: usize,
    /// Per-request time limit in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Most component instances at once (default: 8 per core; 1 makes request
    /// collapsing global, at the cost of queueing requests behind a busy instance).
    #[arg(long)]
    max_instances: Option<usize>,
    /// Threads serving connections, each a single-threaded runtime with its own
    /// instances (default: one per core, at most 32; never more than --max-instances).
    #[arg(long)]
    serving_threads: Option<usize>,
    /// Most concurrent requests per instance.
    #[arg(long, default_value_t = 64)]
    max_concurrent_per_instance: usize,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not name=value"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.vars.iter().any(|(k, _)| k == "origins"),
        "--var origins=http://HOST:PORT[,...] is required"
    );
    let mut options = HostOptions::new(cli.listen, cli.vars);
    options.component = cli.component;
    options.kv = match cli.kv_redis {
        Some(url) => KvConfig::Redis { url },
        None => KvConfig::Memory {
            max_bytes: cli.kv_max_bytes,
        },
    };
    options.request_timeout = Duration::from_millis(cli.request_timeout_ms);
    if let Some(n) = cli.max_instances {
        options.max_instances = n;
    }
    if let Some(n) = cli.serving_threads {
        options.serving_threads = n;
    }
    options.max_concurrent_per_instance = cli.max_concurrent_per_instance;
    let host = EdgeHost::bind(options).await.context("start edge-host")?;
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{}", host.local_addr())?;
        stdout.flush()?;
    }
    let served = host
        .run(async {
            let why = shutdown_signal().await;
            tracing::warn!("edge-host stopping: {why}");
        })
        .await;
    // Never a silent exit: whatever ends the process says so on stderr.
    match &served {
        Ok(()) => tracing::warn!("edge-host stopped"),
        Err(error) => tracing::error!("edge-host stopped on an error: {error:#}"),
    }
    served
}

/// Resolves on SIGINT or SIGTERM, naming it. A signal that cannot be watched
/// is logged and never resolves: it must not look like a request to stop
/// (`ctrl_c()` returning an error at once would otherwise end the host).
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot watch SIGINT: {error}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                if signal.recv().await.is_none() {
                    tracing::error!("the SIGTERM watch ended");
                    std::future::pending::<()>().await;
                }
            }
            Err(error) => {
                tracing::error!("cannot watch SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}
