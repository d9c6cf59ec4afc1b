//! The study's quick profile, end to end on a real local stack (PostgreSQL,
//! Redis, nginx, origin instances, the edge, and a Cassandra stack for the
//! database tier) on free ports: the report's tables, charts and lost-write
//! count are checked; and the report read back from a results.json.

use std::process::Command;

use stack::binaries::{self, Binary};

#[test]
fn quick_study_writes_a_complete_report() {
    // The stack runs the real origin and edge-host executables: build them if absent.
    let missing: Vec<Binary> = [Binary::Origin, Binary::EdgeHost]
        .into_iter()
        .filter(|binary| binaries::find(*binary).is_err())
        .collect();
    if !missing.is_empty() {
        binaries::build(&missing, false).expect("building the stack's executables");
    }
    let out = tempfile::tempdir().unwrap();
    let report_dir = out.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "study",
            "--profile",
            "quick",
            "--ephemeral-ports",
            "--seed-scale",
            "tiny",
            // Debug builds of the origin need more than the quota derived for release
            // builds (a twentieth of a core on two cores); the derivation has its own tests.
            "--cpu-per-instance",
            "0.2",
            "--out",
        ])
        .arg(&report_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "study failed:\n{stderr}");
    assert!(
        stderr.contains("[study") && stderr.contains("capacity search with 10 instance(s)"),
        "no progress lines:\n{stderr}"
    );

    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    for heading in [
        "## Performance Summary",
        "## Capacity per pool size",
        "## CPU per part",
        "## What the CDN saves",
        "## Cache tiers",
        "## Faults during load",
        "## Database tier",
        "## Lost writes",
        "## Phases",
    ] {
        assert!(markdown.contains(heading), "{heading} missing:\n{markdown}");
    }
    for row in [
        "Single Service",
        "Two Services",
        "Three Services",
        "Ten Services + Redis",
    ] {
        assert!(
            markdown.contains(&format!("| {row} (")),
            "no {row} row:\n{markdown}"
        );
    }
    for fault in [
        "kill one instance",
        "kill half the instances",
        "stop Redis",
        "restart the database",
        "all origins away",
    ] {
        assert!(markdown.contains(&format!("| {fault} |")), "no {fault} row");
    }
    assert!(markdown.contains("Git revision:") && markdown.contains("cores"));
    // The step duration is part of the configuration, and the generator check
    // is in the header (measured, or saying why not).
    assert!(
        markdown.contains("| capacity step duration | 3 s per step"),
        "{markdown}"
    );
    assert!(markdown.contains("Generator check"), "{markdown}");
    // Redis was filled through the largest pool before the searches.
    assert!(
        markdown
            .contains("Redis filled first: 30 s at 1000/s through the largest pool (10 instances)"),
        "{markdown}"
    );
    // The neighbours probe ran on the largest pool after the searches, and is said.
    assert!(
        markdown.contains("Neighbours: straight at instance 1 (no nginx),"),
        "{markdown}"
    );
    // The fault table counts reads and writes apart and names error classes.
    assert!(
        markdown.contains("| Reads | Read errors |") && markdown.contains("| Error classes |"),
        "{markdown}"
    );
    assert!(markdown.contains("Load through the edge, on 4 instances"));
    // The quota is said, with its CFS period and where it came from.
    assert!(
        markdown.contains("CPU quota per origin instance: 0.2 core, CFS period 10 ms")
            && markdown.contains("set by --cpu-per-instance"),
        "{markdown}"
    );

    let html = std::fs::read_to_string(report_dir.join("index.html")).unwrap();
    // capacity, latency, percentiles, CPU per part, and two per fault: all inline.
    assert!(
        html.matches("<svg").count() >= 4 + 2 * 5,
        "too few charts inline"
    );
    assert!(
        !html.contains("<script"),
        "the report must open without scripts"
    );

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("results.json")).unwrap())
            .unwrap();
    let writes = &results["writes"];
    assert!(writes["acknowledged"].as_u64().unwrap() > 0, "{writes}");
    assert_eq!(writes["lost"].as_u64(), Some(0), "{writes}");
    let probe = &results["neighbours"];
    assert_eq!(probe["neighbours"], 9, "{probe}");
    let rounds = probe["rounds"].as_array().unwrap();
    // Two of each kind, alternating, alone first; instance 1's own counters saw its load.
    assert_eq!(rounds.len(), 4, "{probe}");
    for (index, round) in rounds.iter().enumerate() {
        assert_eq!(round["beside"], index % 2 == 1, "{round}");
        assert!(round["requests"].as_u64().unwrap() > 0, "{round}");
        assert!(round["cpu_us"].as_f64().unwrap() > 0.0, "{round}");
    }
    let scaling = results["scaling"].as_array().unwrap();
    // The quick profile searches the original's own pool sizes: 1, 2, 3 and 10.
    assert_eq!(scaling.len(), 4);
    // The edge's capacity was searched in front of the CDN phase's pool.
    let edge = &results["edge_capacity"];
    assert!(!edge["steps"].as_array().unwrap().is_empty(), "{edge}");
    assert_eq!(edge["instances"], 3, "{edge}");
    // Every measured step says how it started and what each part spent.
    for step in edge["steps"].as_array().unwrap() {
        assert!(step["start"]["probes"].as_u64().unwrap() >= 1, "{step}");
        let cpu = &step["cpu"];
        assert!(cpu["machine_cores"].as_u64().unwrap() >= 1, "{step}");
        assert!(
            cpu["edge"].as_f64().unwrap() > 0.0,
            "the edge carried it: {step}"
        );
    }
    // On a busy machine a small pool may meet the objective at no tested rate;
    // the search must still have run, and some size must have found capacity.
    for size in scaling {
        assert!(
            !size["steps"].as_array().unwrap().is_empty(),
            "no search steps: {size}"
        );
        assert!(size["capacity_rps"].as_f64().unwrap() >= 0.0);
    }
    assert!(
        scaling
            .iter()
            .any(|size| size["capacity_rps"].as_f64().unwrap() > 0.0),
        "no capacity at any size"
    );
    let faults = results["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 5);
    for fault in faults {
        let (reads, writes) = (&fault["reads"], &fault["writes"]);
        assert!(reads["requests"].as_u64().unwrap() > 0, "{fault}");
        assert!(writes["requests"].as_u64().unwrap() > 0, "{fault}");
        assert_eq!(
            reads["requests"].as_u64().unwrap() + writes["requests"].as_u64().unwrap(),
            fault["summary"]["requests"].as_u64().unwrap()
        );
        assert!(
            fault["description"]
                .as_str()
                .unwrap()
                .contains("through the edge")
        );
        // Every second that completed requests has its own p50 and p99.
        let timeline = fault["timeline"].as_array().unwrap();
        assert!(timeline.len() >= 8, "{fault}");
        for second in timeline {
            if second["completed"].as_u64().unwrap() > 0 {
                let (p50, p99) = (
                    second["p50_us"].as_u64().unwrap(),
                    second["p99_us"].as_u64().unwrap(),
                );
                assert!(p50 > 0 && p99 >= p50, "{second}");
            }
        }
    }
    let tiers = results["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 4);
    // Through the edge, its X-Cache was counted and fewer requests reached the origins
    // than were offered; straight to nginx, every request did.
    let edge_on = tiers
        .iter()
        .find(|tier| tier["edge_cache"] == true && tier["redis"] == true)
        .unwrap();
    let cache = &edge_on["summary"]["cache"];
    assert!(cache["hits"].as_u64().unwrap() > 0, "{edge_on}");
    let requests = edge_on["summary"]["requests"].as_u64().unwrap();
    let reached = edge_on["summary"]["origin_requests"].as_u64().unwrap();
    assert!(reached < requests, "{edge_on}");
    let edge_off = tiers
        .iter()
        .find(|tier| tier["edge_cache"] == false && tier["redis"] == true)
        .unwrap();
    assert!(
        edge_off["summary"]["origin_requests"].as_u64().unwrap()
            >= edge_off["summary"]["requests"].as_u64().unwrap(),
        "{edge_off}"
    );
    // The origins' own Redis counters: with Redis on they found keys; with it stopped
    // they never asked.
    let lookups = &edge_off["summary"]["origin_cache"];
    assert!(lookups["hits"].as_u64().unwrap() > 0, "{edge_off}");
    let redis_off = tiers
        .iter()
        .find(|tier| tier["edge_cache"] == false && tier["redis"] == false)
        .unwrap();
    assert_eq!(
        redis_off["summary"]["origin_cache"]["hits"].as_u64(),
        Some(0),
        "{redis_off}"
    );
    // The database tier: both backends in the query table and in the capacity, in one run.
    let tier = &results["database_tier"];
    assert_eq!(tier["problems"].as_array().unwrap().len(), 0, "{tier}");
    let queries = tier["queries"].as_array().unwrap();
    for backend in ["PostgreSQL", "Cassandra"] {
        for through in ["storage", "HTTP, no Redis"] {
            assert!(
                queries.iter().any(|cell| cell["backend"] == backend
                    && cell["through"] == through
                    && cell["requests"].as_u64().unwrap() > 0),
                "no {backend} cell through {through}: {tier}"
            );
        }
    }
    // Each database served the quick profile's warm-up before its first cell.
    assert_eq!(
        tier["query_settings"]["backend_warmup_seconds"].as_f64(),
        Some(6.0),
        "{tier}"
    );
    let capacity = tier["capacity"].as_array().unwrap();
    assert_eq!(capacity.len(), 2, "{tier}");
    assert_eq!(capacity[1]["backend"], "Cassandra", "{tier}");
    assert!(
        !capacity[1]["result"]["steps"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(tier["cassandra_writes"]["lost"].as_u64(), Some(0), "{tier}");
    let phases = results["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 5, "{phases:?}");
    assert!(
        std::fs::read_dir(report_dir.join("runs")).unwrap().count() > 10,
        "per-run results missing"
    );
}

/// A capacity step of a results.json, at `rate` with this p99.
fn step(rate: f64, p99_ms: f64) -> serde_json::Value {
    serde_json::json!({
        "offered_rate": rate, "requests": (rate * 3.0) as u64, "errors": 0, "error_rate": 0.0,
        "dropped": 0, "dropped_rate": 0.0, "mean_ms": p99_ms / 4.0, "p50_ms": p99_ms / 5.0,
        "p90_ms": p99_ms / 2.0, "p99_ms": p99_ms, "p999_ms": p99_ms * 1.5, "max_ms": p99_ms * 2.0,
        "throughput": rate, "duration_s": 3.0
    })
}

/// A results.json as the study writes it, with `database_tier` when given.
fn results_json(database_tier: Option<serde_json::Value>) -> serde_json::Value {
    let mut results = serde_json::json!({
        "meta": {
            "date": "2026-12-05T01:00:00Z", "git_revision": "abc1234", "cores": 2,
            "memory_gib": 24.0, "cpu_model": "test CPU", "profile": "quick", "slo_ms": 100.0,
            "edge": true, "configuration": []
        },
        "scaling": [{"instances": 2, "capacity_rps": 1800.0,
                     "steps": [step(1200.0, 20.0), step(1800.0, 60.0), step(2700.0, 400.0)]}],
        "edge_capacity": null, "fixed": [], "tiers": [], "faults": [],
        "writes": {"acknowledged": 10, "deleted_by_the_run": 1, "checked": 9, "lost": 0},
        "phases": []
    });
    if let Some(tier) = database_tier {
        results["database_tier"] = tier;
    }
    results
}

fn query_cell(
    backend: &str,
    query: &str,
    through: &str,
    clients: usize,
    p50: f64,
) -> serde_json::Value {
    serde_json::json!({
        "backend": backend, "query": query, "through": through, "clients": clients,
        "original": format!("original figure for {query}"),
        "p50_ms": p50, "p99_ms": p50 * 4.0, "throughput_per_s": 1000.0 / p50 * clients as f64,
        "requests": 1000, "errors": 0
    })
}

/// The report read back from a results.json with the database tier: both backends side by
/// side in one row per query, beside the original's figures, and a capacity row per backend.
#[test]
fn report_renders_the_database_tier_from_results_json() {
    let tier = serde_json::json!({
        "queries": [
            query_cell("PostgreSQL", "single song read", "storage", 1, 0.21),
            query_cell("PostgreSQL", "comments query", "HTTP, no Redis", 16, 1.5),
            query_cell("Cassandra", "single song read", "storage", 1, 0.87),
            query_cell("Cassandra", "comments query", "HTTP, no Redis", 16, 4.25),
        ],
        "query_settings": {"songs": 10000, "distribution": "uniform", "seconds": 0.75,
                           "warmup_seconds": 0.25, "limit": 50},
        "capacity": [
            {"backend": "PostgreSQL", "measured_in": "the capacity phase",
             "result": {"instances": 2, "capacity_rps": 1800.0,
                        "steps": [step(1200.0, 20.0), step(1800.0, 60.0), step(2700.0, 400.0)]}},
            {"backend": "Cassandra", "measured_in": "the database tier",
             "result": {"instances": 2, "capacity_rps": 900.0,
                        "steps": [step(900.0, 70.0), step(1350.0, 900.0)]}}
        ],
        "cassandra_stack_up_s": 41.5,
        "cassandra_writes": {"acknowledged": 120, "deleted_by_the_run": 2, "checked": 118, "lost": 0},
        "problems": []
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(&path, results_json(Some(tier)).to_string()).unwrap();
    let results: loadtest::study::model::StudyResults =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    loadtest::study::report::write(dir.path(), &results).unwrap();
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();

    let section = markdown
        .split("## Database tier")
        .nth(1)
        .unwrap_or_else(|| panic!("no database tier section:\n{markdown}"));
    let section = section.split("\n## ").next().unwrap();
    assert!(
        section.contains("| Query | Through | Clients | PostgreSQL p50 | PostgreSQL p99 | PostgreSQL throughput | Cassandra p50 | Cassandra p99 | Cassandra throughput | Original"),
        "{section}"
    );
    assert!(
        section.contains("| single song read | storage | 1 | 0.21 ms | 0.84 ms | 4762/s | 0.87 ms | 3.48 ms | 1149/s | original figure for single song read |"),
        "{section}"
    );
    assert!(
        section.contains("| comments query | HTTP, no Redis | 16 | 1.50 ms |"),
        "{section}"
    );
    assert!(
        section.contains("| PostgreSQL | 2 | 1800/s | +50% |")
            && section.contains("| the capacity phase |"),
        "{section}"
    );
    assert!(
        section.contains("| Cassandra | 2 | 900/s | +50% |")
            && section.contains("| the database tier |"),
        "{section}"
    );
    assert!(section.contains("10000 songs"), "{section}");
    // Written before the databases were warmed up: the report says its first cells may
    // include the warming.
    assert!(
        section.contains("No database was warmed before its first cell"),
        "{section}"
    );
    assert!(section.contains("came up in 42 s"), "{section}");
    assert!(section.contains("**lost: 0**"), "{section}");
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("<h2>Database tier</h2>") && html.contains("Cassandra p99"));
}

/// A Cassandra that could not start costs its column, and the report says why; a report
/// from before the tier reads back and says it was not run.
#[test]
fn report_says_what_the_database_tier_did_not_measure() {
    let tier = serde_json::json!({
        "queries": [query_cell("PostgreSQL", "song-comments feed", "storage", 1, 0.4)],
        "query_settings": {"songs": 1000, "distribution": "uniform", "seconds": 0.75,
                           "warmup_seconds": 0.25, "limit": 50},
        "capacity": [],
        "problems": ["the Cassandra stack did not come up: no JDK 17"]
    });
    let results: loadtest::study::model::StudyResults =
        serde_json::from_value(results_json(Some(tier))).unwrap();
    let markdown = loadtest::study::report::markdown(&results);
    assert!(markdown.contains("## Database tier"), "{markdown}");
    assert!(
        markdown.contains("**Not measured**: the Cassandra stack did not come up: no JDK 17."),
        "{markdown}"
    );
    assert!(!markdown.contains("Cassandra p50"), "{markdown}");

    let older: loadtest::study::model::StudyResults =
        serde_json::from_value(results_json(None)).unwrap();
    assert!(older.database_tier.is_none());
    let markdown = loadtest::study::report::markdown(&older);
    assert!(
        markdown.contains(
            "## Database tier\n\nNot run (this report is from before the database tier)."
        ),
        "{markdown}"
    );
}
