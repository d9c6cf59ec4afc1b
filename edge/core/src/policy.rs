//! RFC 9111 rules for a shared cache: may a response be stored, how long is it
//! fresh, and how old is it. Times are Unix seconds passed in by the caller.

use crate::behaviour::Ttl;
use crate::cache_control::{CacheControl, DELTA_SECONDS_MAX, parse_delta_seconds};
#[cfg(test)]
use crate::config::EdgeConfig;
use crate::headers::Headers;

/// Why a response is not stored. Adapters may log it; the client sees `X-Cache: MISS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET responses are stored (HEAD is fetched as GET, see [`crate::origin_method`]).
    Method,
    /// 206, 304, 1xx, or a status not cacheable by default without explicit freshness.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`: meant for one user's cache only.
    Private,
    /// The request carried `Authorization` and the response did not allow sharing it.
    Authorization,
    /// The response sets a cookie: it is about one client.
    SetCookie,
    /// `Vary: *`: no request can ever match it.
    VaryStar,
    /// The freshness lifetime is zero and there is no validator to revalidate with.
    NothingToKeep,
    /// `must-understand` with a status code whose caching rules this cache
    /// does not implement (RFC 9111 section 5.2.2.3).
    NotUnderstood,
}

/// Statuses a cache may store with heuristic freshness (RFC 9110 section 15.1), minus
/// 206 which this cache never stores because it does not combine ranges.
const HEURISTICALLY_CACHEABLE: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The final status codes of RFC 9110 whose caching rules this cache
/// implements: all but 206 (it does not combine ranges) and 304 (never stored,
/// it updates what is). Used for `must-understand`.
const UNDERSTOOD: &[u16] = &[
    200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 305, 307, 308, 400, 401, 402, 403, 404, 405,
    406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503,
    504, 505,
];

/// Decides whether a response may be stored by a shared cache (RFC 9111 section 3);
/// when it may, gives the response's `Cache-Control` directives, read on the way.
pub fn storability(
    request_method: &str,
    request_headers: &Headers,
    status: u16,
    response_headers: &Headers,
) -> Result<CacheControl, NotStorable> {
    if request_method != "GET" {
        return Err(NotStorable::Method);
    }
    let request_cc = CacheControl::from_headers(request_headers);
    let cc = CacheControl::from_headers(response_headers);
    if status < 200 || status == 206 || status == 304 {
        return Err(NotStorable::Status);
    }
    if cc.must_understand && !UNDERSTOOD.contains(&status) {
        return Err(NotStorable::NotUnderstood);
    }
    // A cache that understands the status ignores the response's no-store when
    // must-understand is present (RFC 9111 section 5.2.2.3).
    if request_cc.no_store || (cc.no_store && !cc.must_understand) {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if request_headers.contains("authorization")
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if response_headers.contains("set-cookie") {
        return Err(NotStorable::SetCookie);
    }
    if vary_names(response_headers).iter().any(|n| n == "*") {
        return Err(NotStorable::VaryStar);
    }
    let explicit =
        cc.s_maxage.is_some() || cc.max_age.is_some() || response_headers.contains("expires");
    if !explicit && !cc.public && !HEURISTICALLY_CACHEABLE.contains(&status) {
        return Err(NotStorable::Status);
    }
    Ok(cc)
}

/// The header names a response's `Vary` lists, lower-case.
pub fn vary_names(response_headers: &Headers) -> Vec<String> {
    response_headers
        .get_all("vary")
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// How long a response stays fresh, in seconds (RFC 9111 section 4.2.1):
/// `s-maxage`, else `max-age`, else `Expires` minus `Date`, else the configured
/// default; `no-cache` makes it 0 (store, but revalidate every time); capped at
/// the configured maximum. `cc` is the response's `Cache-Control`.
pub fn freshness_lifetime(
    response_headers: &Headers,
    cc: &CacheControl,
    response_time: u64,
    ttl: &Ttl,
) -> u64 {
    if cc.no_cache {
        return 0;
    }
    let lifetime = if let Some(s) = cc.s_maxage {
        s
    } else if let Some(m) = cc.max_age {
        m
    } else if let Some(expires) = response_headers.get("expires") {
        // An invalid Expires (e.g. "0") means already expired.
        match parse_http_date(expires) {
            Some(expires) => {
                let date = response_headers
                    .get("date")
                    .and_then(parse_http_date)
                    .unwrap_or(response_time);
                expires.saturating_sub(date)
            }
            None => 0,
        }
    } else {
        ttl.default_secs
    };
    lifetime.max(ttl.min_secs).min(ttl.max_secs)
}

/// The age a response already had when it arrived, in milliseconds (RFC 9111
/// section 4.2.3, `corrected_initial_age`), from its `Date` and `Age` and the
/// times (Unix milliseconds) the request left and the response arrived.
///
/// `Date` has a resolution of one second; it is read as the last millisecond of
/// the second it names, so truncation alone never ages a response (otherwise a
/// `max-age=1` response would arrive up to a second old, and already stale).
pub fn initial_age_ms(
    response_headers: &Headers,
    request_time_ms: u64,
    response_time_ms: u64,
) -> u64 {
    let apparent_age_ms = response_headers
        .get("date")
        .and_then(parse_http_date)
        .map_or(0, |date| {
            response_time_ms.saturating_sub(secs_to_ms(date).saturating_add(999))
        });
    let age_value_ms = match age_value(response_headers) {
        AgeValue::Absent => 0,
        AgeValue::Seconds(secs) => secs_to_ms(secs),
        // RFC 9111 section 5.1: an invalid Age makes the response stale.
        AgeValue::Invalid => secs_to_ms(DELTA_SECONDS_MAX),
    };
    let response_delay_ms = response_time_ms.saturating_sub(request_time_ms);
    let corrected_age_value_ms = age_value_ms.saturating_add(response_delay_ms);
    apparent_age_ms.max(corrected_age_value_ms)
}

/// What a response's `Age` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeValue {
    Absent,
    Seconds(u64),
    /// Not a delta-seconds (negative, fractional, with parameters, empty), or
    /// repeated with different values: the response must not look fresher
    /// than it is, so it is taken as stale.
    Invalid,
}

/// Reads `Age` (RFC 9111 section 5.1). Repeated fields or a list with equal
/// members count once; members that differ make the value invalid, since
/// taking the first (the RFC's SHOULD) would let a smaller first value make
/// the response look younger than another field says it is.
pub fn age_value(headers: &Headers) -> AgeValue {
    let mut value = None;
    for member in headers.get_all("age").flat_map(|v| v.split(',')) {
        match (parse_delta_seconds(member.trim()), value) {
            (None, _) => return AgeValue::Invalid,
            (Some(secs), Some(earlier)) if secs != earlier => return AgeValue::Invalid,
            (Some(secs), _) => value = Some(secs),
        }
    }
    value.map_or(AgeValue::Absent, AgeValue::Seconds)
}

/// Seconds to milliseconds, saturating.
pub fn secs_to_ms(secs: u64) -> u64 {
    secs.saturating_mul(1000)
}

/// Parses an HTTP-date into Unix seconds.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Formats Unix seconds as an HTTP-date.
pub fn format_http_date(unix_secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fields: &[(&str, &str)]) -> Headers {
        fields.iter().copied().collect()
    }

    const DATE_0: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
    const DATE_0_PLUS_60: &str = "Thu, 01 Jan 2026 00:01:00 GMT";
    const T0: u64 = 1_767_225_600;

    #[test]
    fn storability_follows_rfc_9111() {
        fn check(
            method: &str,
            request: &[(&str, &str)],
            status: u16,
            response: &[(&str, &str)],
            expected: Result<(), NotStorable>,
        ) {
            assert_eq!(
                storability(method, &h(request), status, &h(response)).map(|_| ()),
                expected,
                "{method} {request:?} {status} {response:?}"
            );
        }
        use NotStorable::*;
        check("GET", &[], 200, &[], Ok(()));
        check("GET", &[], 200, &[("cache-control", "max-age=60")], Ok(()));
        check("HEAD", &[], 200, &[], Err(Method));
        check(
            "POST",
            &[],
            200,
            &[("cache-control", "max-age=60")],
            Err(Method),
        );
        check(
            "GET",
            &[],
            206,
            &[("cache-control", "max-age=60")],
            Err(Status),
        );
        check("GET", &[], 304, &[], Err(Status));
        check("GET", &[], 101, &[], Err(Status));
        check("GET", &[], 404, &[], Ok(()));
        check("GET", &[], 410, &[], Ok(()));
        check("GET", &[], 301, &[], Ok(()));
        check("GET", &[], 204, &[], Ok(()));
        check("GET", &[], 302, &[], Err(Status));
        check("GET", &[], 302, &[("cache-control", "max-age=5")], Ok(()));
        check("GET", &[], 307, &[("expires", DATE_0)], Ok(()));
        check("GET", &[], 500, &[], Err(Status));
        check("GET", &[], 503, &[], Err(Status));
        check("GET", &[], 400, &[], Err(Status));
        check("GET", &[], 400, &[("cache-control", "public")], Ok(()));
        check(
            "GET",
            &[],
            200,
            &[("cache-control", "no-store")],
            Err(NoStore),
        );
        check(
            "GET",
            &[],
            200,
            &[("cache-control", "max-age=60, no-store")],
            Err(NoStore),
        );
        check(
            "GET",
            &[("cache-control", "no-store")],
            200,
            &[],
            Err(NoStore),
        );
        check(
            "GET",
            &[],
            200,
            &[("cache-control", "private")],
            Err(Private),
        );
        check(
            "GET",
            &[],
            200,
            &[("cache-control", "private, max-age=60")],
            Err(Private),
        );
        check("GET", &[], 200, &[("cache-control", "no-cache")], Ok(()));
        check(
            "GET",
            &[("authorization", "Bearer x")],
            200,
            &[],
            Err(Authorization),
        );
        check(
            "GET",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "max-age=60")],
            Err(Authorization),
        );
        check(
            "GET",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "public, max-age=60")],
            Ok(()),
        );
        check(
            "GET",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "s-maxage=60")],
            Ok(()),
        );
        check(
            "GET",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "must-revalidate")],
            Ok(()),
        );
        check("GET", &[], 200, &[("set-cookie", "s=1")], Err(SetCookie));
        check(
            "GET",
            &[],
            200,
            &[
                ("set-cookie", "s=1"),
                ("cache-control", "public, max-age=9"),
            ],
            Err(SetCookie),
        );
        check("GET", &[], 200, &[("vary", "*")], Err(VaryStar));
        check("GET", &[], 200, &[("vary", "Accept, *")], Err(VaryStar));
        check("GET", &[], 200, &[("vary", "Accept")], Ok(()));
        let understand = [("cache-control", "must-understand, no-store, max-age=60")];
        check("GET", &[], 200, &understand, Ok(()));
        check("GET", &[], 299, &understand, Err(NotUnderstood));
        check("GET", &[], 206, &understand, Err(Status));
        check(
            "GET",
            &[],
            299,
            &[("cache-control", "must-understand, max-age=60")],
            Err(NotUnderstood),
        );
        check("GET", &[], 299, &[("cache-control", "max-age=60")], Ok(()));
        check(
            "GET",
            &[("cache-control", "no-store")],
            200,
            &understand,
            Err(NoStore),
        );
    }

    /// [`freshness_lifetime`] with the response's own `Cache-Control`.
    fn lifetime(response: &Headers, response_time: u64, ttl: &Ttl) -> u64 {
        let cc = CacheControl::from_headers(response);
        freshness_lifetime(response, &cc, response_time, ttl)
    }

    #[test]
    fn freshness_prefers_s_maxage_then_max_age_then_expires() {
        fn check(response: &[(&str, &str)], expected: u64) {
            let config = EdgeConfig {
                default_ttl_secs: 7,
                max_ttl_secs: 1000,
                ..EdgeConfig::default()
            };
            assert_eq!(
                lifetime(&h(response), T0, &config.ttl()),
                expected,
                "{response:?}"
            );
        }
        check(&[], 7);
        check(&[("cache-control", "max-age=60")], 60);
        check(&[("cache-control", "max-age=60, s-maxage=30")], 30);
        check(&[("cache-control", "s-maxage=0, max-age=60")], 0);
        check(&[("cache-control", "max-age=0")], 0);
        check(&[("cache-control", "max-age=5000")], 1000);
        check(&[("cache-control", "max-age=oops")], 0);
        check(&[("cache-control", "no-cache, max-age=60")], 0);
        check(&[("cache-control", "public")], 7);
        check(&[("expires", DATE_0_PLUS_60), ("date", DATE_0)], 60);
        check(&[("expires", DATE_0), ("date", DATE_0_PLUS_60)], 0);
        check(&[("expires", DATE_0_PLUS_60)], 60);
        check(&[("expires", "0")], 0);
        check(
            &[
                ("expires", DATE_0_PLUS_60),
                ("date", DATE_0),
                ("cache-control", "max-age=5"),
            ],
            5,
        );
        check(
            &[
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
                ("date", DATE_0),
            ],
            1000,
        );
    }

    #[test]
    fn expires_counts_from_response_time_without_date() {
        let config = EdgeConfig::default();
        let response = h(&[("expires", DATE_0_PLUS_60)]);
        assert_eq!(lifetime(&response, T0, &config.ttl()), 60);
        let floor = Ttl {
            min_secs: 30,
            default_secs: 40,
            max_secs: 50,
        };
        assert_eq!(
            lifetime(&h(&[("cache-control", "max-age=1")]), T0, &floor),
            30
        );
        assert_eq!(
            lifetime(&h(&[("cache-control", "max-age=99")]), T0, &floor),
            50
        );
        assert_eq!(lifetime(&h(&[]), T0, &floor), 40);
        assert_eq!(
            lifetime(&h(&[("cache-control", "no-cache")]), T0, &floor),
            0
        );
    }

    #[test]
    fn initial_age_is_corrected() {
        fn check(response: &[(&str, &str)], request_ms: u64, response_ms: u64, expected_ms: u64) {
            assert_eq!(
                initial_age_ms(&h(response), request_ms, response_ms),
                expected_ms,
                "{response:?} {request_ms} {response_ms}"
            );
        }
        let t0 = secs_to_ms(T0);
        check(&[], t0, t0, 0);
        check(&[], t0, t0 + 37, 37);
        check(&[("date", DATE_0)], t0, t0, 0);
        check(&[("date", DATE_0)], t0 + 998, t0 + 999, 1);
        check(&[("date", DATE_0)], t0 + 10_000, t0 + 10_000, 9_001);
        check(&[("date", DATE_0_PLUS_60)], t0, t0, 0);
        check(&[("age", "30")], t0, t0, 30_000);
        check(&[("age", "30")], t0, t0 + 2_000, 32_000);
        check(
            &[("age", "30"), ("date", DATE_0)],
            t0 + 40_000,
            t0 + 40_000,
            39_001,
        );
        check(
            &[("age", "50"), ("date", DATE_0)],
            t0 + 40_000,
            t0 + 40_000,
            50_000,
        );
        check(
            &[("age", "5"), ("date", DATE_0)],
            t0 + 40_000,
            t0 + 40_000,
            39_001,
        );
        let stale = secs_to_ms(DELTA_SECONDS_MAX);
        for invalid in ["x", "-5", "1.5", "5;q=1", "", "5 5", "0x10"] {
            check(&[("age", invalid)], t0, t0, stale);
        }
        check(&[("age", "5"), ("age", "10")], t0, t0, stale);
        check(&[("age", "10, 5")], t0, t0, stale);
        check(&[("age", "7"), ("age", "7")], t0, t0, 7_000);
        check(&[("age", " 7 ")], t0, t0, 7_000);
        check(&[("age", "99999999999999999999999")], t0, t0, stale);
        check(&[("age", "2147483647")], t0, t0, 2_147_483_647_000);
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(parse_http_date(DATE_0), Some(T0));
        assert_eq!(format_http_date(T0), DATE_0);
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn vary_names_are_listed() {
        assert_eq!(
            vary_names(&h(&[
                ("vary", "Accept, Accept-Language"),
                ("Vary", "origin")
            ])),
            vec!["accept", "accept-language", "origin"]
        );
        assert!(vary_names(&h(&[])).is_empty());
    }
}
