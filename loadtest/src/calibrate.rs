//! "The generator must not be the bottleneck": nginx `return 200` on
//! loopback (one worker, pinned to the last core), then `wrk -t1 -c64` and
//! this generator (single-threaded runtime, closed loop, same connection
//! count), each pinned to the first core, one after the other; the ratio of
//! their request rates is the figure.

use std::fmt;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::results::RunResults;

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("creating the scratch directory")]
    Scratch(#[source] std::io::Error),
    #[error("starting {0} (is it installed? apt-get install nginx wrk)")]
    Spawn(&'static str, #[source] std::io::Error),
    #[error("nginx did not start listening on 127.0.0.1:{0}; see {1}")]
    NginxNotListening(u16, String),
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

/// nginx as a child process; stopped on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must take its workers down with it
        // (a killed master leaves orphaned workers listening).
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            for _ in 0..100 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, CalibrateError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(CalibrateError::Scratch)?;
    Ok(listener
        .local_addr()
        .map_err(CalibrateError::Scratch)?
        .port())
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

fn start_nginx(dir: &Path, port: u16, core: Option<usize>) -> Result<Nginx, CalibrateError> {
    let config = format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
         keepalive_requests 10000000;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        dir = dir.display()
    );
    let config_path = dir.join("nginx.conf");
    std::fs::write(&config_path, config).map_err(CalibrateError::Scratch)?;
    let child = pinned(core, "nginx")
        .arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| CalibrateError::Spawn("nginx", source))?;
    let nginx = Nginx(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(nginx);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CalibrateError::NginxNotListening(
        port,
        dir.join("error.log").display().to_string(),
    ))
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
    tokio::task::spawn_blocking(move || calibrate_blocking(duration, connections))
        .await
        .expect("calibration thread")
}

fn calibrate_blocking(
    duration: Duration,
    connections: usize,
) -> Result<Calibration, CalibrateError> {
    let scratch = tempfile::tempdir().map_err(CalibrateError::Scratch)?;
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let (client_core, server_core) = if cores >= 2 {
        (Some(0), Some(cores - 1))
    } else {
        (None, None)
    };
    let port = free_port()?;
    let _nginx = start_nginx(scratch.path(), port, server_core)?;
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
    let results_path = scratch.path().join("generator.json");
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
