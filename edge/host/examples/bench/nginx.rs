//! The bench's second nginx: `proxy_cache`, a plain proxy and `return 200`, the
//! native references the edge's rows are read against, and its cache's files.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use stack::probe::wait_until_ready;
use stack::process::ManagedProcess;

/// The second nginx's three servers.
pub struct NginxPorts {
    /// `proxy_cache` in front of the pool.
    pub cache: u16,
    /// `proxy_pass` to the pool, without a cache.
    pub proxy: u16,
    /// `return 200`.
    pub plain: u16,
}

/// nginx with `proxy_cache` in front of `upstream_port` (configured as a demanding
/// user would: one fetch per expired entry, stale answers while it refreshes),
/// the same proxy without the cache, and a `return 200` server. Its cache files
/// go to `cache_dir` (written there and renamed in place: `use_temp_path=off`),
/// under the edge's store's default bound ([`NGINX_CACHE_BYTES`]; nginx counts each file's
/// blocks and trims after the fact, the edge counts bytes and evicts before it
/// stores). Its cache manager looks at the cache's size only every 10 s or so
/// and then trims up to 1,000 files every 10 ms until it is back under the
/// bound; the bench waits for that after the miss row ([`wait_for_trim`]) so
/// that no trimming runs beside the next row. The keys zone holds about
/// 500,000 keys, so that the bytes bound the cache, not the zone: with a 10 MB
/// zone (80,000 keys) the miss row filled it within its first round and nginx
/// answered 500 to requests it could not place.
///
/// Returns once `return 200` answers. Dropping the process stops nginx with
/// SIGTERM, on which its master stops its workers (a SIGKILL to the master
/// would leave them running, orphaned).
pub async fn start_nginx(
    dir: &Path,
    cache_dir: &Path,
    upstream_port: u16,
    ports: &NginxPorts,
) -> anyhow::Result<ManagedProcess> {
    let d = dir.display();
    let cache = cache_dir.display();
    let NginxPorts {
        cache: cache_port,
        proxy: proxy_port,
        plain: plain_port,
    } = ports;
    let config = format!(
        "user root;\nworker_processes auto;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           proxy_cache_path {cache} levels=1:2 use_temp_path=off keys_zone=edge:64m max_size={NGINX_CACHE_BYTES} inactive=60m manager_files=1000 manager_sleep=10ms;\n\
           upstream pool {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n\
           server {{ listen 127.0.0.1:{cache_port}; location / {{ proxy_cache edge; proxy_cache_lock on; proxy_cache_use_stale updating; proxy_cache_background_update on; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://pool; add_header X-Cache $upstream_cache_status; }} }}\n\
           server {{ listen 127.0.0.1:{proxy_port}; location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://pool; }} }}\n\
           server {{ listen 127.0.0.1:{plain_port}; location / {{ return 200 'ok'; }} }}\n}}\n"
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("nginx.conf"), config)?;
    let mut command = Command::new("nginx");
    command.args([
        "-p",
        &d.to_string(),
        "-c",
        &format!("{d}/nginx.conf"),
        "-g",
        "daemon off;",
    ]);
    let log = dir.join("nginx.log");
    let mut nginx = ManagedProcess::spawn("the bench's nginx", command, &log)?;
    wait_until_ready(
        "the bench's nginx",
        &format!("http://127.0.0.1:{plain_port}/"),
        Duration::from_secs(10),
        || nginx.is_running(),
    )
    .await
    .with_context(|| format!("see {} and {d}/error.log", log.display()))?;
    Ok(nginx)
}

/// Where nginx keeps its cache files: tmpfs (`/dev/shm`) when it has room for
/// them, as the edge keeps its records in memory, else the bench's directory.
/// Says which, since the figures differ.
pub fn nginx_cache_dir(bench_dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    /// The cache's bound and what it may grow past it by before its manager
    /// next looks: about 10 s of misses at 4 KiB a file, some 0.5 GB.
    const ROOM: u64 = 2 << 30;
    let shm = Path::new("/dev/shm");
    let builder = || {
        let mut builder = tempfile::Builder::new();
        builder.prefix("edge-bench-nginx-cache-");
        builder
    };
    let dir = if free_bytes(shm).is_some_and(|free| free >= ROOM) {
        builder().tempdir_in(shm)?
    } else {
        builder().tempdir_in(bench_dir)?
    };
    eprintln!("nginx's cache files go to {}", dir.path().display());
    Ok(dir)
}

/// nginx's cache's bound (`max_size`), in bytes: the edge's store's default.
const NGINX_CACHE_BYTES: u64 = edge_host::DEFAULT_KV_MAX_BYTES as u64;

/// Waits, for at most 30 s, until nginx's cache in `cache_dir` is back under
/// its bound. Its manager only looks every 10 s or so; without the wait it
/// would delete the miss row's overshoot, some 100,000 files, while the next
/// row runs, on the nginx that serves `return 200`, the denominator of every
/// ratio.
pub async fn wait_for_trim(cache_dir: &Path) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        match used_bytes(cache_dir) {
            Some(used) if used > NGINX_CACHE_BYTES => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Some(_) => {
                eprintln!(
                    "nginx's cache back under its bound after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            None => return,
        }
    }
    eprintln!(
        "nginx's cache is still over its bound after 30 s: the next row shares the machine with its trimming"
    );
}

/// Bytes that the files under `path` take (`du`, in blocks as nginx counts them).
fn used_bytes(path: &Path) -> Option<u64> {
    bytes_reported("du", &["-s", "-B1"], path)
}

/// Bytes free to an unprivileged user on the filesystem holding `path` (`df`).
fn free_bytes(path: &Path) -> Option<u64> {
    bytes_reported("df", &["--output=avail", "-B1"], path)
}

/// The number that starts the last line `command args path` prints. Its exit
/// status is not looked at: `du` fails when the cache manager deletes a file
/// under it, and still prints the total.
fn bytes_reported(command: &str, args: &[&str], path: &Path) -> Option<u64> {
    let output = Command::new(command).args(args).arg(path).output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
