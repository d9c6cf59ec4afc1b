//! Benchmark: one run, one machine, all on loopback. Starts a test origin, the edge
//! (edge-host with the embedded component), nginx with `proxy_cache` in front of the
//! same origin, and nginx `return 200`; warms both caches; then drives each with
//! `wrk -t1 -c32 -d10s --latency` and prints requests/s, p50 and p99 side by side.
//!
//! Run: `cargo run --release -p edge-host --example bench` (needs `nginx` and `wrk`).

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const PATH: &str = "/api/songs/1/comments?limit=20";
const BODY: &str = r#"{"song_id":1,"comments":[{"id":1,"user_id":7,"track_ms":1200,"body":"great drop"},{"id":2,"user_id":9,"track_ms":5400,"body":"love this part"}],"next":null}"#;

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Nginx(Child);

impl Drop for Nginx {
    /// SIGTERM first: nginx's master stops its workers on it, while a SIGKILL
    /// to the master would leave them running, orphaned.
    fn drop(&mut self) {
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

fn start_nginx(
    dir: &std::path::Path,
    origin_port: u16,
    cache_port: u16,
    plain_port: u16,
) -> anyhow::Result<Nginx> {
    let d = dir.display();
    let config = format!(
        "user root;\nworker_processes auto;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           proxy_cache_path {d}/cache levels=1:2 keys_zone=edge:10m max_size=100m inactive=60m;\n\
           upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}\n\
           server {{ listen 127.0.0.1:{cache_port}; location / {{ proxy_cache edge; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://origin; add_header X-Cache $upstream_cache_status; }} }}\n\
           server {{ listen 127.0.0.1:{plain_port}; location / {{ return 200 'ok'; }} }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), config)?;
    let child = Command::new("nginx")
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(Nginx(child))
}

struct Figures {
    requests_per_sec: String,
    p50: String,
    p99: String,
}

fn wrk(url: &str) -> anyhow::Result<Figures> {
    let output = Command::new("wrk")
        .args(["-t1", "-c32", "-d10s", "--latency", url])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::to_owned);
    anyhow::ensure!(non_2xx.is_none(), "{url}: {}", non_2xx.unwrap_or_default());
    Ok(Figures {
        requests_per_sec: find("Requests/sec:"),
        p50: find("50%"),
        p99: find("99%"),
    })
}

async fn warm(url: &str, expect_header: &str) -> anyhow::Result<()> {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut last = String::new();
    for _ in 0..50 {
        let response = client.get(url.parse()?).await?;
        last = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if last == expect_header {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} never answered X-Cache: {expect_header} (last {last:?})")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin_port = origin.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = origin.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_request: hyper::Request<hyper::body::Incoming>| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .header("cache-control", "public, max-age=3600")
                            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                            .expect("static response"),
                    )
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    eprintln!("starting edge-host (compiling the component) ...");
    let options = edge_host::HostOptions::new(
        "127.0.0.1:0".parse()?,
        vec![("origins".into(), format!("http://127.0.0.1:{origin_port}"))],
    );
    let edge = edge_host::EdgeHost::bind(options).await?;
    let edge_port = edge.local_addr().port();
    tokio::spawn(edge.run(std::future::pending()));

    let (cache_port, plain_port) = (free_port(), free_port());
    let _nginx = start_nginx(dir.path(), origin_port, cache_port, plain_port)?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let edge_url = format!("http://127.0.0.1:{edge_port}{PATH}");
    let cache_url = format!("http://127.0.0.1:{cache_port}{PATH}");
    let plain_url = format!("http://127.0.0.1:{plain_port}/");
    warm(&edge_url, "HIT").await?;
    warm(&cache_url, "HIT").await?;

    let mut rows = Vec::new();
    for (name, url) in [
        ("edge-host cache HIT", &edge_url),
        ("nginx proxy_cache HIT", &cache_url),
        ("nginx return 200", &plain_url),
    ] {
        eprintln!("wrk -t1 -c32 -d10s --latency {url}");
        let url = url.clone();
        let figures = tokio::task::spawn_blocking(move || wrk(&url)).await??;
        rows.push((name, figures));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\n{:<24} {:>12} {:>10} {:>10}",
        "target (wrk -t1 -c32 -d10s)", "requests/s", "p50", "p99"
    )?;
    for (name, f) in &rows {
        writeln!(
            out,
            "{:<24} {:>12} {:>10} {:>10}",
            name, f.requests_per_sec, f.p50, f.p99
        )?;
    }
    Ok(())
}
