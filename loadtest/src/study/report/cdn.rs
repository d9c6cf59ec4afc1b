//! The section on what the CDN is for: the edge's capacity beside the same pool's
//! straight to nginx, each with the search's bracket, and the two paths at one rate.

use super::tables::CapacityCells;
use super::{Table, cores, ms, percent, rate};
use crate::study::CDN_POOL;
use crate::study::model::{ScalingResult, StudyResults};
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
         the requests that reached the origins (their own counters) and the CPU the origin pool spent.",
        edge.instances,
        bracketed(edge, slo_ms),
        nginx.map_or("not measured".into(), |nginx| bracketed(nginx, slo_ms)),
        nginx.map_or(String::new(), |nginx| edge_against_pool(
            edge,
            nginx,
            slo_ms,
            study.meta.profile == "quick"
        )),
    )
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
            // Rounded down: "at least" must not round a 1.46 up to 1.5.
            tenths_down(edge.capacity_rps / pool_upper)
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

/// `ratio` with one decimal, rounded down.
fn tenths_down(ratio: f64) -> String {
    format!("{:.1}", (ratio * 10.0).floor() / 10.0)
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
