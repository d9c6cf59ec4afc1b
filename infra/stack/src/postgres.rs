//! A private PostgreSQL server as a child process: initdb in a temporary (or
//! given) directory, postgres on 127.0.0.1 and a free (or given) port, stop,
//! restart and kill on the same port and data, and cleanup on drop.
//!
//! Tests use it with a fresh database per test ([`PostgresServer::create_database`]);
//! the local stack uses it with a fixed port and a durable data directory.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// How long a server may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Superuser created by initdb; trust authentication on loopback.
pub const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("no PostgreSQL binary `{0}` in PATH or /usr/lib/postgresql/*/bin")]
    BinaryNotFound(&'static str),
    #[error("running as root but there is no `postgres` user to run the server as")]
    NoPostgresUser,
    #[error("could not prepare directory {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not change owner of {path} to the postgres user")]
    Chown {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("could not run {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb failed ({status}): {output}")]
    Initdb {
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("postgres exited during start ({status}); log tail:\n{log_tail}")]
    ExitedDuringStart {
        status: std::process::ExitStatus,
        log_tail: String,
    },
    #[error("postgres did not accept connections within {0:?}; log tail:\n{1}")]
    StartTimeout(Duration, String),
    #[error("could not find a free port")]
    NoFreePort(#[source] std::io::Error),
    #[error("SQL on the server failed")]
    Sql(#[source] tokio_postgres::Error),
    #[error("the server is not running")]
    NotRunning,
}

/// Options for [`PostgresServer::start`]. `Default` is what tests want minus speed:
/// a temporary directory, a free port, durable writes.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Fixed port; `None` picks a free one.
    pub port: Option<u16>,
    /// Keep the cluster here (initialised if empty, reused otherwise, never deleted).
    /// `None` uses a temporary directory removed on drop.
    pub data_dir: Option<PathBuf>,
    /// Turn fsync, synchronous_commit and full_page_writes off. Fast and unsafe
    /// across crashes of the machine: for tests only.
    pub unsafe_no_fsync: bool,
    /// `max_connections`; `None` keeps PostgreSQL's default (100).
    pub max_connections: Option<u32>,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

impl PostgresOptions {
    /// Free port, temporary directory, no fsync: what integration tests want.
    pub fn for_tests() -> Self {
        Self {
            unsafe_no_fsync: true,
            ..Self::default()
        }
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }
}

/// A running (or stopped, between `stop` and `restart`) PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    options: PostgresOptions,
    port: u16,
    /// Holds `data/`, the socket and the log. Removed on drop when temporary.
    run_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    log_path: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Initialises the cluster if needed, starts postgres and waits until it
    /// accepts connections.
    pub async fn start(options: PostgresOptions) -> Result<Self, PostgresError> {
        let bin_dir = find_bin_dir()?;
        let run_as = postgres_user_if_root()?;
        let (temp, run_dir) = match &options.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| PostgresError::Directory {
                    path: dir.clone(),
                    source,
                })?;
                (None, dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("pg-")
                    .tempdir()
                    .map_err(|source| PostgresError::Directory {
                        path: "/tmp".into(),
                        source,
                    })?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let data_dir = run_dir.join("data");
        let log_path = run_dir.join("postgres.log");
        if let Some((uid, gid)) = run_as {
            chown(&run_dir, uid, gid)?;
        }
        let port = match options.port {
            Some(port) => port,
            None => free_loopback_port()?,
        };
        let mut server = Self {
            options,
            port,
            run_dir,
            _temp: temp,
            data_dir,
            log_path,
            bin_dir,
            run_as,
            child: None,
        };
        if !server.data_dir.join("PG_VERSION").exists() {
            server.initdb()?;
        }
        server.spawn_and_wait().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the `postgres` database as the superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Creates a database (name: letters, digits, `_`) and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, PostgresError> {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database names are plain identifiers, got {name:?}"
        );
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(PostgresError::Sql)?;
        Ok(self.database_url(name))
    }

    /// A database with a fresh random name, for one test.
    pub async fn create_random_database(&self) -> Result<String, PostgresError> {
        let name = format!("test_{:016x}", rand_u64());
        self.create_database(&name).await
    }

    /// Fast shutdown (SIGINT: abort transactions, checkpoint, exit); SIGKILL if it lingers.
    pub async fn stop(&mut self) -> Result<(), PostgresError> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        stop_child(child, Signal::SIGINT, STOP_GRACE).await;
        Ok(())
    }

    /// SIGKILL, as a crash would. A following [`restart`](Self::restart) recovers.
    pub async fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, Signal::SIGKILL, Duration::ZERO).await;
        }
    }

    /// Stops (if running) and starts again on the same port and data.
    pub async fn restart(&mut self) -> Result<(), PostgresError> {
        self.stop().await?;
        self.spawn_and_wait().await
    }

    /// Starts again after [`stop`](Self::stop) or [`kill`](Self::kill).
    pub async fn start_again(&mut self) -> Result<(), PostgresError> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn_and_wait().await
    }

    async fn connect(&self, database: &str) -> Result<tokio_postgres::Client, PostgresError> {
        if self.child.is_none() {
            return Err(PostgresError::NotRunning);
        }
        let (client, connection) =
            tokio_postgres::connect(&self.database_url(database), tokio_postgres::NoTls)
                .await
                .map_err(PostgresError::Sql)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    fn initdb(&self) -> Result<(), PostgresError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|source| PostgresError::Directory {
            path: self.data_dir.clone(),
            source,
        })?;
        if let Some((uid, gid)) = self.run_as {
            chown(&self.data_dir, uid, gid)?;
        }
        let program = self.bin_dir.join("initdb");
        let mut command = Command::new(&program);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null());
        self.drop_privileges(&mut command);
        let output = command
            .output()
            .map_err(|source| PostgresError::Spawn { program, source })?;
        if !output.status.success() {
            return Err(PostgresError::Initdb {
                status: output.status,
                output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat())
                    .into_owned(),
            });
        }
        Ok(())
    }

    async fn spawn_and_wait(&mut self) -> Result<(), PostgresError> {
        // After a kill, the old backends may hold the shared memory for a moment
        // and postgres refuses to start; a few attempts ride that out.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_once().await {
                Ok(()) => return Ok(()),
                Err(PostgresError::ExitedDuringStart { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn spawn_once(&mut self) -> Result<(), PostgresError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|source| PostgresError::Directory {
                path: self.log_path.clone(),
                source,
            })?;
        if let Some((uid, gid)) = self.run_as {
            chown(&self.log_path, uid, gid)?;
        }
        let log_err = log.try_clone().map_err(|source| PostgresError::Directory {
            path: self.log_path.clone(),
            source,
        })?;
        let program = self.bin_dir.join("postgres");
        let mut command = Command::new(&program);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.run_dir.display()
            ))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for the test runner or the
            // stack CLI reaches us, and we stop postgres in order.
            .process_group(0);
        if self.options.unsafe_no_fsync {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ] {
                command.arg("-c").arg(setting);
            }
        }
        if let Some(n) = self.options.max_connections {
            command.arg("-c").arg(format!("max_connections={n}"));
        }
        for (name, value) in &self.options.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        self.drop_privileges(&mut command);
        let child = command
            .spawn()
            .map_err(|source| PostgresError::Spawn { program, source })?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(PostgresError::ExitedDuringStart {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if let Ok(client) = self.connect("postgres").await
                && client.simple_query("SELECT 1").await.is_ok()
            {
                tracing::debug!(port = self.port, "postgres accepts connections");
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = self.log_tail();
                self.kill().await;
                return Err(PostgresError::StartTimeout(START_TIMEOUT, tail));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn drop_privileges(&self, command: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
            command.env("HOME", &self.run_dir);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the data goes away with the temp dir anyway, and
            // for a durable data dir PostgreSQL recovers from its WAL.
            let signal = if self._temp.is_some() {
                Signal::SIGQUIT
            } else {
                Signal::SIGINT
            };
            send_signal(&child, signal);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_loopback_port() -> Result<u16, PostgresError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(PostgresError::NoFreePort)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(PostgresError::NoFreePort)
}

pub(crate) fn send_signal(child: &Child, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, signal);
}

/// Sends `signal`, waits up to `grace` for the exit, then SIGKILLs and reaps.
pub(crate) async fn stop_child(mut child: Child, signal: Signal, grace: Duration) {
    send_signal(&child, signal);
    let deadline = Instant::now() + grace;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn find_bin_dir() -> Result<PathBuf, PostgresError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("postgres");
            if candidate.is_file() && dir.join("initdb").is_file() {
                // Resolve symlinks (Debian links into /usr/lib/postgresql/N/bin),
                // so initdb finds its share files next to the real binary.
                let real = std::fs::canonicalize(&candidate).unwrap_or(candidate);
                if let Some(parent) = real.parent()
                    && parent.join("initdb").is_file()
                {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    // Newest major version last after a numeric sort.
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .ok_or(PostgresError::BinaryNotFound("postgres"))
}

fn postgres_user_if_root() -> Result<Option<(nix::unistd::Uid, nix::unistd::Gid)>, PostgresError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => Err(PostgresError::NoPostgresUser),
    }
}

fn chown(path: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<(), PostgresError> {
    nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|source| PostgresError::Chown {
        path: path.to_path_buf(),
        source,
    })
}

/// Random enough for unique database names without pulling in a RNG crate.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
