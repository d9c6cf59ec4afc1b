use super::*;

#[test]
fn renders_series_markers_and_escapes_text() {
    let chart = Chart {
        title: "capacity <vs> instances".into(),
        x_label: "instances".into(),
        y_label: "requests/s".into(),
        series: vec![Series {
            name: "measured".into(),
            color: PALETTE[0],
            points: vec![(1.0, 100.0), (2.0, 190.0)],
            dashed: false,
        }],
        markers: vec![Marker {
            x: 1.5,
            label: "fault".into(),
        }],
        bands: vec![
            Band {
                name: "fault active".into(),
                color: PALETTE[1],
                area: Area::Span { from: 1.5, to: 1.8 },
            },
            Band {
                name: "capacity lies here".into(),
                color: PALETTE[0],
                area: Area::Between {
                    lower: vec![(1.0, 100.0), (2.0, 190.0)],
                    upper: vec![(1.0, 120.0), (2.0, 250.0)],
                },
            },
        ],
        log_y: false,
    };
    let svg = chart.render();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    assert!(svg.contains(">fault active<") && svg.contains(">capacity lies here<"));
    assert_eq!(svg.matches("<polygon").count(), 1);
    // The band's top (250) widened the y axis.
    assert!(svg.contains(">250<") || svg.contains(">300<"), "{svg}");
    assert!(svg.contains("capacity &lt;vs&gt; instances"));
    assert!(svg.contains("<polyline") && svg.contains("measured") && svg.contains("fault"));
    assert_eq!(svg.matches("<circle").count(), 2);
}

#[test]
fn a_log_axis_spans_decades_and_leaves_out_zeros() {
    let chart = Chart {
        title: "latency".into(),
        x_label: "seconds".into(),
        y_label: "ms".into(),
        series: vec![Series {
            name: "p99".into(),
            color: PALETTE[1],
            points: vec![(0.5, 2.0), (1.5, 0.0), (2.5, 1500.0)],
            dashed: false,
        }],
        markers: Vec::new(),
        bands: Vec::new(),
        log_y: true,
    };
    let svg = chart.render();
    // Decades 1, 10, 100, 1000, 10000 ms; the zero point is not drawn.
    for tick in [">1<", ">10<", ">100<", ">1000<", ">10k<"] {
        assert!(svg.contains(tick), "no tick {tick}: {svg}");
    }
    assert_eq!(svg.matches("<circle").count(), 2);
    let axis = YAxis::new(true, 0.05, 40.0);
    assert_eq!((axis.bottom, axis.top), (-2.0, 2.0));
    assert_eq!(axis.ticks()[0].1, "0.01");
    assert!((axis.fraction(1.0) - 0.5).abs() < 1e-9);
}

#[test]
fn stacked_bars_stack_their_layers_and_name_each_one() {
    let chart = StackedBars {
        title: "CPU per part".into(),
        x_label: "instances".into(),
        y_label: "cores".into(),
        bars: vec!["1".into(), "10".into()],
        layers: vec![
            Layer {
                name: "origin instances".into(),
                color: PALETTE[0],
                values: vec![0.05, 0.5],
            },
            Layer {
                name: "nginx".into(),
                color: PALETTE[1],
                values: vec![0.1, 0.0],
            },
        ],
        reference: Some((2.0, "machine: 2 cores".into())),
    };
    let svg = chart.render();
    // Three non-empty segments (the zero is not drawn), two legend swatches.
    assert_eq!(svg.matches("<title>").count(), 3);
    assert!(svg.contains(">origin instances<") && svg.contains(">nginx<"));
    assert!(
        svg.contains(">0.15<") && svg.contains(">0.50<"),
        "totals on the bars"
    );
    assert!(svg.contains("machine: 2 cores"));
}

#[test]
fn nice_steps() {
    assert_eq!(nice_step(100.0, 5.0), 20.0);
    assert_eq!(nice_step(7.0, 6.0), 1.0);
    assert_eq!(nice_step(0.0, 5.0), 1.0);
}
