//! The report against a hand-made study: its tables, text and charts.

use super::charts::fault_charts;
use super::*;
use crate::recorder::{CacheCounts, ErrorClass, ErrorCounts, Second};
use crate::study::meta::{CalibrationFigure, Meta, QuotaChoice};
use crate::study::model::{
    BackendCapacity, CacheLookups, ClassSummary, CpuUse, DatabaseTier, FaultRun, FixedRun,
    HealthCheck, NeighbourProbe, NeighbourRound, PhaseTime, RunSummary, ScalingResult, TierRun,
    WriteCheck,
};
use crate::study::profile::ORIGINAL_SUMMARY;

mod capacity;

pub(super) fn summary(rate: f64, p99_ms: f64, errors: u64) -> RunSummary {
    RunSummary {
        offered_rate: rate,
        requests: (rate * 2.0) as u64,
        errors,
        error_rate: errors as f64 / (rate * 2.0),
        dropped: 0,
        dropped_rate: 0.0,
        mean_ms: p99_ms / 4.0,
        p50_ms: p99_ms / 5.0,
        p90_ms: p99_ms / 2.0,
        p99_ms,
        p999_ms: p99_ms * 1.5,
        max_ms: p99_ms * 2.0,
        throughput: rate,
        duration_s: 2.0,
        p50_noise_ms: Some(p99_ms / 50.0),
        p99_noise_ms: Some(p99_ms / 10.0),
        start: Some(healthy()),
        cpu: Some(cpu(rate)),
        cache: CacheCounts::default(),
        origin_requests: Some((rate * 2.0) as u64),
        // Three quarters of the origins' Redis lookups found.
        origin_cache: Some(CacheLookups {
            hits: (rate * 1.5) as u64,
            misses: (rate * 0.5) as u64,
            bypasses: 0,
        }),
    }
}

fn healthy() -> HealthCheck {
    HealthCheck {
        healthy: true,
        waited_s: 0.6,
        probes: 1,
        probe_p50_ms: Some(1.1),
        baseline_p50_ms: Some(1.0),
        problem: None,
        repaired: Vec::new(),
    }
}

/// CPU that grows with the rate; the pool saturates above 1500/s.
pub(super) fn cpu(rate: f64) -> CpuUse {
    let per_instance = (rate / 30_000.0).min(0.05);
    CpuUse {
        seconds: 2.0,
        instances: per_instance * 2.0,
        per_instance: vec![per_instance, per_instance],
        nginx: rate / 20_000.0,
        edge: 0.0,
        postgres: 0.1,
        redis: 0.05,
        generator: rate / 10_000.0,
        other: 0.2,
        machine_cores: 2,
        instance_quota: Some(0.05),
    }
}

pub(super) fn study() -> StudyResults {
    let scaling = [(1, 800.0), (2, 1500.0), (3, 2000.0)]
        .into_iter()
        .map(|(instances, capacity_rps)| ScalingResult {
            instances,
            capacity_rps,
            steps: vec![
                summary(capacity_rps / 2.0, 5.0, 0),
                summary(capacity_rps, 60.0, 0),
                summary(capacity_rps * 1.5, 900.0, 40),
            ],
        })
        .collect();
    // Writes fail with 503 from the fault (second 3) to second 4; one read fails at second 3.
    let timeline = (0..9)
        .map(|second| Second {
            completed: 100,
            errors: match second {
                3 => 4,
                4 => 3,
                _ => 0,
            },
            writes: 10,
            write_errors: match second {
                3 | 4 => 3,
                _ => 0,
            },
            p50_us: 2_000,
            p99_us: if second == 3 { 900_000 } else { 20_000 },
            latency_max_us: 1_200_000,
            ..Second::default()
        })
        .collect();
    let mut write_classes = ErrorCounts::default();
    for _ in 0..6 {
        write_classes.count(ErrorClass::Status {
            code: 503,
            retry_after: true,
        });
    }
    let mut read_classes = ErrorCounts::default();
    read_classes.count(ErrorClass::Connection);
    StudyResults {
        meta: Meta {
            date: "2026-11-24T00:00:00Z".into(),
            git_revision: "abc123".into(),
            cores: 2,
            memory_gib: 23.4,
            cpu_model: "test cpu".into(),
            load_average_start: Some(0.5),
            load_average_end: Some(1.25),
            profile: "quick".into(),
            slo_ms: 100.0,
            edge: true,
            backend: stack::DatabaseBackend::Postgres,
            calibration: Some(Ok(CalibrationFigure {
                wrk_rate: 150_000.0,
                generator_rate: 135_000.0,
                ratio: 0.9,
                seconds: 2.0,
                connections: 64,
                pinned: true,
            })),
            quota: Some(QuotaChoice::choose(2, 10, None, None)),
            client_timeout_ms: Some(2000.0),
            configuration: vec![
                ("seed scale".into(), "tiny".into()),
                ("capacity step duration".into(), "3 s per step".into()),
            ],
        },
        scaling,
        edge_capacity: Some(ScalingResult {
            instances: 3,
            capacity_rps: 1300.0,
            steps: vec![summary(2600.0, 900.0, 40), summary(1300.0, 30.0, 0)],
        }),
        fixed: ORIGINAL_SUMMARY
            .iter()
            .map(|original| FixedRun {
                original: original.clone(),
                ours: summary(400.0, 12.0, 0),
            })
            .collect(),
        tiers: vec![
            TierRun {
                edge_cache: true,
                redis: true,
                rate: 500.0,
                summary: RunSummary {
                    cache: CacheCounts {
                        hits: 800,
                        stale: Some(100),
                        misses: 100,
                        unmarked: 0,
                    },
                    origin_requests: Some(200),
                    ..summary(500.0, 3.0, 0)
                },
            },
            TierRun {
                edge_cache: false,
                redis: true,
                rate: 500.0,
                summary: summary(500.0, 8.0, 0),
            },
        ],
        faults: vec![FaultRun {
            name: "restart PostgreSQL".into(),
            description: "restart PostgreSQL at 1/3; load through the edge → nginx → 4 instances"
                .into(),
            promise: "503 with Retry-After".into(),
            through: "the edge".into(),
            rate: 500.0,
            fault_at_s: 3.0,
            repair_at_s: 6.0,
            summary: RunSummary {
                duration_s: 9.0,
                ..summary(500.0, 40.0, 7)
            },
            reads: ClassSummary {
                requests: 900,
                errors: 1,
                error_rate: 1.0 / 900.0,
                p50_ms: 2.0,
                p99_ms: 30.0,
                max_ms: 1200.0,
                classes: read_classes,
            },
            writes: ClassSummary {
                requests: 100,
                errors: 6,
                error_rate: 0.06,
                p50_ms: 3.0,
                p99_ms: 900.0,
                max_ms: 1000.0,
                classes: write_classes,
            },
            recovery_s: Some(2),
            read_recovery_s: Some(1),
            write_recovery_s: Some(2),
            timeline,
        }],
        writes: WriteCheck {
            acknowledged: 120,
            deleted_by_the_run: 3,
            checked: 117,
            lost: 0,
        },
        phases: vec![PhaseTime {
            name: "capacity per pool size".into(),
            seconds: 61.0,
        }],
        database_tier: None,
        neighbours: None,
    }
}

pub(super) fn round(beside: bool, cpu_us: f64, quota_use: f64) -> NeighbourRound {
    NeighbourRound {
        beside,
        started_healthy: true,
        requests: 2000,
        errors: 0,
        p99_ms: 5.0,
        cpu_us,
        quota_use: Some(quota_use),
        cpu: cpu(400.0),
    }
}

/// Instance 1 at 400/s: alone 480 and 460 µs, beside 300 and 320 µs (1.52×, 1.44× to
/// 1.60× between rounds), every round at half its quota.
pub(super) fn probe() -> NeighbourProbe {
    NeighbourProbe {
        rate: 400.0,
        neighbour_rate: 533.0,
        seconds: 5.0,
        neighbours: 2,
        rounds: vec![
            round(false, 480.0, 0.5),
            round(true, 300.0, 0.5),
            round(false, 460.0, 0.5),
            round(true, 320.0, 0.5),
        ],
    }
}

#[test]
fn markdown_has_the_original_shape_and_our_figures() {
    let md = markdown(&study());
    let summary_rows: Vec<&str> = md
        .lines()
        .filter(|line| line.contains("Services") || line.contains("Single Service"))
        .collect();
    assert_eq!(summary_rows.len(), 4, "{md}");
    assert!(
        summary_rows[0].starts_with(
            "| Single Service (1 instance + nginx + Redis) | 800 | 0.000% | 2.40 ms | 12.00 ms"
        ),
        "{}",
        summary_rows[0]
    );
    assert!(summary_rows[3].contains("| 60000 | ~2.2% | Sub-100ms |"));
    // Ideal line from one instance: 3 x 800 = 2400, efficiency 83 %.
    // Known within: the first rate over was 1.5 x the capacity.
    assert!(md.contains("| 3 | 2000/s | +50% | 2400/s | 83% |"), "{md}");
    // The knee names what ran out: here the pool at its quota.
    assert!(
        md.contains("| 3 | 3000/s: the origin pool at its CPU quota (0.10 of 0.10 cores"),
        "{md}"
    );
    assert!(
        md.contains(
            "3 instances carried 2.5× the capacity of one (the searches' brackets allow 1.6× to \
             3.8×, in one run). The shape to reach on a 2-core machine: at least 8× in the full \
             profile, 6× in the quick one. Short of 6×: at the knee of 3 instances, the origin \
             pool at its CPU quota"
        ),
        "{md}"
    );
    // A factor under the shape whose brackets reach past it is not called short: 4400/s
    // (missed at 6600/s) over one instance's 800/s (missed at 1200/s) is 3.6× to 8.3×.
    let mut reaching = study();
    reaching.scaling[2].capacity_rps = 4400.0;
    reaching.scaling[2].steps[2] = summary(6600.0, 900.0, 40);
    let reaching = markdown(&reaching);
    assert!(
        reaching.contains(
            "3 instances carried 5.5× the capacity of one (the searches' brackets allow 3.6× to \
             8.3×, in one run). The shape to reach on a 2-core machine: at least 8× in the full \
             profile, 6× in the quick one. Not told apart from 6×: its brackets allow both sides \
             of it."
        ),
        "{reaching}"
    );
    assert!(!reaching.contains("Short of"), "{reaching}");
    // CPU per part at each size's capacity: instances, nginx, edge, PostgreSQL, Redis,
    // generator, other, busy, quota.
    assert!(
        md.contains(
            "| 3 | 2000/s | 0.10 | 0.10 | 0.00 | 0.10 | 0.05 | 0.20 | 0.20 | 0.75 of 2 | 0.10 |"
        ),
        "{md}"
    );
    // The CDN: the edge's hits, the origins' share of the offered rate, beside nginx alone.
    assert!(
        md.contains(
            "| through the edge (cache on) | 1300/s | +100% | 500/s | 90.0% (10.0% stale) | 100/s (20%) | 0.03 | 0.60 ms | 3.00 ms | 0.000% |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| straight to nginx (no edge) | 2000/s | +50% | 500/s | — | 500/s (100%) |"),
        "{md}"
    );
    assert!(
        md.contains("Every measured run started from a healthy, idle stack"),
        "{md}"
    );
    assert!(
        md.contains("CPU quota per origin instance: 0.05 core, CFS period 20 ms"),
        "{md}"
    );
    assert!(md.contains("| capacity per pool size | 61 s |"), "{md}");
    // Reads and writes apart, each with its own recovery, and the error classes.
    assert!(
        md.contains(
            "| restart PostgreSQL | 500/s | 900 | 1 (0.111%) | 2.00 ms | 30.00 ms | 1 s \
             | 100 | 6 (6.000%) | 3.00 ms | 900 ms | 2 s \
             | reads: connection ×1; writes: 503 ×6 (all with Retry-After) |"
        ),
        "{md}"
    );
    assert!(md.contains("Load through the edge, on 4 instances"), "{md}");
    assert!(md.contains("Promise: 503 with Retry-After"), "{md}");
    assert!(md.contains("Each step: 3 s per step."), "{md}");
    // The fixture's configuration is from before the cache fill: the report says so.
    assert!(
        md.contains("No cache fill before the searches is recorded in this report's configuration"),
        "{md}"
    );
    let mut filled = study();
    filled.meta.configuration.push((
        "cache fill".into(),
        "30 s at 1000/s through the largest pool (3 instances)".into(),
    ));
    let md = markdown(&filled);
    assert!(
        md.contains(
            "Each step: 3 s per step. Redis filled first: 30 s at 1000/s through the largest pool \
             (3 instances). \"Known within\""
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "On 3 instances, within the objective: the edge (cache on) carried 1300/s (and missed at 2600/s), \
             the same pool straight to nginx 2000/s (and missed at 3000/s). \
             The two brackets overlap: this run does not tell the two capacities apart"
        ),
        "{md}"
    );
    assert!(
        md.contains("ratio 0.90 (meets the 0.8 bar)"),
        "no calibration line: {md}"
    );
    assert!(
        md.contains("before the calibration: 0.50, at the end (the study's own load in it): 1.25"),
        "{md}"
    );
    assert!(md.contains("**lost: 0**"));
}

#[test]
fn fault_text_follows_the_configuration_that_ran() {
    let mut study = study();
    study.meta.edge = false;
    study.edge_capacity = None;
    study.tiers.retain(|tier| !tier.edge_cache);
    study.meta.calibration = Some(Err("starting wrk".into()));
    study.faults[0].through = "nginx (no edge)".into();
    study.faults[0].description =
        crate::study::faults::Fault::RestartDatabase.description(4, false);
    let md = markdown(&study);
    assert!(md.contains("Load through nginx (no edge), on 4"), "{md}");
    assert!(!md.contains("through the edge"), "{md}");
    assert!(md.contains("not measured (starting wrk)"), "{md}");
    assert!(md.contains("No edge in this run"), "{md}");
    assert!(
        md.contains("no edge (--no-edge), and the load generator"),
        "{md}"
    );
}

#[test]
fn fault_timeline_charts_show_per_second_percentiles() {
    let study = study();
    let [rates, latency] = fault_charts(&study.faults[0]);
    let names: Vec<&str> = rates.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "succeeded",
            "read errors",
            "write errors",
            "dropped arrivals"
        ]
    );
    assert_eq!(rates.series[2].points[3], (3.5, 3.0));
    assert_eq!(rates.series[1].points[3], (3.5, 1.0));
    assert!(latency.log_y);
    let p99 = latency
        .series
        .iter()
        .find(|s| s.name == "p99 of the second")
        .unwrap();
    assert_eq!(p99.points[3], (3.5, 900.0));
    assert_eq!(p99.points[2], (2.5, 20.0));
    let p50 = latency
        .series
        .iter()
        .find(|s| s.name == "p50 of the second")
        .unwrap();
    assert!(p50.points.iter().all(|&(_, y)| y == 2.0));
    let svg = latency.render();
    assert!(svg.contains(">p99 of the second<") && svg.contains("repair"));
    assert!(svg.contains(">fault in effect<"), "the band is named");
}

#[test]
fn per_second_charts_leave_out_the_partial_last_second() {
    let mut study = study();
    // A 9 s run whose tail of in-flight requests completed in a tenth second.
    study.faults[0].timeline.push(Second {
        completed: 3,
        ..Second::default()
    });
    let [rates, latency] = fault_charts(&study.faults[0]);
    for chart in [rates, latency] {
        for series in &chart.series {
            assert_eq!(series.points.len(), 9, "{}", series.name);
        }
    }
}

#[test]
fn a_run_that_started_unhealthy_is_marked() {
    let mut study = study();
    study.fixed[2].ours.start = Some(HealthCheck {
        healthy: false,
        waited_s: 20.0,
        probes: 30,
        problem: Some("nginx sent nothing to instance(s) 2 (marked failed)".into()),
        ..healthy()
    });
    let md = markdown(&study);
    assert!(
        md.contains("WARNING: 1 measured run(s) started on a stack that was not healthy and idle within the bound, and are marked below: fixed rate, Three Services."),
        "{md}"
    );
    assert!(
        md.contains("UNHEALTHY after 20 s: nginx sent nothing to instance(s) 2 (marked failed)"),
        "{md}"
    );
}

#[test]
fn html_inlines_every_chart_and_needs_no_server() {
    let page = html(&study());
    // Capacity, latency, percentiles, CPU, and two per fault.
    assert_eq!(page.matches("<svg").count(), 4 + 2);
    assert!(!page.contains("<script") && !page.contains("src=\"http"));
    assert!(page.contains("<th>Original: avg latency</th>"));
    let dir = tempfile::tempdir().unwrap();
    let mut study = study();
    study.neighbours = Some(probe());
    write(dir.path(), &study).unwrap();
    for file in [
        "index.html",
        "report.md",
        "results.json",
        "charts/capacity.svg",
        "charts/cpu.svg",
        "charts/fault-0-rate.svg",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["writes"]["lost"], 0);
    // What was written reads back whole: `loadtest compare` depends on it.
    let back = crate::study::compare::load(dir.path()).unwrap();
    assert_eq!(back, study);
}

#[test]
fn the_header_names_the_backend_the_results_json_says() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("results.json");
    let mut json = serde_json::to_value(study()).unwrap();
    json["meta"]["backend"] = "cassandra".into();
    std::fs::write(&file, json.to_string()).unwrap();
    let on_cassandra = crate::study::compare::load(&file).unwrap();
    assert_eq!(on_cassandra.meta.backend, stack::DatabaseBackend::Cassandra);
    let md = markdown(&on_cassandra);
    assert!(
        md.contains("database of the study's stack: Cassandra"),
        "{md}"
    );
    assert!(md.contains("All parts (Cassandra, Redis"), "{md}");

    // A report from before `--backend` has no such field: its study ran on PostgreSQL.
    json["meta"].as_object_mut().unwrap().remove("backend");
    std::fs::write(&file, json.to_string()).unwrap();
    let older = crate::study::compare::load(&file).unwrap();
    assert_eq!(older.meta.backend, stack::DatabaseBackend::Postgres);
    assert!(markdown(&older).contains("database of the study's stack: PostgreSQL"));
}

#[test]
fn an_older_report_s_postgresql_restart_compares_with_the_database_restart() {
    use crate::study::faults::Fault;
    assert_eq!(
        Fault::canonical_name("restart PostgreSQL"),
        Fault::RestartDatabase.name()
    );
    assert_eq!(Fault::canonical_name("stop Redis"), "stop Redis");
    let old = study();
    let mut new = study();
    for fault in &mut new.faults {
        if fault.name == "restart PostgreSQL" {
            fault.name = Fault::RestartDatabase.name().into();
            fault.reads.error_rate = 0.5;
        }
    }
    let comparison = crate::study::compare::Comparison::of(&old, &new);
    assert!(
        !comparison
            .context
            .iter()
            .any(|line| line.contains("cache fill")),
        "{:?}",
        comparison.context
    );
    let mut filled = new.clone();
    filled
        .meta
        .configuration
        .push(("cache fill".into(), "30 s at 1000/s".into()));
    let context = crate::study::compare::Comparison::of(&old, &filled).context;
    assert!(
        context.iter().any(|line| line
            .starts_with("The cache fill before the capacity searches differs")
            && line.ends_with("old none recorded; new 30 s at 1000/s.")),
        "{context:?}"
    );
    // Fault runs of another length: their error rates are not like for like.
    let mut longer = new.clone();
    longer.meta.configuration.push((
        crate::study::meta::RUN_LENGTHS.into(),
        "faults: 12 s each".into(),
    ));
    let context = crate::study::compare::Comparison::of(&old, &longer).context;
    assert!(
        context
            .iter()
            .any(|line| line.starts_with("The runs' lengths differ")
                && line.ends_with("old none recorded; new faults: 12 s each.")),
        "{context:?}"
    );
    assert!(
        !comparison
            .context
            .iter()
            .any(|line| line.starts_with("The runs' lengths differ")),
        "{:?}",
        comparison.context
    );
    let what = format!(
        "fault '{}': reads error rate",
        Fault::RestartDatabase.name()
    );
    let row = comparison
        .rows
        .iter()
        .find(|row| row.what == what)
        .expect("the restart's row");
    assert_eq!(row.new, Some(0.5));
    assert!(
        row.old.is_some(),
        "the older report's PostgreSQL restart: {row:?}"
    );
}
