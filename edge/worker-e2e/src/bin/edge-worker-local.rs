//! Runs the edge Worker locally: builds it with worker-build, starts the local
//! Cache API backend and `workerd serve` on loopback in front of the given
//! origins, prints `listening on http://ADDR`, and stops on Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;
use edge_worker_e2e::cache_service::CacheService;
use edge_worker_e2e::toolchain::Toolchain;
use edge_worker_e2e::workerd::{Workerd, WorkerdOptions};

#[derive(Debug, Parser)]
#[command(about = "Serve the edge Worker under local workerd")]
struct Args {
    /// Address to listen on (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The origin group, primary first, comma-separated.
    #[arg(long, default_value = "http://127.0.0.1:8100")]
    origins: String,
    /// More Worker vars, `name=value` (see edge/worker/wrangler.toml).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Run without the Cache API backend (as bare workerd: every lookup misses).
    #[arg(long)]
    no_cache: bool,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not name=value"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let toolchain = Toolchain::locate()?;
    let build_dir = toolchain.build_worker()?;
    let cache = if args.no_cache {
        None
    } else {
        Some(CacheService::start().await?)
    };
    let mut vars = vec![("origins".to_owned(), args.origins.clone())];
    vars.extend(args.vars);
    let workerd = Workerd::start(&WorkerdOptions {
        workerd: toolchain.workerd.clone(),
        build_dir,
        vars,
        cache_service: cache.as_ref().map(CacheService::address),
        listen: args.listen,
    })?;
    println!("listening on {}", workerd.url());
    tokio::signal::ctrl_c().await?;
    eprintln!("{}", workerd.log());
    Ok(())
}
