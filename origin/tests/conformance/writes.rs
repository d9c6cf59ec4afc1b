//! Checks of writes: what is stored, what is refused, who may change what.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::assert_error;
use crate::common::{self, TestApp};

pub(crate) async fn posted_comment_is_201_with_location_and_readable(app: TestApp) {
    let token = app.token(2);
    // The author comes from the token; a user_id in the body is ignored.
    let body = json!({"body": "love the bridge", "track_ms": 61_000, "user_id": 3});
    let reply = app
        .json(Method::POST, "/api/songs/1/comments", Some(&token), &body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.header("cache-control"), "no-store");
    let created = reply.json();
    assert_eq!(created["user_id"], 2);
    assert_eq!(created["song_id"], 1);
    assert_eq!(created["body"], "love the bridge");
    assert_eq!(created["track_ms"], 61_000);
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7, "comment ids are UUIDv7");
    let location = reply.header("location").to_string();
    assert_eq!(location, format!("/api/comments/{id}"));

    let fetched = app.get(&location).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), created);
    assert!(fetched.header("cache-control").contains("public"));
    assert_eq!(app.all_comments(1).await, vec![created]);
    // Track boundaries are inclusive: 0 and the song's full duration.
    app.post_comment(3, 1, "first beat", 0).await;
    app.post_comment(3, 1, "last beat", 1_000).await;
}

pub(crate) async fn bad_comment_input_is_refused_and_nothing_is_stored(app: TestApp) {
    let token = app.token(1);
    let post = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.json(Method::POST, "/api/songs/1/comments", Some(&token), &body)
                .await
        }
    };
    assert_error(
        &post(json!({"body": "", "track_ms": 1})).await,
        StatusCode::BAD_REQUEST,
        "empty",
    );
    assert_error(
        &post(json!({"body": "  \n ", "track_ms": 1})).await,
        StatusCode::BAD_REQUEST,
        "empty",
    );
    // PostgreSQL cannot store NUL: refused before the database (it was a 500).
    assert_error(
        &post(json!({"body": "a\u{0}b", "track_ms": 1})).await,
        StatusCode::BAD_REQUEST,
        "NUL",
    );
    // Blank by the published pattern, which spells out what blank is.
    assert_error(
        &post(json!({"body": "\u{1f}\u{feff}\u{3000}", "track_ms": 1})).await,
        StatusCode::BAD_REQUEST,
        "blank",
    );
    assert_error(
        &post(json!({"body": "x".repeat(1001), "track_ms": 1})).await,
        StatusCode::BAD_REQUEST,
        "1000",
    );
    assert_eq!(
        post(json!({"body": "é".repeat(1000), "track_ms": 1}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_error(
        &post(json!({"body": "hi", "track_ms": -1})).await,
        StatusCode::BAD_REQUEST,
        "negative",
    );
    assert_error(
        &post(json!({"body": "hi", "track_ms": 180_001})).await,
        StatusCode::BAD_REQUEST,
        "past the end",
    );
    assert_error(
        &post(json!({"body": "hi"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "track_ms",
    );
    assert_error(
        &post(json!({"body": 5, "track_ms": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "body",
    );
    assert_error(
        &post(json!({"body": "hi", "track_ms": "soon"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "track_ms",
    );

    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let json_type = ("content-type", "application/json");
    let raw = async |body: &[u8], headers: &[(&str, &str)]| {
        app.send(
            Method::POST,
            "/api/songs/1/comments",
            headers,
            Some(body.to_vec()),
        )
        .await
    };
    let reply = raw(b"{\"body\": \"hi\", \"track_ms\": ", &[auth, json_type]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert!(
        reply.error().to_lowercase().contains("json"),
        "{}",
        reply.error()
    );
    let reply = raw(b"{\"body\": \"hi\", \"track_ms\": 1}", &[auth]).await;
    assert_error(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type");
    let huge = serde_json::to_vec(&json!({"body": "x".repeat(64 * 1024), "track_ms": 1})).unwrap();
    let reply = raw(&huge, &[auth, json_type]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    assert!(reply.json()["error"].is_string());
    // The unread rest of the body ends the connection, and the answer says so,
    // so a keep-alive client does not send its next request into it.
    assert_eq!(
        reply.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "{reply:?}"
    );

    let stored = app.all_comments(1).await;
    assert_eq!(stored.len(), 1, "only the one valid comment was stored");
    let id = stored[0]["id"].as_str().unwrap();
    let path = format!("/api/comments/{id}");
    let reply = app
        .json(Method::PATCH, &path, Some(&token), &json!({"body": ""}))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "empty");
    let reply = app
        .json(Method::PATCH, &path, Some(&token), &json!({"text": "x"}))
        .await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "body");
    assert_eq!(
        app.get(&path).await.json()["body"],
        stored[0]["body"],
        "a refused edit changes nothing"
    );
}

pub(crate) async fn writes_need_a_valid_token(app: TestApp) {
    let body = json!({"body": "hi", "track_ms": 1});
    let path = "/api/songs/1/comments";
    assert_error(
        &app.json(Method::POST, path, None, &body).await,
        StatusCode::UNAUTHORIZED,
        "missing",
    );
    let expired = app.jwt.issue(common::user(1), -60);
    assert_error(
        &app.json(Method::POST, path, Some(&expired), &body).await,
        StatusCode::UNAUTHORIZED,
        "expired",
    );
    let forged = origin::auth::JwtKeys::new(b"not-the-secret").issue(common::user(1), 3600);
    assert_error(
        &app.json(Method::POST, path, Some(&forged), &body).await,
        StatusCode::UNAUTHORIZED,
        "signature",
    );
    assert_error(
        &app.json(Method::POST, path, Some("garbage"), &body).await,
        StatusCode::UNAUTHORIZED,
        "malformed",
    );
    let reply = app
        .send(
            Method::POST,
            path,
            &[
                ("authorization", "Basic YWxpY2U6cHc="),
                ("content-type", "application/json"),
            ],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "bearer");
    assert_eq!(reply.header("www-authenticate"), "Bearer");
    let stranger = app.token(424_242);
    assert_error(
        &app.json(Method::POST, path, Some(&stranger), &body).await,
        StatusCode::UNAUTHORIZED,
        "user",
    );
    assert!(
        app.all_comments(1).await.is_empty(),
        "no unauthorised write was stored"
    );
}

pub(crate) async fn only_the_author_edits_or_deletes(app: TestApp) {
    let created = app.post_comment(1, 1, "original", 10_000).await;
    let path = format!("/api/comments/{}", created["id"].as_str().unwrap());
    let alice = app.token(1);
    let bob = app.token(2);

    assert_error(
        &app.json(Method::PATCH, &path, None, &json!({"body": "x"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "missing",
    );
    assert_error(
        &app.delete(&path, None).await,
        StatusCode::UNAUTHORIZED,
        "missing",
    );
    assert_error(
        &app.json(
            Method::PATCH,
            &path,
            Some(&bob),
            &json!({"body": "mine now"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "author",
    );
    assert_error(
        &app.delete(&path, Some(&bob)).await,
        StatusCode::FORBIDDEN,
        "author",
    );
    assert_eq!(
        app.get(&path).await.json()["body"],
        "original",
        "a forbidden edit changes nothing"
    );

    let edited = app
        .json(
            Method::PATCH,
            &path,
            Some(&alice),
            &json!({"body": "edited"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert_eq!(edited.header("cache-control"), "no-store");
    let collection = "</api/songs/1/comments>; rel=\"collection\"";
    assert_eq!(
        edited.header("link"),
        collection,
        "an edit names its song's comment list for shared caches"
    );
    let edited = edited.json();
    assert_eq!(edited["body"], "edited");
    assert_eq!(edited["created_at"], created["created_at"]);
    assert_ne!(edited["updated_at"], created["updated_at"]);

    let deleted = app.delete(&path, Some(&alice)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert!(deleted.body.is_empty());
    assert_eq!(deleted.header("link"), collection);
    assert_error(&app.get(&path).await, StatusCode::NOT_FOUND, "comment");
    assert_error(
        &app.delete(&path, Some(&alice)).await,
        StatusCode::NOT_FOUND,
        "comment",
    );
    assert_error(
        &app.json(Method::PATCH, &path, Some(&alice), &json!({"body": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "comment",
    );
}

pub(crate) async fn readers_see_their_own_writes_at_once(app: TestApp) {
    // Read first so that every cacheable answer is cached, then write and re-read.
    assert!(app.all_comments(1).await.is_empty());
    assert_eq!(
        app.get("/api/songs/1/feed").await.json()["comments"],
        json!([])
    );
    let created = app.post_comment(1, 1, "fresh", 500).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.all_comments(1).await,
        vec![created.clone()],
        "new comment visible in the list at once"
    );
    assert_eq!(
        app.get("/api/songs/1/feed").await.json()["comments"][0]["id"],
        id.as_str(),
        "and in the feed"
    );

    let path = format!("/api/comments/{id}");
    assert_eq!(app.get(&path).await.json()["body"], "fresh");
    let alice = app.token(1);
    app.json(
        Method::PATCH,
        &path,
        Some(&alice),
        &json!({"body": "changed"}),
    )
    .await;
    assert_eq!(
        app.get(&path).await.json()["body"],
        "changed",
        "the edit is visible on the comment"
    );
    assert_eq!(
        app.all_comments(1).await[0]["body"],
        "changed",
        "and in the list"
    );
    assert_eq!(
        app.get("/api/songs/1/feed").await.json()["comments"][0]["body"],
        "changed",
        "and in the feed"
    );

    app.delete(&path, Some(&alice)).await;
    assert!(
        app.all_comments(1).await.is_empty(),
        "the delete is visible at once"
    );
    assert_eq!(
        app.get("/api/songs/1/feed").await.json()["comments"],
        json!([])
    );
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
}
