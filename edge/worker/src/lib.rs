//! The edge as a Cloudflare Worker: it translates Workers requests and
//! responses, Worker vars, the Cache API and `fetch` into edge-core's types;
//! [`edge_core::handle`] runs the caching flow. Nothing here decides policy.
//!
//! # Layout
//! - [`body`]: the client's and the origins' bodies, read within their limits.
//! - [`convert`]: `worker` request/response/header types to and from edge-core's.
//! - [`store`]: the Cache API as edge-core's byte key-value store.
//! - [`io`]: [`edge_core::EdgeIo`] over the Workers runtime: one origin attempt
//!   with `fetch`, the clock, `ctx.wait_until` for background refreshes.
//!
//! Per-isolate state (the configuration from Worker vars, the origins' passive
//! health) lives in a thread-local for the isolate's life: a Worker isolate is
//! single-threaded and reused for many requests, but never shared between data
//! centres, so health is learned separately in each.

pub mod body;
pub mod convert;
pub mod io;
pub mod store;

use std::cell::RefCell;
use std::rc::Rc;

use body::BodyError;
use edge_core::{ConfigError, Edge, EdgeConfig, Rejection};
use worker::{Context, Env, Request, Response, event};

thread_local! {
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

/// The isolate's edge, built from the Worker vars on first use. Vars cannot
/// change under a running isolate (a new deployment starts new isolates).
fn isolate_edge(env: &Env) -> Result<Rc<Edge>, ConfigError> {
    if let Some(edge) = EDGE.with(|slot| slot.borrow().clone()) {
        return Ok(edge);
    }
    let config = EdgeConfig::from_vars(|name| env.var(name).ok().map(|value| value.to_string()))?;
    Ok(EDGE.with(|slot| {
        slot.borrow_mut()
            .get_or_insert_with(|| Edge::new(config))
            .clone()
    }))
}

#[event(fetch)]
async fn fetch(mut request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let head = convert::request_head(&request)?;
    let edge = match isolate_edge(&env) {
        Ok(edge) => edge,
        Err(error) => {
            worker::console_error!("edge configuration: {error}");
            let refused = Rejection::new(500, "edge_misconfigured", error.to_string());
            return convert::response(edge_core::flow::respond::rejection(&head, &refused));
        }
    };
    let url = request.url()?;
    let zone = format!("{}://{}", url.scheme(), head.key_host());
    let io = Rc::new(io::WorkerIo::new(
        zone,
        ctx,
        edge.config.max_origin_body_bytes,
    ));
    let limit = edge.config.max_body_bytes;
    let body = async move {
        match body::request(&mut request, limit).await {
            Ok(body) => Ok(body.into()),
            Err(BodyError::TooLong) => Err(Rejection::body_too_large(limit)),
            Err(BodyError::Failed(error)) => Err(Rejection::bad_body(&error.to_string())),
        }
    };
    convert::response(edge_core::handle(&edge, &io, head, body).await)
}
