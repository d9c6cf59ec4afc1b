//! What kind of request arrived: health check, proxied API call, or a bad request
//! refused before it reaches an origin; and which of its headers the origin may see.

use crate::behaviour::Behaviour;
use crate::config::EdgeConfig;
use crate::headers::Headers;

/// The parts of an incoming request that edge decisions read. Adapters build it
/// from their platform's request type; the body is handled separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Path and optional query, e.g. `/api/songs/1/comments?limit=20`.
    pub path_and_query: String,
    /// The request's authority (`Host`), if any.
    pub host: Option<String>,
    pub headers: Headers,
}

impl RequestHead {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The host as it goes into cache keys: lower-case, default port dropped,
    /// `edge` when the client sent none.
    pub fn key_host(&self) -> String {
        let host = self
            .host
            .as_deref()
            .or_else(|| self.headers.get("host"))
            .unwrap_or("edge");
        let host = host.trim().to_ascii_lowercase();
        host.strip_suffix(":80").map(str::to_owned).unwrap_or(host)
    }
}

/// How a request may be handled with respect to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// GET or HEAD without `Authorization`: looked up in and stored to the cache.
    Cacheable,
    /// GET or HEAD that the cache must not answer (`Authorization`, `no-store`,
    /// a precondition in [`ORIGIN_PRECONDITIONS`]): forwarded with retries,
    /// never stored, answered with `X-Cache: BYPASS`.
    Bypass,
    /// POST, PUT, PATCH, DELETE, and OPTIONS (safe, but not a read): forwarded
    /// with the body and every end-to-end header; on success an unsafe method
    /// invalidates what it changed (see [`crate::invalidate`]).
    Unsafe,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`: the edge answers 200 itself.
    Health,
    /// `/api/*`: to the origin group.
    Proxy(ProxyKind),
    /// Answered by the edge with an error, never sent to an origin.
    Reject(Rejection),
}

/// A refused request: status, a stable machine-readable code, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The `Allow` field of a 405: the methods the target answers (RFC 9110
    /// section 15.5.6: a 405 MUST carry it).
    pub allow: Option<&'static str>,
}

impl Rejection {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// 405, naming the methods that `allow` lists.
    pub fn method_not_allowed(message: impl Into<String>, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(405, "method_not_allowed", message)
        }
    }

    /// The JSON body in the origin's shape, `{"error":"<message>","code":"<code>"}`.
    pub fn body(&self) -> String {
        error_body(self.code, &self.message)
    }

    /// For adapters that count body bytes while streaming a body without `Content-Length`.
    pub fn body_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "body_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// A body that could not be read to its end: broken chunked framing, or a
    /// connection that closed before `Content-Length` bytes came. That is the
    /// client's malformed request (400), not a body over the limit (413).
    pub fn bad_body(detail: &str) -> Self {
        Self::new(
            400,
            "bad_body",
            format!("the request body could not be read: {detail}"),
        )
    }

    /// No origin answered usably and there was nothing stale to serve.
    pub fn bad_gateway(detail: &str) -> Self {
        Self::new(
            502,
            "origin_unavailable",
            format!("no origin could answer: {detail}"),
        )
    }

    /// The total time bound ran out.
    pub fn gateway_timeout() -> Self {
        Self::new(504, "origin_timeout", "no origin answered in time")
    }

    /// `only-if-cached` and nothing stored may answer (RFC 9111 section 5.2.1.7).
    pub fn not_cached() -> Self {
        Self::new(
            504,
            "not_cached",
            "only-if-cached, and no stored response can answer this request",
        )
    }
}

/// A JSON error body in the origin's shape (`ErrorBody` in docs/openapi.json):
/// `error` is the message for the client's developer, `code` the machine-readable
/// name; both escaped.
pub fn error_body(code: &str, message: &str) -> String {
    format!(
        "{{\"error\":\"{}\",\"code\":\"{}\"}}",
        json_escape(message),
        json_escape(code)
    )
}

/// The body the edge answers `/healthz` with.
pub const HEALTH_BODY: &str = "{\"status\":\"ok\"}";

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// [`KNOWN_METHODS`] as an `Allow` value.
const KNOWN_METHODS_ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Decides where a request goes, refusing bad ones before any origin sees them.
/// Checks, in order: header size (431), method (405), path syntax (400),
/// `Content-Length` (400/413), then routing: `/healthz`, else the first
/// behaviour whose pattern matches (404 when none does; 405 when it does not
/// allow the method).
pub fn classify(head: &RequestHead, config: &EdgeConfig) -> Route {
    let header_bytes = head.headers.wire_size() as u64;
    if header_bytes > config.max_header_bytes {
        return Route::Reject(Rejection::new(
            431,
            "headers_too_large",
            format!(
                "request headers take {header_bytes} bytes, more than the {} allowed",
                config.max_header_bytes
            ),
        ));
    }
    let method = head.method.as_str();
    if !KNOWN_METHODS.contains(&method) {
        return Route::Reject(Rejection::method_not_allowed(
            format!("method `{method}` is not supported"),
            KNOWN_METHODS_ALLOW,
        ));
    }
    if let Some(problem) = path_problem(&head.path_and_query) {
        return Route::Reject(Rejection::new(400, "bad_path", problem));
    }
    if let Some(length) = head.headers.content_length() {
        match length {
            Err(value) => {
                return Route::Reject(Rejection::new(
                    400,
                    "bad_content_length",
                    format!("Content-Length `{value}` is not a number"),
                ));
            }
            Ok(length) if length > config.max_body_bytes => {
                return Route::Reject(Rejection::body_too_large(config.max_body_bytes));
            }
            Ok(_) => {}
        }
    }
    let path = head.path();
    if path == "/healthz" {
        return if matches!(method, "GET" | "HEAD") {
            Route::Health
        } else {
            Route::Reject(Rejection::method_not_allowed(
                "/healthz answers GET and HEAD only",
                "GET, HEAD",
            ))
        };
    }
    let Some(behaviour) = config.behaviour_for(path) else {
        return Route::Reject(Rejection::new(
            404,
            "not_found",
            format!("no route for `{path}`: no behaviour matches it"),
        ));
    };
    if !behaviour.methods.allows(method) {
        return Route::Reject(Rejection::method_not_allowed(
            format!(
                "`{method}` is not allowed on `{}` (allowed: {})",
                behaviour.pattern,
                behaviour.methods.as_str()
            ),
            behaviour.methods.as_str(),
        ));
    }
    Route::Proxy(proxy_kind(head, config))
}

fn proxy_kind(head: &RequestHead, config: &EdgeConfig) -> ProxyKind {
    if !is_read(&head.method) {
        return ProxyKind::Unsafe;
    }
    let cc = crate::cache_control::CacheControl::from_headers(&head.headers);
    if !config.cache
        || head.headers.contains("authorization")
        || cc.no_store
        || ORIGIN_PRECONDITIONS
            .iter()
            .any(|name| head.headers.contains(name))
    {
        ProxyKind::Bypass
    } else {
        ProxyKind::Cacheable
    }
}

/// The safe methods of RFC 9110 section 9.2.1: GET, HEAD, OPTIONS and TRACE.
/// Their answers invalidate nothing (RFC 9111 section 4.4 names unsafe ones).
pub fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// GET and HEAD: the reads the cache answers, and that carry only what the
/// behaviour forwards. An OPTIONS (a CORS preflight) is safe but not one: it
/// goes on whole, as writes do, and is never stored.
pub fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

fn path_problem(path_and_query: &str) -> Option<String> {
    if !path_and_query.starts_with('/') {
        return Some(format!(
            "request target `{path_and_query}` must start with `/`"
        ));
    }
    if path_and_query
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b >= 0x80)
    {
        return Some("request target contains spaces, control or non-ASCII bytes".to_owned());
    }
    if path_and_query.contains('#') {
        return Some("request target contains a fragment".to_owned());
    }
    let path = path_and_query.split('?').next().unwrap_or_default();
    let empty_segment = path.as_bytes().windows(2).any(|pair| pair == b"//");
    if empty_segment || path.split('/').any(is_dot_segment) {
        return Some(format!(
            "path `{path}` is not normalised (empty or dot segments)"
        ));
    }
    None
}

/// `.` or `..`, each dot possibly percent-encoded (`%2e`, `%2E`): a segment a path
/// normaliser would remove. Checked byte by byte: it runs on every request.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() && dots <= 2 {
        rest = match rest {
            [b'.', after @ ..] => after,
            [b'%', b'2', b'e' | b'E', after @ ..] => after,
            _ => return false,
        };
        dots += 1;
    }
    rest.is_empty() && (1..=2).contains(&dots)
}

/// Preconditions that only an origin evaluates (RFC 9111 section 4.3.2; a
/// cache MAY ignore them, RFC 9110 sections 13.1.1 and 13.1.4): a read carrying
/// one bypasses the cache, so that the origin evaluates it. (`If-None-Match`
/// and `If-Modified-Since` are the cache's own to answer; see
/// [`crate::conditional`].)
pub const ORIGIN_PRECONDITIONS: &[&str] = &["if-match", "if-unmodified-since"];

/// The preconditions a read that bypasses the cache takes to the origin,
/// whatever the behaviour forwards: its answer is never stored, the origin
/// evaluates them together in their order (RFC 9110 section 13.2.2), and an
/// edge that does not act as a cache for the request must forward them
/// (section 13.2.1).
pub const PRECONDITIONS: &[&str] = &[
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// Request headers that rewrite what the origin thinks the request is; never forwarded.
pub const OVERRIDE_HEADERS: &[&str] = &[
    "host",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "content-length",
    "expect",
];

/// The headers to send to an origin for this request under `behaviour`.
/// Reads (GET, HEAD) carry only the behaviour's forwarded headers and selected
/// cookies, which also key the cache (see [`crate::behaviour`]): anything else
/// (for example `X-Forwarded-Host`, or a session cookie) could make the origin
/// answer differently for one client and plant that answer for all. Writes
/// and OPTIONS, never stored, carry every end-to-end header except those that
/// override routing or method. The edge adds `Via`. Conditional headers for
/// revalidation are added by the caller.
pub fn forward_headers(head: &RequestHead, behaviour: &Behaviour) -> Headers {
    forward(head, behaviour, &[])
}

/// What a read that the cache does not answer sends: [`forward_headers`] and
/// the client's [`PRECONDITIONS`] (its answer is never stored).
pub fn bypass_headers(head: &RequestHead, behaviour: &Behaviour) -> Headers {
    forward(head, behaviour, PRECONDITIONS)
}

/// [`forward_headers`], and on a read also the fields named in `also`.
fn forward(head: &RequestHead, behaviour: &Behaviour, also: &[&str]) -> Headers {
    let mut forwarded = Headers::new();
    let read = is_read(&head.method);
    let mut client = head.headers.clone();
    client.remove_hop_by_hop();
    for (name, value) in client.iter() {
        let allowed = if read {
            behaviour.headers.iter().any(|h| h == name) || also.contains(&name)
        } else {
            !OVERRIDE_HEADERS.contains(&name)
        };
        if allowed {
            forwarded.append(name, value);
        }
    }
    if read && let Some(cookies) = behaviour.selected_cookies(&client) {
        forwarded.append("cookie", cookies);
    }
    forwarded.append("via", "1.1 edge");
    forwarded
}

/// The method to send to the origin: a HEAD is fetched as GET so the answer can
/// be stored and serve later GETs too; the adapter drops the body for the client.
pub fn origin_method(method: &str) -> &str {
    if method == "HEAD" { "GET" } else { method }
}

#[cfg(test)]
mod tests;
