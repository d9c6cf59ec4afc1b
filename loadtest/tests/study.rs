//! The study's quick profile, end to end on a real local stack (PostgreSQL,
//! Redis, nginx, origin instances, the edge) on free ports: the report's
//! tables, charts and lost-write count are checked.

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
        "restart PostgreSQL",
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
    let phases = results["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 4, "{phases:?}");
    assert!(
        std::fs::read_dir(report_dir.join("runs")).unwrap().count() > 10,
        "per-run results missing"
    );
}
