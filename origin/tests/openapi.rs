//! The OpenAPI description: the checked-in copy (`docs/openapi.json`) is the
//! one the code generates and serves, every operation it describes is one the
//! router serves, and the limits a client needs are in it.
//!
//! After changing the API, refresh the copy with
//! `UPDATE_OPENAPI=1 cargo test -p origin --test openapi`.

mod common;

use std::path::PathBuf;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn docs_copy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[test]
fn the_checked_in_copy_is_the_generated_description() {
    let generated = origin::openapi::json();
    let path = docs_copy();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, generated).unwrap();
    }
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == generated,
        "{} differs from the description the code generates; refresh it with \
         `UPDATE_OPENAPI=1 cargo test -p origin --test openapi` and review the diff",
        path.display()
    );
}

fn description() -> Value {
    serde_json::from_str(origin::openapi::json()).unwrap()
}

#[test]
fn the_description_states_the_limits_and_the_contract() {
    let api = description();
    assert_eq!(api["openapi"], "3.1.0");
    let schemas = &api["components"]["schemas"];
    let body = &schemas["CommentBody"];
    assert_eq!(
        (body["minLength"].clone(), body["maxLength"].clone()),
        (json!(1), json!(1000))
    );
    assert!(body["pattern"].as_str().unwrap().contains("\\u0000"));
    assert_eq!(
        schemas["NewCommentRequest"]["properties"]["track_ms"]["minimum"],
        0
    );
    assert_eq!(schemas["SongId"]["minimum"], 1);
    assert_eq!(schemas["ErrorBody"]["required"], json!(["error", "code"]));
    assert_eq!(
        api["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": api["components"]["securitySchemes"]["bearer"]["description"]})
    );

    let comments = &api["paths"]["/api/songs/{song_id}/comments"];
    let params = comments["get"]["parameters"].as_array().unwrap();
    let param = |name: &str| params.iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(param("limit")["schema"]["minimum"], 1);
    assert_eq!(param("limit")["schema"]["maximum"], 200);
    assert_eq!(param("after")["schema"]["pattern"], "^[A-Za-z0-9_-]{27}$");
    assert_eq!(param("If-None-Match")["in"], "header");
    let read = &comments["get"]["responses"];
    for status in ["200", "304"] {
        for header in ["ETag", "Cache-Control"] {
            assert_eq!(
                read[status]["headers"][header]["required"], true,
                "{status} {header}"
            );
        }
    }
    assert_eq!(read["503"]["headers"]["Retry-After"]["required"], true);
    assert_eq!(
        read["500"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );

    let post = &comments["post"];
    assert_eq!(post["security"], json!([{"bearer": []}]));
    for status in [
        "201", "400", "401", "404", "413", "415", "422", "500", "503",
    ] {
        assert!(
            post["responses"][status].is_object(),
            "POST answers {status}"
        );
    }
    assert!(post["responses"]["201"]["headers"]["Location"].is_object());
    assert!(post["responses"]["201"]["links"]["ReadTheComment"].is_object());
    assert_eq!(
        post["responses"]["401"]["headers"]["WWW-Authenticate"]["required"],
        true
    );
    let comment = &api["paths"]["/api/comments/{comment_id}"];
    assert!(comment["patch"]["responses"]["200"]["headers"]["Link"].is_object());
    assert!(comment["delete"]["responses"]["204"]["headers"]["Link"].is_object());
    assert_eq!(
        comment["get"]["responses"]["404"]["headers"]["Cache-Control"]["schema"]["enum"],
        json!(["no-store"])
    );
}

/// The origin on a fresh PostgreSQL database, which lives as long as the pair.
async fn app_on_postgres() -> (stack::postgres::PostgresServer, common::TestApp) {
    let pg = stack::postgres::PostgresServer::start(stack::postgres::PostgresOptions::for_tests())
        .await
        .unwrap();
    let url = common::fresh_postgres_database(&pg).await;
    let app = common::spawn_app(common::test_args(&url, None)).await;
    (pg, app)
}

/// A described path with its parameters filled in: song 1 and some comment.
fn concrete(path: &str) -> String {
    path.replace("{song_id}", "1")
        .replace("{comment_id}", "0191b2c3-d4e5-7f00-a1b2-c3d4e5f60718")
}

/// A method a described path does not take, and a path the description does
/// not have, get the error answer every operation shares: a JSON body with its
/// code and `no-store`, and for the method the `Allow` field a 405 must carry
/// (RFC 9110 section 15.5.6), naming every method the path takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undescribed_method_or_path_gets_the_shared_error_answer() {
    let (_pg, app) = app_on_postgres().await;
    let api = description();
    let mut refused = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        let concrete = concrete(path);
        let described: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if described.iter().any(|m| m == method.as_str()) {
                continue;
            }
            let reply = app.send(method.clone(), &concrete, &[], None).await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                reply.json()["code"],
                "method_not_allowed",
                "{method} {path}"
            );
            assert_eq!(reply.header("cache-control"), "no-store", "{method} {path}");
            let allow: Vec<&str> = reply.header("allow").split(',').map(str::trim).collect();
            for taken in &described {
                assert!(
                    allow.contains(&taken.as_str()),
                    "{method} {path}: Allow {allow:?}"
                );
            }
            assert!(
                !allow.contains(&method.as_str()),
                "{method} {path}: Allow {allow:?}"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "some described path does not take some method");
    let reply = app.get("/api/no-such-thing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["code"], "not_found");
    assert!(reply.error().contains("route"), "{reply:?}");
}

/// Every described operation is routed: none answers "no route" or 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_operation_is_served_and_openapi_json_is_the_description() {
    let (_pg, app) = app_on_postgres().await;

    let served = app.get("/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), "application/json");
    assert_eq!(served.body, origin::openapi::json().as_bytes());

    let api = description();
    let mut operations = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        let concrete = concrete(path);
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let reply = app.send(method.clone(), &concrete, &[], None).await;
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            if reply.status == StatusCode::NOT_FOUND {
                assert!(
                    !reply.error().contains("route"),
                    "{method} {path}: {reply:?}"
                );
            }
            operations += 1;
        }
    }
    assert_eq!(operations, 11, "every operation was tried");
}
