//! How the host frames what passes through it: small bodies collected whole
//! before they are handed on, fields named by `Connection` dropped, a length
//! beside chunking dropped, `Connection:
//! close` after an error answer to a request whose body may be unread, and the
//! host's own JSON error answers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiBody;

/// Largest response body (by its `Content-Length`) that the host collects before
/// handing the response to hyper, and before handing an origin's response to the
/// guest: one write to the client (head and body together) and one read for the
/// guest, instead of a wake-up of the other side for each chunk.
pub(crate) const BUFFERED_BODY_BYTES: u64 = 64 * 1024;

pub(crate) type HostResponse = hyper::Response<WasiBody>;

/// Removes the fields a message's `Connection` names (RFC 9110 section 7.6.1).
/// wasi-http hides `Connection` itself from the component (a forbidden
/// header), so the component cannot see which other fields belong to the
/// connection; the host drops them, on requests in and responses from origins.
pub(crate) fn remove_connection_named(headers: &mut http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
}

/// Removes a `Content-Length` that came beside `Transfer-Encoding` (RFC 9112
/// section 6.3: the first frames the body, and an intermediary must remove the
/// second before it passes the message on). wasi:http does not show the guest
/// `Transfer-Encoding`, so the length would look like the body's, and the guest
/// stops reading an origin's body when its length has come.
pub(crate) fn remove_length_beside_chunking(headers: &mut http::HeaderMap) {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        headers.remove(http::header::CONTENT_LENGTH);
    }
}

/// Puts the request's `Host` into its URI's authority, where wasmtime's
/// `p3::Request::from_http` looks for it: `Host` itself is a forbidden field,
/// so without this the guest sees no host at all and keys every request under
/// `edge` (the Worker keys by the host of its URL). A target in absolute form
/// keeps its own authority (RFC 9112 section 3.2.2); a request without `Host`
/// or with an empty one (HTTP/1.0) is left as it is, and so is `OPTIONS *`.
///
/// `Err` is why the request is refused (400, RFC 9112 section 3.2): more than
/// one `Host`, or one that is not `host[:port]`.
pub(crate) fn authority_from_host<B>(request: &mut hyper::Request<B>) -> Result<(), String> {
    if request.uri().authority().is_some() || !request.uri().path().starts_with('/') {
        return Ok(());
    }
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err("the request has more than one Host field".to_owned());
    }
    if host.is_empty() {
        return Ok(());
    }
    let host = host.clone();
    let bad = || {
        format!(
            "the Host field `{}` is not a host[:port]",
            String::from_utf8_lossy(host.as_bytes())
        )
    };
    // An empty port is allowed and means none (RFC 3986 section 3.2.3).
    let without_empty_port = host
        .as_bytes()
        .strip_suffix(b":")
        .unwrap_or(host.as_bytes());
    let authority = http::uri::Authority::try_from(without_empty_port)
        .ok()
        // `Authority` takes user information, and leaves a port unchecked.
        .filter(|authority| {
            !authority.as_str().contains('@')
                && (authority.as_str() == authority.host() || authority.port_u16().is_some())
        })
        .ok_or_else(bad)?;
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| bad())?;
    Ok(())
}

pub(crate) fn has_body<B>(request: &hyper::Request<B>) -> bool {
    let headers = request.headers();
    headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || headers
            .get(hyper::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// An error answer to a request that carried a body says `Connection: close`.
/// The body may be left unread (over the limit, or refused before it was read);
/// hyper then closes the connection after the answer when the rest is still on
/// the wire, and a keep-alive client must not send its next request into it.
/// (The component cannot say so itself: `connection` is a forbidden header in
/// wasi-http.)
pub(crate) fn close_if_body_refused(has_body: bool, response: &mut HostResponse) {
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
}

pub(crate) fn host_error(status: u16, code: &str, message: &str) -> HostResponse {
    let body = edge_core::error_body(code, message);
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-cache", "BYPASS")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| {
            hyper::Response::new(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        })
}

/// The `Content-Length` of a message, when it states a single valid one.
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.parse().ok()
}

/// Collects a response body of at most [`BUFFERED_BODY_BYTES`] so that hyper
/// writes head and body in one go; larger or unframed bodies stream as they come.
/// A body the component fails to finish becomes a 502 instead of a truncated answer.
pub(crate) async fn buffer_small_body(response: HostResponse) -> HostResponse {
    if content_length(response.headers()).is_none_or(|length| length > BUFFERED_BODY_BYTES) {
        return response;
    }
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => hyper::Response::from_parts(
            parts,
            Full::new(collected.to_bytes())
                .map_err(|never| match never {})
                .boxed_unsync(),
        ),
        Err(error) => {
            tracing::warn!("the edge component's response body failed: {error:?}");
            host_error(
                502,
                "edge_body_failed",
                "the edge component's response body failed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, hosts: &[&str]) -> hyper::Request<()> {
        let mut request = hyper::Request::get(target);
        for host in hosts {
            request = request.header(http::header::HOST, *host);
        }
        request.body(()).expect("a request")
    }

    /// The URI the guest gets, or why the request is refused.
    fn guest_uri(target: &str, hosts: &[&str]) -> Result<String, String> {
        let mut request = request(target, hosts);
        authority_from_host(&mut request).map(|()| request.uri().to_string())
    }

    #[test]
    fn the_host_field_becomes_the_authority_the_guest_sees() {
        let check = |target, hosts: &[&str], expected: Result<&str, &str>| {
            let got = guest_uri(target, hosts);
            match expected {
                Ok(uri) => assert_eq!(got.as_deref(), Ok(uri), "{target} {hosts:?}"),
                Err(reason) => assert!(
                    got.as_ref().is_err_and(|error| error.contains(reason)),
                    "{target} {hosts:?}: {got:?}"
                ),
            }
        };
        check(
            "/api/songs/1?x=1",
            &["Api.Example:8000"],
            Ok("http://Api.Example:8000/api/songs/1?x=1"),
        );
        check("/api", &["127.0.0.1"], Ok("http://127.0.0.1/api"));
        check("/api", &["[::1]:8000"], Ok("http://[::1]:8000/api"));
        check("/api", &["a.example:"], Ok("http://a.example/api"));
        check("/api", &["[::1]:"], Ok("http://[::1]/api"));
        // Without a host, as before: the guest keys under `edge`.
        check("/api", &[], Ok("/api"));
        check("/api", &[""], Ok("/api"));
        // An absolute target names its own authority; `Host` is ignored.
        check(
            "http://target.example/api",
            &["other.example"],
            Ok("http://target.example/api"),
        );
        check("*", &["api.example"], Ok("*"));
        check(
            "/api",
            &["a.example", "b.example"],
            Err("more than one Host"),
        );
        check("/api", &["user@a.example"], Err("is not a host[:port]"));
        check("/api", &["a.example:port"], Err("is not a host[:port]"));
        check("/api", &["a.example::"], Err("is not a host[:port]"));
        check("/api", &[":"], Err("is not a host[:port]"));
        check("/api", &["a.example:70000"], Err("is not a host[:port]"));
        check("/api", &["a.example/x"], Err("is not a host[:port]"));
        check("/api", &["a b"], Err("is not a host[:port]"));
    }
}
