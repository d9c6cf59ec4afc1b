//! A private PostgreSQL server as a child process: initdb in a temporary (or
//! given) directory, postgres on 127.0.0.1 and a free (or given) port, stop,
//! restart and kill on the same port and data, and cleanup on drop.
//!
//! Tests use it with a fresh database per test ([`PostgresServer::create_database`]);
//! the local stack uses it with a fixed port and a durable data directory.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::ports;
use crate::server::{ChildServer, Lifecycle, ServerDir, ServerError};

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
    #[error(transparent)]
    Server(#[from] ServerError),
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
    data_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    /// The postgres process, its run directory (`data/`, the socket, the log) and cleanup.
    server: ChildServer,
}

impl PostgresServer {
    /// Initialises the cluster if needed, starts postgres and waits until it
    /// accepts connections.
    pub async fn start(options: PostgresOptions) -> Result<Self, PostgresError> {
        let bin_dir = find_bin_dir()?;
        let run_as = postgres_user_if_root()?;
        let dir = ServerDir::given_or_temporary(options.data_dir.as_deref(), "pg-")?;
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), uid, gid)?;
        }
        let port = match options.port {
            Some(port) => port,
            None => ports::free_port().map_err(PostgresError::NoFreePort)?,
        };
        let lifecycle = Lifecycle {
            ready_within: START_TIMEOUT,
            // SIGINT is PostgreSQL's fast shutdown: abort transactions, checkpoint, exit.
            stop_signal: Signal::SIGINT,
            stop_grace: STOP_GRACE,
            ..Lifecycle::default()
        };
        let server = Self {
            options,
            port,
            data_dir: dir.path().join("data"),
            bin_dir,
            run_as,
            server: ChildServer::new("postgres", dir, "postgres.log", lifecycle),
        };
        if !server.data_dir.join("PG_VERSION").exists() {
            server.initdb()?;
        }
        let mut server = server;
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

    /// The postmaster's pid while it runs (it leads the process group `stack::cpu` reads).
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.server.log_path()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
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
        self.server.stop().await;
        Ok(())
    }

    /// SIGKILL, as a crash would. A following [`restart`](Self::restart) recovers.
    pub async fn kill(&mut self) {
        self.server.kill();
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
        if self.server.pid().is_none() {
            return Err(PostgresError::NotRunning);
        }
        connect(&self.database_url(database)).await
    }

    fn initdb(&self) -> Result<(), PostgresError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|source| ServerError::Directory {
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
        let url = self.database_url("postgres");
        loop {
            let command = self.command();
            match self.server.start(command, || accepts_queries(&url)).await {
                Ok(()) => {
                    tracing::debug!(port = self.port, "postgres accepts connections");
                    return Ok(());
                }
                Err(ServerError::ExitedDuringStart { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("postgres"));
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
                self.server.dir().path().display()
            ));
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
        command
    }

    fn drop_privileges(&self, command: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
            command.env("HOME", self.server.dir().path());
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A temporary cluster goes away with its directory: an immediate shutdown (SIGQUIT)
        // skips the checkpoint. The server then stops it as usual; a durable cluster gets
        // the fast shutdown and recovers nothing.
        if self.server.dir().is_temporary() {
            let _ = self.server.signal(Signal::SIGQUIT);
        }
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, PostgresError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(PostgresError::Sql)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The readiness probe: a connection and `SELECT 1`.
async fn accepts_queries(url: &str) -> Result<(), String> {
    let client = connect(url).await.map_err(|error| error.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map(drop)
        .map_err(|error| error.to_string())
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
