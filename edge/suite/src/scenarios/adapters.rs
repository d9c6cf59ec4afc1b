//! What each adapter translates for itself, and both must translate alike: the
//! client's host, the method as sent, how a body-less write is framed for the
//! origin, and how much of an origin's body is read.

use super::CACHEABLE;
use crate::{Answer, L, Reply, TestEdge, TestOrigin, chunked_origin, start};

/// An origin body longer than `max_origin_body_bytes` is given up as soon as
/// it is known to be longer (by its `Content-Length`, or as its chunks come):
/// a 502 in the edge's error shape, not a body read whole into the instance's
/// memory (which trapped the Spin component on a 300 MB answer, failing every
/// request in flight on it). The attempt reached the origin, so a POST is not
/// sent to the next one; and the edge goes on serving.
pub(super) async fn an_origin_body_over_the_limit_is_a_502_and_never_read_whole(l: L) {
    const LIMIT: usize = 100_000;
    let limit = [("max_origin_body_bytes", "100000")];
    let origin = TestOrigin::start(|request, _| {
        let length = match request.path_and_query.as_str() {
            "/api/exact" => LIMIT,
            "/api/small" => 10,
            _ => 2 * LIMIT,
        };
        Reply::ok("x".repeat(length)).header("cache-control", CACHEABLE)
    })
    .await;
    let backup = TestOrigin::start(|_, _| Reply::ok("backup")).await;
    let edge = start(&l, &[&origin.url()], &limit).await;
    let refused = edge.get("/api/big").await;
    assert_too_large("a body whose length says so", &refused);
    let exact = edge.get("/api/exact").await;
    assert_eq!(
        (exact.status, exact.body.len()),
        (200, LIMIT),
        "a body as long as the limit passes"
    );
    let small = edge.get("/api/small").await;
    assert_eq!(
        (small.status, small.body.len()),
        (200, 10),
        "{}",
        edge.log()
    );

    let chunked = chunked_origin(2 * LIMIT).await;
    let edge = start(&l, &[&chunked], &limit).await;
    assert_too_large("a chunked body", &edge.get("/api/chunked").await);

    // The origin is up and answered: another would answer the same. Neither a
    // read nor a write goes to the backup, and however often it happens (more
    // than the failure threshold of 3), the origin stays first.
    let edge = start(
        &l,
        &[&origin.url(), &backup.url()],
        &[limit[0], ("failure_threshold", "3")],
    )
    .await;
    let post = edge.send("POST", "/api/big", &[], "{}").await;
    assert_too_large("the answer to a POST", &post);
    for _ in 0..5 {
        assert_too_large("a read, again", &edge.get("/api/big").await);
    }
    assert_eq!(
        (
            backup.count_of("POST", "/api/big"),
            backup.count_of("GET", "/api/big")
        ),
        (0, 0),
        "an answer the first origin gave is not asked of the next"
    );
    let after = edge.get("/api/small").await;
    assert_eq!(
        (after.status, after.body.len()),
        (200, 10),
        "the first origin still answers first: {}",
        edge.log()
    );
}

fn assert_too_large(what: &str, answer: &Answer) {
    assert_eq!(answer.status, 502, "{what}: {}", answer.body);
    assert!(
        answer.body.contains(r#""code":"origin_unavailable""#)
            && answer
                .body
                .contains("longer than the edge's max_origin_body_bytes (100000 bytes)"),
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
}

/// A method edge-core does not know is refused with 405 and `Allow`, whatever
/// workers-rs's `Method` lists (it maps every other method to GET, which served
/// the cached page), and never reaches the origin.
pub(super) async fn unknown_methods_are_refused_never_taken_for_get(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}").header("cache-control", CACHEABLE)).await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(edge.get("/api/songs/1").await.x_cache(), "MISS");
    for method in ["PROPFIND", "PURGE", "MKCOL"] {
        let answer = edge.send(method, "/api/songs/1", &[], "").await;
        assert_eq!(answer.status, 405, "{method}: {}", answer.body);
        assert!(
            answer.body.contains(r#""code":"method_not_allowed""#) && answer.body.contains(method),
            "{method}: {}",
            answer.body
        );
        assert_eq!(
            answer.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            "{method}"
        );
    }
    assert_eq!(origin.count(), 1, "only the GET reached the origin");
}

/// A write without a body reaches the origin with `Content-Length: 0`, not
/// chunked framing (which edge-host chose when no length was given, and some
/// origins refuse). The Worker's `fetch` says the length for POST and PUT and
/// may leave it out for the others, never chunking an empty body.
pub(super) async fn a_body_less_write_is_sent_with_content_length_zero(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}")).await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let answer = edge.send(method, "/api/comments/1", &[], "").await;
        assert_eq!(answer.status, 200, "{method}: {}", answer.body);
    }
    let seen = origin.requests();
    assert_eq!(seen.len(), 4);
    for request in seen {
        let method = request.method.as_str();
        assert_eq!(
            request.header("transfer-encoding"),
            None,
            "{method} without a body was sent chunked"
        );
        let length = request.header("content-length");
        match method {
            "POST" | "PUT" => assert_eq!(length, Some("0"), "{method}"),
            _ => assert!(matches!(length, None | Some("0")), "{method}: {length:?}"),
        }
    }
}

/// The client's host joins the cache key, and a write's `Location` on that same
/// host invalidates what it names. edge-host once gave the component no host at
/// all (wasmtime takes it from the URI, and `Host` is a forbidden field), so
/// every host shared the key host `edge` and absolute locations never matched.
pub(super) async fn the_client_host_keys_the_cache_and_names_its_locations(l: L) {
    let origin = TestOrigin::start(|request, n| {
        if request.method == "POST" {
            return Reply::ok("{}")
                .status(201)
                .header("location", "http://a.example/api/hosts/1");
        }
        Reply::ok(format!("{n}")).header("cache-control", CACHEABLE)
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let get = |host| get_on(&edge, host);
    assert_eq!(get("a.example").await.x_cache(), "MISS");
    assert_eq!(get("a.example").await.x_cache(), "HIT");
    let other = get("b.example").await;
    assert_eq!(
        other.x_cache(),
        "MISS",
        "another host is another key: {}",
        other.body
    );
    assert_eq!(get("b.example").await.x_cache(), "HIT");
    let created = edge
        .send("POST", "/api/hosts", &[("host", "a.example")], "{}")
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        get("a.example").await.x_cache(),
        "MISS",
        "the Location on the client's host was invalidated"
    );
    assert_eq!(
        get("b.example").await.x_cache(),
        "HIT",
        "the same path on another host was not"
    );
}

/// `GET /api/hosts/1` with `Host: host`.
async fn get_on(edge: &TestEdge, host: &str) -> Answer {
    edge.send("GET", "/api/hosts/1", &[("host", host)], "")
        .await
}
