//! The CQL backend on a real Apache Cassandra node, where it differs from PostgreSQL:
//! edits and deletes racing each other are serialised by conditional writes (each race
//! played step by step, then for real over HTTP), what a crash between the two writes of
//! a comment leaves reads as "not found" and is mended, and Cassandra stopped mid-test
//! gives quick 503s with Retry-After, then the service recovers by itself.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cql;
use hyper::{Method, StatusCode};
use origin::domain::CommentBody;
use origin::storage::Mutation;
use origin::storage::scylla::{Product, ScyllaStorage};
use serde_json::json;
use stack::cassandra::{CassandraOptions, CassandraServer};

fn body(text: &str) -> CommentBody {
    CommentBody::parse(text.to_owned()).unwrap()
}

fn id_of(comment: &serde_json::Value) -> uuid::Uuid {
    comment["id"].as_str().unwrap().parse().unwrap()
}

/// Rows left in both comment tables of the storage's keyspace.
async fn rows_left(storage: &ScyllaStorage) -> (i64, i64) {
    let (session, keyspace) = (storage.session(), storage.keyspace());
    (
        cql::count_rows(session, keyspace, "comments_by_song").await,
        cql::count_rows(session, keyspace, "comments_by_id").await,
    )
}

/// Each race, with the other request landing between this one's read and its write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_serialise_racing_edits_and_deletes() {
    let node = stack::cassandra::shared_for_tests().await.unwrap();
    let (app, storage) = cql::fresh_app(node.uri(), None).await;
    let alice = app.token(1);
    let path = |id| format!("/api/comments/{id}");

    // An edit whose comment is deleted after it read it: not found, and nothing is left
    // behind (a plain UPDATE would have recreated part of the row).
    let id = id_of(&app.post_comment(1, 1, "first", 1_000).await);
    let Mutation::Done(edit) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("the author's comment is found");
    };
    assert_eq!(
        app.delete(&path(id), Some(&alice)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        storage.edit_located(edit, body("late")).await.unwrap(),
        Mutation::NotFound
    );
    assert_eq!(app.get(&path(id)).await.status, StatusCode::NOT_FOUND);
    assert!(app.all_comments(1).await.is_empty());
    assert_eq!(
        rows_left(&storage).await,
        (0, 0),
        "no remnant in either table"
    );

    // A delete whose comment is edited after it read it: the delete still happens.
    let id = id_of(&app.post_comment(1, 1, "second", 2_000).await);
    let Mutation::Done(delete) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("the author's comment is found");
    };
    let edited = app
        .json(
            Method::PATCH,
            &path(id),
            Some(&alice),
            &json!({ "body": "edited" }),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert!(
        matches!(storage.delete_located(delete).await.unwrap(), Mutation::Done(c) if c.id == id)
    );
    assert_eq!(app.get(&path(id)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(rows_left(&storage).await, (0, 0));

    // Two edits: B lands between A's read and A's write. A tries again on top of B, so the
    // later edit wins everywhere and updated_at only moves forward.
    let id = id_of(&app.post_comment(1, 1, "third", 3_000).await);
    let Mutation::Done(a) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("found");
    };
    let Mutation::Done(b) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("found");
    };
    let Mutation::Done(b) = storage.edit_located(b, body("by B")).await.unwrap() else {
        panic!("B's edit is applied");
    };
    let Mutation::Done(a) = storage.edit_located(a, body("by A")).await.unwrap() else {
        panic!("A's edit is applied after B's");
    };
    assert!(a.updated_at > b.updated_at, "{a:?} after {b:?}");
    let read = app.get(&path(id)).await.json();
    assert_eq!(read["body"], "by A");
    assert_eq!(
        read["updated_at"],
        serde_json::to_value(a.updated_at).unwrap(),
        "the stored version is the one A's edit returned"
    );
    let page = app.all_comments(1).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["body"], "by A", "the page shows the same winner");

    // Two deletes of one comment (a proxy retrying its own DELETE): one is done, the other
    // finds nothing; never "forbidden".
    let Mutation::Done(first) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("found");
    };
    let Mutation::Done(second) = storage.locate(id, common::user(1)).await.unwrap() else {
        panic!("found");
    };
    assert!(matches!(
        storage.delete_located(first).await.unwrap(),
        Mutation::Done(_)
    ));
    assert_eq!(
        storage.delete_located(second).await.unwrap(),
        Mutation::NotFound
    );
    assert_eq!(rows_left(&storage).await, (0, 0));

    // Someone else's comment is refused before any write.
    let id = id_of(&app.post_comment(1, 2, "bob's", 4_000).await);
    assert_eq!(
        storage.locate(id, common::user(1)).await.unwrap(),
        Mutation::Forbidden
    );
    assert_eq!(app.get(&path(id)).await.json()["body"], "bob's");
}

/// What a crash between the index entry and the row leaves (the entry alone) reads as
/// "not found", and the next edit or delete that meets it removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_entry_without_its_row_is_not_found_and_mended() {
    let node = stack::cassandra::shared_for_tests().await.unwrap();
    let (app, storage) = cql::fresh_app(node.uri(), None).await;
    assert_eq!(
        Product::of(storage.session()),
        Product::Cassandra,
        "the node is told apart from ScyllaDB, so no ScyllaDB-only CQL reaches it"
    );
    let id = uuid::Uuid::now_v7();
    storage
        .session()
        .query_unpaged(
            format!(
                "INSERT INTO {}.comments_by_id (id, song_id, track_ms, user_id) VALUES (?, 1, 5, 1)",
                storage.keyspace()
            ),
            (id,),
        )
        .await
        .unwrap();
    let path = format!("/api/comments/{id}");
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    assert!(app.all_comments(1).await.is_empty());
    assert_eq!(rows_left(&storage).await, (0, 1));
    let reply = app.delete(&path, Some(&app.token(1))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reply:?}");
    assert_eq!(rows_left(&storage).await, (0, 0), "the entry was removed");
}

/// The races for real: concurrent edits and deletes of one comment by its author, over
/// HTTP. Whatever the order the node serialised them in, exactly one delete is done, the
/// others and the late edits find nothing, no request is refused or fails, and nothing
/// is left of the comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_and_deletes_over_http_leave_one_consistent_outcome() {
    let node = stack::cassandra::shared_for_tests().await.unwrap();
    let (app, storage) = cql::fresh_app(node.uri(), None).await;
    let app = Arc::new(app);
    let token = app.token(1);
    for round in 0..10 {
        let id = id_of(&app.post_comment(1, 1, "raced", 1_000 + round).await);
        let path = format!("/api/comments/{id}");
        let requests =
            [Method::PATCH, Method::DELETE, Method::PATCH, Method::DELETE].map(|method| {
                let (app, token, path) = (Arc::clone(&app), token.clone(), path.clone());
                tokio::spawn(async move {
                    let reply = app
                        .json(
                            method.clone(),
                            &path,
                            Some(&token),
                            &json!({ "body": "edited" }),
                        )
                        .await;
                    (method, reply.status)
                })
            });
        let mut deletes_done = 0;
        for request in requests {
            let (method, status) = request.await.unwrap();
            match (method, status) {
                (Method::DELETE, StatusCode::NO_CONTENT) => deletes_done += 1,
                (_, StatusCode::NOT_FOUND) => {}
                (Method::PATCH, StatusCode::OK) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(deletes_done, 1, "round {round}: exactly one delete is done");
        assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    }
    assert!(app.all_comments(1).await.is_empty());
    assert_eq!(rows_left(&storage).await, (0, 0), "nothing left behind");
}

/// Cassandra stopped under a running origin: every read and write answers 503 with
/// Retry-After at once (no request waits on the dead node), and once the node is back the
/// driver reconnects by itself. A node of its own (it is stopped), durable (the data must
/// survive), and the app opened the way `origin serve` opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_restart_mid_test_fails_fast_with_503_then_recovers() {
    let mut node = CassandraServer::start(CassandraOptions::default())
        .await
        .unwrap();
    let keyspace = cql::fresh_keyspace();
    let app = common::spawn_app(cql::serve_args(&node.uri(), &keyspace, None)).await;
    let session = origin::storage::scylla::session(&cql::options(&node.uri(), &keyspace))
        .await
        .unwrap();
    cql::seed_fixture(&session, &keyspace).await;
    drop(session);
    app.post_comment(1, 1, "before", 1_000).await;
    assert_eq!(
        app.get("/api/songs/1/comments").await.status,
        StatusCode::OK
    );

    node.stop().await;
    common::outage::answers_503_while_down(&app, "Cassandra").await;
    node.start_again().await.unwrap();
    // The driver retries its connections with a backoff of up to 10 s.
    common::outage::recovers_within(&app, Duration::from_secs(60), "Cassandra").await;
}
