//! The study's profiles (how long and how wide each part runs) and the original
//! study's figures it is compared with.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Quick,
    Full,
}

/// How long and how wide each part of the study runs.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSettings {
    pub sizes: &'static [usize],
    /// Where the first pool size's search starts (per instance); it doubles
    /// from there and gets one bisection more than the others (its capacity
    /// sets the ideal line).
    pub search_start: f64,
    pub search_max: f64,
    /// Later sizes start at the previous size's capacity and grow by this.
    pub search_growth: f64,
    pub bisect_steps: u32,
    /// How long each capacity-search step offers its rate: long enough that
    /// its p99 rests on more than a handful of requests.
    pub search_step: Duration,
    pub fixed_duration: Duration,
    /// Send the original's request counts (at its rate) instead of a short run.
    pub full_original_counts: bool,
    pub fault_duration: Duration,
    pub tier_duration: Duration,
    pub seed_scale: &'static str,
    /// Each half of the generator-versus-wrk check (0: skip it).
    pub calibrate: Duration,
    /// What this profile gives up for its running time, said in the report.
    pub trade: &'static str,
    /// Load before the first capacity step, left out of the report.
    pub warm_up: Duration,
    /// Load through the largest pool before the capacity searches, left out of the
    /// report, that fills the origins' Redis (`Session::fill_cache`).
    pub cache_fill: Duration,
    pub cache_fill_rate: f64,
    /// Each round of the neighbours probe after the capacity searches (`neighbours`).
    pub neighbours_round: Duration,
    /// The longest wait for a healthy, idle stack before a measured run.
    pub settle_within: Duration,
    /// The database tier's query table (`origin bench-queries`): closed-loop client
    /// counts, the measured and warm-up seconds of each cell, and the unmeasured
    /// seconds each backend serves before its first cell.
    pub db_query_clients: &'static [usize],
    pub db_query_seconds: f64,
    pub db_query_warmup: f64,
    pub db_backend_warmup: f64,
}

impl Profile {
    pub fn settings(self) -> ProfileSettings {
        match self {
            // 2¼-3¼ minutes on two cores, plus ½ for the cache fill and about 1¼ for
            // the database tier (on the slower of two machines, 7 December: the
            // Cassandra stack up in 10 s, the query table 36 s with 12 s of it warming
            // the two databases, the Cassandra capacity search 18 s; 300 s in all with
            // the fill, 330 s with the neighbours probe's four rounds of 5 s and their
            // settling): steps of 3 s (twice the old 1.5 s)
            // paid for with the original's own pool sizes only (no 5), a
            // gentler growth with one bisection after the first size, and 2 s
            // fixed-rate and tier runs.
            Profile::Quick => ProfileSettings {
                sizes: &[1, 2, 3, 10],
                search_start: 400.0,
                search_max: 40_000.0,
                search_growth: 1.5,
                bisect_steps: 1,
                search_step: Duration::from_secs(3),
                fixed_duration: Duration::from_secs(2),
                full_original_counts: false,
                // The repair at two thirds leaves 4 s: a restarted instance waits out
                // nginx's fail_timeout (2 s) before it gets traffic again.
                fault_duration: Duration::from_secs(12),
                tier_duration: Duration::from_secs(2),
                seed_scale: "small",
                calibrate: Duration::from_secs(2),
                warm_up: Duration::from_secs(2),
                cache_fill: Duration::from_secs(30),
                cache_fill_rate: 1000.0,
                neighbours_round: Duration::from_secs(5),
                settle_within: Duration::from_secs(20),
                db_query_clients: &[1, 16],
                db_query_seconds: 0.75,
                db_query_warmup: 0.25,
                db_backend_warmup: 6.0,
                trade: "quick profile, 5 to 6½ minutes on two cores (the database tier about 1¾ of them with its own cache fill, the study stack's cache fill ½, more on a machine's first run, which seeds the Cassandra node): capacity steps of 3 s bought with the original's own pool sizes only (1, 2, 3, 10; `--profile full` adds 5), one bisection after the first size (each capacity a lower bound, the true one up to about a quarter above it: the capacity table's \"Known within\"), the edge's capacity search in the same 3 s steps as the pool it is compared with, 2 s fixed-rate and tier runs, fault runs of 12 s (4 s after the repair, for nginx's 2 s fail_timeout and a second clean), and query-table cells of 0.75 s",
            },
            Profile::Full => ProfileSettings {
                sizes: &[1, 2, 3, 5, 10],
                search_start: 200.0,
                search_max: 80_000.0,
                search_growth: 2.0,
                bisect_steps: 5,
                search_step: Duration::from_secs(15),
                fixed_duration: Duration::from_secs(60),
                full_original_counts: true,
                fault_duration: Duration::from_secs(45),
                tier_duration: Duration::from_secs(30),
                seed_scale: "medium",
                calibrate: Duration::from_secs(10),
                warm_up: Duration::from_secs(10),
                cache_fill: Duration::from_secs(60),
                cache_fill_rate: 1000.0,
                neighbours_round: Duration::from_secs(15),
                settle_within: Duration::from_secs(60),
                db_query_clients: &[1, 16],
                db_query_seconds: 5.0,
                db_query_warmup: 1.0,
                db_backend_warmup: 15.0,
                trade: "full profile: capacity steps of 15 s, five bisections, the original's request counts",
            },
        }
    }
}

/// The original's load: the only rate it states (three services at 400 RPS).
pub const ORIGINAL_RATE: f64 = 400.0;

/// A row of the original study's Performance Summary.
///
/// Texts are `Cow` so that a report written earlier reads back (`loadtest compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginalRow {
    pub configuration: Cow<'static, str>,
    pub instances: usize,
    pub requests: u64,
    pub error_rate: Cow<'static, str>,
    pub avg_latency: Cow<'static, str>,
}

pub const ORIGINAL_SUMMARY: &[OriginalRow] = &[
    OriginalRow {
        configuration: Cow::Borrowed("Single Service"),
        instances: 1,
        requests: 6000,
        error_rate: Cow::Borrowed("0%"),
        avg_latency: Cow::Borrowed("~100ms"),
    },
    OriginalRow {
        configuration: Cow::Borrowed("Two Services"),
        instances: 2,
        requests: 12000,
        error_rate: Cow::Borrowed("0%"),
        avg_latency: Cow::Borrowed("<60ms"),
    },
    OriginalRow {
        configuration: Cow::Borrowed("Three Services"),
        instances: 3,
        requests: 24000,
        error_rate: Cow::Borrowed("<0.1%"),
        avg_latency: Cow::Borrowed("~800ms"),
    },
    OriginalRow {
        configuration: Cow::Borrowed("Ten Services + Redis"),
        instances: 10,
        requests: 60000,
        error_rate: Cow::Borrowed("~2.2%"),
        avg_latency: Cow::Borrowed("Sub-100ms"),
    },
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Profile;
    use crate::study::faults::fault_phases;

    #[test]
    fn a_fault_run_outlasts_nginx_s_hold_on_a_restarted_instance() {
        // A restarted instance may wait out nginx's fail_timeout before it gets traffic,
        // and a clean second after that shows the recovery within the run.
        let hold = Duration::from_secs(stack::nginx::FAIL_TIMEOUT_S + 1);
        for profile in [Profile::Quick, Profile::Full] {
            let run = profile.settings().fault_duration;
            let (_, repair_at) = fault_phases(run);
            assert!(
                run - repair_at > hold,
                "{profile:?}: {run:?} leaves {:?} after the repair",
                run - repair_at
            );
        }
    }
}
