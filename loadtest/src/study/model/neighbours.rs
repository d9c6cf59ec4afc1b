//! The neighbours probe's figures (`study::neighbours`): instance 1's CPU per request
//! in rounds with the other origins idle and with them busy, and which rounds may be
//! compared.

use serde::{Deserialize, Serialize};

use super::run::CpuUse;

/// The share of its quota above which a round's CPU per request is left out: an
/// instance near its quota is throttled, so its CPU per request is the quota's share of
/// a queue, not what its requests cost.
pub const QUOTA_CEILING: f64 = 0.85;

/// Instance 1's CPU per request at one rate, straight to it, with the other origins on
/// this host up and idle ("alone") and with them served too ("beside"). One operating
/// point: instance 1 at a share of one instance's capacity, its neighbours at their
/// share of the largest pool's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourProbe {
    /// Requests per second sent straight to instance 1 in every round.
    pub rate: f64,
    /// Requests per second sent straight to each neighbour in the rounds beside them.
    pub neighbour_rate: f64,
    /// Each round's length.
    pub seconds: f64,
    /// The other instances up (the largest pool's, less instance 1).
    pub neighbours: usize,
    /// In the order run; the two kinds alternate, alone first.
    pub rounds: Vec<NeighbourRound>,
}

/// One round of the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourRound {
    /// The neighbours were served too.
    pub beside: bool,
    pub started_healthy: bool,
    /// Requests instance 1's own counters saw.
    pub requests: u64,
    /// Instance 1's load: its failed requests (any error) and p99, from the client.
    pub errors: u64,
    pub p99_ms: f64,
    /// Instance 1's CPU per request, in µs.
    pub cpu_us: f64,
    /// Instance 1's CPU over its quota (`None` without one).
    pub quota_use: Option<f64>,
    /// What every part spent in the round.
    pub cpu: CpuUse,
}

impl NeighbourRound {
    /// Why the round may not be compared, if it may not.
    pub fn unfit(&self) -> Option<String> {
        if !self.started_healthy {
            Some("not from a healthy, idle stack".into())
        } else if self.errors > 0 {
            Some(format!("{} errors", self.errors))
        } else if self.requests == 0 {
            Some("no requests reached instance 1".into())
        } else {
            (self.quota_use)
                .filter(|share| *share > QUOTA_CEILING)
                .map(|share| format!("instance 1 at {:.0} % of its quota", share * 100.0))
        }
    }
}

/// The fit rounds of each kind compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeighbourComparison {
    /// Mean CPU per request (µs) alone and beside.
    pub alone_us: f64,
    pub beside_us: f64,
    /// alone / beside: the means', and the lowest and highest a pair of rounds gives.
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

impl NeighbourComparison {
    /// Every fit round alone above every fit round beside.
    pub fn apart(&self) -> bool {
        self.low > 1.0
    }

    /// Every fit round alone below every fit round beside.
    pub fn reversed(&self) -> bool {
        self.high < 1.0
    }
}

impl NeighbourProbe {
    /// Instance 1's CPU per request in the fit rounds of one kind.
    pub fn fit_us(&self, beside: bool) -> Vec<f64> {
        self.rounds
            .iter()
            .filter(|round| round.beside == beside && round.unfit().is_none())
            .map(|round| round.cpu_us)
            .collect()
    }

    /// The comparison, if each kind has a fit round with CPU spent.
    pub fn compare(&self) -> Option<NeighbourComparison> {
        let (alone, beside) = (self.fit_us(false), self.fit_us(true));
        let lowest = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
        if alone.is_empty() || beside.is_empty() || lowest(&alone) <= 0.0 || lowest(&beside) <= 0.0
        {
            return None;
        }
        let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
        let (alone_us, beside_us) = (mean(&alone), mean(&beside));
        Some(NeighbourComparison {
            alone_us,
            beside_us,
            ratio: alone_us / beside_us,
            low: lowest(&alone) / highest(&beside),
            high: highest(&alone) / lowest(&beside),
        })
    }
}
