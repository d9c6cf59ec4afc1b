//! The engine. In the open model a scheduler computes each iteration's
//! intended start from the arrival schedule and hands it to a free request
//! slot; when no slot is free at that moment the iteration is dropped and
//! counted (k6's `dropped_iterations`). Latency runs from the intended start,
//! so a stalled server shows in the percentiles instead of slowing the
//! generator down (coordinated omission, corrected as wrk2 does). The closed
//! model (each slot back to back, latency from the actual send) exists for
//! calibration against wrk and to show what an uncorrected tool reports.
//!
//! Timer resolution is 1 ms: an iteration may leave up to ~1 ms after its
//! intended start, and that lateness is counted in its latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Answer, Connection, Target};
use crate::recorder::{AckedWrite, Completed, ErrorClass, Recorder, new_second_histogram};
use crate::results::{EndpointResults, RunResults, encode_histogram, ratio};
use crate::scenario::RequestKind;
use crate::schedule::Schedule;
use crate::threshold::Threshold;
use crate::workload::{PlannedRequest, SlotState, Workload, comment_id_in_path};

/// How load is offered.
#[derive(Debug, Clone)]
pub enum LoadModel {
    /// Arrivals on a schedule, at most `max_in_flight` at once.
    Open {
        schedule: Schedule,
        max_in_flight: usize,
    },
    /// `connections` slots each sending back to back for `duration`.
    Closed {
        connections: usize,
        duration: Duration,
    },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: String,
    pub target: Target,
    pub model: LoadModel,
    pub timeout: Duration,
    pub workload: Arc<Workload>,
    pub thresholds: Vec<Threshold>,
    /// Print a progress line per second to stderr, prefixed with this label.
    pub progress: Option<String>,
    pub seed: u64,
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
struct Live {
    completed: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
    max_latency_us: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    target: Target,
    workload: Arc<Workload>,
    timeout: Duration,
    start: Instant,
    shards: Vec<Mutex<Recorder>>,
    live: Live,
}

/// Runs the load and returns its results (thresholds already checked).
pub async fn run(options: RunOptions) -> RunResults {
    let shard_count = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    let endpoints = options.workload.endpoints();
    let start = Instant::now() + Duration::from_millis(5);
    let shared = Arc::new(Shared {
        target: options.target.clone(),
        workload: options.workload.clone(),
        timeout: options.timeout,
        start,
        shards: (0..shard_count)
            .map(|_| Mutex::new(Recorder::new(endpoints)))
            .collect(),
        live: Live::default(),
    });
    let finished = Arc::new(AtomicBool::new(false));
    let progress = options.progress.clone().map(|label| {
        let (shared, finished) = (shared.clone(), finished.clone());
        let model = options.model.clone();
        tokio::spawn(async move { report_progress(&label, &shared, &model, &finished).await })
    });

    let (window, mut scheduler_record) = match &options.model {
        LoadModel::Open {
            schedule,
            max_in_flight,
        } => {
            let record = run_open(&shared, schedule, *max_in_flight, options.seed).await;
            (schedule.duration(), record)
        }
        LoadModel::Closed {
            connections,
            duration,
        } => {
            run_closed(&shared, *connections, *duration, options.seed).await;
            (*duration, Recorder::new(endpoints))
        }
    };
    finished.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.await;
    }

    for shard in &shared.shards {
        scheduler_record.merge(&shard.lock().expect("recorder lock"));
    }
    // One histogram per second of the timeline, empty where nothing completed.
    let seconds = scheduler_record.timeline.len();
    scheduler_record
        .timeline_latency
        .resize_with(seconds, new_second_histogram);
    scheduler_record.finish_timeline();
    build_results(&options, &scheduler_record, window)
}

fn build_results(options: &RunOptions, record: &Recorder, window: Duration) -> RunResults {
    let mut overall = crate::recorder::EndpointRecorder::new();
    for endpoint in &record.endpoints {
        overall.merge(endpoint);
    }
    let overall = EndpointResults::from_recorder(&overall);
    let offered: u64 = record.timeline.iter().map(|second| second.offered).sum();
    let dropped: u64 = record.timeline.iter().map(|second| second.dropped).sum();
    let seconds = window.as_secs_f64().max(1e-9);
    let mut results = RunResults {
        scenario: options.scenario.clone(),
        target: options.target.url.clone(),
        mode: match options.model {
            LoadModel::Open { .. } => "open".into(),
            LoadModel::Closed { .. } => "closed".into(),
        },
        started_at: chrono::Utc::now().to_rfc3339(),
        duration_s: seconds,
        merged_runs: 1,
        offered,
        offered_rate: offered as f64 / seconds,
        dropped,
        requests: overall.requests,
        achieved_rate: overall.requests as f64 / seconds,
        endpoints: options
            .workload
            .endpoint_names
            .iter()
            .zip(&record.endpoints)
            .filter(|(_, endpoint)| endpoint.ok + endpoint.errors.total() > 0)
            .map(|(name, endpoint)| (name.clone(), EndpointResults::from_recorder(endpoint)))
            .collect(),
        overall,
        timeline: record.timeline.clone(),
        timeline_histograms: record
            .timeline_latency
            .iter()
            .map(encode_histogram)
            .collect(),
        cache: record.cache,
        writes: record.writes.clone(),
        deleted: record.deleted.clone(),
        thresholds: Vec::new(),
    };
    results.thresholds = options
        .thresholds
        .iter()
        .map(|threshold| threshold.check(&results))
        .collect();
    results
}

async fn run_open(
    shared: &Arc<Shared>,
    schedule: &Schedule,
    max_in_flight: usize,
    seed: u64,
) -> Recorder {
    let idle: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new((0..max_in_flight).rev().collect()));
    let mut slots = Vec::with_capacity(max_in_flight);
    let mut tasks = Vec::with_capacity(max_in_flight);
    for slot in 0..max_in_flight {
        let (sender, mut receiver) = mpsc::channel::<Instant>(1);
        slots.push(sender);
        let (shared, idle) = (shared.clone(), idle.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = None;
            let mut state = SlotState::new(seed.wrapping_mul(1_000_003).wrapping_add(slot as u64));
            let shard = &shared.shards[slot % shared.shards.len()];
            while let Some(intended) = receiver.recv().await {
                execute(&shared, shard, &mut connection, &mut state, intended, None).await;
                idle.lock().expect("idle lock").push(slot);
            }
        }));
    }

    let mut record = Recorder::new(0);
    for offset in schedule.arrivals() {
        let intended = shared.start + offset;
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        let free = idle.lock().expect("idle lock").pop();
        match free {
            Some(slot) => {
                record.offered(offset, false);
                slots[slot]
                    .try_send(intended)
                    .expect("an idle slot has an empty queue");
            }
            None => {
                record.offered(offset, true);
                shared.live.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drop(slots);
    for task in tasks {
        let _ = task.await;
    }
    record
}

async fn run_closed(shared: &Arc<Shared>, connections: usize, duration: Duration, seed: u64) {
    let end = shared.start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|slot| {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(shared.start).await;
                let mut connection = None;
                let mut state =
                    SlotState::new(seed.wrapping_mul(1_000_003).wrapping_add(slot as u64));
                let shard = &shared.shards[slot % shared.shards.len()];
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let offered_at = Some(now - shared.start);
                    execute(&shared, shard, &mut connection, &mut state, now, offered_at).await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Sends the request on the slot's connection, opening one when needed. A
/// request that was never seen by the server (an idle connection it had
/// closed) is retried once on a fresh connection; nothing else is retried.
async fn exchange(
    target: &Target,
    connection: &mut Option<Connection>,
    planned: &PlannedRequest,
) -> Result<Answer, ErrorClass> {
    let keep_body = planned.kind == RequestKind::PostComment;
    for attempt in 0..2 {
        if !connection.as_ref().is_some_and(Connection::is_usable) {
            *connection = Some(Connection::open(target).await?);
        }
        let open = connection.as_mut().expect("opened above");
        match open.exchange(target, planned, keep_body).await {
            Ok(answer) => return Ok(answer),
            Err(failure) => {
                *connection = None;
                if !failure.retry_safe || attempt == 1 {
                    return Err(failure.class);
                }
            }
        }
    }
    Err(ErrorClass::Connection)
}

fn created_comment_id(answer: &Answer) -> Option<Uuid> {
    let from_location = answer.location.as_deref().and_then(comment_id_in_path);
    from_location.or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(answer.body.as_deref()?).ok()?;
        body.get("id")?
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
    })
}

async fn execute(
    shared: &Shared,
    shard: &Mutex<Recorder>,
    connection: &mut Option<Connection>,
    state: &mut SlotState,
    intended: Instant,
    offered_at: Option<Duration>,
) {
    let planned = shared.workload.plan(state);
    shared.live.in_flight.fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    let outcome = tokio::time::timeout(
        shared.timeout,
        exchange(&shared.target, connection, &planned),
    )
    .await;
    let done = Instant::now();
    shared.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    let result = match outcome {
        Ok(result) => result,
        Err(_) => {
            // The connection is mid-request; it cannot carry another one.
            *connection = None;
            Err(ErrorClass::Timeout)
        }
    };
    let cache = result.as_ref().ok().and_then(|answer| answer.cache);
    let (error, acked) = match &result {
        Err(class) => (Some(*class), None),
        Ok(answer) => {
            let error = matches!(answer.status, 400..=599).then_some(ErrorClass::Status {
                code: answer.status,
                retry_after: answer.retry_after,
            });
            let acked = (planned.kind == RequestKind::PostComment && answer.status == 201)
                .then(|| created_comment_id(answer))
                .flatten();
            (error, acked)
        }
    };
    if let Some(id) = acked {
        state.remember(id, planned.user);
    }
    let latency = done.saturating_duration_since(intended);
    {
        let mut record = shard.lock().expect("recorder lock");
        // The closed loop counts its iterations here, under the same lock.
        if let Some(offered_at) = offered_at {
            record.offered(offered_at, false);
        }
        record.completed(Completed {
            endpoint: planned.endpoint,
            completed_at: done - shared.start,
            latency,
            service: done - sent,
            error,
            write: planned.kind.is_write(),
            cache,
        });
        if let Some(id) = acked {
            record.writes.push(AckedWrite {
                id,
                song_id: planned.song_id,
            });
        }
        if planned.kind == RequestKind::DeleteComment {
            record.deleted.extend(comment_id_in_path(&planned.path));
        }
    }
    shared.live.completed.fetch_add(1, Ordering::Relaxed);
    if error.is_some() {
        shared.live.errors.fetch_add(1, Ordering::Relaxed);
    }
    shared
        .live
        .max_latency_us
        .fetch_max(latency.as_micros() as u64, Ordering::Relaxed);
}

async fn report_progress(label: &str, shared: &Shared, model: &LoadModel, finished: &AtomicBool) {
    let mut ticker = tokio::time::interval_at(
        shared.start + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let (mut last_completed, mut last_errors, mut last_dropped) = (0, 0, 0);
    while !finished.load(Ordering::Relaxed) {
        ticker.tick().await;
        let live = &shared.live;
        let completed = live.completed.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let dropped = live.dropped.load(Ordering::Relaxed);
        let max_ms = live.max_latency_us.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        let elapsed = (Instant::now() - shared.start).as_secs_f64();
        let offered = match model {
            LoadModel::Open { schedule, .. } => {
                format!("offered {:>8.0}/s", schedule.rate_at(elapsed - 0.5))
            }
            LoadModel::Closed { connections, .. } => format!("closed x{connections}"),
        };
        eprintln!(
            "{label} {elapsed:>6.1}s  {offered}  done {:>8}/s  errors {:>5} ({:.2}%)  dropped {:>5}  in-flight {:>4}  max {max_ms:>8.1}ms",
            completed - last_completed,
            errors - last_errors,
            100.0 * ratio(errors - last_errors, completed - last_completed),
            dropped - last_dropped,
            live.in_flight.load(Ordering::Relaxed),
        );
        (last_completed, last_errors, last_dropped) = (completed, errors, dropped);
    }
}
