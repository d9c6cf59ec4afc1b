//! A child process whose output goes to a log file and which is stopped (and reaped) on drop.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Why a child could not be started or signalled.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot send {signal} to {name} (pid {pid})")]
    Signal {
        name: String,
        pid: u32,
        signal: Signal,
        #[source]
        source: nix::Error,
    },
}

/// A running child with its stdout and stderr appended to one log file.
///
/// Each child gets its own process group, so a Ctrl-C in the terminal reaches only the
/// `stack` process, which then stops its children in order.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// How a graceful stop asks the process to exit, and how long it may take before SIGKILL.
    stop_signal: Signal,
    stop_grace: Duration,
}

/// What a graceful stop sends when nothing else was configured, and how long it waits.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

impl ManagedProcess {
    /// Starts `command`, sending its output to `log_path` (appended, so restarts keep history).
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        log_path: &Path,
    ) -> Result<Self, ProcessError> {
        let log = open_log(log_path)?;
        let log_for_stderr = log.try_clone().map_err(|source| ProcessError::Log {
            path: log_path.to_owned(),
            source,
        })?;
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        Ok(Self {
            name: name.into(),
            child,
            log_path: log_path.to_owned(),
            stop_signal: Signal::SIGTERM,
            stop_grace: DEFAULT_STOP_GRACE,
        })
    }

    /// Sets how [`stop`](Self::stop) and drop end the process (SIGTERM and 5 s by default):
    /// PostgreSQL wants SIGINT for a fast shutdown, a JVM more grace than a C server.
    pub fn with_stop(mut self, signal: Signal, grace: Duration) -> Self {
        self.stop_signal = signal;
        self.stop_grace = grace;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// True while the process has not exited (it is reaped here when it has).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status once the process has exited (reaping it), `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` without waiting for any effect.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        signal::kill(pid_of(self.pid()), signal).map_err(|source| ProcessError::Signal {
            name: self.name.clone(),
            pid: self.pid(),
            signal,
            source,
        })
    }

    /// SIGKILL and reap: an abrupt crash, as the fault-injection study wants it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The stop signal, then SIGKILL if the process has not exited within the grace; always
    /// reaps. Blocks the thread while it waits: from async code use [`shut_down`](Self::shut_down).
    pub fn stop(mut self) {
        self.stop_blocking();
    }

    fn stop_blocking(&mut self) {
        if !self.ask_to_stop() {
            return;
        }
        let deadline = Instant::now() + self.stop_grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(STOP_POLL);
        }
        self.kill_lingering();
    }

    /// [`stop`](Self::stop) on a blocking thread, so that waiting out the grace does not hold
    /// up a runtime worker.
    pub async fn shut_down(self) {
        let name = self.name.clone();
        if tokio::task::spawn_blocking(move || self.stop())
            .await
            .is_err()
        {
            tracing::warn!(%name, "stopping panicked");
        }
    }

    /// Sends the stop signal; false if the process had already exited.
    fn ask_to_stop(&mut self) -> bool {
        if !self.is_running() {
            return false;
        }
        let _ = signal::kill(pid_of(self.pid()), self.stop_signal);
        true
    }

    fn kill_lingering(&mut self) {
        tracing::warn!(name = %self.name, pid = self.pid(), signal = %self.stop_signal, "did not stop in time; sending SIGKILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How often a stopping process is checked.
const STOP_POLL: Duration = Duration::from_millis(10);

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

/// Converts a std process id to nix's type; ids always fit in `i32` on Linux.
pub fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// True if a process with this id exists (and is not a zombie we could see as gone).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    crate::cpu::parse_stat(&line).is_none_or(|process| !process.zombie)
}

/// The live (not zombie) children of `parent`, found through /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    crate::cpu::read_processes()
        .into_iter()
        .filter(|(_, process)| process.parent == parent && !process.zombie)
        .map(|(pid, _)| pid)
        .collect()
}

fn open_log(path: &Path) -> Result<File, ProcessError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ProcessError::Log {
            path: path.to_owned(),
            source,
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProcessError::Log {
            path: path.to_owned(),
            source,
        })
}

/// The pid of the process listening on 127.0.0.1:`port` (TCP), found through /proc.
///
/// Used to find processes the stack did not spawn itself (Redis's pid is private to its
/// launcher) and to prove in tests that nothing is left listening.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inode = listening_socket_inode(port)?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// The inode of a listening TCP socket on 127.0.0.1:`port` or 0.0.0.0:`port`.
fn listening_socket_inode(port: u16) -> Option<u64> {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let wanted_suffix = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        let on_loopback_or_any = local.starts_with("0100007F:") || local.starts_with("00000000:");
        (on_loopback_or_any && local.ends_with(&wanted_suffix) && *state == LISTEN)
            .then(|| inode.parse().ok())
            .flatten()
    })
}
