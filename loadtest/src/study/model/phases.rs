//! What the phases measured: the capacity searches ([`ScalingResult`]), the original's
//! fixed-rate runs, the cache tiers, the faults, the lost-write check, and how long each
//! phase ran.

use serde::{Deserialize, Serialize};

use super::run::{ClassSummary, RunSummary};
use crate::recorder::Second;
use crate::study::profile::OriginalRow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingResult {
    pub instances: usize,
    pub capacity_rps: f64,
    /// Every step of the search, in the order run.
    pub steps: Vec<RunSummary>,
}

impl ScalingResult {
    /// The step at capacity: the highest offered rate within the objective.
    pub fn at_capacity(&self, slo_ms: f64) -> Option<&RunSummary> {
        self.steps
            .iter()
            .filter(|step| step.meets(slo_ms))
            .max_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate))
    }

    /// The knee: the lowest offered rate above capacity that missed the objective.
    pub fn knee(&self, slo_ms: f64) -> Option<&RunSummary> {
        self.steps
            .iter()
            .filter(|step| !step.meets(slo_ms) && step.offered_rate > self.capacity_rps)
            .min_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate))
    }

    /// How far the true capacity may lie above the figure: up to the knee's rate (the
    /// search's resolution), as a fraction of the capacity.
    pub fn resolution(&self, slo_ms: f64) -> Option<f64> {
        let knee = self.knee(slo_ms)?;
        (self.capacity_rps > 0.0)
            .then(|| (knee.offered_rate - self.capacity_rps) / self.capacity_rps)
    }

    /// Steps that started on a stack that was not healthy and idle.
    pub fn unhealthy_starts(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| !step.started_healthy())
            .count()
    }
}

/// One origin's CPU per request at one rate, with the other origins on this host idle
/// and with them busy: the one-instance pool is searched beside idle neighbours and the
/// larger pools beside one another, so a difference here is a difference between the
/// pools that is the host's, not the pools'.
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
    /// Instance 1's CPU per request (µs) in each round with its neighbours idle, and in
    /// each with them served at `neighbour_rate`, in the order run (the kinds alternate).
    pub alone_us: Vec<f64>,
    pub beside_us: Vec<f64>,
    /// Rounds that started on a stack that was not healthy and idle.
    #[serde(default)]
    pub unhealthy_rounds: usize,
}

impl NeighbourProbe {
    /// How many times its CPU per request beside busy neighbours one instance spends
    /// alone (the rounds' means).
    pub fn ratio(&self) -> Option<f64> {
        let (alone, beside) = (mean(&self.alone_us)?, mean(&self.beside_us)?);
        (beside > 0.0).then(|| alone / beside)
    }

    pub fn alone_mean_us(&self) -> Option<f64> {
        mean(&self.alone_us)
    }

    pub fn beside_mean_us(&self) -> Option<f64> {
        mean(&self.beside_us)
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedRun {
    pub original: OriginalRow,
    pub ours: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierRun {
    pub edge_cache: bool,
    pub redis: bool,
    pub rate: f64,
    pub summary: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRun {
    pub name: String,
    /// What was done, true to the configuration run (pool size, edge or not).
    pub description: String,
    /// What the design promises under this fault.
    pub promise: String,
    /// Where the load went: "the edge" or "nginx (no edge)".
    pub through: String,
    pub rate: f64,
    pub fault_at_s: f64,
    /// When the repair began, in seconds into the run; for a restart of the
    /// database, which repairs itself, when the restart returned.
    pub repair_at_s: f64,
    pub summary: RunSummary,
    pub reads: ClassSummary,
    pub writes: ClassSummary,
    /// Seconds from the fault until the run was clean again (no errors, no
    /// drops) to its end; `None` if it never was.
    pub recovery_s: Option<u64>,
    /// The same for reads alone (read errors or drops) and writes alone.
    pub read_recovery_s: Option<u64>,
    pub write_recovery_s: Option<u64>,
    pub timeline: Vec<Second>,
}

impl FaultRun {
    /// Error classes of reads and of writes, e.g.
    /// `reads: none; writes: 503 ×40 (all with Retry-After)`.
    pub fn error_classes(&self) -> String {
        format!(
            "reads: {}; writes: {}",
            self.reads.classes.describe(),
            self.writes.classes.describe()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCheck {
    pub acknowledged: u64,
    pub deleted_by_the_run: u64,
    pub checked: u64,
    pub lost: u64,
}

/// How long one phase of the study took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
}
