//! The section on what the CDN is for: the edge's capacity beside the same pool's
//! straight to nginx, each with the search's bracket, and the two paths at one rate.

use super::tables::CapacityCells;
use super::{Table, cores, ms, percent, rate};
use crate::study::CDN_POOL;
use crate::study::model::{ScalingResult, StudyResults, TierRun};
use crate::study::profile::Profile;

pub fn intro(study: &StudyResults) -> String {
    let Some(edge) = &study.edge_capacity else {
        return "No edge in this run (--no-edge): nginx only.".into();
    };
    let slo_ms = study.meta.slo_ms;
    let nginx = study.capacity_of(CDN_POOL);
    format!(
        "On {} instances, within the objective: the edge (cache on) carried {}, the same pool straight to nginx {}. {}\
         At one rate both carry, the edge's hit ratio (its X-Cache: HIT or STALE, of every request including writes), \
         the requests that reached the origins (their own counters) and the CPU the origin pool spent.{}",
        edge.instances,
        bracketed(edge, slo_ms),
        nginx.map_or("not measured".into(), |nginx| bracketed(nginx, slo_ms)),
        nginx.map_or(String::new(), |nginx| edge_against_pool(
            edge,
            nginx,
            slo_ms,
            study.meta.profile == "quick"
        )),
        Saving::of(study, true).map_or(String::new(), |saving| format!(
            " At {}, the edge cache changed {}.",
            rate(saving.rate),
            saving.changes()
        )),
    )
}

/// The edge cache on against off, with Redis in one state, at the tiers' one rate: the
/// requests that reached the origins, and the CPU the origins and the database spent.
/// Each pair is (cache off, cache on).
pub struct Saving {
    rate: f64,
    origin_rate: (f64, f64),
    origin_cpu: (f64, f64),
    database_cpu: (f64, f64),
}

impl Saving {
    /// None unless both runs ran and counted their origin requests and CPU.
    pub fn of(study: &StudyResults, redis: bool) -> Option<Self> {
        let run = |edge_cache: bool| {
            study
                .tiers
                .iter()
                .find(|tier| tier.redis == redis && tier.edge_cache == edge_cache)
        };
        let (off, on) = (run(false)?, run(true)?);
        let pair = |figure: fn(&TierRun) -> Option<f64>| Some((figure(off)?, figure(on)?));
        Some(Self {
            rate: on.rate,
            origin_rate: pair(|tier| tier.summary.origin_rate())?,
            origin_cpu: pair(|tier| tier.summary.cpu.as_ref().map(|cpu| cpu.instances))?,
            database_cpu: pair(|tier| tier.summary.cpu.as_ref().map(|cpu| cpu.postgres))?,
        })
    }

    /// "the requests that reached the origins by -26% (...), ..."
    pub fn changes(&self) -> String {
        let (rate_off, rate_on) = self.origin_rate;
        let (cpu_off, cpu_on) = self.origin_cpu;
        let (db_off, db_on) = self.database_cpu;
        format!(
            "the requests that reached the origins by {} ({} to {}), the origins' CPU by {} \
             ({cpu_off:.3} to {cpu_on:.3} cores) and the database's by {} ({db_off:.3} to {db_on:.3})",
            change(self.origin_rate),
            rate(rate_off),
            rate(rate_on),
            change(self.origin_cpu),
            change(self.database_cpu),
        )
    }

    /// Whether the origins' CPU fell by less than half as much as their requests did:
    /// the requests the edge answered had cost them less than those still reaching them.
    pub fn requests_more_than_cpu(&self) -> bool {
        let fall = |(off, on): (f64, f64)| if off > 0.0 { 1.0 - on / off } else { 0.0 };
        fall(self.origin_rate) > 0.0 && fall(self.origin_cpu) < fall(self.origin_rate) / 2.0
    }
}

/// From the first figure of the pair to the second, in percent with its sign.
fn change((before, after): (f64, f64)) -> String {
    if before > 0.0 {
        match ((after / before - 1.0) * 100.0).round() {
            0.0 => "0%".into(),
            percent => format!("{percent:+.0}%"),
        }
    } else {
        "—".into()
    }
}

/// The tiers' paragraph: what the edge cache changed with Redis off (the section above
/// gives it with Redis on), and, when the figures show it, that behind Redis it saves
/// the origins requests more than CPU.
pub fn tiers_intro(study: &StudyResults) -> String {
    let mut text =
        "The edge cache and Redis, each on and off, on the same pool at the same rate.".to_owned();
    let Some(without) = Saving::of(study, false) else {
        return text;
    };
    text += &format!(
        " With Redis off, the edge cache changed {}.",
        without.changes()
    );
    if Saving::of(study, true).is_some_and(|with| with.requests_more_than_cpu())
        && !without.requests_more_than_cpu()
    {
        text += " With Redis on (the section above), it saved the origins requests more than \
                 CPU: the reads it answered from its cache, the origins would have answered from \
                 Redis, which costs them less than the database; without Redis, their CPU fell \
                 with their requests.";
    }
    text
}

/// A capacity with the rate above it that missed the objective: the search's bracket.
fn bracketed(result: &ScalingResult, slo_ms: f64) -> String {
    match result.knee(slo_ms) {
        Some(knee) => format!(
            "{} (and missed at {})",
            rate(result.capacity_rps),
            rate(knee.offered_rate)
        ),
        None => format!("{} (no faster step missed)", rate(result.capacity_rps)),
    }
}

/// What the two brackets allow one to say: each capacity is only known to lie between
/// the last rate that met the objective and the first that missed it (no upper
/// bound when no step missed).
fn edge_against_pool(
    edge: &ScalingResult,
    pool: &ScalingResult,
    slo_ms: f64,
    quick_profile: bool,
) -> String {
    let upper = |result: &ScalingResult| result.knee(slo_ms).map(|knee| knee.offered_rate);
    match (upper(edge), upper(pool)) {
        (_, Some(pool_upper)) if edge.capacity_rps >= pool_upper => format!(
            "The edge carried more than the pool alone: at least {}× (its lower bound over the pool's upper one). ",
            // Rounded down: "at least" must not round a 1.068 up to 1.07.
            hundredths_down(edge.capacity_rps / pool_upper)
        ),
        (Some(edge_upper), _) if edge_upper <= pool.capacity_rps => {
            "The edge carried less than the pool alone. ".into()
        }
        // More bisections narrow a bracket only where a step missed on both sides.
        (Some(_), Some(_)) if quick_profile => format!(
            "The two brackets overlap: this run does not tell the two capacities apart \
             (the full profile's {} bisections narrow them). ",
            Profile::Full.settings().bisect_steps
        ),
        _ => "The two brackets overlap: this run does not tell the two capacities apart. ".into(),
    }
}

/// `ratio` with two decimals, rounded down: with one, an edge 7% above the pool's
/// bracket read "at least 1.0×", as if it carried no more.
fn hundredths_down(ratio: f64) -> String {
    format!("{:.2}", (ratio * 100.0).floor() / 100.0)
}

/// Edge on against edge off on the same pool: capacity, and at the tiers' rate what
/// reached the origins and what the origins spent.
pub fn table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Path",
        "Capacity (same pool)",
        "Known within",
        "Offered",
        "Edge hit ratio",
        "Reached the origins",
        "Origin pool CPU",
        "p50",
        "p99",
        "Errors",
    ]);
    let slo_ms = study.meta.slo_ms;
    for tier in study.tiers.iter().filter(|tier| tier.redis) {
        let s = &tier.summary;
        let capacity = if tier.edge_cache {
            study.edge_capacity.as_ref()
        } else {
            study.capacity_of(CDN_POOL)
        }
        .map(|result| CapacityCells::of(result, slo_ms));
        table.rows.push(vec![
            if tier.edge_cache {
                "through the edge (cache on)"
            } else {
                "straight to nginx (no edge)"
            }
            .into(),
            capacity
                .as_ref()
                .map_or("—".into(), |cells| cells.capacity.clone()),
            capacity.map_or("—".into(), |cells| cells.known_within),
            rate(tier.rate),
            s.cache
                .hit_ratio()
                .map_or("—".into(), |ratio| format!("{:.1}%", ratio * 100.0)),
            s.origin_rate().map_or("—".into(), |origin| {
                format!(
                    "{} ({:.0}%)",
                    rate(origin),
                    origin / tier.rate.max(1e-9) * 100.0
                )
            }),
            s.cpu
                .as_ref()
                .map_or("—".into(), |cpu| cores(cpu.instances)),
            ms(s.p50_ms),
            ms(s.p99_ms),
            percent(s.error_rate),
        ]);
    }
    table
}
