//! The flow driven by scripted I/O (see [`rig`]): no platform, no runtime.
//! Writes and invalidation are in [`writes`], revalidation's RFC rules in
//! [`revalidation`].

mod revalidation;
mod rig;
mod writes;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures::executor::{LocalPool, block_on};
use futures::task::LocalSpawnExt;

use super::*;
use rig::*;
#[test]
fn a_miss_is_stored_and_then_served_as_a_hit_with_its_age() {
    let rig = Rig::new(1, |_, _| ok(200, &[("cache-control", "max-age=60")], "v1"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v1"));
    rig.advance(7_500);
    let hit = rig.get("/api/songs/1");
    assert_eq!(summary(&hit), (200, "HIT", "v1"));
    assert_eq!(hit.headers.get("age"), Some("7"));
    assert_eq!(hit.headers.get("content-length"), Some("2"));
    assert_eq!(rig.seen().len(), 1);
    let head_request = rig.send("HEAD", "/api/songs/1", &[], "");
    assert_eq!(summary(&head_request), (200, "HIT", ""));
    assert_eq!(head_request.headers.get("content-length"), None);
}

#[test]
fn health_and_refusals_never_reach_an_origin() {
    let rig = Rig::new(1, |_, _| ok(200, &[], "x"));
    assert_eq!(summary(&rig.get("/healthz")).0, 200);
    assert_eq!(rig.get("/nope").status, 404);
    let trace = rig.send("TRACE", "/api/x", &[], "");
    assert_eq!(trace.status, 405);
    assert_eq!(
        trace.headers.get("allow"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        "a 405 names the methods that work"
    );
    let too_big = block_on(handle(
        &rig.edge,
        &rig.io,
        head("POST", "/api/songs/1/comments", &[]),
        std::future::ready(Err(Rejection::body_too_large(3))),
    ));
    assert_eq!((too_big.status, x_cache(&too_big)), (413, "BYPASS"));
    let truncated = block_on(handle(
        &rig.edge,
        &rig.io,
        head("POST", "/api/songs/1/comments", &[]),
        std::future::ready(Err(Rejection::bad_body("connection closed early"))),
    ));
    assert_eq!((truncated.status, x_cache(&truncated)), (400, "BYPASS"));
    assert!(
        String::from_utf8_lossy(&truncated.body).contains(r#""code":"bad_body""#),
        "{truncated:?}"
    );
    assert!(rig.seen().is_empty());
}

#[test]
fn hits_use_the_instance_copy_and_invalidation_elsewhere_still_holds() {
    let rig = Rig::new(1, |_, n| {
        ok(200, &[("cache-control", "max-age=60")], &format!("v{n}"))
    });
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v0"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "v0"));
    let reads = rig.record_reads();
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "v0"));
    assert_eq!(
        rig.record_reads(),
        reads,
        "the instance's copy served the HIT"
    );
    rig.bump_generation("gen:song:1");
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (200, "MISS", "v1"),
        "another instance's invalidation moved the key"
    );
    // Outside a song, the target's own generation does the same.
    assert_eq!(summary(&rig.get("/api/users/1")), (200, "MISS", "v2"));
    assert_eq!(summary(&rig.get("/api/users/1")), (200, "HIT", "v2"));
    let reads = rig.record_reads();
    assert_eq!(summary(&rig.get("/api/users/1")), (200, "HIT", "v2"));
    assert_eq!(rig.record_reads(), reads, "the instance's copy served it");
    rig.bump_generation("gen:uri:edge.test:/api/users/1");
    assert_eq!(summary(&rig.get("/api/users/1")), (200, "MISS", "v3"));
    // A client asking for validation is never answered from the copy.
    rig.advance(1);
    let reads = rig.record_reads();
    let validated = rig.send("GET", "/api/songs/1", &[("cache-control", "no-cache")], "");
    assert_eq!(summary(&validated), (200, "MISS", "v4"));
    assert_eq!(rig.record_reads(), reads + 1);
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (200, "HIT", "v4"),
        "the newest record"
    );
}

#[test]
fn without_a_store_reads_are_forwarded_and_nothing_is_kept() {
    let rig = Rig::new(1, |_, _| ok(200, &[("cache-control", "max-age=60")], "v")).without_store();
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "BYPASS", "v"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "BYPASS", "v"));
    assert_eq!(rig.seen().len(), 2);
}

#[test]
fn stale_responses_are_revalidated_with_validators_and_vary_headers() {
    let rig = Rig::new(1, |seen, n| match n {
        0 => ok(
            200,
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("vary", "accept-language"),
            ],
            "v1",
        ),
        _ => {
            assert_eq!(seen.headers.get("if-none-match"), Some("\"v1\""));
            assert_eq!(seen.headers.get("accept-language"), Some("fr"));
            ok(
                304,
                &[("cache-control", "max-age=30"), ("etag", "\"v1\"")],
                "",
            )
        }
    });
    let fr = [("accept-language", "fr")];
    assert_eq!(rig.send("GET", "/api/songs/1", &fr, "").status, 200);
    rig.advance(2_000);
    let revalidated = rig.send("GET", "/api/songs/1", &fr, "");
    assert_eq!(summary(&revalidated), (200, "REVALIDATED", "v1"));
    rig.advance(20_000);
    assert_eq!(
        summary(&rig.send("GET", "/api/songs/1", &fr, "")),
        (200, "HIT", "v1")
    );
    assert_eq!(rig.seen().len(), 2);
}

#[test]
fn a_304_for_another_representation_is_not_used_and_the_edge_asks_again() {
    let rig = Rig::new(1, |seen, n| match n {
        0 => ok(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "v1",
        ),
        1 => ok(304, &[("etag", "\"v2\"")], ""),
        _ => {
            assert_eq!(
                seen.headers.get("if-none-match"),
                None,
                "asked without conditions"
            );
            ok(
                200,
                &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
                "v2",
            )
        }
    });
    rig.get("/api/songs/1");
    rig.advance(2_000);
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v2"));
    assert_eq!(rig.seen().len(), 3);
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "v2"));
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let rig = Rig::new(1, |_, n| {
        let cc = [
            ("cache-control", "max-age=1, stale-while-revalidate=30"),
            ("etag", "\"e\""),
        ];
        ok(200, &cc, if n == 0 { "old" } else { "new" })
    });
    rig.get("/api/songs/1");
    rig.advance(1_500);
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "STALE", "old"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "STALE", "old"));
    assert_eq!(rig.run_background(), 1, "one refresh per key at a time");
    assert_eq!(rig.seen()[1].headers.get("if-none-match"), Some("\"e\""));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "new"));
}

#[test]
fn stale_if_error_stands_in_for_failing_origins_within_its_window() {
    let rig = Rig::new(1, |_, n| match n {
        0 => ok(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "v1",
        ),
        1 => ok(503, &[("retry-after", "1")], "down"),
        _ => err(AttemptError::NotSent("refused".into())),
    });
    rig.get("/api/songs/1");
    rig.advance(2_000);
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "STALE", "v1"));
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "STALE", "v1"));
    rig.advance(60_000);
    let failed = rig.get("/api/songs/1");
    assert_eq!((failed.status, x_cache(&failed)), (502, "BYPASS"));
}

#[test]
fn failover_passes_the_last_origin_answer_on_when_time_runs_out() {
    // The first origin answers 503 slowly; the time left runs out while the
    // second is tried: the client gets the 503 the origin gave, not an
    // edge-made 504.
    let rig = Rig::new(2, |seen, _| {
        if seen.url.starts_with("http://o0") {
            ok(503, &[("retry-after", "2")], "busy").taking(850)
        } else {
            ok(200, &[], "too late").taking(100)
        }
    });
    let mut config = rig.edge.config.clone();
    config.total_timeout_ms = 900;
    let edge = Edge::new(config);
    let answer = block_on(handle(
        &edge,
        &rig.io,
        head("GET", "/api/songs/1", &[]),
        std::future::ready(Ok(Bytes::new())),
    ));
    assert_eq!(summary(&answer), (503, "MISS", "busy"));
    assert_eq!(answer.headers.get("retry-after"), Some("2"));
    assert_eq!(rig.seen().len(), 2);
}

/// An answer whose body passes `max_origin_body_bytes` is a 502, but the origin
/// is up and answered: another would answer the same, so the read is not sent
/// there, and the origin stays first in the order however often it happens.
/// Only a 502-504 status fails over, as it would with a short body.
#[test]
fn an_answer_too_long_to_read_is_a_502_neither_retried_nor_held_against_its_origin() {
    let rig = Rig::new(2, |seen, _| {
        if seen.url.starts_with("http://o0") {
            err(AttemptError::TooLarge { status: 200 })
        } else {
            ok(200, &[("cache-control", "max-age=5")], "ok")
        }
    });
    for _ in 0..5 {
        let answer = rig.get("/api/songs/1");
        assert_eq!((answer.status, x_cache(&answer)), (502, "BYPASS"));
        let body = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(body.contains("max_origin_body_bytes"), "{body}");
    }
    let seen = rig.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|seen| seen.url.starts_with("http://o0")));
    let busy = Rig::new(2, |seen, _| {
        if seen.url.starts_with("http://o0") {
            err(AttemptError::TooLarge { status: 503 })
        } else {
            ok(200, &[("cache-control", "max-age=5")], "ok")
        }
    });
    assert_eq!(summary(&busy.get("/api/songs/1")), (200, "MISS", "ok"));
    // The latest answer is what the client hears of: not an earlier 503, and
    // not a 504 for a later attempt's time running out.
    for (first, second) in [
        (
            ok(503, &[], "busy"),
            err(AttemptError::TooLarge { status: 200 }),
        ),
        (
            err(AttemptError::TooLarge { status: 503 }),
            ok(200, &[], "slow").taking(5_000),
        ),
    ] {
        let rig = Rig::new(2, move |seen, _| {
            if seen.url.starts_with("http://o0") {
                first.clone()
            } else {
                second.clone()
            }
        });
        let answer = rig.get("/api/songs/1");
        let body = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, 502, "{body}");
        assert!(body.contains("max_origin_body_bytes"), "{body}");
        assert_eq!(rig.seen().len(), 2);
    }
}

#[test]
fn failover_tries_each_origin_and_the_edge_answers_only_when_none_did() {
    let timeouts = Rig::new(3, |_, _| ok(200, &[], "slow").taking(5_000));
    let answer = timeouts.get("/api/songs/1");
    assert_eq!((answer.status, x_cache(&answer)), (504, "BYPASS"));
    assert_eq!(timeouts.seen().len(), 3, "1000 + 1000 + the 500 left");
    let refused = Rig::new(2, |_, _| err(AttemptError::NotSent("refused".into())));
    assert_eq!(refused.get("/api/songs/1").status, 502);
    assert_eq!(refused.seen().len(), 2);
    let second = Rig::new(2, |seen, _| {
        if seen.url.starts_with("http://o0") {
            ok(502, &[], "bad gateway")
        } else {
            ok(200, &[("cache-control", "max-age=5")], "ok")
        }
    });
    assert_eq!(summary(&second.get("/api/songs/1")), (200, "MISS", "ok"));
}

#[test]
fn concurrent_misses_are_collapsed_where_the_platform_can() {
    fn run(rig: &Rig, clients: usize) -> Vec<(u16, String)> {
        let mut pool = LocalPool::new();
        let answers = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..clients {
            let (edge, io, answers) = (rig.edge.clone(), rig.io.clone(), answers.clone());
            pool.spawner()
                .spawn_local(async move {
                    let answer = handle(
                        &edge,
                        &io,
                        head("GET", "/api/songs/1", &[]),
                        std::future::ready(Ok(Bytes::new())),
                    )
                    .await;
                    answers
                        .borrow_mut()
                        .push((answer.status, x_cache(&answer).to_owned()));
                })
                .unwrap();
        }
        pool.run();
        answers.take()
    }
    let answer = |_: &Seen, _| ok(200, &[("cache-control", "max-age=60")], "v").yielding(5);
    let collapsing = Rig::new(1, answer);
    let answers = run(&collapsing, 4);
    assert_eq!(answers, vec![(200, "MISS".to_owned()); 4]);
    assert_eq!(
        collapsing.seen().len(),
        1,
        "one origin request for four misses"
    );
    assert!(collapsing.edge.in_flight.is_empty());
    let each_alone = Rig::new(1, answer).without_collapsing();
    assert_eq!(run(&each_alone, 4).len(), 4);
    assert_eq!(each_alone.seen().len(), 4);
    let unshareable = Rig::new(1, |_, _| {
        ok(200, &[("cache-control", "private")], "p").yielding(5)
    });
    run(&unshareable, 3);
    assert_eq!(
        unshareable.seen().len(),
        3,
        "a private answer is fetched by each"
    );
    // RFC 9111 section 4: a stored response that must be validated first
    // answers no other request as it is.
    let must_validate = Rig::new(1, |_, n| {
        ok(
            200,
            &[
                ("cache-control", "no-cache"),
                ("etag", &format!("\"v{n}\"")),
            ],
            "n",
        )
        .yielding(5)
    });
    run(&must_validate, 3);
    assert_eq!(
        must_validate.seen().len(),
        3,
        "a no-cache answer is fetched by each"
    );
}

#[test]
fn clients_holding_the_current_representation_get_304() {
    let rig = Rig::new(1, |_, _| {
        ok(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("content-type", "t"),
            ],
            "body",
        )
    });
    let first = rig.send("GET", "/api/songs/1", &[("if-none-match", "\"v1\"")], "");
    assert_eq!(summary(&first), (304, "MISS", ""));
    let hit = rig.send(
        "GET",
        "/api/songs/1",
        &[("if-none-match", "W/\"v0\", W/\"v1\"")],
        "",
    );
    assert_eq!(summary(&hit), (304, "HIT", ""));
    assert_eq!(hit.headers.get("etag"), Some("\"v1\""));
    assert_eq!(hit.headers.get("content-type"), None);
    assert_eq!(hit.headers.get("content-length"), None);
    let other = rig.send("GET", "/api/songs/1", &[("if-none-match", "\"v0\"")], "");
    assert_eq!(summary(&other), (200, "HIT", "body"));
    assert_eq!(rig.seen().len(), 1);
    assert!(
        rig.seen()[0].headers.get("if-none-match").is_none(),
        "not forwarded"
    );
}

/// `If-Match` and `If-Unmodified-Since` are the origin's to evaluate (RFC 9111
/// section 4.3.2): a read carrying one goes there with it, though the cache
/// holds the target, and its answer (a 412 here) is passed on, not stored.
#[test]
fn preconditions_only_an_origin_evaluates_are_sent_to_it() {
    let rig = Rig::new(1, |seen, _| {
        if seen.headers.get("if-match").is_some()
            || seen.headers.get("if-unmodified-since").is_some()
        {
            ok(412, &[], "precondition failed")
        } else {
            ok(
                200,
                &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
                "v2",
            )
        }
    });
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v2"));
    for (name, value) in [
        ("if-match", "\"v1\""),
        ("if-unmodified-since", "Sun, 06 Dec 2026 00:00:00 GMT"),
    ] {
        let answer = rig.send("GET", "/api/songs/1", &[(name, value)], "");
        assert_eq!(summary(&answer), (412, "BYPASS", "precondition failed"));
        let sent = rig.seen().pop().expect("sent to the origin");
        assert_eq!(sent.headers.get(name), Some(value));
    }
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "v2"));
    assert_eq!(rig.seen().len(), 3);
    // The origin evaluates them all, in their order (RFC 9110 section 13.2.2).
    let both = [("if-match", "\"v2\""), ("if-none-match", "\"v2\"")];
    rig.send("GET", "/api/songs/1", &both, "");
    let sent = rig.seen().pop().expect("sent to the origin");
    assert_eq!(sent.headers.get("if-none-match"), Some("\"v2\""));
}

/// An edge that does not cache a read (here `cache=off`) forwards the client's
/// conditionals (RFC 9110 section 13.2.1): the origin's 304 reaches the client.
#[test]
fn a_read_that_bypasses_the_cache_takes_its_conditionals_to_the_origin() {
    let config = EdgeConfig {
        origins: vec!["http://o0".into()],
        cache: false,
        ..EdgeConfig::default()
    };
    let rig = Rig::with_config(config, |seen, _| match seen.headers.get("if-none-match") {
        Some("\"v1\"") => ok(304, &[("etag", "\"v1\"")], ""),
        _ => ok(200, &[("etag", "\"v1\"")], "v1"),
    });
    let answer = rig.send("GET", "/api/songs/1", &[("if-none-match", "\"v1\"")], "");
    assert_eq!(summary(&answer), (304, "BYPASS", ""));
    let answer = rig.send("GET", "/api/songs/1", &[("if-none-match", "\"v0\"")], "");
    assert_eq!(summary(&answer), (200, "BYPASS", "v1"));
}

#[test]
fn behaviours_route_to_their_group_and_key_what_they_forward() {
    let vars = [
        ("origins", "http://o0"),
        ("origin_groups", "static=http://s0"),
        (
            "behaviours",
            "/static/* origin=static methods=GET,HEAD ttl=30,60,600 query=v headers=none; \
             /api/* headers=accept",
        ),
    ];
    let config = EdgeConfig::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let rig = Rig::with_config(config, |seen, _| {
        if seen.url.starts_with("http://s0") {
            ok(200, &[("cache-control", "max-age=1")], "file")
        } else {
            let accept = seen.headers.get("accept").unwrap_or("none").to_owned();
            ok(200, &[("cache-control", "max-age=60")], &accept)
        }
    });
    assert_eq!(
        summary(&rig.get("/static/a.js?v=1&utm=x")),
        (200, "MISS", "file")
    );
    assert_eq!(rig.seen()[0].url, "http://s0/static/a.js?v=1");
    rig.advance(20_000);
    assert_eq!(
        summary(&rig.get("/static/a.js?utm=y&v=1")),
        (200, "HIT", "file"),
        "the minimum TTL of 30 s outlasts max-age=1, and utm is not keyed"
    );
    let refused = rig.send("POST", "/static/a.js", &[], "");
    assert_eq!(refused.status, 405);
    assert_eq!(refused.headers.get("allow"), Some("GET, HEAD"));
    assert_eq!(rig.get("/elsewhere").status, 404);
    let a = [("accept", "a")];
    let b = [("accept", "b")];
    assert_eq!(
        summary(&rig.send("GET", "/api/x", &a, "")),
        (200, "MISS", "a")
    );
    assert_eq!(
        summary(&rig.send("GET", "/api/x", &b, "")),
        (200, "MISS", "b")
    );
    assert_eq!(
        summary(&rig.send("GET", "/api/x", &a, "")),
        (200, "HIT", "a"),
        "a forwarded header keys the cache: b did not replace a"
    );
    assert_eq!(rig.seen().len(), 3);
}

#[test]
fn only_if_cached_is_answered_from_the_cache_or_with_504() {
    let rig = Rig::new(1, |_, _| ok(200, &[("cache-control", "max-age=10")], "v"));
    let only = [("cache-control", "only-if-cached")];
    let refused = rig.send("GET", "/api/songs/1", &only, "");
    assert_eq!((refused.status, x_cache(&refused)), (504, "BYPASS"));
    assert!(rig.seen().is_empty(), "no origin was asked");
    rig.get("/api/songs/1");
    assert_eq!(
        summary(&rig.send("GET", "/api/songs/1", &only, "")),
        (200, "HIT", "v")
    );
    rig.advance(11_000);
    assert_eq!(
        rig.send("GET", "/api/songs/1", &only, "").status,
        504,
        "stale: not served"
    );
    assert_eq!(rig.seen().len(), 1);
}
