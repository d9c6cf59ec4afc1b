//! Storing and serving: misses and hits, keys, what is never stored, `Vary`,
//! poisoning, revalidation, both stale modes, collapsing, and large answers.

use std::time::Duration;

use super::CACHEABLE;
use crate::{L, Reply, TestOrigin, start};

pub(super) async fn health_and_non_api_paths_never_reach_the_origin(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}")).await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let health = edge.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "{\"status\":\"ok\"}")
    );
    for path in ["/", "/static/app.js", "/apix", "/healthz/deeper"] {
        let answer = edge.get(path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(
            answer.body.contains("\"code\":\"not_found\""),
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.x_cache(), "BYPASS");
    }
    assert_eq!(
        origin.count(),
        0,
        "nothing outside /api/* reaches the origin"
    );
}

pub(super) async fn a_miss_is_stored_and_then_served_as_a_hit_with_age(l: L) {
    let origin = TestOrigin::start(|_, n| {
        Reply::ok(format!("{{\"n\":{n}}}"))
            .header("cache-control", CACHEABLE)
            .header("keep-alive", "timeout=5")
            .header("x-origin", "yes")
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let first = edge.get("/api/songs/1").await;
    assert_eq!(
        (first.status, first.x_cache(), first.body.as_str()),
        (200, "MISS", "{\"n\":0}")
    );
    let second = edge.get("/api/songs/1").await;
    assert_eq!(
        (second.status, second.x_cache(), second.body.as_str()),
        (200, "HIT", "{\"n\":0}")
    );
    assert!(
        second
            .header("age")
            .and_then(|a| a.parse::<u64>().ok())
            .is_some(),
        "a HIT carries Age"
    );
    assert_eq!(
        second.header("x-origin"),
        Some("yes"),
        "end-to-end headers are kept"
    );
    assert_eq!(
        second.header("keep-alive"),
        None,
        "hop-by-hop headers are dropped"
    );
    assert_eq!(second.header("cache-control"), Some(CACHEABLE));
    let head = edge.send("HEAD", "/api/songs/1", &[], "").await;
    assert_eq!(
        (head.status, head.x_cache(), head.body.as_str()),
        (200, "HIT", ""),
        "HEAD is served from the GET entry"
    );
    assert_eq!(origin.count(), 1);
}

pub(super) async fn query_order_does_not_split_the_cache(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("[]").header("cache-control", CACHEABLE)).await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(
        edge.get("/api/songs/2/comments?limit=5&after=9")
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(
        edge.get("/api/songs/2/comments?after=9&limit=5")
            .await
            .x_cache(),
        "HIT"
    );
    assert_eq!(
        edge.get("/api/songs/2/comments?after=9&limit=6")
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(origin.count(), 2);
}

pub(super) async fn responses_that_must_not_be_shared_are_never_stored(l: L) {
    let origin = TestOrigin::start(|request, _| {
        let reply = Reply::ok("{}");
        match request.path_and_query.as_str() {
            "/api/private" => reply.header("cache-control", "private, max-age=60"),
            "/api/no-store" => reply.header("cache-control", "no-store"),
            "/api/cookie" => reply
                .header("cache-control", CACHEABLE)
                .header("set-cookie", "session=1"),
            "/api/vary-star" => reply.header("cache-control", CACHEABLE).header("vary", "*"),
            "/api/partial" => reply
                .status(206)
                .header("cache-control", CACHEABLE)
                .header("content-range", "bytes 0-1/10"),
            "/api/error" => reply.status(500),
            _ => reply.header("cache-control", CACHEABLE),
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for path in [
        "/api/private",
        "/api/no-store",
        "/api/cookie",
        "/api/vary-star",
        "/api/partial",
        "/api/error",
    ] {
        for _ in 0..2 {
            let answer = edge.get(path).await;
            assert_eq!(answer.x_cache(), "MISS", "{path}");
        }
        assert_eq!(
            origin.count_of("GET", path),
            2,
            "{path} must reach the origin every time"
        );
    }
    let with_auth = edge
        .send("GET", "/api/open", &[("authorization", "Bearer t")], "")
        .await;
    assert_eq!(
        with_auth.x_cache(),
        "BYPASS",
        "Authorization bypasses the cache"
    );
    assert_eq!(
        origin
            .requests()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_owned))
            .as_deref(),
        Some("Bearer t")
    );
    assert_eq!(
        edge.get("/api/open").await.x_cache(),
        "MISS",
        "the authorised answer was not stored"
    );
    let no_store = edge
        .send("GET", "/api/open", &[("cache-control", "no-store")], "")
        .await;
    assert_eq!(no_store.x_cache(), "BYPASS");
}

pub(super) async fn vary_keeps_variants_apart(l: L) {
    let origin = TestOrigin::start(|request, _| {
        Reply::ok(format!(
            "accept={}",
            request.header("accept").unwrap_or("none")
        ))
        .header("cache-control", CACHEABLE)
        .header("vary", "Accept")
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let json = edge
        .send("GET", "/api/v", &[("accept", "application/json")], "")
        .await;
    assert_eq!(
        (json.x_cache(), json.body.as_str()),
        ("MISS", "accept=application/json")
    );
    let json_again = edge
        .send("GET", "/api/v", &[("accept", "application/json")], "")
        .await;
    assert_eq!(
        (json_again.x_cache(), json_again.body.as_str()),
        ("HIT", "accept=application/json")
    );
    let text = edge
        .send("GET", "/api/v", &[("accept", "text/plain")], "")
        .await;
    assert_eq!(
        (text.x_cache(), text.body.as_str()),
        ("MISS", "accept=text/plain"),
        "another Accept never gets the JSON variant"
    );
}

pub(super) async fn unkeyed_headers_cannot_poison_the_cache(l: L) {
    // The origin reflects headers an attacker controls; only a header the origin
    // names in Vary may change what others get, and then only for equal values.
    let origin = TestOrigin::start(|request, _| {
        let reflected = [
            "x-forwarded-host",
            "x-forwarded-proto",
            "cookie",
            "user-agent",
            "x-original-url",
        ]
        .iter()
        .filter_map(|h| request.header(h).map(|v| format!("{h}={v}")))
        .collect::<Vec<_>>()
        .join(";");
        Reply::ok(format!(
            "links to https://{}/ [{reflected}]",
            request.header("x-forwarded-host").unwrap_or("edge.example")
        ))
        .header("cache-control", CACHEABLE)
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let attacker = edge
        .send(
            "GET",
            "/api/songs/3",
            &[
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "gopher"),
                ("cookie", "a=1"),
                ("user-agent", "evil"),
                ("x-original-url", "/admin"),
            ],
            "",
        )
        .await;
    assert!(
        !attacker.body.contains("evil"),
        "the origin never saw the attacker's headers: {}",
        attacker.body
    );
    let victim = edge.get("/api/songs/3").await;
    assert_eq!(victim.x_cache(), "HIT");
    assert_eq!(victim.body, "links to https://edge.example/ []");
    let seen = origin.requests();
    assert!(
        seen.iter()
            .all(|r| r.header("x-forwarded-host").is_none() && r.header("cookie").is_none())
    );
}

pub(super) async fn stale_responses_are_revalidated_and_updated_on_304(l: L) {
    let origin = TestOrigin::start(|request, n| {
        if request.header("if-none-match") == Some("\"v1\"") {
            Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=60")
                .header("etag", "\"v1\"")
                .header("x-revalidated", "yes")
        } else {
            Reply::ok(format!("body-{n}"))
                .header("cache-control", "max-age=1")
                .header("etag", "\"v1\"")
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(edge.get("/api/r").await.x_cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let revalidated = edge.get("/api/r").await;
    assert_eq!(
        (revalidated.x_cache(), revalidated.body.as_str()),
        ("REVALIDATED", "body-0")
    );
    assert_eq!(
        revalidated.header("x-revalidated"),
        Some("yes"),
        "headers from the 304 are stored"
    );
    assert_eq!(origin.requests()[1].header("if-none-match"), Some("\"v1\""));
    let hit = edge.get("/api/r").await;
    assert_eq!(
        (hit.x_cache(), hit.body.as_str()),
        ("HIT", "body-0"),
        "the 304's max-age=60 made it fresh again"
    );
    assert_eq!(origin.count(), 2);
}

pub(super) async fn stale_while_revalidate_serves_at_once_and_refreshes_in_the_background(l: L) {
    let origin = TestOrigin::start(|_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1, stale-while-revalidate=30")
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(edge.get("/api/swr").await.body, "v0");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = edge.get("/api/swr").await;
    assert_eq!((stale.x_cache(), stale.body.as_str()), ("STALE", "v0"));
    assert!(
        stale
            .header("age")
            .and_then(|a| a.parse::<u64>().ok())
            .is_some_and(|a| a >= 1)
    );
    let mut refreshed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = edge.get("/api/swr").await;
        if answer.x_cache() == "HIT" && answer.body == "v1" {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "the background refresh stored v1");
    assert_eq!(origin.count(), 2);
}

pub(super) async fn stale_if_error_stands_in_for_a_failing_or_dead_origin(l: L) {
    let mut origin = TestOrigin::start(|_, n| {
        if n == 0 {
            Reply::ok("good").header("cache-control", "max-age=1, stale-if-error=60")
        } else {
            Reply::ok("broken").status(503)
        }
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[("failure_threshold", "100")]).await;
    assert_eq!(edge.get("/api/sie").await.body, "good");
    assert_eq!(
        edge.get("/api/plain").await.status,
        503,
        "without a stored copy the 503 passes through"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let on_503 = edge.get("/api/sie").await;
    assert_eq!(
        (on_503.status, on_503.x_cache(), on_503.body.as_str()),
        (200, "STALE", "good")
    );
    origin.kill().await;
    let on_dead = edge.get("/api/sie").await;
    assert_eq!(
        (on_dead.status, on_dead.x_cache(), on_dead.body.as_str()),
        (200, "STALE", "good")
    );
    let nothing = edge.get("/api/never-seen").await;
    assert_eq!(nothing.status, 502);
    assert!(
        nothing.body.contains("origin_unavailable"),
        "{}",
        nothing.body
    );
}

pub(super) async fn concurrent_misses_are_collapsed_where_the_platform_can(l: L) {
    let origin = TestOrigin::start(|_, n| {
        Reply::ok(format!("only-{n}"))
            .header("cache-control", CACHEABLE)
            .delay(Duration::from_millis(400))
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    assert_eq!(edge.get("/healthz").await.status, 200, "warm the instance");
    let edge = std::sync::Arc::new(edge);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let edge = edge.clone();
        tasks.push(tokio::spawn(async move {
            edge.get("/api/songs/9/comments").await
        }));
    }
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        if l.platform().collapses() {
            assert_eq!(answer.body, "only-0");
        }
    }
    let expected = if l.platform().collapses() { 1 } else { 12 };
    assert_eq!(
        origin.count_of("GET", "/api/songs/9/comments"),
        expected,
        "12 concurrent misses on {:?}",
        l.platform()
    );
}

/// `cache=off` (the study's "edge cache off" tier): every read goes to the
/// origin and is answered `BYPASS`; nothing is stored.
pub(super) async fn with_the_cache_off_every_read_reaches_the_origin(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}").header("cache-control", CACHEABLE)).await;
    let edge = start(&l, &[&origin.url()], &[("cache", "off")]).await;
    for _ in 0..2 {
        let answer = edge.get("/api/songs/1").await;
        assert_eq!((answer.status, answer.x_cache()), (200, "BYPASS"));
    }
    assert_eq!(origin.count(), 2);
}

/// An answer far larger than what a host collects whole (64 KiB on `edge-host`)
/// and than the buffer its HTTP server fills before sending (128 KiB) streams
/// through, is stored, and comes back from the cache byte for byte. Numbered
/// lines, so that a lost, repeated or reordered part shows where.
pub(super) async fn a_large_answer_passes_whole_and_is_stored(l: L) {
    let large: String = (0..125_000).map(|n| format!("{n:07}\n")).collect();
    let body = large.clone();
    let origin =
        TestOrigin::start(move |_, _| Reply::ok(body.clone()).header("cache-control", CACHEABLE))
            .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let miss = edge.get("/api/songs/5").await;
    assert_eq!(
        (miss.status, miss.x_cache()),
        (200, "MISS"),
        "{}",
        edge.log()
    );
    assert_same_body("MISS", &miss.body, &large);
    let hit = edge.get("/api/songs/5").await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_same_body("HIT", &hit.body, &large);
    assert_eq!(origin.count(), 1);
}

/// Says where `got` first differs from `want`, not two megabytes of both.
fn assert_same_body(answer: &str, got: &str, want: &str) {
    if got != want {
        let at = got
            .bytes()
            .zip(want.bytes())
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "the {answer}'s body ({} bytes) differs from the origin's ({} bytes) at byte {at}: {:?}",
            got.len(),
            want.len(),
            // Bytes, not `str` slicing: the client reads bodies lossily, so `at`
            // may fall inside a replacement character.
            String::from_utf8_lossy(&got.as_bytes()[at..(at + 16).min(got.len())])
        );
    }
}
