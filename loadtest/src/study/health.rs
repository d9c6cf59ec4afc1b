//! A healthy, idle stack before every measured run: every instance passes its readiness
//! check, nginx sends to every instance (none is marked failed), and a short read-only
//! probe at a low rate is back to the baseline latency, all within a bound. A run that
//! follows an overload would otherwise carry the overload's tail (the old report's 17 %
//! errors in the first second of "Three Services" at 400/s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stack::Stack;
use stack::probe::HttpClient;

use super::model::HealthCheck;
use super::observe;
use crate::client::Target;
use crate::results::RunResults;
use crate::runner::{LoadModel, RunOptions};
use crate::scenario::Scenario;
use crate::schedule::Schedule;
use crate::workload::Workload;

/// The probe: reads only, at a rate far below any pool's capacity (a probe that loads the
/// stack measures its own load), for long enough to have a median.
pub const PROBE_RATE: f64 = 20.0;
pub const PROBE_DURATION: Duration = Duration::from_secs(1);
/// Back at baseline: the probe's p50 at most this factor of the baseline's, plus the slack.
pub const BASELINE_FACTOR: f64 = 1.5;
pub const BASELINE_SLACK_MS: f64 = 1.0;
/// Between two checks while the stack is not yet healthy.
const RECHECK: Duration = Duration::from_millis(250);

/// Sends the probes: the study's mix without its writes, so a probe changes nothing.
pub struct Prober {
    workload: Arc<Workload>,
    timeout: Duration,
    probes: u64,
}

impl Prober {
    pub fn new(scenario: &Scenario, jwt_secret: &str) -> anyhow::Result<Self> {
        let mut reads = scenario.clone();
        reads.mix.retain(|entry| !entry.kind.is_write());
        Ok(Self {
            workload: Arc::new(Workload::new(&reads, Some(jwt_secret))?),
            timeout: scenario.timeout,
            probes: 0,
        })
    }

    /// One probe against `url`.
    pub async fn probe(&mut self, url: &str) -> anyhow::Result<RunResults> {
        self.probes += 1;
        Ok(crate::runner::run(RunOptions {
            scenario: "health probe".into(),
            target: Target::resolve(url).await?,
            model: LoadModel::Open {
                schedule: Schedule::constant(PROBE_RATE, PROBE_DURATION),
                max_in_flight: 64,
            },
            timeout: self.timeout,
            workload: self.workload.clone(),
            thresholds: Vec::new(),
            progress: None,
            seed: 7_000_000 + self.probes,
        })
        .await)
    }
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq)]
struct ProbeFigures {
    p50_ms: f64,
    errors: u64,
    dropped: u64,
    classes: String,
}

impl ProbeFigures {
    fn of(results: &RunResults) -> Self {
        Self {
            p50_ms: results.overall.latency.p50_ms,
            errors: results.overall.errors.total(),
            dropped: results.dropped,
            classes: results.overall.errors.describe(),
        }
    }
}

/// What one probe said, against the baseline: its p50 if it passed.
fn judge_probe(probe: &ProbeFigures, baseline_p50_ms: Option<f64>) -> Result<f64, String> {
    let p50 = probe.p50_ms;
    if probe.errors > 0 || probe.dropped > 0 {
        return Err(format!(
            "the probe saw {} errors and {} dropped arrivals ({})",
            probe.errors, probe.dropped, probe.classes
        ));
    }
    match baseline_p50_ms {
        Some(baseline) if p50 > baseline * BASELINE_FACTOR + BASELINE_SLACK_MS => Err(format!(
            "the probe's p50 {p50:.2} ms is above the baseline's {baseline:.2} ms"
        )),
        _ => Ok(p50),
    }
}

/// The instances that do not pass `/readyz`, in words; `None` when all do.
async fn unready_instances(client: &HttpClient, stack: &Stack) -> Option<String> {
    let mut unready = Vec::new();
    for (position, url) in stack.instance_urls().iter().enumerate() {
        match client.get(&format!("{url}/readyz")).await {
            Ok(response) if response.status == 200 => {}
            Ok(response) => {
                unready.push(format!("instance {} ({})", position + 1, response.status))
            }
            Err(_) => unready.push(format!("instance {} (no answer)", position + 1)),
        }
    }
    (!unready.is_empty()).then(|| format!("not ready: {}", unready.join(", ")))
}

/// Whether nginx sends to every instance: with no request in flight, least_conn falls back
/// to round robin, so three sequential reads per instance reach each one unless nginx has
/// marked it failed (for `fail_timeout` after an error). Each instance's own counter tells.
async fn instances_nginx_skips(client: &HttpClient, stack: &Stack) -> Option<String> {
    let instances = stack.instance_urls();
    let before = observe::origin_counts(client, &instances).await;
    let nginx = stack.nginx_url();
    for song in 1..=(3 * instances.len()) {
        if client
            .get(&format!("{nginx}/api/songs/{song}"))
            .await
            .is_err()
        {
            return Some("nginx did not answer a read".into());
        }
    }
    let after = observe::origin_counts(client, &instances).await;
    let skipped: Vec<String> = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(_, (before, after))| match (before, after) {
            (Some(before), Some(after)) => after.requests <= before.requests,
            _ => true,
        })
        .map(|(position, _)| (position + 1).to_string())
        .collect();
    (!skipped.is_empty()).then(|| {
        format!(
            "nginx sent nothing to instance(s) {} (marked failed)",
            skipped.join(", ")
        )
    })
}

/// Waits until the stack is healthy and idle for a run against `url`, for at most `within`.
/// Without a baseline the probe only has to be clean (this is how the baseline is taken).
pub async fn settle(
    stack: &Stack,
    prober: &mut Prober,
    url: &str,
    baseline_p50_ms: Option<f64>,
    within: Duration,
) -> anyhow::Result<HealthCheck> {
    let client = observe::stack_client();
    let started = Instant::now();
    let mut probes = 0;
    let mut last_p50 = None;
    loop {
        let mut problem = unready_instances(&client, stack).await;
        if problem.is_none() {
            problem = instances_nginx_skips(&client, stack).await;
        }
        if problem.is_none() {
            let results = prober.probe(url).await?;
            probes += 1;
            last_p50 = Some(results.overall.latency.p50_ms);
            problem = judge_probe(&ProbeFigures::of(&results), baseline_p50_ms).err();
        }
        let waited_s = started.elapsed().as_secs_f64();
        if problem.is_none() || started.elapsed() >= within {
            return Ok(HealthCheck {
                healthy: problem.is_none(),
                waited_s,
                probes,
                probe_p50_ms: last_p50,
                baseline_p50_ms,
                problem,
                repaired: Vec::new(),
            });
        }
        tokio::time::sleep(RECHECK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(p50_ms: f64, errors: u64) -> ProbeFigures {
        ProbeFigures {
            p50_ms,
            errors,
            dropped: 0,
            classes: if errors > 0 {
                "timeout ×1".into()
            } else {
                "none".into()
            },
        }
    }

    #[test]
    fn a_probe_passes_near_its_baseline_and_clean() {
        assert_eq!(judge_probe(&probe(2.0, 0), Some(2.0)), Ok(2.0));
        // 1.5 x 2 ms + 1 ms = 4 ms is the bound.
        assert!(judge_probe(&probe(4.0, 0), Some(2.0)).is_ok());
        let slow = judge_probe(&probe(9.0, 0), Some(2.0)).unwrap_err();
        assert!(
            slow.contains("p50 9.00 ms is above the baseline's 2.00 ms"),
            "{slow}"
        );
        let failing = judge_probe(&probe(2.0, 1), Some(2.0)).unwrap_err();
        assert!(
            failing.contains("1 errors") && failing.contains("timeout"),
            "{failing}"
        );
        let dropped = ProbeFigures {
            dropped: 3,
            ..probe(2.0, 0)
        };
        assert!(judge_probe(&dropped, Some(2.0)).is_err());
        // Without a baseline (while taking it), only errors and drops fail.
        assert!(judge_probe(&probe(50.0, 0), None).is_ok());
    }
}
