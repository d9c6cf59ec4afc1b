//! The ordered origin group: which origin to try next, whether a failed attempt may
//! be retried, how long each attempt may take, and passive health from past outcomes.
//! The adapter keeps an [`OriginHealth`] for as long as its instance lives and passes
//! the time in as milliseconds.

use crate::config::EdgeConfig;

/// How one attempt at one origin ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Failed before anything was sent (no connection): the origin never saw it.
    NotSent,
    /// The connection broke after the request was (maybe partly) sent.
    Broken,
    /// No response head within the attempt's time limit.
    Timeout,
    /// A response head with this status arrived.
    Status(u16),
}

impl AttemptOutcome {
    /// Failures that mean "this origin cannot answer now": worth failing over and
    /// counted against its health. Other statuses (including 500) are the
    /// application's answer and are passed on.
    pub fn is_origin_failure(self) -> bool {
        match self {
            Self::NotSent | Self::Broken | Self::Timeout => true,
            Self::Status(status) => matches!(status, 502..=504),
        }
    }
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 section 9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Whether to try the next origin after `outcome`. A request that never left
/// ([`AttemptOutcome::NotSent`]) may go elsewhere whatever its method; one that
/// may have reached the origin is retried only when idempotent, because a POST
/// or PATCH the first origin acted on must not be acted on twice.
pub fn should_retry(
    method: &str,
    outcome: AttemptOutcome,
    attempts_made: usize,
    order_len: usize,
    elapsed_ms: u64,
    config: &EdgeConfig,
) -> bool {
    outcome.is_origin_failure()
        && (outcome == AttemptOutcome::NotSent || is_idempotent(method))
        && attempts_made < order_len
        && elapsed_ms < config.total_timeout_ms
}

/// Time limit for the next attempt: the per-origin limit, cut to what remains of
/// the total bound; `None` when the total bound is used up.
pub fn attempt_timeout_ms(elapsed_ms: u64, config: &EdgeConfig) -> Option<u64> {
    let remaining = config
        .total_timeout_ms
        .checked_sub(elapsed_ms)
        .filter(|r| *r > 0)?;
    Some(remaining.min(config.origin_timeout_ms))
}

/// The URL of a request target at an origin base URL.
pub fn origin_url(origin: &str, path_and_query: &str) -> String {
    format!("{origin}{path_and_query}")
}

/// Passive health of each origin in the group, by index into [`EdgeConfig::origins`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginHealth {
    origins: Vec<OriginState>,
}

/// One origin's recent record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OriginState {
    pub consecutive_failures: u32,
    /// Until this time (ms) the origin is tried only after all healthy ones.
    pub skipped_until_ms: u64,
}

impl OriginHealth {
    pub fn new(origin_count: usize) -> Self {
        Self {
            origins: vec![OriginState::default(); origin_count],
        }
    }

    pub fn state(&self, index: usize) -> Option<OriginState> {
        self.origins.get(index).copied()
    }

    /// Indexes to try, in order: origins not being skipped in configured order,
    /// then skipped ones (soonest back first) as a last resort, so a request is
    /// never refused only because every origin recently failed.
    pub fn attempt_order(&self, now_ms: u64) -> Vec<usize> {
        let (mut healthy, mut skipped): (Vec<usize>, Vec<usize>) =
            (0..self.origins.len()).partition(|&i| self.origins[i].skipped_until_ms <= now_ms);
        skipped.sort_by_key(|&i| (self.origins[i].skipped_until_ms, i));
        healthy.append(&mut skipped);
        healthy
    }

    /// Records an attempt's outcome. After `failure_threshold` consecutive failures
    /// the origin is skipped for `cooldown_ms`; once the cool-down is over it is tried
    /// again, and one more failure skips it again at once (half-open).
    pub fn record(
        &mut self,
        index: usize,
        outcome: AttemptOutcome,
        now_ms: u64,
        config: &EdgeConfig,
    ) {
        let Some(state) = self.origins.get_mut(index) else {
            return;
        };
        if outcome.is_origin_failure() {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            if state.consecutive_failures >= config.failure_threshold {
                state.skipped_until_ms = now_ms.saturating_add(config.cooldown_ms);
            }
        } else {
            *state = OriginState::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptOutcome::*;

    fn config() -> EdgeConfig {
        EdgeConfig {
            origins: vec!["http://a".into(), "http://b".into(), "http://c".into()],
            origin_timeout_ms: 300,
            total_timeout_ms: 1000,
            failure_threshold: 2,
            cooldown_ms: 5000,
            ..EdgeConfig::default()
        }
    }

    #[test]
    fn failures_are_classified() {
        for (outcome, expected) in [
            (NotSent, true),
            (Broken, true),
            (Timeout, true),
            (Status(502), true),
            (Status(503), true),
            (Status(504), true),
            (Status(500), false),
            (Status(501), false),
            (Status(505), false),
            (Status(200), false),
            (Status(404), false),
            (Status(429), false),
        ] {
            assert_eq!(outcome.is_origin_failure(), expected, "{outcome:?}");
        }
    }

    #[test]
    fn retries_only_idempotent_failures_within_bounds() {
        fn check(
            method: &str,
            outcome: AttemptOutcome,
            attempts: usize,
            elapsed: u64,
            expected: bool,
        ) {
            assert_eq!(
                should_retry(method, outcome, attempts, 3, elapsed, &config()),
                expected,
                "{method} {outcome:?} {attempts} {elapsed}"
            );
        }
        check("GET", NotSent, 1, 0, true);
        check("GET", Broken, 1, 0, true);
        check("GET", Timeout, 1, 300, true);
        check("GET", Status(502), 1, 10, true);
        check("GET", Status(503), 2, 10, true);
        check("GET", Status(504), 1, 10, true);
        check("HEAD", NotSent, 1, 0, true);
        check("PUT", NotSent, 1, 0, true);
        check("DELETE", Status(503), 1, 0, true);
        check("OPTIONS", Timeout, 1, 0, true);
        check("POST", NotSent, 1, 0, true);
        check("PATCH", NotSent, 1, 0, true);
        check("POST", Broken, 1, 0, false);
        check("POST", Status(503), 1, 0, false);
        check("PATCH", Timeout, 1, 0, false);
        check("GET", Status(500), 1, 0, false);
        check("GET", Status(200), 1, 0, false);
        check("GET", Status(404), 1, 0, false);
        check("GET", NotSent, 3, 0, false);
        check("GET", NotSent, 1, 1000, false);
        check("GET", NotSent, 1, 999, true);
    }

    #[test]
    fn attempt_timeouts_respect_the_total_bound() {
        fn check(elapsed: u64, expected: Option<u64>) {
            assert_eq!(
                attempt_timeout_ms(elapsed, &config()),
                expected,
                "elapsed {elapsed}"
            );
        }
        check(0, Some(300));
        check(600, Some(300));
        check(800, Some(200));
        check(999, Some(1));
        check(1000, None);
        check(5000, None);
    }

    #[test]
    fn origin_urls_join_base_and_target() {
        assert_eq!(
            origin_url("http://127.0.0.1:8100", "/api/songs/1?x=1"),
            "http://127.0.0.1:8100/api/songs/1?x=1"
        );
    }

    #[test]
    fn failing_origins_are_skipped_for_a_cool_down_then_retried() {
        let config = config();
        let mut health = OriginHealth::new(3);
        assert_eq!(health.attempt_order(0), vec![0, 1, 2]);
        health.record(0, NotSent, 100, &config);
        assert_eq!(
            health.attempt_order(100),
            vec![0, 1, 2],
            "one failure is not enough"
        );
        health.record(0, Timeout, 200, &config);
        assert_eq!(
            health.state(0),
            Some(OriginState {
                consecutive_failures: 2,
                skipped_until_ms: 5200
            })
        );
        assert_eq!(
            health.attempt_order(300),
            vec![1, 2, 0],
            "skipped origin goes last"
        );
        health.record(1, Status(503), 300, &config);
        health.record(1, Status(502), 400, &config);
        assert_eq!(
            health.attempt_order(500),
            vec![2, 0, 1],
            "soonest back first among skipped"
        );
        assert_eq!(health.attempt_order(5200), vec![0, 2, 1], "cool-down over");
        health.record(0, NotSent, 5200, &config);
        assert_eq!(
            health.attempt_order(5201),
            vec![2, 1, 0],
            "half-open: one failure skips again"
        );
        health.record(0, Status(200), 11000, &config);
        assert_eq!(health.state(0), Some(OriginState::default()));
        health.record(2, Status(500), 11000, &config);
        assert_eq!(
            health.state(2),
            Some(OriginState::default()),
            "500 is an answer, not a failure"
        );
        health.record(9, NotSent, 0, &config);
        assert_eq!(health.attempt_order(11000), vec![0, 1, 2]);
    }
}
