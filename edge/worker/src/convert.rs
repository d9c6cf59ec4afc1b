//! Translation between `worker` types and `edge-core` types: request heads, header
//! lists and responses. Nothing here decides anything.

use edge_core::{CacheStatus, Headers, Rejection, RequestHead, client_headers};
use worker::{Request, Response, ResponseBuilder};

/// The parts of a Workers request that edge-core reads.
pub fn request_head(request: &Request) -> worker::Result<RequestHead> {
    let url = request.url()?;
    let mut path_and_query = url.path().to_owned();
    if let Some(query) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let host = url.host_str().map(|host| match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    });
    Ok(RequestHead {
        method: request.method().to_string().to_ascii_uppercase(),
        path_and_query,
        host,
        headers: core_headers(request.headers()),
    })
}

/// A Workers header map as an edge-core header list (names are lower-case in both).
pub fn core_headers(headers: &worker::Headers) -> Headers {
    headers.entries().collect()
}

/// An edge-core header list as a Workers header map.
pub fn worker_headers(headers: &Headers) -> worker::Result<worker::Headers> {
    let out = worker::Headers::new();
    for (name, value) in headers.iter() {
        out.append(name, value)?;
    }
    Ok(out)
}

/// A response for the client. Statuses that may not carry a body (and HEAD
/// requests) get none, because the Workers `Response` constructor refuses them.
pub fn response(
    status: u16,
    headers: &Headers,
    body: Vec<u8>,
    head_request: bool,
) -> worker::Result<Response> {
    let builder = ResponseBuilder::new()
        .with_status(status)
        .with_headers(worker_headers(headers)?);
    let null_body_status = matches!(status, 101 | 103 | 204 | 205 | 304);
    Ok(if head_request || null_body_status || body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(body)
    })
}

/// An edge-made error: JSON body naming the problem, `X-Cache: BYPASS`.
pub fn rejection(rejection: &Rejection) -> worker::Result<Response> {
    let mut headers = Headers::new();
    headers.set("content-type", "application/json");
    let headers = client_headers(&headers, CacheStatus::Bypass, None);
    response(
        rejection.status,
        &headers,
        rejection.body().into_bytes(),
        false,
    )
}
