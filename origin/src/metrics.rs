//! Prometheus metrics written by hand in the text exposition format: request
//! counts and latency histograms by route, method and status; cache outcomes;
//! load shedding; pool usage (read at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::storage::PoolStatus;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative counts are computed at render time; these are per bucket,
    /// with one extra slot for +Inf.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// What happened to one cache lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Redis was down or slow; the database answered.
    Bypass,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, method, status) → latency histogram (its count is the request count).
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// (kind, outcome) → count.
    cache: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    cache_errors: AtomicU64,
    invalidation_failures: AtomicU64,
    coalesced_loads: AtomicU64,
    shed: AtomicU64,
    timed_out: AtomicU64,
    in_flight: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().expect("metrics lock");
        requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn cache(&self, kind: &'static str, outcome: CacheOutcome) {
        let outcome = match outcome {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        };
        *self
            .cache
            .lock()
            .expect("metrics lock")
            .entry((kind, outcome))
            .or_default() += 1;
    }

    pub fn cache_error(&self) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn invalidation_failure(&self) {
        self.invalidation_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn coalesced_load(&self) {
        self.coalesced_loads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight_add(&self, delta: i64) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.in_flight
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Number of cache lookups of `kind` with `outcome` so far (for tests and benches).
    pub fn cache_count(&self, kind: &'static str, outcome: CacheOutcome) -> u64 {
        let outcome = match outcome {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        };
        self.cache
            .lock()
            .expect("metrics lock")
            .get(&(kind, outcome))
            .copied()
            .unwrap_or(0)
    }

    pub fn coalesced_count(&self) -> u64 {
        self.coalesced_loads.load(Ordering::Relaxed)
    }

    /// The Prometheus text format.
    pub fn render(&self, pool: Option<PoolStatus>) -> String {
        let mut out = String::with_capacity(8192);
        self.render_requests(&mut out);
        self.render_cache_lookups(&mut out);
        self.render_counters(&mut out);
        if let Some(pool) = pool {
            render_pool(&mut out, pool);
        }
        out
    }

    /// Requests by route, method and status: their count and latency histogram.
    fn render_requests(&self, out: &mut String) {
        let requests = self.requests.lock().expect("metrics lock");
        out.push_str(
            "# HELP origin_http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE origin_http_requests_total counter\n");
        for ((route, method, status), histogram) in requests.iter() {
            let _ = writeln!(
                out,
                "origin_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                histogram.count
            );
        }
        out.push_str(
            "# HELP origin_http_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE origin_http_request_duration_seconds histogram\n");
        for ((route, method, status), histogram) in requests.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            let mut cumulative = 0;
            for (le, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "origin_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "origin_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "origin_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "origin_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
    }

    fn render_cache_lookups(&self, out: &mut String) {
        out.push_str("# HELP origin_cache_lookups_total Cache lookups by kind and outcome (hit, miss, bypass).\n");
        out.push_str("# TYPE origin_cache_lookups_total counter\n");
        for ((kind, outcome), count) in self.cache.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "origin_cache_lookups_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {count}"
            );
        }
    }

    /// The counters and the in-flight gauge.
    fn render_counters(&self, out: &mut String) {
        let counters = [
            (
                "origin_cache_errors_total",
                "Redis commands that failed or timed out.",
                &self.cache_errors,
            ),
            (
                "origin_cache_invalidation_failures_total",
                "Invalidations that could not reach Redis (retried later).",
                &self.invalidation_failures,
            ),
            (
                "origin_cache_coalesced_loads_total",
                "Cache misses that waited for another request's database read.",
                &self.coalesced_loads,
            ),
            (
                "origin_shed_requests_total",
                "Requests refused with 503 at the concurrency limit.",
                &self.shed,
            ),
            (
                "origin_timed_out_requests_total",
                "Requests answered 503 at the request timeout.",
                &self.timed_out,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP origin_http_requests_in_flight Requests being served now.\n# TYPE origin_http_requests_in_flight gauge\norigin_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// The database pool's gauges.
fn render_pool(out: &mut String, pool: PoolStatus) {
    let gauges = [
        (
            "origin_db_pool_max_size",
            "Largest number of database connections.",
            pool.max_size,
        ),
        (
            "origin_db_pool_size",
            "Database connections open.",
            pool.size,
        ),
        (
            "origin_db_pool_available",
            "Idle database connections.",
            pool.available,
        ),
        (
            "origin_db_pool_waiting",
            "Requests waiting for a database connection.",
            pool.waiting,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let metrics = Metrics::default();
        metrics.observe_request(
            "/api/songs/{song_id}",
            "GET",
            200,
            Duration::from_micros(300),
        );
        metrics.observe_request(
            "/api/songs/{song_id}",
            "GET",
            200,
            Duration::from_millis(20),
        );
        metrics.observe_request("/api/songs/{song_id}", "GET", 200, Duration::from_secs(20));
        let text = metrics.render(None);
        let labels = "route=\"/api/songs/{song_id}\",method=\"GET\",status=\"200\"";
        assert!(
            text.contains(&format!("origin_http_requests_total{{{labels}}} 3")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "origin_http_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "origin_http_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 2"
        )));
        assert!(text.contains(&format!(
            "origin_http_request_duration_seconds_bucket{{{labels},le=\"10\"}} 2"
        )));
        assert!(text.contains(&format!(
            "origin_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"
        )));
        assert!(
            !text.contains("origin_db_pool_size"),
            "no pool, no pool gauges"
        );
    }
}
