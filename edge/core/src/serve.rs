//! Serving from the cache: given what is stored, answer now, answer stale and
//! refresh, revalidate, or go to the origin; and the headers the client gets.

use std::rc::Rc;

use crate::cache_control::CacheControl;
use crate::decimal::decimal;
use crate::headers::Headers;
use crate::policy::secs_to_ms;
use crate::stored::StoredResponse;

/// What the edge did for a response; sent as `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache, fresh.
    Hit,
    /// Fetched from an origin (stored or not).
    Miss,
    /// Served from the cache past its freshness: while refreshing
    /// (`stale-while-revalidate`) or because every origin failed (`stale-if-error`).
    Stale,
    /// Stored response confirmed by the origin with 304 and served.
    Revalidated,
    /// The cache was not consulted: writes, `Authorization`, `no-store`, edge-made answers.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Revalidated => "REVALIDATED",
            Self::Bypass => "BYPASS",
        }
    }
}

/// What to do with a cacheable request, given the stored record for its key.
/// Every answer from the cache carries the record it answers with, so no
/// caller can hold a HIT without something to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing usable stored: fetch (collapsed with concurrent misses), then store.
    Miss,
    /// Serve the stored record as it is, with this `Age`.
    Hit {
        stored: Rc<StoredResponse>,
        age: u64,
    },
    /// Serve the stored record now with `X-Cache: STALE` and this `Age`, then
    /// refresh it from the origin in the background.
    StaleWhileRevalidate {
        stored: Rc<StoredResponse>,
        age: u64,
    },
    /// Ask the origin with these conditional headers (may be empty when the
    /// record has no validator); on 304 serve the updated record as
    /// REVALIDATED, on an error see [`stale_if_error`].
    Revalidate {
        stored: Rc<StoredResponse>,
        conditional: Headers,
    },
}

/// Decides how to answer a cacheable request at `now_ms` (Unix milliseconds).
/// A request's `no-cache` or `max-age=0` forces revalidation (RFC 9111 section
/// 5.2.1); with `max-age` or `min-fresh` a stale response is revalidated, not
/// served while refreshing (see [`CacheControl::accepts_stale`]).
pub fn lookup(
    stored: Option<Rc<StoredResponse>>,
    request_headers: &Headers,
    now_ms: u64,
) -> Lookup {
    let Some(stored) = stored else {
        return Lookup::Miss;
    };
    if !stored.vary_matches(request_headers) {
        return Lookup::Miss;
    }
    let request_cc = CacheControl::from_headers(request_headers);
    let age_ms = stored.age_ms(now_ms);
    let age = age_ms / 1000;
    let lifetime_ms = secs_to_ms(stored.freshness_lifetime);
    // RFC 9111 section 5.2.1: the client's no-cache and max-age ask for a
    // validated response; min-fresh for one that stays fresh that much longer.
    let client_wants_validation = request_cc.no_cache
        || request_cc.max_age.is_some_and(|max| age > max)
        || request_cc
            .min_fresh
            .is_some_and(|min| age_ms.saturating_add(secs_to_ms(min)) >= lifetime_ms);
    if !client_wants_validation {
        if age_ms < lifetime_ms {
            return Lookup::Hit { stored, age };
        }
        if age_ms - lifetime_ms < secs_to_ms(stored.stale_while_revalidate)
            && request_cc.accepts_stale()
        {
            return Lookup::StaleWhileRevalidate { stored, age };
        }
    }
    let conditional = stored.conditional_headers();
    Lookup::Revalidate {
        stored,
        conditional,
    }
}

/// Whether a stored response may stand in for an origin failure (every origin
/// refused, timed out or answered an [`is_origin_error_status`]) at `now_ms`
/// (RFC 5861 section 4).
pub fn stale_if_error(stored: &StoredResponse, now_ms: u64) -> bool {
    stored.age_ms(now_ms)
        < secs_to_ms(
            stored
                .freshness_lifetime
                .saturating_add(stored.stale_if_error),
        )
}

/// Whether an origin's answer counts as a failure for `stale-if-error`: the
/// four statuses RFC 5861 section 4 names. Another 5xx (501 Not Implemented,
/// 505, ...) is the origin's answer, passed on like any other. When no origin
/// answers, the edge's own 502 or 504 counts too.
pub fn is_origin_error_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// Whether `stored` is stale at `now_ms` and says `must-revalidate` or
/// `proxy-revalidate` (RFC 9111 sections 5.2.2.2 and 5.2.2.8): then an edge
/// that reaches no origin answers 504.
pub fn must_revalidate(stored: &StoredResponse, now_ms: u64) -> bool {
    let cc = CacheControl::from_headers(&stored.headers);
    (cc.must_revalidate || cc.proxy_revalidate) && !stored.is_fresh(now_ms)
}

/// The headers the client receives: hop-by-hop fields dropped (the adapter's
/// HTTP layer frames the body), `X-Cache` set, and `Age` set when the response
/// comes from the cache. Origin-supplied `X-Cache` is replaced.
pub fn client_headers(headers: &Headers, status: CacheStatus, age: Option<u64>) -> Headers {
    let age = match age {
        Some(age) => Some(decimal(age)),
        None if matches!(
            status,
            CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Revalidated
        ) =>
        {
            Some("0".to_owned())
        }
        // A response passed on keeps the Age its origin (or a cache before it) gave.
        None => None,
    };
    // One copy that leaves out what is replaced below, instead of a copy and a
    // pass per removal: this runs on every HIT.
    let replaced: &[&str] = if age.is_some() {
        &["content-length", "x-cache", "age"]
    } else {
        &["content-length", "x-cache"]
    };
    let mut out = headers.end_to_end(replaced, 3);
    out.append("x-cache", status.as_str());
    if let Some(age) = age {
        out.append("age", age);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EdgeConfig;

    fn h(fields: &[(&str, &str)]) -> Headers {
        fields.iter().copied().collect()
    }

    /// A response stored at t=1000 s with the given Cache-Control and an ETag.
    fn stored(cache_control: &str) -> StoredResponse {
        stored_at_ms(cache_control, 1_000_000)
    }

    fn stored_at_ms(cache_control: &str, at_ms: u64) -> StoredResponse {
        let config = EdgeConfig {
            default_ttl_secs: 5,
            ..EdgeConfig::default()
        };
        StoredResponse::from_origin(
            &h(&[("accept", "a")]),
            200,
            &h(&[
                ("cache-control", cache_control),
                ("etag", "\"e\""),
                ("vary", "accept"),
            ]),
            bytes::Bytes::from_static(b"x"),
            at_ms,
            at_ms,
            &config.ttl(),
        )
        .unwrap()
    }

    /// A lookup without the record it carries, for comparing outcomes.
    #[derive(Debug, PartialEq, Eq)]
    enum Shape {
        Miss,
        Hit { age: u64 },
        StaleWhileRevalidate { age: u64 },
        Revalidate { conditional: Headers },
    }

    fn shape(lookup: Lookup) -> Shape {
        match lookup {
            Lookup::Miss => Shape::Miss,
            Lookup::Hit { age, .. } => Shape::Hit { age },
            Lookup::StaleWhileRevalidate { age, .. } => Shape::StaleWhileRevalidate { age },
            Lookup::Revalidate { conditional, .. } => Shape::Revalidate { conditional },
        }
    }

    fn look(stored: &StoredResponse, request: &Headers, now_ms: u64) -> Shape {
        shape(lookup(Some(Rc::new(stored.clone())), request, now_ms))
    }

    fn revalidate() -> Shape {
        Shape::Revalidate {
            conditional: h(&[("if-none-match", "\"e\"")]),
        }
    }

    #[test]
    fn lookups_follow_freshness_and_stale_windows() {
        fn check(cache_control: &str, request: &[(&str, &str)], now: u64, expected: Shape) {
            let mut request = request.to_vec();
            if !request.iter().any(|(n, _)| *n == "accept") {
                request.push(("accept", "a"));
            }
            assert_eq!(
                look(&stored(cache_control), &h(&request), now * 1000),
                expected,
                "{cache_control} {request:?} now={now}"
            );
        }
        use Shape::*;
        check("max-age=10", &[], 1000, Hit { age: 0 });
        check("max-age=10", &[], 1009, Hit { age: 9 });
        check("max-age=10", &[], 1010, revalidate());
        check(
            "max-age=10, stale-while-revalidate=5",
            &[],
            1010,
            StaleWhileRevalidate { age: 10 },
        );
        check(
            "max-age=10, stale-while-revalidate=5",
            &[],
            1014,
            StaleWhileRevalidate { age: 14 },
        );
        check(
            "max-age=10, stale-while-revalidate=5",
            &[],
            1015,
            revalidate(),
        );
        check(
            "max-age=10, stale-while-revalidate=5, must-revalidate",
            &[],
            1010,
            revalidate(),
        );
        check("max-age=10, stale-if-error=100", &[], 1010, revalidate());
        check("no-cache", &[], 1000, revalidate());
        check("public", &[], 1004, Hit { age: 4 });
        check("public", &[], 1005, revalidate());
        check(
            "max-age=10",
            &[("cache-control", "no-cache")],
            1000,
            revalidate(),
        );
        check("max-age=10", &[("pragma", "no-cache")], 1000, revalidate());
        check(
            "max-age=10",
            &[("cache-control", "max-age=0")],
            1001,
            revalidate(),
        );
        check(
            "max-age=10",
            &[("cache-control", "max-age=5")],
            1005,
            Hit { age: 5 },
        );
        check(
            "max-age=10",
            &[("cache-control", "max-age=5")],
            1006,
            revalidate(),
        );
        check(
            "max-age=10",
            &[("cache-control", "min-fresh=4")],
            1005,
            Hit { age: 5 },
        );
        check(
            "max-age=10, stale-while-revalidate=60",
            &[("cache-control", "min-fresh=5")],
            1005,
            revalidate(),
        );
        // Without max-stale, a client's max-age or min-fresh refuses stale
        // responses (RFC 9111 section 5.2.1.1).
        check(
            "max-age=10, stale-while-revalidate=60",
            &[("cache-control", "max-age=30")],
            1015,
            revalidate(),
        );
        check(
            "max-age=10, stale-while-revalidate=60",
            &[("cache-control", "min-fresh=0")],
            1015,
            revalidate(),
        );
        check("max-age=10", &[("accept", "b")], 1000, Miss);
        check(
            "max-age=10, stale-while-revalidate=5",
            &[("accept", "b")],
            1012,
            Miss,
        );
    }

    #[test]
    fn freshness_is_counted_in_milliseconds_not_clock_ticks() {
        let a = h(&[("accept", "a")]);
        let late_in_a_second = stored_at_ms("max-age=1, stale-while-revalidate=5", 1_000_900);
        assert_eq!(
            look(&late_in_a_second, &a, 1_001_100),
            Shape::Hit { age: 0 }
        );
        assert_eq!(
            look(&late_in_a_second, &a, 1_001_899),
            Shape::Hit { age: 0 }
        );
        assert_eq!(
            look(&late_in_a_second, &a, 1_001_900),
            Shape::StaleWhileRevalidate { age: 1 }
        );
        assert_eq!(
            look(&late_in_a_second, &a, 1_006_899),
            Shape::StaleWhileRevalidate { age: 5 }
        );
        assert_eq!(look(&late_in_a_second, &a, 1_006_900), revalidate());
        let with_error_window = stored_at_ms("max-age=1, stale-if-error=2", 1_000_500);
        assert!(stale_if_error(&with_error_window, 1_003_499));
        assert!(!stale_if_error(&with_error_window, 1_003_500));
    }

    #[test]
    fn nothing_stored_is_a_miss() {
        assert_eq!(lookup(None, &h(&[]), 0), Lookup::Miss);
    }

    #[test]
    fn stale_if_error_window() {
        fn check(cache_control: &str, now: u64, expected: bool) {
            assert_eq!(
                stale_if_error(&stored(cache_control), now * 1000),
                expected,
                "{cache_control} now={now}"
            );
        }
        check("max-age=10", 1005, true);
        check("max-age=10", 1010, false);
        check("max-age=10, stale-if-error=60", 1069, true);
        check("max-age=10, stale-if-error=60", 1070, false);
        check(
            "max-age=10, stale-if-error=60, must-revalidate",
            1011,
            false,
        );
        check("no-cache, stale-if-error=60", 1001, false);
    }

    #[test]
    fn must_revalidate_applies_once_stale() {
        fn check(cache_control: &str, now: u64, expected: bool) {
            assert_eq!(
                must_revalidate(&stored(cache_control), now * 1000),
                expected,
                "{cache_control} now={now}"
            );
        }
        check("max-age=10, must-revalidate", 1009, false);
        check("max-age=10, must-revalidate", 1010, true);
        check("max-age=10, proxy-revalidate", 1010, true);
        check("max-age=10, stale-if-error=60", 1010, false);
        check("no-cache", 1000, false);
    }

    #[test]
    fn origin_errors_are_500_502_503_504() {
        for (status, expected) in [
            (200, false),
            (304, false),
            (404, false),
            (499, false),
            (500, true),
            (501, false),
            (502, true),
            (503, true),
            (504, true),
            (505, false),
            (599, false),
        ] {
            assert_eq!(is_origin_error_status(status), expected, "{status}");
        }
    }

    #[test]
    fn client_headers_say_what_happened() {
        fn check(
            input: &[(&str, &str)],
            status: CacheStatus,
            age: Option<u64>,
            expected: &[(&str, &str)],
        ) {
            assert_eq!(
                client_headers(&h(input), status, age),
                h(expected),
                "{input:?} {status:?} {age:?}"
            );
        }
        use CacheStatus::*;
        check(
            &[("content-type", "j")],
            Hit,
            Some(3),
            &[("content-type", "j"), ("x-cache", "HIT"), ("age", "3")],
        );
        check(
            &[("age", "99")],
            Hit,
            Some(3),
            &[("x-cache", "HIT"), ("age", "3")],
        );
        check(&[], Stale, Some(12), &[("x-cache", "STALE"), ("age", "12")]);
        check(
            &[],
            Revalidated,
            None,
            &[("x-cache", "REVALIDATED"), ("age", "0")],
        );
        check(
            &[("age", "4")],
            Miss,
            None,
            &[("age", "4"), ("x-cache", "MISS")],
        );
        check(&[], Miss, None, &[("x-cache", "MISS")]);
        check(
            &[("x-cache", "HIT from evil")],
            Bypass,
            None,
            &[("x-cache", "BYPASS")],
        );
        check(
            &[
                ("connection", "close"),
                ("transfer-encoding", "chunked"),
                ("content-length", "5"),
                ("keep-alive", "x"),
                ("etag", "e"),
            ],
            Miss,
            None,
            &[("etag", "e"), ("x-cache", "MISS")],
        );
        assert_eq!(Revalidated.as_str(), "REVALIDATED");
    }
}
