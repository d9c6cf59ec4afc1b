//! A private Redis server as a child process on 127.0.0.1 and a free (or given)
//! port, in a temporary (or given) directory; stop, start again and kill on the
//! same port, cleanup on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports;
use crate::server::{ChildServer, Lifecycle, ServerDir, ServerError};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("no `redis-server` in PATH")]
    BinaryNotFound,
    #[error("could not find a free port")]
    NoFreePort(#[source] std::io::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Options for [`RedisServer::start`]. `Default`: free port, temporary
/// directory, no persistence (a pure cache).
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub port: Option<u16>,
    /// Keep the dump/AOF here; `None` uses a temporary directory removed on drop.
    pub dir: Option<PathBuf>,
    /// Append-only file with fsync every second. Off: nothing is written to disk.
    pub persistent: bool,
    /// `maxmemory` in bytes with `volatile-lru` eviction (only keys with a TTL
    /// are evicted: the origin's generation keys have none and must stay);
    /// `None` for no limit.
    pub max_memory_bytes: Option<u64>,
}

impl RedisOptions {
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    pub fn max_memory_bytes(mut self, bytes: u64) -> Self {
        self.max_memory_bytes = Some(bytes);
        self
    }
}

#[derive(Debug)]
pub struct RedisServer {
    options: RedisOptions,
    port: u16,
    program: PathBuf,
    server: ChildServer,
}

impl RedisServer {
    /// Starts redis-server and waits until it answers PING.
    pub async fn start(options: RedisOptions) -> Result<Self, RedisError> {
        let program = find_redis_server()?;
        let dir = ServerDir::given_or_temporary(options.dir.as_deref(), "redis-")?;
        let port = match options.port {
            Some(port) => port,
            None => ports::free_port().map_err(RedisError::NoFreePort)?,
        };
        let lifecycle = Lifecycle {
            ready_within: START_TIMEOUT,
            probe_every: Duration::from_millis(20),
            stop_grace: STOP_GRACE,
            ..Lifecycle::default()
        };
        let mut server = Self {
            options,
            port,
            program,
            server: ChildServer::new("redis", dir, "redis.log", lifecycle),
        };
        server.spawn_and_wait().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.server.dir().path()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// SIGTERM (redis saves if persistent, then exits); SIGKILL if it lingers.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts again on the same port after [`stop`](Self::stop) or [`kill`](Self::kill).
    pub async fn start_again(&mut self) -> Result<(), RedisError> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn_and_wait().await
    }

    pub async fn restart(&mut self) -> Result<(), RedisError> {
        self.stop().await;
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&mut self) -> Result<(), RedisError> {
        // No `--logfile`: redis logs to stdout, which the server sends to its log file.
        let mut command = Command::new(&self.program);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(self.server.dir().path());
        if self.options.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            command.args(["--save", "", "--appendonly", "no"]);
        }
        if let Some(bytes) = self.options.max_memory_bytes {
            command
                .arg("--maxmemory")
                .arg(bytes.to_string())
                .args(["--maxmemory-policy", "volatile-lru"]);
        }
        let port = self.port;
        self.server.start(command, || ping(port)).await?;
        Ok(())
    }
}

/// One PING over a fresh connection; the readiness probe.
async fn ping(port: u16) -> Result<(), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    match tokio::time::timeout(Duration::from_secs(1), attempt).await {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err("an answer other than +PONG".to_owned()),
        Ok(None) => Err("no connection or no answer".to_owned()),
        Err(_) => Err("no answer within 1 s".to_owned()),
    }
}

fn find_redis_server() -> Result<PathBuf, RedisError> {
    let path = std::env::var_os("PATH").ok_or(RedisError::BinaryNotFound)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(RedisError::BinaryNotFound)
}
