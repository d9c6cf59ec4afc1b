//! Runs a built Worker under `workerd serve` on loopback: writes the Cap'n Proto
//! config (Worker vars as text bindings, the Cache API routed to a cache service),
//! hands workerd a listening socket bound here on port 0, and stops it on drop.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use tempfile::TempDir;
use thiserror::Error;

/// The compatibility date the Worker is written against (also in wrangler.toml).
pub const COMPATIBILITY_DATE: &str = "2025-09-01";

#[derive(Debug, Error)]
pub enum WorkerdError {
    #[error("could not prepare workerd's directory or socket")]
    Setup(#[source] io::Error),
    #[error("could not start workerd")]
    Spawn(#[source] io::Error),
    #[error("workerd exited during start-up ({status}); its log:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("workerd did not answer /healthz within {0:?}; its log:\n{1}")]
    NotReady(Duration, String),
}

/// What to run: the build output and the Worker's vars.
#[derive(Debug, Clone)]
pub struct WorkerdOptions {
    pub workerd: PathBuf,
    pub build_dir: PathBuf,
    pub vars: Vec<(String, String)>,
    /// Where the Cache API goes; `None` leaves workerd without a cache (every match misses).
    pub cache_service: Option<SocketAddr>,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
}

/// A running workerd; killed when dropped.
pub struct Workerd {
    child: Child,
    address: SocketAddr,
    dir: TempDir,
}

impl Workerd {
    pub fn start(options: &WorkerdOptions) -> Result<Self, WorkerdError> {
        let dir = tempfile::Builder::new()
            .prefix("edge-workerd-")
            .tempdir()
            .map_err(WorkerdError::Setup)?;
        copy_build(&options.build_dir, dir.path()).map_err(WorkerdError::Setup)?;
        fs::write(dir.path().join("config.capnp"), config_text(options))
            .map_err(WorkerdError::Setup)?;
        let listener = TcpListener::bind(options.listen).map_err(WorkerdError::Setup)?;
        let address = listener.local_addr().map_err(WorkerdError::Setup)?;
        // workerd inherits the socket: no race for the port, and port 0 works.
        fcntl(&listener, FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| WorkerdError::Setup(e.into()))?;
        let log = fs::File::create(dir.path().join("workerd.log")).map_err(WorkerdError::Setup)?;
        let log_err = log.try_clone().map_err(WorkerdError::Setup)?;
        let child = Command::new(&options.workerd)
            .arg("serve")
            .arg("config.capnp")
            .arg(format!("--socket-fd=http={}", listener.as_raw_fd()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(WorkerdError::Spawn)?;
        drop(listener);
        let mut workerd = Self {
            child,
            address,
            dir,
        };
        workerd.wait_ready(Duration::from_secs(30))?;
        Ok(workerd)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// workerd's stdout and stderr so far (Worker `console` output included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("workerd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), WorkerdError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(WorkerdError::Exited {
                    status,
                    log: self.log(),
                });
            }
            if health_ok(self.address) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(WorkerdError::NotReady(limit, self.log()))
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health_ok(address: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}

fn copy_build(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Cap'n Proto text quoting for a binding value.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The workerd config. The "internet" service may reach loopback ("local") so
/// the Worker can fetch origins on 127.0.0.1, as it does from Cloudflare to a
/// public load balancer.
pub fn config_text(options: &WorkerdOptions) -> String {
    let bindings: Vec<String> = options
        .vars
        .iter()
        .map(|(name, value)| format!("(name = {}, text = {})", quote(name), quote(value)))
        .collect();
    let (cache_service, cache_outbound) = match options.cache_service {
        Some(address) => (
            format!(",\n    (name = \"cache\", external = (address = \"{address}\", http = ()))"),
            ",\n  cacheApiOutbound = \"cache\"".to_owned(),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"# Generated by edge-worker-e2e: the edge Worker under local workerd.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edgeWorker),
    (name = "internet", network = (allow = ["public", "private", "local"])){cache_service}
  ],
  sockets = [(name = "http", address = "{listen}", http = (), service = "edge")],
);

const edgeWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "{COMPATIBILITY_DATE}",
  bindings = [{bindings}]{cache_outbound}
);
"#,
        listen = options.listen,
        bindings = bindings.join(", "),
    )
}
