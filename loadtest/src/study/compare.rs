//! Two study reports side by side (`loadtest compare OLD NEW`, `study --baseline DIR`):
//! capacity per pool size, the fixed-rate runs' p50, p99 and error rate, the cache tiers
//! and the faults, each difference held against the noise both figures carry, printed,
//! and drawn as capacity lines with their uncertainty bands.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::meta::{CACHE_FILL, RUN_LENGTHS};
use super::model::{
    ClassSummary, RunSummary, ScalingResult, StudyResults, error_rate_noise, on_off,
};
use super::report::{Table, escape};
use super::svg::{Area, Band, Chart, PALETTE, Series};

/// Reads a report's `results.json`, given the report directory or the file itself.
pub fn load(path: &Path) -> anyhow::Result<StudyResults> {
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
}

/// What a figure measures, which way is better, and how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Requests per second: higher is better.
    Rate,
    /// Milliseconds: lower is better.
    Ms,
    /// A fraction shown in percent: lower is better.
    Fraction,
}

impl Unit {
    fn show(self, value: f64) -> String {
        match self {
            Unit::Rate => format!("{value:.0}/s"),
            Unit::Ms => format!("{value:.2} ms"),
            Unit::Fraction => format!("{:.3}%", value * 100.0),
        }
    }
}

/// One figure in both reports, with the noise of each (`None`: not known).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub what: String,
    pub unit: Unit,
    pub old: Option<f64>,
    pub new: Option<f64>,
    pub old_noise: Option<f64>,
    pub new_noise: Option<f64>,
}

impl Row {
    /// Better, worse, within the noise, or why it cannot say.
    pub fn verdict(&self) -> String {
        let (Some(old), Some(new)) = (self.old, self.new) else {
            return "only in one report".into();
        };
        let (Some(old_noise), Some(new_noise)) = (self.old_noise, self.new_noise) else {
            return "noise unknown".into();
        };
        let delta = new - old;
        // Two standard errors of the difference: a change smaller than that is noise.
        let bound = 2.0 * (old_noise.powi(2) + new_noise.powi(2)).sqrt();
        if delta.abs() <= bound {
            return "within noise".into();
        }
        let better = match self.unit {
            Unit::Rate => delta > 0.0,
            Unit::Ms | Unit::Fraction => delta < 0.0,
        };
        if better { "better" } else { "worse" }.into()
    }

    fn cells(&self) -> Vec<String> {
        let show = |value: Option<f64>, noise: Option<f64>| match value {
            None => "—".to_owned(),
            Some(value) => match noise {
                Some(noise) => format!("{} ± {}", self.unit.show(value), self.unit.show(noise)),
                None => self.unit.show(value),
            },
        };
        let change = match (self.old, self.new) {
            (Some(old), Some(new)) if old.abs() > 1e-12 => {
                format!("{:+.1}%", (new - old) / old.abs() * 100.0)
            }
            (Some(old), Some(new)) => self.unit.show(new - old),
            _ => "—".into(),
        };
        vec![
            self.what.clone(),
            show(self.old, self.old_noise),
            show(self.new, self.new_noise),
            change,
            self.verdict(),
        ]
    }
}

/// The comparison of two reports.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub old_label: String,
    pub new_label: String,
    pub context: Vec<String>,
    pub rows: Vec<Row>,
    old_scaling: Vec<ScalingResult>,
    new_scaling: Vec<ScalingResult>,
    slo_ms: f64,
}

/// Half the search's resolution: the capacity lies between the figure and the first rate
/// over, so half that gap is the figure's noise.
fn capacity_noise(result: &ScalingResult, slo_ms: f64) -> Option<f64> {
    result
        .knee(slo_ms)
        .map(|knee| (knee.offered_rate - result.capacity_rps) / 2.0)
}

fn summary_rows(what: &str, old: Option<&RunSummary>, new: Option<&RunSummary>) -> [Row; 3] {
    let row = |figure: &str,
               unit,
               value: fn(&RunSummary) -> f64,
               noise: fn(&RunSummary) -> Option<f64>| Row {
        what: format!("{what}: {figure}"),
        unit,
        old: old.map(value),
        new: new.map(value),
        old_noise: old.and_then(noise),
        new_noise: new.and_then(noise),
    };
    [
        row("p50", Unit::Ms, |s| s.p50_ms, |s| s.p50_noise_ms),
        row("p99", Unit::Ms, |s| s.p99_ms, |s| s.p99_noise_ms),
        row(
            "error rate",
            Unit::Fraction,
            |s| s.error_rate,
            |s| Some(s.error_rate_noise()),
        ),
    ]
}

/// One capacity figure in both reports, its noise from the search's resolution.
fn capacity_row(
    what: String,
    old: Option<&ScalingResult>,
    new: Option<&ScalingResult>,
    slo_ms: f64,
) -> Row {
    Row {
        what,
        unit: Unit::Rate,
        old: old.map(|result| result.capacity_rps),
        new: new.map(|result| result.capacity_rps),
        old_noise: old.and_then(|result| capacity_noise(result, slo_ms)),
        new_noise: new.and_then(|result| capacity_noise(result, slo_ms)),
    }
}

/// A row per pool size either report measured, smallest first, then the edge's capacity
/// when either report has one.
fn capacity_rows(old: &StudyResults, new: &StudyResults, slo_ms: f64) -> Vec<Row> {
    let mut sizes: Vec<usize> = old
        .scaling
        .iter()
        .chain(&new.scaling)
        .map(|result| result.instances)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut rows: Vec<Row> = sizes
        .into_iter()
        .map(|size| {
            capacity_row(
                format!("capacity, {size} instance(s)"),
                old.capacity_of(size),
                new.capacity_of(size),
                slo_ms,
            )
        })
        .collect();
    let (old_edge, new_edge) = (old.edge_capacity.as_ref(), new.edge_capacity.as_ref());
    if old_edge.is_some() || new_edge.is_some() {
        rows.push(capacity_row(
            "edge capacity (cache on)".into(),
            old_edge,
            new_edge,
            slo_ms,
        ));
    }
    rows
}

/// The new report's fixed-rate runs, each against the old run on the same pool size.
fn fixed_rate_rows(old: &StudyResults, new: &StudyResults) -> Vec<Row> {
    new.fixed
        .iter()
        .flat_map(|run| {
            let before = old
                .fixed
                .iter()
                .find(|earlier| earlier.original.instances == run.original.instances);
            summary_rows(
                &format!("400/s, {}", run.original.configuration),
                before.map(|earlier| &earlier.ours),
                Some(&run.ours),
            )
        })
        .collect()
}

/// The new report's cache tiers, each against the old tier with the same caches on.
fn tier_rows(old: &StudyResults, new: &StudyResults) -> Vec<Row> {
    new.tiers
        .iter()
        .flat_map(|tier| {
            let what = format!(
                "tier edge {} Redis {}",
                on_off(tier.edge_cache),
                on_off(tier.redis)
            );
            let before = old.tiers.iter().find(|earlier| {
                earlier.edge_cache == tier.edge_cache && earlier.redis == tier.redis
            });
            summary_rows(
                &what,
                before.map(|earlier| &earlier.summary),
                Some(&tier.summary),
            )
        })
        .collect()
}

/// The new report's faults, reads then writes, each against the old fault of the same
/// canonical name (so an older report's "restart PostgreSQL" still pairs).
fn fault_rows(old: &StudyResults, new: &StudyResults) -> Vec<Row> {
    new.faults
        .iter()
        .flat_map(|fault| {
            let before = old.faults.iter().find(|earlier| {
                super::faults::Fault::canonical_name(&earlier.name)
                    == super::faults::Fault::canonical_name(&fault.name)
            });
            [
                fault_error_row(
                    &fault.name,
                    "reads",
                    before.map(|earlier| &earlier.reads),
                    &fault.reads,
                ),
                fault_error_row(
                    &fault.name,
                    "writes",
                    before.map(|earlier| &earlier.writes),
                    &fault.writes,
                ),
            ]
        })
        .collect()
}

/// One side's error rate under a fault, with its binomial noise.
fn fault_error_row(fault: &str, side: &str, old: Option<&ClassSummary>, new: &ClassSummary) -> Row {
    let noise =
        |class: &ClassSummary| error_rate_noise(class.errors, class.error_rate, class.requests);
    Row {
        what: format!("fault '{fault}': {side} error rate"),
        unit: Unit::Fraction,
        old: old.map(|class| class.error_rate),
        new: Some(new.error_rate),
        old_noise: old.map(noise),
        new_noise: Some(noise(new)),
    }
}

/// The lines above the table: each run's revision, date, profile and machine load, how
/// a verdict is reached, and a warning when the CPU quotas, the cache fills or the
/// lengths of the fixed-rate, fault and tier runs differ.
fn context_lines(old: &StudyResults, new: &StudyResults) -> Vec<String> {
    let mut context = vec![
        format!("old: {}", describe(old)),
        format!("new: {}", describe(new)),
        "A difference is called better or worse only when it exceeds twice the noise of the difference \
         (capacity: half the gap to the first rate over; p50 and p99: the standard error of the per-second values; \
         error rates: the binomial standard error, or 3/n for none). Both runs' machine load is above: a busier machine lowers every figure."
            .into(),
    ];
    let (old_quota, new_quota) = (quota(old), quota(new));
    if old_quota != new_quota {
        context.push(format!(
            "The CPU quotas differ, so capacities are not like for like: old {old_quota}; new {new_quota}."
        ));
    }
    // Settings whose difference makes figures unlike, with what it makes unlike.
    let unlike_when_different = [
        (
            CACHE_FILL,
            "The cache fill before the capacity searches differs, so the pools' Redis hits, and with them \
             their capacities, are not like for like",
        ),
        (
            RUN_LENGTHS,
            "The runs' lengths differ, so their error rates (a fault's outage is a share of its run) and \
             percentiles are not like for like",
        ),
    ];
    for (name, what_differs) in unlike_when_different {
        let setting = |study: &StudyResults| {
            study
                .meta
                .setting(name)
                .unwrap_or("none recorded")
                .to_owned()
        };
        let (old_value, new_value) = (setting(old), setting(new));
        if old_value != new_value {
            context.push(format!("{what_differs}: old {old_value}; new {new_value}."));
        }
    }
    context
}

/// One report in a line: revision, date, profile and the load average at start and end.
fn describe(study: &StudyResults) -> String {
    let load_average = |value: Option<f64>| value.map_or("?".into(), |load| format!("{load:.2}"));
    format!(
        "{} ({}, {} profile, load average {} → {})",
        study.meta.git_revision,
        study.meta.date,
        study.meta.profile,
        load_average(study.meta.load_average_start),
        load_average(study.meta.load_average_end)
    )
}

/// The report's CPU quota in words; reports from before it was kept say "not recorded".
fn quota(study: &StudyResults) -> String {
    study
        .meta
        .quota
        .as_ref()
        .map_or("not recorded".into(), |quota| quota.describe())
}

/// The revision without the "(with uncommitted changes)" note, for the column headings.
fn short_revision(study: &StudyResults) -> &str {
    study
        .meta
        .git_revision
        .split_whitespace()
        .next()
        .unwrap_or("?")
}

impl Comparison {
    pub fn of(old: &StudyResults, new: &StudyResults) -> Self {
        let slo_ms = new.meta.slo_ms;
        let mut rows = capacity_rows(old, new, slo_ms);
        rows.extend(fixed_rate_rows(old, new));
        rows.extend(tier_rows(old, new));
        rows.extend(fault_rows(old, new));
        Self {
            old_label: format!("old ({})", short_revision(old)),
            new_label: format!("new ({})", short_revision(new)),
            context: context_lines(old, new),
            rows,
            old_scaling: old.scaling.clone(),
            new_scaling: new.scaling.clone(),
            slo_ms,
        }
    }

    pub fn table(&self) -> Table {
        Table {
            headers: vec![
                "Figure".into(),
                "Old".into(),
                "New".into(),
                "Change".into(),
                "Verdict".into(),
            ],
            rows: self.rows.iter().map(Row::cells).collect(),
        }
    }

    /// Plain text for the terminal: the context, then one aligned line per figure.
    pub fn text(&self) -> String {
        let table = self.table();
        let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
        for row in &table.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for line in &self.context {
            let _ = writeln!(text, "{line}");
        }
        text.push('\n');
        for row in std::iter::once(&table.headers).chain(&table.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(text, "{}", cells.join("  ").trim_end());
        }
        text
    }

    /// Capacity against pool size, both reports, each with its uncertainty band.
    pub fn chart(&self) -> Chart {
        type Line = Vec<(f64, f64)>;
        let line = |scaling: &[ScalingResult]| -> (Line, Line) {
            scaling
                .iter()
                .map(|result| {
                    let x = result.instances as f64;
                    let upper = result
                        .knee(self.slo_ms)
                        .map_or(result.capacity_rps, |knee| knee.offered_rate);
                    ((x, result.capacity_rps), (x, upper))
                })
                .unzip()
        };
        let (old, old_upper) = line(&self.old_scaling);
        let (new, new_upper) = line(&self.new_scaling);
        Chart {
            title: format!("Capacity vs instances (p99 < {} ms), two runs", self.slo_ms),
            x_label: "origin instances".into(),
            y_label: "requests/s".into(),
            series: vec![
                Series {
                    name: self.old_label.clone(),
                    color: "#999999",
                    points: old.clone(),
                    dashed: true,
                },
                Series {
                    name: self.new_label.clone(),
                    color: PALETTE[0],
                    points: new.clone(),
                    dashed: false,
                },
            ],
            markers: Vec::new(),
            bands: vec![
                Band {
                    name: "old: up to first rate over".into(),
                    color: "#999999",
                    area: Area::Between {
                        lower: old,
                        upper: old_upper,
                    },
                },
                Band {
                    name: "new: up to first rate over".into(),
                    color: PALETTE[0],
                    area: Area::Between {
                        lower: new,
                        upper: new_upper,
                    },
                },
            ],
            log_y: false,
        }
    }
}

/// Writes `compare.md`, `compare.html` (with the chart inline) and `capacity.svg` into `dir`.
pub fn write(dir: &Path, comparison: &Comparison) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let chart = comparison.chart().render();
    std::fs::write(dir.join("capacity.svg"), &chart)?;
    let mut md = String::from("# Two study runs compared\n\n");
    for line in &comparison.context {
        let _ = writeln!(md, "- {line}");
    }
    let _ = write!(
        md,
        "\n{}\n![capacity](capacity.svg)\n",
        comparison.table().markdown()
    );
    std::fs::write(dir.join("compare.md"), md)?;
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Two study runs compared</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style></head><body><h1>Two study runs compared</h1><ul>",
    );
    for line in &comparison.context {
        let _ = write!(html, "<li>{}</li>", escape(line));
    }
    let _ = writeln!(
        html,
        "</ul>{}{chart}</body></html>",
        comparison.table().html()
    );
    std::fs::write(dir.join("compare.html"), html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(old: f64, new: f64, noise: f64, unit: Unit) -> Row {
        Row {
            what: "x".into(),
            unit,
            old: Some(old),
            new: Some(new),
            old_noise: Some(noise),
            new_noise: Some(noise),
        }
    }

    #[test]
    fn a_change_counts_only_beyond_twice_the_noise() {
        // Noise 100 each: the difference's noise is 141, twice that 283.
        assert_eq!(
            row(1000.0, 1250.0, 100.0, Unit::Rate).verdict(),
            "within noise"
        );
        assert_eq!(row(1000.0, 1300.0, 100.0, Unit::Rate).verdict(), "better");
        assert_eq!(row(1000.0, 700.0, 100.0, Unit::Rate).verdict(), "worse");
        // Lower is better for latency and errors.
        assert_eq!(row(10.0, 5.0, 1.0, Unit::Ms).verdict(), "better");
        assert_eq!(row(0.001, 0.05, 0.001, Unit::Fraction).verdict(), "worse");
        let unknown = Row {
            old_noise: None,
            ..row(1.0, 2.0, 0.1, Unit::Ms)
        };
        assert_eq!(unknown.verdict(), "noise unknown");
        let one_side = Row {
            old: None,
            ..row(1.0, 2.0, 0.1, Unit::Ms)
        };
        assert_eq!(one_side.verdict(), "only in one report");
        assert_eq!(
            row(1000.0, 1300.0, 100.0, Unit::Rate).cells(),
            ["x", "1000/s ± 100/s", "1300/s ± 100/s", "+30.0%", "better"]
        );
    }
}
