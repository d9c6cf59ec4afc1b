//! The edge as a Cloudflare Worker: `edge-core` makes every decision, this crate
//! carries them out with the Workers runtime (Cache API for storage, `fetch` to the
//! origin group, `ctx.wait_until` for background refreshes).
//!
//! # Layout
//! - [`convert`]: `worker` request/response/header types to and from edge-core's.
//! - [`store`]: the Cache API as the record store (records, song generations).
//! - [`upstream`]: attempts at the origin group, with edge-core's failover rules.
//! - [`clock`]: the Workers clock.
//!
//! Per-isolate state (configuration from Worker vars and the origins' passive
//! health) lives in a thread-local for the isolate's life: a Worker isolate is
//! single-threaded and reused for many requests, but never shared between data
//! centres, so health is learned separately in each.

pub mod clock;
pub mod convert;
pub mod store;
pub mod upstream;

use std::cell::RefCell;
use std::rc::Rc;

use edge_core::{
    CacheKey, CacheStatus, ConfigError, EdgeConfig, HEALTH_BODY, Headers, Lookup, OriginHealth,
    ProxyKind, Rejection, RequestHead, Route, StoredResponse, classify, client_headers,
    forward_headers, generation_key, invalidation, is_origin_error_status, lookup, next_generation,
    origin_method, song_of_path, stale_if_error,
};
use worker::{Context, Env, Request, Response, event};

use crate::clock::now_ms;
use crate::store::Store;
use crate::upstream::{OriginAnswer, Outbound};

/// What one isolate keeps between requests.
pub struct Edge {
    pub config: EdgeConfig,
    pub health: RefCell<OriginHealth>,
}

thread_local! {
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

impl Edge {
    /// The isolate's edge, built from the Worker vars on first use. Vars cannot
    /// change under a running isolate (a new deployment starts new isolates).
    fn for_isolate(env: &Env) -> Result<Rc<Self>, ConfigError> {
        if let Some(edge) = EDGE.with(|slot| slot.borrow().clone()) {
            return Ok(edge);
        }
        let config =
            EdgeConfig::from_vars(|name| env.var(name).ok().map(|value| value.to_string()))?;
        let health = RefCell::new(OriginHealth::new(config.origins.len()));
        let edge = Rc::new(Self { config, health });
        EDGE.with(|slot| *slot.borrow_mut() = Some(edge.clone()));
        Ok(edge)
    }
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let edge = match Edge::for_isolate(&env) {
        Ok(edge) => edge,
        Err(error) => {
            worker::console_error!("edge configuration: {error}");
            return convert::rejection(&Rejection::new(
                500,
                "edge_misconfigured",
                error.to_string(),
            ));
        }
    };
    let head = convert::request_head(&request)?;
    match classify(&head, &edge.config) {
        Route::Health => {
            let mut headers = Headers::new();
            headers.set("content-type", "application/json");
            let headers = client_headers(&headers, CacheStatus::Bypass, None);
            convert::response(
                200,
                &headers,
                HEALTH_BODY.as_bytes().to_vec(),
                head.method == "HEAD",
            )
        }
        Route::Reject(rejection) => convert::rejection(&rejection),
        Route::Proxy(kind) => {
            let url = request.url()?;
            let zone = format!("{}://{}", url.scheme(), head.key_host());
            let store = Rc::new(Store::new(zone));
            match kind {
                ProxyKind::Cacheable => serve_cacheable(edge, store, head, &ctx).await,
                ProxyKind::Bypass => serve_bypass(&edge, &head).await,
                ProxyKind::Unsafe => serve_write(&edge, &store, &head, request).await,
            }
        }
    }
}

/// The key of `path_and_query` under its song's current generation.
async fn current_key(store: &Store, host: &str, path_and_query: &str) -> CacheKey {
    let generation = match song_of_path(path_and_query) {
        Some(song) => store.generation(&generation_key(song)).await,
        None => 0,
    };
    CacheKey::new(host, path_and_query, generation)
}

async fn serve_cacheable(
    edge: Rc<Edge>,
    store: Rc<Store>,
    head: RequestHead,
    ctx: &Context,
) -> worker::Result<Response> {
    let head_request = head.method == "HEAD";
    let key = current_key(&store, &head.key_host(), &head.path_and_query).await;
    let stored = store.get(&key).await;
    match (lookup(stored.as_ref(), &head.headers, now_ms()), stored) {
        (Lookup::Hit { age }, Some(stored)) => {
            serve_stored(&stored, CacheStatus::Hit, age, head_request)
        }
        (Lookup::StaleWhileRevalidate { age }, Some(stored)) => {
            let response = serve_stored(&stored, CacheStatus::Stale, age, head_request);
            // The Cache API has no stale-while-revalidate of its own: the refresh
            // runs after the response, kept alive by wait_until.
            ctx.wait_until(async move {
                let conditional = stored.conditional_headers();
                fetch_and_store(&edge, &store, &head, &key, Some(&stored), &conditional).await;
            });
            response
        }
        (Lookup::Revalidate { conditional }, Some(stored)) => {
            match fetch_and_store(&edge, &store, &head, &key, Some(&stored), &conditional).await {
                Fetched::Revalidated(fresh) => serve_stored(
                    &fresh,
                    CacheStatus::Revalidated,
                    fresh.age(now_ms()),
                    head_request,
                ),
                Fetched::Answer(answer) => serve_answer(&answer, CacheStatus::Miss, head_request),
                Fetched::Failed(_) if stale_if_error(&stored, now_ms()) => serve_stored(
                    &stored,
                    CacheStatus::Stale,
                    stored.age(now_ms()),
                    head_request,
                ),
                Fetched::Failed(failure) => serve_failure(failure, head_request),
            }
        }
        _ => match fetch_and_store(&edge, &store, &head, &key, None, &Headers::new()).await {
            Fetched::Answer(answer) | Fetched::Failed(Ok(answer)) => {
                serve_answer(&answer, CacheStatus::Miss, head_request)
            }
            Fetched::Revalidated(fresh) => {
                serve_stored(&fresh, CacheStatus::Miss, fresh.age(now_ms()), head_request)
            }
            Fetched::Failed(Err(rejection)) => convert::rejection(&rejection),
        },
    }
}

/// How a fetch for the cache ended.
enum Fetched {
    /// The origin confirmed the stored response (304); the refreshed record was stored.
    Revalidated(StoredResponse),
    /// A usable answer; stored when edge-core allows.
    Answer(OriginAnswer),
    /// Every origin failed: the last 5xx answer, or the edge's own error.
    Failed(Result<OriginAnswer, Rejection>),
}

async fn fetch_and_store(
    edge: &Edge,
    store: &Store,
    head: &RequestHead,
    key: &CacheKey,
    previous: Option<&StoredResponse>,
    conditional: &Headers,
) -> Fetched {
    let mut headers = forward_headers(head);
    for (name, value) in conditional.iter() {
        headers.set(name, value);
    }
    let outbound = Outbound {
        method: origin_method(&head.method),
        path_and_query: &head.path_and_query,
        headers: &headers,
        body: None,
    };
    let request_time_ms = now_ms();
    // No request collapsing: workers-rs polls every request's futures on one
    // wasm-bindgen-futures queue, so a request woken by another's answer resumes
    // in that request's I/O context and workerd refuses its response ("Cannot
    // perform I/O on behalf of a different request"). Each miss fetches itself.
    let result = upstream::send(&outbound, &edge.config, &edge.health).await;
    let answer = match result {
        Ok(answer) if is_origin_error_status(answer.status) => return Fetched::Failed(Ok(answer)),
        Ok(answer) => answer,
        Err(rejection) => return Fetched::Failed(Err(rejection)),
    };
    let response_time_ms = now_ms();
    if let (304, Some(previous)) = (answer.status, previous) {
        let fresh = previous.revalidated(
            &answer.headers,
            request_time_ms,
            response_time_ms,
            &edge.config,
        );
        store.put(key, &fresh, &edge.config).await;
        return Fetched::Revalidated(fresh);
    }
    let record = StoredResponse::from_origin(
        &head.headers,
        answer.status,
        &answer.headers,
        answer.body.clone(),
        request_time_ms,
        response_time_ms,
        &edge.config,
    );
    if let Ok(record) = record {
        store.put(key, &record, &edge.config).await;
    }
    Fetched::Answer(answer)
}

async fn serve_bypass(edge: &Edge, head: &RequestHead) -> worker::Result<Response> {
    let headers = forward_headers(head);
    let outbound = Outbound {
        method: origin_method(&head.method),
        path_and_query: &head.path_and_query,
        headers: &headers,
        body: None,
    };
    let result = upstream::send(&outbound, &edge.config, &edge.health).await;
    serve_failure_or(result, CacheStatus::Bypass, head.method == "HEAD")
}

/// A write goes to the origin group (retried only when idempotent, as edge-core
/// says); after a success, what it changed is dropped from this data centre's cache.
async fn serve_write(
    edge: &Edge,
    store: &Store,
    head: &RequestHead,
    mut request: Request,
) -> worker::Result<Response> {
    let body = request.bytes().await?;
    if body.len() as u64 > edge.config.max_body_bytes {
        return convert::rejection(&Rejection::body_too_large(edge.config.max_body_bytes));
    }
    let headers = forward_headers(head);
    let outbound = Outbound {
        method: &head.method,
        path_and_query: &head.path_and_query,
        headers: &headers,
        // A DELETE or OPTIONS without a body stays without one.
        body: (!body.is_empty()).then_some(body.as_slice()),
    };
    let result = upstream::send(&outbound, &edge.config, &edge.health).await;
    if let Ok(answer) = &result {
        let host = head.key_host();
        let changed = invalidation(
            &head.method,
            &head.path_and_query,
            &host,
            answer.status,
            &answer.headers,
        );
        for target in &changed.targets {
            store.delete(&current_key(store, &host, target).await).await;
        }
        for &song in &changed.songs {
            let generation_key = generation_key(song);
            let current = store.generation(&generation_key).await;
            store
                .set_generation(
                    &generation_key,
                    next_generation(current, now_ms()),
                    &edge.config,
                )
                .await;
        }
    }
    serve_failure_or(result, CacheStatus::Bypass, false)
}

fn serve_stored(
    stored: &StoredResponse,
    status: CacheStatus,
    age: u64,
    head_request: bool,
) -> worker::Result<Response> {
    let headers = client_headers(&stored.headers, status, Some(age));
    convert::response(stored.status, &headers, stored.body.clone(), head_request)
}

fn serve_answer(
    answer: &OriginAnswer,
    status: CacheStatus,
    head_request: bool,
) -> worker::Result<Response> {
    let headers = client_headers(&answer.headers, status, None);
    convert::response(answer.status, &headers, answer.body.clone(), head_request)
}

fn serve_failure(
    failure: Result<OriginAnswer, Rejection>,
    head_request: bool,
) -> worker::Result<Response> {
    serve_failure_or(failure, CacheStatus::Miss, head_request)
}

fn serve_failure_or(
    result: Result<OriginAnswer, Rejection>,
    status: CacheStatus,
    head_request: bool,
) -> worker::Result<Response> {
    match result {
        Ok(answer) => serve_answer(&answer, status, head_request),
        Err(rejection) => convert::rejection(&rejection),
    }
}
