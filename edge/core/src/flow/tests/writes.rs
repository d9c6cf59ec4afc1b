//! Writes: failover, and what they invalidate (RFC 9111 section 4.4).

use bytes::Bytes;

use super::rig::*;
use crate::flow::AttemptError;

#[test]
fn a_write_fails_over_only_when_it_was_never_sent() {
    fn rig(first: AttemptError) -> Rig {
        Rig::new(2, move |seen, _| {
            if seen.url.starts_with("http://o0") {
                err(first.clone())
            } else {
                ok(201, &[], "created")
            }
        })
    }
    let never_sent = rig(AttemptError::NotSent("connection refused".into()));
    let answer = never_sent.send("POST", "/api/songs/1/comments", &[], "{}");
    assert_eq!(summary(&answer), (201, "BYPASS", "created"));
    assert_eq!(never_sent.seen()[1].body, Bytes::from_static(b"{}"));
    let broken = rig(AttemptError::Broken("reset after sending".into()));
    assert_eq!(
        broken
            .send("POST", "/api/songs/1/comments", &[], "{}")
            .status,
        502
    );
    assert_eq!(broken.seen().len(), 1, "the origin may have acted on it");
    let timed_out = rig(AttemptError::TimedOut);
    assert_eq!(
        timed_out.send("PATCH", "/api/comments/1", &[], "{}").status,
        504
    );
    assert_eq!(timed_out.seen().len(), 1);
    let idempotent = rig(AttemptError::Broken("reset".into()));
    assert_eq!(
        idempotent.send("DELETE", "/api/comments/1", &[], "").status,
        201
    );
}

/// A write an origin may have carried out invalidates, whatever the client
/// is told: a timed-out PATCH (504), a DELETE retried after its first attempt
/// broke and answered 404 by the second origin (the first deleted it), a PATCH
/// answered with a body too long to read (502). A write refused before it was
/// sent invalidates nothing.
#[test]
fn a_write_that_may_have_been_carried_out_invalidates_its_target() {
    fn rig(first: Script) -> Rig {
        Rig::new(2, move |seen, n| match seen.method.as_str() {
            "GET" => ok(200, &[("cache-control", "max-age=60")], &format!("v{n}")),
            _ if seen.url.starts_with("http://o0") => first.clone(),
            _ => ok(404, &[], "no such comment"),
        })
    }
    let cases = [
        ("PATCH", err(AttemptError::TimedOut), 504, "MISS"),
        (
            "DELETE",
            err(AttemptError::Broken("reset".into())),
            404,
            "MISS",
        ),
        // Carried out, but its answer was too long to read: a 502 that
        // invalidates.
        (
            "PATCH",
            err(AttemptError::TooLarge { status: 200 }),
            502,
            "MISS",
        ),
        ("PATCH", ok(403, &[], "not yours"), 403, "HIT"),
        (
            "PATCH",
            err(AttemptError::NotSent("refused".into())),
            404,
            "HIT",
        ),
    ];
    for (method, first, status, after) in cases {
        let rig = rig(first);
        rig.get("/api/comments/1");
        assert_eq!(
            rig.send(method, "/api/comments/1", &[], "{}").status,
            status
        );
        assert_eq!(
            x_cache(&rig.get("/api/comments/1")),
            after,
            "{method} {status}"
        );
    }
}

/// RFC 9111 section 4.4: the target URI is invalidated, every variant of it.
/// The write's own headers (`Authorization`, `Content-Type`) are never a
/// reader's, and readers differ among themselves in what the behaviour keys.
#[test]
fn a_write_invalidates_its_target_for_readers_whatever_their_headers() {
    let rig = Rig::new(1, |seen, n| match seen.method.as_str() {
        "GET" => ok(200, &[("cache-control", "max-age=60")], &format!("v{n}")),
        _ => ok(200, &[("cache-control", "no-store")], "{}"),
    });
    let json = [("accept", "application/json")];
    let any = [("accept", "*/*")];
    assert_eq!(
        summary(&rig.send("GET", "/api/comments/9", &json, "")),
        (200, "MISS", "v0")
    );
    assert_eq!(
        summary(&rig.send("GET", "/api/comments/9", &any, "")),
        (200, "MISS", "v1")
    );
    assert_eq!(
        x_cache(&rig.send("GET", "/api/comments/9", &json, "")),
        "HIT"
    );
    let written = rig.send(
        "PATCH",
        "/api/comments/9",
        &[
            ("authorization", "Bearer token"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
        "{\"body\":\"edited\"}",
    );
    assert_eq!(written.status, 200);
    assert_eq!(
        summary(&rig.send("GET", "/api/comments/9", &json, "")),
        (200, "MISS", "v3")
    );
    assert_eq!(
        summary(&rig.send("GET", "/api/comments/9", &any, "")),
        (200, "MISS", "v4")
    );
}

/// A generation the store lost (evicted early, or a failed read) must not
/// bring back what was stored before the write that moved it.
#[test]
fn a_lost_generation_never_brings_back_an_older_record() {
    let rig = Rig::new(1, |seen, n| match seen.method.as_str() {
        "GET" => ok(200, &[("cache-control", "max-age=600")], &format!("v{n}")),
        _ => ok(201, &[], ""),
    });
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v0"));
    rig.advance(1);
    assert_eq!(
        rig.send("POST", "/api/songs/1/comments", &[], "{}").status,
        201
    );
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "MISS", "v2"));
    rig.advance(1);
    rig.evict_generation("gen:song:1");
    assert_eq!(
        summary(&rig.get("/api/songs/1")),
        (200, "MISS", "v3"),
        "neither the record from before the write nor the one after it"
    );
    assert_eq!(summary(&rig.get("/api/songs/1")), (200, "HIT", "v3"));
}

#[test]
fn a_write_moves_the_generations_of_its_song_and_its_other_targets() {
    let rig = Rig::new(1, |seen, _| match seen.method.as_str() {
        "GET" => ok(200, &[("cache-control", "max-age=60")], "page"),
        _ => ok(201, &[("location", "/api/comments/9")], ""),
    });
    rig.get("/api/songs/1/comments");
    rig.get("/api/comments/9");
    let before = rig.store_log().len();
    let written = rig.send("POST", "/api/songs/1/comments", &[], "{}");
    assert_eq!(written.status, 201);
    let log = rig.store_log();
    let after: Vec<&str> = log[before..].iter().map(String::as_str).collect();
    // Both were first read at T0, which made their generations T0.
    let next = T0 + 1;
    assert_eq!(
        after,
        vec![
            &format!("generation gen:song:1 = {next}"),
            &format!("generation gen:uri:edge.test:/api/comments/9 = {next}"),
        ]
    );
    assert_eq!(x_cache(&rig.get("/api/songs/1/comments")), "MISS");
    assert_eq!(x_cache(&rig.get("/api/comments/9")), "MISS");
    let failed = Rig::new(1, |_, _| ok(500, &[], "no"));
    failed.send("POST", "/api/songs/1/comments", &[], "{}");
    assert!(
        failed.store_log().is_empty(),
        "a failed write changes nothing"
    );
}

#[test]
fn an_options_request_invalidates_nothing() {
    let rig = Rig::new(1, |seen, n| match seen.method.as_str() {
        "GET" => ok(200, &[("cache-control", "max-age=60")], &format!("v{n}")),
        _ => ok(204, &[("access-control-allow-methods", "GET, POST")], ""),
    });
    rig.get("/api/songs/1/comments");
    let before = rig.store_log().len();
    let preflight = rig.send(
        "OPTIONS",
        "/api/songs/1/comments",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
        "",
    );
    assert_eq!((preflight.status, x_cache(&preflight)), (204, "BYPASS"));
    assert_eq!(
        rig.seen()[1].headers.get("origin"),
        Some("https://app.example"),
        "a preflight goes on whole"
    );
    assert_eq!(rig.store_log().len(), before, "nothing moved or stored");
    assert_eq!(
        summary(&rig.get("/api/songs/1/comments")),
        (200, "HIT", "v0")
    );
}
