//! The origin side: failover and retry safety, writes and what they
//! invalidate, requests refused before any origin, and behaviours that send
//! paths to other origin groups.

use super::CACHEABLE;
use crate::{
    FileServer, L, Reply, TestEdge, TestOrigin, hang_up_origin, silent_origin, start,
    trickling_origin,
};

pub(super) async fn reads_fail_over_and_writes_only_when_they_were_never_sent(l: L) {
    let mut primary = TestOrigin::start(|_, _| Reply::ok("primary")).await;
    let secondary = TestOrigin::start(|_, _| Reply::ok("secondary")).await;
    let edge = start(
        &l,
        &[&primary.url(), &secondary.url()],
        &[("failure_threshold", "2"), ("cooldown_ms", "60000")],
    )
    .await;
    assert_eq!(edge.get("/api/a").await.body, "primary");
    primary.kill().await;
    // Paths not yet cached, so each GET has to reach an origin.
    for n in 0..4 {
        let answer = edge.get(&format!("/api/after-kill/{n}")).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "secondary"));
    }
    // After two failures the primary is skipped: writes go to the secondary first.
    let write = edge
        .send(
            "POST",
            "/api/songs/1/comments",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!((write.status, write.body.as_str()), (200, "secondary"));

    let mut lone = TestOrigin::start(|_, _| Reply::ok("lone")).await;
    let backup = TestOrigin::start(|_, _| Reply::ok("backup")).await;
    let hangs_up = hang_up_origin().await;
    let edge = start(
        &l,
        &[&lone.url(), &backup.url()],
        &[("failure_threshold", "100")],
    )
    .await;
    lone.kill().await;
    let post = edge.send("POST", "/api/songs/1/comments", &[], "{}").await;
    if l.platform().tells_unsent_attempts() {
        assert_eq!(
            (post.status, post.body.as_str()),
            (200, "backup"),
            "a POST refused a connection never left: it may go to the next origin"
        );
    } else {
        assert_eq!(post.status, 502, "{}", post.body);
    }
    let posted_to_backup = usize::from(l.platform().tells_unsent_attempts());
    let edge = start(
        &l,
        &[&hangs_up, &backup.url()],
        &[("failure_threshold", "100")],
    )
    .await;
    let post = edge.send("POST", "/api/songs/1/comments", &[], "{}").await;
    assert_eq!(
        post.status, 502,
        "a POST that reached an origin which then hung up is not sent again"
    );
    assert_eq!(
        backup.count_of("POST", "/api/songs/1/comments"),
        posted_to_backup
    );
    let put = edge.send("PUT", "/api/comments/1", &[], "{}").await;
    assert_eq!(
        (put.status, put.body.as_str()),
        (200, "backup"),
        "PUT is idempotent and fails over"
    );
}

pub(super) async fn a_silent_origin_is_given_up_at_the_time_limit(l: L) {
    let silent = silent_origin().await;
    let backup = TestOrigin::start(|_, _| Reply::ok("backup")).await;
    let limits = [
        ("origin_timeout_ms", "300"),
        ("total_timeout_ms", "2000"),
        ("failure_threshold", "100"),
    ];
    let edge = start(&l, &[&silent, &backup.url()], &limits).await;
    read_fails_over_to_backup_in_time(&edge, "/api/silent/1", "a silent origin").await;
    let post = edge.send("POST", "/api/songs/1/comments", &[], "{}").await;
    assert_eq!(
        post.status, 504,
        "a POST that reached a silent origin is not sent again: {}",
        post.body
    );
    assert_eq!(backup.count_of("POST", "/api/songs/1/comments"), 0);

    let edge = start(&l, &[&silent], &limits).await;
    let started = std::time::Instant::now();
    let read = edge.get("/api/silent/2").await;
    assert_eq!(read.status, 504, "{}", read.body);
    assert!(started.elapsed() < std::time::Duration::from_millis(2_500));

    // The limit covers the head and the body together: an origin whose body comes
    // a byte every 100 ms is given up too, though no gap reaches 300 ms.
    let trickling = trickling_origin().await;
    let edge = start(&l, &[&trickling, &backup.url()], &limits).await;
    read_fails_over_to_backup_in_time(&edge, "/api/trickle/1", "a trickling body").await;
}

/// A read whose first origin is given up at its 300 ms limit is answered by the
/// backup origin well within 1.5 s.
async fn read_fails_over_to_backup_in_time(edge: &TestEdge, path: &str, what: &str) {
    let started = std::time::Instant::now();
    let read = edge.get(path).await;
    assert_eq!((read.status, read.body.as_str()), (200, "backup"));
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1_500),
        "the read waited {:?} for {what} with a 300 ms limit",
        started.elapsed()
    );
}

/// RFC 9111 section 4.4 for a target outside any song: a write invalidates
/// every stored variant of it, though its own headers (`Authorization`,
/// `Content-Type`) are no reader's and readers differ in what is keyed.
pub(super) async fn a_write_invalidates_its_target_for_every_reader(l: L) {
    let origin = TestOrigin::start(|request, n| match request.method.as_str() {
        "GET" => Reply::ok(format!("v{n}")).header("cache-control", CACHEABLE),
        _ => Reply::ok("{}").header("cache-control", "no-store"),
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    let read = |accept: &'static str| {
        let edge = &edge;
        async move {
            let answer = edge
                .send("GET", "/api/comments/7", &[("accept", accept)], "")
                .await;
            (answer.x_cache().to_owned(), answer.body)
        }
    };
    let json = read("application/json").await;
    let any = read("*/*").await;
    assert_eq!((json.0.as_str(), any.0.as_str()), ("MISS", "MISS"));
    assert_eq!(
        read("application/json").await,
        ("HIT".to_owned(), json.1.clone())
    );
    let edited = edge
        .send(
            "PATCH",
            "/api/comments/7",
            &[
                ("authorization", "Bearer t"),
                ("content-type", "application/json"),
            ],
            "{\"body\":\"edited\"}",
        )
        .await;
    assert_eq!(edited.status, 200);
    for (accept, before) in [("application/json", json), ("*/*", any)] {
        let after = read(accept).await;
        assert_eq!(after.0, "MISS", "{accept}: the write invalidated it");
        assert_ne!(after.1, before.1, "{accept}: a new answer");
    }
}

pub(super) async fn a_successful_write_invalidates_every_cached_page_of_its_song(l: L) {
    let comments = std::sync::Arc::new(std::sync::Mutex::new(vec!["first".to_owned()]));
    let state = comments.clone();
    let origin = TestOrigin::start(move |request, _| {
        if request.method == "POST" {
            state.lock().unwrap().push("second".to_owned());
            return Reply::ok("{}")
                .status(201)
                .header("location", "/api/comments/2");
        }
        if request.method == "PATCH" {
            if let Some(last) = state.lock().unwrap().last_mut() {
                *last = "edited".to_owned();
            }
            return Reply::ok("{}").header("link", "</api/songs/5/comments>; rel=\"collection\"");
        }
        if request.method == "DELETE" {
            state.lock().unwrap().pop();
            return Reply::ok("")
                .status(204)
                .header("content-location", "/api/songs/5/comments");
        }
        Reply::ok(state.lock().unwrap().join(",")).header("cache-control", CACHEABLE)
    })
    .await;
    let edge = start(&l, &[&origin.url()], &[]).await;
    for path in [
        "/api/songs/5/comments",
        "/api/songs/5/comments?limit=1",
        "/api/songs/5",
        "/api/songs/6/comments",
    ] {
        assert_eq!(edge.get(path).await.x_cache(), "MISS", "{path}");
        assert_eq!(edge.get(path).await.x_cache(), "HIT", "{path}");
    }
    let created = edge
        .send(
            "POST",
            "/api/songs/5/comments",
            &[("content-type", "application/json")],
            "{\"body\":\"hi\"}",
        )
        .await;
    assert_eq!((created.status, created.x_cache()), (201, "BYPASS"));
    for path in [
        "/api/songs/5/comments",
        "/api/songs/5/comments?limit=1",
        "/api/songs/5",
    ] {
        let answer = edge.get(path).await;
        assert_eq!(
            (answer.x_cache(), answer.body.as_str()),
            ("MISS", "first,second"),
            "{path} was invalidated"
        );
    }
    assert_eq!(
        edge.get("/api/songs/6/comments").await.x_cache(),
        "HIT",
        "other songs stay cached"
    );
    assert_eq!(edge.get("/api/songs/5/comments").await.x_cache(), "HIT");
    let edited = edge
        .send(
            "PATCH",
            "/api/comments/2",
            &[("content-type", "application/json")],
            "{\"body\":\"edited\"}",
        )
        .await;
    assert_eq!(edited.status, 200);
    let after_edit = edge.get("/api/songs/5/comments").await;
    assert_eq!(
        (after_edit.x_cache(), after_edit.body.as_str()),
        ("MISS", "first,edited"),
        "the Link rel=collection named the song"
    );
    let deleted = edge.send("DELETE", "/api/comments/2", &[], "").await;
    assert_eq!(deleted.status, 204);
    let after_delete = edge.get("/api/songs/5/comments").await;
    assert_eq!(
        (after_delete.x_cache(), after_delete.body.as_str()),
        ("MISS", "first"),
        "Content-Location named the song"
    );
}

pub(super) async fn bad_requests_are_refused_before_the_origin(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}")).await;
    let edge = start(
        &l,
        &[&origin.url()],
        &[("max_body_bytes", "100"), ("max_header_bytes", "2000")],
    )
    .await;
    let big_body = "x".repeat(101);
    let too_big = edge
        .send("POST", "/api/songs/1/comments", &[], &big_body)
        .await;
    assert_eq!(too_big.status, 413);
    assert!(
        too_big.body.contains(r#""code":"body_too_large""#),
        "{}",
        too_big.body
    );
    if l.platform().says_close_after_a_refused_body() {
        // The refused body ends the connection, and the answer says so.
        assert_eq!(too_big.header("connection"), Some("close"));
    }
    // Without a length to refuse it by, a chunked body is counted as it comes:
    // refused once a part passes the limit, before the body's end (which never
    // comes here; an edge that waited for it would not answer).
    let chunked = format!(
        "POST /api/songs/1/comments HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n\
         65\r\n{}\r\n",
        "x".repeat(101)
    );
    let (status, body) = edge
        .send_raw(chunked.as_bytes(), false)
        .await
        .unwrap_or_else(|| panic!("a chunked body: no answer\n{}", edge.log()));
    assert_eq!(status, 413, "a chunked body: {body}");
    assert!(body.contains(r#""code":"body_too_large""#), "{body}");
    let big_header = "y".repeat(3000);
    let headers = edge
        .send(
            "GET",
            "/api/songs/1",
            &[("x-padding", big_header.as_str())],
            "",
        )
        .await;
    assert_eq!(headers.status, 431);
    assert!(headers.body.contains("headers_too_large"));
    let method = edge.send("TRACE", "/api/songs/1", &[], "").await;
    assert_eq!(method.status, 405);
    let traversal = edge.get("/api/%2e%2e/admin").await;
    let expected = if l.platform().sees_raw_targets() {
        400
    } else {
        404
    };
    assert_eq!(traversal.status, expected, "{}", traversal.body);
    assert_eq!(origin.count(), 0, "no bad request reached the origin");
    let fine = edge
        .send("POST", "/api/songs/1/comments", &[], &"x".repeat(100))
        .await;
    assert_eq!(fine.status, 200);
    assert_eq!(
        fine.header("connection"),
        None,
        "a served write keeps the connection"
    );
    assert_eq!(origin.count(), 1);
}

/// A body that cannot be read to its end is the client's malformed request:
/// 400 with the origin's error shape, never 413 (which says "too large") and
/// never a request to the origin.
pub(super) async fn malformed_or_truncated_bodies_are_400_not_413(l: L) {
    let origin = TestOrigin::start(|_, _| Reply::ok("{}")).await;
    let edge = start(&l, &[&origin.url()], &[("max_body_bytes", "100")]).await;
    let head = "POST /api/songs/1/comments HTTP/1.1\r\nhost: localhost\r\n";
    let broken_chunks = format!(
        "{head}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nnot a chunk\r\n0\r\n\r\n"
    );
    let truncated = format!("{head}content-length: 50\r\n\r\nonly twenty bytes...");
    for (case, request) in [("broken chunking", broken_chunks), ("truncated", truncated)] {
        let answer = edge.send_raw(request.as_bytes(), true).await;
        let (status, body) = answer.unwrap_or_else(|| panic!("{case}: no answer\n{}", edge.log()));
        assert_eq!(status, 400, "{case}: {body}");
        assert!(body.contains(r#""code":"bad_body""#), "{case}: {body}");
        assert!(body.contains(r#""error":""#), "{case}: {body}");
    }
    assert_eq!(origin.count(), 0, "no malformed body reached the origin");
}

/// CloudFront-style behaviours: a path pattern sends requests to a second
/// origin group, here an origin that is not ours (Python's static file
/// server), with its own allowed methods, TTL bounds and query policy, while
/// `/api/*` keeps going to the API.
pub(super) async fn a_behaviour_fronts_another_origin(l: L) {
    let files = FileServer::start(&[
        ("static/app.js", "console.log('edge')"),
        ("static/style.css", "body {}"),
    ]);
    let api = TestOrigin::start(|_, _| Reply::ok("{}").header("cache-control", CACHEABLE)).await;
    let groups = format!("static={}", files.url());
    let edge = start(
        &l,
        &[&api.url()],
        &[
            ("origin_groups", groups.as_str()),
            (
                "behaviours",
                "/static/* origin=static methods=GET,HEAD ttl=0,60,600 query=none; /api/*",
            ),
        ],
    )
    .await;
    let first = edge.get("/static/app.js?utm=mail").await;
    assert_eq!(
        (first.status, first.x_cache(), first.body.as_str()),
        (200, "MISS", "console.log('edge')"),
        "{}",
        edge.log()
    );
    assert!(
        first.header("last-modified").is_some(),
        "the file server's own headers"
    );
    let again = edge.get("/static/app.js?utm=web").await;
    assert_eq!(
        (again.x_cache(), again.body.as_str()),
        ("HIT", "console.log('edge')"),
        "query=none: the query neither reaches the file server nor splits the cache"
    );
    let head = edge.send("HEAD", "/static/style.css", &[], "").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let missing = edge.get("/static/missing.js").await;
    assert_eq!(missing.status, 404, "the file server's own 404");
    let post = edge.send("POST", "/static/app.js", &[], "x").await;
    assert_eq!(post.status, 405, "{}", post.body);
    assert!(post.body.contains("GET, HEAD"), "{}", post.body);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let api_answer = edge.get("/api/songs/1").await;
    assert_eq!((api_answer.status, api_answer.x_cache()), (200, "MISS"));
    assert_eq!(api.count(), 1, "only /api/* reached the API");
    assert_eq!(edge.get("/elsewhere").await.status, 404);
}
