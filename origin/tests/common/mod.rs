//! Test harness: real PostgreSQL, Cassandra and Redis through the `stack`
//! launchers, the real app in-process on port 0, a fixture data set, and a
//! small HTTP client.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cql;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use origin::auth::JwtKeys;
use origin::configuration::ServeArgs;
use origin::domain::{
    Comment, CommentBody, CommentId, Cursor, Feed, NewComment, Page, Song, SongId, UserId,
};
use origin::startup::Application;
use origin::state::AppState;
use origin::storage::{Mutation, PoolStatus, Storage, StorageError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const JWT_SECRET: &str = "test-secret-for-the-origin";
/// Bounds every request a test makes: a request that takes longer has hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);

/// (id, title, artist, duration_ms). Song 3 is short and has no comments.
pub const FIXTURE_SONGS: [(i64, &str, &str, i32); 3] = [
    (1, "Blue Hour", "Ada Lane", 180_000),
    (2, "Night Drive", "The Pines", 240_000),
    (3, "Short Cut", "Ada Lane", 1_000),
];
/// (id, name, avatar_url).
pub const FIXTURE_USERS: [(i64, &str, &str); 3] = [
    (1, "alice", "https://img.example/alice.png"),
    (2, "bob", "https://img.example/bob.png"),
    (3, "carol", "https://img.example/carol.png"),
];

/// Loads the fixture into a migrated PostgreSQL database.
pub async fn seed_postgres_fixture(database_url: &str) {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for (id, title, artist, duration) in FIXTURE_SONGS {
        client
            .execute(
                "INSERT INTO songs (id, title, artist, duration_ms) VALUES ($1, $2, $3, $4)",
                &[&id, &title, &artist, &duration],
            )
            .await
            .unwrap();
    }
    for (id, name, avatar) in FIXTURE_USERS {
        client
            .execute(
                "INSERT INTO users (id, name, avatar_url, location) VALUES ($1, $2, $3, 'here')",
                &[&id, &name, &avatar],
            )
            .await
            .unwrap();
    }
}

/// A fresh migrated and seeded database on `server`.
pub async fn fresh_postgres_database(server: &stack::postgres::PostgresServer) -> String {
    let url = server
        .create_random_database()
        .await
        .expect("create database");
    origin::storage::postgres::migrate(&url)
        .await
        .expect("migrate");
    seed_postgres_fixture(&url).await;
    url
}

/// User `id` (tests name users by number).
pub fn user(id: i64) -> UserId {
    UserId::new(id).expect("a positive user id")
}

pub fn test_args(database_url: &str, redis_url: Option<String>) -> ServeArgs {
    ServeArgs::for_tests(database_url.to_string(), redis_url, JWT_SECRET)
}

pub struct TestApp {
    pub address: String,
    pub state: Arc<AppState>,
    pub jwt: JwtKeys,
    shutdown: CancellationToken,
    client: Client<HttpConnector, Full<Bytes>>,
    /// What the app's test depends on (a shared server's handle), dropped with it.
    held: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// The error message of a JSON error body (4xx/5xx).
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field in {:?}", self.json()))
            .to_string()
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// Starts the real app in-process on port 0 with PostgreSQL storage.
pub async fn spawn_app(args: ServeArgs) -> TestApp {
    let app = Application::build(args).await.expect("build app");
    run(app)
}

/// Starts the app over a storage the test made (any backend, or a wrapper).
pub async fn spawn_app_with_storage(args: ServeArgs, storage: Arc<dyn Storage>) -> TestApp {
    let app = Application::build_with_storage(args, storage)
        .await
        .expect("build app");
    run(app)
}

fn run(app: Application) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let client = Client::builder(TokioExecutor::new()).build_http();
    TestApp {
        address,
        state,
        jwt: JwtKeys::new(JWT_SECRET.as_bytes()),
        shutdown,
        client,
        held: Vec::new(),
    }
}

impl TestApp {
    /// Keeps `guard` alive as long as the app (a shared server's handle, which marks the
    /// server's logs to be kept when the test holding it fails).
    pub fn holding(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.held.push(Box::new(guard));
        self
    }

    /// A valid token for user `id` (the fixture has users 1..=3).
    pub fn token(&self, id: i64) -> String {
        self.jwt.issue(user(id), 3600)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .expect("request failed at the HTTP level");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("read body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        tokio::time::timeout(HANG_LIMIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path} hung for {HANG_LIMIT:?}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, None).await
    }

    /// Sends `body` as JSON with `Authorization: Bearer token` when given.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        self.send(
            method,
            path,
            &headers,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Posts a comment as `user` and returns the created comment.
    pub async fn post_comment(&self, song: i64, user: i64, body: &str, track_ms: i64) -> Value {
        let token = self.token(user);
        let reply = self
            .json(
                Method::POST,
                &format!("/api/songs/{song}/comments"),
                Some(&token),
                &serde_json::json!({ "body": body, "track_ms": track_ms }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.json()
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.send(Method::DELETE, path, &headers, None).await
    }

    /// Every comment of a song, following `next` cursors.
    pub async fn all_comments(&self, song: i64) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = format!("/api/songs/{song}/comments?limit=200");
        loop {
            let reply = self.get(&path).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            let page = reply.json();
            all.extend(page["comments"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = format!("/api/songs/{song}/comments?limit=200&after={next}"),
                None => return all,
            }
        }
    }
}

/// A real storage with instruments: counts page reads, can slow every
/// read down, and can hold one comment read after it read, to make overlaps
/// (single flight, shedding, a read racing a write) certain in tests.
pub struct InstrumentedStorage {
    pub inner: Arc<dyn Storage>,
    pub page_reads: AtomicUsize,
    pub delay: Duration,
    held_comment_read: std::sync::Mutex<Option<HeldRead>>,
    lose_next_write_answer: std::sync::atomic::AtomicBool,
}

/// The next comment read: it tells `read` once it has its row, then waits for
/// `release`.
struct HeldRead {
    read: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

impl InstrumentedStorage {
    pub fn new(inner: Arc<dyn Storage>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            page_reads: AtomicUsize::new(0),
            delay,
            held_comment_read: std::sync::Mutex::default(),
            lose_next_write_answer: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The next write is applied, then answers `Timeout`, as when the
    /// database committed and its answer came too late.
    pub fn lose_next_write_answer(&self) {
        self.lose_next_write_answer.store(true, Ordering::SeqCst);
    }

    fn answer<T>(&self, written: Result<T, StorageError>) -> Result<T, StorageError> {
        if self.lose_next_write_answer.swap(false, Ordering::SeqCst) {
            written?;
            return Err(StorageError::Timeout);
        }
        written
    }

    /// Holds the next comment read once it has read the row: the first
    /// receiver answers then, and the read returns when the sender is used
    /// (or dropped).
    pub fn hold_next_comment_read(
        &self,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (read, has_read) = tokio::sync::oneshot::channel();
        let (release, released) = tokio::sync::oneshot::channel();
        *self.held_comment_read.lock().unwrap() = Some(HeldRead {
            read,
            release: released,
        });
        (has_read, release)
    }

    pub fn page_reads(&self) -> usize {
        self.page_reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Storage for InstrumentedStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }

    async fn song(&self, id: SongId) -> Result<Option<Song>, StorageError> {
        tokio::time::sleep(self.delay).await;
        self.inner.song(id).await
    }

    async fn comments(
        &self,
        song: SongId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<Page<Comment>>, StorageError> {
        self.page_reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.comments(song, after, limit).await
    }

    async fn feed(&self, song: SongId, limit: u32) -> Result<Option<Feed>, StorageError> {
        tokio::time::sleep(self.delay).await;
        self.inner.feed(song, limit).await
    }

    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StorageError> {
        let read = self.inner.comment(id).await;
        let held = self.held_comment_read.lock().unwrap().take();
        if let Some(held) = held {
            let _ = held.read.send(());
            let _ = held.release.await;
        }
        read
    }

    async fn insert_comment(&self, comment: NewComment) -> Result<Comment, StorageError> {
        let written = self.inner.insert_comment(comment).await;
        self.answer(written)
    }

    async fn update_comment(
        &self,
        id: CommentId,
        author: UserId,
        body: CommentBody,
    ) -> Result<Mutation<Comment>, StorageError> {
        let written = self.inner.update_comment(id, author, body).await;
        self.answer(written)
    }

    async fn delete_comment(
        &self,
        id: CommentId,
        author: UserId,
    ) -> Result<Mutation<Comment>, StorageError> {
        let written = self.inner.delete_comment(id, author).await;
        self.answer(written)
    }

    fn product(&self) -> &'static str {
        self.inner.product()
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.inner.pool_status()
    }
}

/// Polls `probe` until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The database restart tests: a comment "before" was posted by user 1 on song 1.
pub mod outage {
    use std::time::{Duration, Instant};

    use hyper::{Method, StatusCode};

    use super::TestApp;

    /// With the database down, every read, readiness and a write answer 503 with
    /// Retry-After at once (each within [`super::HANG_LIMIT`], or `send` fails the test).
    pub async fn answers_503_while_down(app: &TestApp, database: &str) {
        for path in [
            "/api/songs/1/comments",
            "/api/songs/2",
            "/api/songs/1/feed",
            "/readyz",
        ] {
            let started = Instant::now();
            let reply = app.get(path).await;
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{path} while {database} is down: {reply:?}"
            );
            assert_eq!(reply.header("retry-after"), "1");
            assert_eq!(reply.json()["code"], "unavailable");
            eprintln!(
                "{path} answered 503 in {:?} with {database} down",
                started.elapsed()
            );
        }
        let token = app.token(1);
        let reply = app
            .json(
                Method::POST,
                "/api/songs/1/comments",
                Some(&token),
                &serde_json::json!({"body": "gap", "track_ms": 5}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    }

    /// Once the database is back, reads recover within `limit` by themselves, and the
    /// write made in the gap left nothing behind.
    pub async fn recovers_within(app: &TestApp, limit: Duration, database: &str) {
        let started = Instant::now();
        let recovered = super::eventually(limit, async || {
            app.get("/api/songs/1/comments").await.status == StatusCode::OK
        })
        .await;
        assert!(
            recovered,
            "reads recover within {limit:?} after {database} is back"
        );
        eprintln!(
            "reads recovered {:?} after {database} answered again",
            started.elapsed()
        );
        assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
        app.post_comment(1, 2, "after", 2_000).await;
        let bodies: Vec<String> = app
            .all_comments(1)
            .await
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            bodies,
            ["before", "after"],
            "the write in the gap left nothing behind"
        );
    }
}
