//! The child-server abstraction every launcher runs through: readiness within a bound, an
//! early exit reported with the log, stop on drop, and the directory kept when a test fails.

use std::process::Command;
use std::time::Duration;

use stack::process::pid_alive;
use stack::server::{ChildServer, Lifecycle, ServerDir, ServerError};

fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

fn lifecycle(ready_within: Duration) -> Lifecycle {
    Lifecycle {
        ready_within,
        probe_every: Duration::from_millis(20),
        ..Lifecycle::default()
    }
}

#[tokio::test]
async fn a_server_that_exits_while_starting_is_reported_with_its_log() {
    let dir = ServerDir::temporary("server-test-").unwrap();
    let mut server = ChildServer::new(
        "crasher",
        dir,
        "crasher.log",
        lifecycle(Duration::from_secs(60)),
    );
    let error = server
        .start(
            shell("echo 'cannot bind: address in use'; exit 3"),
            || async { Err("not yet".to_owned()) },
        )
        .await
        .unwrap_err();
    match error {
        ServerError::ExitedDuringStart { name, log_tail, .. } => {
            assert_eq!(name, "crasher");
            assert!(log_tail.contains("address in use"), "log tail: {log_tail}");
        }
        other => panic!("expected ExitedDuringStart, got {other}"),
    }
    assert!(!server.is_running());
}

#[tokio::test]
async fn a_server_not_ready_within_its_bound_is_killed() {
    let dir = ServerDir::temporary("server-test-").unwrap();
    let mut server = ChildServer::new(
        "sleeper",
        dir,
        "sleeper.log",
        lifecycle(Duration::from_millis(300)),
    );
    server.spawn(shell("exec sleep 60")).unwrap();
    let pid = server.pid().unwrap();
    let error = server
        .wait_ready(|| async { Err("probe says no".to_owned()) })
        .await
        .unwrap_err();
    match error {
        ServerError::NotReady { last, waited, .. } => {
            assert_eq!(last, "probe says no");
            assert!(waited >= Duration::from_millis(300));
        }
        other => panic!("expected NotReady, got {other}"),
    }
    assert!(!pid_alive(pid), "the unready process was killed and reaped");
}

#[tokio::test]
async fn a_ready_server_stops_on_drop_and_its_temporary_directory_goes() {
    let dir = ServerDir::temporary("server-test-").unwrap();
    let path = dir.path().to_owned();
    let mut server = ChildServer::new(
        "sleeper",
        dir,
        "sleeper.log",
        lifecycle(Duration::from_secs(5)),
    );
    let mut probes = 0;
    server
        .start(shell("echo started; exec sleep 60"), || {
            probes += 1;
            let ready = probes >= 3;
            async move {
                if ready {
                    Ok(())
                } else {
                    Err(format!("probe {probes}"))
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(probes, 3, "probed until the probe said yes");
    let pid = server.pid().unwrap();
    assert!(server.is_running());
    assert!(path.join("sleeper.log").exists());
    drop(server);
    assert!(!pid_alive(pid), "stopped on drop");
    assert!(!path.exists(), "the temporary directory is removed on drop");
}

#[tokio::test]
async fn stop_uses_the_lifecycles_signal_and_start_again_appends_to_the_log() {
    let dir = ServerDir::temporary("server-test-").unwrap();
    let log = dir.path().join("trap.log");
    let mut server = ChildServer::new(
        "trap",
        dir,
        "trap.log",
        Lifecycle {
            stop_signal: nix::sys::signal::Signal::SIGUSR1,
            ..lifecycle(Duration::from_secs(5))
        },
    );
    // The shell says which signal reached it; `sleep` in the background keeps it waiting.
    // SIGUSR1 rather than PostgreSQL's SIGINT: a shell started with SIGINT ignored (as a
    // non-interactive shell starts its background jobs) cannot trap it, and the test must
    // pass however it is launched. The mechanism under test is the same for any signal.
    let script = "trap 'echo got USR1; exit 0' USR1; trap 'echo got TERM; exit 0' TERM; \
                  echo up; while true; do sleep 0.05; done";
    // Ready once the shell has said `up` as often as it was started (its traps are set then).
    let up_lines = |starts: usize| {
        let log = log.clone();
        move || {
            let log = log.clone();
            async move {
                match std::fs::read_to_string(&log) {
                    Ok(text) if text.matches("up").count() >= starts => Ok(()),
                    _ => Err("no `up` yet".to_owned()),
                }
            }
        }
    };
    server.start(shell(script), up_lines(1)).await.unwrap();
    server.stop().await;
    assert!(!server.is_running());
    server.start(shell(script), up_lines(2)).await.unwrap();
    server.stop().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("got USR1").count(), 2, "log: {text}");
    assert!(!text.contains("got TERM"), "log: {text}");
}

#[test]
fn a_temporary_directory_is_kept_when_the_test_fails() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let dir = ServerDir::temporary("server-test-").unwrap();
        std::fs::write(dir.path().join("server.log"), "what happened").unwrap();
        sender.send(dir.path().to_owned()).unwrap();
        panic!("a failing test");
    })
    .join();
    assert!(failed.is_err());
    let path = receiver.recv().unwrap();
    let kept = std::fs::read_to_string(path.join("server.log"));
    std::fs::remove_dir_all(&path).unwrap();
    assert_eq!(kept.unwrap(), "what happened");
}

#[test]
fn a_given_directory_is_never_removed() {
    let parent = tempfile::tempdir().unwrap();
    let path = parent.path().join("kept");
    drop(ServerDir::given(&path).unwrap());
    assert!(path.is_dir());
}
