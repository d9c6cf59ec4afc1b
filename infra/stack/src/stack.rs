//! The whole local stack as one value: the database (PostgreSQL or Cassandra, [`database`]),
//! Redis, N origin instances in cgroups, nginx and the edge, with the faults the study injects.

mod config;
mod database;
mod pool;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::binaries::{self, Binary, BinaryError};
use crate::cassandra::CassandraError;
use crate::cgroup::{CgroupError, Hierarchy};
use crate::nginx::{Nginx, NginxError, NginxSettings};
use crate::packages::{self, PackageError};
use crate::postgres::PostgresError;
use crate::redis::{RedisError, RedisOptions, RedisServer};
use crate::server::{ChildServer, Lifecycle, ServerDir, ServerError};
pub use config::{DEFAULT_CPU_PER_INSTANCE, DEFAULT_MEMORY_PER_INSTANCE, PortPlan, StackConfig};
use database::Database;
pub use database::DatabaseBackend;
use pool::InstanceSlot;

/// The most origin instances a stack runs.
pub const MAX_INSTANCES: usize = 10;

/// Name of the database the stack creates, migrates and seeds.
pub const DATABASE_NAME: &str = "capstone";

const READY_PATIENCE: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why the stack could not be brought up or changed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("instances must be between 1 and {MAX_INSTANCES}, got {0}")]
    InstanceCount(usize),
    #[error(
        "instance {index} does not exist (the pool has {count}; instances are numbered from 1)"
    )]
    NoSuchInstance { index: usize, count: usize },
    #[error("redis is off in this stack's configuration")]
    RedisDisabled,
    #[error("cannot create {path}")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot pick a free port")]
    Port(#[source] std::io::Error),
    #[error("`{step}` failed ({status}); see {log}")]
    Step {
        step: String,
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("cannot run `{step}`")]
    StepSpawn {
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Packages(#[from] PackageError),
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("PostgreSQL")]
    Postgres(#[from] PostgresError),
    #[error("Cassandra")]
    Cassandra(#[from] CassandraError),
    #[error("Redis")]
    Redis(#[from] RedisError),
    #[error("nginx")]
    Nginx(#[from] NginxError),
    #[error("cgroup for instance {index}")]
    Cgroup {
        index: usize,
        #[source]
        source: CgroupError,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("database setup")]
    Database(#[source] tokio_postgres::Error),
}

/// Process ids and places of a running stack, written to a state file so that another
/// terminal can stop it (see the `stack` binary).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackState {
    pub run_dir: PathBuf,
    pub edge_url: Option<String>,
    pub nginx_url: String,
    pub instance_urls: Vec<String>,
    #[serde(default)]
    pub backend: DatabaseBackend,
    /// The PostgreSQL URL, or Cassandra's contact point (`host:port`).
    pub database_url: String,
    pub redis_url: Option<String>,
    /// (name, pid) of every process the stack started and that runs now.
    pub processes: Vec<(String, u32)>,
    pub cgroups: Vec<PathBuf>,
    pub ports: Vec<u16>,
}

/// A running stack. Dropping it stops everything (use [`Stack::down`] to stop in order
/// and wait); no process, port or cgroup is left behind either way.
pub struct Stack {
    // Field order is drop order: front to back, the database last.
    edge: Option<ChildServer>,
    nginx: Option<Nginx>,
    slots: Vec<InstanceSlot>,
    redis: Option<RedisServer>,
    database: Option<Database>,
    config: StackConfig,
    run_dir: PathBuf,
    hierarchy: Option<Hierarchy>,
    origin_bin: PathBuf,
    started: Instant,
}

impl Stack {
    /// Starts every part and waits until each answers its readiness check.
    pub async fn up(config: StackConfig) -> Result<Self, StackError> {
        if !(1..=MAX_INSTANCES).contains(&config.instances) {
            return Err(StackError::InstanceCount(config.instances));
        }
        let started = Instant::now();
        packages::ensure_installed()?;
        let origin_bin = match &config.origin_bin {
            Some(path) => path.clone(),
            None => binaries::find(Binary::Origin)?,
        };
        let edge_bin = match (&config.edge_host_bin, config.edge) {
            (Some(path), true) => Some(path.clone()),
            (None, true) => Some(binaries::find(Binary::EdgeHost)?),
            (_, false) => None,
        };
        prepare_root(&config.run_dir)?;
        let run_dir = new_run_dir(&config.run_dir)?;
        let hierarchy = cgroup_hierarchy(&config);

        let mut stack = Self {
            edge: None,
            nginx: None,
            slots: Vec::new(),
            redis: None,
            database: None,
            hierarchy,
            origin_bin,
            run_dir,
            config,
            started,
        };
        stack.progress(&format!("run directory {}", stack.run_dir.display()));

        stack.start_database().await?;
        if stack.config.redis {
            stack.progress("starting Redis");
            let options = RedisOptions::default()
                .port(stack.config.ports.redis)
                .dir(stack.run_dir.join("redis"))
                .max_memory_bytes(512 << 20);
            stack.redis = Some(RedisServer::start(options).await?);
        }

        for index in 1..=stack.config.instances {
            stack.start_instance(index)?;
        }
        for index in 1..=stack.config.instances {
            stack.wait_instance_ready(index).await?;
        }
        stack.progress(&format!("{} origin instance(s) ready", stack.slots.len()));

        stack.progress("starting nginx");
        let settings = NginxSettings::new(
            stack.run_dir.join("nginx"),
            stack.config.ports.nginx,
            stack.pool_ports(),
        );
        stack.nginx = Some(Nginx::start(settings).await?);

        if let Some(edge_bin) = edge_bin {
            stack.progress("starting the edge");
            stack.start_edge(&edge_bin).await?;
        }
        stack.progress(&format!(
            "stack up in {:.1}s",
            stack.started.elapsed().as_secs_f64()
        ));
        Ok(stack)
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// This run's directory, with every part's log.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The edge's URL; `None` when the stack runs without an edge.
    pub fn edge_url(&self) -> Option<String> {
        self.edge
            .as_ref()
            .map(|_| format!("http://127.0.0.1:{}", self.config.ports.edge))
    }

    pub fn nginx_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.config.ports.nginx)
    }

    /// URLs of the instances in the pool (killed ones included), instance 1 first.
    pub fn instance_urls(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|slot| format!("http://127.0.0.1:{}", slot.port))
            .collect()
    }

    pub fn instance_count(&self) -> usize {
        self.slots.len()
    }

    /// The database the origins run on.
    pub fn backend(&self) -> DatabaseBackend {
        self.config.backend
    }

    /// The PostgreSQL URL of the stack's database, or Cassandra's contact point
    /// (`host:port`, as `origin --scylla-uri` takes it).
    pub fn database_url(&self) -> String {
        self.database
            .as_ref()
            .map(Database::url)
            .unwrap_or_default()
    }

    /// The Redis URL when the stack has Redis (also while it is stopped).
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(RedisServer::url)
    }

    pub fn jwt_secret(&self) -> &str {
        &self.config.jwt_secret
    }

    /// Brings the stack back to its configured shape after faults: every instance of the
    /// pool that is not running is started again, and Redis if it is stopped. Returns what
    /// was repaired (empty when nothing was needed).
    pub async fn repair(&mut self) -> Result<Vec<String>, StackError> {
        let mut repaired = Vec::new();
        let dead: Vec<usize> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(position, slot)| (!slot.server.is_running()).then_some(position + 1))
            .collect();
        if !dead.is_empty() {
            self.restart_instances(&dead).await?;
            repaired.extend(
                dead.iter()
                    .map(|index| format!("instance {index} restarted")),
            );
        }
        if let Some(redis) = self.redis.as_mut()
            && !redis.is_running()
        {
            redis.start_again().await?;
            repaired.push("Redis started".to_owned());
        }
        Ok(repaired)
    }

    /// Stops Redis (the origins must keep answering from PostgreSQL).
    pub async fn stop_redis(&mut self) -> Result<(), StackError> {
        let redis = self.redis.as_mut().ok_or(StackError::RedisDisabled)?;
        redis.stop().await;
        self.progress("Redis stopped");
        Ok(())
    }

    pub async fn start_redis(&mut self) -> Result<(), StackError> {
        let redis = self.redis.as_mut().ok_or(StackError::RedisDisabled)?;
        redis.start_again().await?;
        self.progress("Redis started");
        Ok(())
    }

    /// Restarts the database (PostgreSQL or Cassandra) on the same port and data: a
    /// graceful stop, then a start; the origins must recover by themselves.
    pub async fn restart_database(&mut self) -> Result<(), StackError> {
        if let Some(database) = self.database.as_mut() {
            database.restart().await?;
        }
        self.progress(&format!("{} restarted", self.config.backend.label()));
        Ok(())
    }

    /// Process ids and places, for the state file.
    pub fn state(&mut self) -> StackState {
        let mut processes = Vec::new();
        if let Some(pid) = self.edge.as_ref().and_then(ChildServer::pid) {
            processes.push(("edge".to_owned(), pid));
        }
        if let Some(pid) = self.nginx.as_ref().and_then(Nginx::pid) {
            processes.push(("nginx".to_owned(), pid));
        }
        for slot in &self.slots {
            if let Some(pid) = slot.server.pid() {
                processes.push((slot.server.name().to_owned(), pid));
            }
        }
        if let Some(database) = self.database.as_mut()
            && let Some(pid) = database.pid()
        {
            let name = match database.backend() {
                DatabaseBackend::Postgres => "postgres",
                DatabaseBackend::Cassandra => "cassandra",
            };
            processes.push((name.to_owned(), pid));
        }
        if let Some(redis) = self.redis.as_mut()
            && redis.is_running()
            && let Some(pid) = redis.pid()
        {
            processes.push(("redis".to_owned(), pid));
        }
        let mut ports = vec![self.config.ports.nginx];
        ports.extend(self.database.as_ref().map(Database::port));
        if self.edge.is_some() {
            ports.push(self.config.ports.edge);
        }
        if self.redis.is_some() {
            ports.push(self.config.ports.redis);
        }
        ports.extend(self.slots.iter().map(|slot| slot.port));
        StackState {
            run_dir: self.run_dir.clone(),
            edge_url: self.edge_url(),
            nginx_url: self.nginx_url(),
            instance_urls: self.instance_urls(),
            backend: self.config.backend,
            database_url: self.database_url(),
            redis_url: self.redis_url(),
            processes,
            cgroups: self
                .slots
                .iter()
                .filter_map(|slot| slot.cgroup.as_ref())
                .flat_map(|group| group.directories().to_vec())
                .collect(),
            ports,
        }
    }

    /// Stops everything in order (front to back) and waits for each part to exit.
    pub async fn down(mut self) {
        self.progress("stopping");
        if let Some(mut edge) = self.edge.take() {
            edge.stop().await;
        }
        if let Some(nginx) = self.nginx.take() {
            nginx.stop().await;
        }
        for mut slot in self.slots.drain(..) {
            slot.server.stop().await;
        }
        if let Some(mut redis) = self.redis.take() {
            redis.stop().await;
        }
        if let Some(mut database) = self.database.take() {
            database.stop().await;
        }
        self.progress("stopped");
    }

    /// Starts the database, migrates it, and seeds it unless its data already hold the
    /// configured scale (a marker beside the data says which scale was loaded).
    async fn start_database(&mut self) -> Result<(), StackError> {
        let backend = self.config.backend;
        self.progress(&format!(
            "starting {} (data in {})",
            backend.label(),
            Database::data_dir(&self.config).display()
        ));
        let database = Database::start(&self.config, &self.run_dir).await?;
        let target = database.origin_args();
        self.database = Some(database);

        let with_target = |command: &str, extra: &[&str]| {
            let mut args = vec![command.to_owned()];
            args.extend(target.iter().cloned());
            args.extend(extra.iter().map(|arg| (*arg).to_owned()));
            args
        };
        self.run_origin_step("migrate", &with_target("migrate", &[]))?;
        let marker = Database::seed_marker(&self.config);
        let seeded = std::fs::read_to_string(&marker).unwrap_or_default();
        let scale = self.config.seed_scale.clone();
        if seeded.trim() == scale {
            self.progress(&format!("data already seeded at scale {scale}"));
        } else {
            self.progress(&format!("seeding at scale {scale} (first use only)"));
            let args = with_target("seed", &["--scale", &scale, "--force"]);
            self.run_origin_step("seed", &args)?;
            std::fs::write(&marker, &scale).map_err(|source| StackError::RunDir {
                path: marker.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Runs `origin <args>` to completion with its output in `<step>.log`.
    fn run_origin_step(&self, step: &str, args: &[String]) -> Result<(), StackError> {
        self.progress(&format!("origin {step}"));
        let log = self.run_dir.join(format!("origin-{step}.log"));
        let file = std::fs::File::create(&log).map_err(|source| StackError::RunDir {
            path: log.clone(),
            source,
        })?;
        let stderr = file.try_clone().map_err(|source| StackError::RunDir {
            path: log.clone(),
            source,
        })?;
        let status = Command::new(&self.origin_bin)
            .args(args)
            .stdout(file)
            .stderr(stderr)
            .status()
            .map_err(|source| StackError::StepSpawn {
                step: format!("origin {step}"),
                source,
            })?;
        if !status.success() {
            return Err(StackError::Step {
                step: format!("origin {step}"),
                status,
                log,
            });
        }
        Ok(())
    }

    async fn start_edge(&mut self, edge_bin: &Path) -> Result<(), StackError> {
        let mut command = Command::new(edge_bin);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.config.ports.edge))
            .arg("--var")
            .arg(format!("origins={}", self.nginx_url()));
        if !self.config.edge_cache {
            command.arg("--var").arg("cache=off");
        }
        let dir = ServerDir::given(&self.run_dir)?;
        let mut edge = ChildServer::new("edge", dir, "edge.log", server_lifecycle());
        edge.spawn(command)?;
        let url = format!("http://127.0.0.1:{}/healthz", self.config.ports.edge);
        edge.wait_ready_http(&url).await?;
        self.edge = Some(edge);
        Ok(())
    }

    async fn reload_nginx(&mut self) -> Result<(), StackError> {
        let ports = self.pool_ports();
        if let Some(nginx) = self.nginx.as_mut() {
            nginx.reload(ports).await?;
        }
        Ok(())
    }

    fn progress(&self, message: &str) {
        if self.config.progress {
            eprintln!(
                "[stack {:>6.1}s] {message}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// How the stack's own servers (instances, the edge) are waited for and stopped.
fn server_lifecycle() -> Lifecycle {
    Lifecycle {
        ready_within: READY_PATIENCE,
        stop_grace: STOP_GRACE,
        ..Lifecycle::default()
    }
}

/// Creates the root of runs, traversable by others: as root, PostgreSQL runs as the
/// `postgres` user and must reach its data directory inside (a test's temporary
/// directory is private by default).
fn prepare_root(root: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |source| StackError::RunDir {
        path: root.to_owned(),
        source,
    };
    std::fs::create_dir_all(root).map_err(failed)?;
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    Ok(())
}

/// A fresh `run_dir/<UTC timestamp>` directory for this run's logs.
fn new_run_dir(root: &Path) -> Result<PathBuf, StackError> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let dir = root.join(stamp);
    std::fs::create_dir_all(&dir).map_err(|source| StackError::RunDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The machine's cgroup hierarchy when limits are asked for; otherwise, or when none is
/// writable, `None` with a warning, and instances run unlimited.
fn cgroup_hierarchy(config: &StackConfig) -> Option<Hierarchy> {
    if config.cpu_per_instance.is_none() && config.memory_per_instance.is_none() {
        return None;
    }
    match Hierarchy::detect() {
        Ok(hierarchy) => Some(hierarchy),
        Err(error) => {
            eprintln!(
                "[stack] WARNING: {error}. Origin instances run WITHOUT CPU and memory limits, so they share every core and scaling results do not model separate nodes. Run as root (or with a delegated cgroup) to enable limits."
            );
            None
        }
    }
}
