//! A private Redis server as a child process on 127.0.0.1 and a free (or given)
//! port, in a temporary (or given) directory; stop, start again and kill on the
//! same port, cleanup on drop.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::postgres::{free_loopback_port, send_signal, stop_child};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("no `redis-server` in PATH")]
    BinaryNotFound,
    #[error("could not prepare directory {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not find a free port")]
    NoFreePort(#[source] crate::postgres::PostgresError),
    #[error("could not run redis-server")]
    Spawn(#[source] std::io::Error),
    #[error("redis-server exited during start ({status}); log tail:\n{log_tail}")]
    ExitedDuringStart {
        status: std::process::ExitStatus,
        log_tail: String,
    },
    #[error("redis-server did not answer PING within {0:?}; log tail:\n{1}")]
    StartTimeout(Duration, String),
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
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    program: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts redis-server and waits until it answers PING.
    pub async fn start(options: RedisOptions) -> Result<Self, RedisError> {
        let program = find_redis_server()?;
        let (temp, dir) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| RedisError::Directory {
                    path: dir.clone(),
                    source,
                })?;
                (None, dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("redis-")
                    .tempdir()
                    .map_err(|source| RedisError::Directory {
                        path: "/tmp".into(),
                        source,
                    })?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let port = match options.port {
            Some(port) => port,
            None => free_loopback_port().map_err(RedisError::NoFreePort)?,
        };
        let mut server = Self {
            options,
            port,
            dir,
            _temp: temp,
            program,
            child: None,
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
        &self.dir
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM (redis saves if persistent, then exits); SIGKILL if it lingers.
    pub async fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, Signal::SIGTERM, STOP_GRACE).await;
        }
    }

    /// SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, Signal::SIGKILL, Duration::ZERO).await;
        }
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

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), RedisError> {
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
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path());
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
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        self.child = Some(command.spawn().map_err(RedisError::Spawn)?);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(RedisError::ExitedDuringStart {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if ping(self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = self.log_tail();
                self.kill().await;
                return Err(RedisError::StartTimeout(START_TIMEOUT, tail));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(&child, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One PING over a fresh connection; true on `+PONG`.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}

fn find_redis_server() -> Result<PathBuf, RedisError> {
    let path = std::env::var_os("PATH").ok_or(RedisError::BinaryNotFound)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(RedisError::BinaryNotFound)
}
