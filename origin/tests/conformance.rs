//! The API's behaviour, checked over HTTP against the real app and real
//! servers. Every check runs on every backend, each pair a test of its own
//! name (`postgres::song_is_served_with_cache_headers`,
//! `postgres_with_redis::...`), so a failure hides nothing and a filter picks
//! one: `cargo test -p origin --test conformance -- postgres_with_redis::feed`.
//!
//! The harness is `libtest-mimic` (the test has `harness = false`): `main`
//! lists the trials, starts each database server once, lazily, for every
//! check that needs it, and stops it when the run ends. Each check gets its
//! own fresh database (or keyspace), its own Redis when it runs with one, and
//! its own app. A new backend is one entry in [`backends`]: PostgreSQL and the
//! CQL backend on a real Apache Cassandra node always, and the CQL backend on
//! an external ScyllaDB or Cassandra cluster when `SCYLLA_URI` names one.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{FIXTURE_SONGS, TestApp};
use hyper::{Method, StatusCode};
use libtest_mimic::{Arguments, Trial};
use serde_json::{Value, json};
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::RedisServer;
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn(TestApp) -> CheckFuture;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|app| Box::pin($name(app)) as CheckFuture) as Check)),*]
    };
}

/// Every check of the suite, by name.
const CHECKS: [(&str, Check); 13] = checks![
    song_is_served_with_cache_headers,
    unknown_song_is_404_everywhere,
    malformed_ids_are_400,
    posted_comment_is_201_with_location_and_readable,
    comments_page_through_in_track_order,
    page_parameters_are_checked,
    song_without_comments_has_an_empty_page,
    feed_joins_comments_with_their_authors,
    bad_comment_input_is_refused_and_nothing_is_stored,
    writes_need_a_valid_token,
    only_the_author_edits_or_deletes,
    readers_see_their_own_writes_at_once,
    health_readiness_and_metrics,
];

/// A database the suite runs on. It seeds the fixture songs and users
/// ([`common::FIXTURE_SONGS`], [`common::FIXTURE_USERS`]) into a database of
/// its own for each check and serves it with the real app.
#[async_trait]
trait Backend: Send + Sync {
    /// The test-name prefix.
    fn name(&self) -> &'static str;
    /// A freshly seeded database served by the app, with Redis when given.
    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp;
    /// Cleans up after the whole run (keyspaces on an external cluster).
    async fn finish(&self) {}
}

/// Every backend the suite runs on, each without and with Redis. Adding a
/// backend is adding it here; one that cannot run says SKIPPED here, once.
fn backends() -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![
        Arc::new(Postgres::default()),
        Arc::new(Cql::local_cassandra()),
    ];
    match std::env::var("SCYLLA_URI") {
        Ok(uri) => all.push(Arc::new(Cql::external(uri))),
        Err(_) => eprintln!("\n{SCYLLA_SKIPPED}\n"),
    }
    all
}

/// The line a run without an external cluster prints, on its own line, to stderr.
const SCYLLA_SKIPPED: &str = "SKIPPED: the suite on a real ScyllaDB, which cannot run here: \
     SCYLLA_URI is not set (the same CQL backend ran on a local Apache Cassandra node; to \
     add ScyllaDB: docker compose -f infra/docker/compose.yaml --profile scylla up -d scylla, \
     then SCYLLA_URI=127.0.0.1:9042; see infra/scylla/README.md)";

fn main() -> std::process::ExitCode {
    let arguments = Arguments::from_args();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let backends = backends();
    let mut trials = Vec::new();
    for backend in &backends {
        for with_redis in [false, true] {
            let prefix = if with_redis {
                format!("{}_with_redis", backend.name())
            } else {
                backend.name().to_owned()
            };
            for (name, check) in CHECKS {
                let backend = Arc::clone(backend);
                let runtime = Arc::clone(&runtime);
                trials.push(Trial::test(format!("{prefix}::{name}"), move || {
                    run_check(&runtime, backend.as_ref(), with_redis, check);
                    Ok(())
                }));
            }
        }
    }
    let conclusion = libtest_mimic::run(&arguments, trials);
    for backend in &backends {
        runtime.block_on(backend.finish());
    }
    // The servers stop as the backends drop, before the process exits.
    drop(backends);
    conclusion.exit_code()
}

/// One check on a fresh app; a panic in it fails the trial (libtest-mimic catches it).
fn run_check(runtime: &Runtime, backend: &dyn Backend, with_redis: bool, check: Check) {
    runtime.block_on(async {
        // A Redis of its own: checks run in parallel, and every database has
        // songs 1..=3, so a shared Redis would serve one check's pages to another.
        let redis = match with_redis {
            true => Some(
                RedisServer::start(Default::default())
                    .await
                    .expect("start Redis"),
            ),
            false => None,
        };
        let app = backend
            .fresh_app(redis.as_ref().map(RedisServer::url))
            .await;
        check(app).await;
        drop(redis);
    });
}

/// PostgreSQL: one server for the run, started by the first check that needs it.
#[derive(Default)]
struct Postgres {
    server: OnceCell<PostgresServer>,
}

#[async_trait]
impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp {
        let server = self
            .server
            .get_or_init(|| async {
                PostgresServer::start(PostgresOptions::for_tests())
                    .await
                    .expect("start PostgreSQL")
            })
            .await;
        let url = common::fresh_postgres_database(server).await;
        common::spawn_app(common::test_args(&url, redis_url)).await
    }
}

/// The CQL backend, on a fresh keyspace per check: on the Cassandra node this
/// test process shares (started by the first check that needs it, stopped when
/// the process exits), or on the cluster at `SCYLLA_URI` (its keyspaces are
/// dropped when the run ends).
struct Cql {
    external: Option<String>,
    keyspaces: Mutex<Vec<String>>,
}

impl Cql {
    fn local_cassandra() -> Self {
        Self {
            external: None,
            keyspaces: Mutex::new(Vec::new()),
        }
    }

    fn external(uri: String) -> Self {
        Self {
            external: Some(uri),
            keyspaces: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Backend for Cql {
    fn name(&self) -> &'static str {
        match self.external {
            None => "cassandra",
            Some(_) => "scylla",
        }
    }

    async fn fresh_app(&self, redis_url: Option<String>) -> TestApp {
        let Some(uri) = &self.external else {
            let node = stack::cassandra::shared_for_tests()
                .await
                .expect("start the shared Cassandra node");
            let (app, _) = common::cql::fresh_app(node.uri(), redis_url).await;
            return app.holding(node);
        };
        let (app, storage) = common::cql::fresh_app(uri, redis_url).await;
        let keyspace = storage.keyspace().to_owned();
        self.keyspaces.lock().unwrap().push(keyspace);
        app
    }

    async fn finish(&self) {
        let Some(uri) = &self.external else {
            return;
        };
        let keyspaces = std::mem::take(&mut *self.keyspaces.lock().unwrap());
        let session = origin::storage::scylla::session(&common::cql::options(uri, "system"))
            .await
            .unwrap();
        for keyspace in keyspaces {
            if let Err(error) = session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                .await
            {
                eprintln!("could not drop keyspace {keyspace}: {error}");
            }
        }
    }
}

fn assert_error(reply: &common::Reply, status: StatusCode, mentions: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    let message = reply.error();
    assert!(
        message.to_lowercase().contains(&mentions.to_lowercase()),
        "{message:?} should mention {mentions:?}"
    );
    assert_eq!(reply.header("cache-control"), "no-store");
}

async fn song_is_served_with_cache_headers(app: TestApp) {
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

async fn unknown_song_is_404_everywhere(app: TestApp) {
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

async fn malformed_ids_are_400(app: TestApp) {
    for path in [
        "/api/songs/abc",
        "/api/songs/1.5/comments",
        "/api/songs/-1/feed",
        "/api/songs/0",
        "/api/songs/99999999999999999999999",
        // One spelling per id, so that caches hold each resource once.
        "/api/songs/01",
        "/api/songs/+1",
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, "song_id");
    }
    for path in [
        "/api/comments/not-a-uuid",
        "/api/comments/0191b2c3d4e57f00a1b2c3d4e5f60718",
        "/api/comments/%7B0191b2c3-d4e5-7f00-a1b2-c3d4e5f60718%7D",
    ] {
        assert_error(&app.get(path).await, StatusCode::BAD_REQUEST, "comment_id");
    }
    let token = app.token(1);
    let reply = app
        .json(
            Method::PATCH,
            "/api/comments/42",
            Some(&token),
            &json!({"body": "x"}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "comment_id");
    let reply = app
        .json(
            Method::POST,
            "/api/songs/x/comments",
            Some(&token),
            &json!({"body": "hi", "track_ms": 1}),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "song_id");
}

async fn posted_comment_is_201_with_location_and_readable(app: TestApp) {
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

async fn comments_page_through_in_track_order(app: TestApp) {
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

async fn page_parameters_are_checked(app: TestApp) {
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

async fn song_without_comments_has_an_empty_page(app: TestApp) {
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

async fn feed_joins_comments_with_their_authors(app: TestApp) {
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

async fn bad_comment_input_is_refused_and_nothing_is_stored(app: TestApp) {
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

async fn writes_need_a_valid_token(app: TestApp) {
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

async fn only_the_author_edits_or_deletes(app: TestApp) {
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

async fn readers_see_their_own_writes_at_once(app: TestApp) {
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

async fn health_readiness_and_metrics(app: TestApp) {
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
