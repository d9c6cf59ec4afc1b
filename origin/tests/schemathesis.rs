//! The API fuzzed from its own description, on a real local stack (PostgreSQL,
//! Redis, an origin instance, nginx and the edge): schemathesis reads the
//! description the origin serves and sends what it generates, positive and
//! negative inputs and stateful sequences (create, then read, edit, delete,
//! following the description's links), first to the origin and then through
//! the edge. It fails on any 5xx and on any answer the description does not
//! allow (status, content type, headers, body schema), on schema-invalid input
//! that is accepted, and on undeclared methods answered without `Allow`.
//!
//! schemathesis comes from PyPI (`scripts/setup fuzz`). Where it is missing the
//! test says SKIPPED, unless `SCHEMATHESIS_REQUIRED` is set (CI sets it), when
//! that is a failure. `SCHEMATHESIS_SEED` replays another seed (the default is
//! fixed, so a run is reproducible); `SCHEMATHESIS_EXAMPLES` scales the run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use origin::auth::JwtKeys;
use origin::domain::UserId;
use stack::binaries::{self, Binary};
use stack::{Stack, StackConfig};

/// Checks run on every answer: all of schemathesis's, except that valid input
/// must be accepted (a well-formed song id may name no song: 404 is right).
const EXCLUDED_CHECKS: &str = "positive_data_acceptance";
/// Examples per operation against the origin; the edge gets half.
const DEFAULT_EXAMPLES: u32 = 200;
/// The seed of every run unless SCHEMATHESIS_SEED says otherwise.
const DEFAULT_SEED: &str = "20261204";
/// Bounds each run: far beyond what it takes on a slow machine.
const RUN_BOUND: Duration = Duration::from_secs(20 * 60);

fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCHEMATHESIS_BIN") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    let venv = cache.join("song-comments/schemathesis/venv/bin/st");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("st"))
        .find(|path| path.is_file())
}

/// What one run of `st` reported.
struct Run {
    cases: String,
    output: String,
}

/// Runs `st run` against `target` with the description served at `schema`.
async fn fuzz(
    st: &Path,
    schema: &str,
    target: &str,
    token: &str,
    examples: u32,
    extra: &[&str],
    dir: &Path,
) -> Run {
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_owned());
    let mut command = tokio::process::Command::new(st);
    command
        .arg("run")
        .arg(schema)
        .args(["--url", target])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--exclude-checks", EXCLUDED_CHECKS])
        .args(["--max-examples", &examples.to_string(), "--seed", &seed])
        // One worker: hypothesis's lambda descriptions parse source with `ast`,
        // which CPython 3.11 breaks when threads race (SystemError seen here).
        .args(["--request-timeout", "10", "--workers", "1"])
        .args(extra)
        .env("NO_COLOR", "1")
        // Hypothesis keeps its example database in the working directory.
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_BOUND:?} against {target}"))
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    // The summary line: "2449 generated, 2449 passed, 6 skipped".
    let cases = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(|c: char| c.is_ascii_digit()) && line.contains(" generated,"))
        .unwrap_or("(no count)")
        .trim()
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "schemathesis against {target} (seed {seed}, {examples} examples per operation): {cases}, in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems against {target}:\n{text}"
    );
    Run {
        cases,
        output: text,
    }
}

/// Requests the origin answered, by status, from its own metrics.
async fn answered_by_status(origin: &str) -> Vec<(String, u64)> {
    let client = stack::probe::HttpClient::new(Duration::from_secs(10));
    let metrics = client
        .get(&format!("{origin}/metrics"))
        .await
        .expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let mut counts: Vec<(String, u64)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("origin_http_requests_total{"))
    {
        let status = line
            .split("status=\"")
            .nth(1)
            .and_then(|rest| rest.get(..3));
        let count = line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok());
        if let (Some(status), Some(count)) = (status, count) {
            match counts.iter_mut().find(|(s, _)| s == status) {
                Some((_, total)) => *total += count,
                None => counts.push((status.to_owned(), count)),
            }
        }
    }
    counts.sort();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_holds_its_description_under_generated_input_with_no_server_error() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("SCHEMATHESIS_REQUIRED").is_none(),
            "schemathesis is required (SCHEMATHESIS_REQUIRED) but missing: run `scripts/setup fuzz`"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: API fuzzing: schemathesis is not installed (run `scripts/setup fuzz`)"
        );
        return;
    };
    let examples: u32 = std::env::var("SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_EXAMPLES);
    let run_dir = tempfile::tempdir().unwrap();
    let built = binaries::build(&[Binary::Origin, Binary::EdgeHost], false)
        .unwrap_or_else(|error| panic!("the fuzzing test needs origin and edge-host: {error}"));
    let config = StackConfig {
        instances: 1,
        cpu_per_instance: None,
        origin_bin: Some(built[0].clone()),
        edge_host_bin: Some(built[1].clone()),
        ..StackConfig::for_tests(run_dir.path()).unwrap()
    };
    let stack = Stack::up(config).await.expect("stack up");
    let origin = stack.instance_urls()[0].clone();
    let edge = stack.edge_url().expect("the edge runs");
    // User 1 exists in every seeded data set; the runs write as that user.
    let token = JwtKeys::new(stack.jwt_secret().as_bytes()).issue(UserId::new(1).unwrap(), 3600);
    let schema = format!("{origin}/openapi.json");
    let work = run_dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();

    let at_origin = fuzz(&st, &schema, &origin, &token, examples, &[], &work).await;
    let statuses = answered_by_status(&origin).await;
    // Only /api is the edge's to serve; health and the description are the origin's.
    let through_edge = fuzz(
        &st,
        &schema,
        &edge,
        &token,
        (examples / 2).max(1),
        &["--include-path-regex", "^/api/"],
        &work,
    )
    .await;
    let all_statuses = answered_by_status(&origin).await;
    stack.down().await;

    let _ = writeln!(
        std::io::stderr(),
        "origin answered, by status, to the origin run: {statuses:?}; after both runs: {all_statuses:?}"
    );
    for (status, count) in &all_statuses {
        assert!(
            !status.starts_with('5'),
            "the origin answered {status} {count} times"
        );
    }
    // The stateful sequences reached the database: comments were made, edited and deleted.
    for wanted in ["201", "204"] {
        assert!(
            all_statuses
                .iter()
                .any(|(status, count)| status == wanted && *count > 0),
            "no {wanted} among {all_statuses:?}"
        );
    }
    for run in [&at_origin, &through_edge] {
        assert!(run.cases.contains("generated"), "{}", run.output);
    }
}
