//! The `edge-host` binary: prints its address, serves, stops on SIGTERM, and shares
//! connections between its serving threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn edge_host_prints_its_address_serves_and_stops_on_sigterm() {
    let (mut child, address) = start_edge_host(&[]);
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-cache: bypass"),
        "{response}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            waited < 100,
            "edge-host did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    assert!(status.success(), "graceful exit, got {status}");
}

#[test]
fn a_bad_behaviour_configuration_is_refused_at_start_with_the_reason() {
    let stderr = refused_at_start(&["--var", "behaviours=/static/* origin=nowhere"]);
    assert!(
        stderr.contains("behaviour `/static/* origin=nowhere`")
            && stderr.contains("no origin group named `nowhere`"),
        "{stderr}"
    );
}

/// What edge-host alone knows is wrong with a configuration, said at start:
/// a variable the edge does not read, an origin its client cannot reach, a
/// header limit it cannot forward; and what edge-core refuses, as everywhere.
#[test]
fn configurations_edge_host_cannot_serve_are_refused_at_start_with_the_reason() {
    for (var, reason) in [
        (
            "max_ttl=60",
            "unknown variable `max_ttl`; the edge reads origins, default_ttl_secs, max_ttl_secs",
        ),
        (
            "origins=https://lb.example",
            "origin `https://lb.example`: edge-host reaches origins over plain http:// only",
        ),
        (
            "max_header_bytes=131072",
            "variable `max_header_bytes` = 131072 is more than edge-host can pass on",
        ),
        (
            "default_ttl_secs=7200",
            "variable `default_ttl_secs` = 7200 is above `max_ttl_secs` = 3600",
        ),
    ] {
        let stderr = refused_at_start(&["--var", var]);
        assert!(stderr.contains(reason), "--var {var}: {stderr}");
    }
}

#[test]
fn more_instances_than_the_pool_holds_are_refused_at_start() {
    let stderr = refused_at_start(&["--max-instances", "257"]);
    assert!(
        stderr.contains("at most 256 instances (the engine's pool), not 257 (0 already held"),
        "{stderr}"
    );
}

/// Runs `edge-host` with one origin and `args`, which it must refuse: its stderr.
fn refused_at_start(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_edge-host"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--var", "origins=http://127.0.0.1:9"])
        .args(args)
        .output()
        .expect("edge-host runs");
    assert!(!output.status.success(), "edge-host started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts `edge-host` with `args`, returns it and its address.
fn start_edge_host(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-host"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--var",
            "origins=http://127.0.0.1:9",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("edge-host starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, address)
}

/// The names of the process's serving threads, sorted.
fn serving_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task list")
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("edge-serve-"))
        .collect();
    names.sort();
    names
}

#[test]
fn connections_are_shared_by_the_serving_threads_and_max_instances_caps_them() {
    let (mut child, address) = start_edge_host(&["--serving-threads", "2", "--max-instances", "2"]);
    assert_eq!(
        serving_threads(child.id()),
        ["edge-serve-0", "edge-serve-1"]
    );
    // Connections go to the threads in turn: several at once, every one answered.
    let mut streams: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(&address).expect("connect"))
        .collect();
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    for mut stream in streams {
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // One instance at most (global collapsing): one serving thread, whatever is asked.
    let (mut child, _) = start_edge_host(&["--serving-threads", "2", "--max-instances", "1"]);
    assert_eq!(serving_threads(child.id()), ["edge-serve-0"]);
    child.kill().unwrap();
    child.wait().unwrap();
}
