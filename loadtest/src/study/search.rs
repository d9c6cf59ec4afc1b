//! The capacity search (exponential growth until the objective fails, then bisection)
//! and the rates derived from its results. Pure.

use super::model::ScalingResult;

/// Exponential growth until the objective fails, then bisection.
#[derive(Debug, Clone)]
pub struct CapacitySearch {
    next: Option<f64>,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
    max: f64,
    growth: f64,
    bisections_left: u32,
}

impl CapacitySearch {
    /// Doubling from `start`.
    pub fn new(start: f64, max: f64, bisections: u32) -> Self {
        Self::with_growth(start, max, bisections, 2.0)
    }

    /// Growing by `growth` (> 1) from `start`, or shrinking by it while even
    /// the first rate fails.
    pub fn with_growth(start: f64, max: f64, bisections: u32, growth: f64) -> Self {
        Self {
            next: Some(start.min(max)),
            highest_pass: None,
            lowest_fail: None,
            max,
            growth: growth.max(1.1),
            bisections_left: bisections,
        }
    }

    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |best| best.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |worst| worst.min(rate)));
        }
        self.next = match (self.highest_pass, self.lowest_fail) {
            (Some(pass), None) if pass < self.max => {
                Some((pass * self.growth).min(self.max).round())
            }
            (Some(_), None) => None,
            // Even the first rate failed: shrink until something passes.
            (None, Some(fail)) if fail > 25.0 => Some((fail / self.growth).floor()),
            (Some(pass), Some(fail)) if self.bisections_left > 0 && fail - pass > pass * 0.02 => {
                self.bisections_left -= 1;
                Some(((pass + fail) / 2.0).round())
            }
            _ => None,
        };
    }

    /// The highest rate that met the objective (0 if none did).
    pub fn capacity(&self) -> f64 {
        self.highest_pass.unwrap_or(0.0)
    }
}

/// Where the capacity search of a pool size starts: at the previous size's
/// capacity when it found one (a bigger pool is rarely slower, and this spends
/// no steps re-climbing), else at `start` per instance.
pub fn search_start(previous_capacity: Option<f64>, start: f64, instances: usize) -> f64 {
    previous_capacity
        .filter(|capacity| *capacity > 0.0)
        .unwrap_or(start * instances as f64)
}

/// The load for fault and tier runs through the edge: the nginx rate (see
/// [`fault_rate`]) unless the edge carried less than twice that, then half
/// of what the edge carried (so that faults meet an edge with headroom, as
/// they meet the origins).
pub fn edge_fault_rate(nginx_rate: f64, edge_capacity: Option<f64>) -> f64 {
    match edge_capacity {
        Some(capacity) if capacity < 2.0 * nginx_rate => (capacity * 0.5).max(100.0).round(),
        _ => nginx_rate,
    }
}

/// The load for fault and tier runs: half the measured capacity of the
/// nearest pool size at or below `instances`.
pub fn fault_rate(scaling: &[ScalingResult], instances: usize) -> f64 {
    let capacity = scaling
        .iter()
        .filter(|result| result.instances <= instances)
        .map(|result| result.capacity_rps)
        .fold(0.0, f64::max);
    (capacity * 0.5).max(100.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_with_capacity(true_capacity: f64) -> (f64, Vec<f64>) {
        let mut search = CapacitySearch::new(200.0, 40_000.0, 4);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= true_capacity);
        }
        (search.capacity(), tried)
    }

    #[test]
    fn capacity_search_doubles_then_bisects() {
        let (capacity, tried) = search_with_capacity(2_500.0);
        assert_eq!(&tried[..5], &[200.0, 400.0, 800.0, 1600.0, 3200.0]);
        assert_eq!(tried.len(), 9);
        assert!(
            (2_350.0..=2_500.0).contains(&capacity),
            "capacity {capacity} from {tried:?}"
        );
    }
    #[test]
    fn capacity_search_handles_the_extremes() {
        assert_eq!(search_with_capacity(1e9).0, 40_000.0);
        let (capacity, tried) = search_with_capacity(60.0);
        assert!(
            capacity > 0.0 && capacity <= 60.0,
            "{capacity} from {tried:?}"
        );
        assert_eq!(search_with_capacity(0.0).0, 0.0);
    }
    #[test]
    fn a_gentler_growth_shrinks_and_grows_by_its_factor() {
        let mut search = CapacitySearch::with_growth(3000.0, 40_000.0, 1, 1.5);
        search.record(3000.0, false);
        assert_eq!(search.next_rate(), Some(2000.0));
        search.record(2000.0, true);
        assert_eq!(search.next_rate(), Some(2500.0));
        search.record(2500.0, true);
        assert_eq!(search.next_rate(), None, "one bisection only");
        assert_eq!(search.capacity(), 2500.0);
        let mut up = CapacitySearch::with_growth(1000.0, 40_000.0, 1, 1.5);
        up.record(1000.0, true);
        assert_eq!(up.next_rate(), Some(1500.0));
    }
    #[test]
    fn a_slow_edge_lowers_the_fault_rate() {
        assert_eq!(edge_fault_rate(1750.0, None), 1750.0);
        assert_eq!(edge_fault_rate(1750.0, Some(3500.0)), 1750.0);
        assert_eq!(edge_fault_rate(1750.0, Some(1300.0)), 650.0);
        assert_eq!(edge_fault_rate(1750.0, Some(0.0)), 100.0);
    }
    #[test]
    fn later_sizes_start_from_the_previous_capacity() {
        assert_eq!(search_start(None, 400.0, 1), 400.0);
        assert_eq!(search_start(Some(0.0), 400.0, 3), 1200.0);
        assert_eq!(search_start(Some(1800.0), 400.0, 5), 1800.0);
    }
    #[test]
    fn fault_rate_is_half_the_nearest_capacity() {
        let result = |instances, capacity_rps| ScalingResult {
            instances,
            capacity_rps,
            steps: Vec::new(),
        };
        let scaling = vec![result(1, 1000.0), result(3, 2600.0), result(5, 4000.0)];
        assert_eq!(fault_rate(&scaling, 4), 1300.0);
        assert_eq!(fault_rate(&[], 4), 100.0);
    }
}
