//! The `edge-host` binary: prints its address, serves, and stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn edge_host_prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-host"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--var",
            "origins=http://127.0.0.1:9",
        ])
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
    let output = Command::new(env!("CARGO_BIN_EXE_edge-host"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--var",
            "origins=http://127.0.0.1:9",
            "--var",
            "behaviours=/static/* origin=nowhere",
        ])
        .output()
        .expect("edge-host runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("behaviour `/static/* origin=nowhere`")
            && stderr.contains("no origin group named `nowhere`"),
        "{stderr}"
    );
}
