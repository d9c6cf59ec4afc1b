//! Translation between `worker` types and `edge-core` types: request heads,
//! header lists and responses. Nothing here decides anything.

use edge_core::{EdgeResponse, Headers, RequestHead};
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
        method: method(request),
        path_and_query,
        host,
        headers: core_headers(request.headers()),
    })
}

/// The method as the client sent it (the runtime upper-cases the six that the
/// Fetch standard normalises, and no others). Not `Request::method`: workers-rs
/// maps every method it does not list (PROPFIND, PURGE, MKCOL…) to GET, which
/// would serve a cached page for them instead of edge-core's 405.
pub fn method(request: &Request) -> String {
    request.inner().method()
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

/// edge-core's finished response as a Workers response. The `Response`
/// constructor refuses a body (even an empty one) on body-less statuses, and
/// edge-core leaves the body empty exactly then.
pub fn response(answer: EdgeResponse) -> worker::Result<Response> {
    let builder = ResponseBuilder::new()
        .with_status(answer.status)
        .with_headers(worker_headers(&answer.headers)?);
    Ok(if answer.body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(answer.body.to_vec())
    })
}
