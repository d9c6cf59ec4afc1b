//! `wasi:http` types to edge-core's and back: the incoming request, the response,
//! and the pieces the origin client shares with them (fields, bodies, methods).

use std::cell::RefCell;

use bytes::Bytes;
use edge_core::{EdgeResponse, Headers, OriginRequest, Rejection, RequestHead};
use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::types::{
    ErrorCode, Fields, HeaderError, Method, Request, RequestOptions, Response, Scheme, Trailers,
};
use spin_sdk::wasip3::wit_bindgen::{FutureReader, StreamReader, StreamResult};
use spin_sdk::wasip3::{wit_future, wit_stream};

/// How much a body read asks the stream for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The end of a body: its trailers, or why it broke off.
pub type BodyEnd = FutureReader<Result<Option<Trailers>, ErrorCode>>;

/// Why a body could not be read whole.
pub enum BodyError {
    TooLarge,
    Broken(ErrorCode),
    /// Still coming at the deadline (see [`origin_response`]).
    Late,
}

/// The request's head, in five host calls (method, path, authority, and the
/// fields: a handle to them, then their copy).
pub fn request_head(request: &Request) -> RequestHead {
    RequestHead {
        method: method_name(request.get_method()),
        path_and_query: request
            .get_path_with_query()
            .unwrap_or_else(|| "/".to_owned()),
        host: request.get_authority(),
        headers: headers(&request.get_headers()),
    }
}

/// The request's body, read only when the returned future is first polled: a flow
/// that never needs it (a GET) leaves the stream untouched.
pub async fn read_request_body(request: Request, limit: u64) -> Result<Bytes, Rejection> {
    // Dropped at the end of this function, which tells the host the body was handled.
    let (_handled, handled_reader) = wit_future::new(|| Ok(()));
    let (contents, end) = Request::consume_body(request, handled_reader);
    read_body(contents, end, limit, None, None)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => Rejection::body_too_large(limit),
            // Broken chunking or a body shorter than its Content-Length: malformed, 400.
            BodyError::Broken(code) => Rejection::bad_body(&format!("{code:?}")),
            BodyError::Late => unreachable!("no deadline was given"),
        })
}

/// Reads a body to its end, refusing one longer than `limit` bytes, and giving up
/// when a part comes after `deadline` (monotonic nanoseconds; checked as parts
/// come, so no timer is left to cancel).
///
/// A body refused for its length is never held whole: one whose `Content-Length`
/// (`declared`) is over the limit is refused before any read, and the buffer of
/// one without a length grows to at most one byte past the limit, where the read
/// stops. (A guest that read a 300 MB answer whole ran out of memory and trapped,
/// failing every request in flight on its instance.)
///
/// A body whose `Content-Length` (`declared`) came whole in the first part read
/// is complete: HTTP's framing delivers no more and no fewer bytes than the
/// field says, or fails the body. It is returned at once, without the read
/// that would only say the stream ended, the clock read before it, or the wait
/// for trailers, which a body framed by length cannot have; the host's
/// first-byte limit bounded it (`edge-host` collects a body of up to 64 KiB
/// within that limit; a host that streams it bounds its first part by that
/// limit and one between-bytes gap). A body in several parts is read to its
/// end as before.
///
/// This relies on the host removing a `Content-Length` that arrived beside
/// `Transfer-Encoding` (which frames the body instead, and which wasi:http does
/// not show the guest), as RFC 9112 section 6.3 requires of an intermediary:
/// `edge-host` does (`outbound.rs`). On a host that keeps it (wasmtime's
/// default outbound client does), an origin that sends both, with a first
/// chunk exactly as long as the length, would have its body cut there.
pub async fn read_body(
    mut contents: StreamReader<u8>,
    end: BodyEnd,
    limit: u64,
    deadline: Option<u64>,
    mut declared: Option<u64>,
) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    // One past the limit: a read that fills it proves the body too long.
    let most = usize::try_from(limit).map_or(usize::MAX, |limit| limit.saturating_add(1));
    let mut body = Vec::new();
    loop {
        reserve_within(&mut body, most);
        let (status, filled) = contents.read(body).await;
        body = filled;
        if body.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        // Taken: only the first part is measured against the length.
        if declared
            .take()
            .is_some_and(|length| length > 0 && body.len() as u64 == length)
        {
            return Ok(Bytes::from(body));
        }
        match status {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
        if deadline.is_some_and(|deadline| monotonic_clock::now() > deadline) {
            return Err(BodyError::Late);
        }
    }
    drop(contents);
    end.await.map_err(BodyError::Broken)?;
    Ok(Bytes::from(body))
}

/// Room for the next read: at least [`READ_CHUNK`] bytes, and twice what the
/// buffer held as it grows (so a long body is copied a few times, not once per
/// part), but never capacity for more than `most` bytes in all.
fn reserve_within(body: &mut Vec<u8>, most: usize) {
    let spare = body.capacity() - body.len();
    if spare >= READ_CHUNK || body.capacity() >= most {
        return;
    }
    let wanted = body
        .capacity()
        .saturating_mul(2)
        .max(body.len().saturating_add(READ_CHUNK))
        .min(most);
    body.reserve_exact(wanted - body.len());
}

/// The edge's answer as a `wasi:http` response; headers the host refuses (which
/// edge-core's own answers never carry, but an origin's might) make it a 502.
pub fn response(answer: EdgeResponse) -> Response {
    let status = answer.status;
    let (headers, body) = match fields(answer.headers) {
        Ok(headers) => (headers, answer.body),
        Err(_) => {
            return response(EdgeResponse {
                status: 502,
                headers: [("content-type", "application/json")].into_iter().collect(),
                body: Bytes::from(edge_core::error_body(
                    "bad_origin_headers",
                    "the answer's headers could not be passed on",
                )),
            });
        }
    };
    let (contents, end) = send_body(body);
    let (response, _sent) = Response::new(headers, contents, end);
    // A new response is a 200 (wasi:http's `response.new`): a host call saved on
    // most answers. edge-core's statuses are all valid (100 to 599).
    if status != 200 {
        let _ = response.set_status_code(status);
    }
    response
}

/// A request to an origin, its body streamed if it has one. `wasi:http` carries the
/// authority apart from the fields, which may not hold `Host` (edge-core never
/// forwards one; the origin's URL names the authority).
///
/// The request asks the host to give up after `limit_ns` to connect, to the first
/// byte, or between two parts of the body, as CloudFront's origin timeouts do;
/// the second value says whether the host took the options (`edge-host` and Spin
/// enforce them). With them the caller needs no timer of its own: it checks the
/// parts of a body that takes more than one read against the same limit as
/// they come ([`read_body`]).
/// A host that accepts the options without enforcing them is not detected.
pub fn origin_request(
    request: &OriginRequest<'_>,
    limit_ns: u64,
) -> Result<(Request, bool), String> {
    let uri: http::Uri = request
        .url
        .parse()
        .map_err(|error| format!("bad origin URL {}: {error}", request.url))?;
    let mut headers = request.headers.clone();
    headers.remove("host");
    if declares_length(request.method, &request.body) {
        headers.set("content-length", request.body.len().to_string());
    }
    let headers =
        fields(headers).map_err(|error| format!("bad origin request headers: {error:?}"))?;
    let (contents, end) = send_body(request.body.clone());
    let (options, host_times_out) = request_options(limit_ns);
    let (outbound, _sent) = Request::new(headers, contents, end, Some(options));
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") | None => Scheme::Http,
        Some(other) => Scheme::Other(other.to_owned()),
    };
    let path = uri.path_and_query().map(|path| path.as_str());
    // A new request is a GET (wasi:http's `request.new`): no call to say so.
    let method_set =
        request.method == "GET" || outbound.set_method(&method(request.method)).is_ok();
    let set = [
        outbound.set_scheme(Some(&scheme)),
        outbound.set_authority(uri.authority().map(|authority| authority.as_str())),
        outbound.set_path_with_query(path),
    ];
    if !method_set || set.iter().any(Result::is_err) {
        return Err(format!(
            "bad origin request {} {}",
            request.method, request.url
        ));
    }
    Ok((outbound, host_times_out))
}

/// Whether an origin request says `Content-Length`: whenever it has a body, and
/// for an empty one on every method but GET and HEAD (`Content-Length: 0`, as
/// the Worker's `fetch` sends): without it the host frames a write that has no
/// body with `Transfer-Encoding: chunked`, which some origins refuse.
fn declares_length(method: &str, body: &[u8]) -> bool {
    !body.is_empty() || !edge_core::request::is_read(method)
}

thread_local! {
    /// The last origin time limit asked for, as options the host has taken (and
    /// whether it took them): a request's options are a copy of it, one host call
    /// instead of four, on a host that keeps the instance for further requests.
    /// Every first attempt asks for the same limit (the configured
    /// `origin_timeout_ms`, or `total_timeout_ms` if smaller); a retry (after a
    /// failure or a 5xx) asks for what time is left, and then the options are
    /// made anew twice: for the retry and for the next first attempt.
    static OPTIONS: RefCell<Option<(u64, RequestOptions, bool)>> = const { RefCell::new(None) };
}

/// Options asking the host to give up after `limit_ns` to connect, to the first
/// byte, or between two parts of the body, and whether it took them.
fn request_options(limit_ns: u64) -> (RequestOptions, bool) {
    OPTIONS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((limit, options, host_times_out)) = kept.as_ref()
            && *limit == limit_ns
        {
            return (options.clone(), *host_times_out);
        }
        let options = RequestOptions::new();
        let limit = Some(limit_ns);
        let host_times_out = options.set_connect_timeout(limit).is_ok()
            && options.set_first_byte_timeout(limit).is_ok()
            && options.set_between_bytes_timeout(limit).is_ok();
        let copy = options.clone();
        *kept = Some((limit_ns, options, host_times_out));
        (copy, host_times_out)
    })
}

/// An origin's response: status, headers, and its whole body, which must have come
/// whole by `deadline` (monotonic nanoseconds) when one is given, and be at most
/// `limit` bytes long (`max_origin_body_bytes`). A failed body comes with the
/// status the origin answered.
pub async fn origin_response(
    response: Response,
    deadline: Option<u64>,
    limit: u64,
) -> Result<(u16, Headers, Bytes), (u16, BodyError)> {
    let status = response.get_status_code();
    let headers = headers(&response.get_headers());
    let declared = headers.content_length().and_then(Result::ok);
    let (_handled, handled_reader) = wit_future::new(|| Ok(()));
    let (contents, end) = Response::consume_body(response, handled_reader);
    let body = read_body(contents, end, limit, deadline, declared)
        .await
        .map_err(|error| (status, error))?;
    Ok((status, headers, body))
}

/// Headers as one `fields` resource, in one host call; names are already lower case.
pub fn fields(headers: Headers) -> Result<Fields, HeaderError> {
    let entries: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    Fields::from_list(&entries)
}

/// Every field, values as text (a value that is not UTF-8 is read lossily).
pub fn headers(fields: &Fields) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in fields.copy_all() {
        let value = String::from_utf8(value)
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
        headers.append_owned(name, value);
    }
    headers
}

/// A body to send with a message: no stream at all when it is empty, otherwise a
/// stream a background task writes once the host starts reading it.
pub fn send_body(body: Bytes) -> (Option<StreamReader<u8>>, BodyEnd) {
    // Dropping the writer sends its default: the end of the body, without trailers.
    let (end_writer, end) = wit_future::new(|| Ok(None));
    if body.is_empty() {
        return (None, end);
    }
    let (mut writer, contents) = wit_stream::new();
    spin_sdk::wasip3::spawn(async move {
        // A reader that went away (the client left) is nothing to report here.
        let _unwritten = writer.write_all(Vec::from(body)).await;
        drop(writer);
        drop(end_writer);
    });
    (Some(contents), end)
}

pub fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => return other,
    }
    .to_owned()
}

pub fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}
