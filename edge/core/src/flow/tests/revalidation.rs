//! Revalidation and stale answers: the RFC 9111 and RFC 5861 rules for what
//! a 304 may change, when a stored response may stand in, and what goes to
//! the origin.

use super::rig::*;
use crate::EdgeConfig;
use crate::flow::AttemptError;

#[test]
fn a_304_with_set_cookie_reaches_only_the_client_that_asked() {
    let rig = Rig::new(1, |_, n| match n {
        0 => ok(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "v1",
        ),
        _ => ok(
            304,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("set-cookie", "session=alice"),
            ],
            "",
        ),
    });
    rig.get("/api/songs/1");
    rig.advance(2_000);
    let alice = rig.get("/api/songs/1");
    assert_eq!(summary(&alice), (200, "REVALIDATED", "v1"));
    assert_eq!(alice.headers.get("set-cookie"), Some("session=alice"));
    let bob = rig.get("/api/songs/1");
    assert_eq!(summary(&bob), (200, "HIT", "v1"));
    assert_eq!(bob.headers.get("set-cookie"), None, "never stored");
}

#[test]
fn a_304_that_makes_the_response_unshareable_drops_the_stored_one() {
    for cache_control in ["private, max-age=60", "no-store"] {
        let rig = Rig::new(1, move |_, n| match n {
            0 => ok(
                200,
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                "v1",
            ),
            1 => ok(
                304,
                &[("cache-control", cache_control), ("etag", "\"v1\"")],
                "",
            ),
            _ => ok(200, &[("cache-control", cache_control)], "v1 again"),
        });
        rig.get("/api/songs/1");
        rig.advance(2_000);
        let asked = rig.get("/api/songs/1");
        assert_eq!(
            summary(&asked),
            (200, "REVALIDATED", "v1"),
            "{cache_control}"
        );
        assert_eq!(asked.headers.get("cache-control"), Some(cache_control));
        let log = rig.store_log();
        assert!(log.last().unwrap().starts_with("delete "), "{log:?}");
        assert_eq!(
            summary(&rig.get("/api/songs/1")),
            (200, "MISS", "v1 again"),
            "{cache_control}: the next client is not served the stored copy"
        );
    }
}

#[test]
fn stale_if_error_stands_in_only_for_500_502_503_504() {
    let rig = Rig::new(1, |_, n| match n {
        0 => ok(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "v1",
        ),
        1 => ok(501, &[("cache-control", "no-store")], "not implemented"),
        2 => ok(505, &[("cache-control", "no-store")], "version"),
        _ => ok(500, &[], "broken"),
    });
    rig.get("/api/songs/1");
    rig.advance(2_000);
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (501, "MISS", "not implemented")
    );
    assert_eq!(summary(&rig.get("/api/songs/1")), (505, "MISS", "version"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "STALE", "v1"));
}

#[test]
fn revalidation_sends_only_what_the_behaviour_forwards() {
    let vars = [
        ("origins", "http://o0"),
        ("behaviours", "/api/* headers=x-tenant"),
    ];
    let config = EdgeConfig::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let rig = Rig::with_config(config, |_, n| {
        let headers = [
            ("cache-control", "max-age=1"),
            ("etag", "\"e\""),
            ("vary", "x-tenant, cookie, x-forwarded-host"),
        ];
        ok(200, &headers, &format!("v{n}"))
    });
    let client = [
        ("x-tenant", "a"),
        ("cookie", "session=alice"),
        ("x-forwarded-host", "evil.example"),
    ];
    rig.send("GET", "/api/songs/1", &client, "");
    rig.advance(2_000);
    rig.send("GET", "/api/songs/1", &client, "");
    let seen = rig.seen();
    assert_eq!(seen[1].headers.get("if-none-match"), Some("\"e\""));
    for (request, which) in [(&seen[0], "the miss"), (&seen[1], "the revalidation")] {
        assert_eq!(request.headers.get("x-tenant"), Some("a"), "{which}");
        assert_eq!(request.headers.get("cookie"), None, "{which}: cookies=none");
        assert_eq!(request.headers.get("x-forwarded-host"), None, "{which}");
    }
}

#[test]
fn a_client_max_age_or_min_fresh_is_not_answered_stale() {
    let rig = Rig::new(1, |_, n| {
        let cc = "max-age=10, stale-while-revalidate=60, stale-if-error=300";
        match n {
            0 => ok(200, &[("cache-control", cc), ("etag", "\"v0\"")], "v0"),
            1 => ok(200, &[("cache-control", cc), ("etag", "\"v1\"")], "v1"),
            _ => ok(503, &[], "down"),
        }
    });
    rig.get("/api/songs/1");
    rig.advance(15_000);
    let max_age = [("cache-control", "max-age=30")];
    assert_eq!(
        summary(&rig.send("GET", "/api/songs/1", &max_age, "")),
        (200, "MISS", "v1"),
        "validated, not served while refreshing"
    );
    rig.advance(15_000);
    let min_fresh = [("cache-control", "min-fresh=1")];
    assert_eq!(
        summary(&rig.send("GET", "/api/songs/1", &min_fresh, "")),
        (503, "MISS", "down"),
        "stale-if-error does not stand in either"
    );
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (200, "STALE", "v1"),
        "a client without them takes it"
    );
}

#[test]
fn only_if_cached_is_answered_with_504_where_the_cache_is_bypassed() {
    let rig = Rig::new(1, |_, _| ok(200, &[("cache-control", "max-age=10")], "v"));
    let bypassed: [&[(&str, &str)]; 2] = [
        &[("cache-control", "only-if-cached, no-store")],
        &[
            ("cache-control", "only-if-cached"),
            ("authorization", "Bearer t"),
        ],
    ];
    for headers in bypassed {
        let refused = rig.send("GET", "/api/songs/1", headers, "");
        assert_eq!(
            (refused.status, x_cache(&refused)),
            (504, "BYPASS"),
            "{headers:?}"
        );
    }
    assert!(rig.seen().is_empty(), "no origin was asked");
    let storeless = Rig::new(1, |_, _| ok(200, &[], "v")).without_store();
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(storeless.send("GET", "/api/songs/1", &only, "").status, 504);
    assert!(storeless.seen().is_empty());
}

#[test]
fn must_revalidate_without_an_origin_is_answered_with_504() {
    let rig = Rig::new(1, |_, n| match n {
        0 => ok(
            200,
            &[
                ("cache-control", "max-age=1, must-revalidate"),
                ("etag", "\"e\""),
            ],
            "v1",
        ),
        1 => ok(503, &[("retry-after", "1")], "down"),
        _ => err(AttemptError::NotSent("refused".into())),
    });
    rig.get("/api/songs/1");
    rig.advance(2_000);
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (503, "MISS", "down"),
        "an origin's own answer is passed on"
    );
    let refused = rig.get("/api/songs/1");
    assert_eq!((refused.status, x_cache(&refused)), (504, "BYPASS"));
}
