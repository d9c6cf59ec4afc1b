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
