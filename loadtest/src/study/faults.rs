//! Phase: faults during load, through the edge when there is one, on a pool of
//! [`FAULT_POOL`]: each run starts from a whole, healthy pool, the fault comes at a third
//! of the run and its repair at two thirds, and reads and writes are counted apart.

use std::time::Duration;

use stack::nginx::FAIL_TIMEOUT_S;

use super::model::{ClassSummary, FaultRun, StudyResults, recovery_seconds, recovery_seconds_by};
use super::search;
use super::session::Session;
use crate::schedule::Schedule;

/// Instances in the pool the faults are injected into.
pub const FAULT_POOL: usize = 4;

/// The faults injected during load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillOne,
    KillHalf,
    StopRedis,
    RestartDatabase,
    AllOriginsAway,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::KillOne,
        Fault::KillHalf,
        Fault::StopRedis,
        Fault::RestartDatabase,
        Fault::AllOriginsAway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillOne => "kill one instance",
            Fault::KillHalf => "kill half the instances",
            Fault::StopRedis => "stop Redis",
            Fault::RestartDatabase => "restart the database",
            Fault::AllOriginsAway => "all origins away",
        }
    }

    /// The name a report gives this fault; older reports named the database restart
    /// after PostgreSQL, the only database then.
    pub fn canonical_name(name: &str) -> &str {
        match name {
            "restart PostgreSQL" => Fault::RestartDatabase.name(),
            other => other,
        }
    }

    /// The instances this fault kills in a pool of `pool` (numbered from 1).
    pub fn victims(self, pool: usize) -> Vec<usize> {
        match self {
            Fault::KillOne => vec![1],
            Fault::KillHalf => (1..=pool / 2).collect(),
            Fault::AllOriginsAway => (1..=pool).collect(),
            Fault::StopRedis | Fault::RestartDatabase => Vec::new(),
        }
    }

    /// What is done, in a pool of `pool` instances, with the load going
    /// through the edge or (without it) straight to nginx.
    pub fn description(self, pool: usize, edge: bool) -> String {
        let path = if edge {
            format!("load through the edge → nginx → {pool} instances")
        } else {
            format!("load straight to nginx → {pool} instances (no edge)")
        };
        let action = match self {
            Fault::KillOne => {
                format!("SIGKILL instance 1 of {pool} at 1/3 of the run, restart it at 2/3")
            }
            Fault::KillHalf => {
                let half = pool / 2;
                format!("SIGKILL instances 1-{half} of {pool} at 1/3, restart them at 2/3")
            }
            Fault::StopRedis => "stop Redis at 1/3, start it again at 2/3".to_owned(),
            Fault::RestartDatabase => {
                "restart the database (PostgreSQL or Cassandra) at 1/3 (same data, same port)"
                    .to_owned()
            }
            Fault::AllOriginsAway => {
                format!("SIGKILL all {pool} instances at 1/3, restart them at 2/3")
            }
        };
        format!("{action}; {path}")
    }

    /// What the design promises under this fault, for the configuration run.
    pub fn promise(self, edge: bool) -> String {
        let back = format!(
            "until the instances are back and nginx, which keeps a failed instance out for {FAIL_TIMEOUT_S} s \
             (its passive health check), sends to them again"
        );
        match (self, edge) {
            (Fault::KillOne | Fault::KillHalf, _) => format!(
                "nginx marks a dead instance down after its first failure and retries idempotent requests (GET) on another: \
                 reads should not fail; a write in flight on a killed instance may fail (writes are never retried); \
                 the survivors carry the load, alone {back}"
            ),
            (Fault::StopRedis, _) => {
                "a cache failure never fails a request: no errors, reads go to the database (latency may rise)".into()
            }
            (Fault::RestartDatabase, true) => {
                "requests that need the database are answered 503 with Retry-After until it is back; reads cached in Redis or at the edge keep being served; no acknowledged write is lost".into()
            }
            (Fault::RestartDatabase, false) => {
                "requests that need the database are answered 503 with Retry-After until it is back; reads cached in Redis keep being served; no acknowledged write is lost".into()
            }
            (Fault::AllOriginsAway, true) => format!(
                "the edge serves reads it holds from its cache (stale-if-error); reads it never cached and every write \
                 cannot be served and fail (502/503/504) by design, {back}"
            ),
            (Fault::AllOriginsAway, false) => format!(
                "with no edge in front nothing can answer: nginx has no cache, so reads and writes fail {back} \
                 (this run shows what the edge buys)"
            ),
        }
    }
}

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    session.stack.scale_to(FAULT_POOL).await?;
    let nginx_rate = search::fault_rate(&results.scaling, FAULT_POOL);
    let edge_capacity = results.edge_capacity.as_ref().map(|edge| edge.capacity_rps);
    let rate = search::edge_fault_rate(nginx_rate, edge_capacity);
    results.meta.configuration.push((
        "fault rate".into(),
        match edge_capacity {
            Some(edge) => format!(
                "{rate:.0}/s: the lower of half the capacity of the largest pool of at most {FAULT_POOL} instances \
                 ({nginx_rate:.0}/s) and half the edge's capacity ({:.0}/s)",
                edge * 0.5
            ),
            None => format!(
                "{rate:.0}/s: half the capacity of the largest pool of at most {FAULT_POOL} instances"
            ),
        },
    ));
    let through_edge = session.stack.edge_url().is_some();
    for fault in Fault::ALL {
        session.step(&format!(
            "fault '{}' during {rate:.0}/s: {}",
            fault.name(),
            fault.description(FAULT_POOL, through_edge)
        ));
        let run = run_fault(session, fault, rate).await?;
        let recovered =
            |seconds: Option<u64>| seconds.map_or("never".to_owned(), |s| format!("{s} s"));
        session.step(&format!(
            "  reads: errors {} ({:.3}%), p99 {:.1} ms, clean after {}; writes: errors {} ({:.3}%), p99 {:.1} ms, clean after {}; classes: {}",
            run.reads.errors,
            run.reads.error_rate * 100.0,
            run.reads.p99_ms,
            recovered(run.read_recovery_s),
            run.writes.errors,
            run.writes.error_rate * 100.0,
            run.writes.p99_ms,
            recovered(run.write_recovery_s),
            run.error_classes(),
        ));
        results.faults.push(run);
    }
    Ok(())
}

/// When, into a fault run of `duration`, the fault comes and its repair begins: at
/// one third and two thirds, so the run shows the stack before, during and after.
pub(super) fn fault_phases(duration: Duration) -> (Duration, Duration) {
    (duration / 3, duration * 2 / 3)
}

/// One fault during load; the run starts from the whole pool (anything a previous fault
/// left down is repaired first) and a healthy, idle stack.
async fn run_fault(session: &mut Session, fault: Fault, rate: f64) -> anyhow::Result<FaultRun> {
    let repaired = session.stack.repair().await?;
    if !repaired.is_empty() {
        session.step(&format!("  repaired first: {}", repaired.join(", ")));
    }
    let through_edge = session.stack.edge_url().is_some();
    let url = session
        .stack
        .edge_url()
        .unwrap_or_else(|| session.stack.nginx_url());
    let duration = session.profile.fault_duration;
    let (fault_at, repair_at) = fault_phases(duration);
    let victims = fault.victims(FAULT_POOL);
    let label = format!("fault-{}", fault.name());
    // Returns when, in seconds into the run, the repair began: for the database's
    // restart, which is its own repair, when the restart returned.
    let inject = async |stack: &mut stack::Stack| -> anyhow::Result<f64> {
        let began = tokio::time::Instant::now();
        tokio::time::sleep_until(began + fault_at).await;
        match fault {
            Fault::StopRedis => stack.stop_redis().await?,
            Fault::RestartDatabase => {
                stack.restart_database().await?;
                return Ok(began.elapsed().as_secs_f64());
            }
            _ => {
                for &victim in &victims {
                    stack.kill_instance(victim)?;
                }
            }
        }
        tokio::time::sleep_until(began + repair_at).await;
        match fault {
            Fault::StopRedis => stack.start_redis().await?,
            Fault::RestartDatabase => unreachable!("the restart returned above"),
            _ => stack.restart_instances(&victims).await?,
        }
        Ok(repair_at.as_secs_f64())
    };
    let (results, mut summary, repair_at_s) = session
        .measure_during(
            &label,
            &url,
            Schedule::constant(rate, duration),
            false,
            inject,
        )
        .await?;
    if let Some(start) = summary.start.as_mut() {
        start.repaired = repaired;
    }
    let fault_second = fault_at.as_secs_f64();
    let timeline = &results.timeline;
    let fault_index = fault_second as usize;
    let is_write = |name: &str| session.is_write(name);
    Ok(FaultRun {
        name: fault.name().to_owned(),
        description: fault.description(FAULT_POOL, through_edge),
        promise: fault.promise(through_edge),
        through: if through_edge {
            "the edge"
        } else {
            "nginx (no edge)"
        }
        .to_owned(),
        rate,
        fault_at_s: fault_second,
        repair_at_s,
        summary,
        reads: ClassSummary::of_endpoints(&results, |name| !is_write(name))?,
        writes: ClassSummary::of_endpoints(&results, is_write)?,
        recovery_s: recovery_seconds(timeline, fault_index),
        read_recovery_s: recovery_seconds_by(timeline, fault_index, |second| {
            second.read_errors() > 0 || second.dropped > 0
        }),
        write_recovery_s: recovery_seconds_by(timeline, fault_index, |second| {
            second.write_errors > 0 || second.dropped > 0
        }),
        timeline: timeline.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_text_is_true_to_the_configuration() {
        for fault in Fault::ALL {
            let with_edge = fault.description(4, true);
            let without = fault.description(4, false);
            assert!(with_edge.contains("through the edge"), "{with_edge}");
            assert!(
                !without.contains("through the edge") && without.contains("no edge"),
                "{without}"
            );
        }
        assert!(Fault::KillHalf.description(6, true).contains("1-3 of 6"));
        assert_eq!(Fault::KillHalf.victims(4), vec![1, 2]);
        assert_eq!(Fault::AllOriginsAway.victims(3), vec![1, 2, 3]);
        assert!(
            Fault::AllOriginsAway
                .promise(true)
                .contains("stale-if-error")
        );
        assert!(
            !Fault::AllOriginsAway
                .promise(false)
                .contains("stale-if-error")
        );
        assert!(Fault::RestartDatabase.promise(true).contains("Retry-After"));
    }
}
