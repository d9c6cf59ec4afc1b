//! The edge as a Spin component (`wasm32-wasip2`, `wasi:http/handler@0.3.0`): it
//! translates `wasi:http` requests and responses, Spin variables, Spin key-value
//! and outbound `wasi:http` into edge-core's types; [`edge_core::handle`] runs the
//! caching flow. Nothing here decides policy.
//!
//! - [`io`]: [`edge_core::EdgeIo`] over Spin: key-value, one origin attempt,
//!   the clock, background tasks.
//!
//! The handler is exported directly on `wasi:http` types rather than through
//! spin-sdk's `http_service` conversions to and from the `http` crate: a request
//! becomes a [`RequestHead`] in five host calls (method, path, authority, and
//! the fields: a handle, then their copy), its body is read only if the flow asks for it, and a response is one
//! `fields` list, a status and the body. Under callgrind the conversions cost a
//! third of a cache HIT.
//!
//! Per-instance state (the configuration with the origins' passive health and
//! the misses in flight, and the key-value handle) lives in thread-locals for
//! the instance's life. A host that reuses one instance for many (also
//! concurrent) requests, such as `edge-host` (wasmtime's `ProxyHandler`), keeps
//! it across them, which is what makes passive health and request collapsing
//! work; a host that makes a fresh instance per request loses only those two.

mod io;
mod wire;

use std::cell::RefCell;
use std::rc::Rc;

use edge_core::{Edge, EdgeConfig, Rejection, config::vars};
use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};

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

struct Component;

spin_sdk::wasip3::http::service::export!(Component);

impl spin_sdk::wasip3::exports::http::handler::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let head = wire::request_head(&request);
        let edge = match instance_edge().await {
            Ok(edge) => edge,
            Err(message) => {
                let refused = Rejection::new(500, "edge_misconfigured", message);
                return Ok(wire::response(edge_core::flow::respond::rejection(
                    &head, &refused,
                )));
            }
        };
        let io = Rc::new(io::SpinIo::new(edge.config.max_origin_body_bytes).await);
        let body = wire::read_request_body(request, edge.config.max_body_bytes);
        Ok(wire::response(
            edge_core::handle(&edge, &io, head, body).await,
        ))
    }
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
