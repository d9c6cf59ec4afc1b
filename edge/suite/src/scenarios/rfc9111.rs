//! RFC 9111 and RFC 9110 rules the edge once broke, each as a scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::CACHEABLE;
use crate::{L, Reply, TestOrigin, start};

const DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const EARLIER: &str = "Wed, 31 Dec 2025 00:00:00 GMT";

/// RFC 9111 sections 5.1 and 1.2.2: an `Age` that is not a delta-seconds, or
/// repeated with different values, must not make a response look fresher.
pub(super) async fn an_invalid_age_makes_a_response_stale_not_fresher(l: L) {
    let origin = TestOrigin::start(|request, _| {
        let reply = Reply::ok("{}").header("cache-control", "max-age=60");
        match request.path_and_query.as_str() {
            "/api/age/negative" => reply.header("age", "-5"),
            "/api/age/fraction" => reply.header("age", "1.5"),
            "/api/age/parameter" => reply.header("age", "3;q=1"),
            "/api/age/text" => reply.header("age", "soon"),
            "/api/age/repeated" => reply.header("age", "3").header("age", "3000"),
            _ => reply.header("age", "3"),
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for path in [
        "/api/age/negative",
        "/api/age/fraction",
        "/api/age/parameter",
        "/api/age/text",
        "/api/age/repeated",
    ] {
        assert_eq!(edge.get(path).await.status, 200, "{path}");
        let again = edge.get(path).await;
        assert_eq!(
            again.x_cache(),
            "MISS",
            "{path}: taken as stale, asked again"
        );
    }
    edge.get("/api/age/valid").await;
    let hit = edge.get("/api/age/valid").await;
    assert_eq!(hit.x_cache(), "HIT");
    assert!(hit.age().is_some_and(|age| age >= 3), "{:?}", hit.age());
}

/// RFC 9110 sections 13.1.2 and 13.1.3, RFC 9111 section 4.3.2: a client that
/// holds the stored representation gets a 304, by weak `ETag` comparison, `*`,
/// or `If-Modified-Since` when it sent no `If-None-Match`.
pub(super) async fn clients_holding_the_stored_representation_get_304(l: L) {
    let origin = TestOrigin::start(|_, _| {
        Reply::ok("the body")
            .header("cache-control", CACHEABLE)
            .header("etag", "\"v1\"")
            .header("last-modified", DATE)
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let path = "/api/songs/3";
    let miss = edge
        .send("GET", path, &[("if-none-match", "\"v1\"")], "")
        .await;
    assert_eq!(
        (miss.status, miss.x_cache(), miss.body.as_str()),
        (304, "MISS", "")
    );
    for (name, value) in [
        ("if-none-match", "\"v1\""),
        ("if-none-match", "W/\"v0\", W/\"v1\""),
        ("if-none-match", "*"),
        ("if-modified-since", DATE),
    ] {
        let answer = edge.send("GET", path, &[(name, value)], "").await;
        assert_eq!(
            (answer.status, answer.x_cache(), answer.body.as_str()),
            (304, "HIT", ""),
            "{name}: {value}"
        );
        assert_eq!(answer.header("etag"), Some("\"v1\""));
        assert_eq!(answer.header("cache-control"), Some(CACHEABLE));
    }
    for (name, value) in [("if-none-match", "\"v0\""), ("if-modified-since", EARLIER)] {
        let answer = edge.send("GET", path, &[(name, value)], "").await;
        assert_eq!(
            (answer.status, answer.x_cache(), answer.body.as_str()),
            (200, "HIT", "the body"),
            "{name}: {value}"
        );
    }
    assert_eq!(origin.count(), 1, "conditionals are answered by the edge");
}

/// RFC 9111 sections 3.2 and 4.3.4: a 304 for the stored representation
/// replaces its header fields (Content-Type too); a 304 naming another
/// representation updates nothing, and the edge asks again without conditions.
pub(super) async fn a_304_updates_only_the_representation_it_names(l: L) {
    let full_answers = Arc::new(AtomicUsize::new(0));
    let counter = full_answers.clone();
    let origin = TestOrigin::start(move |request, _| {
        let conditional = request.header("if-none-match").is_some();
        match (request.path_and_query.as_str(), conditional) {
            ("/api/same", false) => bare("same body")
                .header("cache-control", "max-age=1")
                .header("etag", "\"v1\"")
                .header("content-type", "text/old")
                .header("x-version", "0"),
            ("/api/same", true) => bare("")
                .status(304)
                .header("cache-control", "max-age=60")
                .header("etag", "\"v1\"")
                .header("content-type", "text/new")
                .header("x-version", "1"),
            (_, true) => Reply::ok("").status(304).header("etag", "\"b\""),
            (_, false) => match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::ok("a")
                    .header("cache-control", "max-age=1")
                    .header("etag", "\"a\""),
                _ => Reply::ok("b")
                    .header("cache-control", "max-age=60")
                    .header("etag", "\"b\""),
            },
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(edge.get("/api/same").await.x_cache(), "MISS");
    assert_eq!(edge.get("/api/other").await.body, "a");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let same = edge.get("/api/same").await;
    assert_eq!(
        (same.x_cache(), same.body.as_str()),
        ("REVALIDATED", "same body")
    );
    assert_eq!(same.header("content-type"), Some("text/new"));
    assert_eq!(same.header("x-version"), Some("1"));
    assert_eq!(edge.get("/api/same").await.x_cache(), "HIT");
    let other = edge.get("/api/other").await;
    assert_eq!(
        (other.x_cache(), other.body.as_str()),
        ("MISS", "b"),
        "the 304 named \"b\", not the stored \"a\""
    );
    let last = origin.requests().pop().expect("requests");
    assert_eq!(
        last.header("if-none-match"),
        None,
        "asked again without conditions"
    );
    assert_eq!(full_answers.load(Ordering::SeqCst), 2);
    assert_eq!(edge.get("/api/other").await.x_cache(), "HIT");
}

/// A reply without the default `Content-Type`.
fn bare(body: &str) -> Reply {
    Reply {
        headers: Vec::new(),
        ..Reply::ok(body)
    }
}

/// RFC 9111 section 5.2.2.3: with `must-understand`, a status code whose
/// caching rules the edge does not implement is never stored, and a known one
/// is stored although `no-store` is there for caches that do not understand.
pub(super) async fn must_understand_keeps_unknown_status_codes_out(l: L) {
    let origin = TestOrigin::start(|request, _| {
        let understood = "must-understand, no-store, max-age=60";
        match request.path_and_query.as_str() {
            "/api/mu/unknown" => Reply::ok("x")
                .status(299)
                .header("cache-control", understood),
            _ => Reply::ok("x").header("cache-control", understood),
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for _ in 0..2 {
        assert_eq!(edge.get("/api/mu/unknown").await.x_cache(), "MISS");
    }
    assert_eq!(edge.get("/api/mu/known").await.x_cache(), "MISS");
    assert_eq!(edge.get("/api/mu/known").await.x_cache(), "HIT");
    assert_eq!(origin.count_of("GET", "/api/mu/unknown"), 2);
}

/// RFC 9110 section 7.6.1, RFC 9111 section 3.1: fields named in `Connection`
/// belong to one connection: never stored, never passed on, either way.
pub(super) async fn fields_named_in_connection_are_neither_stored_nor_forwarded(l: L) {
    let origin = TestOrigin::start(|_, _| {
        Reply::ok("{}")
            .header("cache-control", CACHEABLE)
            .header("connection", "x-hop")
            .header("x-hop", "one connection only")
            .header("x-end", "kept")
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for expected in ["MISS", "HIT"] {
        let answer = edge.get("/api/songs/8").await;
        assert_eq!(answer.x_cache(), expected);
        assert_eq!(answer.header("x-hop"), None, "{expected}");
        assert_eq!(answer.header("x-end"), Some("kept"), "{expected}");
    }
    let written = edge
        .send(
            "POST",
            "/api/songs/8/comments",
            &[
                ("connection", "x-trace"),
                ("x-trace", "1"),
                ("x-request-id", "r1"),
            ],
            "{}",
        )
        .await;
    assert_eq!(written.status, 200);
    let seen = origin.requests();
    let post = seen.iter().find(|r| r.method == "POST").expect("the POST");
    assert_eq!(post.header("x-trace"), None);
    assert_eq!(post.header("x-request-id"), Some("r1"));
}

/// An origin that frames its answer with `Transfer-Encoding: chunked` is
/// served and stored like any other (it once became a 504).
pub(super) async fn a_chunked_origin_answer_is_served_and_stored(l: L) {
    let origin = TestOrigin::start(|_, _| {
        Reply::ok("chunked body")
            .header("cache-control", CACHEABLE)
            .header("transfer-encoding", "chunked")
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let miss = edge.get("/api/songs/4").await;
    assert_eq!(
        (miss.status, miss.x_cache(), miss.body.as_str()),
        (200, "MISS", "chunked body"),
        "{}",
        edge.log()
    );
    let hit = edge.get("/api/songs/4").await;
    assert_eq!((hit.x_cache(), hit.body.as_str()), ("HIT", "chunked body"));
}

/// RFC 9112 section 6.3: an answer with both `Transfer-Encoding` and
/// `Content-Length` is framed by the first; the length, which here names the
/// first chunk, must not cut the body short, when it is served or when it is
/// stored. (The shape is one of response splitting, so an edge may also
/// refuse it: a 502, nothing stored.)
pub(super) async fn a_content_length_beside_chunking_does_not_cut_the_body(l: L) {
    let origin = crate::origin::length_beside_chunking_origin().await;
    let edge = start(&l, &[&origin], &[]).await;
    for attempt in ["the miss", "the next request"] {
        let answer = edge.get("/api/songs/5").await;
        match answer.status {
            200 => assert_eq!(answer.body, "hello, world", "{attempt}\n{}", edge.log()),
            502 => {}
            status => panic!("{attempt}: {status}\n{}", edge.log()),
        }
    }
}

/// RFC 9111 section 4.3.1: the conditional request carries the request
/// headers the stored response's `Vary` names, so that the origin validates
/// the variant the edge holds; only those the behaviour forwards, as on the miss.
pub(super) async fn revalidation_carries_the_headers_vary_names(l: L) {
    let origin = TestOrigin::start(|request, _| {
        if request.header("if-none-match").is_some() {
            return Reply::ok("").status(304).header("etag", "\"t\"");
        }
        Reply::ok("tenant page")
            .header("cache-control", "max-age=1")
            .header("etag", "\"t\"")
            .header("vary", "x-tenant, x-device")
    })
    .await;
    let behaviours = [("behaviours", "/api/* headers=x-tenant")];
    let edge = start(&l, &[&origin.url()], &behaviours).await;
    let tenant = [("x-tenant", "a"), ("x-device", "phone")];
    assert_eq!(
        edge.send("GET", "/api/t", &tenant, "").await.x_cache(),
        "MISS"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = edge.send("GET", "/api/t", &tenant, "").await;
    assert_eq!(again.x_cache(), "REVALIDATED");
    let revalidation = origin.requests().pop().expect("the revalidation");
    assert_eq!(revalidation.header("if-none-match"), Some("\"t\""));
    assert_eq!(revalidation.header("x-tenant"), Some("a"));
    assert_eq!(revalidation.header("x-device"), None, "not forwarded");
}
