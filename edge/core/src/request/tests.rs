use super::*;

fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.to_owned(),
        path_and_query: target.to_owned(),
        host: Some("edge.test".to_owned()),
        headers: headers.iter().copied().collect(),
    }
}

fn config() -> EdgeConfig {
    EdgeConfig {
        origins: vec!["http://o".into()],
        max_body_bytes: 100,
        max_header_bytes: 200,
        ..EdgeConfig::default()
    }
}

fn check(method: &str, target: &str, headers: &[(&str, &str)], expected: Result<Route, u16>) {
    let route = classify(&head(method, target, headers), &config());
    match expected {
        Ok(route_expected) => {
            assert_eq!(route, route_expected, "{method} {target} {headers:?}")
        }
        Err(status) => match &route {
            Route::Reject(r) => {
                assert_eq!(r.status, status, "{method} {target} {headers:?}: {r:?}")
            }
            other => panic!("{method} {target}: expected rejection {status}, got {other:?}"),
        },
    }
}

use ProxyKind::*;

#[test]
fn requests_are_classified() {
    let big = "x".repeat(300);
    check("GET", "/healthz", &[], Ok(Route::Health));
    check("HEAD", "/healthz", &[], Ok(Route::Health));
    check("POST", "/healthz", &[], Err(405));
    check("GET", "/api/songs/1", &[], Ok(Route::Proxy(Cacheable)));
    check("HEAD", "/api/songs/1", &[], Ok(Route::Proxy(Cacheable)));
    check("GET", "/api", &[], Ok(Route::Proxy(Cacheable)));
    check(
        "GET",
        "/api/songs/1?b=2&a=1",
        &[],
        Ok(Route::Proxy(Cacheable)),
    );
    check(
        "GET",
        "/api/songs/1",
        &[("authorization", "Bearer x")],
        Ok(Route::Proxy(Bypass)),
    );
    check(
        "GET",
        "/api/songs/1",
        &[("cache-control", "no-store")],
        Ok(Route::Proxy(Bypass)),
    );
    check(
        "GET",
        "/api/songs/1",
        &[("cache-control", "no-cache")],
        Ok(Route::Proxy(Cacheable)),
    );
    for precondition in ["if-match", "if-unmodified-since"] {
        check(
            "GET",
            "/api/songs/1",
            &[(precondition, "\"v1\"")],
            Ok(Route::Proxy(Bypass)),
        );
    }
    check(
        "GET",
        "/api/songs/1",
        &[("if-none-match", "\"v1\"")],
        Ok(Route::Proxy(Cacheable)),
    );
    check(
        "POST",
        "/api/songs/1/comments",
        &[("content-length", "10")],
        Ok(Route::Proxy(Unsafe)),
    );
    check("PUT", "/api/comments/1", &[], Ok(Route::Proxy(Unsafe)));
    check("PATCH", "/api/comments/1", &[], Ok(Route::Proxy(Unsafe)));
    check("DELETE", "/api/comments/1", &[], Ok(Route::Proxy(Unsafe)));
    check("OPTIONS", "/api/songs", &[], Ok(Route::Proxy(Unsafe)));
    check("GET", "/", &[], Err(404));
    check("GET", "/apix", &[], Err(404));
    check("GET", "/static/app.js", &[], Err(404));
    check("GET", "/healthz/x", &[], Err(404));
    check("TRACE", "/api/songs", &[], Err(405));
    check("CONNECT", "/api/songs", &[], Err(405));
    check("get", "/api/songs", &[], Err(405));
    check("GET", "api/songs", &[], Err(400));
    check("GET", "/api/../etc/passwd", &[], Err(400));
    check("GET", "/api/%2e%2e/x", &[], Err(400));
    check("GET", "/api/./x", &[], Err(400));
    check("GET", "/api//x", &[], Err(400));
    check("GET", "/api/%2E./x", &[], Err(400));
    check("GET", "/api/x/..", &[], Err(400));
    check("GET", "/api/.../x", &[], Ok(Route::Proxy(Cacheable)));
    check("GET", "/api/songs/1/..a", &[], Ok(Route::Proxy(Cacheable)));
    check(
        "GET",
        "/api/songs/1/%2e%2e%2e",
        &[],
        Ok(Route::Proxy(Cacheable)),
    );
    check("GET", "/api/songs/1/%2", &[], Ok(Route::Proxy(Cacheable)));
    check("GET", "/api/x y", &[], Err(400));
    check("GET", "/api/x#frag", &[], Err(400));
    check("GET", "/api/\u{e9}", &[], Err(400));
    check(
        "POST",
        "/api/songs/1/comments",
        &[("content-length", "101")],
        Err(413),
    );
    check(
        "POST",
        "/api/songs/1/comments",
        &[("content-length", "100")],
        Ok(Route::Proxy(Unsafe)),
    );
    check(
        "POST",
        "/api/songs/1/comments",
        &[("content-length", "ten")],
        Err(400),
    );
    check("POST", "/nope", &[("content-length", "101")], Err(413));
    check("GET", "/api/songs/1", &[("x-big", big.as_str())], Err(431));
    check("GET", "/nope", &[("x-big", big.as_str())], Err(431));
    let uncached = EdgeConfig {
        cache: false,
        ..config()
    };
    assert_eq!(
        classify(&head("GET", "/api/songs/1", &[]), &uncached),
        Route::Proxy(Bypass),
        "cache=off: every read bypasses the cache"
    );
}

#[test]
fn every_405_names_the_allowed_methods() {
    for (method, target, allow) in [
        (
            "TRACE",
            "/api/songs/1",
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        ("POST", "/healthz", "GET, HEAD"),
    ] {
        match classify(&head(method, target, &[]), &config()) {
            Route::Reject(r) => assert_eq!((r.status, r.allow), (405, Some(allow))),
            other => panic!("{method} {target}: {other:?}"),
        }
    }
    assert_eq!(Rejection::new(400, "x", "y").allow, None);
}

#[test]
fn rejection_bodies_are_json_and_escaped() {
    assert_eq!(
        Rejection::body_too_large(5).body(),
        r#"{"error":"request body exceeds 5 bytes","code":"body_too_large"}"#
    );
    assert_eq!(
        error_body("c", "a \"q\" \\ \n\u{1}"),
        r#"{"error":"a \"q\" \\ \n\u0001","code":"c"}"#
    );
    assert_eq!(Rejection::bad_body("eof").status, 400);
    assert_eq!(Rejection::gateway_timeout().status, 504);
    assert_eq!(Rejection::bad_gateway("x").status, 502);
}

#[test]
fn hosts_normalise_for_keys() {
    fn check(host: Option<&str>, header: Option<&str>, expected: &str) {
        let mut h = head("GET", "/api", &[]);
        h.host = host.map(str::to_owned);
        if let Some(v) = header {
            h.headers.append("host", v);
        }
        assert_eq!(h.key_host(), expected);
    }
    check(Some("Edge.Test"), None, "edge.test");
    check(Some("edge.test:80"), None, "edge.test");
    check(Some("edge.test:8000"), None, "edge.test:8000");
    check(None, Some("H:1"), "h:1");
    check(None, None, "edge");
}

#[test]
fn forwarded_headers_follow_the_allow_list_for_reads() {
    fn check(method: &str, input: &[(&str, &str)], expected: &[(&str, &str)]) {
        let got = forward_headers(&head(method, "/api/x", input), &Behaviour::api("/api/*"));
        let expected: Headers = expected
            .iter()
            .copied()
            .chain([("via", "1.1 edge")])
            .collect();
        assert_eq!(got, expected, "{method} {input:?}");
    }
    check(
        "GET",
        &[("accept", "application/json")],
        &[("accept", "application/json")],
    );
    check("GET", &[("x-forwarded-host", "evil.example")], &[]);
    check("GET", &[("cookie", "s=1"), ("user-agent", "u")], &[]);
    check(
        "GET",
        &[("if-none-match", "\"a\""), ("if-modified-since", "x")],
        &[],
    );
    check(
        "GET",
        &[("authorization", "Bearer t")],
        &[("authorization", "Bearer t")],
    );
    check("GET", &[("connection", "accept"), ("accept", "a")], &[]);
    check(
        "HEAD",
        &[("accept-language", "fr")],
        &[("accept-language", "fr")],
    );
    check(
        "POST",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
            ("x-request-id", "1"),
        ],
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
            ("x-request-id", "1"),
        ],
    );
    check(
        "POST",
        &[
            ("x-forwarded-host", "evil"),
            ("x-http-method-override", "DELETE"),
            ("host", "h"),
            ("content-length", "3"),
        ],
        &[],
    );
    check(
        "DELETE",
        &[("transfer-encoding", "chunked"), ("keep-alive", "1")],
        &[],
    );
    check(
        "OPTIONS",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
    );
}

#[test]
fn safe_methods_are_those_of_rfc_9110_and_reads_are_get_and_head() {
    for (method, safe, read) in [
        ("GET", true, true),
        ("HEAD", true, true),
        ("OPTIONS", true, false),
        ("TRACE", true, false),
        ("POST", false, false),
        ("PUT", false, false),
        ("PATCH", false, false),
        ("DELETE", false, false),
    ] {
        assert_eq!((is_safe(method), is_read(method)), (safe, read), "{method}");
    }
}

#[test]
fn head_is_fetched_as_get() {
    assert_eq!(origin_method("HEAD"), "GET");
    assert_eq!(origin_method("GET"), "GET");
    assert_eq!(origin_method("POST"), "POST");
}
