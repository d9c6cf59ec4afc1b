//! A private Apache Cassandra node as a child process: the JVM on JDK 17 with Cassandra's
//! own JVM options ([`config`]), jars fetched once per machine ([`runtime`]), a minimal
//! `cassandra.yaml` in a temporary (or given) directory, loopback and free (or given)
//! ports; ready when CQL answers; stop, kill and start again on the same ports and data;
//! stopped on drop.
//!
//! A node takes seconds to start and about a gigabyte of memory, so tests share one per
//! test process ([`shared_for_tests`], one keyspace per test), and a process starts at most
//! [`MAX_NODES_PER_PROCESS`] at once.

pub mod config;
pub mod runtime;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

pub use config::{Ports, Tuning};
pub use runtime::{CASSANDRA_VERSION, Runtime, RuntimeError};

use crate::server::{ChildServer, Lifecycle, ServerDir, ServerError};
use crate::watchdog::Watchdog;

/// A JVM on 2 shared cores takes 5 to 30 seconds; a minute means something is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// A graceful stop flushes memtables; a durable node may take a while.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Nodes one process runs at once (the shared one included): each holds its heap.
pub const MAX_NODES_PER_PROCESS: usize = 2;
/// The heap of a node, in MiB: enough for tests and the local stack.
pub const DEFAULT_HEAP_MIB: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot write the node's configuration {path}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not find a free port")]
    NoFreePort(#[source] std::io::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot start the watchdog of the shared node")]
    Watchdog(#[source] std::io::Error),
    #[error("the shared test node could not be started: {0}")]
    Shared(String),
}

/// Options for [`CassandraServer::start`]. `Default`: free ports, a temporary directory,
/// a durable node with a 1 GiB heap.
#[derive(Debug, Clone)]
pub struct CassandraOptions {
    pub native_port: Option<u16>,
    pub storage_port: Option<u16>,
    /// Keep the node's files here (reused if present, never deleted); `None` uses a
    /// temporary directory removed on drop.
    pub dir: Option<PathBuf>,
    pub tuning: Tuning,
}

impl Default for CassandraOptions {
    fn default() -> Self {
        Self {
            native_port: None,
            storage_port: None,
            dir: None,
            tuning: Tuning {
                heap_mib: DEFAULT_HEAP_MIB,
                unsafe_fast_schema: false,
            },
        }
    }
}

impl CassandraOptions {
    /// Free ports, a temporary directory, schema changes without fsync.
    pub fn for_tests() -> Self {
        let mut options = Self::default();
        options.tuning.unsafe_fast_schema = true;
        options
    }

    pub fn native_port(mut self, port: u16) -> Self {
        self.native_port = Some(port);
        self
    }

    pub fn storage_port(mut self, port: u16) -> Self {
        self.storage_port = Some(port);
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn heap_mib(mut self, mib: u32) -> Self {
        self.tuning.heap_mib = mib;
        self
    }
}

/// Starts of nodes in this process, bounded by [`MAX_NODES_PER_PROCESS`].
static NODES: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_NODES_PER_PROCESS)));

/// A running (or stopped, between `stop` and `start_again`) Cassandra node.
pub struct CassandraServer {
    runtime: Runtime,
    ports: Ports,
    tuning: Tuning,
    server: ChildServer,
    last_start: Duration,
    _slot: OwnedSemaphorePermit,
}

impl CassandraServer {
    /// Writes the configuration, starts the JVM and waits until CQL answers. Waits for a
    /// free slot first when this process already runs [`MAX_NODES_PER_PROCESS`] nodes.
    pub async fn start(options: CassandraOptions) -> Result<Self, CassandraError> {
        let slot = Arc::clone(&NODES)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let runtime = tokio::task::spawn_blocking(Runtime::locate)
            .await
            .expect("the runtime search does not panic")?;
        let dir = ServerDir::given_or_temporary(options.dir.as_deref(), "cassandra-")?;
        let ports = Ports {
            native: options.native_port.map_or_else(free_port, Ok)?,
            storage: options.storage_port.map_or_else(free_port, Ok)?,
        };
        write_files(dir.path(), ports)?;
        let lifecycle = Lifecycle {
            ready_within: START_TIMEOUT,
            probe_every: Duration::from_millis(100),
            stop_grace: STOP_GRACE,
            ..Lifecycle::default()
        };
        let mut server = Self {
            runtime,
            ports,
            tuning: options.tuning,
            // The JVM's own output (its warnings, a crash report); Cassandra logs to system.log.
            server: ChildServer::new("cassandra", dir, "cassandra.out", lifecycle),
            last_start: Duration::ZERO,
            _slot: slot,
        };
        server.spawn_and_wait().await?;
        Ok(server)
    }

    /// The CQL port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.ports.native
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The contact point, as `--scylla-uri` / `SCYLLA_URI` take it.
    pub fn uri(&self) -> String {
        format!("127.0.0.1:{}", self.ports.native)
    }

    pub fn dir(&self) -> &Path {
        self.server.dir().path()
    }

    /// `system.log`: Cassandra's own log.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("system.log")
    }

    /// How long the last start took, from spawning the JVM to the first CQL answer.
    pub fn startup_time(&self) -> Duration {
        self.last_start
    }

    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// SIGTERM: Cassandra drains (flushes memtables) and exits; SIGKILL if it lingers.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// SIGKILL, as a crash would; the commit log replays on the next start.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts again on the same ports and data after [`stop`](Self::stop) or [`kill`](Self::kill).
    pub async fn start_again(&mut self) -> Result<(), CassandraError> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn_and_wait().await
    }

    fn command(&self) -> Command {
        let jamm = self
            .runtime
            .jamm_agent()
            .unwrap_or_else(|| self.runtime.lib_dir.join("jamm.jar"));
        let mut command = Command::new(&self.runtime.java);
        command
            .args(config::jvm_args(self.dir(), &jamm, self.tuning))
            .arg("-cp")
            .arg(self.runtime.classpath())
            .arg(config::MAIN_CLASS)
            .current_dir(self.dir())
            // Nothing from the caller's Java environment: the JDK is the one found.
            .env_remove("JAVA_TOOL_OPTIONS")
            .env_remove("_JAVA_OPTIONS")
            .env_remove("JDK_JAVA_OPTIONS");
        if let Some(home) = self.runtime.java.ancestors().nth(2) {
            command.env("JAVA_HOME", home);
        }
        command
    }

    async fn spawn_and_wait(&mut self) -> Result<(), CassandraError> {
        let started = Instant::now();
        let port = self.ports.native;
        self.server
            .start(self.command(), || cql_answers(port))
            .await
            .map_err(|error| self.with_system_log(error))?;
        self.last_start = started.elapsed();
        // Straight to the stderr handle, so that start-up times show in captured test runs.
        let _ = writeln!(
            std::io::stderr(),
            "[stack] Cassandra {CASSANDRA_VERSION} ready on {} in {:.1} s ({})",
            self.uri(),
            self.last_start.as_secs_f64(),
            self.dir().display()
        );
        Ok(())
    }

    /// A failed start's error carries the end of the JVM's output (where a start-up
    /// exception lands) and the last errors of Cassandra's own log.
    fn with_system_log(&self, error: ServerError) -> CassandraError {
        let system = last_errors(&self.log_path());
        let system_log = self.log_path().display().to_string();
        match error {
            ServerError::ExitedDuringStart {
                name,
                status,
                log,
                log_tail,
            } => ServerError::ExitedDuringStart {
                name,
                status,
                log,
                log_tail: format!("{log_tail}\n--- errors in {system_log} ---\n{system}"),
            },
            ServerError::NotReady {
                name,
                waited,
                last,
                log,
                log_tail,
            } => ServerError::NotReady {
                name,
                waited,
                last,
                log,
                log_tail: format!("{log_tail}\n--- errors in {system_log} ---\n{system}"),
            },
            other => other,
        }
        .into()
    }
}

impl Drop for CassandraServer {
    fn drop(&mut self) {
        // A temporary node's data goes with its directory: no need to wait for a drain.
        if self.server.dir().is_temporary() {
            self.server.kill();
        }
    }
}

/// The last ten ERROR entries of `system.log` (their first lines), or "none".
fn last_errors(system_log: &Path) -> String {
    let text = std::fs::read_to_string(system_log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("ERROR"))
        .collect();
    if errors.is_empty() {
        return "none".to_owned();
    }
    errors[errors.len().saturating_sub(10)..].join("\n")
}

fn free_port() -> Result<u16, CassandraError> {
    crate::ports::free_port().map_err(CassandraError::NoFreePort)
}

fn write_files(dir: &Path, ports: Ports) -> Result<(), CassandraError> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| CassandraError::Config { path, source })
    };
    write("cassandra.yaml", &config::cassandra_yaml(dir, ports))?;
    write("logback.xml", config::LOGBACK_XML)
}

/// `Ok` when a CQL `OPTIONS` request on 127.0.0.1:`port` gets a `SUPPORTED` answer: the
/// native transport opens last in Cassandra's start, so the node then takes queries.
pub async fn cql_answers(port: u16) -> Result<(), String> {
    // Protocol v4 frame header: version, flags, stream (2 bytes), opcode, body length (4).
    const OPTIONS: [u8; 9] = [0x04, 0, 0, 0, 0x05, 0, 0, 0, 0];
    const RESPONSE_V4: u8 = 0x84;
    const SUPPORTED: u8 = 0x06;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(&OPTIONS).await.ok()?;
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).await.ok()?;
        Some(header[0] == RESPONSE_V4 && header[4] == SUPPORTED)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err("an answer other than SUPPORTED".to_owned()),
        Ok(None) => Err("no connection or no answer".to_owned()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    }
}

/// One node for a whole test process, started on first use; each test takes a keyspace of
/// its own. The node outlives every test (statics are never dropped), so a watchdog child
/// stops it and removes its directory when the process exits, however it exits; the
/// directory stays when a test that used the node failed.
pub async fn shared_for_tests() -> Result<SharedNode, CassandraError> {
    static SHARED: OnceCell<Result<SharedState, String>> = OnceCell::const_new();
    let state = SHARED
        .get_or_init(|| async {
            let server = CassandraServer::start(CassandraOptions::for_tests())
                .await
                .map_err(|e| crate::probe::error_chain(&e))?;
            SharedState::watch(server).map_err(|e| crate::probe::error_chain(&e))
        })
        .await;
    match state {
        Ok(state) => Ok(SharedNode {
            uri: state.uri.clone(),
            dir: state.dir.clone(),
        }),
        Err(message) => Err(CassandraError::Shared(message.clone())),
    }
}

/// The shared node and its watchdog, alive until the process exits.
struct SharedState {
    uri: String,
    dir: PathBuf,
    _server: CassandraServer,
    _watchdog: Watchdog,
}

impl SharedState {
    fn watch(server: CassandraServer) -> Result<Self, CassandraError> {
        // The node's directory outlives the process only through the watchdog, which
        // removes it: the static holding it is never dropped.
        let pid = server.pid().unwrap_or_default();
        let watchdog = Watchdog::spawn(pid, server.dir()).map_err(CassandraError::Watchdog)?;
        Ok(Self {
            uri: server.uri(),
            dir: server.dir().to_owned(),
            _server: server,
            _watchdog: watchdog,
        })
    }
}

/// A test's handle on the shared node: marks the node's directory to be kept when the test
/// holding it fails.
#[derive(Debug)]
pub struct SharedNode {
    uri: String,
    dir: PathBuf,
}

impl SharedNode {
    /// The contact point, as `--scylla-uri` / `SCYLLA_URI` take it.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SharedNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            Watchdog::keep_dir(&self.dir);
        }
    }
}
