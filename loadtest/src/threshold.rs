//! Pass/fail criteria in the style of k6 thresholds and Artillery's `ensure`:
//! `p99 < 50ms`, `errors < 0.1%`, `dropped < 1%`, optionally scoped to one
//! endpoint (`comments: p99 < 20ms`). They decide the exit code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::results::{EndpointResults, RunResults};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold {0:?} is not of the form `[endpoint:] metric op value`, e.g. `p99 < 50ms`")]
    Shape(String),
    #[error(
        "threshold {0:?}: unknown metric (use p50, p90, p99, p99.9, p99.99, max, mean, errors, dropped)"
    )]
    Metric(String),
    #[error("threshold {0:?}: operator must be <, <=, > or >=")]
    Operator(String),
    #[error(
        "threshold {0:?}: value must be a number with ms or s (latency) or % (errors, dropped)"
    )]
    Value(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    P50,
    P90,
    P99,
    P999,
    P9999,
    Max,
    Mean,
    /// Error rate, as a fraction.
    Errors,
    /// Dropped iterations, as a fraction of those offered.
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A parsed threshold. Latency limits are in milliseconds, rates are fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub endpoint: Option<String>,
    pub metric: Metric,
    pub operator: Operator,
    pub limit: f64,
}

/// A threshold checked against a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    pub threshold: String,
    pub actual: f64,
    pub passed: bool,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(text: &str) -> Result<Self, ThresholdError> {
        let (endpoint, rest) = match text.split_once(':') {
            Some((endpoint, rest)) => (Some(endpoint.trim().to_owned()), rest),
            None => (None, text),
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [metric, operator, value] = words[..] else {
            return Err(ThresholdError::Shape(text.to_owned()));
        };
        let metric = match metric {
            "p50" | "median" => Metric::P50,
            "p90" => Metric::P90,
            "p99" => Metric::P99,
            "p99.9" | "p999" => Metric::P999,
            "p99.99" | "p9999" => Metric::P9999,
            "max" => Metric::Max,
            "mean" | "avg" => Metric::Mean,
            "errors" | "error_rate" => Metric::Errors,
            "dropped" => Metric::Dropped,
            _ => return Err(ThresholdError::Metric(text.to_owned())),
        };
        let operator = match operator {
            "<" => Operator::Less,
            "<=" => Operator::LessOrEqual,
            ">" => Operator::Greater,
            ">=" => Operator::GreaterOrEqual,
            _ => return Err(ThresholdError::Operator(text.to_owned())),
        };
        let bad_value = || ThresholdError::Value(text.to_owned());
        let number = |digits: &str| digits.parse::<f64>().map_err(|_| bad_value());
        let limit = match metric {
            Metric::Errors | Metric::Dropped => {
                number(value.strip_suffix('%').ok_or_else(bad_value)?)? / 100.0
            }
            _ => {
                if let Some(ms) = value.strip_suffix("ms") {
                    number(ms)?
                } else if let Some(us) = value.strip_suffix("us") {
                    number(us)? / 1000.0
                } else if let Some(s) = value.strip_suffix('s') {
                    number(s)? * 1000.0
                } else {
                    return Err(bad_value());
                }
            }
        };
        Ok(Self {
            endpoint,
            metric,
            operator,
            limit,
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(endpoint) = &self.endpoint {
            write!(f, "{endpoint}: ")?;
        }
        let metric = match self.metric {
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::P9999 => "p99.99",
            Metric::Max => "max",
            Metric::Mean => "mean",
            Metric::Errors => "errors",
            Metric::Dropped => "dropped",
        };
        let operator = match self.operator {
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
        };
        match self.metric {
            Metric::Errors | Metric::Dropped => {
                write!(f, "{metric} {operator} {}%", self.limit * 100.0)
            }
            _ => write!(f, "{metric} {operator} {}ms", self.limit),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Threshold {
    /// Checks the threshold; a threshold naming an endpoint the run never
    /// called fails (a typo must not pass silently).
    pub fn check(&self, run: &RunResults) -> ThresholdOutcome {
        let scope: Option<&EndpointResults> = match &self.endpoint {
            Some(name) => run.endpoints.get(name),
            None => Some(&run.overall),
        };
        let actual = match (self.metric, scope) {
            (_, None) => f64::NAN,
            (Metric::Dropped, Some(_)) => run.dropped_rate(),
            (Metric::Errors, Some(scope)) => scope.error_rate,
            (metric, Some(scope)) => {
                let latency = &scope.latency;
                match metric {
                    Metric::P50 => latency.p50_ms,
                    Metric::P90 => latency.p90_ms,
                    Metric::P99 => latency.p99_ms,
                    Metric::P999 => latency.p999_ms,
                    Metric::P9999 => latency.p9999_ms,
                    Metric::Max => latency.max_ms,
                    _ => latency.mean_ms,
                }
            }
        };
        let passed = match self.operator {
            Operator::Less => actual < self.limit,
            Operator::LessOrEqual => actual <= self.limit,
            Operator::Greater => actual > self.limit,
            Operator::GreaterOrEqual => actual >= self.limit,
        };
        ThresholdOutcome {
            threshold: self.to_string(),
            actual,
            passed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let check = |text: &str, endpoint: Option<&str>, metric, operator, limit: f64| {
            let threshold: Threshold = text.parse().unwrap();
            assert_eq!(threshold.endpoint.as_deref(), endpoint, "{text}");
            assert_eq!(threshold.metric, metric, "{text}");
            assert_eq!(threshold.operator, operator, "{text}");
            assert!(
                (threshold.limit - limit).abs() < 1e-12,
                "{text}: {}",
                threshold.limit
            );
        };
        check("p99 < 50ms", None, Metric::P99, Operator::Less, 50.0);
        check("errors < 0.1%", None, Metric::Errors, Operator::Less, 0.001);
        check(
            "comments: p99.9 <= 1.5s",
            Some("comments"),
            Metric::P999,
            Operator::LessOrEqual,
            1500.0,
        );
        check("max < 800us", None, Metric::Max, Operator::Less, 0.8);
        check(
            "dropped >= 5%",
            None,
            Metric::Dropped,
            Operator::GreaterOrEqual,
            0.05,
        );
    }

    #[test]
    fn rejects_malformed_thresholds() {
        assert!(matches!(
            "p99<50ms".parse::<Threshold>(),
            Err(ThresholdError::Shape(_))
        ));
        assert!(matches!(
            "p42 < 50ms".parse::<Threshold>(),
            Err(ThresholdError::Metric(_))
        ));
        assert!(matches!(
            "p99 = 50ms".parse::<Threshold>(),
            Err(ThresholdError::Operator(_))
        ));
        assert!(matches!(
            "p99 < 50".parse::<Threshold>(),
            Err(ThresholdError::Value(_))
        ));
        assert!(matches!(
            "errors < 0.1".parse::<Threshold>(),
            Err(ThresholdError::Value(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in ["p99 < 50ms", "errors < 0.1%", "feed: max >= 1000ms"] {
            let threshold: Threshold = text.parse().unwrap();
            assert_eq!(
                threshold.to_string().parse::<Threshold>().unwrap(),
                threshold
            );
        }
    }
}
