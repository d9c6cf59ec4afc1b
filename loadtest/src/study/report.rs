//! The study's report: tables built once and rendered as Markdown and HTML,
//! SVG charts inlined, so `index.html` opens from disk without a server.
//! Writes `report.md`, `index.html`, `results.json` and `charts/*.svg`.

use std::fmt::Write as _;
use std::path::Path;

use super::model::{FaultRun, StudyResults};
use super::svg::{Chart, Marker, PALETTE, Series};

/// A table rendered twice.
#[derive(Debug, Clone)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|header| (*header).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut text = format!("| {} |\n", self.headers.join(" | "));
        let _ = writeln!(text, "|{}", "---|".repeat(self.headers.len()));
        for row in &self.rows {
            let _ = writeln!(text, "| {} |", row.join(" | "));
        }
        text
    }

    pub fn html(&self) -> String {
        let mut html = String::from("<table><thead><tr>");
        for header in &self.headers {
            let _ = write!(html, "<th>{}</th>", escape(header));
        }
        html.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            html.push_str("<tr>");
            for cell in row {
                let _ = write!(html, "<td>{}</td>", escape(cell));
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
        html
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.2} ms")
    }
}

fn percent(value: f64) -> String {
    format!("{:.3}%", value * 100.0)
}

fn rate(value: f64) -> String {
    format!("{value:.0}/s")
}

pub fn performance_summary(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Configuration",
        "Requests",
        "Error rate",
        "p50",
        "p99",
        "Mean",
        "Throughput",
        "Original: requests",
        "Original: error rate",
        "Original: avg latency",
    ]);
    for run in &study.fixed {
        let ours = &run.ours;
        table.rows.push(vec![
            format!(
                "{} ({} instance{} + nginx + Redis)",
                run.original.configuration,
                run.original.instances,
                if run.original.instances == 1 { "" } else { "s" }
            ),
            ours.requests.to_string(),
            percent(ours.error_rate),
            ms(ours.p50_ms),
            ms(ours.p99_ms),
            ms(ours.mean_ms),
            rate(ours.throughput),
            run.original.requests.to_string(),
            run.original.error_rate.to_owned(),
            run.original.avg_latency.to_owned(),
        ]);
    }
    table
}

pub fn capacity_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Instances",
        "Capacity",
        "Ideal (linear)",
        "Efficiency",
        "p50 at capacity",
        "p99 at capacity",
        "Steps",
    ]);
    let base = study
        .scaling
        .first()
        .map(|first| first.capacity_rps / first.instances as f64)
        .unwrap_or(0.0);
    for result in &study.scaling {
        let ideal = base * result.instances as f64;
        let at_capacity = result
            .steps
            .iter()
            .filter(|step| step.meets(study.meta.slo_ms))
            .max_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
        table.rows.push(vec![
            result.instances.to_string(),
            rate(result.capacity_rps),
            rate(ideal),
            if ideal > 0.0 {
                format!("{:.0}%", result.capacity_rps / ideal * 100.0)
            } else {
                "—".into()
            },
            at_capacity.map_or("—".into(), |step| ms(step.p50_ms)),
            at_capacity.map_or("—".into(), |step| ms(step.p99_ms)),
            result.steps.len().to_string(),
        ]);
    }
    table
}

pub fn tier_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Edge cache",
        "Redis",
        "Offered",
        "Requests",
        "Error rate",
        "p50",
        "p99",
        "Throughput",
    ]);
    for tier in &study.tiers {
        let s = &tier.summary;
        table.rows.push(vec![
            if tier.edge_cache {
                "on"
            } else {
                "off (via nginx)"
            }
            .into(),
            if tier.redis { "on" } else { "off (stopped)" }.into(),
            rate(tier.rate),
            s.requests.to_string(),
            percent(s.error_rate),
            ms(s.p50_ms),
            ms(s.p99_ms),
            rate(s.throughput),
        ]);
    }
    table
}

fn count_and_rate(errors: u64, rate: f64) -> String {
    format!("{errors} ({})", percent(rate))
}

/// Seconds from the fault until a side was clean to the end of the run.
fn recovered(seconds: Option<u64>, errors: u64) -> String {
    match seconds {
        _ if errors == 0 => "no errors".into(),
        Some(seconds) => format!("{seconds} s"),
        None => "not within the run".into(),
    }
}

pub fn fault_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&[
        "Fault",
        "Offered",
        "Reads",
        "Read errors",
        "Read p50",
        "Read p99",
        "Reads clean after",
        "Writes",
        "Write errors",
        "Write p50",
        "Write p99",
        "Writes clean after",
        "Error classes",
    ]);
    for fault in &study.faults {
        let (reads, writes) = (&fault.reads, &fault.writes);
        table.rows.push(vec![
            fault.name.clone(),
            rate(fault.rate),
            reads.requests.to_string(),
            count_and_rate(reads.errors, reads.error_rate),
            ms(reads.p50_ms),
            ms(reads.p99_ms),
            recovered(fault.read_recovery_s, reads.errors + fault.summary.dropped),
            writes.requests.to_string(),
            count_and_rate(writes.errors, writes.error_rate),
            ms(writes.p50_ms),
            ms(writes.p99_ms),
            recovered(
                fault.write_recovery_s,
                writes.errors + fault.summary.dropped,
            ),
            fault.error_classes(),
        ]);
    }
    table
}

/// What each fault did and what the design promises, one line each.
fn fault_notes(study: &StudyResults) -> Vec<String> {
    study
        .faults
        .iter()
        .map(|fault| {
            let dropped = if fault.summary.dropped > 0 {
                format!(
                    " {} arrivals found no free request slot and were dropped.",
                    fault.summary.dropped
                )
            } else {
                String::new()
            };
            format!(
                "**{}**: {}. Promise: {}. Overall p99 {}, max {}.{dropped}",
                fault.name,
                fault.description,
                fault.promise,
                ms(fault.summary.p99_ms),
                ms(fault.summary.max_ms)
            )
        })
        .collect()
}

/// How the fault runs were set up, true to the configuration that ran.
fn fault_intro(study: &StudyResults) -> String {
    let through = study
        .faults
        .first()
        .map_or("the edge", |fault| fault.through.as_str());
    format!(
        "Load through {through}, on {} instances, fault at 1/3 of each run and repair at 2/3. \
         Reads (song, comments, feed) and writes (post, patch, delete) are counted apart: \
         the design promises different things for each. \
         \"Clean after\" counts seconds from the fault until every later second had no error of that side \
         (and no dropped arrival).",
        super::FAULT_POOL
    )
}

pub fn capacity_chart(study: &StudyResults) -> Chart {
    let measured: Vec<(f64, f64)> = study
        .scaling
        .iter()
        .map(|result| (result.instances as f64, result.capacity_rps))
        .collect();
    let base = study
        .scaling
        .first()
        .map(|first| first.capacity_rps / first.instances as f64)
        .unwrap_or(0.0);
    let ideal = measured
        .iter()
        .map(|&(instances, _)| (instances, base * instances))
        .collect();
    Chart {
        title: format!("Capacity vs instances (p99 < {} ms)", study.meta.slo_ms),
        x_label: "origin instances".into(),
        y_label: "requests/s".into(),
        series: vec![
            Series {
                name: "measured".into(),
                color: PALETTE[0],
                points: measured,
                dashed: false,
            },
            Series {
                name: "ideal (linear)".into(),
                color: "#999999",
                points: ideal,
                dashed: true,
            },
        ],
        markers: Vec::new(),
        log_y: false,
    }
}

pub fn latency_chart(study: &StudyResults) -> Chart {
    let series = study
        .scaling
        .iter()
        .enumerate()
        .map(|(index, result)| {
            let mut points: Vec<(f64, f64)> = result
                .steps
                .iter()
                .map(|step| (step.offered_rate, step.p99_ms))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: format!("p99, {} inst.", result.instances),
                color: PALETTE[index % PALETTE.len()],
                points,
                dashed: false,
            }
        })
        .collect();
    Chart {
        title: "p99 latency vs offered load".into(),
        x_label: "offered requests/s".into(),
        y_label: "p99 ms (from intended start)".into(),
        series,
        markers: Vec::new(),
        log_y: false,
    }
}

pub fn percentile_chart(study: &StudyResults) -> Option<Chart> {
    let result = study
        .scaling
        .iter()
        .max_by_key(|result| result.steps.len())?;
    let mut steps = result.steps.clone();
    steps.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
    let line = |name: &str, color, pick: fn(&super::model::RunSummary) -> f64| Series {
        name: name.into(),
        color,
        points: steps
            .iter()
            .map(|step| (step.offered_rate, pick(step)))
            .collect(),
        dashed: false,
    };
    Some(Chart {
        title: format!(
            "Latency percentiles vs load, {} instance(s)",
            result.instances
        ),
        x_label: "offered requests/s".into(),
        y_label: "ms".into(),
        series: vec![
            line("p50", PALETTE[0], |s| s.p50_ms),
            line("p90", PALETTE[2], |s| s.p90_ms),
            line("p99", PALETTE[1], |s| s.p99_ms),
            line("p99.9", PALETTE[3], |s| s.p999_ms),
        ],
        markers: Vec::new(),
        log_y: false,
    })
}

pub fn fault_charts(fault: &FaultRun) -> [Chart; 2] {
    let seconds = |pick: fn(&crate::recorder::Second) -> f64| -> Vec<(f64, f64)> {
        fault
            .timeline
            .iter()
            .enumerate()
            .map(|(index, second)| (index as f64 + 0.5, pick(second)))
            .collect()
    };
    let markers = vec![
        Marker {
            x: fault.fault_at_s,
            label: "fault".into(),
        },
        Marker {
            x: fault.repair_at_s,
            label: "repair".into(),
        },
    ];
    [
        Chart {
            title: format!("{}: requests per second", fault.name),
            x_label: "seconds".into(),
            y_label: "requests/s".into(),
            series: vec![
                Series {
                    name: "succeeded".into(),
                    color: PALETTE[0],
                    points: seconds(|s| (s.completed - s.errors) as f64),
                    dashed: false,
                },
                Series {
                    name: "read errors".into(),
                    color: PALETTE[1],
                    points: seconds(|s| s.read_errors() as f64),
                    dashed: false,
                },
                Series {
                    name: "write errors".into(),
                    color: PALETTE[3],
                    points: seconds(|s| s.write_errors as f64),
                    dashed: false,
                },
                Series {
                    name: "dropped".into(),
                    color: PALETTE[4],
                    points: seconds(|s| s.dropped as f64),
                    dashed: true,
                },
            ],
            markers: markers.clone(),
            log_y: false,
        },
        Chart {
            title: format!("{}: latency per second", fault.name),
            x_label: "seconds".into(),
            y_label: "ms from intended start (log)".into(),
            series: vec![
                Series {
                    name: "p50".into(),
                    color: PALETTE[2],
                    points: seconds(|s| s.p50_ms()),
                    dashed: false,
                },
                Series {
                    name: "p99".into(),
                    color: PALETTE[1],
                    points: seconds(|s| s.p99_ms()),
                    dashed: false,
                },
                Series {
                    name: "max".into(),
                    color: "#999999",
                    points: seconds(|s| s.latency_max_us as f64 / 1000.0),
                    dashed: true,
                },
            ],
            markers,
            log_y: true,
        },
    ]
}

fn header_lines(study: &StudyResults) -> Vec<String> {
    let meta = &study.meta;
    vec![
        format!("Date: {}", meta.date),
        format!("Git revision: {}", meta.git_revision),
        format!("Machine: {} cores ({}), {:.1} GiB memory", meta.cores, meta.cpu_model, meta.memory_gib),
        format!(
            "Machine load (1-minute load average) at the start: {}, at the end: {} (work from other processes on this machine is noise in every figure below)",
            meta.load_average_start.map_or("unknown".into(), |load| format!("{load:.2}")),
            meta.load_average_end.map_or("unknown".into(), |load| format!("{load:.2}"))
        ),
        format!("Profile: {}; objective p99 < {} ms", meta.profile, meta.slo_ms),
        calibration_line(study),
        format!(
            "All parts (PostgreSQL, Redis, nginx, the origin instances under CPU quotas, {}the load generator) \
             run on this one machine: a one-machine simulation of a cluster, not a cluster.",
            if meta.edge { "the edge and " } else { "no edge (--no-edge), and " }
        ),
        "Latency is measured from each request's intended start (open model, coordinated omission corrected); \
         throughput counts successful responses."
            .into(),
    ]
}

/// The generator-versus-wrk check, in words.
fn calibration_line(study: &StudyResults) -> String {
    match &study.meta.calibration {
        None => "Generator check: not run this time (`loadtest calibrate` measures it).".into(),
        Some(Err(why)) => {
            format!("Generator check: not measured ({why}); run `loadtest calibrate` by hand.")
        }
        Some(Ok(figure)) => format!(
            "Generator check (`loadtest calibrate`, before the stack started): on nginx `return 200`, {} connections, {:.0} s each{}, \
             wrk -t1 drove {:.0} requests/s and loadtest on one thread {:.0}: ratio {:.2} ({} the 0.8 bar).",
            figure.connections,
            figure.seconds,
            if figure.pinned {
                ", client and nginx pinned to separate cores"
            } else {
                ""
            },
            figure.wrk_rate,
            figure.generator_rate,
            figure.ratio,
            if figure.ratio >= 0.8 {
                "meets"
            } else {
                "BELOW"
            }
        ),
    }
}

fn config_table(study: &StudyResults) -> Table {
    let mut table = Table::new(&["Setting", "Value"]);
    table.rows = study
        .meta
        .configuration
        .iter()
        .map(|(key, value)| vec![key.clone(), value.clone()])
        .collect();
    table
}

/// The tiers' rate, and what the edge carried (it sets that rate when it is the slower part).
fn tier_intro(study: &StudyResults) -> String {
    let offered = study
        .meta
        .configuration
        .iter()
        .find(|(key, _)| key == "fault and tier rate")
        .map_or(String::new(), |(_, value)| {
            format!("Offered load: {value}. ")
        });
    let edge = match &study.edge_capacity {
        None => "No edge in this run: nginx only.".to_owned(),
        Some(edge) => {
            let steps: Vec<String> = edge
                .steps
                .iter()
                .map(|step| {
                    format!(
                        "{} → p99 {}{}",
                        rate(step.offered_rate),
                        ms(step.p99_ms),
                        if step.meets(study.meta.slo_ms) {
                            ""
                        } else {
                            " (over)"
                        }
                    )
                })
                .collect();
            format!(
                "The edge (cache on, {} instances behind it) carried {} within the objective ({}).",
                edge.instances,
                rate(edge.capacity_rps),
                steps.join(", ")
            )
        }
    };
    format!("{offered}{edge}")
}

fn capacity_intro(study: &StudyResults) -> String {
    let step = study
        .meta
        .configuration
        .iter()
        .find(|(key, _)| key == "capacity step duration")
        .map_or(String::new(), |(_, value)| format!(" Each step: {value}."));
    format!(
        "Highest arrival rate with p99 < {} ms, errors < 0.1 % and no dropped arrivals, straight to nginx (no edge cache in the way).{step}",
        study.meta.slo_ms
    )
}

fn write_check_line(study: &StudyResults) -> String {
    let writes = &study.writes;
    format!(
        "Acknowledged writes (201): {}; deleted by the run itself: {}; looked up in PostgreSQL: {}; **lost: {}**.",
        writes.acknowledged, writes.deleted_by_the_run, writes.checked, writes.lost
    )
}

pub fn markdown(study: &StudyResults) -> String {
    let mut md = String::from("# Scaling study: song-comments service\n\n");
    for line in header_lines(study) {
        let _ = writeln!(md, "- {line}");
    }
    let _ = write!(
        md,
        "\n## Performance Summary\n\nThe original's configurations at its stated load ({} requests/s), beside the original's figures.\n\n{}",
        super::model::ORIGINAL_RATE,
        performance_summary(study).markdown()
    );
    let _ = write!(
        md,
        "\n## Capacity per pool size\n\n{}\n\n{}",
        capacity_intro(study),
        capacity_table(study).markdown()
    );
    md.push_str("\n![capacity](charts/capacity.svg)\n![latency](charts/latency.svg)\n");
    let _ = write!(
        md,
        "\n## Cache tiers\n\n{}\n\n{}",
        tier_intro(study),
        tier_table(study).markdown()
    );
    let _ = write!(
        md,
        "\n## Faults during load\n\n{}\n\n{}\n",
        fault_intro(study),
        fault_table(study).markdown()
    );
    for note in fault_notes(study) {
        let _ = writeln!(md, "- {note}");
    }
    md.push('\n');
    for (index, _) in study.faults.iter().enumerate() {
        let _ = writeln!(
            md,
            "![fault {index}](charts/fault-{index}-rate.svg) ![fault {index} latency](charts/fault-{index}-latency.svg)"
        );
    }
    let _ = write!(md, "\n## Lost writes\n\n{}\n", write_check_line(study));
    let _ = write!(
        md,
        "\n## Configuration\n\n{}",
        config_table(study).markdown()
    );
    md
}

pub fn html(study: &StudyResults) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Scaling study</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.charts svg{margin:4px}\
         .lost{font-size:1.2em}</style></head><body><h1>Scaling study: song-comments service</h1><ul>",
    );
    for line in header_lines(study) {
        let _ = write!(html, "<li>{}</li>", escape(&line));
    }
    html.push_str("</ul>");
    let _ = write!(
        html,
        "<h2>Performance Summary</h2><p>The original's configurations at its stated load ({} requests/s), beside the original's figures.</p>{}",
        super::model::ORIGINAL_RATE,
        performance_summary(study).html()
    );
    let _ = write!(
        html,
        "<h2>Capacity per pool size</h2><p>{}</p>{}",
        escape(&capacity_intro(study)),
        capacity_table(study).html()
    );
    html.push_str("<div class=\"charts\">");
    html.push_str(&capacity_chart(study).render());
    html.push_str(&latency_chart(study).render());
    if let Some(chart) = percentile_chart(study) {
        html.push_str(&chart.render());
    }
    html.push_str("</div>");
    let _ = write!(
        html,
        "<h2>Cache tiers</h2><p>{}</p>{}",
        escape(&tier_intro(study)),
        tier_table(study).html()
    );
    let _ = write!(
        html,
        "<h2>Faults during load</h2><p>{}</p>{}",
        escape(&fault_intro(study)),
        fault_table(study).html()
    );
    for fault in &study.faults {
        let _ = write!(
            html,
            "<h3>{}</h3><p>{}.</p><p>Promise: {}.</p><p>Reads: {}; writes: {}.</p><div class=\"charts\">",
            escape(&fault.name),
            escape(&fault.description),
            escape(&fault.promise),
            escape(&fault.reads.classes.describe()),
            escape(&fault.writes.classes.describe())
        );
        for chart in fault_charts(fault) {
            html.push_str(&chart.render());
        }
        html.push_str("</div>");
    }
    let _ = write!(
        html,
        "<h2>Lost writes</h2><p class=\"lost\">{}</p>",
        escape(&write_check_line(study)).replace("**", "")
    );
    let _ = write!(html, "<h2>Configuration</h2>{}", config_table(study).html());
    html.push_str("<p>Raw results: <a href=\"results.json\">results.json</a>, every run's histograms in <code>runs/</code> (mergeable with <code>loadtest merge</code>).</p></body></html>\n");
    html
}

/// Writes the whole report into `dir`.
pub fn write(dir: &Path, study: &StudyResults) -> std::io::Result<()> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts)?;
    std::fs::write(charts.join("capacity.svg"), capacity_chart(study).render())?;
    std::fs::write(charts.join("latency.svg"), latency_chart(study).render())?;
    if let Some(chart) = percentile_chart(study) {
        std::fs::write(charts.join("percentiles.svg"), chart.render())?;
    }
    for (index, fault) in study.faults.iter().enumerate() {
        let [rate_chart, latency_chart] = fault_charts(fault);
        std::fs::write(
            charts.join(format!("fault-{index}-rate.svg")),
            rate_chart.render(),
        )?;
        std::fs::write(
            charts.join(format!("fault-{index}-latency.svg")),
            latency_chart.render(),
        )?;
    }
    std::fs::write(dir.join("report.md"), markdown(study))?;
    std::fs::write(dir.join("index.html"), html(study))?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(study).expect("study results serialise"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Second;
    use crate::recorder::{ErrorClass, ErrorCounts};
    use crate::study::model::{
        CalibrationFigure, ClassSummary, FaultRun, FixedRun, Meta, ORIGINAL_SUMMARY, RunSummary,
        ScalingResult, TierRun, WriteCheck,
    };

    fn summary(rate: f64, p99_ms: f64, errors: u64) -> RunSummary {
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
        }
    }

    fn study() -> StudyResults {
        let scaling = [(1, 800.0), (2, 1500.0), (4, 2600.0)]
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
                calibration: Some(Ok(CalibrationFigure {
                    wrk_rate: 150_000.0,
                    generator_rate: 135_000.0,
                    ratio: 0.9,
                    seconds: 2.0,
                    connections: 64,
                    pinned: true,
                })),
                configuration: vec![
                    ("seed scale".into(), "tiny".into()),
                    ("capacity step duration".into(), "3 s per step".into()),
                ],
            },
            scaling,
            edge_capacity: Some(ScalingResult {
                instances: 4,
                capacity_rps: 1300.0,
                steps: vec![summary(2600.0, 900.0, 40), summary(1300.0, 30.0, 0)],
            }),
            fixed: ORIGINAL_SUMMARY
                .iter()
                .map(|original| FixedRun {
                    original: *original,
                    ours: summary(400.0, 12.0, 0),
                })
                .collect(),
            tiers: vec![TierRun {
                edge_cache: true,
                redis: false,
                rate: 500.0,
                summary: summary(500.0, 3.0, 0),
            }],
            faults: vec![FaultRun {
                name: "restart PostgreSQL".into(),
                description:
                    "restart PostgreSQL at 1/3; load through the edge → nginx → 4 instances".into(),
                promise: "503 with Retry-After".into(),
                through: "the edge".into(),
                rate: 500.0,
                fault_at_s: 3.0,
                repair_at_s: 6.0,
                summary: summary(500.0, 40.0, 7),
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
        // Ideal line from one instance: 4 x 800 = 3200, efficiency 81 %.
        assert!(md.contains("| 4 | 2600/s | 3200/s | 81% |"), "{md}");
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
        assert!(
            md.contains(
                "The edge (cache on, 4 instances behind it) carried 1300/s within the objective \
                 (2600/s → p99 900 ms (over), 1300/s → p99 30.00 ms)."
            ),
            "{md}"
        );
        assert!(
            md.contains("ratio 0.90 (meets the 0.8 bar)"),
            "no calibration line: {md}"
        );
        assert!(md.contains("at the start: 0.50, at the end: 1.25"), "{md}");
        assert!(md.contains("**lost: 0**"));
    }

    #[test]
    fn fault_text_follows_the_configuration_that_ran() {
        let mut study = study();
        study.meta.edge = false;
        study.edge_capacity = None;
        study.meta.calibration = Some(Err("starting wrk".into()));
        study.faults[0].through = "nginx (no edge)".into();
        study.faults[0].description =
            crate::study::model::Fault::RestartPostgres.description(4, false);
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
            ["succeeded", "read errors", "write errors", "dropped"]
        );
        assert_eq!(rates.series[2].points[3], (3.5, 3.0));
        assert_eq!(rates.series[1].points[3], (3.5, 1.0));
        assert!(latency.log_y);
        let p99 = latency.series.iter().find(|s| s.name == "p99").unwrap();
        assert_eq!(p99.points[3], (3.5, 900.0));
        assert_eq!(p99.points[2], (2.5, 20.0));
        let p50 = latency.series.iter().find(|s| s.name == "p50").unwrap();
        assert!(p50.points.iter().all(|&(_, y)| y == 2.0));
        let svg = latency.render();
        assert!(svg.contains(">p99<") && svg.contains(">p50<") && svg.contains("repair"));
    }

    #[test]
    fn html_inlines_every_chart_and_needs_no_server() {
        let page = html(&study());
        assert_eq!(page.matches("<svg").count(), 3 + 2);
        assert!(!page.contains("<script") && !page.contains("src=\"http"));
        assert!(page.contains("<th>Original: avg latency</th>"));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &study()).unwrap();
        for file in [
            "index.html",
            "report.md",
            "results.json",
            "charts/capacity.svg",
            "charts/fault-0-rate.svg",
        ] {
            assert!(dir.path().join(file).is_file(), "{file} missing");
        }
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(results["writes"]["lost"], 0);
    }
}
