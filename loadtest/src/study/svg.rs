//! Charts drawn by hand as SVG text: line charts with axes, ticks, a legend, vertical
//! markers and shaded bands, and stacked bar charts, so the report opens anywhere without
//! a server or a script. Every line and every band is named in the legend.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A vertical line at `x` with a label (a fault, a repair).
#[derive(Debug, Clone)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// A shaded area with its name in the legend.
#[derive(Debug, Clone)]
pub struct Band {
    pub name: String,
    pub color: &'static str,
    pub area: Area,
}

#[derive(Debug, Clone)]
pub enum Area {
    /// Everything between two x values (a fault's duration).
    Span { from: f64, to: f64 },
    /// Between two lines over the same x values (a figure's uncertainty).
    Between {
        lower: Vec<(f64, f64)>,
        upper: Vec<(f64, f64)>,
    },
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub bands: Vec<Band>,
    /// A logarithmic y axis (decades), for latencies that span 1 ms to seconds;
    /// points at or below zero are left out.
    pub log_y: bool,
}

pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
/// Room for the legend: names such as "slowest of the second" fit.
const RIGHT: f64 = 210.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 50.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `ticks` ticks.
fn nice_step(span: f64, ticks: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual < 1.5 {
        1.0
    } else if residual < 3.0 {
        2.0
    } else if residual < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn format_tick(value: f64) -> String {
    if value.abs() >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The y axis: where a value goes (0 at the bottom, 1 at the top) and its ticks.
struct YAxis {
    log: bool,
    bottom: f64,
    top: f64,
}

impl YAxis {
    fn new(log: bool, y_min_positive: f64, y_max: f64) -> Self {
        if log {
            let low = if y_min_positive.is_finite() {
                y_min_positive.log10().floor()
            } else {
                0.0
            };
            let high = if y_max > 0.0 {
                y_max.log10().ceil()
            } else {
                low + 1.0
            };
            Self {
                log,
                bottom: low,
                top: high.max(low + 1.0),
            }
        } else {
            let step = nice_step(y_max, 5.0);
            Self {
                log,
                bottom: 0.0,
                top: (y_max / step).ceil().max(1.0) * step,
            }
        }
    }

    fn fraction(&self, y: f64) -> f64 {
        if self.log {
            (y.max(10f64.powf(self.bottom)).log10() - self.bottom) / (self.top - self.bottom)
        } else {
            y / self.top
        }
    }

    /// (value, label) of each tick.
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            (self.bottom as i32..=self.top as i32)
                .map(|exponent| {
                    let value = 10f64.powi(exponent);
                    let label = if exponent < 0 {
                        format!("{value:.*}", exponent.unsigned_abs() as usize)
                    } else {
                        format_tick(value)
                    };
                    (value, label)
                })
                .collect()
        } else {
            let step = nice_step(self.top, 5.0);
            let mut ticks = Vec::new();
            let mut y = 0.0;
            while y <= self.top + step / 2.0 {
                ticks.push((y, format_tick(y)));
                y += step;
            }
            ticks
        }
    }
}

/// The start of a chart: the root element, a white background and the title.
fn open_svg(title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11" role="img" aria-label="{title}"><rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{LEFT}" y="20" font-size="14" font-weight="bold">{title}</text>"#,
        title = escape(title)
    )
}

/// Horizontal grid lines with the y axis's tick labels.
fn y_grid(svg: &mut String, axis: &YAxis, sy: impl Fn(f64) -> f64) {
    for (y, label) in axis.ticks() {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{py}" y2="{py}" stroke="#e5e5e5"/><text x="{tx}" y="{ty}" text-anchor="end">{label}</text>"##,
            x2 = LEFT + PLOT_WIDTH,
            py = sy(y),
            tx = LEFT - 6.0,
            ty = sy(y) + 4.0,
        );
    }
}

/// The plot's frame and the two axis labels.
fn frame(svg: &mut String, x_label: &str, y_label: &str) {
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + PLOT_WIDTH / 2.0,
        HEIGHT - 12.0,
        escape(x_label),
        TOP + PLOT_HEIGHT / 2.0,
        escape(y_label)
    );
}

/// Where a line chart's values go: its x range and step, its y axis.
struct Scale {
    x_min: f64,
    x_top: f64,
    x_step: f64,
    y_axis: YAxis,
}

impl Scale {
    fn x(&self, x: f64) -> f64 {
        LEFT + (x - self.x_min) / (self.x_top - self.x_min) * PLOT_WIDTH
    }

    fn y(&self, y: f64) -> f64 {
        TOP + PLOT_HEIGHT - self.y_axis.fraction(y) * PLOT_HEIGHT
    }

    /// Vertical grid lines with the x axis's tick labels.
    fn x_grid(&self, svg: &mut String) {
        let mut x = (self.x_min / self.x_step).ceil() * self.x_step;
        while x <= self.x_top + self.x_step / 2.0 {
            let _ = write!(
                svg,
                r##"<line x1="{px}" x2="{px}" y1="{TOP}" y2="{y2}" stroke="#f0f0f0"/><text x="{px}" y="{ty}" text-anchor="middle">{label}</text>"##,
                px = self.x(x),
                y2 = TOP + PLOT_HEIGHT,
                ty = TOP + PLOT_HEIGHT + 16.0,
                label = format_tick(x)
            );
            x += self.x_step;
        }
    }
}

impl Chart {
    pub fn render(&self) -> String {
        let scale = self.scale();
        let mut svg = open_svg(&self.title);
        y_grid(&mut svg, &scale.y_axis, |y| scale.y(y));
        scale.x_grid(&mut svg);
        frame(&mut svg, &self.x_label, &self.y_label);
        self.draw_bands(&mut svg, &scale);
        self.draw_markers(&mut svg, &scale);
        self.draw_series(&mut svg, &scale);
        self.draw_band_legend(&mut svg);
        svg.push_str("</svg>");
        svg
    }

    /// Whether a point is drawn: on a logarithmic axis, only above zero.
    fn shows(&self, &(_, y): &(f64, f64)) -> bool {
        !self.log_y || y > 0.0
    }

    /// The axes that hold every shown point, marker and band, from x = 0 or below.
    fn scale(&self) -> Scale {
        let points = self
            .series
            .iter()
            .flat_map(|series| series.points.iter().filter(|point| self.shows(point)));
        let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
        let mut x_min = f64::INFINITY;
        let mut y_min_positive = f64::INFINITY;
        for &(x, y) in points {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_max = y_max.max(y);
            if y > 0.0 {
                y_min_positive = y_min_positive.min(y);
            }
        }
        for marker in &self.markers {
            x_max = x_max.max(marker.x);
        }
        for band in &self.bands {
            match &band.area {
                Area::Span { to, .. } => x_max = x_max.max(*to),
                Area::Between { upper, .. } => {
                    for &(x, y) in upper {
                        x_max = x_max.max(x);
                        y_max = y_max.max(y);
                    }
                }
            }
        }
        if !x_min.is_finite() {
            x_min = 0.0;
        }
        x_min = x_min.min(0.0);
        let x_step = nice_step(x_max - x_min, 6.0);
        Scale {
            x_min,
            x_top: (x_max / x_step).ceil().max(1.0) * x_step,
            x_step,
            y_axis: YAxis::new(self.log_y, y_min_positive, y_max),
        }
    }

    fn draw_bands(&self, svg: &mut String, scale: &Scale) {
        for band in &self.bands {
            match &band.area {
                Area::Span { from, to } => {
                    let _ = write!(
                        svg,
                        r#"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{}" fill-opacity="0.15"/>"#,
                        scale.x(*from),
                        (scale.x(*to) - scale.x(*from)).max(0.0),
                        PLOT_HEIGHT,
                        band.color
                    );
                }
                Area::Between { lower, upper } => {
                    let outline: Vec<String> = upper
                        .iter()
                        .chain(lower.iter().rev())
                        .map(|&(x, y)| format!("{:.1},{:.1}", scale.x(x), scale.y(y)))
                        .collect();
                    let _ = write!(
                        svg,
                        r#"<polygon points="{}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                        outline.join(" "),
                        band.color
                    );
                }
            }
        }
    }

    fn draw_markers(&self, svg: &mut String, scale: &Scale) {
        for marker in &self.markers {
            let _ = write!(
                svg,
                r##"<line x1="{px}" x2="{px}" y1="{TOP}" y2="{y2}" stroke="#444" stroke-dasharray="2 3"/><text x="{tx}" y="{ty}" fill="#444">{label}</text>"##,
                px = scale.x(marker.x),
                y2 = TOP + PLOT_HEIGHT,
                tx = scale.x(marker.x) + 3.0,
                ty = TOP + 12.0,
                label = escape(&marker.label)
            );
        }
    }

    /// Each series' line, its points when there are few, and its legend entry.
    fn draw_series(&self, svg: &mut String, scale: &Scale) {
        for (index, series) in self.series.iter().enumerate() {
            let shown: Vec<(f64, f64)> = series
                .points
                .iter()
                .filter(|point| self.shows(point))
                .copied()
                .collect();
            let path: Vec<String> = shown
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", scale.x(x), scale.y(y)))
                .collect();
            let dash = if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                series.color,
                path.join(" ")
            );
            if shown.len() <= 40 {
                for &(x, y) in &shown {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        scale.x(x),
                        scale.y(y),
                        series.color
                    );
                }
            }
            let (legend_x, legend_y) = legend_row(index);
            let _ = write!(
                svg,
                r#"<line x1="{legend_x}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                legend_x + 18.0,
                series.color,
                legend_x + 24.0,
                legend_y + 4.0,
                escape(&series.name)
            );
        }
    }

    /// The bands' legend entries, below the series'.
    fn draw_band_legend(&self, svg: &mut String) {
        for (index, band) in self.bands.iter().enumerate() {
            let (legend_x, legend_y) = legend_row(self.series.len() + index);
            let _ = write!(
                svg,
                r#"<rect x="{legend_x}" y="{}" width="18" height="10" fill="{}" fill-opacity="0.3"/><text x="{}" y="{}">{}</text>"#,
                legend_y - 5.0,
                band.color,
                legend_x + 24.0,
                legend_y + 4.0,
                escape(&band.name)
            );
        }
    }
}

/// Where row `row` of a chart's legend starts, right of the plot.
fn legend_row(row: usize) -> (f64, f64) {
    (LEFT + PLOT_WIDTH + 12.0, TOP + 14.0 + row as f64 * 18.0)
}

/// One layer of a stacked bar chart: a part's value in every bar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<f64>,
}

/// Bars made of layers stacked bottom up (the CPU of each part at each pool size), with
/// an optional horizontal reference line (the machine's cores).
#[derive(Debug, Clone)]
pub struct StackedBars {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub bars: Vec<String>,
    pub layers: Vec<Layer>,
    pub reference: Option<(f64, String)>,
}

impl StackedBars {
    pub fn render(&self) -> String {
        let totals: Vec<f64> = (0..self.bars.len())
            .map(|bar| {
                self.layers
                    .iter()
                    .map(|layer| layer.values.get(bar).copied().unwrap_or(0.0).max(0.0))
                    .sum()
            })
            .collect();
        let top_value = totals
            .iter()
            .copied()
            .chain(self.reference.iter().map(|(value, _)| *value))
            .fold(0.0, f64::max);
        let axis = YAxis::new(false, f64::INFINITY, top_value.max(1e-9));
        let sy = |y: f64| TOP + PLOT_HEIGHT - axis.fraction(y) * PLOT_HEIGHT;
        let slot = PLOT_WIDTH / self.bars.len().max(1) as f64;
        let bar_width = slot * 0.6;

        let mut svg = open_svg(&self.title);
        y_grid(&mut svg, &axis, sy);
        for (bar, name) in self.bars.iter().enumerate() {
            let x = LEFT + slot * bar as f64 + (slot - bar_width) / 2.0;
            let mut base = 0.0;
            for layer in &self.layers {
                let value = layer.values.get(bar).copied().unwrap_or(0.0).max(0.0);
                if value > 0.0 {
                    let _ = write!(
                        svg,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{bar_width:.1}" height="{:.1}" fill="{}"><title>{}: {value:.3}</title></rect>"#,
                        sy(base + value),
                        (sy(base) - sy(base + value)).max(0.0),
                        layer.color,
                        escape(&layer.name)
                    );
                }
                base += value;
            }
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.2}</text>"#,
                x + bar_width / 2.0,
                TOP + PLOT_HEIGHT + 16.0,
                escape(name),
                x + bar_width / 2.0,
                sy(base) - 4.0,
                base
            );
        }
        if let Some((value, _)) = &self.reference {
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{x2}" y1="{py}" y2="{py}" stroke="#444" stroke-dasharray="6 4"/>"##,
                x2 = LEFT + PLOT_WIDTH,
                py = sy(*value),
            );
        }
        frame(&mut svg, &self.x_label, &self.y_label);
        self.draw_legend(&mut svg);
        svg.push_str("</svg>");
        svg
    }

    /// The legend top down in the order the layers stack bottom up, so it reads
    /// like the bars; the reference line last.
    fn draw_legend(&self, svg: &mut String) {
        for (index, layer) in self.layers.iter().rev().enumerate() {
            let (legend_x, legend_y) = legend_row(index);
            let _ = write!(
                svg,
                r#"<rect x="{legend_x}" y="{}" width="14" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                legend_y - 5.0,
                layer.color,
                legend_x + 20.0,
                legend_y + 4.0,
                escape(&layer.name)
            );
        }
        if let Some((_, label)) = &self.reference {
            let (legend_x, y) = legend_row(self.layers.len());
            let _ = write!(
                svg,
                r##"<line x1="{legend_x}" x2="{}" y1="{y}" y2="{y}" stroke="#444" stroke-dasharray="6 4"/><text x="{}" y="{}">{}</text>"##,
                legend_x + 14.0,
                legend_x + 20.0,
                y + 4.0,
                escape(label)
            );
        }
    }
}

#[cfg(test)]
mod tests;
