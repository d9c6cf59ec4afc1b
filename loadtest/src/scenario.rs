//! Scenarios as data: a TOML file names the mix of API calls and their
//! weights, the data's shape (how many songs and users, how skewed the song
//! popularity is), the arrival schedule, timeouts, in-flight bound and
//! thresholds. See `loadtest/scenarios/*.toml`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::schedule::Schedule;
use crate::threshold::Threshold;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario file {path} is not a valid scenario")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("scenario {0:?}: {1}")]
    Invalid(String, String),
}

/// Parses `250ms`, `2s`, `1.5s`, `3m`, `100us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 2s or 3m"))?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be us, ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse_duration(&text).map_err(serde::de::Error::custom))
        .transpose()
}

/// Which API call an entry of the mix makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `GET /api/songs/{id}`
    GetSong,
    /// `GET /api/songs/{id}/comments`
    GetComments,
    /// `GET /api/songs/{id}/feed`
    GetFeed,
    /// `POST /api/songs/{id}/comments` with a minted token.
    PostComment,
    /// `PATCH /api/comments/{id}` of a comment this run wrote.
    PatchComment,
    /// `DELETE /api/comments/{id}` of a comment this run wrote.
    DeleteComment,
    /// `GET` of a fixed `path` (for calibration against a plain server).
    Get,
}

impl RequestKind {
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::PostComment | Self::PatchComment | Self::DeleteComment
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixEntry {
    /// Label in the results; defaults to the kind.
    pub name: Option<String>,
    pub kind: RequestKind,
    pub weight: u32,
    /// Only for `kind = "get"`.
    pub path: Option<String>,
}

impl MixEntry {
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            match self.kind {
                RequestKind::GetSong => "song",
                RequestKind::GetComments => "comments",
                RequestKind::GetFeed => "feed",
                RequestKind::PostComment => "post_comment",
                RequestKind::PatchComment => "patch_comment",
                RequestKind::DeleteComment => "delete_comment",
                RequestKind::Get => "get",
            }
            .to_owned()
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Arrival rate reached at the end of the stage.
    pub target: f64,
    #[serde(deserialize_with = "duration")]
    pub duration: Duration,
}

/// The arrival schedule: either `rate` + `duration`, or `stages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalConfig {
    pub rate: Option<f64>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub duration: Option<Duration>,
    #[serde(default)]
    pub start_rate: f64,
    #[serde(default)]
    pub stages: Vec<StageConfig>,
}

/// The shape of the data the target holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Song ids are drawn from 1..=songs.
    pub songs: u64,
    /// Tokens are minted for user ids 1..=token_users (at most `users`).
    pub users: u64,
    pub token_users: u64,
    /// Zipf exponent of song popularity: 0 is uniform, ~1 is web-like.
    pub zipf_exponent: f64,
    /// Comment positions are drawn from 0..max_track_ms.
    pub max_track_ms: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            songs: 10_000,
            users: 1_000,
            token_users: 200,
            zipf_exponent: 1.0,
            max_track_ms: 30_000,
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_max_in_flight() -> usize {
    512
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Base URL; the command line's `--target` overrides it.
    pub target: Option<String>,
    pub arrival: ArrivalConfig,
    /// The most requests in flight at once (k6's maxVUs); one keep-alive
    /// connection each. An arrival that finds none free is dropped.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub data: DataConfig,
    /// HS256 secret for write tokens; `JWT_SECRET` or `--jwt-secret` override.
    pub jwt_secret: Option<String>,
    pub mix: Vec<MixEntry>,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let scenario: Scenario = toml::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: "<inline>".into(),
            source,
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The built-in read-heavy mix (about 90 % reads) against a seeded origin.
    pub fn read_heavy(songs: u64, users: u64) -> Self {
        let mut scenario = Self::from_toml(include_str!("../scenarios/read-heavy.toml"))
            .expect("built-in scenario");
        scenario.data.songs = songs;
        scenario.data.users = users;
        scenario.data.token_users = scenario.data.token_users.min(users);
        scenario
    }

    fn invalid(&self, why: &str) -> ScenarioError {
        ScenarioError::Invalid(self.name.clone(), why.to_owned())
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.mix.is_empty() || self.mix.iter().all(|entry| entry.weight == 0) {
            return Err(self.invalid("the mix needs at least one entry with a weight above 0"));
        }
        if let Some(entry) = self
            .mix
            .iter()
            .find(|entry| (entry.kind == RequestKind::Get) != entry.path.is_some())
        {
            return Err(self.invalid(&format!(
                "mix entry {:?}: `path` goes with kind \"get\" and only there",
                entry.label()
            )));
        }
        if self.max_in_flight == 0 {
            return Err(self.invalid("max_in_flight must be at least 1"));
        }
        if self.data.songs == 0 || self.data.users == 0 || self.data.zipf_exponent < 0.0 {
            return Err(self.invalid(
                "data.songs and data.users must be at least 1, zipf_exponent not negative",
            ));
        }
        self.schedule().map(|_| ())
    }

    pub fn schedule(&self) -> Result<Schedule, ScenarioError> {
        let arrival = &self.arrival;
        match (arrival.rate, arrival.duration, arrival.stages.is_empty()) {
            (Some(rate), Some(duration), true) if rate > 0.0 && !duration.is_zero() => {
                Ok(Schedule::constant(rate, duration))
            }
            (None, None, false) => {
                let stages: Vec<(f64, Duration)> = arrival
                    .stages
                    .iter()
                    .map(|stage| (stage.target, stage.duration))
                    .collect();
                if stages
                    .iter()
                    .any(|(rate, duration)| *rate < 0.0 || duration.is_zero())
                {
                    return Err(
                        self.invalid("every stage needs a target >= 0 and a duration above 0")
                    );
                }
                Ok(Schedule::ramping(arrival.start_rate, &stages))
            }
            _ => {
                Err(self.invalid("[arrival] needs either `rate` (> 0) and `duration`, or `stages`"))
            }
        }
    }

    pub fn has_writes(&self) -> bool {
        self.mix
            .iter()
            .any(|entry| entry.weight > 0 && entry.kind.is_write())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn every_shipped_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut loaded = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                Scenario::load(&path)
                    .unwrap_or_else(|error| panic!("{}: {error:?}", path.display()));
                loaded += 1;
            }
        }
        assert!(
            loaded >= 2,
            "expected the shipped scenarios, found {loaded}"
        );
    }

    #[test]
    fn read_heavy_is_about_ninety_percent_reads() {
        let scenario = Scenario::read_heavy(1000, 100);
        let total: u32 = scenario.mix.iter().map(|entry| entry.weight).sum();
        let reads: u32 = scenario
            .mix
            .iter()
            .filter(|entry| !entry.kind.is_write())
            .map(|entry| entry.weight)
            .sum();
        let share = f64::from(reads) / f64::from(total);
        assert!((0.85..=0.95).contains(&share), "read share {share}");
        assert!(scenario.has_writes());
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let no_schedule = r#"
            name = "x"
            arrival = { rate = 10.0 }
            mix = [{ kind = "get_song", weight = 1 }]
        "#;
        let error = Scenario::from_toml(no_schedule).unwrap_err().to_string();
        assert!(error.contains("[arrival]"), "{error}");
        let path_on_song = r#"
            name = "x"
            arrival = { rate = 10.0, duration = "1s" }
            mix = [{ kind = "get_song", weight = 1, path = "/" }]
        "#;
        assert!(
            Scenario::from_toml(path_on_song)
                .unwrap_err()
                .to_string()
                .contains("path")
        );
        let bad_threshold = r#"
            name = "x"
            arrival = { rate = 10.0, duration = "1s" }
            mix = [{ kind = "get_song", weight = 1 }]
            thresholds = ["p99 < soon"]
        "#;
        assert!(Scenario::from_toml(bad_threshold).is_err());
    }
}
