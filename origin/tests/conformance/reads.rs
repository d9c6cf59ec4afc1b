//! Checks of what a reader sees: songs, comment pages, the feed, health.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::assert_error;
use crate::common::{FIXTURE_SONGS, TestApp};

pub(crate) async fn song_is_served_with_cache_headers(app: TestApp) {
    let reply = app.get("/api/songs/1").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let song = reply.json();
    assert_eq!(song["id"], 1);
    assert_eq!(song["title"], FIXTURE_SONGS[0].1);
    assert_eq!(song["duration_ms"], FIXTURE_SONGS[0].3);
    assert_eq!(reply.header("content-type"), "application/json");
    let cache_control = reply.header("cache-control");
    for part in [
        "public",
        "max-age=",
        "s-maxage=",
        "stale-while-revalidate=",
        "stale-if-error=",
    ] {
        assert!(cache_control.contains(part), "{cache_control} lacks {part}");
    }
    let etag = reply.header("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong ETag: {etag}"
    );

    let again = app
        .get_with("/api/songs/1", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
    let other = app
        .get_with("/api/songs/1", &[("if-none-match", "\"something-else\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/songs/2").await.json()["title"],
        FIXTURE_SONGS[1].1
    );
    for path in ["/api/songs/1/comments", "/api/songs/1/feed"] {
        let reply = app.get(path).await;
        let etag = reply.header("etag").to_string();
        assert_eq!(
            app.get_with(path, &[("if-none-match", &etag)]).await.status,
            StatusCode::NOT_MODIFIED,
            "{path}"
        );
    }
}

pub(crate) async fn unknown_song_is_404_everywhere(app: TestApp) {
    for path in [
        "/api/songs/999",
        "/api/songs/999/comments",
        "/api/songs/999/feed",
    ] {
        assert_error(&app.get(path).await, StatusCode::NOT_FOUND, "song");
    }
    let token = app.token(1);
    let reply = app
        .json(
            Method::POST,
            "/api/songs/999/comments",
            Some(&token),
            &json!({"body": "hi", "track_ms": 1}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "song");
    let missing = uuid::Uuid::now_v7();
    assert_error(
        &app.get(&format!("/api/comments/{missing}")).await,
        StatusCode::NOT_FOUND,
        "comment",
    );
    assert_error(&app.get("/nowhere").await, StatusCode::NOT_FOUND, "route");
}

pub(crate) async fn malformed_ids_are_400(app: TestApp) {
    for path in [
        "/api/songs/abc",
        "/api/songs/1.5/comments",
        "/api/songs/-1/feed",
        "/api/songs/0",
        "/api/songs/99999999999999999999999",
        // One spelling per id, so that caches hold each resource once.
        "/api/songs/01",
        "/api/songs/+1",
        // Not UTF-8 once percent-decoded: the extractor's refusal, as JSON too.
        "/api/songs/%FF",
        "/api/songs/%FF/comments",
        "/api/songs/%C0/feed",
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, "song_id");
    }
    for path in [
        "/api/comments/not-a-uuid",
        "/api/comments/0191b2c3d4e57f00a1b2c3d4e5f60718",
        "/api/comments/%7B0191b2c3-d4e5-7f00-a1b2-c3d4e5f60718%7D",
        "/api/comments/%C0",
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, "comment_id");
    }
    let token = app.token(1);
    for path in ["/api/comments/42", "/api/comments/%C0"] {
        let reply = app
            .json(Method::PATCH, path, Some(&token), &json!({"body": "x"}))
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "comment_id");
        let reply = app.delete(path, Some(&token)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "comment_id");
    }
    for path in ["/api/songs/x/comments", "/api/songs/%FF/comments"] {
        let reply = app
            .json(
                Method::POST,
                path,
                Some(&token),
                &json!({"body": "hi", "track_ms": 1}),
            )
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "song_id");
    }
}

pub(crate) async fn comments_page_through_in_track_order(app: TestApp) {
    let positions = [90_000, 5_000, 5_000, 120_000, 0, 45_000, 179_999];
    for (n, track_ms) in positions.iter().enumerate() {
        app.post_comment(1, (n % 3) as i64 + 1, &format!("comment {n}"), *track_ms)
            .await;
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut path = "/api/songs/1/comments?limit=3".to_string();
    let mut pages = 0;
    loop {
        let page = app.get(&path).await.json();
        pages += 1;
        let items = page["comments"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/api/songs/1/comments?limit=3&after={next}"),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(seen.len(), positions.len(), "every comment exactly once");
    let keys: Vec<(i64, String)> = seen
        .iter()
        .map(|c| {
            (
                c["track_ms"].as_i64().unwrap(),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by (track_ms, id)");
    let first = app.get("/api/songs/1/comments").await.json();
    assert_eq!(
        first["comments"].as_array().unwrap().len(),
        positions.len(),
        "default limit covers all 7"
    );
    assert!(first["next"].is_null());
    assert_eq!(first["song_id"], 1);
}

pub(crate) async fn page_parameters_are_checked(app: TestApp) {
    for query in ["limit=0", "limit=201", "limit=-3"] {
        let reply = app.get(&format!("/api/songs/1/comments?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {reply:?}");
        assert!(
            reply.error().contains("limit"),
            "{query}: {}",
            reply.error()
        );
    }
    assert_error(
        &app.get("/api/songs/1/comments?limit=abc").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_error(
        &app.get("/api/songs/1/comments?after=%21%21").await,
        StatusCode::BAD_REQUEST,
        "cursor",
    );
    assert_error(
        &app.get("/api/songs/1/comments?after=AAAA").await,
        StatusCode::BAD_REQUEST,
        "cursor",
    );
    assert_error(
        &app.get("/api/songs/1/feed?limit=500").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_eq!(
        app.get("/api/songs/1/comments?limit=200").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/songs/1/comments?limit=1").await.status,
        StatusCode::OK
    );
}

pub(crate) async fn song_without_comments_has_an_empty_page(app: TestApp) {
    let page = app.get("/api/songs/3/comments").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.json(),
        json!({"song_id": 3, "comments": [], "next": null})
    );
    let feed = app.get("/api/songs/3/feed").await.json();
    assert_eq!(feed["song"]["id"], 3);
    assert_eq!(feed["comments"], json!([]));
}

pub(crate) async fn feed_joins_comments_with_their_authors(app: TestApp) {
    app.post_comment(2, 2, "bob was here", 2_000).await;
    app.post_comment(2, 1, "alice first", 1_000).await;
    app.post_comment(2, 3, "carol last", 3_000).await;
    let reply = app.get("/api/songs/2/feed").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let feed = reply.json();
    assert_eq!(feed["song"]["title"], FIXTURE_SONGS[1].1);
    let comments = feed["comments"].as_array().unwrap();
    let names: Vec<&str> = comments
        .iter()
        .map(|c| c["author_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(
        comments[0]["author_avatar_url"],
        "https://img.example/alice.png"
    );
    assert_eq!(comments[0]["body"], "alice first");
    assert_eq!(comments[0]["user_id"], 1);
    assert!(feed["next"].is_null());
    let limited = app.get("/api/songs/2/feed?limit=2").await.json();
    assert_eq!(limited["comments"].as_array().unwrap().len(), 2);
    let next = limited["next"]
        .as_str()
        .expect("a full page has a next cursor");
    let rest = app
        .get(&format!("/api/songs/2/comments?after={next}"))
        .await
        .json();
    assert_eq!(
        rest["comments"][0]["body"], "carol last",
        "the feed's cursor continues in the comments list"
    );
}

pub(crate) async fn health_readiness_and_metrics(app: TestApp) {
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    app.get("/api/songs/1").await;
    app.get("/api/songs/1").await;
    app.get("/api/songs/abc").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(
        text.contains(r#"origin_http_requests_total{route="/api/songs/{song_id}",method="GET",status="200"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"origin_http_requests_total{route="/api/songs/{song_id}",method="GET",status="400"} 1"#
    ));
    assert!(
        text.contains("origin_http_request_duration_seconds_bucket{route=\"/api/songs/{song_id}\"")
    );
    // PostgreSQL has a connection pool to export; the ScyllaDB driver
    // multiplexes requests over its per-shard connections and has none.
    if app.state.storage.pool_status().is_some() {
        assert!(
            text.contains("origin_db_pool_max_size"),
            "pool usage is exported"
        );
    }
    if app.state.cache.is_enabled() {
        assert!(
            text.contains(r#"origin_cache_lookups_total{kind="song",outcome="hit"}"#),
            "{text}"
        );
        assert!(text.contains(r#"origin_cache_lookups_total{kind="song",outcome="miss"}"#));
    }
}
