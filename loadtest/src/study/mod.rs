//! The scaling study: on the local stack (real PostgreSQL, or Cassandra with `--backend
//! cassandra`, Redis, nginx, origin instances
//! under CPU quotas, the edge), in named phases that each add their part to the results:
//!
//! 1. [`capacity`]: capacity per pool size straight to nginx, the original study's
//!    configurations at its fixed rate, and the [`neighbours`] probe (what the other
//!    origins on this host do to one origin's CPU per request);
//! 2. [`cdn`]: what the edge saves: its capacity beside the pool's, and the cache tiers
//!    with hit ratio, requests that reached the origins and the origin pool's CPU;
//! 3. [`faults`]: faults during load, each from a whole, healthy pool;
//! 4. [`database`]: the database tier, PostgreSQL and Cassandra side by side: the
//!    original's query table (`origin bench-queries`) and one pool size's capacity on each;
//! 5. [`writes`]: the lost-write check (last: it reads every acknowledged write).
//!
//! A phase is a module with `pub async fn run(&mut Session, &mut StudyResults)`; a new one
//! is one more module, one more line in [`run`], its part of
//! [`model::StudyResults`] (with `#[serde(default)]`, so older reports still read back)
//! and its section in [`report`]. Every load a phase runs goes through
//! [`Session::measure`](session::Session::measure): from a healthy, idle stack
//! ([`health`]), with the CPU each part used and the requests the origins saw ([`observe`]).
//!
//! Elsewhere: [`profile`] (how long each part runs), [`search`] (the capacity search),
//! [`meta`] (the machine, the quota), [`model`] (the results' shapes), [`report`] and
//! [`svg`] (Markdown, HTML, charts), [`compare`] (two reports side by side).

pub mod capacity;
pub mod cdn;
pub mod compare;
pub mod database;
pub mod faults;
pub mod health;
pub mod meta;
pub mod model;
pub mod neighbours;
pub mod observe;
pub mod profile;
pub mod report;
pub mod search;
pub mod session;
pub mod svg;
pub mod writes;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub use cdn::CDN_POOL;
pub use faults::FAULT_POOL;
use model::{PhaseTime, StudyResults};
pub use profile::Profile;
use session::Session;

/// `loadtest study` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StudyArgs {
    /// quick (a few minutes: the README's main command) or full.
    #[arg(long, value_enum, default_value = "quick")]
    pub profile: Profile,
    /// Report directory; default reports/<UTC date-time>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Latency objective of the capacity search (p99, milliseconds).
    #[arg(long, default_value_t = 100.0)]
    pub slo_ms: f64,
    /// Use free ports and a run directory inside the report directory instead of
    /// the fixed local-stack ports (for tests and for running beside a stack).
    #[arg(long)]
    pub ephemeral_ports: bool,
    /// Seed scale of the database (tiny, small, medium, full).
    #[arg(long)]
    pub seed_scale: Option<String>,
    /// The database of the study's stack (capacity, CDN, faults, lost writes); the
    /// database tier compares it with the other one on a second stack.
    #[arg(long, value_enum, default_value_t = stack::DatabaseBackend::Postgres)]
    pub backend: stack::DatabaseBackend,
    /// Run without the edge (faults then go through nginx; no edge-cache tiers).
    #[arg(long)]
    pub no_edge: bool,
    /// Seconds for each half of the generator-versus-wrk check run before the
    /// stack comes up (default: the profile's; 0 skips it).
    #[arg(long)]
    pub calibrate_seconds: Option<u64>,
    /// CPU quota per origin instance in cores (0: none). Default: derived from the
    /// machine, a quarter of its cores shared by the largest pool.
    #[arg(long)]
    pub cpu_per_instance: Option<f64>,
    /// CFS period of the quota in milliseconds. Default: the shortest that still gives
    /// the kernel's 1 ms minimum quota (10 to 100 ms).
    #[arg(long)]
    pub cpu_period_ms: Option<u64>,
    /// A report directory (or its results.json) to compare this run with: the
    /// comparison is printed and written beside the report (see `loadtest compare`).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// Runs one phase, timing it into the results.
macro_rules! phase {
    ($name:expr, $session:ident, $results:ident, $run:path) => {{
        let clock = Instant::now();
        $session.step(&format!("phase: {}", $name));
        $run(&mut $session, &mut $results).await?;
        $results.phases.push(PhaseTime {
            name: $name.into(),
            seconds: clock.elapsed().as_secs_f64(),
        });
    }};
}

pub async fn run(args: StudyArgs) -> anyhow::Result<ExitCode> {
    let baseline = match &args.baseline {
        Some(path) => Some(compare::load(path)?),
        None => None,
    };
    let (mut session, meta) = Session::open(&args).await?;
    let mut results = StudyResults::new(meta);
    phase!("capacity per pool size", session, results, capacity::run);
    phase!("what the CDN saves", session, results, cdn::run);
    phase!("faults during load", session, results, faults::run);
    phase!("database tier", session, results, database::run);
    phase!("lost writes", session, results, writes::run);
    let out = session.out.clone();
    session.close().await;

    results.meta.load_average_end = meta::load_average();
    report::write(&out, &results)?;
    session_note(&out, "report written", &results);
    println!("{}", report::markdown(&results));
    if let Some(old) = baseline {
        let comparison = compare::Comparison::of(&old, &results);
        compare::write(&out.join("compare"), &comparison)?;
        println!("{}", comparison.text());
        eprintln!(
            "comparison with the baseline written to {}",
            out.join("compare").display()
        );
    }
    Ok(if results.writes.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn session_note(out: &std::path::Path, what: &str, results: &StudyResults) {
    let total: f64 = results.phases.iter().map(|phase| phase.seconds).sum();
    eprintln!(
        "[study] {what}: {} (index.html, report.md, results.json); phases took {total:.0} s",
        out.display()
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        study: StudyArgs,
    }

    #[test]
    fn the_study_runs_on_postgresql_unless_told_otherwise() {
        let default = Cli::try_parse_from(["study"]).unwrap().study;
        assert_eq!(default.backend, stack::DatabaseBackend::Postgres);
        let cassandra = Cli::try_parse_from(["study", "--backend", "cassandra"])
            .unwrap()
            .study;
        assert_eq!(cassandra.backend, stack::DatabaseBackend::Cassandra);
        assert!(Cli::try_parse_from(["study", "--backend", "mysql"]).is_err());
    }
}
