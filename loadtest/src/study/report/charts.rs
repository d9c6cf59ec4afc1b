//! The report's charts. Per-second charts draw only the seconds the schedule filled
//! completely (the last, partial one would read as a collapse), and every line and band
//! says in the legend what it is.

use crate::recorder::Second;
use crate::study::model::{CpuUse, FaultRun, RunSummary, StudyResults, whole_seconds};
use crate::study::svg::{Area, Band, Chart, Layer, Marker, PALETTE, Series, StackedBars};

pub fn capacity_chart(study: &StudyResults) -> Chart {
    let slo = study.meta.slo_ms;
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
    // The true capacity lies between the highest rate that met the objective and the
    // lowest that did not: the search's resolution.
    let upper: Vec<(f64, f64)> = study
        .scaling
        .iter()
        .map(|result| {
            let knee = result
                .knee(slo)
                .map_or(result.capacity_rps, |knee| knee.offered_rate);
            (result.instances as f64, knee)
        })
        .collect();
    Chart {
        title: format!("Capacity vs instances (p99 < {} ms)", slo),
        x_label: "origin instances".into(),
        y_label: "requests/s".into(),
        series: vec![
            Series {
                name: "measured capacity".into(),
                color: PALETTE[0],
                points: measured.clone(),
                dashed: false,
            },
            Series {
                name: "ideal (linear from 1)".into(),
                color: "#999999",
                points: ideal,
                dashed: true,
            },
        ],
        markers: Vec::new(),
        bands: vec![Band {
            name: "up to the first rate over".into(),
            color: PALETTE[0],
            area: Area::Between {
                lower: measured,
                upper,
            },
        }],
        log_y: false,
    }
}

/// The colours of levels drawn across a chart: greys, apart from the series' palette.
const LEVELS: [&str; 2] = ["#7f7f7f", "#333333"];

pub fn latency_chart(study: &StudyResults) -> Chart {
    let mut series: Vec<Series> = study
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
    // Two levels drawn across the steps' rates: the objective the searches hold each
    // step to, and the client's timeout, at which a p99 stands for requests given up on
    // (counted at the time they were), not for a latency.
    let rates = || {
        series
            .iter()
            .flat_map(|line| line.points.iter().map(|point| point.0))
    };
    let (low, high) = (
        rates().fold(f64::INFINITY, f64::min),
        rates().fold(0.0, f64::max),
    );
    let timed_out =
        |line: &Series, timeout: f64| line.points.iter().any(|point| point.1 >= timeout);
    let mut levels = vec![(
        format!("objective ({} ms)", study.meta.slo_ms),
        study.meta.slo_ms,
    )];
    if let Some(timeout) = study.meta.client_timeout_ms
        && series.iter().any(|line| timed_out(line, timeout))
    {
        levels.push((format!("client timeout ({timeout} ms)"), timeout));
    }
    if low < high {
        for (index, (name, level)) in levels.into_iter().enumerate() {
            series.push(Series {
                name,
                color: LEVELS[index % LEVELS.len()],
                points: vec![(low, level), (high, level)],
                dashed: true,
            });
        }
    }
    Chart {
        title: "p99 latency vs offered load".into(),
        x_label: "offered requests/s".into(),
        y_label: "p99 ms (from intended start, log)".into(),
        series,
        markers: Vec::new(),
        bands: Vec::new(),
        log_y: true,
    }
}

pub fn percentile_chart(study: &StudyResults) -> Option<Chart> {
    let result = study
        .scaling
        .iter()
        .max_by_key(|result| result.steps.len())?;
    let mut steps = result.steps.clone();
    steps.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
    let line = |name: &str, color, pick: fn(&RunSummary) -> f64| Series {
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
        y_label: "ms (from intended start, log)".into(),
        series: vec![
            line("p50", PALETTE[0], |s| s.p50_ms),
            line("p90", PALETTE[2], |s| s.p90_ms),
            line("p99", PALETTE[1], |s| s.p99_ms),
            line("p99.9", PALETTE[3], |s| s.p999_ms),
        ],
        markers: Vec::new(),
        bands: Vec::new(),
        log_y: true,
    })
}

/// Colours of the CPU parts, in [`CpuUse::parts_names`] order.
const PART_COLORS: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#17becf", "#2ca02c", "#d62728", "#9467bd", "#bbbbbb",
];

/// The CPU of each part at each pool size's capacity, stacked, against the machine's cores.
pub fn cpu_chart(study: &StudyResults) -> Option<StackedBars> {
    let points: Vec<(usize, &CpuUse)> = study
        .scaling
        .iter()
        .filter_map(|result| {
            let cpu = result.at_capacity(study.meta.slo_ms)?.cpu.as_ref()?;
            Some((result.instances, cpu))
        })
        .collect();
    let machine = points.first()?.1.machine_cores;
    let layers = CpuUse::parts_names()
        .iter()
        .enumerate()
        .map(|(index, name)| Layer {
            name: (*name).into(),
            color: PART_COLORS[index],
            values: points.iter().map(|(_, cpu)| cpu.parts()[index].1).collect(),
        })
        .collect();
    Some(StackedBars {
        title: "CPU per part at each pool size's capacity".into(),
        x_label: "origin instances (at their capacity rate)".into(),
        y_label: "cores".into(),
        bars: points
            .iter()
            .map(|(instances, _)| instances.to_string())
            .collect(),
        layers,
        reference: Some((machine as f64, format!("machine: {machine} cores"))),
    })
}

pub fn fault_charts(fault: &FaultRun) -> [Chart; 2] {
    let whole = whole_seconds(fault.summary.duration_s, &fault.timeline);
    // One line of the run, a point per whole second; a dashed one for what is
    // not a request's own figure.
    let line = |name: &str, color, pick: fn(&Second) -> f64, dashed| Series {
        name: name.into(),
        color,
        points: whole
            .iter()
            .enumerate()
            .map(|(index, second)| (index as f64 + 0.5, pick(second)))
            .collect(),
        dashed,
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
    let bands = vec![Band {
        name: "fault in effect".into(),
        color: PALETTE[1],
        area: Area::Span {
            from: fault.fault_at_s,
            to: fault.repair_at_s,
        },
    }];
    [
        Chart {
            title: format!("{}: requests per second", fault.name),
            x_label: "seconds (each point: one whole second)".into(),
            y_label: "requests/s".into(),
            series: vec![
                line(
                    "succeeded",
                    PALETTE[0],
                    |s| (s.completed - s.errors) as f64,
                    false,
                ),
                line("read errors", PALETTE[1], |s| s.read_errors() as f64, false),
                line("write errors", PALETTE[3], |s| s.write_errors as f64, false),
                line("dropped arrivals", PALETTE[4], |s| s.dropped as f64, true),
            ],
            markers: markers.clone(),
            bands: bands.clone(),
            log_y: false,
        },
        Chart {
            title: format!("{}: latency per second", fault.name),
            x_label: "seconds (each point: one whole second)".into(),
            y_label: "ms from intended start (log)".into(),
            series: vec![
                line("p50 of the second", PALETTE[2], Second::p50_ms, false),
                line("p99 of the second", PALETTE[1], Second::p99_ms, false),
                line(
                    "slowest of the second",
                    "#999999",
                    |s| s.latency_max_us as f64 / 1000.0,
                    true,
                ),
            ],
            markers,
            bands,
            log_y: true,
        },
    ]
}
