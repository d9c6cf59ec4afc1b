//! The results file of a run: summaries people read, the full histograms
//! (HdrHistogram V2, base64) so that runs from several machines merge without
//! loss, the timeline, the acknowledged writes and the threshold verdicts.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::recorder::{
    AckedWrite, CacheCounts, EndpointRecorder, ErrorCounts, Second, new_histogram,
    new_second_histogram,
};
use crate::threshold::ThresholdOutcome;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("reading or writing results file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("results file {path} is not valid results JSON")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a histogram in the results is not valid base64")]
    HistogramBase64(#[source] base64::DecodeError),
    #[error("a histogram in the results is not valid HdrHistogram V2")]
    HistogramDecode(#[source] hdrhistogram::serialization::DeserializeError),
    #[error("nothing to merge: no results files given")]
    NothingToMerge,
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            p9999_ms: ms(histogram.value_at_quantile(0.9999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// Serialises a histogram as base64 of its V2 (uncompressed) encoding.
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serialising into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, ResultsError> {
    decode_into(text, new_histogram())
}

/// Decodes into `histogram`'s bounds (re-homing, so that histograms from any
/// run add up).
fn decode_into(text: &str, mut histogram: Histogram<u64>) -> Result<Histogram<u64>, ResultsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(ResultsError::HistogramBase64)?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(ResultsError::HistogramDecode)?;
    histogram
        .add(&decoded)
        .expect("decoded histogram fits the standard bounds");
    Ok(histogram)
}

/// One endpoint's (or the whole run's) figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointResults {
    pub requests: u64,
    pub ok: u64,
    pub errors: ErrorCounts,
    pub error_rate: f64,
    /// From each request's intended start (coordinated-omission corrected).
    pub latency: LatencySummary,
    /// From the moment the request was actually sent (what a closed-loop
    /// tool reports); shown for comparison only.
    pub service_time: LatencySummary,
    pub latency_histogram: String,
    pub service_time_histogram: String,
}

impl EndpointResults {
    pub fn from_recorder(recorder: &EndpointRecorder) -> Self {
        let requests = recorder.ok + recorder.errors.total();
        Self {
            requests,
            ok: recorder.ok,
            errors: recorder.errors.clone(),
            error_rate: ratio(recorder.errors.total(), requests),
            latency: LatencySummary::of(&recorder.latency),
            service_time: LatencySummary::of(&recorder.service_time),
            latency_histogram: encode_histogram(&recorder.latency),
            service_time_histogram: encode_histogram(&recorder.service_time),
        }
    }

    pub fn to_recorder(&self) -> Result<EndpointRecorder, ResultsError> {
        Ok(EndpointRecorder {
            latency: decode_histogram(&self.latency_histogram)?,
            service_time: decode_histogram(&self.service_time_histogram)?,
            ok: self.ok,
            errors: self.errors.clone(),
        })
    }

    /// Several endpoints' figures as one (e.g. all reads, all writes): the
    /// histograms add exactly.
    pub fn combine<'a>(
        parts: impl IntoIterator<Item = &'a EndpointResults>,
    ) -> Result<EndpointResults, ResultsError> {
        let mut combined = EndpointRecorder::new();
        for part in parts {
            combined.merge(&part.to_recorder()?);
        }
        Ok(Self::from_recorder(&combined))
    }
}

pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The results of one run (or of several merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub scenario: String,
    pub target: String,
    /// `open` (arrival schedule) or `closed` (each connection back to back).
    pub mode: String,
    pub started_at: String,
    pub duration_s: f64,
    /// How many runs were merged into this one (1 for a single run).
    pub merged_runs: u32,
    /// Iterations the schedule offered (open model).
    pub offered: u64,
    pub offered_rate: f64,
    pub dropped: u64,
    pub requests: u64,
    pub achieved_rate: f64,
    pub overall: EndpointResults,
    pub endpoints: BTreeMap<String, EndpointResults>,
    pub timeline: Vec<Second>,
    /// Each second's latency histogram (two significant figures, base64 V2),
    /// so that merged runs get exact per-second percentiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline_histograms: Vec<String>,
    /// Responses by what the cache in front said (`X-Cache`): fresh hits, stale
    /// answers, misses, unmarked.
    #[serde(default)]
    pub cache: CacheCounts,
    pub writes: Vec<AckedWrite>,
    pub deleted: Vec<Uuid>,
    pub thresholds: Vec<ThresholdOutcome>,
}

impl RunResults {
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|outcome| outcome.passed)
    }

    pub fn dropped_rate(&self) -> f64 {
        ratio(self.dropped, self.offered)
    }

    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Json {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        let text = serde_json::to_string_pretty(self).expect("results serialise");
        std::fs::write(path, text).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Merges runs that ran side by side (e.g. from several machines against
    /// one target): counts and histograms add exactly, rates add, the
    /// timelines add second by second from each run's start.
    pub fn merge(runs: &[RunResults]) -> Result<RunResults, ResultsError> {
        let first = runs.first().ok_or(ResultsError::NothingToMerge)?;
        let mut overall = first.overall.to_recorder()?;
        let mut endpoints: BTreeMap<String, EndpointRecorder> = BTreeMap::new();
        let mut timeline: Vec<Second> = Vec::new();
        // Exact per-second percentiles only when every run kept its histograms.
        let exact_seconds = runs
            .iter()
            .all(|run| run.timeline_histograms.len() == run.timeline.len());
        let mut second_histograms: Vec<Histogram<u64>> = Vec::new();
        let mut merged = RunResults {
            merged_runs: 0,
            offered: 0,
            offered_rate: 0.0,
            dropped: 0,
            ..first.clone()
        };
        merged.writes.clear();
        merged.deleted.clear();
        for (index, run) in runs.iter().enumerate() {
            if index > 0 {
                overall.merge(&run.overall.to_recorder()?);
            }
            for (name, endpoint) in &run.endpoints {
                let recorder = endpoint.to_recorder()?;
                endpoints.entry(name.clone()).or_default().merge(&recorder);
            }
            if timeline.len() < run.timeline.len() {
                timeline.resize(run.timeline.len(), Second::default());
            }
            for (mine, theirs) in timeline.iter_mut().zip(&run.timeline) {
                mine.add(theirs);
            }
            if exact_seconds {
                if second_histograms.len() < run.timeline_histograms.len() {
                    second_histograms
                        .resize_with(run.timeline_histograms.len(), new_second_histogram);
                }
                for (mine, theirs) in second_histograms.iter_mut().zip(&run.timeline_histograms) {
                    mine.add(decode_into(theirs, new_second_histogram())?)
                        .expect("histograms share bounds");
                }
            }
            merged.merged_runs += run.merged_runs;
            merged.offered += run.offered;
            merged.offered_rate += run.offered_rate;
            merged.dropped += run.dropped;
            merged.duration_s = merged.duration_s.max(run.duration_s);
            merged.writes.extend_from_slice(&run.writes);
            merged.deleted.extend_from_slice(&run.deleted);
            if index > 0 {
                merged.cache.add(&run.cache);
            }
        }
        merged.overall = EndpointResults::from_recorder(&overall);
        merged.requests = merged.overall.requests;
        merged.achieved_rate = runs.iter().map(|run| run.achieved_rate).sum();
        merged.endpoints = endpoints
            .iter()
            .map(|(name, recorder)| (name.clone(), EndpointResults::from_recorder(recorder)))
            .collect();
        for (second, histogram) in timeline.iter_mut().zip(&second_histograms) {
            second.set_percentiles(histogram);
        }
        merged.timeline = timeline;
        merged.timeline_histograms = second_histograms.iter().map(encode_histogram).collect();
        merged.thresholds = Vec::new();
        Ok(merged)
    }
}
