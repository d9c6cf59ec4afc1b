use super::*;

#[test]
fn authorities_split_into_host_and_port() {
    assert_eq!(
        split_authority("127.0.0.1:8000", 80),
        Some(("127.0.0.1", 8000))
    );
    assert_eq!(
        split_authority("d1.cloudfront.net", 443),
        Some(("d1.cloudfront.net", 443))
    );
    assert_eq!(split_authority("[::1]:8443", 443), Some(("::1", 8443)));
    assert_eq!(split_authority("[::1]", 80), Some(("::1", 80)));
    assert_eq!(split_authority(":80", 80), None);
    assert_eq!(split_authority("host:port", 80), None);
    assert_eq!(split_authority("[::1]x", 80), None);
}

#[tokio::test]
async fn targets_keep_scheme_port_and_path() {
    let plain = Target::resolve("http://127.0.0.1:8100/base/")
        .await
        .unwrap();
    assert_eq!(plain.addr, "127.0.0.1:8100".parse().unwrap());
    assert_eq!(plain.base_path, "/base");
    assert_eq!(plain.url, "http://127.0.0.1:8100/base");
    assert!(plain.tls.is_none());
    let secure = Target::resolve("https://127.0.0.1").await.unwrap();
    assert_eq!(secure.addr, "127.0.0.1:443".parse().unwrap());
    assert_eq!(secure.host_header, "127.0.0.1");
    assert!(secure.tls.is_some());
    for bad in ["ftp://127.0.0.1", "127.0.0.1:80", "http://", "https://:443"] {
        assert!(
            matches!(Target::resolve(bad).await, Err(TargetError::Shape(_))),
            "{bad} accepted"
        );
    }
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let options = TlsOptions {
        ca_file: Some(empty),
        insecure: false,
    };
    let error = Target::resolve_with("https://127.0.0.1:1", &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, TargetError::NoCaCertificate(_)),
        "{error:?}"
    );
    let missing = TlsOptions {
        ca_file: Some(dir.path().join("missing.pem")),
        insecure: false,
    };
    assert!(matches!(
        Target::resolve_with("https://127.0.0.1:1", &missing).await,
        Err(TargetError::CaFile(..))
    ));
}

/// A server on loopback that answers the requests of one connection, in
/// order, each with its pieces written one at a time (so that the client
/// meets partial heads and chunks), and then closes it.
async fn scripted(answers: Vec<Vec<&'static [u8]>>) -> Target {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        for pieces in answers {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut buffer = [0; 1024];
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => head.extend_from_slice(&buffer[..read]),
                }
            }
            head.clear();
            for piece in pieces {
                socket.write_all(piece).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    Target::resolve(&url).await.unwrap()
}

fn get(path: &str) -> PlannedRequest {
    PlannedRequest {
        endpoint: 0,
        kind: crate::scenario::RequestKind::GetSong,
        method: http::Method::GET,
        path: path.to_owned(),
        uri: None,
        body: Bytes::new(),
        authorization: None,
        user: 0,
        song_id: 1,
    }
}

#[tokio::test]
async fn every_framing_is_read_to_its_end_and_the_connection_kept_while_it_may_be() {
    let target = scripted(vec![
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /c/1\r\n",
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r\n",
            b"\r\n",
        ],
        vec![
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nX-Cache: Hit from cloudfront\r\n",
            b"Content-Length: 3\r\n\r\nab",
            b"c",
        ],
        vec![b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"],
        vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the ", b"end"],
    ])
    .await;
    let mut connection = Connection::open(&target).await.unwrap();

    let created = connection
        .exchange(&target, &get("/a"), true)
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(created.location.as_deref(), Some("/c/1"));
    assert_eq!(created.body.as_deref(), Some(&b"hello world"[..]));
    assert!(connection.is_usable());

    let shed = connection
        .exchange(&target, &get("/b"), false)
        .await
        .unwrap();
    assert_eq!(shed.status, 503);
    assert!(shed.retry_after);
    assert_eq!(shed.cache, Some(CacheStatus::Hit));
    assert_eq!(shed.body, None);
    assert!(connection.is_usable());

    let unchanged = connection
        .exchange(&target, &get("/c"), true)
        .await
        .unwrap();
    assert_eq!(unchanged.status, 304);
    assert_eq!(unchanged.body.as_deref(), Some(&b""[..]));
    assert!(connection.is_usable());

    let last = connection
        .exchange(&target, &get("/d"), true)
        .await
        .unwrap();
    assert_eq!(last.body.as_deref(), Some(&b"to the end"[..]));
    assert!(
        !connection.is_usable(),
        "Connection: close and a body to EOF"
    );
}

#[tokio::test]
async fn a_broken_answer_fails_the_exchange_and_only_an_unseen_request_may_be_resent() {
    let bad_length = scripted(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"]]).await;
    let mut connection = Connection::open(&bad_length).await.unwrap();
    let failure = connection
        .exchange(&bad_length, &get("/"), false)
        .await
        .unwrap_err();
    assert_eq!(failure, broken(false));
    assert!(!connection.is_usable());

    let cut = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ]])
    .await;
    let mut connection = Connection::open(&cut).await.unwrap();
    let failure = connection
        .exchange(&cut, &get("/"), false)
        .await
        .unwrap_err();
    assert_eq!(failure, broken(false), "the server saw this request");

    // One answer, then the server closes the idle connection: the next
    // request on it was never seen, so it may be resent.
    let closed = scripted(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]]).await;
    let mut connection = Connection::open(&closed).await.unwrap();
    connection
        .exchange(&closed, &get("/"), false)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let failure = connection
        .exchange(&closed, &get("/"), false)
        .await
        .unwrap_err();
    assert_eq!(failure, broken(true));
}
