//! The capacity section's verdict: how far the pool scaled (with the factor the
//! searches' brackets allow), what stopped it, and what a capacity above the linear
//! line or one met within its noise means.

use std::fmt::Write as _;

use super::neighbours::neighbours_taken_out;
use super::{micros_per_request, ms, percent, rate};
use crate::study::model::{CpuUse, MAX_ERROR_RATE, ScalingResult, StudyResults};

/// How far the pool scaled, against the shape to reach, and what stopped it if it fell short.
pub(super) fn scaling_verdict(study: &StudyResults) -> String {
    let Some((largest, factor)) = study.scaling_factor() else {
        return "The pool sizes' capacities cannot be compared (no capacity at one instance)."
            .into();
    };
    let target = if study.meta.profile == "full" {
        8.0
    } else {
        6.0
    };
    let bracket = factor_bracket(study);
    let mut text = format!(
        "{largest} instances carried {factor:.1}× the capacity of one{}. The shape to reach on a 2-core machine: at least 8× in the full profile, 6× in the quick one.",
        bracket.map_or(String::new(), |(low, high)| format!(
            " (the searches' brackets allow {low:.1}× to {high:.1}×, in one run)"
        ))
    );
    if bracket.is_some_and(|(low, high)| low < target && target <= high) {
        let _ = write!(
            text,
            " Not told apart from {target:.0}×: its brackets allow both sides of it."
        );
    } else if factor < target {
        let why = study
            .scaling
            .last()
            .and_then(|result| result.knee(study.meta.slo_ms))
            .and_then(|knee| knee.cpu.as_ref())
            .map_or("no CPU figures at its knee".into(), CpuUse::bottleneck);
        let _ = write!(
            text,
            " Short of {target:.0}×: at the knee of {largest} instances, {why}."
        );
    }
    text.push_str(&superlinear_note(study));
    text.push_str(&marginal_note(study));
    text
}

/// The scaling factor as the two searches' brackets allow it: from the largest pool's
/// capacity over the rate one instance missed, to the rate the largest pool missed over
/// one instance's capacity.
fn factor_bracket(study: &StudyResults) -> Option<(f64, f64)> {
    let slo_ms = study.meta.slo_ms;
    let (first, last) = (study.scaling.first()?, study.scaling.last()?);
    let (first_missed, last_missed) = (first.knee(slo_ms)?, last.knee(slo_ms)?);
    if first.capacity_rps <= 0.0 || first_missed.offered_rate <= 0.0 {
        return None;
    }
    // Outward to the tenth (a bracket must not narrow in the rounding), past the
    // float error of a quotient that is exactly a tenth.
    Some((
        (last.capacity_rps / first_missed.offered_rate * 10.0 + 1e-9).floor() / 10.0,
        (last_missed.offered_rate / first.capacity_rps * 10.0 - 1e-9).ceil() / 10.0,
    ))
}

/// A capacity above the linear line from one instance: say whether the search's brackets
/// allow it, and give each pool's CPU per request at capacity (a pool at its quota
/// carries more per instance where that is lower), so no reader takes the line's excess
/// as a result.
fn superlinear_note(study: &StudyResults) -> String {
    let slo_ms = study.meta.slo_ms;
    let Some(first) = study.scaling.first() else {
        return String::new();
    };
    let instances = |result: &ScalingResult| result.instances.max(1) as f64;
    let per_instance = first.capacity_rps / instances(first);
    if per_instance <= 0.0 {
        return String::new();
    }
    let above: Vec<(&ScalingResult, f64)> = study
        .scaling
        .iter()
        .skip(1)
        .map(|result| {
            let efficiency = result.capacity_rps / (per_instance * instances(result));
            (result, efficiency)
        })
        .filter(|(_, efficiency)| *efficiency > 1.1)
        .collect();
    if above.is_empty() {
        return String::new();
    }
    let efficiencies: Vec<String> = above
        .iter()
        .map(|(result, efficiency)| {
            format!("{} instances: {:.0}%", result.instances, efficiency * 100.0)
        })
        .collect();
    // One instance's capacity lies below the rate it missed; n times that bound is the
    // most n instances could carry at one instance's rate.
    let margins = match first.knee(slo_ms) {
        Some(knee) => {
            let upper = knee.offered_rate / instances(first);
            let short: Vec<String> = above
                .iter()
                .filter(|(result, _)| upper * instances(result) < result.capacity_rps)
                .map(|(result, _)| {
                    format!(
                        "{} {}",
                        possessive(result.instances),
                        rate(result.capacity_rps)
                    )
                })
                .collect();
            if short.is_empty() {
                format!(
                    "is within the search's margins: one instance's capacity lies below {}, \
                     and that many times it reaches each of these pools' capacities",
                    rate(upper)
                )
            } else {
                format!(
                    "is more than the search's margins allow: one instance's capacity lies \
                     below {}, and that many times it falls short of {}",
                    rate(upper),
                    short.join(" and ")
                )
            }
        }
        None => "has no margin to rest on (no step of one instance missed)".into(),
    };
    let cpu = cpu_note(study);
    format!(
        " Efficiency above 100 % ({}) {margins}.{cpu}",
        efficiencies.join(", ")
    )
}

/// Each pool's CPU per request at capacity (a pool at its quota carries more per instance
/// where that is lower), and what the study can say of why it differs.
fn cpu_note(study: &StudyResults) -> String {
    let slo_ms = study.meta.slo_ms;
    let cpu_per_request: Vec<String> = study
        .scaling
        .iter()
        .filter_map(|result| {
            let step = result.at_capacity(slo_ms)?;
            let micros = micros_per_request(step.cpu.as_ref()?.instances, step.offered_rate)?;
            Some(format!("{}: {micros:.0} µs", result.instances))
        })
        .collect();
    if cpu_per_request.is_empty() {
        return String::new();
    }
    let unmeasured = "this study does not measure how much of the difference in CPU that explains";
    let why = match (neighbours_taken_out(study), redis_hits_note(study)) {
        (None, None) => "this study does not measure why it differs between pools.".into(),
        (None, Some(hits)) => format!("{hits}; {unmeasured}."),
        (Some(neighbours), None) => format!("{neighbours}."),
        (Some(neighbours), Some(hits)) => format!("{neighbours}. Besides, {hits}; {unmeasured}."),
    };
    format!(
        " The origins' CPU per request at each pool's capacity (instances: CPU): {}; {why}",
        cpu_per_request.join(", "),
    )
}

/// What else differed between the pools at capacity, as far as the study measured it:
/// the share of the origins' lookups that found their key in the one Redis they share
/// (each hit spares a database read). Said when it spread by five points or more.
fn redis_hits_note(study: &StudyResults) -> Option<String> {
    let slo_ms = study.meta.slo_ms;
    let hits: Vec<(usize, f64)> = study
        .scaling
        .iter()
        .filter_map(|result| {
            let lookups = result.at_capacity(slo_ms)?.origin_cache?;
            Some((result.instances, lookups.hit_ratio()?))
        })
        .collect();
    let lowest = hits
        .iter()
        .map(|(_, ratio)| *ratio)
        .fold(f64::INFINITY, f64::min);
    let highest = hits.iter().map(|(_, ratio)| *ratio).fold(0.0, f64::max);
    if hits.is_empty() || highest - lowest < 0.05 - 1e-9 {
        return None;
    }
    let listed: Vec<String> = hits
        .iter()
        .map(|(instances, ratio)| format!("{instances}: {:.0}%", ratio * 100.0))
        .collect();
    Some(format!(
        "the pools share one Redis, and the share of the origins' lookups that found their \
         key there at capacity differed too ({}; each hit spares a database read)",
        listed.join(", ")
    ))
}

/// "1 instance's", "5 instances'".
fn possessive(instances: usize) -> String {
    if instances == 1 {
        "1 instance's".into()
    } else {
        format!("{instances} instances'")
    }
}

/// The pool sizes' capacities that are marginal (see [`marginal`]), in one sentence.
fn marginal_note(study: &StudyResults) -> String {
    marginal_sentence(
        study
            .scaling
            .iter()
            .map(|result| (possessive(result.instances), result)),
        study.meta.slo_ms,
    )
}

/// How a capacity's step met the objective by less than twice the noise of its p99 (the
/// standard error of its per-second p99s) or of its error rate (binomial, for a step
/// that had errors), so that a second run may place it a step lower; `None` when it met
/// it by more. Dropped arrivals are left out: the study's generator drops one only when
/// all its 1,024 requests in flight are waiting, far past the p99 objective.
pub fn marginal(result: &ScalingResult, slo_ms: f64) -> Option<String> {
    let step = result.at_capacity(slo_ms)?;
    let mut close = Vec::new();
    if let Some(noise) = step.p99_noise_ms
        && slo_ms - step.p99_ms < 2.0 * noise
    {
        close.push(format!("p99 {}, noise ±{}", ms(step.p99_ms), ms(noise)));
    }
    let noise = step.error_rate_noise();
    if step.errors > 0 && MAX_ERROR_RATE - step.error_rate < 2.0 * noise {
        close.push(format!(
            "errors {}, noise ±{}",
            percent(step.error_rate),
            percent(noise)
        ));
    }
    (!close.is_empty()).then(|| close.join("; "))
}

/// A sentence naming the marginal capacities among `named` (each with its owner in the
/// possessive: "2 instances'", "the edge's"); empty when none is.
pub fn marginal_sentence<'a>(
    named: impl IntoIterator<Item = (String, &'a ScalingResult)>,
    slo_ms: f64,
) -> String {
    let marginal: Vec<String> = named
        .into_iter()
        .filter_map(|(owner, result)| {
            marginal(result, slo_ms).map(|close| format!("{owner} ({close})"))
        })
        .collect();
    if marginal.is_empty() {
        return String::new();
    }
    format!(
        " Marginal: {} capacity met the objective by less than twice the noise of its p99 (the \
         standard error of the step's per-second p99s) or of its error rate; a second run may place it a step lower.",
        marginal.join(", ")
    )
}
