//! The edge as a Spin component (`wasm32-wasip2`, `wasi:http/handler@0.3.0`): it
//! translates HTTP requests, Spin variables and Spin key-value into edge-core's
//! types and carries out edge-core's decisions. Nothing here decides policy.
//!
//! - [`state`]: per-instance state (config, origin health, collapsing).
//! - [`fetch`]: calls to the origin group with time limits and failover.
//!
//! Background work: a stale-while-revalidate refresh is started with
//! `wasip3::spawn`; under wasi:http 0.3 the export task keeps running after the
//! response has been returned, so the refresh finishes after the client has its
//! answer, in the same instance.

mod fetch;
mod state;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use edge_core::{
    CacheKey, CacheStatus, EdgeConfig, Headers, Lookup, OriginHealth, ProxyKind, Rejection,
    RequestHead, Route, StoredResponse, classify, client_headers, config::vars, forward_headers,
    generation_key, invalidation, is_origin_error_status, lookup, next_generation, origin_method,
    parse_generation, song_of_path, stale_if_error,
};
use fetch::{FetchError, Fetched, fetch};
use http_body_util::{BodyExt, Full, Limited};
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use state::{Collapsed, Join};

type Response = http::Response<Full<Bytes>>;

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[http_service]
async fn handle(request: Request) -> Response {
    let config = match load_config().await {
        Ok(config) => config,
        Err(message) => return json_response(&Rejection::new(500, "edge_misconfigured", message)),
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
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    match classify(&head, &config) {
        Route::Health => {
            let mut headers = Headers::new();
            headers.append("content-type", "application/json");
            response(
                200,
                &client_headers(&headers, CacheStatus::Bypass, None),
                Bytes::from_static(edge_core::HEALTH_BODY.as_bytes()),
                &head,
            )
        }
        Route::Reject(rejection) => json_response(&rejection),
        // A cacheable request's body, if any, is never used, so it is not read.
        Route::Proxy(ProxyKind::Cacheable) => cacheable(&config, &head).await,
        Route::Proxy(ProxyKind::Bypass) => match read_body(body, &config).await {
            Ok(body) => bypass(&config, &head, body).await,
            Err(too_large) => too_large,
        },
        Route::Proxy(ProxyKind::Unsafe) => match read_body(body, &config).await {
            Ok(body) => unsafe_request(&config, &head, body).await,
            Err(too_large) => too_large,
        },
    }
}

/// The request body, or the 413 to answer when it exceeds the configured limit.
async fn read_body(
    body: impl http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>,
    config: &EdgeConfig,
) -> Result<Bytes, Response> {
    let limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(json_response(&Rejection::body_too_large(
            config.max_body_bytes,
        ))),
    }
}

async fn load_config() -> Result<Rc<EdgeConfig>, String> {
    if let Some(config) = state::with(|s| s.config.clone()) {
        return Ok(config);
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
    let config = Rc::new(config);
    state::with(|s| {
        if s.config.is_none() {
            s.health = OriginHealth::new(config.origins.len());
            s.config = Some(config.clone());
        }
        Ok(s.config.clone().unwrap_or(config))
    })
}

fn response(status: u16, headers: &Headers, body: Bytes, head: &RequestHead) -> Response {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers.iter() {
        builder = builder.header(name, value);
    }
    let body = if head.method == "HEAD" {
        Bytes::new()
    } else {
        builder = with_length(builder, status, &body);
        body
    };
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut fallback = http::Response::new(Full::new(Bytes::from_static(
            b"{\"error\":\"bad_origin_headers\"}",
        )));
        *fallback.status_mut() = http::StatusCode::BAD_GATEWAY;
        fallback
    })
}

/// States the body's length, so that the host frames the response with
/// `Content-Length` and writes it in one go instead of chunk by chunk (a chunked
/// response costs the host a second write and the client a second read).
/// Statuses that never carry a body get none (RFC 9110 section 8.6).
fn with_length(
    builder: http::response::Builder,
    status: u16,
    body: &Bytes,
) -> http::response::Builder {
    if status < 200 || status == 204 || status == 304 {
        builder
    } else {
        builder.header(http::header::CONTENT_LENGTH, body.len())
    }
}

fn json_response(rejection: &Rejection) -> Response {
    let mut headers = Headers::new();
    headers.append("content-type", "application/json");
    headers.append("x-cache", CacheStatus::Bypass.as_str());
    let mut builder = http::Response::builder().status(rejection.status);
    for (name, value) in headers.iter() {
        builder = builder.header(name, value);
    }
    let body = Bytes::from(rejection.body());
    with_length(builder, rejection.status, &body)
        .body(Full::new(body))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}

fn error_response(error: &FetchError) -> Response {
    match error {
        FetchError::TimedOut => json_response(&Rejection::gateway_timeout()),
        FetchError::Unavailable(detail) => json_response(&Rejection::bad_gateway(detail)),
    }
}

fn serve_stored(
    stored: &StoredResponse,
    status: CacheStatus,
    age: u64,
    head: &RequestHead,
) -> Response {
    response(
        stored.status,
        &client_headers(&stored.headers, status, Some(age)),
        Bytes::from(stored.body.clone()),
        head,
    )
}

fn serve_fetched(fetched: &Fetched, status: CacheStatus, head: &RequestHead) -> Response {
    response(
        fetched.status,
        &client_headers(&fetched.headers, status, None),
        fetched.body.clone(),
        head,
    )
}

/// The cache key for a request, reading its song's generation first.
async fn key_for(store: &Store, head: &RequestHead) -> CacheKey {
    let generation = match song_of_path(head.path()) {
        Some(song) => parse_generation(
            store
                .get(generation_key(song))
                .await
                .ok()
                .flatten()
                .as_deref(),
        ),
        None => 0,
    };
    CacheKey::new(&head.key_host(), &head.path_and_query, generation)
}

/// The default key-value store, opened once per instance: the handle is a
/// resource of this instance and stays valid for every request it serves.
async fn open_store() -> Option<Rc<Store>> {
    if let Some(store) = state::with(|s| s.store.clone()) {
        return Some(store);
    }
    let store = Rc::new(Store::open_default().await.ok()?);
    Some(state::with(|s| s.store.get_or_insert(store).clone()))
}

async fn cacheable(config: &Rc<EdgeConfig>, head: &RequestHead) -> Response {
    let Some(store) = open_store().await else {
        return bypass(config, head, Bytes::new()).await;
    };
    let key = key_for(&store, head).await;
    let stored = match store.get(key.as_str()).await {
        Ok(Some(bytes)) => StoredResponse::decode(&bytes).ok(),
        _ => None,
    };
    let now = unix_now_ms();
    match lookup(stored.as_ref(), &head.headers, now) {
        Lookup::Hit { age } => stored.map_or_else(
            || json_response(&Rejection::bad_gateway("cache")),
            |s| serve_stored(&s, CacheStatus::Hit, age, head),
        ),
        Lookup::StaleWhileRevalidate { age } => {
            let Some(stored) = stored else {
                return json_response(&Rejection::bad_gateway("cache"));
            };
            let started = state::with(|s| s.refreshing.insert(key.as_str().to_owned()));
            if started {
                let (config, head, store, key) =
                    (config.clone(), head.clone(), store.clone(), key.clone());
                spin_sdk::wasip3::spawn(async move {
                    let _ = fetch_and_store(&config, &head, &store, &key).await;
                    state::with(|s| s.refreshing.remove(key.as_str()));
                });
            }
            serve_stored(&stored, CacheStatus::Stale, age, head)
        }
        Lookup::Revalidate { conditional } => {
            let Some(stored) = stored else {
                return miss(config, head, &store, &key).await;
            };
            revalidate(config, head, &store, &key, stored, conditional).await
        }
        Lookup::Miss => miss(config, head, &store, &key).await,
    }
}

async fn revalidate(
    config: &EdgeConfig,
    head: &RequestHead,
    store: &Store,
    key: &CacheKey,
    stored: StoredResponse,
    conditional: Headers,
) -> Response {
    let mut headers = forward_headers(head);
    for (name, value) in conditional.iter() {
        headers.append(name, value);
    }
    match fetch(
        config,
        origin_method(&head.method),
        &head.path_and_query,
        &headers,
        Bytes::new(),
    )
    .await
    {
        Ok(fetched) if fetched.status == 304 => {
            let fresh = stored.revalidated(
                &fetched.headers,
                fetched.request_time_ms,
                fetched.response_time_ms,
                config,
            );
            let _ = store.set(key.as_str(), fresh.encode()).await;
            let age = fresh.age(unix_now_ms());
            serve_stored(&fresh, CacheStatus::Revalidated, age, head)
        }
        Ok(fetched)
            if is_origin_error_status(fetched.status) && stale_if_error(&stored, unix_now_ms()) =>
        {
            serve_stored(&stored, CacheStatus::Stale, stored.age(unix_now_ms()), head)
        }
        Ok(fetched) => {
            store_fetched(config, head, store, key, &fetched).await;
            serve_fetched(&fetched, CacheStatus::Miss, head)
        }
        Err(_) if stale_if_error(&stored, unix_now_ms()) => {
            serve_stored(&stored, CacheStatus::Stale, stored.age(unix_now_ms()), head)
        }
        Err(error) => error_response(&error),
    }
}

async fn store_fetched(
    config: &EdgeConfig,
    head: &RequestHead,
    store: &Store,
    key: &CacheKey,
    fetched: &Fetched,
) -> Option<StoredResponse> {
    let record = StoredResponse::from_origin(
        &head.headers,
        fetched.status,
        &fetched.headers,
        fetched.body.to_vec(),
        fetched.request_time_ms,
        fetched.response_time_ms,
        config,
    )
    .ok()?;
    let _ = store.set(key.as_str(), record.encode()).await;
    Some(record)
}

async fn fetch_and_store(
    config: &EdgeConfig,
    head: &RequestHead,
    store: &Store,
    key: &CacheKey,
) -> Result<(Fetched, Option<StoredResponse>), FetchError> {
    let fetched = fetch(
        config,
        origin_method(&head.method),
        &head.path_and_query,
        &forward_headers(head),
        Bytes::new(),
    )
    .await?;
    let record = store_fetched(config, head, store, key, &fetched).await;
    Ok((fetched, record))
}

/// How often a follower looks at its slot while the leader fetches.
const FOLLOWER_POLL_NS: u64 = 1_000_000;

/// Waits, at most `collapse_wait_ms`, for the leader's outcome to appear in `slot`.
async fn wait_for_leader(slot: &state::Slot, config: &EdgeConfig) -> Option<Collapsed> {
    let limit_ns = config.collapse_wait_ms.saturating_mul(1_000_000);
    let mut waited_ns = 0;
    loop {
        if let Some(outcome) = slot.borrow_mut().take() {
            return Some(outcome);
        }
        if waited_ns >= limit_ns {
            return None;
        }
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(FOLLOWER_POLL_NS).await;
        waited_ns += FOLLOWER_POLL_NS;
    }
}

/// A miss: one request per key goes to the origin; concurrent misses for the same
/// key in this instance wait for it, at most `collapse_wait_ms`, then fetch themselves.
async fn miss(config: &EdgeConfig, head: &RequestHead, store: &Store, key: &CacheKey) -> Response {
    match state::join(key.as_str()) {
        Join::Follower(slot) => {
            if let Some(Collapsed::Stored(stored)) = wait_for_leader(&slot, config).await
                && stored.vary_matches(&head.headers)
            {
                return serve_stored(&stored, CacheStatus::Miss, stored.age(unix_now_ms()), head);
            }
            match fetch_and_store(config, head, store, key).await {
                Ok((fetched, _)) => serve_fetched(&fetched, CacheStatus::Miss, head),
                Err(error) => error_response(&error),
            }
        }
        Join::Leader(leader) => match fetch_and_store(config, head, store, key).await {
            Ok((fetched, record)) => {
                leader.release(
                    record.map_or(Collapsed::FetchYourself, |r| Collapsed::Stored(Rc::new(r))),
                );
                serve_fetched(&fetched, CacheStatus::Miss, head)
            }
            Err(error) => {
                leader.release(Collapsed::FetchYourself);
                error_response(&error)
            }
        },
    }
}

async fn bypass(config: &EdgeConfig, head: &RequestHead, body: Bytes) -> Response {
    match fetch(
        config,
        origin_method(&head.method),
        &head.path_and_query,
        &forward_headers(head),
        body,
    )
    .await
    {
        Ok(fetched) => serve_fetched(&fetched, CacheStatus::Bypass, head),
        Err(error) => error_response(&error),
    }
}

async fn unsafe_request(config: &EdgeConfig, head: &RequestHead, body: Bytes) -> Response {
    let fetched = match fetch(
        config,
        &head.method,
        &head.path_and_query,
        &forward_headers(head),
        body,
    )
    .await
    {
        Ok(fetched) => fetched,
        Err(error) => return error_response(&error),
    };
    let invalid = invalidation(
        &head.method,
        &head.path_and_query,
        &head.key_host(),
        fetched.status,
        &fetched.headers,
    );
    if !invalid.is_empty()
        && let Some(store) = open_store().await
    {
        for song in &invalid.songs {
            let gen_key = generation_key(*song);
            let current = parse_generation(store.get(&gen_key).await.ok().flatten().as_deref());
            let _ = store
                .set(
                    &gen_key,
                    next_generation(current, unix_now_ms()).to_string(),
                )
                .await;
        }
        for target in &invalid.targets {
            let target_head = RequestHead {
                path_and_query: target.clone(),
                ..head.clone()
            };
            let key = key_for(&store, &target_head).await;
            let _ = store.delete(key.as_str()).await;
        }
    }
    serve_fetched(&fetched, CacheStatus::Bypass, head)
}
