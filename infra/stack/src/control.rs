//! How `stack` commands in another terminal reach a running `stack up`: a state file with pids, and a Unix socket for commands.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::process::{pid_alive, pid_of};
use crate::stack::StackState;

/// Why a command could not be delivered or the state not read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no running stack: {0} does not exist (start one with `stack up`)")]
    NoState(PathBuf),
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid state file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "unknown command `{0}`; expected scale N, kill-instance I, restart-instance I, redis stop|start, postgres restart, status or down"
    )]
    UnknownCommand(String),
    #[error("the stack answered: {0}")]
    Failed(String),
}

/// What `stack up` leaves for other terminals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// The `stack up` process that owns everything.
    pub owner_pid: u32,
    pub socket: PathBuf,
    pub stack: StackState,
}

/// A command for the running stack, one line of text on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlCommand {
    Scale(usize),
    KillInstance(usize),
    RestartInstance(usize),
    StopRedis,
    StartRedis,
    /// Restart the database, PostgreSQL or Cassandra.
    RestartDatabase,
    Status,
    Down,
}

impl ControlCommand {
    pub fn parse(line: &str) -> Result<Self, ControlError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |text: &str| {
            text.parse::<usize>()
                .map_err(|_| ControlError::UnknownCommand(line.to_owned()))
        };
        match words.as_slice() {
            ["scale", n] => Ok(Self::Scale(number(n)?)),
            ["kill-instance", i] => Ok(Self::KillInstance(number(i)?)),
            ["restart-instance", i] => Ok(Self::RestartInstance(number(i)?)),
            ["redis", "stop"] => Ok(Self::StopRedis),
            ["redis", "start"] => Ok(Self::StartRedis),
            ["database" | "postgres", "restart"] => Ok(Self::RestartDatabase),
            ["status"] => Ok(Self::Status),
            ["down"] => Ok(Self::Down),
            _ => Err(ControlError::UnknownCommand(line.to_owned())),
        }
    }

    pub fn to_line(&self) -> String {
        match self {
            Self::Scale(n) => format!("scale {n}"),
            Self::KillInstance(i) => format!("kill-instance {i}"),
            Self::RestartInstance(i) => format!("restart-instance {i}"),
            Self::StopRedis => "redis stop".to_owned(),
            Self::StartRedis => "redis start".to_owned(),
            Self::RestartDatabase => "database restart".to_owned(),
            Self::Status => "status".to_owned(),
            Self::Down => "down".to_owned(),
        }
    }
}

pub fn state_path(root: &Path) -> PathBuf {
    root.join("stack-state.json")
}

pub fn socket_path(root: &Path) -> PathBuf {
    root.join("stack.sock")
}

pub fn write_state(root: &Path, state: &StateFile) -> Result<(), ControlError> {
    let path = state_path(root);
    let staged = root.join("stack-state.json.next");
    let text = serde_json::to_string_pretty(state).map_err(|source| ControlError::Parse {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&staged, text).map_err(|source| ControlError::Io {
        path: staged.clone(),
        source,
    })?;
    std::fs::rename(&staged, &path).map_err(|source| ControlError::Io { path, source })
}

pub fn read_state(root: &Path) -> Result<StateFile, ControlError> {
    let path = state_path(root);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ControlError::NoState(path));
        }
        Err(source) => return Err(ControlError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| ControlError::Parse { path, source })
}

pub fn remove_state(root: &Path) {
    let _ = std::fs::remove_file(state_path(root));
    let _ = std::fs::remove_file(socket_path(root));
}

/// Sends one command to the running `stack up` and returns its answer.
pub async fn send(root: &Path, command: &ControlCommand) -> Result<String, ControlError> {
    let state = read_state(root)?;
    let io_error = |source| ControlError::Io {
        path: state.socket.clone(),
        source,
    };
    let mut stream = UnixStream::connect(&state.socket).await.map_err(io_error)?;
    stream
        .write_all(format!("{}\n", command.to_line()).as_bytes())
        .await
        .map_err(io_error)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .map_err(io_error)?;
    let answer = answer.trim_end().to_owned();
    match answer.strip_prefix("error: ") {
        Some(message) => Err(ControlError::Failed(message.to_owned())),
        None => Ok(answer.strip_prefix("ok: ").unwrap_or(&answer).to_owned()),
    }
}

/// Stops a stack whose `stack up` process is gone: signals every recorded pid, SIGKILLs
/// what lingers, removes the cgroups. Returns how many processes were still running.
pub fn stop_from_state(state: &StateFile) -> usize {
    let mut running: Vec<(String, u32)> = state
        .stack
        .processes
        .iter()
        .filter(|(_, pid)| pid_alive(*pid))
        .cloned()
        .collect();
    if pid_alive(state.owner_pid) {
        running.insert(0, ("stack up".to_owned(), state.owner_pid));
    }
    let count = running.len();
    for (name, pid) in &running {
        // PostgreSQL treats SIGTERM as a smart shutdown that waits for clients; SIGINT is fast.
        let signal = if name == "postgres" {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        let _ = signal::kill(pid_of(*pid), signal);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && running.iter().any(|(_, pid)| pid_alive(*pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, pid) in &running {
        if pid_alive(*pid) {
            eprintln!("[stack] {name} (pid {pid}) ignored SIGTERM; sending SIGKILL");
            let _ = signal::kill(pid_of(*pid), Signal::SIGKILL);
        }
    }
    for group in &state.stack.cgroups {
        crate::cgroup::remove_group(group);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_their_line() {
        for command in [
            ControlCommand::Scale(3),
            ControlCommand::KillInstance(2),
            ControlCommand::RestartInstance(1),
            ControlCommand::StopRedis,
            ControlCommand::StartRedis,
            ControlCommand::RestartDatabase,
            ControlCommand::Status,
            ControlCommand::Down,
        ] {
            assert_eq!(ControlCommand::parse(&command.to_line()).unwrap(), command);
        }
    }

    #[test]
    fn postgres_restart_still_restarts_the_database() {
        assert_eq!(
            ControlCommand::parse("postgres restart").unwrap(),
            ControlCommand::RestartDatabase
        );
    }

    #[test]
    fn malformed_commands_are_named() {
        for line in ["scale", "scale many", "redis restart", "reboot", ""] {
            let error = ControlCommand::parse(line).unwrap_err();
            assert!(error.to_string().contains(&format!("`{line}`")), "{error}");
        }
    }
}
