//! What a run measured while it ran: HDR histograms per endpoint (latency from
//! the intended start, and service time from the actual send), errors by
//! class, a per-second timeline, and the writes the server acknowledged.
//!
//! Recorders are sharded (one per runtime thread) and merged at the end, so
//! recording costs an uncontended lock and no allocation.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Highest latency a histogram holds, in microseconds; longer ones saturate.
pub const HISTOGRAM_MAX_MICROS: u64 = 120_000_000;
const SIGNIFICANT_FIGURES: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, SIGNIFICANT_FIGURES)
        .expect("static histogram bounds are valid")
}

/// The per-second histograms of the timeline: two significant figures (1 %)
/// is plenty for a chart and keeps each one about 21 KB.
pub fn new_second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, 2)
        .expect("static histogram bounds are valid")
}

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connecting failed (TLS handshake included) or the connection broke mid-request.
    Connection,
    Timeout,
    /// A 4xx or 5xx answer, and whether it carried `Retry-After`.
    Status {
        code: u16,
        retry_after: bool,
    },
}

/// How often one error status came back, and how many of those answers said
/// when to come back (`Retry-After`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    pub count: u64,
    pub retry_after: u64,
}

/// Error counts by class, and the error statuses one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub connection: u64,
    pub timeout: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Every 4xx and 5xx status seen, e.g. 503 (with `Retry-After`) apart from 502.
    #[serde(default)]
    pub statuses: BTreeMap<u16, StatusCount>,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connection + self.timeout + self.status_4xx + self.status_5xx
    }

    pub fn count(&mut self, class: ErrorClass) {
        match class {
            ErrorClass::Connection => self.connection += 1,
            ErrorClass::Timeout => self.timeout += 1,
            ErrorClass::Status { code, retry_after } => {
                if code < 500 {
                    self.status_4xx += 1;
                } else {
                    self.status_5xx += 1;
                }
                let status = self.statuses.entry(code).or_default();
                status.count += 1;
                status.retry_after += u64::from(retry_after);
            }
        }
    }

    pub fn add(&mut self, other: &ErrorCounts) {
        self.connection += other.connection;
        self.timeout += other.timeout;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        for (code, theirs) in &other.statuses {
            let mine = self.statuses.entry(*code).or_default();
            mine.count += theirs.count;
            mine.retry_after += theirs.retry_after;
        }
    }

    /// The classes in words, most frequent status first:
    /// `503 ×40 (40 with Retry-After), connection ×2`; `none` when empty.
    pub fn describe(&self) -> String {
        let mut statuses: Vec<(&u16, &StatusCount)> = self.statuses.iter().collect();
        statuses.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let mut parts: Vec<String> = statuses
            .into_iter()
            .map(|(code, status)| {
                if status.retry_after == 0 {
                    format!("{code} ×{}", status.count)
                } else if status.retry_after == status.count {
                    format!("{code} ×{} (all with Retry-After)", status.count)
                } else {
                    format!(
                        "{code} ×{} ({} with Retry-After)",
                        status.count, status.retry_after
                    )
                }
            })
            .collect();
        // Files written before statuses were kept have only the class counts.
        let listed_4xx: u64 = self.statuses.range(..500).map(|(_, s)| s.count).sum();
        let listed_5xx: u64 = self.statuses.range(500..).map(|(_, s)| s.count).sum();
        if self.status_4xx > listed_4xx {
            parts.push(format!("4xx ×{}", self.status_4xx - listed_4xx));
        }
        if self.status_5xx > listed_5xx {
            parts.push(format!("5xx ×{}", self.status_5xx - listed_5xx));
        }
        if self.connection > 0 {
            parts.push(format!("connection ×{}", self.connection));
        }
        if self.timeout > 0 {
            parts.push(format!("timeout ×{}", self.timeout));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Iterations whose intended start fell in this second.
    pub offered: u64,
    /// Of those, how many found no free slot and were dropped.
    pub dropped: u64,
    /// Requests that completed (successfully or not) in this second.
    pub completed: u64,
    pub errors: u64,
    /// Of the completed requests, the writes (POST, PATCH, DELETE), and their errors.
    #[serde(default)]
    pub writes: u64,
    #[serde(default)]
    pub write_errors: u64,
    /// Sum of the completed requests' latencies, for the mean.
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    /// Median and 99th percentile latency of the requests completed in this
    /// second (from the per-second histograms, 1 % precision).
    #[serde(default)]
    pub p50_us: u64,
    #[serde(default)]
    pub p99_us: u64,
}

impl Second {
    /// Adds the counts. The percentiles cannot be added: they are set from
    /// the merged per-second histograms (see [`Recorder::finish_timeline`]);
    /// without histograms the larger of the two stands in (an upper bound).
    pub fn add(&mut self, other: &Second) {
        self.offered += other.offered;
        self.dropped += other.dropped;
        self.completed += other.completed;
        self.errors += other.errors;
        self.writes += other.writes;
        self.write_errors += other.write_errors;
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        self.p50_us = self.p50_us.max(other.p50_us);
        self.p99_us = self.p99_us.max(other.p99_us);
    }

    pub fn reads(&self) -> u64 {
        self.completed - self.writes
    }

    pub fn read_errors(&self) -> u64 {
        self.errors - self.write_errors
    }

    pub fn p50_ms(&self) -> f64 {
        self.p50_us as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.p99_us as f64 / 1000.0
    }

    /// Sets the percentiles from this second's latency histogram.
    pub fn set_percentiles(&mut self, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            (self.p50_us, self.p99_us) = (0, 0);
        } else {
            self.p50_us = histogram.value_at_quantile(0.50);
            self.p99_us = histogram.value_at_quantile(0.99);
        }
    }

    pub fn mean_latency_ms(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.latency_sum_us as f64 / self.completed as f64 / 1000.0
        }
    }
}

/// A write the server acknowledged with 201: it must be in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedWrite {
    pub id: Uuid,
    pub song_id: i64,
}

/// Per-endpoint measurements.
#[derive(Debug, Clone)]
pub struct EndpointRecorder {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub ok: u64,
    pub errors: ErrorCounts,
}

impl EndpointRecorder {
    pub fn new() -> Self {
        Self {
            latency: new_histogram(),
            service_time: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
        }
    }

    pub fn merge(&mut self, other: &EndpointRecorder) {
        self.latency
            .add(&other.latency)
            .expect("histograms share bounds");
        self.service_time
            .add(&other.service_time)
            .expect("histograms share bounds");
        self.ok += other.ok;
        self.errors.add(&other.errors);
    }
}

impl Default for EndpointRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// What a cache in front said about a response, from its `X-Cache` header
/// (the edge's HIT, STALE, MISS, REVALIDATED, BYPASS; nginx's
/// `$upstream_cache_status`; CloudFront's `Hit from cloudfront` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served fresh from the cache: the origin was not asked.
    Hit,
    /// Served from the cache after its freshness ran out: with stale-while-revalidate
    /// (or nginx's UPDATING) the client did not wait for the origin, which may have
    /// been asked in the background; with stale-if-error the origin was asked and
    /// failed.
    Stale,
    /// The client waited for the origin: a miss, a revalidation (CloudFront's
    /// `RefreshHit` is one: the origin answered 304), or a pass-through.
    Miss,
}

impl CacheStatus {
    /// Reads an `X-Cache` value; `None` when it says neither (an unknown word).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?.trim().to_ascii_lowercase();
        let word = text.split_whitespace().next()?;
        match word {
            "hit" => Some(Self::Hit),
            "stale" | "updating" => Some(Self::Stale),
            "miss" | "revalidated" | "refreshhit" | "bypass" | "expired" | "pass" => {
                Some(Self::Miss)
            }
            _ => None,
        }
    }
}

/// Responses by what the cache in front said: the client's view of a CDN's hit ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCounts {
    /// Fresh hits; in files written before stale answers were counted apart, these
    /// include them.
    pub hits: u64,
    /// Stale answers; `None` in files written before they were counted apart.
    #[serde(default)]
    pub stale: Option<u64>,
    pub misses: u64,
    /// Responses without an `X-Cache` the generator understood (no cache in front).
    pub unmarked: u64,
}

impl Default for CacheCounts {
    fn default() -> Self {
        Self {
            hits: 0,
            stale: Some(0),
            misses: 0,
            unmarked: 0,
        }
    }
}

impl CacheCounts {
    pub fn count(&mut self, status: Option<CacheStatus>) {
        match status {
            Some(CacheStatus::Hit) => self.hits += 1,
            Some(CacheStatus::Stale) => *self.stale.get_or_insert(0) += 1,
            Some(CacheStatus::Miss) => self.misses += 1,
            None => self.unmarked += 1,
        }
    }

    /// Adds `other`'s counts; the stale ones stay unknown if either side's were.
    pub fn add(&mut self, other: &CacheCounts) {
        self.hits += other.hits;
        self.stale = self.stale.zip(other.stale).map(|(a, b)| a + b);
        self.misses += other.misses;
        self.unmarked += other.unmarked;
    }

    fn marked(&self) -> u64 {
        self.hits + self.stale.unwrap_or(0) + self.misses
    }

    /// Answers from the cache, fresh or stale, among the responses a cache marked;
    /// `None` when none was marked.
    pub fn hit_ratio(&self) -> Option<f64> {
        let marked = self.marked();
        (marked > 0).then(|| (self.hits + self.stale.unwrap_or(0)) as f64 / marked as f64)
    }

    /// Stale answers among the responses a cache marked: part of the hit ratio, and
    /// each may have sent a revalidation to the origin. `None` when none was marked or
    /// the stale ones were not counted apart.
    pub fn stale_ratio(&self) -> Option<f64> {
        let marked = self.marked();
        let stale = self.stale?;
        (marked > 0).then(|| stale as f64 / marked as f64)
    }

    /// "37.0%", "37.0% (12.5% stale)" when some answers were stale, "37.0% (stale not
    /// counted apart)" from an older file; "—" when no response was marked.
    pub fn describe_hits(&self) -> String {
        let Some(hits) = self.hit_ratio() else {
            return "—".into();
        };
        // Some responses were marked, so the stale ratio is unknown only when the count is.
        match self.stale_ratio() {
            None => format!("{:.1}% (stale not counted apart)", hits * 100.0),
            Some(stale) if stale > 0.0 => {
                format!("{:.1}% ({:.1}% stale)", hits * 100.0, stale * 100.0)
            }
            Some(_) => format!("{:.1}%", hits * 100.0),
        }
    }
}

/// One finished request, as the runner reports it.
#[derive(Debug, Clone, Copy)]
pub struct Completed {
    pub endpoint: usize,
    /// When it completed, from the run's start.
    pub completed_at: Duration,
    /// From the intended start.
    pub latency: Duration,
    /// From the actual send.
    pub service: Duration,
    pub error: Option<ErrorClass>,
    /// A POST, PATCH or DELETE.
    pub write: bool,
    /// What a cache in front said (`None`: no answer, or no `X-Cache`).
    pub cache: Option<CacheStatus>,
}

/// Everything one shard recorded.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub endpoints: Vec<EndpointRecorder>,
    pub timeline: Vec<Second>,
    /// Latency of the requests completed in each second (the timeline's p50 and p99).
    pub timeline_latency: Vec<Histogram<u64>>,
    /// Answered requests by what the cache in front said.
    pub cache: CacheCounts,
    pub writes: Vec<AckedWrite>,
    /// Comments a DELETE was sent for: they may be gone, so the lost-write
    /// check leaves them out.
    pub deleted: Vec<Uuid>,
}

impl Recorder {
    pub fn new(endpoints: usize) -> Self {
        Self {
            endpoints: (0..endpoints).map(|_| EndpointRecorder::new()).collect(),
            ..Self::default()
        }
    }

    fn second(&mut self, since_start: Duration) -> &mut Second {
        let index = since_start.as_secs() as usize;
        if self.timeline.len() <= index {
            self.timeline.resize(index + 1, Second::default());
        }
        &mut self.timeline[index]
    }

    pub fn offered(&mut self, since_start: Duration, dropped: bool) {
        let second = self.second(since_start);
        second.offered += 1;
        second.dropped += u64::from(dropped);
    }

    /// A finished request. `latency` runs from the intended start, `service`
    /// from the actual send; `completed_at` is relative to the run's start.
    pub fn completed(&mut self, request: Completed) {
        let latency_us = (request.latency.as_micros() as u64).max(1);
        let stats = &mut self.endpoints[request.endpoint];
        stats.latency.saturating_record(latency_us);
        stats
            .service_time
            .saturating_record((request.service.as_micros() as u64).max(1));
        match request.error {
            None => stats.ok += 1,
            Some(class) => stats.errors.count(class),
        }
        let failed = u64::from(request.error.is_some());
        self.cache.count(request.cache);
        let second = self.second(request.completed_at);
        second.completed += 1;
        second.errors += failed;
        if request.write {
            second.writes += 1;
            second.write_errors += failed;
        }
        second.latency_sum_us += latency_us;
        second.latency_max_us = second.latency_max_us.max(latency_us);
        let index = request.completed_at.as_secs() as usize;
        if self.timeline_latency.len() <= index {
            self.timeline_latency
                .resize_with(index + 1, new_second_histogram);
        }
        self.timeline_latency[index].saturating_record(latency_us);
    }

    /// Sets each second's p50 and p99 from its histogram (after merging).
    pub fn finish_timeline(&mut self) {
        for (second, histogram) in self.timeline.iter_mut().zip(&self.timeline_latency) {
            second.set_percentiles(histogram);
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        if self.endpoints.len() < other.endpoints.len() {
            self.endpoints
                .resize_with(other.endpoints.len(), EndpointRecorder::new);
        }
        for (mine, theirs) in self.endpoints.iter_mut().zip(&other.endpoints) {
            mine.merge(theirs);
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize(other.timeline.len(), Second::default());
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.add(theirs);
        }
        if self.timeline_latency.len() < other.timeline_latency.len() {
            self.timeline_latency
                .resize_with(other.timeline_latency.len(), new_second_histogram);
        }
        for (mine, theirs) in self
            .timeline_latency
            .iter_mut()
            .zip(&other.timeline_latency)
        {
            mine.add(theirs).expect("histograms share bounds");
        }
        self.cache.add(&other.cache);
        self.writes.extend_from_slice(&other.writes);
        self.deleted.extend_from_slice(&other.deleted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_ms: u64, latency_ms: u64, error: Option<ErrorClass>, write: bool) -> Completed {
        Completed {
            endpoint: 0,
            completed_at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            service: Duration::from_millis(latency_ms),
            error,
            write,
            cache: None,
        }
    }

    #[test]
    fn statuses_are_counted_with_retry_after_and_described() {
        let mut counts = ErrorCounts::default();
        for _ in 0..3 {
            counts.count(ErrorClass::Status {
                code: 503,
                retry_after: true,
            });
        }
        counts.count(ErrorClass::Status {
            code: 503,
            retry_after: false,
        });
        counts.count(ErrorClass::Status {
            code: 502,
            retry_after: false,
        });
        counts.count(ErrorClass::Status {
            code: 404,
            retry_after: false,
        });
        counts.count(ErrorClass::Connection);
        assert_eq!(
            (counts.status_5xx, counts.status_4xx, counts.total()),
            (5, 1, 7)
        );
        assert_eq!(
            counts.statuses[&503],
            StatusCount {
                count: 4,
                retry_after: 3
            }
        );
        assert_eq!(
            counts.describe(),
            "503 ×4 (3 with Retry-After), 404 ×1, 502 ×1, connection ×1"
        );
        let mut sum = counts.clone();
        sum.add(&counts);
        assert_eq!(sum.statuses[&503].retry_after, 6);
        assert_eq!(sum.total(), 14);
        assert_eq!(ErrorCounts::default().describe(), "none");
        // A file from before statuses were kept: class counts only.
        let old = ErrorCounts {
            status_5xx: 2,
            ..ErrorCounts::default()
        };
        assert_eq!(old.describe(), "5xx ×2");
    }

    #[test]
    fn each_second_has_its_own_percentiles_and_read_write_split() {
        let (mut a, mut b) = (Recorder::new(1), Recorder::new(1));
        // Second 0: 98 fast reads, then two slow ones in the other shard.
        for i in 0..98 {
            a.completed(request(i, 2, None, false));
        }
        b.completed(request(500, 400, None, false));
        b.completed(request(600, 400, None, false));
        // Second 1: writes failing with 503, reads fine.
        let unavailable = Some(ErrorClass::Status {
            code: 503,
            retry_after: true,
        });
        for i in 0..10 {
            a.completed(request(1000 + i, 5, unavailable, true));
            b.completed(request(1000 + i, 50, None, false));
        }
        a.merge(&b);
        a.finish_timeline();
        let [first, second] = [a.timeline[0], a.timeline[1]];
        assert_eq!(first.completed, 100);
        assert!((1.9..=2.1).contains(&first.p50_ms()), "{first:?}");
        assert!((396.0..=404.0).contains(&first.p99_ms()), "{first:?}");
        assert_eq!((second.writes, second.write_errors), (10, 10));
        assert_eq!((second.reads(), second.read_errors()), (10, 0));
        assert!((49.0..=51.0).contains(&second.p99_ms()), "{second:?}");
        assert!((4.9..=5.1).contains(&second.p50_ms()), "{second:?}");
    }

    #[test]
    fn x_cache_values_read_as_hits_stale_answers_and_misses() {
        for hit in [&b"HIT"[..], b"Hit from cloudfront", b" hit "] {
            assert_eq!(CacheStatus::parse(hit), Some(CacheStatus::Hit), "{hit:?}");
        }
        for stale in [&b"STALE"[..], b"UPDATING"] {
            let parsed = CacheStatus::parse(stale);
            assert_eq!(parsed, Some(CacheStatus::Stale), "{stale:?}");
        }
        // The client waited for the origin in each: CloudFront's RefreshHit is a 304 from it.
        for miss in [
            &b"MISS"[..],
            b"REVALIDATED",
            b"RefreshHit from cloudfront",
            b"BYPASS",
            b"Miss from cloudfront",
        ] {
            let parsed = CacheStatus::parse(miss);
            assert_eq!(parsed, Some(CacheStatus::Miss), "{miss:?}");
        }
        assert_eq!(CacheStatus::parse(b"whatever"), None);
        assert_eq!(CacheStatus::parse(b""), None);
        let mut counts = CacheCounts::default();
        for status in [
            Some(CacheStatus::Hit),
            Some(CacheStatus::Hit),
            Some(CacheStatus::Stale),
            Some(CacheStatus::Miss),
            None,
        ] {
            counts.count(status);
        }
        assert_eq!(
            (counts.hits, counts.stale, counts.misses, counts.unmarked),
            (2, Some(1), 1, 1)
        );
        assert!((counts.hit_ratio().unwrap() - 3.0 / 4.0).abs() < 1e-12);
        assert!((counts.stale_ratio().unwrap() - 1.0 / 4.0).abs() < 1e-12);
        assert_eq!(counts.describe_hits(), "75.0% (25.0% stale)");
        counts.stale = Some(0);
        assert_eq!(counts.describe_hits(), "66.7%");
        assert_eq!(CacheCounts::default().hit_ratio(), None);
        assert_eq!(CacheCounts::default().describe_hits(), "—");
    }

    #[test]
    fn counts_written_before_stale_answers_were_counted_apart_still_read() {
        let old: CacheCounts =
            serde_json::from_str(r#"{"hits": 3, "misses": 1, "unmarked": 0}"#).unwrap();
        assert_eq!((old.hits, old.stale), (3, None));
        assert_eq!(old.describe_hits(), "75.0% (stale not counted apart)");
        // Merged with a newer run's, the stale answers stay unknown.
        let mut merged = old;
        merged.add(&CacheCounts::default());
        assert_eq!(merged.stale, None);
        let mut new = CacheCounts::default();
        new.add(&CacheCounts::default());
        assert_eq!(new.stale, Some(0));
    }
}
