use super::*;

fn h(fields: &[(&str, &str)]) -> Headers {
    fields.iter().copied().collect()
}

fn config() -> crate::EdgeConfig {
    crate::EdgeConfig {
        default_ttl_secs: 5,
        max_ttl_secs: 600,
        ..crate::EdgeConfig::default()
    }
}

fn stored(
    request: &[(&str, &str)],
    response: &[(&str, &str)],
) -> Result<StoredResponse, NotStorable> {
    StoredResponse::from_origin(
        &h(request),
        200,
        &h(response),
        Bytes::from_static(b"body"),
        1_000_000,
        1_000_000,
        &config().ttl(),
    )
}

#[test]
fn records_capture_lifetimes_and_strip_connection_headers() {
    let r = stored(
        &[],
        &[
            (
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=300",
            ),
            ("connection", "close, X-Secret"),
            ("x-secret", "per-connection"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authentication-info", "x"),
            ("transfer-encoding", "chunked"),
            ("age", "4"),
            ("etag", "\"v1\""),
        ],
    )
    .unwrap();
    assert_eq!(
        (
            r.freshness_lifetime,
            r.stale_while_revalidate,
            r.stale_if_error,
            r.initial_age_ms
        ),
        (60, 30, 300, 4000)
    );
    assert_eq!(
        r.headers,
        h(&[
            (
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=300"
            ),
            ("etag", "\"v1\"")
        ])
    );
    let capped = stored(
        &[],
        &[("cache-control", "max-age=6000, stale-if-error=6000")],
    )
    .unwrap();
    assert_eq!(
        (capped.freshness_lifetime, capped.stale_if_error),
        (600, 600)
    );
    let strict = stored(
        &[],
        &[(
            "cache-control",
            "max-age=1, must-revalidate, stale-while-revalidate=9, stale-if-error=9",
        )],
    )
    .unwrap();
    assert_eq!(
        (strict.stale_while_revalidate, strict.stale_if_error),
        (0, 0)
    );
}

#[test]
fn useless_records_are_refused() {
    assert_eq!(
        stored(&[], &[("cache-control", "max-age=0")]),
        Err(NotStorable::NothingToKeep)
    );
    assert!(stored(&[], &[("cache-control", "max-age=0"), ("etag", "\"a\"")]).is_ok());
    assert!(
        stored(
            &[],
            &[
                ("cache-control", "no-cache"),
                ("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT")
            ]
        )
        .is_ok()
    );
    assert!(stored(&[], &[("cache-control", "max-age=0, stale-if-error=60")]).is_ok());
    assert_eq!(
        stored(&[], &[("cache-control", "private")]),
        Err(NotStorable::Private)
    );
}

#[test]
fn age_and_freshness_follow_the_clock() {
    let r = stored(&[], &[("cache-control", "max-age=10"), ("age", "3")]).unwrap();
    fn check(r: &StoredResponse, now_ms: u64, age: u64, fresh: bool) {
        assert_eq!(
            (r.age(now_ms), r.is_fresh(now_ms)),
            (age, fresh),
            "now {now_ms}"
        );
    }
    check(&r, 1_000_000, 3, true);
    check(&r, 1_006_000, 9, true);
    check(&r, 1_006_999, 9, true);
    check(&r, 1_007_000, 10, false);
    check(&r, 999_000, 3, true);
}

#[test]
fn vary_selects_by_request_values() {
    let r = stored(
        &[
            ("accept", "application/json"),
            ("accept-language", "en, fr"),
        ],
        &[("vary", "Accept, Accept-Language, X-Absent")],
    )
    .unwrap();
    fn check(r: &StoredResponse, request: &[(&str, &str)], expected: bool) {
        assert_eq!(r.vary_matches(&h(request)), expected, "{request:?}");
    }
    check(
        &r,
        &[
            ("accept", "application/json"),
            ("accept-language", "en, fr"),
        ],
        true,
    );
    check(
        &r,
        &[("accept", "application/json"), ("accept-language", "en,fr")],
        true,
    );
    check(
        &r,
        &[
            ("accept", "application/json"),
            ("accept-language", "en"),
            ("accept-language", "fr"),
        ],
        true,
    );
    check(
        &r,
        &[("accept", "text/html"), ("accept-language", "en, fr")],
        false,
    );
    check(&r, &[("accept-language", "en, fr")], false);
    check(
        &r,
        &[
            ("accept", "application/json"),
            ("accept-language", "en, fr"),
            ("x-absent", "1"),
        ],
        false,
    );
    let plain = stored(&[("accept", "a")], &[]).unwrap();
    check(&plain, &[("accept", "b")], true);
}

#[test]
fn revalidation_updates_headers_and_restarts_the_clock() {
    let r = stored(
        &[],
        &[
            ("cache-control", "max-age=10"),
            ("etag", "\"v1\""),
            ("content-type", "application/json"),
            ("x-old", "1"),
        ],
    )
    .unwrap();
    let fresh = r.revalidated(
        &h(&[]),
        &h(&[
            ("cache-control", "max-age=20"),
            ("etag", "\"v1\""),
            ("x-new", "2"),
            ("content-length", "0"),
            ("content-type", "text/plain"),
            ("content-encoding", "identity"),
            ("connection", "close, x-hop"),
            ("x-hop", "h"),
            ("age", "1"),
            ("proxy-authentication-info", "p"),
        ]),
        2_000_000,
        2_001_250,
        &config().ttl(),
    );
    assert_eq!(fresh.freshness_lifetime, 20);
    assert_eq!(fresh.stored_at_ms, 2_001_250);
    assert_eq!(fresh.initial_age_ms, 2250, "the 304's Age plus the delay");
    assert_eq!(fresh.body, &b"body"[..]);
    // RFC 9111 section 3.2: every field of the 304 replaces the stored one...
    assert_eq!(fresh.headers.get("content-type"), Some("text/plain"));
    assert_eq!(fresh.headers.get("content-encoding"), Some("identity"));
    // ...except Content-Length, Age and fields never stored.
    assert_eq!(fresh.headers.get("age"), None);
    assert_eq!(fresh.headers.get("x-hop"), None);
    assert_eq!(fresh.headers.get("proxy-authentication-info"), None);
    assert_eq!(fresh.headers.get("x-old"), Some("1"));
    assert_eq!(fresh.headers.get("x-new"), Some("2"));
    assert_eq!(fresh.headers.get("content-length"), None);
    assert_eq!(fresh.headers.get("connection"), None);
    assert_eq!(
        fresh.headers.get_all("cache-control").collect::<Vec<_>>(),
        vec!["max-age=20"]
    );
}

#[test]
fn conditional_headers_come_from_validators() {
    fn check(response: &[(&str, &str)], expected: &[(&str, &str)]) {
        let mut response = response.to_vec();
        response.push(("cache-control", "max-age=0, stale-if-error=9"));
        assert_eq!(
            stored(&[], &response).unwrap().conditional_headers(),
            h(expected),
            "{response:?}"
        );
    }
    check(&[], &[]);
    check(&[("etag", "\"a\"")], &[("if-none-match", "\"a\"")]);
    check(&[("last-modified", "X")], &[("if-modified-since", "X")]);
    check(
        &[("etag", "W/\"a\""), ("last-modified", "X")],
        &[("if-none-match", "W/\"a\""), ("if-modified-since", "X")],
    );
}

#[test]
fn records_round_trip_and_garbage_is_refused() {
    let r = stored(
        &[("accept", "a")],
        &[
            ("cache-control", "max-age=60"),
            ("vary", "accept, x-none"),
            ("x-unicode", "\u{e9}"),
        ],
    )
    .unwrap();
    let bytes = r.encode();
    assert_eq!(StoredResponse::decode(&bytes), Ok(r.clone()));
    let mut empty_body = r.clone();
    empty_body.body = Bytes::new();
    assert_eq!(StoredResponse::decode(&empty_body.encode()), Ok(empty_body));
    fn check(bytes: &[u8], expected: DecodeError) {
        assert_eq!(StoredResponse::decode(bytes), Err(expected), "{bytes:?}");
    }
    check(b"", DecodeError::Truncated);
    check(b"HTTP/1.1 200 OK", DecodeError::BadMagic);
    check(&bytes[..bytes.len() - 1], DecodeError::Truncated);
    check(&bytes[..20], DecodeError::Truncated);
    check(
        &[bytes.as_slice(), b"x"].concat(),
        DecodeError::TrailingBytes,
    );
}

#[test]
fn a_304_without_date_counts_expires_from_its_arrival() {
    use crate::policy::format_http_date;
    let t0 = 1_800_000_000;
    let first = StoredResponse::from_origin(
        &h(&[]),
        200,
        &h(&[
            ("date", &format_http_date(t0)),
            ("expires", &format_http_date(t0 + 60)),
            ("etag", "\"a\""),
        ]),
        Bytes::from_static(b"body"),
        t0 * 1000,
        t0 * 1000,
        &config().ttl(),
    )
    .unwrap();
    assert_eq!(first.freshness_lifetime, 60);
    // 100 s later the origin confirms it for 60 s more, without a Date.
    let at = (t0 + 100) * 1000;
    let not_modified = h(&[("etag", "\"a\""), ("expires", &format_http_date(t0 + 160))]);
    let fresh = first.revalidated(&h(&[]), &not_modified, at, at, &config().ttl());
    assert_eq!(fresh.freshness_lifetime, 60, "not 160, from the first Date");
    assert_eq!(
        fresh.headers.get("date"),
        Some(format_http_date(t0 + 100).as_str())
    );
}

#[test]
fn a_304_is_checked_again_before_its_record_is_kept() {
    let request = h(&[("accept", "a"), ("accept-language", "fr")]);
    let r = stored(
        &[("accept", "a"), ("accept-language", "fr")],
        &[
            ("cache-control", "max-age=10"),
            ("etag", "\"v1\""),
            ("vary", "accept"),
        ],
    )
    .unwrap();
    let after = |fields: &[(&str, &str)]| {
        let mut not_modified = h(&[("etag", "\"v1\"")]);
        for (name, value) in fields {
            not_modified.append(name, *value);
        }
        r.revalidated(
            &request,
            &not_modified,
            2_000_000,
            2_000_000,
            &config().ttl(),
        )
    };
    let cookie = after(&[("set-cookie", "session=alice")]);
    assert_eq!(cookie.headers.get("set-cookie"), None, "never stored");
    assert_eq!(cookie.storable(&request), Ok(()));
    let private = after(&[("cache-control", "private, max-age=60")]);
    assert_eq!(private.storable(&request), Err(NotStorable::Private));
    let no_store = after(&[("cache-control", "no-store")]);
    assert_eq!(no_store.storable(&request), Err(NotStorable::NoStore));
    let star = after(&[("vary", "*")]);
    assert_eq!(star.storable(&request), Err(NotStorable::VaryStar));
    // A new Vary selects by the fields it names now.
    let wider = after(&[("vary", "accept, accept-language")]);
    assert!(wider.vary_matches(&request));
    assert!(!wider.vary_matches(&h(&[("accept", "a"), ("accept-language", "de")])));
    assert!(r.vary_matches(&h(&[("accept", "a"), ("accept-language", "de")])));
}
