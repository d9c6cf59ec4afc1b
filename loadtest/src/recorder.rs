//! What a run measured while it ran: HDR histograms per endpoint (latency from
//! the intended start, and service time from the actual send), errors by
//! class, a per-second timeline, and the writes the server acknowledged.
//!
//! Recorders are sharded (one per runtime thread) and merged at the end, so
//! recording costs an uncontended lock and no allocation.

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

/// Why a request did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connecting failed or the connection broke mid-request.
    Connection,
    Timeout,
    Client4xx,
    Server5xx,
}

/// Error counts by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub connection: u64,
    pub timeout: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connection + self.timeout + self.status_4xx + self.status_5xx
    }

    pub fn count(&mut self, class: ErrorClass) {
        match class {
            ErrorClass::Connection => self.connection += 1,
            ErrorClass::Timeout => self.timeout += 1,
            ErrorClass::Client4xx => self.status_4xx += 1,
            ErrorClass::Server5xx => self.status_5xx += 1,
        }
    }

    pub fn add(&mut self, other: &ErrorCounts) {
        self.connection += other.connection;
        self.timeout += other.timeout;
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
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
    /// Sum of the completed requests' latencies, for the mean.
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
}

impl Second {
    pub fn add(&mut self, other: &Second) {
        self.offered += other.offered;
        self.dropped += other.dropped;
        self.completed += other.completed;
        self.errors += other.errors;
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
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

/// Everything one shard recorded.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub endpoints: Vec<EndpointRecorder>,
    pub timeline: Vec<Second>,
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
    pub fn completed(
        &mut self,
        endpoint: usize,
        completed_at: Duration,
        latency: Duration,
        service: Duration,
        error: Option<ErrorClass>,
    ) {
        let latency_us = (latency.as_micros() as u64).max(1);
        let stats = &mut self.endpoints[endpoint];
        stats.latency.saturating_record(latency_us);
        stats
            .service_time
            .saturating_record((service.as_micros() as u64).max(1));
        match error {
            None => stats.ok += 1,
            Some(class) => stats.errors.count(class),
        }
        let second = self.second(completed_at);
        second.completed += 1;
        second.errors += u64::from(error.is_some());
        second.latency_sum_us += latency_us;
        second.latency_max_us = second.latency_max_us.max(latency_us);
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
        self.writes.extend_from_slice(&other.writes);
        self.deleted.extend_from_slice(&other.deleted);
    }
}
