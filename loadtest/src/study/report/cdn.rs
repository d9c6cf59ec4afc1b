//! The section on what the CDN is for: the edge's capacity beside the same pool's
//! straight to nginx, each with the search's bracket, and the two paths at one rate.

use super::scaling::marginal_sentence;
use super::tables::CapacityCells;
use super::{Table, cores, micros_per_request, ms, percent, rate};
use crate::study::CDN_POOL;
use crate::study::model::{CpuUse, ScalingResult, StudyResults};
use crate::study::profile::Profile;

pub fn intro(study: &StudyResults) -> String {
    let Some(edge) = &study.edge_capacity else {
        return "No edge in this run (--no-edge): nginx only.".into();
    };
    let slo_ms = study.meta.slo_ms;
    let nginx = study.capacity_of(CDN_POOL);
    let marginal = marginal_sentence(
        std::iter::once(("the edge's".to_owned(), edge))
            .chain(nginx.map(|nginx| ("the pool straight to nginx's".to_owned(), nginx))),
        slo_ms,
    );
    let text = format!(
        "On {} instances, within the objective: the edge (cache on) carried {}, the same pool straight to nginx {}. {}\
         At one rate both carry, the edge's hit ratio (its X-Cache: HIT or STALE, of every request including writes; \
         a STALE answer may also have sent a revalidation to the origins, so its share is given apart), \
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
            " At {}, putting the edge (its cache on) in front changed {}.",
            rate(saving.rate),
            saving.changes()
        )),
    );
    text + &marginal
}

/// The edge cache on against off, with Redis in one state, at the tiers' one rate: the
/// requests that reached the origins, the CPU the origins and the database spent, and
/// the CPU of the edge and of the stack's parts together. Each pair is (cache off,
/// cache on); each figure is one run's.
pub struct Saving {
    rate: f64,
    origin_rate: (f64, f64),
    origin_cpu: (f64, f64),
    database_cpu: (f64, f64),
    edge_cpu: f64,
    stack_cpu: (f64, f64),
    /// The least change of a CPU figure that the readings can show: a part's CPU is
    /// counted in clock ticks (10 ms), so each figure may be off by a tick over its run,
    /// and two runs' figures two ticks apart may be the same use (half a tick more
    /// keeps two runs of slightly different lengths on the right side).
    cpu_resolution: f64,
}

/// A change smaller than this is not told apart from one run's noise.
const MEASURABLE: f64 = 0.05;

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
        let (cpu_off, cpu_on) = (off.summary.cpu.as_ref()?, on.summary.cpu.as_ref()?);
        let pair = |figure: fn(&CpuUse) -> f64| (figure(cpu_off), figure(cpu_on));
        Some(Self {
            rate: on.rate,
            origin_rate: (off.summary.origin_rate()?, on.summary.origin_rate()?),
            origin_cpu: pair(|cpu| cpu.instances),
            database_cpu: pair(|cpu| cpu.postgres),
            edge_cpu: cpu_on.edge,
            stack_cpu: pair(|cpu| cpu.busy() - cpu.other - cpu.generator),
            cpu_resolution: 2.5
                / stack::cpu::ticks_per_second()
                / cpu_off.seconds.min(cpu_on.seconds).max(1e-9),
        })
    }

    /// "the requests that reached the origins by -26% (392/s to 290/s), ..."
    pub fn changes(&self) -> String {
        let (rate_off, rate_on) = self.origin_rate;
        let (cpu_off, cpu_on) = self.origin_cpu;
        let (db_off, db_on) = self.database_cpu;
        let (stack_off, stack_on) = self.stack_cpu;
        let per_request = |cpu: f64, rate: f64| {
            micros_per_request(cpu, rate).map_or("—".into(), |micros| format!("{micros:.0}"))
        };
        format!(
            "the requests that reached the origins by {} ({} to {}), the origins' CPU by {} \
             ({cpu_off:.3} to {cpu_on:.3} cores; {} to {} µs per request they got) and the \
             database's by {} ({db_off:.3} to {db_on:.3}); the edge itself used {:.3} cores, on \
             the same machine, and the stack's parts together (not the load generator) \
             {stack_off:.2} to {stack_on:.2} (one run each)",
            change(self.origin_rate, 0.0),
            rate(rate_off),
            rate(rate_on),
            change(self.origin_cpu, self.cpu_resolution),
            per_request(cpu_off, rate_off),
            per_request(cpu_on, rate_on),
            change(self.database_cpu, self.cpu_resolution),
            self.edge_cpu,
        )
    }
}

/// From the first figure of the pair to the second, in percent with its sign; "no
/// measurable amount" under [`MEASURABLE`], or when the two differ by no more than
/// `resolution`, the least difference the readings can show.
fn change((before, after): (f64, f64), resolution: f64) -> String {
    if before <= 0.0 {
        return "—".into();
    }
    let change = after / before - 1.0;
    if change.abs() < MEASURABLE || (after - before).abs() <= resolution {
        "no measurable amount".into()
    } else {
        format!("{:+.0}%", change * 100.0)
    }
}

/// The tiers' paragraph: what the edge cache changed with Redis off (the section above
/// gives it with Redis on).
pub fn tiers_intro(study: &StudyResults) -> String {
    let text = "The edge cache and Redis, each on and off, on the same pool at the same rate.";
    match Saving::of(study, false) {
        Some(without) => format!(
            "{text} With Redis off, putting the edge (its cache on) in front changed {}.",
            without.changes()
        ),
        None => text.into(),
    }
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
            "The edge carried more than the pool alone: at least {}× (its lower bound over the pool's upper one; one search each). ",
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
    // Past the float error of a quotient that is exactly a hundredth (1150/1000).
    format!("{:.2}", (ratio * 100.0 + 1e-9).floor() / 100.0)
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
            s.cache.describe_hits(),
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
