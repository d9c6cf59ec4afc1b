//! HTTPS targets: the generator against a local TLS test server on
//! 127.0.0.1 whose certificate comes from a throwaway CA made with the
//! `openssl` command in a temporary directory. Trusted through `--ca-file`
//! it runs clean over kept-alive connections; with the built-in web roots the
//! handshake fails and every request counts as a connection error; with
//! `--insecure` it runs clean again.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use loadtest::client::{Target, TlsOptions};
use loadtest::results::RunResults;
use loadtest::runner::{LoadModel, RunOptions, run};
use loadtest::scenario::Scenario;
use loadtest::schedule::Schedule;
use loadtest::testserver::{Behaviour, TestServer, TlsFiles};
use loadtest::workload::Workload;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for IP 127.0.0.1 it signed
/// (`cert.pem`, `key.pem`), P-256, valid for two days.
fn make_certificates(dir: &Path) -> TlsFiles {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
            &["-days", "2", "-subj", "/CN=loadtest test CA"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &["-keyout", "key.pem", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    TlsFiles {
        certificate: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

fn plain_get() -> Scenario {
    Scenario::from_toml(
        r#"
        name = "tls-get"
        arrival = { rate = 1.0, duration = "1s" }
        mix = [{ kind = "get", path = "/", weight = 1 }]
        "#,
    )
    .unwrap()
}

/// An open-model run whose outcome does not depend on the machine's speed:
/// every arrival finds a free slot (at most as many in flight as there are
/// requests) and the timeout is far above any stall, so the counts below are
/// exact on a loaded machine too.
async fn run_https(server: &TestServer, tls: &TlsOptions, rate: f64) -> RunResults {
    let scenario = plain_get();
    let duration = Duration::from_secs(2);
    run(RunOptions {
        scenario: scenario.name.clone(),
        target: Target::resolve_with(&server.url(), tls).await.unwrap(),
        model: LoadModel::Open {
            schedule: Schedule::constant(rate, duration),
            max_in_flight: (rate * duration.as_secs_f64()) as usize,
        },
        timeout: Duration::from_secs(30),
        workload: Arc::new(Workload::new(&scenario, None).unwrap()),
        thresholds: Vec::new(),
        progress: None,
        seed: 5,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_ca_file_runs_clean_over_kept_alive_connections() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_certificates(dir.path());
    let server = TestServer::start_tls(Behaviour::default(), &files).unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let trusted = TlsOptions {
        ca_file: Some(dir.path().join("ca.pem")),
        insecure: false,
    };
    let results = run_https(&server, &trusted, 300.0).await;
    assert_eq!(results.offered, 600);
    assert_eq!(results.dropped, 0);
    assert_eq!(results.requests, 600);
    assert_eq!(
        results.overall.errors.total(),
        0,
        "{:?}",
        results.overall.errors
    );
    assert_eq!(results.overall.ok, 600);

    // Keep-alive holds over TLS: four closed-loop slots send back to back,
    // each over the one connection (one handshake) it opened.
    let before = server.connections();
    let scenario = plain_get();
    let closed = run(RunOptions {
        scenario: scenario.name.clone(),
        target: Target::resolve_with(&server.url(), &trusted).await.unwrap(),
        model: LoadModel::Closed {
            connections: 4,
            duration: Duration::from_secs(1),
        },
        timeout: Duration::from_secs(30),
        workload: Arc::new(Workload::new(&scenario, None).unwrap()),
        thresholds: Vec::new(),
        progress: None,
        seed: 6,
    })
    .await;
    assert_eq!(
        closed.overall.errors.total(),
        0,
        "{:?}",
        closed.overall.errors
    );
    let handshakes = server.connections() - before;
    assert!(
        (1..=4).contains(&handshakes),
        "{handshakes} TLS handshakes for 4 closed-loop slots"
    );
    assert!(
        closed.requests > handshakes,
        "{} requests on {handshakes} connections: none was reused",
        closed.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_the_handshake_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_certificates(dir.path());
    let server = TestServer::start_tls(Behaviour::default(), &files).unwrap();
    // The web PKI roots do not know our CA: every request is a connection error.
    let refused = run_https(&server, &TlsOptions::default(), 50.0).await;
    assert_eq!(refused.requests, 100);
    assert_eq!(
        refused.overall.errors.connection, 100,
        "{:?}",
        refused.overall.errors
    );
    assert_eq!(server.connections(), 0, "no handshake may complete");
    // --insecure: any certificate, so the same server answers.
    let insecure = TlsOptions {
        ca_file: None,
        insecure: true,
    };
    let accepted = run_https(&server, &insecure, 50.0).await;
    assert_eq!(accepted.requests, 100);
    assert_eq!(
        accepted.overall.errors.total(),
        0,
        "{:?}",
        accepted.overall.errors
    );
    // A CA that did not sign the server's certificate is no better than none.
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path());
    let wrong_ca = TlsOptions {
        ca_file: Some(other.path().join("ca.pem")),
        insecure: false,
    };
    let wrong = run_https(&server, &wrong_ca, 50.0).await;
    assert_eq!(wrong.overall.errors.connection, 100);
}

fn cli_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--threads", "1", "run", "--quiet"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_line_takes_https_targets_with_ca_file_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_certificates(dir.path());
    let server = TestServer::start_tls(Behaviour::default(), &files).unwrap();
    let url = server.url();
    let out = dir.path().join("results.json");
    let ca = dir.path().join("ca.pem");
    // Its own scenario: the built-in one carries a latency threshold, and
    // the exit codes asserted here must not depend on the machine's speed.
    let scenario = dir.path().join("tls-get.toml");
    std::fs::write(
        &scenario,
        r#"
        name = "tls-get"
        arrival = { rate = 200.0, duration = "1s" }
        max_in_flight = 200
        timeout = "30s"
        mix = [{ kind = "get", path = "/", weight = 1 }]
        thresholds = ["errors < 0.1%"]
        "#,
    )
    .unwrap();
    let common = [scenario.to_str().unwrap(), "--out"];
    let trusted = cli_run(
        &[
            &["--target", &url, "--ca-file", ca.to_str().unwrap()][..],
            &common,
            &[out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&trusted.stdout),
        String::from_utf8_lossy(&trusted.stderr)
    );
    let results = RunResults::load(&out).unwrap();
    assert_eq!((results.requests, results.overall.ok), (200, 200));
    assert!(results.target.starts_with("https://127.0.0.1:"));

    let untrusted = cli_run(&[&["--target", &url][..], &common, &[out.to_str().unwrap()]].concat());
    assert_eq!(untrusted.status.code(), Some(99), "threshold must fail");
    assert!(String::from_utf8_lossy(&untrusted.stdout).contains("connection 200"));

    let insecure = cli_run(
        &[
            &["--target", &url, "--insecure"][..],
            &common,
            &[out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(insecure.status.code(), Some(0));

    let both = cli_run(
        &[
            &[
                "--target",
                &url,
                "--insecure",
                "--ca-file",
                ca.to_str().unwrap(),
            ][..],
            &common,
            &[out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(
        both.status.code(),
        Some(2),
        "--insecure and --ca-file conflict"
    );
}
