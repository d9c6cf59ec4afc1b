//! Phase: capacity per pool size, straight to nginx (the edge cache would hide the
//! origins), and the original study's configurations at its fixed rate (400/s), each right
//! after the search of its pool size while that pool is up; then, on the largest pool,
//! the neighbours probe ([`super::neighbours`]).

use std::time::Duration;

use super::model::{FixedRun, RunSummary, ScalingResult, StudyResults};
use super::profile::{ORIGINAL_RATE, ORIGINAL_SUMMARY, OriginalRow};
use super::search::{self, CapacitySearch};
use super::session::Session;
use crate::schedule::Schedule;

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let sizes = session.profile.sizes;
    session.fill_cache().await?;
    for &instances in sizes {
        session.stack.scale_to(instances).await?;
        let previous = results.scaling.last().map(|previous| previous.capacity_rps);
        let profile = &session.profile;
        let start = search::search_start(previous, profile.search_start, instances);
        let mut search = if previous.is_some_and(|capacity| capacity > 0.0) {
            CapacitySearch::with_growth(
                start,
                profile.search_max,
                profile.bisect_steps,
                profile.search_growth,
            )
        } else {
            CapacitySearch::new(start, profile.search_max, profile.bisect_steps + 1)
        };
        session.step(&format!(
            "capacity search with {instances} instance(s), {} s per step",
            profile.search_step.as_secs_f64()
        ));
        let url = session.stack.nginx_url();
        let step = session.profile.search_step;
        let steps = search_steps(
            session,
            &mut search,
            &url,
            &format!("capacity-{instances}x"),
            step,
        )
        .await?;
        session.step(&format!(
            "  capacity with {instances} instance(s): {:.0} requests/s",
            search.capacity()
        ));
        let result = ScalingResult {
            instances,
            capacity_rps: search.capacity(),
            steps,
        };
        if let Some(knee) = result.knee(session.objective_ms())
            && let Some(cpu) = &knee.cpu
        {
            session.step(&format!(
                "  at the knee ({:.0}/s): {}",
                knee.offered_rate,
                cpu.bottleneck()
            ));
        }
        results.scaling.push(result);
        for original in ORIGINAL_SUMMARY
            .iter()
            .filter(|original| original.instances == instances)
        {
            results.fixed.push(fixed_run(session, original).await?);
        }
    }
    // While the largest pool is up.
    super::neighbours::run(session, results).await?;
    // The original's sizes the search did not visit.
    for original in ORIGINAL_SUMMARY {
        if !results.fixed.iter().any(|run| run.original == *original) {
            session.stack.scale_to(original.instances).await?;
            results.fixed.push(fixed_run(session, original).await?);
        }
    }
    results.fixed.sort_by_key(|run| run.original.instances);
    Ok(())
}

/// One of the original's configurations at its rate (400/s), on the pool as it is.
async fn fixed_run(session: &mut Session, original: &OriginalRow) -> anyhow::Result<FixedRun> {
    let seconds = if session.profile.full_original_counts {
        original.requests as f64 / ORIGINAL_RATE
    } else {
        session.profile.fixed_duration.as_secs_f64()
    };
    session.step(&format!(
        "fixed rate {ORIGINAL_RATE} /s for {seconds:.0}s with {} instance(s)",
        original.instances
    ));
    let schedule = Schedule::constant(ORIGINAL_RATE, Duration::from_secs_f64(seconds));
    let url = session.stack.nginx_url();
    let (_, ours) = session
        .measure(
            &format!("fixed-{}x", original.instances),
            &url,
            schedule,
            false,
        )
        .await?;
    Ok(FixedRun {
        original: original.clone(),
        ours,
    })
}

/// Runs a capacity search's steps against `url`, each from a healthy, idle stack; every
/// step's summary, in order.
pub async fn search_steps(
    session: &mut Session,
    search: &mut CapacitySearch,
    url: &str,
    label: &str,
    step_duration: Duration,
) -> anyhow::Result<Vec<RunSummary>> {
    let mut steps = Vec::new();
    while let Some(rate) = search.next_rate() {
        let (_, summary) = session
            .measure(
                &format!("{label}-{rate:.0}"),
                url,
                Schedule::constant(rate, step_duration),
                true,
            )
            .await?;
        let passed = summary.meets(session.objective_ms());
        let redis = summary
            .origin_cache
            .and_then(|lookups| lookups.hit_ratio())
            .map_or(String::new(), |ratio| {
                format!(", origins' Redis hits {:.0}%", ratio * 100.0)
            });
        let cpu = summary.cpu.as_ref().map_or(String::new(), |cpu| {
            format!(
                ", CPU: pool {:.2}, nginx {:.2}, edge {:.2}, generator {:.2}, the rest {:.2}",
                cpu.instances,
                cpu.nginx,
                cpu.edge,
                cpu.generator,
                cpu.busy() - cpu.instances - cpu.nginx - cpu.edge - cpu.generator
            )
        });
        session.step(&format!(
            "  {rate:>8.0}/s -> p99 {:>8.2} ms, errors {:.3}%, dropped {:.2}%: {}{cpu}{redis}",
            summary.p99_ms,
            summary.error_rate * 100.0,
            summary.dropped_rate * 100.0,
            if passed { "within objective" } else { "over" }
        ));
        search.record(rate, passed);
        steps.push(summary);
    }
    Ok(steps)
}
