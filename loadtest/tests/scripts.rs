//! The k6 and Artillery scripts: Artillery runs its scenario for a few
//! seconds against the test server and against the edge of a real local stack,
//! and its summary is checked; the k6 scripts (k6 cannot be installed here)
//! must parse as ES modules and carry the same mix and objectives.

use std::path::{Path, PathBuf};
use std::process::Command;

use loadtest::testserver::{Behaviour, TestServer};
use stack::binaries::{self, Binary};
use stack::{Stack, StackConfig};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    crate_dir()
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// `artillery run` of the read-heavy script for 3 s at 40 arrivals/s against
/// `target`, with its JSON report written to `report`.
fn run_artillery(target: &str, token: &str, songs: u64, report: &Path) -> std::process::Output {
    let artillery = workspace_root().join("node_modules/.bin/artillery");
    assert!(
        artillery.exists(),
        "{} is missing: run `npm install` at the workspace root (package.json declares artillery)",
        artillery.display()
    );
    // A test must not hinge on the machine's speed: the request timeout is far above any
    // stall, and the p99 bound equals it, so ensure's latency check runs (and is seen to)
    // but only a failed request can fail the run; the closed-port run shows ensure failing.
    let overrides = r#"{"config":{"phases":[{"duration":3,"arrivalRate":40}],"http":{"timeout":30},
        "plugins":{"ensure":{"thresholds":[{"http.response_time.p99":30000}],"maxErrorRate":0.1}}}}"#;
    Command::new(&artillery)
        .current_dir(workspace_root())
        .env("TARGET", target)
        .env("TOKEN", token)
        .env("SONGS", songs.to_string())
        .env("ARTILLERY_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "1")
        .args(["run", "--overrides", overrides, "--output"])
        .arg(report)
        .arg(crate_dir().join("artillery/read-heavy.yml"))
        .output()
        .unwrap()
}

/// The run passed, its `ensure` checks ran and passed, and its report counts
/// every arrival with reads and writes answered; returns the report's counters.
fn assert_clean_artillery_run(output: &std::process::Output, report: &Path) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "artillery failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Summary report"), "{stdout}");
    let both = format!("{stdout}{stderr}");
    assert!(
        both.contains("ok: http.response_time.p99 < 30000"),
        "ensure did not run:\n{both}"
    );
    assert!(
        both.contains("ok: maxErrorRate < 0.1"),
        "ensure did not run:\n{both}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let counters = report["aggregate"]["counters"].clone();
    let count = |name: &str| counters[name].as_u64().unwrap_or(0);
    assert_eq!(count("vusers.created"), 120, "{counters}");
    assert_eq!(count("vusers.failed"), 0, "{counters}");
    assert!(count("http.codes.200") > 60, "{counters}");
    assert!(
        count("http.codes.201") > 0,
        "no writes in 120 arrivals: {counters}"
    );
    counters
}

#[test]
fn artillery_runs_the_read_heavy_scenario_and_passes_its_checks() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let token = loadtest::workload::mint_token("test-secret", 1, 600).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let report = scratch.path().join("artillery.json");
    let run = |target: &str| run_artillery(target, &token, 1000, &report);
    let output = run(&server.url());
    assert_clean_artillery_run(&output, &report);
    // Writes reached the server with the token.
    assert!(server.comment_count() > 0);

    // Against a closed port every virtual user fails, and ensure fails the run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let failing = run(&format!("http://{closed}"));
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&failing.stdout),
        String::from_utf8_lossy(&failing.stderr)
    );
    assert!(
        !failing.status.success(),
        "artillery passed against nothing:\n{both}"
    );
    assert!(both.contains("fail: maxErrorRate < 0.1"), "{both}");
}

/// The issue's own check: the script against the edge URL of a real local
/// stack (PostgreSQL, Redis, one origin instance, nginx, the edge), with a
/// token signed by the stack's secret, reads and writes answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artillery_runs_against_the_edge_of_a_local_stack() {
    let binaries: Vec<PathBuf> = [Binary::Origin, Binary::EdgeHost]
        .into_iter()
        .map(|binary| {
            binaries::find(binary)
                .or_else(|_| binaries::build(&[binary], false).map(|mut built| built.remove(0)))
                .unwrap_or_else(|error| panic!("the stack needs origin and edge-host: {error}"))
        })
        .collect();
    let run_dir = tempfile::tempdir().unwrap();
    let config = StackConfig {
        instances: 1,
        origin_bin: Some(binaries[0].clone()),
        edge_host_bin: Some(binaries[1].clone()),
        ..StackConfig::for_tests(run_dir.path()).unwrap()
    };
    let stack = Stack::up(config).await.expect("stack up");
    let edge = stack.edge_url().expect("the edge runs");
    let token = loadtest::workload::mint_token(stack.jwt_secret(), 1, 600).unwrap();
    let report = run_dir.path().join("artillery.json");
    // The tiny data set's songs: 1,000.
    let (output, report) = tokio::task::spawn_blocking(move || {
        let output = run_artillery(&edge, &token, 1000, &report);
        (output, report)
    })
    .await
    .unwrap();
    let counters = assert_clean_artillery_run(&output, &report);
    assert_eq!(counters["http.codes.401"].as_u64(), None, "{counters}");
    drop(stack);
}

fn k6_scripts() -> Vec<PathBuf> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("k6"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "js"))
        .collect();
    scripts.sort();
    scripts
}

fn node_check(script: &Path, scratch: &Path) -> std::process::Output {
    let module = scratch.join(script.with_extension("mjs").file_name().unwrap());
    std::fs::copy(script, &module).unwrap();
    Command::new("node")
        .arg("--check")
        .arg(&module)
        .output()
        .expect("node is installed")
}

#[test]
fn k6_scripts_are_valid_es_modules() {
    let scratch = tempfile::tempdir().unwrap();
    let scripts = k6_scripts();
    assert!(scripts.len() >= 2, "{scripts:?}");
    for script in &scripts {
        let output = node_check(script, scratch.path());
        assert!(
            output.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The check can fail: a broken copy is refused.
    let broken = scratch.path().join("broken.js");
    std::fs::write(
        &broken,
        "import http from 'k6/http';\nexport default function ( {\n",
    )
    .unwrap();
    assert!(!node_check(&broken, scratch.path()).status.success());
}

#[test]
fn k6_and_artillery_carry_the_same_mix_and_objectives() {
    let k6 = std::fs::read_to_string(crate_dir().join("k6/read-heavy.js")).unwrap();
    let artillery = std::fs::read_to_string(crate_dir().join("artillery/read-heavy.yml")).unwrap();
    for path in ["/api/songs/", "/comments", "/feed", "/api/comments/"] {
        assert!(
            k6.contains(path) && artillery.contains(path),
            "{path} missing from a script"
        );
    }
    // 25 song, 40 comments, 25 feed, 8 post, 1 patch, 1 delete: cumulative bounds in k6, weights in Artillery.
    for bound in [
        "pick < 25",
        "pick < 65",
        "pick < 90",
        "pick < 98",
        "pick < 99",
    ] {
        assert!(k6.contains(bound), "k6 lacks {bound}");
    }
    for weight in ["weight: 25", "weight: 40", "weight: 8", "weight: 1"] {
        assert!(artillery.contains(weight), "artillery lacks {weight}");
    }
    assert!(k6.contains("p(99)<100") && artillery.contains("\"http.response_time.p99\": 100"));
    assert!(k6.contains("rate<0.001") && artillery.contains("maxErrorRate: 0.1"));
    assert!(k6.contains("ramping-arrival-rate") && artillery.contains("rampTo"));
}
