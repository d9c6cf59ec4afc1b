//! "The generator must not be the bottleneck": nginx `return 200` on
//! loopback (one worker, pinned to the last core), then `wrk -t1 -c64` and
//! this generator (single-threaded runtime, closed loop, same connection
//! count), each pinned to the first core, one after the other; the ratio of
//! their request rates is the figure.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use stack::server::{ChildServer, Lifecycle, ServerDir, ServerError};

use crate::results::RunResults;

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("creating the scratch directory")]
    Scratch(#[source] std::io::Error),
    #[error("starting {0} (is it installed? apt-get install nginx wrk)")]
    Spawn(&'static str, #[source] std::io::Error),
    #[error("nginx did not start")]
    Nginx(#[source] Box<ServerError>),
    #[error("wrk's output had no Requests/sec line: {0}")]
    WrkOutput(String),
    #[error("the generator run failed: {0}")]
    Generator(String),
    #[error("reading the generator's results")]
    Results(#[source] crate::results::ResultsError),
}

/// The calibration's outcome.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub wrk_rate: f64,
    pub generator_rate: f64,
    pub generator_errors: u64,
    pub pinned: bool,
    pub connections: usize,
    pub seconds: f64,
}

impl Calibration {
    pub fn ratio(&self) -> f64 {
        self.generator_rate / self.wrk_rate
    }
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nginx `return 200` on loopback, {} connections, {:.0} s each, {}",
            self.connections,
            self.seconds,
            if self.pinned {
                "client pinned to core 0, nginx to the last core"
            } else {
                "not pinned (one core)"
            }
        )?;
        writeln!(
            f,
            "wrk -t1 -c{}:           {:>10.0} requests/s",
            self.connections, self.wrk_rate
        )?;
        writeln!(
            f,
            "loadtest (1 thread):    {:>10.0} requests/s ({} errors)",
            self.generator_rate, self.generator_errors
        )?;
        write!(
            f,
            "ratio loadtest/wrk:     {:>10.2} ({})",
            self.ratio(),
            if self.ratio() >= 0.8 {
                "meets the 0.8 bar"
            } else {
                "BELOW the 0.8 bar"
            }
        )
    }
}

fn pinned(core: Option<usize>, program: &str) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.args(["-c", &core.to_string(), program]);
            command
        }
        None => Command::new(program),
    }
}

/// nginx `return 200` with one worker, pinned to `core`, in `dir`; stopped on drop.
async fn start_nginx(
    dir: ServerDir,
    core: Option<usize>,
) -> Result<(ChildServer, u16), CalibrateError> {
    let port = stack::ports::free_port().map_err(CalibrateError::Scratch)?;
    let config = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
         keepalive_requests 10000000;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        dir = dir.path().display()
    );
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config).map_err(CalibrateError::Scratch)?;
    let mut command = pinned(core, "nginx");
    command
        .arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(dir.path());
    let lifecycle = Lifecycle {
        ready_within: Duration::from_secs(10),
        ..Lifecycle::default()
    };
    let mut nginx = ChildServer::new("nginx", dir, "nginx.log", lifecycle);
    nginx
        .start(command, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| CalibrateError::Nginx(Box::new(error)))?;
    Ok((nginx, port))
}

/// Parses wrk's `Requests/sec:  12345.67` line.
pub fn wrk_rate(output: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Requests/sec:")?
            .trim()
            .parse()
            .ok()
    })
}

pub async fn calibrate(
    duration: Duration,
    connections: usize,
) -> Result<Calibration, CalibrateError> {
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let (client_core, server_core) = if cores >= 2 {
        (Some(0), Some(cores - 1))
    } else {
        (None, None)
    };
    let dir = ServerDir::temporary("calibrate-")
        .map_err(|error| CalibrateError::Nginx(Box::new(error)))?;
    let (mut nginx, port) = start_nginx(dir, server_core).await?;
    let scratch = nginx.dir().path().to_owned();
    let measured = tokio::task::spawn_blocking(move || {
        measure_blocking(&scratch, port, client_core, duration, connections)
    })
    .await
    .expect("calibration thread");
    nginx.stop().await;
    measured
}

/// wrk, then this generator, against nginx on `port`, one after the other.
fn measure_blocking(
    scratch: &Path,
    port: u16,
    client_core: Option<usize>,
    duration: Duration,
    connections: usize,
) -> Result<Calibration, CalibrateError> {
    let url = format!("http://127.0.0.1:{port}/");
    let seconds = duration.as_secs().max(1);

    eprintln!("calibrate: wrk -t1 -c{connections} -d{seconds}s {url}");
    let wrk = pinned(client_core, "wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            &url,
        ])
        .output()
        .map_err(|source| CalibrateError::Spawn("wrk", source))?;
    let wrk_output = String::from_utf8_lossy(&wrk.stdout).into_owned();
    let wrk_rate =
        wrk_rate(&wrk_output).ok_or_else(|| CalibrateError::WrkOutput(wrk_output.clone()))?;

    eprintln!(
        "calibrate: loadtest --threads 1 run --closed {connections} --duration {seconds}s --get / --target {url}"
    );
    let results_path = scratch.join("generator.json");
    let exe =
        std::env::current_exe().map_err(|source| CalibrateError::Spawn("loadtest", source))?;
    let generator = pinned(client_core, &exe.display().to_string())
        .args([
            "--threads",
            "1",
            "run",
            "--quiet",
            "--closed",
            &connections.to_string(),
        ])
        .args([
            "--duration",
            &format!("{seconds}s"),
            "--get",
            "/",
            "--target",
            &url[..url.len() - 1],
        ])
        .arg("--out")
        .arg(&results_path)
        .stdout(Stdio::null())
        .output()
        .map_err(|source| CalibrateError::Spawn("loadtest", source))?;
    // 99 only says the built-in scenario's thresholds failed; the rate is what counts here.
    if !matches!(generator.status.code(), Some(0 | 99)) {
        return Err(CalibrateError::Generator(
            String::from_utf8_lossy(&generator.stderr).into_owned(),
        ));
    }
    let results = RunResults::load(&results_path).map_err(CalibrateError::Results)?;
    Ok(Calibration {
        wrk_rate,
        generator_rate: results.achieved_rate,
        generator_errors: results.overall.errors.total(),
        pinned: client_core.is_some(),
        connections,
        seconds: seconds as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_rate() {
        let output = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n\
                      Requests/sec: 151234.56\nTransfer/sec:     21.2MB\n";
        assert_eq!(wrk_rate(output), Some(151_234.56));
        assert_eq!(wrk_rate("garbage"), None);
    }
}
