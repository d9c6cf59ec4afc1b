//! The report's tables, built once from the results and rendered as Markdown and HTML.

use super::scaling::marginal;
use super::{Table, cores, ms, percent, rate};
use crate::study::model::{CpuUse, RunSummary, ScalingResult, StudyResults};
use crate::study::profile::ORIGINAL_RATE;

/// How a run started: at once, after a wait, or not healthy (with what was wrong).
pub fn started(summary: &RunSummary) -> String {
    match &summary.start {
        None => "not checked".into(),
        Some(check) if !check.healthy => format!(
            "UNHEALTHY after {:.0} s: {}",
            check.waited_s,
            check.problem.as_deref().unwrap_or("unknown")
        ),
        Some(check) if check.waited_s >= 2.0 => format!("healthy after {:.1} s", check.waited_s),
        Some(_) => "healthy".into(),
    }
}

pub fn performance_summary(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Configuration",
        "Requests",
        "Error rate",
        "p50",
        "p99",
        "Mean",
        "Throughput",
        "Start",
        "Original: requests",
        "Original: error rate",
        "Original: avg latency",
    ]);
    for run in &study.fixed {
        let ours = &run.ours;
        let over = against_capacity(study, run.original.instances)
            .map_or(String::new(), |against| against.row_note());
        table.rows.push(vec![
            format!(
                "{} ({} instance{} + nginx + Redis{over})",
                run.original.configuration,
                run.original.instances,
                if run.original.instances == 1 { "" } else { "s" }
            ),
            ours.requests.to_string(),
            percent(ours.error_rate),
            ms(ours.p50_ms),
            latency_or_timeout(ours.p99_ms, study.meta.client_timeout_ms),
            ms(ours.mean_ms),
            rate(ours.throughput),
            started(ours),
            run.original.requests.to_string(),
            run.original.error_rate.to_string(),
            run.original.avg_latency.to_string(),
        ]);
    }
    table
}

/// A percentile, or, at or above the client's timeout, that it is the timeout: a
/// request that timed out is counted at the time it was given up on.
fn latency_or_timeout(value_ms: f64, timeout_ms: Option<f64>) -> String {
    match timeout_ms {
        Some(timeout) if value_ms >= timeout => format!("≥ {} (the client's timeout)", ms(timeout)),
        _ => ms(value_ms),
    }
}

/// Where the original's rate lies against the capacity the study measured for a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AgainstCapacity {
    /// Above it: the search saw the pool miss the objective at or below the original's
    /// rate (`knee`), so that configuration's fixed-rate run overloads its pool.
    Over { capacity: f64, knee: f64 },
    /// Between the capacity and the first rate the search saw missed: the pool may carry
    /// it or not, and its fixed-rate run says which.
    Within { capacity: f64, knee: f64 },
}

impl AgainstCapacity {
    /// The row's words after its pool: what the capacity search says of the original's rate.
    pub fn row_note(&self) -> String {
        match *self {
            Self::Over { capacity, knee } => format!(
                ": {} is over this pool's capacity, {} (it missed at {})",
                rate(ORIGINAL_RATE),
                rate(capacity),
                rate(knee)
            ),
            Self::Within { capacity, knee } => format!(
                ": {} lies between this pool's capacity, {}, and the first rate it missed, {}",
                rate(ORIGINAL_RATE),
                rate(capacity),
                rate(knee)
            ),
        }
    }
}

/// The original's rate against the capacity search of a pool of `instances`; `None` when
/// the pool carried that rate or more within the objective (or was not searched).
pub fn against_capacity(study: &StudyResults, instances: usize) -> Option<AgainstCapacity> {
    let result = study
        .scaling
        .iter()
        .find(|result| result.instances == instances)?;
    let capacity = result.capacity_rps;
    if capacity <= 0.0 || capacity >= ORIGINAL_RATE {
        return None;
    }
    // Without a knee the search never saw the pool miss; its capacity is only a floor.
    let knee = result.knee(study.meta.slo_ms)?.offered_rate;
    Some(if knee <= ORIGINAL_RATE {
        AgainstCapacity::Over { capacity, knee }
    } else {
        AgainstCapacity::Within { capacity, knee }
    })
}

pub fn capacity_table(study: &StudyResults) -> Table {
    let slo = study.meta.slo_ms;
    let mut table = Table::new(&[
        "Instances",
        "Capacity",
        "Known within",
        "Ideal (linear)",
        "Efficiency",
        "p50 at capacity",
        "p99 at capacity",
        "Steps",
        "At the knee",
        "Origins' Redis hits at capacity",
    ]);
    let base = study
        .scaling
        .first()
        .map(|first| first.capacity_rps / first.instances as f64)
        .unwrap_or(0.0);
    for result in &study.scaling {
        let ideal = base * result.instances as f64;
        let cells = CapacityCells::of(result, slo);
        let unhealthy = result.unhealthy_starts();
        table.rows.push(vec![
            result.instances.to_string(),
            cells.capacity,
            cells.known_within,
            rate(ideal),
            if ideal > 0.0 {
                format!("{:.0}%", result.capacity_rps / ideal * 100.0)
            } else {
                "—".into()
            },
            cells.p50,
            cells.p99,
            if unhealthy > 0 {
                format!("{} ({unhealthy} started unhealthy)", result.steps.len())
            } else {
                result.steps.len().to_string()
            },
            cells.knee,
            redis_hits(result.at_capacity(slo)),
        ]);
    }
    table
}

/// The share of the origins' Redis lookups that found their key during a run: how much
/// of its work reached the database.
pub fn redis_hits(run: Option<&RunSummary>) -> String {
    run.and_then(|run| run.origin_cache)
        .and_then(|lookups| lookups.hit_ratio())
        .map_or("—".into(), |ratio| format!("{:.1}%", ratio * 100.0))
}

/// The cells every capacity row has, whichever table it is in: the capacity, how closely
/// the search bracketed it, the latency there, and the knee with what saturated at it.
pub struct CapacityCells {
    pub capacity: String,
    pub known_within: String,
    pub p50: String,
    pub p99: String,
    pub knee: String,
}

impl CapacityCells {
    pub fn of(result: &ScalingResult, slo_ms: f64) -> Self {
        let at_capacity = result.at_capacity(slo_ms);
        Self {
            // The reasons are in the section's text.
            capacity: match marginal(result, slo_ms) {
                Some(_) => format!("{} (marginal)", rate(result.capacity_rps)),
                None => rate(result.capacity_rps),
            },
            known_within: result.resolution(slo_ms).map_or("—".into(), |resolution| {
                format!("+{:.0}%", resolution * 100.0)
            }),
            p50: at_capacity.map_or("—".into(), |step| ms(step.p50_ms)),
            p99: at_capacity.map_or("—".into(), |step| ms(step.p99_ms)),
            knee: result.knee(slo_ms).map_or("not reached".into(), |knee| {
                format!(
                    "{}: {}",
                    rate(knee.offered_rate),
                    knee.cpu
                        .as_ref()
                        .map_or("no CPU figures".into(), CpuUse::bottleneck)
                )
            }),
        }
    }
}

/// The CPU of each part at each pool size's capacity step.
pub fn cpu_table(study: &StudyResults) -> Table {
    let mut headers = vec!["Instances", "At"];
    let parts = CpuUse::parts_names();
    headers.extend(parts.iter());
    headers.extend(["Machine busy", "Pool's quota"]);
    let mut table = Table::new(&headers);
    for result in &study.scaling {
        let Some(step) = result.at_capacity(study.meta.slo_ms) else {
            continue;
        };
        let Some(cpu) = &step.cpu else {
            continue;
        };
        let mut row = vec![result.instances.to_string(), rate(step.offered_rate)];
        row.extend(cpu.parts().iter().map(|(_, used)| cores(*used)));
        row.push(format!("{} of {}", cores(cpu.busy()), cpu.machine_cores));
        row.push(cpu.pool_quota().map_or("none".into(), cores));
        table.rows.push(row);
    }
    table
}

pub fn tier_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Edge cache",
        "Redis",
        "Offered",
        "Requests",
        "Error rate",
        "p50",
        "p99",
        "Edge hit ratio",
        "Reached the origins",
        "Origin pool CPU",
        "Origins' Redis hits",
        "Start",
    ]);
    for tier in &study.tiers {
        let s = &tier.summary;
        table.rows.push(vec![
            if tier.edge_cache {
                "on"
            } else {
                "off (via nginx)"
            }
            .into(),
            if tier.redis { "on" } else { "off (stopped)" }.into(),
            rate(tier.rate),
            s.requests.to_string(),
            percent(s.error_rate),
            ms(s.p50_ms),
            ms(s.p99_ms),
            s.cache.describe_hits(),
            s.origin_rate().map_or("—".into(), rate),
            s.cpu
                .as_ref()
                .map_or("—".into(), |cpu| cores(cpu.instances)),
            redis_hits(Some(s)),
            started(s),
        ]);
    }
    table
}

fn count_and_rate(errors: u64, rate: f64) -> String {
    format!("{errors} ({})", percent(rate))
}

/// Seconds from the fault until a side was clean to the end of the run.
fn recovered(seconds: Option<u64>, errors: u64) -> String {
    match seconds {
        _ if errors == 0 => "no errors".into(),
        Some(seconds) => format!("{seconds} s"),
        None => "not within the run".into(),
    }
}

pub fn fault_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Fault",
        "Offered",
        "Reads",
        "Read errors",
        "Read p50",
        "Read p99",
        "Reads clean after",
        "Writes",
        "Write errors",
        "Write p50",
        "Write p99",
        "Writes clean after",
        "Error classes",
        "Start",
    ]);
    for fault in &study.faults {
        let (reads, writes) = (&fault.reads, &fault.writes);
        table.rows.push(vec![
            fault.name.clone(),
            rate(fault.rate),
            reads.requests.to_string(),
            count_and_rate(reads.errors, reads.error_rate),
            ms(reads.p50_ms),
            ms(reads.p99_ms),
            recovered(fault.read_recovery_s, reads.errors + fault.summary.dropped),
            writes.requests.to_string(),
            count_and_rate(writes.errors, writes.error_rate),
            ms(writes.p50_ms),
            ms(writes.p99_ms),
            recovered(
                fault.write_recovery_s,
                writes.errors + fault.summary.dropped,
            ),
            fault.error_classes(),
            started(&fault.summary),
        ]);
    }
    table
}

pub fn phase_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&["Phase", "Time"]);
    for phase in &study.phases {
        table
            .rows
            .push(vec![phase.name.clone(), format!("{:.0} s", phase.seconds)]);
    }
    table
}

pub fn config_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&["Setting", "Value"]);
    table.rows = study
        .meta
        .configuration
        .iter()
        .map(|(key, value)| vec![key.clone(), value.clone()])
        .collect();
    table
}
