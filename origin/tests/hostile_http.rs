//! Hostile raw HTTP/1.1 at the edge (edge-host) and at an origin instance, on a
//! real local stack: request smuggling shapes (Content-Length with
//! Transfer-Encoding, two Content-Lengths, obfuscated codings), broken chunking,
//! oversized and malformed heads, absolute and odd request targets, and
//! method-override headers. Each case is written byte for byte on a fresh
//! connection. The answer must be a 4xx or a closed connection (never a 5xx),
//! where the RFC says so the connection must close after it, the server must
//! answer a plain request right after, and at the end the same processes must
//! still run (nothing crashed and was restarted).

use std::time::Duration;

use stack::binaries::{self, Binary};
use stack::process::pid_alive;
use stack::{Stack, StackConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Bounds every read: a server that neither answers nor closes within it
/// hangs. Longer than the origin's header-read timeout (10 s), which closes a
/// head that never ends.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a hostile request may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A 4xx, or the connection closed without an answer.
    Refused,
    /// Any answer but a 5xx (the target is odd but legal, e.g. absolute-form),
    /// or the connection closed.
    NoServerError,
    /// Any answer but a 5xx, and then the connection closes: RFC 9112 section
    /// 6.1 for Content-Length with Transfer-Encoding, so that a second request
    /// hidden in the body can never be read as one.
    AnsweredThenClosed,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        expect,
    }
}

const POST: &str = "POST /api/songs/1/comments HTTP/1.1\r\nHost: t\r\n";

fn cases() -> Vec<Case> {
    use Expect::*;
    let hidden = "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    vec![
        // Smuggling: the body boundary told two ways.
        case(
            "content-length and chunked",
            format!(
                "{POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
            ),
            AnsweredThenClosed,
        ),
        case(
            "chunked and content-length on a GET",
            format!(
                "GET /api/songs/2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{hidden}"
            ),
            AnsweredThenClosed,
        ),
        case(
            "two different content-lengths",
            format!("{POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            Refused,
        ),
        case(
            "content-length list",
            format!("{POST}Content-Length: 5, 6\r\n\r\nhello!"),
            Refused,
        ),
        case(
            "transfer-encoding not ending in chunked",
            format!("{POST}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
            Refused,
        ),
        case(
            "unknown transfer-encoding",
            format!("{POST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            Refused,
        ),
        case(
            "two transfer-encoding fields",
            format!(
                "{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"
            ),
            Refused,
        ),
        case(
            "transfer-encoding with a space before the colon",
            format!("{POST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
            Refused,
        ),
        // Content-Length values no parser should take.
        case(
            "negative content-length",
            format!("{POST}Content-Length: -1\r\n\r\n"),
            Refused,
        ),
        case(
            "signed content-length",
            format!("{POST}Content-Length: +3\r\n\r\nabc"),
            Refused,
        ),
        case(
            "content-length past 64 bits",
            format!("{POST}Content-Length: 99999999999999999999999\r\n\r\n"),
            Refused,
        ),
        // Broken chunking.
        case(
            "chunk size not hex",
            format!(
                "{POST}Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
            ),
            Refused,
        ),
        case(
            "chunk size past 64 bits",
            format!(
                "{POST}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n"
            ),
            Refused,
        ),
        case(
            "chunk longer than its size",
            format!("{POST}Transfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n"),
            Refused,
        ),
        case(
            "chunk without its CRLF",
            format!("{POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n"),
            Refused,
        ),
        // Malformed heads.
        case(
            "space before the colon",
            "GET /api/songs/1 HTTP/1.1\r\nHost : t\r\n\r\n",
            Refused,
        ),
        case(
            "obsolete line folding",
            "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
            Refused,
        ),
        case(
            "field without a colon",
            "GET /api/songs/1 HTTP/1.1\r\nHost t\r\n\r\n",
            Refused,
        ),
        case(
            "NUL in a field value",
            "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
            Refused,
        ),
        case(
            "unknown HTTP version",
            "GET /api/songs/1 HTTP/9.9\r\nHost: t\r\n\r\n",
            Refused,
        ),
        case("HTTP/0.9 request line", "GET /api/songs/1\r\n\r\n", Refused),
        case(
            "bytes that are not HTTP",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            Refused,
        ),
        case(
            "non-UTF-8 path",
            b"GET /api/songs/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            Refused,
        ),
        case(
            "bare CR line ends",
            "GET /api/songs/1 HTTP/1.1\rHost: t\r\r",
            NoServerError,
        ),
        // Oversized heads.
        case(
            "ten thousand fields",
            format!(
                "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\n{}\r\n",
                (0..10_000)
                    .map(|i| format!("X-{i}: a\r\n"))
                    .collect::<String>()
            ),
            Refused,
        ),
        case(
            "a 100-kilobyte field",
            format!(
                "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-A: {}\r\n\r\n",
                "a".repeat(100_000)
            ),
            Refused,
        ),
        case(
            "a one-megabyte field",
            format!(
                "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-A: {}\r\n\r\n",
                "a".repeat(1 << 20)
            ),
            Refused,
        ),
        case(
            "a 100-kilobyte request target",
            format!(
                "GET /api/songs/{} HTTP/1.1\r\nHost: t\r\n\r\n",
                "1".repeat(100_000)
            ),
            Refused,
        ),
        // Request targets that are legal but must not lead anywhere else.
        case(
            "absolute-form naming another host",
            "GET http://elsewhere.example/api/songs/1 HTTP/1.1\r\nHost: t\r\n\r\n",
            NoServerError,
        ),
        case(
            "authority-form (CONNECT)",
            "CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n",
            Refused,
        ),
        case(
            "asterisk-form",
            "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
            NoServerError,
        ),
        // Method overrides are not honoured: POST on a read-only resource stays POST.
        case(
            "X-HTTP-Method-Override",
            "POST /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 0\r\n\r\n",
            Refused,
        ),
        case(
            "X-HTTP-Method and X-Method-Override",
            "POST /api/songs/1 HTTP/1.1\r\nHost: t\r\nX-HTTP-Method: GET\r\nX-Method-Override: GET\r\nContent-Length: 0\r\n\r\n",
            Refused,
        ),
        case(
            "_method in the query",
            "POST /api/songs/1?_method=GET HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            Refused,
        ),
    ]
}

/// One parsed answer: its status and where it ended in the buffer.
fn parse_response(buffer: &[u8]) -> Option<(u16, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(buffer).ok()? else {
        return None;
    };
    let status = response.code?;
    let field = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if field("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        // Walk the chunks to the last one.
        let mut at = head;
        loop {
            let line_end = at + buffer.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buffer[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2 + size + 2;
            if size == 0 {
                return (buffer.len() >= at).then_some((status, at));
            }
        }
    }
    let length: usize = match field("content-length") {
        Some(length) => length.parse().ok()?,
        None if status == 304 || status == 204 => 0,
        // No length: the body runs to the close (HTTP/1.0 style).
        None => buffer.len() - head,
    };
    (buffer.len() >= head + length).then_some((status, head + length))
}

/// What came back on one connection.
#[derive(Debug)]
struct Exchange {
    /// Statuses of the answers, in order.
    statuses: Vec<u16>,
    /// Whether the server closed the connection (or reset it).
    closed: bool,
}

/// Writes `bytes` and reads until the server closes, or until one whole
/// answer came and nothing more arrives within a short wait.
async fn exchange(address: &str, bytes: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // A server may refuse and close before reading everything we send.
    let _ = stream.write_all(bytes).await;
    let mut buffer = Vec::new();
    let mut statuses = Vec::new();
    let mut consumed = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Once an answer is whole, a closing server closes at once; a keep-alive one waits.
        let wait = if statuses.is_empty() {
            PATIENCE
        } else {
            Duration::from_secs(2)
        };
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                if let Some((status, _)) = parse_response(&buffer[consumed..]) {
                    statuses.push(status);
                }
                return Exchange {
                    statuses,
                    closed: true,
                };
            }
            Ok(Ok(n)) => {
                buffer.extend_from_slice(&chunk[..n]);
                while let Some((status, end)) = parse_response(&buffer[consumed..]) {
                    if end == 0 {
                        break;
                    }
                    statuses.push(status);
                    consumed += end;
                }
            }
            Err(_) if statuses.is_empty() => {
                return Exchange {
                    statuses,
                    closed: false,
                };
            }
            Err(_) => {
                return Exchange {
                    statuses,
                    closed: false,
                };
            }
        }
    }
}

fn judge(target: &str, case: &Case, got: &Exchange) -> Option<String> {
    let first = got.statuses.first().copied();
    let problem = match (case.expect, first) {
        (_, Some(status)) if status >= 500 => Some(format!("answered {status}")),
        (Expect::Refused, Some(status)) if !(400..500).contains(&status) => {
            Some(format!("answered {status}, not a 4xx"))
        }
        (Expect::Refused | Expect::NoServerError, None) if !got.closed => {
            Some("neither answered nor closed".to_owned())
        }
        (Expect::AnsweredThenClosed, _) if got.statuses.len() > 1 => Some(format!(
            "answered the request hidden in the body too: {:?}",
            got.statuses
        )),
        (Expect::AnsweredThenClosed, _) if !got.closed => {
            Some("kept the connection open after an ambiguous body".to_owned())
        }
        _ => None,
    };
    problem.map(|problem| format!("{target}: {}: {problem} ({got:?})", case.name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_4xx_or_a_close_and_the_servers_keep_serving() {
    let run_dir = tempfile::tempdir().unwrap();
    let built = binaries::build(&[Binary::Origin, Binary::EdgeHost], false)
        .unwrap_or_else(|error| panic!("this test needs origin and edge-host: {error}"));
    let config = StackConfig {
        instances: 1,
        cpu_per_instance: None,
        redis: false,
        origin_bin: Some(built[0].clone()),
        edge_host_bin: Some(built[1].clone()),
        ..StackConfig::for_tests(run_dir.path()).unwrap()
    };
    let mut stack = Stack::up(config).await.expect("stack up");
    let before = stack.state().processes;
    let targets = [
        ("edge", stack.edge_url().expect("the edge runs")),
        ("origin", stack.instance_urls()[0].clone()),
    ];
    let plain = "GET /api/songs/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let mut problems = Vec::new();
    for (name, url) in &targets {
        let address = url.trim_start_matches("http://");
        for case in cases() {
            let got = exchange(address, &case.bytes).await;
            problems.extend(judge(name, &case, &got));
            let after = exchange(address, plain.as_bytes()).await;
            if after.statuses.first() != Some(&200) {
                problems.push(format!(
                    "{name}: after {}: a plain GET got {after:?}",
                    case.name
                ));
            }
        }
    }
    let after = stack.state().processes;
    for (name, pid) in &before {
        if !pid_alive(*pid) {
            problems.push(format!("{name} (pid {pid}) is gone"));
        }
    }
    assert_eq!(before, after, "the same processes run before and after");
    stack.down().await;
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_response_reader_finds_whole_answers_only() {
    let whole = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n";
    assert_eq!(parse_response(whole), Some((400, 49)));
    assert_eq!(parse_response(&whole[..48]), None);
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    assert_eq!(parse_response(chunked), Some((200, chunked.len())));
    assert_eq!(parse_response(b"garbage"), None);
    let refused = Case {
        name: "x",
        bytes: Vec::new(),
        expect: Expect::AnsweredThenClosed,
    };
    let two = Exchange {
        statuses: vec![401, 200],
        closed: true,
    };
    assert!(judge("t", &refused, &two).unwrap().contains("hidden"));
    let open = Exchange {
        statuses: vec![401],
        closed: false,
    };
    assert!(judge("t", &refused, &open).unwrap().contains("open"));
    let fine = Exchange {
        statuses: vec![401],
        closed: true,
    };
    assert_eq!(judge("t", &refused, &fine), None);
    let server_error = Exchange {
        statuses: vec![502],
        closed: true,
    };
    let any = Case {
        name: "y",
        bytes: Vec::new(),
        expect: Expect::NoServerError,
    };
    assert!(judge("t", &any, &server_error).unwrap().contains("502"));
}
