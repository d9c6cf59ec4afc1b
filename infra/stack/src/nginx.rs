//! nginx as the load balancer: its configuration rendered from `infra/nginx/`, run as a child, reloaded on change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::process;
use crate::server::{ChildServer, Lifecycle, ServerDir, ServerError};

/// The template, embedded so the binary works from any directory.
pub const TEMPLATE: &str = include_str!("../../nginx/nginx.conf.template");

/// How long a reload may take to start the new workers (the master re-reads the
/// configuration and forks; about 0.1 s here).
const RELOAD_PATIENCE: Duration = Duration::from_secs(10);

/// How long a reload then waits for the old workers to exit. Most exit with their last
/// request, within about 0.1 s; one can stay much longer without doing anything wrong:
/// a client connection that has not sent its first request keeps it (nginx waits
/// `client_header_timeout`, 60 s, and hyper's pool opens such spare connections), as
/// does a slow reader. An old worker takes no new connection and closes each one after
/// its request, so the reload goes on without it.
const OLD_WORKERS_PATIENCE: Duration = Duration::from_secs(2);

/// Why nginx could not be configured, started or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the template still has an unfilled placeholder near `{0}`")]
    Placeholder(String),
    #[error("nginx rejected the configuration {path}: {output}")]
    Invalid { path: PathBuf, output: String },
    #[error("cannot run nginx -t")]
    Check(#[source] std::io::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("nginx exited right after the reload; see {0}")]
    DiedOnReload(PathBuf),
    #[error("nginx started no worker with the new configuration in {0:?}")]
    ReloadUnfinished(Duration),
}

/// What the configuration depends on.
#[derive(Debug, Clone)]
pub struct NginxSettings {
    /// nginx's prefix: config, pid, temp directories and error log live here.
    pub run_dir: PathBuf,
    pub listen_port: u16,
    /// Loopback ports of the origin instances in the pool.
    pub upstream_ports: Vec<u16>,
    pub worker_processes: usize,
}

impl NginxSettings {
    pub fn new(run_dir: PathBuf, listen_port: u16, upstream_ports: Vec<u16>) -> Self {
        Self {
            run_dir,
            listen_port,
            upstream_ports,
            worker_processes: default_worker_processes(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.run_dir.join("nginx.conf")
    }
}

/// One worker per core: nginx is not the bottleneck we study, and more workers than
/// cores only add context switches.
pub fn default_worker_processes() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Seconds nginx keeps an instance out of the pool after a failed attempt (its passive
/// health check: `max_fails=1`), before it tries the instance again with live traffic.
/// A restarted instance waits out what is left of it, so the study's fault runs leave
/// more than this after their repair.
pub const FAIL_TIMEOUT_S: u64 = 2;

/// Fills the template; pure, so it is tested without nginx.
pub fn render(template: &str, settings: &NginxSettings) -> Result<String, NginxError> {
    let upstream_servers = if settings.upstream_ports.is_empty() {
        // An upstream block needs a server; a closed port makes nginx answer 502 at once.
        "        server 127.0.0.1:1 down;".to_owned()
    } else {
        settings
            .upstream_ports
            .iter()
            .map(|port| {
                format!(
                    "        server 127.0.0.1:{port} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // As root, nginx would switch its workers to `nobody`, who cannot enter a private run
    // directory; as any other user the directive is ignored, so it is only emitted for root.
    let user_directive = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let rendered = template
        .replace("{{user_directive}}", user_directive)
        .replace(
            "{{worker_processes}}",
            &settings.worker_processes.to_string(),
        )
        .replace("{{run_dir}}", &settings.run_dir.display().to_string())
        .replace("{{listen_port}}", &settings.listen_port.to_string())
        .replace("{{upstream_servers}}", &upstream_servers);
    if let Some(position) = rendered.find("{{") {
        let end = (position + 30).min(rendered.len());
        return Err(NginxError::Placeholder(rendered[position..end].to_owned()));
    }
    Ok(rendered)
}

/// A running nginx master (and its workers) in the foreground.
pub struct Nginx {
    settings: NginxSettings,
    server: ChildServer,
}

impl Nginx {
    /// Writes the configuration, checks it with `nginx -t`, starts nginx and waits until it answers.
    pub async fn start(settings: NginxSettings) -> Result<Self, NginxError> {
        write_config(&settings)?;
        let mut command = Command::new(nginx_binary());
        command
            .arg("-p")
            .arg(&settings.run_dir)
            .arg("-c")
            .arg(settings.config_path())
            .arg("-e")
            .arg(settings.run_dir.join("nginx-error.log"));
        let lifecycle = Lifecycle {
            ready_within: Duration::from_secs(10),
            ..Lifecycle::default()
        };
        let dir = ServerDir::given(&settings.run_dir)?;
        let mut nginx = Self {
            server: ChildServer::new("nginx", dir, "nginx.log", lifecycle),
            settings,
        };
        let url = format!("{}/nginx-healthz", nginx.url());
        nginx.server.spawn(command)?;
        nginx.server.wait_ready_http(&url).await?;
        Ok(nginx)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.settings.listen_port)
    }

    /// The master's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    pub fn settings(&self) -> &NginxSettings {
        &self.settings
    }

    /// Points the pool at `upstream_ports` without dropping a request. Returns once
    /// workers with the new configuration run and the old ones have exited, or have
    /// had [`OLD_WORKERS_PATIENCE`] to do so: an old worker still running then takes no
    /// new connection and only finishes what it has.
    ///
    /// SIGHUP makes the master start new workers with the new configuration, then ask the
    /// old ones to finish their requests and exit; the listening socket is never closed.
    pub async fn reload(&mut self, upstream_ports: Vec<u16>) -> Result<(), NginxError> {
        let mut next = self.settings.clone();
        next.upstream_ports = upstream_ports;
        write_config(&next)?;
        self.settings = next;
        let master = self.pid().ok_or_else(|| self.died())?;
        let old_workers = process::children_of(master);
        self.server.signal(Signal::SIGHUP)?;
        let started = Instant::now();
        let mut new_started_at = None;
        loop {
            if !self.server.is_running() {
                return Err(self.died());
            }
            let workers = process::children_of(master);
            if new_started_at.is_none() && workers.iter().any(|pid| !old_workers.contains(pid)) {
                new_started_at = Some(Instant::now());
            }
            match new_started_at {
                Some(at) => {
                    let old_gone = old_workers.iter().all(|pid| !workers.contains(pid));
                    if old_gone || at.elapsed() >= OLD_WORKERS_PATIENCE {
                        return Ok(());
                    }
                }
                None if started.elapsed() >= RELOAD_PATIENCE => {
                    return Err(NginxError::ReloadUnfinished(started.elapsed()));
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn died(&self) -> NginxError {
        NginxError::DiedOnReload(self.server.log_path().to_owned())
    }

    /// Graceful stop (SIGTERM is a fast shutdown for nginx; in-flight requests end within ms).
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}

fn nginx_binary() -> PathBuf {
    let system = Path::new("/usr/sbin/nginx");
    if system.exists() {
        system.to_owned()
    } else {
        PathBuf::from("nginx")
    }
}

/// Renders and writes the configuration, then lets `nginx -t` check it, so that a bad
/// configuration is reported here and never reaches a running nginx.
fn write_config(settings: &NginxSettings) -> Result<(), NginxError> {
    let rendered = render(TEMPLATE, settings)?;
    let path = settings.config_path();
    std::fs::create_dir_all(&settings.run_dir).map_err(|source| NginxError::Write {
        path: settings.run_dir.clone(),
        source,
    })?;
    let staged = settings.run_dir.join("nginx.conf.next");
    std::fs::write(&staged, rendered).map_err(|source| NginxError::Write {
        path: staged.clone(),
        source,
    })?;
    let output = Command::new(nginx_binary())
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(&settings.run_dir)
        .arg("-c")
        .arg(&staged)
        .arg("-e")
        .arg(settings.run_dir.join("nginx-error.log"))
        .output()
        .map_err(NginxError::Check)?;
    if !output.status.success() {
        return Err(NginxError::Invalid {
            path: staged,
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    // Rename is atomic: nginx never reads a half-written file.
    std::fs::rename(&staged, &path).map_err(|source| NginxError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ports: Vec<u16>) -> NginxSettings {
        NginxSettings {
            run_dir: PathBuf::from("/tmp/run-x"),
            listen_port: 8100,
            upstream_ports: ports,
            worker_processes: 2,
        }
    }

    #[test]
    fn render_lists_every_upstream_with_passive_health() {
        let rendered = render(TEMPLATE, &settings(vec![8101, 8102])).unwrap();
        assert!(rendered.contains("server 127.0.0.1:8101 max_fails=1 fail_timeout=2s;"));
        assert!(rendered.contains("server 127.0.0.1:8102 max_fails=1 fail_timeout=2s;"));
        assert!(rendered.contains("listen 127.0.0.1:8100"));
        assert!(rendered.contains("worker_processes 2;"));
        assert!(rendered.contains("pid /tmp/run-x/nginx.pid;"));
        assert!(!rendered.contains("{{"));
    }

    #[test]
    fn render_retries_idempotent_requests_only_with_bounds() {
        let rendered = render(TEMPLATE, &settings(vec![8101])).unwrap();
        assert!(rendered.contains("proxy_next_upstream error timeout http_502 http_504;"));
        let directives = rendered
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!directives.contains("non_idempotent"));
        assert!(rendered.contains("proxy_next_upstream_tries 3;"));
        assert!(rendered.contains("proxy_next_upstream_timeout 3s;"));
        assert!(rendered.contains("least_conn;"));
        assert!(rendered.contains("proxy_http_version 1.1;"));
        assert!(rendered.contains("keepalive 128;"));
        assert!(rendered.contains("daemon off;"));
    }

    #[test]
    fn render_with_an_empty_pool_still_yields_a_valid_upstream() {
        let rendered = render(TEMPLATE, &settings(Vec::new())).unwrap();
        assert!(rendered.contains("server 127.0.0.1:1 down;"));
    }

    #[test]
    fn render_reports_an_unknown_placeholder() {
        let error = render("worker_processes {{cores}};", &settings(vec![8101])).unwrap_err();
        assert!(
            matches!(error, NginxError::Placeholder(ref near) if near.starts_with("{{cores}}"))
        );
    }
}
