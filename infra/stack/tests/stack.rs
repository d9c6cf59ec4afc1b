//! The whole stack with real PostgreSQL, Redis, origin instances, nginx and the edge: caching, faults, scaling, and a clean `down`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::GetStream;
use stack::binaries::{self, Binary};
use stack::ports::is_listening;
use stack::probe::HttpClient;
use stack::process::pid_alive;
use stack::{Stack, StackConfig};

/// The longest the GET stream may run: far beyond the sequence on any machine; reaching it
/// fails the test (see [`GetStream::stop`]).
const STREAM_BOUND: Duration = Duration::from_secs(300);
/// The longest wait for the stream's progress between two steps.
const STEP_PATIENCE: Duration = Duration::from_secs(60);

/// Builds `origin` and `edge-host` from the current source (a no-op when up to date) and
/// returns a test configuration that uses them. Fails loudly when they cannot be built.
fn test_config(run_dir: &std::path::Path) -> StackConfig {
    let built = binaries::build(&[Binary::Origin, Binary::EdgeHost], false)
        .unwrap_or_else(|error| panic!("the stack tests need origin and edge-host: {error}"));
    StackConfig {
        instances: 2,
        origin_bin: Some(built[0].clone()),
        edge_host_bin: Some(built[1].clone()),
        ..StackConfig::for_tests(run_dir).unwrap()
    }
}

fn assert_nothing_left(pids: &[(String, u32)], ports: &[u16]) {
    for (name, pid) in pids {
        assert!(!pid_alive(*pid), "{name} (pid {pid}) still runs");
    }
    for port in ports {
        assert!(
            !is_listening(*port),
            "something still listens on port {port}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_caches_at_the_edge_survives_a_killed_instance_and_scales() {
    let run_dir = tempfile::tempdir().unwrap();
    let mut stack = Stack::up(test_config(run_dir.path()))
        .await
        .expect("stack up");
    let edge = stack.edge_url().expect("the edge runs");
    let nginx = stack.nginx_url();
    assert_eq!(stack.instance_urls().len(), 2);
    let client = HttpClient::new(Duration::from_secs(10));

    // A GET through the edge reaches an instance, and the second one is served from cache.
    let url = format!("{edge}/api/songs/1/comments");
    let first = client.get(&url).await.unwrap();
    assert_eq!(first.status, 200, "body: {:?}", first.body);
    assert_ne!(first.header("x-cache"), Some("HIT"));
    let second = client.get(&url).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("x-cache"),
        Some("HIT"),
        "headers: {:?}",
        second.headers
    );

    // Every instance answers on its own URL.
    for instance in stack.instance_urls() {
        let ready = client.get(&format!("{instance}/readyz")).await.unwrap();
        assert_eq!(ready.status, 200, "{instance} not ready");
    }

    // A stream of GETs at nginx (so every one reaches an origin) across the kill, the
    // restart and the scaling. It runs until stopped; between steps the test waits for the
    // stream to complete more GETs instead of sleeping, so every step happens under load on
    // any machine.
    let base = nginx.clone();
    let stream = GetStream::start(
        4,
        Arc::new(move |n| format!("{base}/api/songs/{}/comments", n % 20 + 1)),
        STREAM_BOUND,
    );
    let between_steps = 50;
    stream.wait_for(between_steps, STEP_PATIENCE).await;
    stack.kill_instance(1).unwrap();
    stream.wait_for(between_steps, STEP_PATIENCE).await;
    stack.restart_instance(1).await.unwrap();
    stream.wait_for(between_steps, STEP_PATIENCE).await;

    // Scale 2 -> 3 -> 2 under the same stream.
    stack.scale_to(3).await.unwrap();
    assert_eq!(stack.instance_urls().len(), 3);
    stream.wait_for(between_steps, STEP_PATIENCE).await;
    stack.scale_to(2).await.unwrap();
    assert_eq!(stack.instance_urls().len(), 2);
    stream.wait_for(between_steps, STEP_PATIENCE).await;
    let report = stream.stop().await;
    assert!(
        report.failures.is_empty(),
        "{} of {} GETs failed across kill, restart and scaling; first: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        report.failures.first()
    );
    println!(
        "{} GETs through a kill, a restart and 2->3->2 scaling; none failed; {} re-sent on a keep-alive connection closed by a reload",
        report.ok, report.retried
    );

    // GETs through the edge still work after all that.
    let after = client
        .get(&format!("{edge}/api/songs/2/comments"))
        .await
        .unwrap();
    assert_eq!(after.status, 200);

    // `down` leaves no process and no listening port behind.
    let state = stack.state();
    assert!(
        state.processes.len() >= 5,
        "state lists too few processes: {:?}",
        state.processes
    );
    stack.down().await;
    assert_nothing_left(&state.processes, &state.ports);
    for group in &state.cgroups {
        assert!(!group.exists(), "cgroup {} left behind", group.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stack_stops_everything() {
    let run_dir = tempfile::tempdir().unwrap();
    let config = StackConfig {
        instances: 1,
        redis: false,
        edge: false,
        ..test_config(run_dir.path())
    };
    let mut stack = Stack::up(config).await.expect("stack up");
    let client = HttpClient::new(Duration::from_secs(10));
    let response = client
        .get(&format!("{}/api/songs/1/comments", stack.nginx_url()))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(stack.edge_url(), None);
    assert_eq!(stack.redis_url(), None);
    let state = stack.state();
    drop(stack);
    assert_nothing_left(&state.processes, &state.ports);
}
