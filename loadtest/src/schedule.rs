//! The arrival schedule of the open model: when each iteration is meant to
//! start, independent of how fast responses come back.
//!
//! A schedule is a list of stages; the rate moves linearly from the previous
//! stage's target to this stage's target over the stage's duration, as k6's
//! `ramping-arrival-rate` and Artillery's `arrivalRate`/`rampTo` phases do. A
//! constant rate is one stage whose start and target rate are equal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One stretch of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Arrival rate (iterations per second) at the start of the stage.
    pub from_rate: f64,
    /// Arrival rate at the end of the stage.
    pub to_rate: f64,
    pub duration: Duration,
}

impl Stage {
    /// Iterations this stage contributes (the area under its rate line).
    fn arrivals(&self) -> f64 {
        (self.from_rate + self.to_rate) / 2.0 * self.duration.as_secs_f64()
    }

    /// Seconds into the stage at which `m` arrivals have accumulated.
    fn time_of_arrival(&self, m: f64) -> f64 {
        let seconds = self.duration.as_secs_f64();
        let slope = (self.to_rate - self.from_rate) / seconds;
        if slope.abs() < 1e-12 {
            return m / self.from_rate;
        }
        // N(t) = r0 t + slope t^2 / 2 = m, solved for the positive root.
        let a = slope / 2.0;
        let b = self.from_rate;
        let discriminant = (b * b + 4.0 * a * m).max(0.0);
        ((-b + discriminant.sqrt()) / (2.0 * a)).clamp(0.0, seconds)
    }
}

/// The whole arrival schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub stages: Vec<Stage>,
}

impl Schedule {
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self {
            stages: vec![Stage {
                from_rate: rate,
                to_rate: rate,
                duration,
            }],
        }
    }

    /// k6-style stages: `(target, duration)` pairs starting from `start_rate`.
    pub fn ramping(start_rate: f64, targets: &[(f64, Duration)]) -> Self {
        let mut from_rate = start_rate;
        let stages = targets
            .iter()
            .map(|&(to_rate, duration)| {
                let stage = Stage {
                    from_rate,
                    to_rate,
                    duration,
                };
                from_rate = to_rate;
                stage
            })
            .collect();
        Self { stages }
    }

    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }

    /// Total iterations the schedule offers.
    pub fn total_arrivals(&self) -> u64 {
        self.stages.iter().map(Stage::arrivals).sum::<f64>().floor() as u64
    }

    /// Mean offered rate over the whole schedule.
    pub fn mean_rate(&self) -> f64 {
        let seconds = self.duration().as_secs_f64();
        if seconds == 0.0 {
            0.0
        } else {
            self.total_arrivals() as f64 / seconds
        }
    }

    /// Offered rate at `at` seconds from the start.
    pub fn rate_at(&self, at: f64) -> f64 {
        let mut start = 0.0;
        for stage in &self.stages {
            let seconds = stage.duration.as_secs_f64();
            if at < start + seconds {
                let into = (at - start) / seconds;
                return stage.from_rate + (stage.to_rate - stage.from_rate) * into;
            }
            start += seconds;
        }
        0.0
    }

    /// Intended start offsets of every iteration, in order.
    pub fn arrivals(&self) -> Arrivals<'_> {
        Arrivals {
            schedule: self,
            stage: 0,
            stage_start: 0.0,
            stage_base: 0.0,
            next: 0,
        }
    }
}

/// Iterator over intended start offsets (from the run's start).
#[derive(Debug)]
pub struct Arrivals<'a> {
    schedule: &'a Schedule,
    stage: usize,
    /// Offset of the current stage's start, in seconds.
    stage_start: f64,
    /// Cumulative arrivals before the current stage.
    stage_base: f64,
    /// Index of the next iteration.
    next: u64,
}

impl Iterator for Arrivals<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let stage = self.schedule.stages.get(self.stage)?;
            let within = self.next as f64 - self.stage_base;
            if within < stage.arrivals() && stage.arrivals() > 0.0 {
                let at = self.stage_start + stage.time_of_arrival(within);
                self.next += 1;
                return Some(Duration::from_secs_f64(at));
            }
            self.stage_base += stage.arrivals();
            self.stage_start += stage.duration.as_secs_f64();
            self.stage += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let schedule = Schedule::constant(100.0, Duration::from_secs(2));
        let times: Vec<Duration> = schedule.arrivals().collect();
        assert_eq!(times.len(), 200);
        assert_eq!(schedule.total_arrivals(), 200);
        assert_eq!(times[0], Duration::ZERO);
        assert!((times[1].as_secs_f64() - 0.01).abs() < 1e-9);
        assert!((times[199].as_secs_f64() - 1.99).abs() < 1e-9);
    }

    #[test]
    fn ramp_from_zero_accumulates_quadratically() {
        // 0 -> 100/s over 10 s: 500 arrivals, half of them in the last ~2.93 s.
        let schedule = Schedule::ramping(0.0, &[(100.0, Duration::from_secs(10))]);
        let times: Vec<f64> = schedule.arrivals().map(|t| t.as_secs_f64()).collect();
        assert_eq!(times.len(), 500);
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
        let median = times[250];
        assert!(
            (median - 10.0 * 0.5f64.sqrt()).abs() < 0.02,
            "median arrival at {median}"
        );
        assert!((schedule.rate_at(5.0) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn stages_chain_and_skip_empty_ones() {
        let schedule = Schedule::ramping(
            10.0,
            &[
                (10.0, Duration::from_secs(1)),
                (0.0, Duration::from_secs(1)),
                (20.0, Duration::from_secs(1)),
            ],
        );
        let times: Vec<f64> = schedule.arrivals().map(|t| t.as_secs_f64()).collect();
        assert_eq!(times.len(), 10 + 5 + 10);
        assert!(times[10] >= 1.0 && times[14] < 2.0);
        assert!(times[15] >= 2.0 && *times.last().unwrap() < 3.0);
    }
}
