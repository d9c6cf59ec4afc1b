//! Failures and load against real servers: Redis killed mid-test, PostgreSQL
//! restarted mid-test, concurrent misses sharing one read, overload shed with
//! 503, the real binary's start line and graceful shutdown, an edit or
//! delete racing a concurrent delete of its comment, a read-only database,
//! a comment read racing its delete, writes of unknown outcome, owed
//! invalidations sent once Redis is back, and the server's statement timeout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HANG_LIMIT, InstrumentedStorage};
use hyper::StatusCode;
use origin::metrics::CacheOutcome;
use origin::storage::Storage;
use origin::storage::postgres::{PostgresOptions as PoolOptions, PostgresStorage};
use stack::postgres::{PostgresOptions, PostgresServer};
use stack::redis::{RedisOptions, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_is_bypassed_then_used_again() {
    let (pg, mut redis) = servers().await;
    let url = common::fresh_postgres_database(&pg).await;
    let app = common::spawn_app(common::test_args(&url, Some(redis.url()))).await;
    let metrics = Arc::clone(&app.state.metrics);

    app.post_comment(1, 1, "before the crash", 1_000).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/songs/1/comments").await.status,
            StatusCode::OK
        );
    }
    let hits_before = metrics.cache_count("comments", CacheOutcome::Hit);
    assert!(hits_before >= 2, "warm cache serves hits ({hits_before})");

    redis.kill().await;
    for n in 0..20 {
        let reply = app.get("/api/songs/1/comments").await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {n} with Redis dead: {reply:?}"
        );
        assert_eq!(
            reply.json()["comments"].as_array().unwrap().len(),
            1 + usize::from(n >= 10)
        );
        if n == 9 {
            // A write while Redis is dead: stored, and readable at once.
            app.post_comment(1, 2, "during the crash", 2_000).await;
        }
    }
    for path in ["/api/songs/1", "/api/songs/1/feed", "/readyz"] {
        assert_eq!(
            app.get(path).await.status,
            StatusCode::OK,
            "{path} with Redis dead"
        );
    }
    assert!(
        metrics.cache_count("comments", CacheOutcome::Bypass) >= 1,
        "lookups bypassed the dead cache"
    );

    redis.start_again().await.unwrap();
    let hits_at_restart = metrics.cache_count("comments", CacheOutcome::Hit);
    let recovered = common::eventually(Duration::from_secs(10), async || {
        assert_eq!(
            app.get("/api/songs/1/comments").await.status,
            StatusCode::OK
        );
        metrics.cache_count("comments", CacheOutcome::Hit) > hits_at_restart
    })
    .await;
    assert!(recovered, "the cache is used again once Redis is back");
    app.post_comment(1, 3, "after the crash", 3_000).await;
    assert_eq!(
        app.all_comments(1).await.len(),
        3,
        "own write visible through the recovered cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_test_fails_fast_with_503_then_recovers() {
    let mut pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = common::fresh_postgres_database(&pg).await;
    let app = common::spawn_app(common::test_args(&url, None)).await;
    app.post_comment(1, 1, "before", 1_000).await;
    assert_eq!(
        app.get("/api/songs/1/comments").await.status,
        StatusCode::OK
    );

    pg.stop().await.unwrap();
    common::outage::answers_503_while_down(&app, "PostgreSQL").await;
    pg.start_again().await.unwrap();
    common::outage::recovers_within(&app, HANG_LIMIT, "PostgreSQL").await;
}

/// PostgreSQL and Redis, each a real server of its own for one test.
async fn servers() -> (PostgresServer, RedisServer) {
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    (pg, redis)
}

async fn instrumented_app(
    pg: &PostgresServer,
    redis_url: Option<String>,
    delay: Duration,
    tweak: impl FnOnce(&mut origin::configuration::ServeArgs),
) -> (common::TestApp, Arc<InstrumentedStorage>) {
    let url = common::fresh_postgres_database(pg).await;
    let real: Arc<dyn Storage> =
        Arc::new(PostgresStorage::connect(&url, &PoolOptions::default()).unwrap());
    let storage = InstrumentedStorage::new(real, delay);
    let mut args = common::test_args(&url, redis_url);
    tweak(&mut args);
    (
        common::spawn_app_with_storage(args, storage.clone()).await,
        storage,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_do_one_database_read() {
    let (pg, redis) = servers().await;
    for redis_url in [Some(redis.url()), None] {
        let (app, storage) =
            instrumented_app(&pg, redis_url.clone(), Duration::from_millis(300), |_| {}).await;
        app.post_comment(1, 1, "popular", 1_000).await;
        let app = Arc::new(app);
        let readers: Vec<_> = (0..40)
            .map(|_| {
                let app = Arc::clone(&app);
                tokio::spawn(async move { app.get("/api/songs/1/comments").await })
            })
            .collect();
        let mut bodies = Vec::new();
        for reader in readers {
            let reply = reader.await.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            bodies.push(reply.body);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "everyone got the same page"
        );
        assert_eq!(
            storage.page_reads(),
            1,
            "40 concurrent misses, one database read (redis: {redis_url:?})"
        );
        assert!(app.state.metrics.coalesced_count() >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_not_queued() {
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let (app, _) = instrumented_app(&pg, None, Duration::from_millis(500), |args| {
        args.max_concurrency = 2
    })
    .await;
    let app = Arc::new(app);
    let requests: Vec<_> = (1..=6)
        .map(|n| {
            let app = Arc::clone(&app);
            // Different pages, so single flight does not merge them.
            tokio::spawn(async move { app.get(&format!("/api/songs/1/comments?limit={n}")).await })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for request in requests {
        let reply = request.await.unwrap();
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.header("retry-after"), "1");
                assert_eq!(reply.json()["code"], "overloaded");
                shed += 1;
            }
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(ok + shed, 6);
    assert!(
        ok >= 1 && shed >= 1,
        "some served, the excess shed ({ok} ok, {shed} shed)"
    );
    assert_eq!(
        app.get("/metrics").await.status,
        StatusCode::OK,
        "metrics are never shed"
    );
    assert!(
        String::from_utf8_lossy(&app.get("/metrics").await.body)
            .contains("origin_shed_requests_total")
    );

    let (slow, _) = instrumented_app(&pg, None, Duration::from_millis(800), |args| {
        args.request_timeout_ms = 100
    })
    .await;
    let reply = slow.get("/api/songs/2/feed").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.json()["code"], "timeout");
}

/// An edit or delete that waits on the row lock of a concurrent delete of the
/// same comment (a proxy's retried DELETE racing its own first attempt) tells
/// the author "not found", never "forbidden". The concurrent delete is held
/// open in a transaction of our own until the origin's statement waits on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_racing_a_delete_of_its_comment_is_not_found_not_forbidden() {
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = common::fresh_postgres_database(&pg).await;
    let app = Arc::new(common::spawn_app(common::test_args(&url, None)).await);
    let token = app.token(1);
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    for method in [hyper::Method::DELETE, hyper::Method::PATCH] {
        let comment = app.post_comment(1, 1, "raced", 1_000).await;
        let id: uuid::Uuid = comment["id"].as_str().unwrap().parse().unwrap();
        let racer = client.transaction().await.unwrap();
        assert_eq!(
            racer
                .execute("DELETE FROM comments WHERE id = $1", &[&id])
                .await
                .unwrap(),
            1
        );
        let request = {
            let (app, token, method) = (Arc::clone(&app), token.clone(), method.clone());
            tokio::spawn(async move {
                app.json(
                    method,
                    &format!("/api/comments/{id}"),
                    Some(&token),
                    &serde_json::json!({ "body": "edited" }),
                )
                .await
            })
        };
        // Commit only once the origin's statement waits for the row lock.
        let (probe, probe_connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(probe_connection);
        let waiting = common::eventually(HANG_LIMIT, async || {
            probe
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND query LIKE '%comments%'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                > 0
        })
        .await;
        assert!(
            waiting,
            "the origin's {method} never waited on the row lock"
        );
        racer.commit().await.unwrap();
        let reply = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method}: {reply:?}");
    }
}

/// A database that refuses writes for now (a standby after a failover answers
/// 25006 read_only_sql_transaction) makes a write a 503 with `Retry-After`,
/// not a 500; reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_answers_writes_503_not_500() {
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = common::fresh_postgres_database(&pg).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DO $$ BEGIN EXECUTE format(\
             'ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$",
        )
        .await
        .unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(PostgresStorage::connect(&url, &PoolOptions::default()).unwrap());
    let app = common::spawn_app_with_storage(common::test_args(&url, None), storage).await;
    let token = app.token(1);
    let reply = app
        .json(
            hyper::Method::POST,
            "/api/songs/1/comments",
            Some(&token),
            &serde_json::json!({"body": "on a standby", "track_ms": 5}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(reply.json()["code"], "unavailable");
    assert_eq!(app.get("/api/songs/1").await.status, StatusCode::OK);
}

/// A comment read that loaded the row before a DELETE and finishes after it
/// neither leaves the deleted comment in Redis nor hands it to a read that
/// began after the 204, with Redis and without it (where reads still share
/// loads). The read is held by the storage between its load and its store, so
/// the interleaving is certain: load, DELETE, read again, store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_read_racing_its_delete_does_not_bring_it_back() {
    let (pg, redis) = servers().await;
    read_racing_a_delete(&pg, Some(redis.url())).await;
    read_racing_a_delete(&pg, None).await;
}

async fn read_racing_a_delete(pg: &PostgresServer, redis_url: Option<String>) {
    let (app, storage) = instrumented_app(pg, redis_url, Duration::ZERO, |_| {}).await;
    let app = Arc::new(app);
    let id = app.post_comment(1, 1, "soon gone", 1_000).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/comments/{id}");
    // A read and an edit, so that the racing read below is a cache miss
    // that stores what it loaded.
    let token = app.token(1);
    assert_eq!(app.get(&path).await.status, StatusCode::OK);
    let edit = app
        .json(
            hyper::Method::PATCH,
            &path,
            Some(&token),
            &serde_json::json!({"body": "edited"}),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{edit:?}");

    let (has_read, release) = storage.hold_next_comment_read();
    let early = {
        let (app, path) = (Arc::clone(&app), path.clone());
        tokio::spawn(async move { app.get(&path).await })
    };
    tokio::time::timeout(HANG_LIMIT, has_read)
        .await
        .expect("the read after the edit reached the database")
        .unwrap();
    let token = app.token(1);
    assert_eq!(
        app.delete(&path, Some(&token)).await.status,
        StatusCode::NO_CONTENT
    );
    let coalesced_before = app.state.metrics.coalesced_count();
    let after = {
        let (app, path) = (Arc::clone(&app), path.clone());
        tokio::spawn(async move { app.get(&path).await })
    };
    // Let the early read go once the later one has answered or joined its load.
    let settled = common::eventually(HANG_LIMIT, async || {
        after.is_finished() || app.state.metrics.coalesced_count() > coalesced_before
    })
    .await;
    assert!(
        settled,
        "the read after the delete neither answered nor joined a load"
    );
    release.send(()).unwrap();
    assert_eq!(
        early.await.unwrap().status,
        StatusCode::OK,
        "it began before the delete"
    );
    let after = after.await.unwrap();
    assert_eq!(
        after.status,
        StatusCode::NOT_FOUND,
        "began after the 204: {after:?}"
    );
    let again = app.get(&path).await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "the early read's store: {again:?}"
    );
}

/// A write the database applied but whose answer was lost (a timeout) answers
/// 503, and the cache does not go on serving what it changed: the song's
/// pages are invalidated all the same. An edit learns the song from the
/// database, a delete of a comment read before from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_unknown_outcome_still_invalidates_the_cache() {
    let (pg, redis) = servers().await;
    let (app, storage) = instrumented_app(&pg, Some(redis.url()), Duration::ZERO, |_| {}).await;
    let token = app.token(1);
    let page = "/api/songs/1/comments";
    let bodies = async || -> Vec<String> {
        let reply = app.get(page).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.json()["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect()
    };
    let unknown = |reply: &common::Reply| {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    };

    assert!(bodies().await.is_empty());
    storage.lose_next_write_answer();
    unknown(
        &app.json(
            hyper::Method::POST,
            page,
            Some(&token),
            &serde_json::json!({"body": "posted", "track_ms": 5}),
        )
        .await,
    );
    assert_eq!(
        bodies().await,
        ["posted"],
        "after a POST of unknown outcome"
    );

    let id = app.all_comments(1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/comments/{id}");
    storage.lose_next_write_answer();
    unknown(
        &app.json(
            hyper::Method::PATCH,
            &path,
            Some(&token),
            &serde_json::json!({"body": "edited"}),
        )
        .await,
    );
    assert_eq!(
        bodies().await,
        ["edited"],
        "after a PATCH of unknown outcome"
    );

    assert_eq!(app.get(&path).await.status, StatusCode::OK);
    storage.lose_next_write_answer();
    unknown(&app.delete(&path, Some(&token)).await);
    assert!(
        bodies().await.is_empty(),
        "after a DELETE of unknown outcome"
    );
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
}

/// An invalidation that could not reach Redis (it was away during the write)
/// is sent once Redis is back, with no further request to this instance:
/// other instances read the same Redis and would serve stale pages meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owed_invalidation_is_sent_when_redis_is_back_without_a_request() {
    let (pg, mut redis) = servers().await;
    let url = common::fresh_postgres_database(&pg).await;
    let app = common::spawn_app(common::test_args(&url, Some(redis.url()))).await;
    redis.stop().await;
    app.post_comment(1, 1, "while redis is away", 1_000).await;
    redis.start_again().await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let sent = common::eventually(HANG_LIMIT, async || {
        redis::cmd("GET")
            .arg("o:gen:1")
            .query_async::<Option<i64>>(&mut connection)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert!(sent, "song 1's generation was never incremented");
}

/// The server cancels a statement a little before the client gives up on it
/// (`statement_timeout` below the client's timeout), so a write the client
/// answered 503 for is rolled back rather than committed unseen; options the
/// URL already sets are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gives_up_on_a_statement_before_the_client() {
    let pg = PostgresServer::start(PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = common::fresh_postgres_database(&pg).await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-c%20lock_timeout%3D1234");
    let options = PoolOptions {
        timeout: Duration::from_secs(1),
        ..PoolOptions::default()
    };
    let storage = PostgresStorage::connect(&url, &options).unwrap();
    let client = storage.pool().get().await.unwrap();
    let setting = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(setting("statement_timeout").await, "900ms");
    assert_eq!(setting("lock_timeout").await, "1234ms");

    // A statement_timeout the URL sets is the operator's choice, and stays.
    let url = url.replace("lock_timeout%3D1234", "statement_timeout%3D4321");
    let storage = PostgresStorage::connect(&url, &options).unwrap();
    let client = storage.pool().get().await.unwrap();
    let shown: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "4321ms");
}
