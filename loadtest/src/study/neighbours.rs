//! The neighbours probe, at the end of the capacity phase: one origin's CPU per request
//! with the other origins on this host idle, and with them busy.
//!
//! Every pool of the capacity phase runs on the same two cores, but not beside the same
//! neighbours: the one-instance pool is searched with no other origin running, the
//! ten-instance pool beside nine busy ones. On the machine this was written on, an
//! origin served 100 requests/s straight used 464 to 501 µs of CPU per request while
//! nine others idled and 281 to 390 µs while they served 900/s beside it; Redis kept
//! busy on its own (30,000 reads/s), or nine generators loading another server, moved it
//! much less. So a larger pool's capacity can exceed the linear line from one instance
//! partly by the host's doing. The probe measures that in each study, at one operating
//! point, so that the report can say how much, and how sure it is.

use super::model::{NeighbourProbe, NeighbourRound, StudyResults};
use super::session::Session;
use crate::schedule::Schedule;

/// Rounds of each kind, alternating (alone first): a drift over the probe falls on both.
const ROUNDS: usize = 2;

/// Instance 1's rate as a share of one instance's capacity: well under its quota (at
/// 80 % its rounds alone ran at 76 to 100 % of it, where CPU per request is the quota's).
pub const INSTANCE_SHARE: f64 = 0.5;

/// Each neighbour's rate as a share of its part of the largest pool's capacity: busy as
/// in that pool's search, under its quota.
pub const NEIGHBOUR_SHARE: f64 = 0.8;

/// Runs the probe on the pool as it is (the largest, after the searches), straight to
/// the instances (nginx would spread instance 1's load), and keeps it in `results`. A
/// probe without a capacity to start from, or without instance 1's figures, says why
/// and leaves the report without it; a load that fails ends the study like any other
/// run's (its writes must reach the lost-write check).
pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let (Some(one), Some(largest)) = (results.capacity_of(1), results.scaling.last()) else {
        session.step("neighbours probe skipped: no capacity of one instance to start from");
        return Ok(());
    };
    let urls = session.stack.instance_urls();
    if one.capacity_rps <= 0.0 || urls.len() < 2 || largest.instances != urls.len() {
        session.step(&format!(
            "neighbours probe skipped: one instance's capacity {:.0}/s, {} instance(s) up",
            one.capacity_rps,
            urls.len()
        ));
        return Ok(());
    }
    let rate = (one.capacity_rps * INSTANCE_SHARE).round().max(1.0);
    let neighbour_rate = (largest.capacity_rps * NEIGHBOUR_SHARE / largest.instances as f64)
        .round()
        .max(1.0);
    let round = session.profile.neighbours_round;
    session.step(&format!(
        "neighbours probe: instance 1 at {rate:.0}/s for {} s, alone and beside the {} others \
         at {neighbour_rate:.0}/s each, {ROUNDS} rounds each",
        round.as_secs_f64(),
        urls.len() - 1
    ));
    let mut probe = NeighbourProbe {
        rate,
        neighbour_rate,
        seconds: round.as_secs_f64(),
        neighbours: urls.len() - 1,
        rounds: Vec::new(),
    };
    for beside in [false, true].into_iter().cycle().take(2 * ROUNDS) {
        let mut loads = vec![(urls[0].clone(), Schedule::constant(rate, round))];
        if beside {
            let neighbours = urls[1..].iter().cloned();
            loads.extend(neighbours.map(|url| (url, Schedule::constant(neighbour_rate, round))));
        }
        let kind = if beside { "beside" } else { "alone" };
        let together = session
            .measure_together(&format!("neighbours-{kind}"), loads)
            .await?;
        let Some(round) = measured_round(beside, &together, urls.len()) else {
            session.step(&format!(
                "  neighbours probe stopped: no CPU or request count for instance 1 ({kind})"
            ));
            return Ok(());
        };
        session.step(&format!(
            "  {kind}: instance 1 used {:.0} µs of CPU per request ({} requests{}){}",
            round.cpu_us,
            round.requests,
            round.quota_use.map_or(String::new(), |share| format!(
                ", {:.0} % of its quota",
                share * 100.0
            )),
            round
                .unfit()
                .map_or(String::new(), |why| format!(": left out, {why}"))
        ));
        probe.rounds.push(round);
    }
    results.neighbours = Some(probe);
    Ok(())
}

/// Instance 1's figures from one round, if its CPU and its own count of requests were
/// read (`per_instance` is in instance order only while every instance has a process).
fn measured_round(
    beside: bool,
    together: &super::session::Together,
    instances: usize,
) -> Option<NeighbourRound> {
    let cpu = &together.cpu;
    if cpu.per_instance.len() != instances {
        return None;
    }
    let cores = *cpu.per_instance.first()?;
    let requests = (*together.origin_requests.first()?)?;
    let load = &together.runs.first()?.overall;
    Some(NeighbourRound {
        beside,
        started_healthy: together.start.healthy,
        requests,
        errors: load.errors.total(),
        p99_ms: load.latency.p99_ms,
        cpu_us: cores * cpu.seconds * 1e6 / requests.max(1) as f64,
        quota_use: cpu
            .instance_quota
            .filter(|quota| *quota > 0.0)
            .map(|quota| cores / quota),
        cpu: cpu.clone(),
    })
}
