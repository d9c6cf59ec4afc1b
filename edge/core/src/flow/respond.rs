//! The responses the flow hands back to its adapter, complete: client headers
//! (`X-Cache`, `Age`, no hop-by-hop fields), `Content-Length` where the status
//! carries a body, no body for HEAD or body-less statuses, and 304s for clients
//! that already hold the current representation.

use bytes::Bytes;

use crate::conditional::{client_has_current, not_modified_headers};
use crate::decimal::decimal;
use crate::headers::Headers;
use crate::request::{HEALTH_BODY, Rejection, RequestHead};
use crate::serve::{CacheStatus, client_headers};

/// What the adapter sends to the client, as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeResponse {
    pub status: u16,
    pub headers: Headers,
    /// Empty for HEAD requests and for statuses that carry no body.
    pub body: Bytes,
}

/// Statuses whose responses never carry content (RFC 9110 sections 6.4.1, 15.3.6).
pub fn is_bodyless_status(status: u16) -> bool {
    status < 200 || status == 204 || status == 205 || status == 304
}

/// Finishes a response: the body is dropped for HEAD and body-less statuses, and
/// `Content-Length` states the length of the rest, so that the adapter's HTTP
/// layer sends it in one piece instead of chunked.
pub fn finish(head: &RequestHead, status: u16, mut headers: Headers, body: Bytes) -> EdgeResponse {
    headers.remove("content-length");
    let body = if is_bodyless_status(status) || head.method == "HEAD" {
        Bytes::new()
    } else {
        headers.append("content-length", decimal(body.len() as u64));
        body
    };
    EdgeResponse {
        status,
        headers,
        body,
    }
}

/// A response from the cache's side (stored, or fetched for the cache): a
/// client whose `If-None-Match` or `If-Modified-Since` shows it holds this very
/// representation gets a 304 instead of the body (RFC 9111 section 4.3.2).
pub fn cached(
    head: &RequestHead,
    status: u16,
    stored_headers: &Headers,
    cache_status: CacheStatus,
    age: Option<u64>,
    body: Bytes,
) -> EdgeResponse {
    let headers = client_headers(stored_headers, cache_status, age);
    if status == 200 && client_has_current(&head.headers, &headers) {
        return finish(head, 304, not_modified_headers(&headers), Bytes::new());
    }
    finish(head, status, headers, body)
}

/// An origin's answer passed on as it is (bypassed, writes, unstorable).
pub fn passed_on(
    head: &RequestHead,
    status: u16,
    headers: &Headers,
    cache_status: CacheStatus,
    body: Bytes,
) -> EdgeResponse {
    finish(
        head,
        status,
        client_headers(headers, cache_status, None),
        body,
    )
}

/// An edge-made error: the JSON body naming the problem, `X-Cache: BYPASS`.
pub fn rejection(head: &RequestHead, rejection: &Rejection) -> EdgeResponse {
    let mut headers = Headers::new();
    headers.append("content-type", "application/json");
    if let Some(allow) = rejection.allow {
        headers.append("allow", allow);
    }
    let headers = client_headers(&headers, CacheStatus::Bypass, None);
    let body = Bytes::from(rejection.body());
    finish(head, rejection.status, headers, body)
}

/// `GET /healthz`.
pub fn health(head: &RequestHead) -> EdgeResponse {
    let mut headers = Headers::new();
    headers.append("content-type", "application/json");
    let headers = client_headers(&headers, CacheStatus::Bypass, None);
    finish(
        head,
        200,
        headers,
        Bytes::from_static(HEALTH_BODY.as_bytes()),
    )
}
