//! Phase: what the CDN is for, on one pool size. The edge's capacity (cache on) beside the
//! same pool's capacity straight to nginx, then the cache tiers (edge cache and Redis, each
//! on and off) at one rate, each with the edge's hit ratio, the requests that reached the
//! origins and the CPU the origin pool spent.

use super::capacity::search_steps;
use super::model::{ScalingResult, StudyResults, TierRun, on_off};
use super::search::{self, CapacitySearch};
use super::session::Session;
use crate::schedule::Schedule;

/// Instances behind the edge in this phase.
pub const CDN_POOL: usize = 3;

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    session.stack.scale_to(CDN_POOL).await?;
    let nginx_capacity = nginx_capacity(results);
    if let Some(edge_url) = session.stack.edge_url() {
        let profile = &session.profile;
        let start = nginx_capacity.max(profile.search_start);
        let mut search = CapacitySearch::with_growth(
            start,
            profile.search_max,
            profile.bisect_steps,
            profile.search_growth,
        );
        session.step(&format!(
            "edge capacity (cache on, {CDN_POOL} instances behind it), from {start:.0}/s (the larger of the same pool straight to nginx, {nginx_capacity:.0}/s, and the searches' start), {} s per step",
            profile.search_step.as_secs_f64()
        ));
        // The same step as the pool's own search: a capacity from shorter steps rests its p99
        // on fewer requests, and the two would not compare.
        let step = profile.search_step;
        let steps = search_steps(session, &mut search, &edge_url, "edge", step).await?;
        session.step(&format!(
            "  the edge carried {:.0} requests/s within the objective; the pool alone {nginx_capacity:.0}",
            search.capacity()
        ));
        results.edge_capacity = Some(ScalingResult {
            instances: CDN_POOL,
            capacity_rps: search.capacity(),
            steps,
        });
    }
    let rate = tier_rate(
        nginx_capacity,
        results.edge_capacity.as_ref().map(|edge| edge.capacity_rps),
    );
    for redis in [true, false] {
        if !redis {
            session.stop_redis().await?;
        }
        let mut targets = vec![(false, session.stack.nginx_url())];
        if let Some(edge_url) = session.stack.edge_url() {
            targets.insert(0, (true, edge_url));
        }
        for (edge_cache, url) in targets {
            session.step(&format!(
                "cache tier: edge cache {}, Redis {} at {rate:.0}/s",
                on_off(edge_cache),
                on_off(redis)
            ));
            let label = format!("tier-edge-{}-redis-{}", on_off(edge_cache), on_off(redis));
            let duration = session.profile.tier_duration;
            let (_, summary) = session
                .measure(&label, &url, Schedule::constant(rate, duration), true)
                .await?;
            session.step(&format!(
                "  p99 {:.2} ms; edge hit ratio {}; {:.0} requests/s reached the origins; origin pool CPU {}",
                summary.p99_ms,
                summary.cache.describe_hits(),
                summary.origin_rate().unwrap_or(0.0),
                summary
                    .cpu
                    .as_ref()
                    .map_or("—".into(), |cpu| format!("{:.2} cores", cpu.instances)),
            ));
            results.tiers.push(TierRun {
                edge_cache,
                redis,
                rate,
                summary,
            });
        }
        if !redis {
            session.start_redis().await?;
        }
    }
    Ok(())
}

/// The capacity of the CDN pool straight to nginx: measured when the capacity phase
/// searched that size, else twice the fault rate's base (half the nearest smaller pool).
fn nginx_capacity(results: &StudyResults) -> f64 {
    results
        .capacity_of(CDN_POOL)
        .map(|result| result.capacity_rps)
        .filter(|capacity| *capacity > 0.0)
        .unwrap_or_else(|| 2.0 * search::fault_rate(&results.scaling, CDN_POOL))
}

/// The tiers' rate: half of what the slower of the two paths carried, so that edge on and
/// edge off are compared at a load both carry (at least 100/s).
pub fn tier_rate(nginx_capacity: f64, edge_capacity: Option<f64>) -> f64 {
    let carried = edge_capacity.map_or(nginx_capacity, |edge| edge.min(nginx_capacity));
    (carried * 0.5).max(100.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_run_at_half_the_slower_path() {
        assert_eq!(tier_rate(2000.0, Some(5000.0)), 1000.0);
        assert_eq!(tier_rate(2000.0, Some(1200.0)), 600.0);
        assert_eq!(tier_rate(2000.0, None), 1000.0);
        assert_eq!(tier_rate(0.0, Some(0.0)), 100.0);
    }
}
