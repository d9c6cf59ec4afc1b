//! Statistics over a run's figures and its per-second timeline: the noise of a rate or a
//! percentile, the seconds the schedule filled, and how long a fault took to clear.

use crate::recorder::Second;

/// The noise of an error rate of `errors` in `requests`: the binomial standard error, or
/// 3/n (the "rule of three") when there were none.
pub fn error_rate_noise(errors: u64, error_rate: f64, requests: u64) -> f64 {
    let n = requests.max(1) as f64;
    if errors == 0 {
        3.0 / n
    } else {
        (error_rate * (1.0 - error_rate) / n).sqrt()
    }
}

/// The seconds of a timeline that the schedule filled completely: the last bucket after
/// the schedule's end holds only the tail of in-flight requests and would read as a drop.
pub fn whole_seconds(duration_s: f64, timeline: &[Second]) -> &[Second] {
    let whole = (duration_s + 1e-6).floor().max(0.0) as usize;
    &timeline[..whole.min(timeline.len())]
}

/// Standard error of the mean of `values` (`None` for fewer than two).
pub fn standard_error(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.filter(|value| *value > 0.0).collect();
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((variance / n).sqrt())
}

/// Seconds from `fault_second` until every later second is clean.
pub fn recovery_seconds(timeline: &[Second], fault_second: usize) -> Option<u64> {
    recovery_seconds_by(timeline, fault_second, |second| {
        second.errors > 0 || second.dropped > 0
    })
}

/// Seconds from `fault_second` until no later second is `bad`.
pub fn recovery_seconds_by(
    timeline: &[Second],
    fault_second: usize,
    bad: impl Fn(&Second) -> bool,
) -> Option<u64> {
    if timeline.len() <= fault_second {
        return None;
    }
    // The last second is usually partial (tail of in-flight requests): judge all of it anyway.
    let last_bad = timeline.iter().rposition(bad);
    match last_bad {
        None => Some(0),
        Some(bad) if bad < fault_second => Some(0),
        Some(bad) if bad + 1 < timeline.len() => Some((bad + 1 - fault_second) as u64),
        Some(_) => None,
    }
}
