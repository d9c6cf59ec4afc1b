//! `stack bench-scaling`: requests/s of the origin pool at 1, 2, 4... quota-limited instances, measured with wrk at the nginx URL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::stack::{Stack, StackConfig, StackError};

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("cannot run wrk (install it with `apt-get install -y wrk`)")]
    Wrk(#[source] std::io::Error),
    #[error("wrk failed: {0}")]
    WrkFailed(String),
    #[error("cannot write {0}")]
    Script(String, #[source] std::io::Error),
}

/// What one wrk run against one pool size measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRow {
    pub instances: usize,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Responses that were not 2xx or 3xx, and socket errors.
    pub errors: u64,
}

/// How to load the pool.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub instance_counts: Vec<usize>,
    pub duration: Duration,
    pub connections: usize,
    /// Song ids are drawn uniformly from 1..=songs, so requests spread over the data.
    pub songs: u64,
}

/// Brings up one stack (no Redis, no edge: every request reaches an origin and the
/// database), scales it to each count in turn and runs wrk against nginx.
pub async fn run_scaling(
    config: StackConfig,
    settings: &BenchSettings,
) -> Result<Vec<ScalingRow>, BenchError> {
    let first = settings.instance_counts.first().copied().unwrap_or(1);
    let config = StackConfig {
        instances: first,
        redis: false,
        edge: false,
        ..config
    };
    let mut stack = Stack::up(config).await?;
    let script = stack.run_dir().join("comments.lua");
    std::fs::write(&script, wrk_script(settings.songs))
        .map_err(|source| BenchError::Script(script.display().to_string(), source))?;
    let mut rows = Vec::new();
    for &count in &settings.instance_counts {
        stack.scale_to(count).await?;
        // A short warm-up fills connection pools and the database's buffers.
        run_wrk(
            &stack.nginx_url(),
            &script,
            Duration::from_secs(2),
            settings.connections,
        )?;
        eprintln!(
            "[bench] {count} instance(s): wrk -t1 -c{} -d{}s",
            settings.connections,
            settings.duration.as_secs()
        );
        let output = run_wrk(
            &stack.nginx_url(),
            &script,
            settings.duration,
            settings.connections,
        )?;
        let row = parse_wrk(count, &output);
        eprintln!(
            "[bench] {count} instance(s): {:.0} requests/s",
            row.requests_per_second
        );
        rows.push(row);
    }
    stack.down().await;
    Ok(rows)
}

/// The rows as a Markdown table.
pub fn table(rows: &[ScalingRow], cpu_per_instance: Option<f64>) -> String {
    let quota = cpu_per_instance.map_or("unlimited".to_owned(), |cpu| format!("{cpu} CPU"));
    let mut text = format!(
        "| instances ({quota} each) | requests/s | p50 ms | p99 ms | errors | vs 1 instance |\n|---:|---:|---:|---:|---:|---:|\n"
    );
    let base = rows.first().map_or(0.0, |row| row.requests_per_second);
    for row in rows {
        let fmt = |value: Option<f64>| value.map_or("-".to_owned(), |ms| format!("{ms:.2}"));
        let speedup = if base > 0.0 {
            format!("{:.2}x", row.requests_per_second / base)
        } else {
            "-".to_owned()
        };
        text.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {speedup} |\n",
            row.instances,
            row.requests_per_second,
            fmt(row.p50_ms),
            fmt(row.p99_ms),
            row.errors
        ));
    }
    text
}

fn wrk_script(songs: u64) -> String {
    format!(
        "-- Written by stack bench-scaling: GET the comments of a random song.\n\
         math.randomseed(42)\n\
         request = function()\n\
         \x20 return wrk.format(\"GET\", \"/api/songs/\" .. math.random(1, {songs}) .. \"/comments\")\n\
         end\n"
    )
}

fn run_wrk(
    url: &str,
    script: &Path,
    duration: Duration,
    connections: usize,
) -> Result<String, BenchError> {
    let output = Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .map_err(BenchError::Wrk)?;
    if !output.status.success() {
        return Err(BenchError::WrkFailed(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Reads requests/s, p50, p99 and errors from wrk's text output.
pub fn parse_wrk(instances: usize, output: &str) -> ScalingRow {
    let mut row = ScalingRow {
        instances,
        requests_per_second: 0.0,
        p50_ms: None,
        p99_ms: None,
        errors: 0,
    };
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => row.requests_per_second = value.parse().unwrap_or(0.0),
            ["50%", value] => row.p50_ms = parse_duration_ms(value),
            ["99%", value] => row.p99_ms = parse_duration_ms(value),
            ["Non-2xx", "or", "3xx", "responses:", value] => {
                row.errors += value.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                row.errors += rest
                    .iter()
                    .filter_map(|word| word.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    row
}

/// wrk prints durations as `812.00us`, `1.23ms` or `2.01s`.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(value) = text.strip_suffix("us") {
        (value, 0.001)
    } else if let Some(value) = text.strip_suffix("ms") {
        (value, 1.0)
    } else if let Some(value) = text.strip_suffix('s') {
        (value, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().ok().map(|value| value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 10s test @ http://127.0.0.1:8100
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.01ms    1.20ms  30.00ms   90.00%
  Latency Distribution
     50%  812.00us
     75%    4.00ms
     90%    6.00ms
     99%    1.50s
  12345 requests in 10.00s, 5.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1234.50
Transfer/sec:    512.00KB
";

    #[test]
    fn wrk_output_yields_rate_latencies_and_errors() {
        let row = parse_wrk(2, WRK_OUTPUT);
        assert_eq!(row.instances, 2);
        assert!((row.requests_per_second - 1234.5).abs() < 1e-9);
        assert!((row.p50_ms.unwrap() - 0.812).abs() < 1e-9);
        assert!((row.p99_ms.unwrap() - 1500.0).abs() < 1e-9);
        assert_eq!(row.errors, 12);
    }

    #[test]
    fn table_shows_speedup_against_one_instance() {
        let rows = [
            parse_wrk(1, "Requests/sec: 100.0\n"),
            parse_wrk(2, "Requests/sec: 190.0\n"),
        ];
        let text = table(&rows, Some(0.2));
        assert!(text.contains("| 1 | 100 |"), "{text}");
        assert!(text.contains("1.90x"), "{text}");
        assert!(text.contains("0.2 CPU each"), "{text}");
    }
}
