//! The whole stack with real PostgreSQL, Redis, origin instances, nginx and the edge: caching,
//! faults, scaling, and a clean `down`; and the stack on a real Cassandra node, through a
//! database restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::GetStream;
use stack::binaries::{self, Binary};
use stack::cgroup::Hierarchy;
use stack::ports::is_listening;
use stack::probe::HttpClient;
use stack::process::pid_alive;
use stack::{DatabaseBackend, Stack, StackConfig, StackState};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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

/// Where this machine has cgroups, `instance`'s process is in each of its groups (the
/// CPU and the memory controller's).
fn assert_under_its_limits(state: &StackState, instance: &str) {
    let pid = state
        .processes
        .iter()
        .find(|(name, _)| name == instance)
        .unwrap_or_else(|| panic!("{instance} runs"))
        .1;
    let groups: Vec<_> = state
        .cgroups
        .iter()
        .filter(|group| group.to_string_lossy().ends_with(&format!("-{instance}")))
        .collect();
    if Hierarchy::detect().is_err() {
        assert!(groups.is_empty(), "groups without a hierarchy: {groups:?}");
        return;
    }
    assert!(!groups.is_empty(), "{instance} has no cgroup");
    for group in groups {
        let members = std::fs::read_to_string(group.join("cgroup.procs")).unwrap();
        assert!(
            members.lines().any(|line| line == pid.to_string()),
            "{instance} (pid {pid}) is not in {}: {members:?}",
            group.display()
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
    assert_under_its_limits(&stack.state(), "origin-1");
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

/// An HS256 token for `user`, signed with the stack's secret, valid for ten minutes.
fn token(secret: &str, user: u64) -> String {
    #[derive(serde::Serialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: user.to_string(),
        exp: now + 600,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// POSTs a comment on `song` through the server at `base` and returns the status and body.
async fn post_comment(base: &str, token: &str, song: u64, text: &str) -> (u16, String) {
    let address = base.trim_start_matches("http://").to_owned();
    let json = format!(r#"{{"body":"{text}","track_ms":0}}"#);
    let request = format!(
        "POST /api/songs/{song}/comments HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the POST was answered within 10 s");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_stack_reads_writes_and_recovers_from_a_database_restart() {
    let run_dir = tempfile::tempdir().unwrap();
    // No edge, so only `origin` is needed.
    let built = binaries::build(&[Binary::Origin], false)
        .unwrap_or_else(|error| panic!("the stack tests need origin: {error}"));
    let config = StackConfig {
        instances: 1,
        backend: DatabaseBackend::Cassandra,
        redis: false,
        edge: false,
        origin_bin: Some(built[0].clone()),
        ..StackConfig::for_tests(run_dir.path()).unwrap()
    };
    let mut stack = Stack::up(config).await.expect("stack up on Cassandra");
    assert_eq!(stack.backend(), DatabaseBackend::Cassandra);
    let state = stack.state();
    assert!(
        state.processes.iter().any(|(name, _)| name == "cassandra"),
        "{:?}",
        state.processes
    );
    assert!(
        !state.processes.iter().any(|(name, _)| name == "postgres"),
        "no PostgreSQL in a Cassandra stack: {:?}",
        state.processes
    );
    let nginx = stack.nginx_url();
    let client = HttpClient::new(Duration::from_secs(10));

    // A song of the seeded data set, then a comment written and read back, through nginx.
    let song = client.get(&format!("{nginx}/api/songs/7")).await.unwrap();
    assert_eq!(song.status, 200, "body: {:?}", song.body);
    assert!(String::from_utf8_lossy(&song.body).contains(r#""id":7"#));
    let token = token(stack.jwt_secret(), 3);
    let (status, body) = post_comment(&nginx, &token, 7, "written on Cassandra").await;
    assert_eq!(status, 201, "body: {body}");
    let comments_url = format!("{nginx}/api/songs/7/comments?limit=200");
    let comments = client.get(&comments_url).await.unwrap();
    assert_eq!(comments.status, 200);
    assert!(String::from_utf8_lossy(&comments.body).contains("written on Cassandra"));

    // GETs run through the restart: each is answered (200, or 503 with Retry-After while
    // the node is away), none hangs past the client's timeout.
    let watcher = {
        let client = client.clone();
        let url = comments_url.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && seen.len() < 100_000 {
                match client.get(&url).await {
                    Ok(answer) => {
                        let retry_after = answer.header("retry-after").is_some();
                        seen.push(Ok((answer.status.as_u16(), retry_after)));
                    }
                    Err(error) => seen.push(Err(stack::probe::error_chain(&error))),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        });
        (stop, task)
    };
    stack.restart_database().await.expect("Cassandra restarts");

    // The service recovers by itself: a read and then a write succeed again, and the
    // comment written before the restart is still there.
    let mut recovered = None;
    for _ in 0..600 {
        let answer = client.get(&comments_url).await.unwrap();
        if answer.status == 200 {
            recovered = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("reads recover within a minute of the restart");
    assert!(String::from_utf8_lossy(&recovered.body).contains("written on Cassandra"));
    let (stop, task) = watcher;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = task.await.unwrap();
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|outcome| !matches!(outcome, Ok((200, _)) | Ok((503, true))))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {} GETs across the restart were neither 200 nor 503 with Retry-After: {:?}",
        unexpected.len(),
        seen.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    let unavailable = seen
        .iter()
        .filter(|outcome| matches!(outcome, Ok((503, _))))
        .count();
    println!(
        "{} GETs across the Cassandra restart: {} answered 503 with Retry-After, the rest 200",
        seen.len(),
        unavailable
    );
    let (status, body) = post_comment(&nginx, &token, 7, "written after the restart").await;
    assert_eq!(status, 201, "body: {body}");

    stack.down().await;
    assert_nothing_left(&state.processes, &state.ports);
}
