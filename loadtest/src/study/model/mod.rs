//! The study's results: what each phase measured, as `results.json` keeps it and the
//! report and `loadtest compare` read it back. Pure: no I/O.
//!
//! [`StudyResults`] (the whole of `results.json`) lives here; its parts live in
//! submodules, each re-exported here so that `model::X` names every type:
//! `run` (one measured run's figures: summary, start, CPU, reads and writes),
//! `phases` (what each phase measured), `database` (the database tier), and
//! `stats` (noise, whole seconds and recovery over a run's timeline).

mod database;
mod neighbours;
mod phases;
mod run;
mod stats;

pub use database::{BackendCapacity, DATABASE_TIER, DatabaseTier, QueryCell, QuerySettings};
pub use neighbours::{NeighbourComparison, NeighbourProbe, NeighbourRound, QUOTA_CEILING};
pub use phases::{FaultRun, FixedRun, PhaseTime, ScalingResult, TierRun, WriteCheck};
pub use run::{CacheLookups, ClassSummary, CpuUse, HealthCheck, MAX_ERROR_RATE, RunSummary};
pub use stats::{
    error_rate_noise, recovery_seconds, recovery_seconds_by, standard_error, whole_seconds,
};

use serde::{Deserialize, Serialize};

use super::meta::Meta;

/// Everything the study measured: `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    pub meta: Meta,
    pub scaling: Vec<ScalingResult>,
    /// The edge's capacity (cache on) in front of the CDN phase's pool; `None` without
    /// an edge.
    pub edge_capacity: Option<ScalingResult>,
    pub fixed: Vec<FixedRun>,
    pub tiers: Vec<TierRun>,
    pub faults: Vec<FaultRun>,
    pub writes: WriteCheck,
    /// Each phase's running time, in the order run.
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    /// PostgreSQL and Cassandra side by side (`None` in reports from before the tier).
    #[serde(default)]
    pub database_tier: Option<DatabaseTier>,
    /// One origin's CPU per request beside idle and beside busy neighbours, measured
    /// after the capacity searches (`None` in reports from before the probe, or when it
    /// could not run).
    #[serde(default)]
    pub neighbours: Option<NeighbourProbe>,
}

impl StudyResults {
    /// An empty result that the phases fill in.
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            scaling: Vec::new(),
            edge_capacity: None,
            fixed: Vec::new(),
            tiers: Vec::new(),
            faults: Vec::new(),
            writes: WriteCheck {
                acknowledged: 0,
                deleted_by_the_run: 0,
                checked: 0,
                lost: 0,
            },
            phases: Vec::new(),
            database_tier: None,
            neighbours: None,
        }
    }

    /// The capacity of `instances` straight to nginx, if that pool size was searched.
    pub fn capacity_of(&self, instances: usize) -> Option<&ScalingResult> {
        self.scaling
            .iter()
            .find(|result| result.instances == instances)
    }

    /// How many times the capacity of one instance the largest pool carries.
    pub fn scaling_factor(&self) -> Option<(usize, f64)> {
        let first = self.scaling.first()?;
        let last = self.scaling.last()?;
        (first.capacity_rps > 0.0 && last.instances > first.instances)
            .then(|| (last.instances, last.capacity_rps / first.capacity_rps))
    }

    /// Every measured run that started on a stack that was not healthy and idle, by name.
    pub fn unhealthy_starts(&self) -> Vec<String> {
        let mut names = Vec::new();
        for result in &self.scaling {
            for step in &result.steps {
                if !step.started_healthy() {
                    names.push(format!(
                        "capacity step {:.0}/s with {} instance(s)",
                        step.offered_rate, result.instances
                    ));
                }
            }
        }
        if let Some(edge) = &self.edge_capacity {
            for step in edge.steps.iter().filter(|step| !step.started_healthy()) {
                names.push(format!("edge capacity step {:.0}/s", step.offered_rate));
            }
        }
        for run in self.fixed.iter().filter(|run| !run.ours.started_healthy()) {
            names.push(format!("fixed rate, {}", run.original.configuration));
        }
        for tier in self
            .tiers
            .iter()
            .filter(|tier| !tier.summary.started_healthy())
        {
            names.push(format!(
                "cache tier edge {} Redis {}",
                on_off(tier.edge_cache),
                on_off(tier.redis)
            ));
        }
        for fault in self
            .faults
            .iter()
            .filter(|fault| !fault.summary.started_healthy())
        {
            names.push(format!("fault '{}'", fault.name));
        }
        if let Some(probe) = &self.neighbours {
            let unhealthy = probe
                .rounds
                .iter()
                .filter(|round| !round.started_healthy)
                .count();
            if unhealthy > 0 {
                names.push(format!("neighbours probe ({unhealthy} of its rounds)"));
            }
        }
        let tier_capacity = self.database_tier.iter().flat_map(|tier| &tier.capacity);
        for backend in tier_capacity.filter(|backend| backend.measured_in == DATABASE_TIER) {
            for step in backend
                .result
                .steps
                .iter()
                .filter(|step| !step.started_healthy())
            {
                names.push(format!(
                    "{} capacity step {:.0}/s (database tier)",
                    backend.backend, step.offered_rate
                ));
            }
        }
        names
    }
}

pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests;
