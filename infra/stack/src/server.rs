//! A server run as a child process: its directory, its log, readiness by a probe within a
//! bound, graceful stop, crash and start again, and cleanup on drop that keeps the directory
//! and logs when a test failed. PostgreSQL, Redis, nginx, the origin instances and the edge
//! all run through it; a slow starter (a JVM) only needs a longer bound and its own probe.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::probe::{HttpClient, error_chain};
use crate::process::{ManagedProcess, ProcessError};

/// Why a child server could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot prepare the directory {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{name} is already running (pid {pid})")]
    AlreadyRunning { name: String, pid: u32 },
    #[error("{name} exited while starting ({status}); see {log}; log tail:\n{log_tail}")]
    ExitedDuringStart {
        name: String,
        status: ExitStatus,
        log: PathBuf,
        log_tail: String,
    },
    #[error(
        "{name} was not ready after {waited:?} (last probe: {last}); see {log}; log tail:\n{log_tail}"
    )]
    NotReady {
        name: String,
        waited: Duration,
        last: String,
        log: PathBuf,
        log_tail: String,
    },
}

/// Where a server keeps its files: a temporary directory removed on drop (kept, with a
/// message naming it, when the thread is panicking, that is when a test failed), or a
/// given directory that is never removed.
#[derive(Debug)]
pub struct ServerDir {
    path: PathBuf,
    temporary: Option<tempfile::TempDir>,
}

impl ServerDir {
    /// A fresh directory under the system's temporary directory, named `<prefix>XXXXXX`.
    pub fn temporary(prefix: &str) -> Result<Self, ServerError> {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|source| ServerError::Directory {
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(Self {
            path: temp.path().to_owned(),
            temporary: Some(temp),
        })
    }

    /// `path`, created if missing and never removed.
    pub fn given(path: impl Into<PathBuf>) -> Result<Self, ServerError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|source| ServerError::Directory {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            temporary: None,
        })
    }

    /// A temporary directory when `given` is `None`.
    pub fn given_or_temporary(given: Option<&Path>, prefix: &str) -> Result<Self, ServerError> {
        match given {
            Some(path) => Self::given(path),
            None => Self::temporary(prefix),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the directory goes away with this value.
    pub fn is_temporary(&self) -> bool {
        self.temporary.is_some()
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(temp) = self.temporary.take()
        {
            let kept = temp.keep();
            eprintln!(
                "[stack] a test failed: kept {} with its logs for inspection (remove it when done)",
                kept.display()
            );
        }
    }
}

/// How a server is waited for and stopped.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// The longest wait for readiness after a start: seconds for a C server, minutes for a JVM.
    pub ready_within: Duration,
    /// The pause between two readiness probes.
    pub probe_every: Duration,
    /// The signal of a graceful stop, and how long the server may take before SIGKILL.
    pub stop_signal: Signal,
    pub stop_grace: Duration,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            ready_within: Duration::from_secs(30),
            probe_every: Duration::from_millis(50),
            stop_signal: Signal::SIGTERM,
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// A server that runs as a child process; it may be stopped, killed and started again on
/// the same directory, and is stopped on drop.
#[derive(Debug)]
pub struct ChildServer {
    name: String,
    lifecycle: Lifecycle,
    log_path: PathBuf,
    /// Declared before `dir`: the process is stopped before its directory goes.
    process: Option<ManagedProcess>,
    dir: ServerDir,
}

impl ChildServer {
    /// A server not running yet; its output goes to `dir/<log_file>` (appended across starts).
    pub fn new(
        name: impl Into<String>,
        dir: ServerDir,
        log_file: &str,
        lifecycle: Lifecycle,
    ) -> Self {
        let log_path = dir.path().join(log_file);
        Self {
            name: name.into(),
            lifecycle,
            log_path,
            process: None,
            dir,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &ServerDir {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The process id while a process is attached (running or exited but not yet seen so).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ManagedProcess::is_running)
    }

    /// Starts `command` and waits until `probe` succeeds (see [`wait_ready`](Self::wait_ready)).
    pub async fn start<F>(
        &mut self,
        command: Command,
        probe: impl FnMut() -> F,
    ) -> Result<(), ServerError>
    where
        F: Future<Output = Result<(), String>>,
    {
        self.spawn(command)?;
        self.wait_ready(probe).await
    }

    /// Starts `command` without waiting, for callers with work between start and readiness
    /// (an instance joins its cgroup before it takes traffic).
    pub fn spawn(&mut self, command: Command) -> Result<(), ServerError> {
        if let Some(pid) = self.pid().filter(|_| self.is_running()) {
            return Err(ServerError::AlreadyRunning {
                name: self.name.clone(),
                pid,
            });
        }
        let process = ManagedProcess::spawn(self.name.clone(), command, &self.log_path)?
            .with_stop(self.lifecycle.stop_signal, self.lifecycle.stop_grace);
        self.process = Some(process);
        Ok(())
    }

    /// Runs `probe` every `probe_every` until it answers `Ok`, the process exits (an error at
    /// once, with the log's tail), or `ready_within` has passed (the process is then killed).
    pub async fn wait_ready<F>(&mut self, mut probe: impl FnMut() -> F) -> Result<(), ServerError>
    where
        F: Future<Output = Result<(), String>>,
    {
        let started = Instant::now();
        loop {
            let last = match probe().await {
                Ok(()) => return Ok(()),
                Err(last) => last,
            };
            let exited = match self.process.as_mut() {
                Some(process) => process.exit_status(),
                None => None,
            };
            if let Some(status) = exited {
                self.process = None;
                return Err(ServerError::ExitedDuringStart {
                    name: self.name.clone(),
                    status,
                    log: self.log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            if started.elapsed() >= self.lifecycle.ready_within {
                self.kill();
                return Err(ServerError::NotReady {
                    name: self.name.clone(),
                    waited: started.elapsed(),
                    last,
                    log: self.log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(self.lifecycle.probe_every).await;
        }
    }

    /// [`wait_ready`](Self::wait_ready) on an HTTP URL that must answer 200.
    pub async fn wait_ready_http(&mut self, url: &str) -> Result<(), ServerError> {
        let client = HttpClient::new(Duration::from_secs(2));
        self.wait_ready(|| http_ok(&client, url)).await
    }

    /// Sends `signal` to the running process (a reload, say); nothing when none runs.
    pub fn signal(&self, signal: Signal) -> Result<(), ServerError> {
        match &self.process {
            Some(process) => Ok(process.signal(signal)?),
            None => Ok(()),
        }
    }

    /// Graceful stop with the lifecycle's signal and grace, then SIGKILL; waits on the timer.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.shut_down().await;
        }
    }

    /// SIGKILL and reap, as a crash would.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// The last 20 lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, 20)
    }
}

/// One GET that must answer 200; the failure as text for [`ChildServer::wait_ready`].
pub async fn http_ok(client: &HttpClient, url: &str) -> Result<(), String> {
    match client.get(url).await {
        Ok(response) if response.status == hyper::StatusCode::OK => Ok(()),
        Ok(response) => Err(format!("status {}", response.status)),
        Err(error) => Err(error_chain(&error)),
    }
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
