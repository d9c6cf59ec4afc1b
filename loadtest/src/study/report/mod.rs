//! The study's report: tables built once and rendered as Markdown and HTML, SVG charts
//! inlined, so `index.html` opens from disk without a server. Writes `report.md`,
//! `index.html`, `results.json` and `charts/*.svg`.

pub mod cdn;
pub mod charts;
pub mod database;
mod neighbours;
mod scaling;
pub mod tables;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::Path;

use super::model::StudyResults;
use super::profile::ORIGINAL_RATE;
use charts::{capacity_chart, cpu_chart, fault_charts, latency_chart, percentile_chart};
use neighbours::neighbours_paragraph;
use scaling::scaling_verdict;
use tables::{
    AgainstCapacity, capacity_table, config_table, cpu_table, fault_table, performance_summary,
    phase_table, tier_table,
};

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

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.2} ms")
    }
}

pub(crate) fn percent(value: f64) -> String {
    format!("{:.3}%", value * 100.0)
}

pub(crate) fn rate(value: f64) -> String {
    format!("{value:.0}/s")
}

/// Microseconds of CPU per request: `cores` spent at `rate` requests per second.
pub(crate) fn micros_per_request(cores: f64, rate: f64) -> Option<f64> {
    (rate > 0.0).then(|| cores / rate * 1e6)
}

pub(crate) fn cores(value: f64) -> String {
    format!("{value:.2}")
}

fn header_lines(study: &StudyResults) -> Vec<String> {
    let meta = &study.meta;
    let mut lines = vec![
        format!("Date: {}", meta.date),
        format!("Git revision: {}", meta.git_revision),
        format!(
            "Machine: {} cores ({}), {:.1} GiB memory",
            meta.cores, meta.cpu_model, meta.memory_gib
        ),
        format!(
            "Machine load (1-minute load average) before the calibration: {}, at the end (the study's own load in it): {} (work from other processes on this machine is noise in every figure below; the CPU table's \"other processes\" measures it per step)",
            meta.load_average_start
                .map_or("unknown".into(), |load| format!("{load:.2}")),
            meta.load_average_end
                .map_or("unknown".into(), |load| format!("{load:.2}"))
        ),
        format!(
            "Profile: {}; objective p99 < {} ms; database of the study's stack: {}",
            meta.profile,
            meta.slo_ms,
            meta.backend.label()
        ),
    ];
    if let Some(quota) = &meta.quota {
        lines.push(format!(
            "CPU quota per origin instance: {}",
            quota.describe()
        ));
    }
    lines.push(calibration_line(study));
    lines.push(format!(
        "All parts ({}, Redis, nginx, the origin instances under CPU quotas, {}the load generator) \
         run on this one machine: a one-machine simulation of a cluster, not a cluster.",
        meta.backend.label(),
        if meta.edge {
            "the edge and "
        } else {
            "no edge (--no-edge), and "
        }
    ));
    lines.push(
        "Latency is measured from each request's intended start (open model, coordinated omission corrected); \
         throughput counts the successful responses that came while the load was offered (answers after its end, \
         an overloaded pool draining its queue, count in the requests and latencies only)."
            .into(),
    );
    lines.push(health_line(study));
    lines
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

/// Whether every measured run started from a healthy, idle stack.
fn health_line(study: &StudyResults) -> String {
    let unhealthy = study.unhealthy_starts();
    if unhealthy.is_empty() {
        "Every measured run started from a healthy, idle stack (every instance ready, nginx sending to each, a low-rate probe back at its baseline).".into()
    } else {
        format!(
            "WARNING: {} measured run(s) started on a stack that was not healthy and idle within the bound, and are marked below: {}.",
            unhealthy.len(),
            unhealthy.join("; ")
        )
    }
}

/// A configuration whose pool cannot carry the original's rate under this study's quota
/// fails at it: say so where its row is, so that no reader takes the quota's limit for
/// a failure the original avoided (the original gave each service a machine). A pool
/// whose search bracket holds that rate may carry it or not: say that too.
fn overload_note(study: &StudyResults) -> String {
    let (mut over, mut within) = (Vec::new(), Vec::new());
    for run in &study.fixed {
        let name = &run.original.configuration;
        match tables::against_capacity(study, run.original.instances) {
            Some(AgainstCapacity::Over { capacity, .. }) => {
                over.push(format!("{name} ({})", rate(capacity)));
            }
            Some(AgainstCapacity::Within { capacity, knee }) => {
                within.push(format!("{name} ({} to {})", rate(capacity), rate(knee)));
            }
            None => {}
        }
    }
    let mut note = String::new();
    if !over.is_empty() {
        let quota = study
            .meta
            .quota
            .as_ref()
            .and_then(|quota| quota.per_instance)
            .map_or("its CPU quota".to_owned(), |cores| {
                format!("a CPU quota of {cores:.2} core per instance")
            });
        note.push_str(&format!(
            "{} requests/s is above the capacity this study measured for {} under {quota}, a quota \
             sized so that the largest pool fits on this machine beside everything else (the \
             original gave each service a machine of its own). Those rows show a pool past its \
             capacity, which the capacity table below measures, not a failure of the service: a \
             larger `--cpu-per-instance` lets one instance carry {0} requests/s, at the cost of the \
             room the larger pools need.",
            ORIGINAL_RATE,
            over.join(", ")
        ));
    }
    if !within.is_empty() {
        if !note.is_empty() {
            note.push(' ');
        }
        note.push_str(&format!(
            "{} requests/s lies within the capacity search's bracket for {} (its capacity to the \
             first rate it missed): such a pool may carry it within the objective or not, and its \
             row says which.",
            ORIGINAL_RATE,
            within.join(", ")
        ));
    }
    note
}

fn capacity_intro(study: &StudyResults) -> String {
    let step = study
        .meta
        .setting("capacity step duration")
        .map_or(String::new(), |value| format!(" Each step: {value}."));
    let fill = study.meta.setting("cache fill").map_or(
        " No cache fill before the searches is recorded in this report's configuration: without \
         one, each pool may have found a warmer cache than the one before it."
            .into(),
        |value| format!(" Redis filled first: {value}."),
    );
    format!(
        "Highest arrival rate with p99 < {} ms, errors < 0.1 % and no dropped arrivals, straight to nginx (no edge cache in the way), every step from a healthy, idle stack.{step}{fill} \
         \"Known within\": the true capacity lies below the first rate that missed the objective. \
         \"At the knee\": which part ran out of CPU at that first rate over. \
         \"Origins' Redis hits\": the share of the origins' Redis lookups that found their key \
         in that step (the others went to the database); it sets how much work a request costs.",
        study.meta.slo_ms
    )
}

const CPU_INTRO: &str = "CPU each part used at its pool size's capacity rate, in cores (CPU seconds per second), from /proc: \
     each server's process group (PostgreSQL's backends and nginx's workers with their master), the generator's own process, \
     and the rest of the machine (other processes: the machine's busy time in /proc/stat less the parts', shown as 0 when the parts' own \
     counts reach it, each counted to a tick of 10 ms; other work on the machine is noise).";

fn fault_intro(study: &StudyResults) -> String {
    let through = study
        .faults
        .first()
        .map_or("the edge", |fault| fault.through.as_str());
    format!(
        "Load through {through}, on {} instances, each run from the whole pool (anything a fault left down is repaired first) \
         and a healthy, idle stack; fault at 1/3 of each run and repair at 2/3 \
         (a restart of the database is its own repair: its charts mark when it returned). \
         Reads (song, comments, feed) and writes (post, patch, delete) are counted apart: \
         the design promises different things for each. \
         \"Clean after\" counts seconds from the fault until every later second had no error of that side \
         (and no dropped arrival).",
        super::FAULT_POOL
    )
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

fn write_check_line(study: &StudyResults) -> String {
    let writes = &study.writes;
    format!(
        "Acknowledged writes (201): {}; deleted by the run itself: {}; {}: {}; **lost: {}**.",
        writes.acknowledged,
        writes.deleted_by_the_run,
        match study.meta.backend {
            stack::DatabaseBackend::Postgres => "looked up in PostgreSQL",
            stack::DatabaseBackend::Cassandra => "read back through the API (Cassandra)",
        },
        writes.checked,
        writes.lost
    )
}

/// One section of the page: heading, paragraphs, tables, and chart files (Markdown) or
/// inline charts (HTML).
struct Section {
    heading: String,
    paragraphs: Vec<String>,
    tables: Vec<Table>,
    charts: Vec<(String, String)>,
}

fn sections(study: &StudyResults) -> Vec<Section> {
    vec![
        performance_section(study),
        Section {
            heading: "Capacity per pool size".into(),
            paragraphs: [capacity_intro(study), scaling_verdict(study)]
                .into_iter()
                .chain(neighbours_paragraph(study))
                .collect(),
            tables: vec![capacity_table(study)],
            charts: capacity_charts(study),
        },
        Section {
            heading: "CPU per part".into(),
            paragraphs: vec![CPU_INTRO.into()],
            tables: vec![cpu_table(study)],
            charts: cpu_chart(study)
                .map(|chart| vec![("cpu.svg".to_owned(), chart.render())])
                .unwrap_or_default(),
        },
        Section {
            heading: "What the CDN saves".into(),
            paragraphs: vec![cdn::intro(study)],
            tables: vec![cdn::table(study)],
            charts: Vec::new(),
        },
        Section {
            heading: "Cache tiers".into(),
            paragraphs: vec![cdn::tiers_intro(study)],
            tables: vec![tier_table(study)],
            charts: Vec::new(),
        },
        fault_section(study),
        Section {
            heading: "Database tier".into(),
            paragraphs: database::paragraphs(study),
            tables: database_tables(study),
            charts: Vec::new(),
        },
        Section {
            heading: "Lost writes".into(),
            paragraphs: vec![write_check_line(study)],
            tables: Vec::new(),
            charts: Vec::new(),
        },
        Section {
            heading: "Phases".into(),
            paragraphs: Vec::new(),
            tables: vec![phase_table(study)],
            charts: Vec::new(),
        },
        Section {
            heading: "Configuration".into(),
            paragraphs: Vec::new(),
            tables: vec![config_table(study)],
            charts: Vec::new(),
        },
    ]
}

/// The original's configurations at its rate, with a note on any pool past its capacity.
fn performance_section(study: &StudyResults) -> Section {
    let intro = format!(
        "The original's configurations at its stated load ({} requests/s), beside the original's figures, each run from a healthy, idle stack.",
        ORIGINAL_RATE
    );
    Section {
        heading: "Performance Summary".into(),
        paragraphs: [intro, overload_note(study)]
            .into_iter()
            .filter(|paragraph| !paragraph.is_empty())
            .collect(),
        tables: vec![performance_summary(study)],
        charts: Vec::new(),
    }
}

/// Capacity and latency against pool size, and the percentiles when there are any.
fn capacity_charts(study: &StudyResults) -> Vec<(String, String)> {
    let mut charts = vec![
        ("capacity.svg".to_owned(), capacity_chart(study).render()),
        ("latency.svg".to_owned(), latency_chart(study).render()),
    ];
    if let Some(chart) = percentile_chart(study) {
        charts.push(("percentiles.svg".into(), chart.render()));
    }
    charts
}

/// The faults: how they were run, a note per fault, their table and two timelines each.
fn fault_section(study: &StudyResults) -> Section {
    let mut paragraphs = vec![fault_intro(study)];
    paragraphs.extend(fault_notes(study));
    let charts = study
        .faults
        .iter()
        .enumerate()
        .flat_map(|(index, fault)| {
            let [rates, latency] = fault_charts(fault);
            [
                (format!("fault-{index}-rate.svg"), rates.render()),
                (format!("fault-{index}-latency.svg"), latency.render()),
            ]
        })
        .collect();
    Section {
        heading: "Faults during load".into(),
        paragraphs,
        tables: vec![fault_table(study)],
        charts,
    }
}

/// The query table (when measured) and the capacity per backend (when the tier ran).
fn database_tables(study: &StudyResults) -> Vec<Table> {
    let Some(tier) = &study.database_tier else {
        return Vec::new();
    };
    let mut tables = Vec::new();
    if !tier.queries.is_empty() {
        tables.push(database::query_table(tier));
    }
    if !tier.capacity.is_empty() {
        tables.push(database::capacity_table(study));
    }
    tables
}

pub fn markdown(study: &StudyResults) -> String {
    let mut md = String::from("# Scaling study: song-comments service\n\n");
    for line in header_lines(study) {
        let _ = writeln!(md, "- {line}");
    }
    for section in sections(study) {
        let _ = write!(md, "\n## {}\n\n", section.heading);
        for paragraph in &section.paragraphs {
            let bullet = if paragraph.starts_with("**") {
                "- "
            } else {
                ""
            };
            let _ = write!(md, "{bullet}{paragraph}\n\n");
        }
        for table in &section.tables {
            let _ = writeln!(md, "{}", table.markdown());
        }
        for (file, _) in &section.charts {
            let _ = writeln!(md, "![{file}](charts/{file})");
        }
    }
    md
}

pub fn html(study: &StudyResults) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Scaling study</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.charts svg{margin:4px}\
         </style></head><body><h1>Scaling study: song-comments service</h1><ul>",
    );
    for line in header_lines(study) {
        let _ = write!(html, "<li>{}</li>", escape(&line));
    }
    html.push_str("</ul>");
    for section in sections(study) {
        let _ = write!(html, "<h2>{}</h2>", escape(&section.heading));
        for paragraph in &section.paragraphs {
            let _ = write!(html, "<p>{}</p>", escape(paragraph).replace("**", ""));
        }
        for table in &section.tables {
            html.push_str(&table.html());
        }
        if !section.charts.is_empty() {
            html.push_str("<div class=\"charts\">");
            for (_, svg) in &section.charts {
                html.push_str(svg);
            }
            html.push_str("</div>");
        }
    }
    html.push_str("<p>Raw results: <a href=\"results.json\">results.json</a>, every run's histograms in <code>runs/</code> (mergeable with <code>loadtest merge</code>); <code>loadtest compare OLD NEW</code> sets two reports side by side.</p></body></html>\n");
    html
}

/// Writes the whole report into `dir`.
pub fn write(dir: &Path, study: &StudyResults) -> std::io::Result<()> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts)?;
    for section in sections(study) {
        for (file, svg) in section.charts {
            std::fs::write(charts.join(file), svg)?;
        }
    }
    std::fs::write(dir.join("report.md"), markdown(study))?;
    std::fs::write(dir.join("index.html"), html(study))?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(study).expect("study results serialise"),
    )?;
    Ok(())
}
