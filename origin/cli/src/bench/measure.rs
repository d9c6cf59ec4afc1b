//! The closed loop behind every cell: clients drawing song ids, each sending its next
//! request when the last one answered, every latency in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::{BenchArgs, Draw, Measured, Read};
use crate::datagen::{Dataset, Generator};
use origin::configuration::ServeArgs;
use origin::domain::SongId;
use origin::error::error_chain;
use origin::metrics::CacheOutcome;
use origin::startup::Application;
use origin::storage::Storage;

/// Latencies are recorded in nanoseconds, up to a minute, to 3 significant figures.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Draws song ids.
#[derive(Clone)]
pub(super) enum Sampler {
    Uniform(u64),
    Zipf(Arc<Generator>),
}

impl Sampler {
    pub(super) fn new(args: &BenchArgs, songs: u64) -> anyhow::Result<Self> {
        Ok(match args.distribution {
            Draw::Uniform => Self::Uniform(songs),
            Draw::Zipf => Self::Zipf(Arc::new(Generator::new(Dataset {
                seed: args.seed,
                songs,
                // Popularity depends on the seed, the song count and the exponent only.
                users: 1,
                comments: 0,
                zipf_exponent: args.zipf_exponent,
            })?)),
        })
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> SongId {
        let id = match self {
            Self::Uniform(songs) => rng.random_range(1..=*songs as i64),
            Self::Zipf(generator) => generator.popular_song(rng),
        };
        SongId::new(id).expect("song ids are drawn from 1..=songs")
    }
}

pub(super) struct Plan {
    pub(super) draw: Sampler,
    pub(super) concurrency: usize,
    pub(super) warmup: Duration,
    pub(super) measure: Duration,
    pub(super) limit: u32,
    pub(super) seed: u64,
}

pub(super) async fn measure_storage(
    plan: &Plan,
    storage: Arc<dyn Storage>,
    read: Read,
) -> Measured {
    let limit = plan.limit;
    measure(plan, move |song| {
        let storage = Arc::clone(&storage);
        async move {
            let found = match read {
                Read::Song => storage.song(song).await.map(|s| s.is_some()),
                Read::Comments => storage.comments(song, None, limit).await.map(|_| true),
                Read::Feed => storage.feed(song, limit).await.map(|f| f.is_some()),
            };
            match found {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("song {song} not found")),
                Err(error) => Err(error_chain(&error)),
            }
        }
    })
    .await
}

pub(super) async fn measure_http(
    plan: &Plan,
    storage: Arc<dyn Storage>,
    redis_url: Option<String>,
    read: Read,
) -> anyhow::Result<Measured> {
    let mut serve = ServeArgs::for_tests(String::new(), redis_url, "bench-queries");
    serve.database.database_url = None;
    serve.max_concurrency = serve.max_concurrency.max(plan.concurrency * 2);
    let app = Application::build_with_storage(serve, storage)
        .await
        .context("starting the in-process origin")?;
    let address = app.address();
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(plan.concurrency)
        .build_http();
    let kind = read.cache_kind();
    let lookups = |outcome| state.metrics.cache_count(kind, outcome);
    let before = [CacheOutcome::Hit, CacheOutcome::Miss, CacheOutcome::Bypass].map(lookups);
    let limit = plan.limit;
    let mut measured = measure(plan, move |song| {
        let client = client.clone();
        async move {
            let path = read.path(song, limit);
            let uri: hyper::Uri = format!("http://{address}{path}")
                .parse()
                .map_err(|e| format!("{path}: {e}"))?;
            let response = client
                .get(uri)
                .await
                .map_err(|e| format!("{path}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{path}: reading the body: {e}"))?
                .to_bytes();
            if status == hyper::StatusCode::OK {
                Ok(())
            } else {
                Err(format!(
                    "{path}: {status} {}",
                    String::from_utf8_lossy(&body)
                ))
            }
        }
    })
    .await;
    if state.cache.is_enabled() {
        let after = [CacheOutcome::Hit, CacheOutcome::Miss, CacheOutcome::Bypass].map(lookups);
        let hits = after[0] - before[0];
        let all: u64 = (0..3).map(|i| after[i] - before[i]).sum();
        measured.redis_hit_ratio = Some(if all == 0 {
            0.0
        } else {
            hits as f64 / all as f64
        });
        measured.redis_bypasses = Some(after[2] - before[2]);
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(measured)
}

/// Runs `op` from `plan.concurrency` clients through the warm-up and the
/// measured window, and returns the latency figures of the window.
async fn measure<F, Fut>(plan: &Plan, op: F) -> Measured
where
    F: Fn(SongId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let window_start = started + plan.warmup;
    let window_end = window_start + plan.measure;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..plan.concurrency {
        let op = Arc::clone(&op);
        let draw = plan.draw.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ (client as u64).wrapping_mul(0x9e37));
        clients.spawn(async move {
            let mut latencies = new_histogram();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut last_end = window_start;
            while Instant::now() < window_end {
                let song = draw.draw(&mut rng);
                let sent = Instant::now();
                let outcome = op(song).await;
                let done = Instant::now();
                if sent < window_start {
                    continue;
                }
                last_end = last_end.max(done);
                match outcome {
                    Ok(()) => latencies.saturating_record(
                        u64::try_from(done.duration_since(sent).as_nanos()).unwrap_or(u64::MAX),
                    ),
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            (latencies, errors, first_error, last_end)
        });
    }
    let mut latencies = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_end = window_start;
    while let Some(joined) = clients.join_next().await {
        let (client_latencies, client_errors, client_error, client_end) =
            joined.expect("a bench client panicked");
        latencies
            .add(&client_latencies)
            .expect("histograms with the same bounds add");
        errors += client_errors;
        if first_error.is_none() {
            first_error = client_error;
        }
        last_end = last_end.max(client_end);
    }
    let window = last_end.duration_since(window_start).max(plan.measure);
    let ms = |ns: u64| ns as f64 / 1e6;
    Measured {
        p50_ms: ms(latencies.value_at_quantile(0.50)),
        p99_ms: ms(latencies.value_at_quantile(0.99)),
        max_ms: ms(latencies.max()),
        throughput_per_s: latencies.len() as f64 / window.as_secs_f64(),
        requests: latencies.len(),
        errors,
        first_error,
        redis_hit_ratio: None,
        redis_bypasses: None,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}
