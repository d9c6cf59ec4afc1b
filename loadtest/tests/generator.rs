//! The generator against a test server that stalls on purpose: corrected
//! percentiles show the stall, achieved rate follows the offered rate, dropped
//! iterations are counted, thresholds set the exit code, merging is lossless,
//! and every acknowledged write is recorded.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use loadtest::client::Target;
use loadtest::results::{RunResults, decode_histogram};
use loadtest::runner::{LoadModel, RunOptions, run};
use loadtest::scenario::Scenario;
use loadtest::schedule::Schedule;
use loadtest::testserver::{Behaviour, TestServer};
use loadtest::workload::Workload;

fn plain_get_scenario() -> Scenario {
    Scenario::from_toml(
        r#"
        name = "plain-get"
        arrival = { rate = 1.0, duration = "1s" }
        mix = [{ kind = "get", path = "/", weight = 1 }]
        "#,
    )
    .unwrap()
}

async fn run_against(server: &TestServer, scenario: &Scenario, model: LoadModel) -> RunResults {
    run(RunOptions {
        scenario: scenario.name.clone(),
        target: Target::resolve(&server.url()).await.unwrap(),
        model,
        timeout: Duration::from_secs(2),
        workload: Arc::new(Workload::new(scenario, Some("test-secret")).unwrap()),
        thresholds: scenario.thresholds.clone(),
        progress: None,
        seed: 3,
    })
    .await
}

fn open(rate: f64, seconds: u64, max_in_flight: usize) -> LoadModel {
    LoadModel::Open {
        schedule: Schedule::constant(rate, Duration::from_secs(seconds)),
        max_in_flight,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_corrected_percentiles_but_hides_from_a_closed_loop() {
    let stall = Some((Duration::from_millis(1000), Duration::from_millis(500)));
    let scenario = plain_get_scenario();

    let server = TestServer::start(Behaviour {
        stall,
        ..Behaviour::default()
    })
    .unwrap();
    let corrected = run_against(&server, &scenario, open(400.0, 3, 512)).await;
    drop(server);

    let server = TestServer::start(Behaviour {
        stall,
        ..Behaviour::default()
    })
    .unwrap();
    let closed = run_against(
        &server,
        &scenario,
        LoadModel::Closed {
            connections: 1,
            duration: Duration::from_secs(3),
        },
    )
    .await;
    drop(server);

    let (open_latency, closed_latency) = (&corrected.overall.latency, &closed.overall.latency);
    eprintln!(
        "open model: {open_latency:?}\nclosed loop: {closed_latency:?} over {} requests",
        closed.requests
    );
    // A sixth of the open run's arrivals fell in the stall, each waiting for its end.
    assert!(
        open_latency.p90_ms >= 100.0,
        "corrected p90 {} ms hides the stall",
        open_latency.p90_ms
    );
    assert!(
        open_latency.p99_ms >= 300.0,
        "corrected p99 {} ms hides the stall",
        open_latency.p99_ms
    );
    assert!(open_latency.max_ms >= 400.0);
    assert_eq!(corrected.overall.errors.total(), 0);
    // The timeline places the stall: the arrivals of 1.0-1.5 s all complete
    // at its end, so second 1's p99 is about the stall's length (its p50 is
    // not: the arrivals of 1.5-2 s are quick); the seconds around it are quick.
    let timeline = &corrected.timeline;
    assert!(
        timeline[1].p99_ms() >= 300.0 && timeline[1].mean_latency_ms() >= 50.0,
        "second 1: {:?}",
        timeline[1]
    );
    for quiet in [0, 2] {
        assert!(
            timeline[quiet].p99_ms() < timeline[1].p99_ms() / 2.0 && timeline[quiet].p50_ms() > 0.0,
            "second {quiet}: {:?} against second 1: {:?}",
            timeline[quiet],
            timeline[1]
        );
    }
    assert_eq!(corrected.timeline_histograms.len(), timeline.len());
    // The closed loop sent one request into the stall and waited: only its max knows.
    assert!(
        closed_latency.max_ms >= 400.0,
        "closed-loop max {} ms",
        closed_latency.max_ms
    );
    // With more than a few hundred requests, the one that waited sits above
    // the p99: the closed loop's p99 stays under half the stall.
    assert!(
        closed.requests > 300,
        "closed loop made only {} requests",
        closed.requests
    );
    assert!(
        closed_latency.p99_ms < 250.0,
        "closed-loop p99 {} ms",
        closed_latency.p99_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn achieved_rate_follows_offered_rate() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let results = run_against(&server, &plain_get_scenario(), open(1000.0, 2, 256)).await;
    assert_eq!(results.offered, 2000);
    assert_eq!(results.dropped, 0);
    assert_eq!(results.requests, 2000);
    assert_eq!(results.overall.errors.total(), 0);
    let deviation = (results.achieved_rate - results.offered_rate).abs() / results.offered_rate;
    assert!(
        deviation < 0.02,
        "offered {} achieved {}",
        results.offered_rate,
        results.achieved_rate
    );
    // Each second of the schedule offers the rate, and every arrival completes somewhere in
    // the timeline (in which second depends on the machine's speed, so it is not asserted).
    for second in &results.timeline[..2] {
        assert_eq!(second.offered, 1000, "timeline second {second:?}");
    }
    let completed: u64 = results.timeline.iter().map(|second| second.completed).sum();
    assert_eq!(completed, 2000);
    // The service answers at once: the median is measured, and far from the timeout.
    let latency = &results.overall.latency;
    assert!(
        latency.p50_ms > 0.0 && latency.p50_ms < 1000.0,
        "{latency:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterations_are_dropped_when_every_slot_is_busy() {
    let server = TestServer::start(Behaviour {
        delay: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .unwrap();
    // Two slots at 50 ms each carry at most ~40/s of the 200/s offered.
    let mut scenario = plain_get_scenario();
    scenario.thresholds = vec!["dropped < 1%".parse().unwrap()];
    let results = run_against(&server, &scenario, open(200.0, 2, 2)).await;
    assert_eq!(results.offered, 400);
    assert_eq!(results.requests + results.dropped, results.offered);
    assert!(results.dropped > 250, "dropped {}", results.dropped);
    // At most two in flight for 50 ms each: about 80 in 2 s on any machine (a slow one only
    // completes fewer).
    assert!(
        results.requests >= 1 && results.requests <= 100,
        "completed {}",
        results.requests
    );
    assert!(!results.passed());
    let dropped_per_second: u64 = results.timeline.iter().map(|second| second.dropped).sum();
    assert_eq!(dropped_per_second, results.dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_recorded() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let mut scenario = Scenario::read_heavy(100, 20);
    // Heavier on writes than the default so that a short run has plenty.
    for entry in &mut scenario.mix {
        if entry.kind.is_write() {
            entry.weight *= 5;
        }
    }
    let results = run_against(&server, &scenario, open(500.0, 1, 128)).await;
    assert_eq!(
        results.overall.errors.total(),
        0,
        "{:?}",
        results.overall.errors
    );
    assert!(
        results.writes.len() > 100,
        "only {} writes",
        results.writes.len()
    );
    for write in &results.writes {
        assert!(
            server.has_comment(&write.id) || results.deleted.contains(&write.id),
            "acknowledged write {} missing on the server",
            write.id
        );
    }
    assert!(!results.deleted.is_empty());
    assert_eq!(
        server.comment_count(),
        results.writes.len() - results.deleted.len()
    );
    for name in ["song", "comments", "feed", "post_comment"] {
        assert!(
            results.endpoints.contains_key(name),
            "no {name} in {:?}",
            results.endpoints.keys()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_are_counted_with_retry_after_and_writes_apart() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let scenario = Scenario::from_toml(
        r#"
        name = "unavailable"
        arrival = { rate = 1.0, duration = "1s" }
        mix = [
            { name = "shed", kind = "get", path = "/unavailable", weight = 1 },
            { name = "missing", kind = "get", path = "/missing", weight = 1 },
            { kind = "post_comment", weight = 2 },
        ]
        "#,
    )
    .unwrap();
    let results = run_against(&server, &scenario, open(400.0, 1, 64)).await;
    assert_eq!(results.requests, 400);
    let shed = &results.endpoints["shed"].errors;
    let status = shed.statuses[&503];
    assert!(status.count > 50, "{shed:?}");
    assert_eq!(
        status.retry_after, status.count,
        "every 503 says Retry-After"
    );
    let missing = &results.endpoints["missing"].errors;
    assert_eq!(missing.statuses[&404].retry_after, 0);
    assert_eq!(missing.status_4xx, missing.statuses[&404].count);
    let overall = &results.overall.errors;
    assert_eq!(overall.status_5xx, status.count);
    assert!(
        overall.describe().starts_with("503 ×") || overall.describe().starts_with("404 ×"),
        "{}",
        overall.describe()
    );
    // The timeline counts writes (all 201 here) apart from reads (all failing).
    let writes: u64 = results.timeline.iter().map(|second| second.writes).sum();
    let write_errors: u64 = results
        .timeline
        .iter()
        .map(|second| second.write_errors)
        .sum();
    let errors: u64 = results.timeline.iter().map(|second| second.errors).sum();
    assert_eq!(writes, results.endpoints["post_comment"].requests);
    assert_eq!(write_errors, 0);
    assert_eq!(errors, overall.total());
    assert_eq!(writes as usize, results.writes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_results_is_lossless() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let scenario = plain_get_scenario();
    let first = run_against(&server, &scenario, open(300.0, 1, 64)).await;
    let second = run_against(&server, &scenario, open(200.0, 1, 64)).await;
    let merged = RunResults::merge(&[first.clone(), second.clone()]).unwrap();
    assert_eq!(merged.requests, first.requests + second.requests);
    assert_eq!(merged.merged_runs, 2);
    let mut combined = decode_histogram(&first.overall.latency_histogram).unwrap();
    combined
        .add(decode_histogram(&second.overall.latency_histogram).unwrap())
        .unwrap();
    let merged_histogram = decode_histogram(&merged.overall.latency_histogram).unwrap();
    assert_eq!(merged_histogram, combined);
    assert_eq!(
        merged.overall.latency.max_ms,
        first
            .overall
            .latency
            .max_ms
            .max(second.overall.latency.max_ms)
    );
    assert!((merged.offered_rate - 500.0).abs() < 1e-6);
    // Per-second percentiles come from the merged per-second histograms:
    // a run merged with itself keeps them exactly.
    let doubled = RunResults::merge(&[first.clone(), first.clone()]).unwrap();
    for (merged_second, second) in doubled.timeline.iter().zip(&first.timeline) {
        assert_eq!(merged_second.completed, 2 * second.completed);
        assert_eq!(
            (merged_second.p50_us, merged_second.p99_us),
            (second.p50_us, second.p99_us)
        );
    }
    assert_eq!(doubled.timeline_histograms.len(), doubled.timeline.len());
    // Through the command line as well, and a merge of one file is the file.
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("merged.json"),
    );
    first.save(&a).unwrap();
    second.save(&b).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let from_cli = RunResults::load(&out).unwrap();
    // (Summaries are floats that JSON may round in the last bit; the histograms are exact.)
    assert_eq!(
        from_cli.overall.latency_histogram,
        merged.overall.latency_histogram
    );
    assert_eq!(
        from_cli.overall.service_time_histogram,
        merged.overall.service_time_histogram
    );
    assert_eq!(
        (from_cli.requests, from_cli.overall.ok),
        (merged.requests, merged.overall.ok)
    );
    let single = RunResults::merge(std::slice::from_ref(&first)).unwrap();
    assert_eq!(single.overall, first.overall);
}

#[test]
fn thresholds_set_the_exit_code() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let run = |path: &str, threshold: &str| {
        let dir = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args([
                "--threads",
                "1",
                "run",
                "--quiet",
                "--target",
                &server.url(),
                "--get",
                path,
            ])
            .args([
                "--rate",
                "200",
                "--duration",
                "1s",
                "--threshold",
                threshold,
                "--out",
            ])
            .arg(dir.path().join("results.json"))
            .output()
            .unwrap()
    };
    let passing = run("/", "p99 < 1s");
    assert_eq!(
        passing.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passing.stdout)
    );
    let failing = run("/missing", "errors < 0.1%");
    assert_eq!(
        failing.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&failing.stdout)
    );
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("4xx 200"),
        "{stdout}"
    );
    assert!(stdout.contains("errors by status: 404 ×200"), "{stdout}");
    let bad = run("/", "p99 under 50ms");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a malformed threshold is a usage error"
    );
}
