//! The neighbours probe, at the end of the capacity phase: one origin's CPU per request
//! with the other origins on this host idle, and with them busy.
//!
//! Every pool of the capacity phase runs on one host, but not beside the same
//! neighbours: the one-instance pool is searched while the other origins idle, the
//! ten-instance pool beside nine busy ones. On the two-core machine this study was
//! written on, an origin serving 100 requests/s straight used about 470 µs of CPU per
//! request alone and about 300 µs while nine others served 100/s each beside it; Redis
//! kept busy alone (30,000 reads/s), or nine load generators at another server, moved
//! it much less. So a larger pool's capacity can exceed the linear line from one
//! instance by the host's doing. The probe measures that in each study, at the two
//! searches' own rates, so the report can say how much.

use super::model::{NeighbourProbe, StudyResults};
use super::session::Session;
use crate::schedule::Schedule;

/// Rounds of each kind, alternating (alone first): a drift over the probe falls on both.
const ROUNDS: usize = 2;

/// The share of a pool's capacity each of its instances is sent: under their quotas, so
/// the CPU per request is not a queue's.
pub const SHARE_OF_CAPACITY: f64 = 0.8;

/// Runs the probe on the pool as it is (the largest, after the searches), straight to the
/// instances (nginx would spread instance 1's load): instance 1 at 80 % of one
/// instance's capacity, as in the one-instance search near its capacity; alone, then
/// beside every other instance at its share of 80 % of the largest pool's capacity, as
/// in that pool's search near its capacity.
pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let (Some(one), Some(largest)) = (results.capacity_of(1), results.scaling.last()) else {
        return Ok(());
    };
    let urls = session.stack.instance_urls();
    if one.capacity_rps <= 0.0 || urls.len() < 2 || largest.instances != urls.len() {
        return Ok(());
    }
    let share = |capacity: f64, instances: usize| {
        (capacity * SHARE_OF_CAPACITY / instances as f64)
            .round()
            .max(1.0)
    };
    let rate = share(one.capacity_rps, 1);
    let neighbour_rate = share(largest.capacity_rps, largest.instances);
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
        alone_us: Vec::new(),
        beside_us: Vec::new(),
        unhealthy_rounds: 0,
    };
    for beside in [false, true].into_iter().cycle().take(2 * ROUNDS) {
        let schedule = |rate| Schedule::constant(rate, round);
        let mut loads = vec![(urls[0].clone(), schedule(rate))];
        if beside {
            loads.extend(
                urls[1..]
                    .iter()
                    .map(|url| (url.clone(), schedule(neighbour_rate))),
            );
        }
        let kind = if beside { "beside" } else { "alone" };
        let (start, runs, cpu) = session
            .measure_together(&format!("neighbours-{kind}"), loads)
            .await?;
        let requests = runs.first().map_or(0, |run| run.overall.requests);
        let Some(cores) = cpu.per_instance.first().copied() else {
            anyhow::bail!("the neighbours probe found no CPU figure for instance 1");
        };
        if requests == 0 {
            anyhow::bail!("the neighbours probe's load reached no instance ({kind})");
        }
        let micros = cores * cpu.seconds * 1e6 / requests as f64;
        session.step(&format!(
            "  {kind}: instance 1 used {micros:.0} µs of CPU per request ({requests} requests)"
        ));
        if !start.healthy {
            probe.unhealthy_rounds += 1;
        }
        if beside {
            probe.beside_us.push(micros);
        } else {
            probe.alone_us.push(micros);
        }
    }
    results.neighbours = Some(probe);
    Ok(())
}
