//! The edge as a Spin component (`wasm32-wasip2`, `wasi:http/handler@0.3.0`): it
//! translates HTTP requests and responses, Spin variables, Spin key-value and
//! outbound `wasi:http` into edge-core's types; [`edge_core::handle`] runs the
//! caching flow. Nothing here decides policy.
//!
//! - [`io`]: [`edge_core::EdgeIo`] over Spin: key-value, one origin attempt,
//!   the clock, background tasks.
//!
//! Per-instance state (the configuration with the origins' passive health and
//! the misses in flight, and the key-value handle) lives in thread-locals for
//! the instance's life. A host that reuses one instance for many (also
//! concurrent) requests, such as `edge-host` (wasmtime's `ProxyHandler`), keeps
//! it across them, which is what makes passive health and request collapsing
//! work; a host that makes a fresh instance per request loses only those two.

mod io;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use edge_core::{Edge, EdgeConfig, EdgeResponse, Rejection, RequestHead, config::vars};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use spin_sdk::http::Request;
use spin_sdk::http_service;

type Response = http::Response<Full<Bytes>>;

/// Small allocations from size classes (`edge-alloc`), the rest and the classes'
/// chunks from talc: a HIT makes about 90 allocations, which cost a sixth of its
/// instructions in talc alone and a fifth in wasi-libc's dlmalloc before it.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
#[allow(unsafe_code, reason = "the allocator's one requirement, stated below")]
// SAFETY: without the atomics feature the component has one thread.
static ALLOCATOR: edge_alloc::SizeClasses<talc::wasm::WasmDynamicTalc> =
    unsafe { edge_alloc::SizeClasses::new(talc::wasm::new_wasm_dynamic_allocator()) };

thread_local! {
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

#[http_service]
async fn handle(request: Request) -> Response {
    let edge = match instance_edge().await {
        Ok(edge) => edge,
        Err(message) => {
            let head = RequestHead {
                method: request.method().as_str().to_owned(),
                path_and_query: "/".to_owned(),
                host: None,
                headers: edge_core::Headers::new(),
            };
            let refused = Rejection::new(500, "edge_misconfigured", message);
            return response(edge_core::flow::respond::rejection(&head, &refused));
        }
    };
    let (parts, body) = request.into_parts();
    let head = RequestHead {
        method: parts.method.as_str().to_owned(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        host: parts.uri.authority().map(|a| a.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let io = Rc::new(io::SpinIo::new().await);
    let limit = edge.config.max_body_bytes;
    let body = async move {
        let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
        match Limited::new(body, limit_bytes).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            // Over the limit is 413; anything else (broken chunking, a body
            // shorter than its Content-Length) is a malformed request, 400.
            Err(error) if error.is::<LengthLimitError>() => Err(Rejection::body_too_large(limit)),
            Err(error) => Err(Rejection::bad_body(&error.to_string())),
        }
    };
    response(edge_core::handle(&edge, &io, head, body).await)
}

/// The instance's edge, built from the Spin variables on first use.
async fn instance_edge() -> Result<Rc<Edge>, String> {
    if let Some(edge) = EDGE.with(|slot| slot.borrow().clone()) {
        return Ok(edge);
    }
    let mut values = Vec::new();
    for name in vars::ALL {
        if let Ok(value) = spin_sdk::variables::get(*name).await {
            values.push((*name, value));
        }
    }
    let config = EdgeConfig::from_vars(|name| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| e.to_string())?;
    Ok(EDGE.with(|slot| {
        slot.borrow_mut()
            .get_or_insert_with(|| Edge::new(config))
            .clone()
    }))
}

fn response(answer: EdgeResponse) -> Response {
    let mut builder = http::Response::builder().status(answer.status);
    for (name, value) in answer.headers.iter() {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(answer.body)).unwrap_or_else(|_| {
        let mut fallback = http::Response::new(Full::new(Bytes::from(edge_core::error_body(
            "bad_origin_headers",
            "the answer's headers could not be passed on",
        ))));
        *fallback.status_mut() = http::StatusCode::BAD_GATEWAY;
        fallback
    })
}
