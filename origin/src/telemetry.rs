//! Structured logs with `tracing`, to stderr (stdout carries only the
//! `listening on` line). `RUST_LOG` filters; `ORIGIN_LOG_JSON=1` logs JSON.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("ORIGIN_LOG_JSON").is_ok_and(|v| v == "1") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests starting several apps) keeps the first subscriber.
    drop(result);
}
