//! The whole caching flow, written once for every platform: routing, lookup,
//! revalidation, stale-while-revalidate, stale-if-error, collapsing, the
//! failover loop and invalidation after writes. It is generic over [`EdgeIo`],
//! the few calls it makes to its platform, so the Spin component and the Worker
//! only translate their requests, responses and those calls.
//!
//! - [`io`]: the [`EdgeIo`] and [`RecordStore`] traits the adapters implement.
//! - [`fetch`](mod@fetch): attempts at the origin group with time limits and failover.
//! - [`collapse`]: concurrent misses for one key wait for one origin fetch.
//! - [`respond`]: the finished [`EdgeResponse`].
//! - [`local`]: the decoded records an instance keeps.
//! - `write`: writes, and the invalidation after them.

pub mod collapse;
pub mod fetch;
pub mod io;
pub mod local;
pub mod respond;
mod write;

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;

use crate::behaviour::{Behaviour, Ttl};
use crate::cache_control::CacheControl;
use crate::conditional::identifies;
use crate::config::EdgeConfig;
use crate::headers::Headers;
use crate::key::{CacheKey, generation_key, next_generation};
use crate::origin::OriginHealth;
use crate::request::{
    ProxyKind, Rejection, RequestHead, Route, bypass_headers, classify, forward_headers,
    origin_method,
};
use crate::serve::{
    CacheStatus, Lookup, is_origin_error_status, lookup, must_revalidate, stale_if_error,
};
use crate::stored::StoredResponse;
use collapse::{Collapsed, InFlight, Join};
use fetch::{Answered, fetch};
pub use io::{
    AttemptError, Background, EdgeIo, Encoded, KeyValue, OriginRequest, OriginResponse, RecordStore,
};
use local::LocalRecords;
pub use respond::EdgeResponse;
use write::write;

/// How often a collapsed follower looks at its slot while the leader fetches.
const FOLLOWER_POLL_MS: u64 = 1;

/// What one instance keeps between requests: the configuration, the origins'
/// passive health, the misses in flight, and the keys being refreshed.
#[derive(Debug)]
pub struct Edge {
    pub config: EdgeConfig,
    /// Passive health of each origin group (see [`EdgeConfig::group`]).
    pub health: Vec<RefCell<OriginHealth>>,
    /// Stands in for a behaviour where none matches; never used in practice,
    /// because [`classify`] refuses such paths with a 404.
    fallback: Behaviour,
    pub in_flight: Rc<InFlight>,
    refreshing: RefCell<HashSet<String>>,
    /// Song-scoped records read from the store (see [`local`]).
    local: LocalRecords,
}

impl Edge {
    pub fn new(config: EdgeConfig) -> Rc<Self> {
        let health = (0..config.group_count())
            .map(|g| RefCell::new(OriginHealth::new(config.group(g).len())))
            .collect();
        Rc::new(Self {
            config,
            health,
            fallback: Behaviour::api("*"),
            in_flight: Rc::default(),
            refreshing: RefCell::default(),
            local: LocalRecords::default(),
        })
    }

    /// The behaviour a path falls under.
    fn behaviour(&self, path_and_query: &str) -> &Behaviour {
        let path = path_and_query.split('?').next().unwrap_or_default();
        self.config.behaviour_for(path).unwrap_or(&self.fallback)
    }
}

/// Answers one request. `body` reads the request body up to
/// `config.max_body_bytes` (a 413 [`Rejection`] beyond); it is awaited only for
/// requests that send one to the origin (writes).
pub async fn handle<I: EdgeIo>(
    edge: &Rc<Edge>,
    io: &Rc<I>,
    head: RequestHead,
    body: impl Future<Output = Result<Bytes, Rejection>>,
) -> EdgeResponse {
    match classify(&head, &edge.config) {
        Route::Health => respond::health(&head),
        Route::Reject(refused) => respond::rejection(&head, &refused),
        Route::Proxy(ProxyKind::Cacheable) if io.store().is_some() => {
            cacheable(edge, io, head).await
        }
        Route::Proxy(ProxyKind::Cacheable | ProxyKind::Bypass) => {
            bypass(edge, io.as_ref(), &head).await
        }
        Route::Proxy(ProxyKind::Unsafe) => match body.await {
            Ok(body) => write(edge, io.as_ref(), &head, body).await,
            Err(refused) => respond::rejection(&head, &refused),
        },
    }
}

/// The key of `path_and_query` under its behaviour (the selected query and
/// the request's values of what it forwards) and its current generation (its
/// song's or its own, see [`crate::key`]).
async fn current_key<S: RecordStore>(
    edge: &Edge,
    store: &S,
    now_ms: u64,
    request_headers: &Headers,
    host: &str,
    path_and_query: &str,
) -> CacheKey {
    let behaviour = edge.behaviour(path_and_query);
    let target = behaviour.key_target(path_and_query);
    let generation_key = generation_key(host, &target);
    let generation = match store.generation(&generation_key).await {
        Some(generation) => generation,
        // Never written, evicted early, or unreadable (a failing store): a new
        // generation, so that no record stored under an older one comes back.
        // What it costs is misses.
        None => {
            let fresh = next_generation(0, now_ms);
            let keep_secs = crate::key::generation_retention_secs(&edge.config);
            store
                .set_generation(&generation_key, fresh, keep_secs)
                .await;
            fresh
        }
    };
    CacheKey::new(host, &target, generation).with_parts(&behaviour.key_parts(request_headers))
}

/// The stored response under `key`: the instance's kept copy when it answers
/// as a plain HIT, else the store's (kept for next time).
async fn stored_record<S: RecordStore>(
    edge: &Edge,
    store: &S,
    key: &CacheKey,
    request_headers: &Headers,
    now_ms: u64,
) -> Lookup {
    if let Some(kept) = edge.local.get(key) {
        let decision = lookup(Some(kept), request_headers, now_ms);
        if matches!(decision, Lookup::Hit { .. }) {
            return decision;
        }
    }
    let stored = store.get(key).await;
    match &stored {
        Some(record) => edge.local.keep(key, record),
        None => edge.local.forget(key),
    }
    lookup(stored, request_headers, now_ms)
}

async fn cacheable<I: EdgeIo>(edge: &Rc<Edge>, io: &Rc<I>, head: RequestHead) -> EdgeResponse {
    let Some(store) = io.store() else {
        return bypass(edge, io.as_ref(), &head).await;
    };
    // One clock read for the key and the lookup: on a guest each is a host call.
    let now_ms = io.now_ms();
    let key = current_key(
        edge,
        store,
        now_ms,
        &head.headers,
        &head.key_host(),
        &head.path_and_query,
    )
    .await;
    let decision = stored_record(edge, store, &key, &head.headers, now_ms).await;
    if matches!(decision, Lookup::Revalidate { .. } | Lookup::Miss)
        && CacheControl::from_headers(&head.headers).only_if_cached
    {
        return respond::rejection(&head, &Rejection::not_cached());
    }
    match decision {
        Lookup::Hit { stored, age } => from_record(&head, &stored, CacheStatus::Hit, age),
        Lookup::StaleWhileRevalidate { stored, age } => {
            let response = from_record(&head, &stored, CacheStatus::Stale, age);
            refresh_in_background(edge, io, head, key, stored);
            response
        }
        Lookup::Revalidate { stored, .. } => {
            revalidate(edge, io.as_ref(), &head, &key, &stored).await
        }
        Lookup::Miss => miss(edge, io.as_ref(), &head, &key).await,
    }
}

/// Asks the origin whether `stored` may still be served. When no usable
/// answer comes, `stored` stands in only within its `stale-if-error` window
/// and for a client that takes a stale response.
async fn revalidate<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    head: &RequestHead,
    key: &CacheKey,
    stored: &StoredResponse,
) -> EdgeResponse {
    match refresh(edge, io, head, key, Some(stored)).await {
        Refreshed::Revalidated { record, set_cookie } => {
            let age = record.age(io.now_ms());
            confirmed(head, &record, &set_cookie, CacheStatus::Revalidated, age)
        }
        Refreshed::Fetched { answer, record } => from_answer(head, &answer, record.is_some()),
        Refreshed::Failed(_)
            if stale_if_error(stored, io.now_ms())
                && CacheControl::from_headers(&head.headers).accepts_stale() =>
        {
            let age = stored.age(io.now_ms());
            from_record(head, stored, CacheStatus::Stale, age)
        }
        // RFC 9111 section 5.2.2.2: a cache that cannot revalidate such a
        // response answers an error of its own, which SHOULD be 504.
        Refreshed::Failed(Err(refused)) if must_revalidate(stored, io.now_ms()) => {
            respond::rejection(
                head,
                &Rejection {
                    status: 504,
                    ..refused
                },
            )
        }
        Refreshed::Failed(failure) => failed(head, failure),
    }
}

/// A stale-while-revalidate refresh, at most one per key at a time in this instance.
fn refresh_in_background<I: EdgeIo>(
    edge: &Rc<Edge>,
    io: &Rc<I>,
    head: RequestHead,
    key: CacheKey,
    stored: Rc<StoredResponse>,
) {
    if !edge.refreshing.borrow_mut().insert(key.as_str().to_owned()) {
        return;
    }
    let (edge, task_io) = (edge.clone(), io.clone());
    io.spawn(Box::pin(async move {
        let _ = refresh(&edge, task_io.as_ref(), &head, &key, Some(&stored)).await;
        edge.refreshing.borrow_mut().remove(key.as_str());
    }));
}

/// A miss: one origin fetch per key in this instance; concurrent misses for the
/// same key wait for it (at most `collapse_wait_ms`), then fetch themselves.
async fn miss<I: EdgeIo>(edge: &Edge, io: &I, head: &RequestHead, key: &CacheKey) -> EdgeResponse {
    if !io.can_collapse() {
        return fetched_miss(refresh(edge, io, head, key, None).await, head);
    }
    match edge.in_flight.join(key.as_str()) {
        Join::Follower(slot) => {
            let mut waited = 0;
            while waited < edge.config.collapse_wait_ms {
                let outcome = slot.borrow_mut().take();
                match outcome {
                    // Only what the store could answer this request with: a
                    // record that must be validated first (`no-cache`, a
                    // lifetime of 0) is no answer for another request (RFC
                    // 9111 section 4), nor one its `Vary` does not match.
                    Some(Collapsed::Stored(stored)) => {
                        match lookup(Some(stored), &head.headers, io.now_ms()) {
                            Lookup::Hit { stored, age } => {
                                return from_record(head, &stored, CacheStatus::Miss, age);
                            }
                            _ => break,
                        }
                    }
                    Some(_) => break,
                    None => {
                        io.sleep_ms(FOLLOWER_POLL_MS).await;
                        waited += FOLLOWER_POLL_MS;
                    }
                }
            }
            fetched_miss(refresh(edge, io, head, key, None).await, head)
        }
        Join::Leader(leader) => {
            let refreshed = refresh(edge, io, head, key, None).await;
            let shared = match &refreshed {
                Refreshed::Fetched {
                    record: Some(record),
                    ..
                } => Collapsed::Stored(record.clone()),
                _ => Collapsed::FetchYourself,
            };
            leader.release(shared);
            fetched_miss(refreshed, head)
        }
    }
}

fn fetched_miss(refreshed: Refreshed, head: &RequestHead) -> EdgeResponse {
    match refreshed {
        Refreshed::Fetched { answer, record } => from_answer(head, &answer, record.is_some()),
        Refreshed::Revalidated { record, set_cookie } => {
            confirmed(head, &record, &set_cookie, CacheStatus::Miss, 0)
        }
        Refreshed::Failed(failure) => failed(head, failure),
    }
}

/// How a fetch for the cache ended.
enum Refreshed {
    /// The origin confirmed the stored record (304); the updated record is
    /// stored if it may still be. `set_cookie` holds the 304's `Set-Cookie`
    /// fields, for the client whose request was sent only (never stored).
    Revalidated {
        record: Rc<StoredResponse>,
        set_cookie: Headers,
    },
    /// A new response; `record` is what was stored of it, if it may be stored.
    Fetched {
        answer: Answered,
        record: Option<Rc<StoredResponse>>,
    },
    /// No usable answer, and a stored record might stand in: the origin's error
    /// answer or the edge's own. Nothing was stored.
    Failed(Result<Answered, Rejection>),
}

/// Fetches `head` for the cache, conditionally when `previous` has validators,
/// and stores what may be stored.
async fn refresh<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    head: &RequestHead,
    key: &CacheKey,
    previous: Option<&StoredResponse>,
) -> Refreshed {
    let behaviour = edge.behaviour(&head.path_and_query);
    let mut headers = forward_headers(head, behaviour);
    if let Some(previous) = previous {
        add_revalidation_headers(&mut headers, previous);
    }
    let mut result = fetch_read(edge, io, head, &headers).await;
    if let (Ok(answered), Some(previous)) = (&result, previous)
        && answered.response.status == 304
        && !identifies(&answered.response.headers, &previous.headers)
    {
        // The 304 names another representation than the stored one (RFC 9111
        // section 4.3.4): it must not update it. Ask again without conditions.
        result = fetch_read(edge, io, head, &forward_headers(head, behaviour)).await;
    }
    let answered = match result {
        Ok(answered) => answered,
        Err(rejection) => return Refreshed::Failed(Err(rejection)),
    };
    let ttl = edge.config.ttl_of(behaviour);
    let response = &answered.response;
    if let Some(previous) = previous {
        // The clock, not the answer's arrival: the answer may be an earlier
        // attempt's error, passed on after later attempts failed (see `fetch`).
        if is_origin_error_status(response.status) && stale_if_error(previous, io.now_ms()) {
            return Refreshed::Failed(Ok(answered));
        }
        if response.status == 304 && identifies(&response.headers, &previous.headers) {
            return confirm(edge, io, head, key, previous, &answered, &ttl).await;
        }
    }
    let record = StoredResponse::from_origin(
        &head.headers,
        response.status,
        &response.headers,
        response.body.clone(),
        answered.request_time_ms,
        answered.response_time_ms,
        &ttl,
    )
    .ok()
    .map(Rc::new);
    if let Some(record) = &record {
        put(edge, io, key, record, &ttl).await;
    }
    Refreshed::Fetched {
        answer: answered,
        record,
    }
}

/// `previous` updated by the 304 in `answered`, stored if a shared cache may
/// still keep it.
async fn confirm<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    head: &RequestHead,
    key: &CacheKey,
    previous: &StoredResponse,
    answered: &Answered,
    ttl: &Ttl,
) -> Refreshed {
    let not_modified = &answered.response.headers;
    let fresh = Rc::new(previous.revalidated(
        &head.headers,
        not_modified,
        answered.request_time_ms,
        answered.response_time_ms,
        ttl,
    ));
    if fresh.storable(&head.headers).is_ok() {
        put(edge, io, key, &fresh, ttl).await;
    } else {
        // The 304 made the response one a shared cache must not keep
        // (`private`, `no-store`, `Vary: *`): the stored copy goes too, or
        // the next client would get it.
        delete(edge, io, key).await;
    }
    let set_cookie = not_modified.get_all("set-cookie");
    Refreshed::Revalidated {
        record: fresh,
        set_cookie: set_cookie.map(|value| ("set-cookie", value)).collect(),
    }
}

/// The conditional headers of `previous`. The request fields its `Vary` names
/// (RFC 9111 section 4.3.1) are already in `headers` where the behaviour
/// forwards them, with the values `previous` was selected by (the request
/// matched them, see [`lookup`]); the others never leave the edge, as on the
/// miss that stored `previous`.
fn add_revalidation_headers(headers: &mut Headers, previous: &StoredResponse) {
    for (name, value) in previous.conditional_headers().iter() {
        headers.set(name, value);
    }
}

/// Deletes the record under `key`, and the instance's kept copy of it.
async fn delete<I: EdgeIo>(edge: &Edge, io: &I, key: &CacheKey) {
    if let Some(store) = io.store() {
        store.delete(key).await;
    }
    edge.local.forget(key);
}

/// Stores `record`; the instance's kept copy of the key is dropped, so the next
/// HIT reads the newest record from the store (RFC 9111 section 4: the most
/// recent stored response is the one to use).
async fn put<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    key: &CacheKey,
    record: &Rc<StoredResponse>,
    ttl: &Ttl,
) {
    if let Some(store) = io.store() {
        let keep_secs = record.retention_secs(ttl);
        store.put(key, record.clone(), keep_secs).await;
    }
    edge.local.forget(key);
}

/// A GET or HEAD sent on (as GET) without a body.
async fn fetch_read<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    head: &RequestHead,
    headers: &Headers,
) -> Result<Answered, Rejection> {
    let behaviour = edge.behaviour(&head.path_and_query);
    let target = behaviour.origin_target(&head.path_and_query);
    let method = origin_method(&head.method);
    fetch(
        edge,
        io,
        behaviour.group,
        method,
        &target,
        headers,
        Bytes::new(),
    )
    .await
    .result
}

/// GET or HEAD that the cache must not answer: forwarded with the client's
/// preconditions ([`bypass_headers`]), never stored.
async fn bypass<I: EdgeIo>(edge: &Edge, io: &I, head: &RequestHead) -> EdgeResponse {
    if CacheControl::from_headers(&head.headers).only_if_cached {
        // No stored response may answer it, and only-if-cached keeps it from the origin.
        return respond::rejection(head, &Rejection::not_cached());
    }
    let behaviour = edge.behaviour(&head.path_and_query);
    passed_on(
        head,
        fetch_read(edge, io, head, &bypass_headers(head, behaviour)).await,
    )
}

/// An origin's answer to a request the cache does not answer (a bypassed
/// read, a write), or the edge's refusal when none came.
fn passed_on(head: &RequestHead, result: Result<Answered, Rejection>) -> EdgeResponse {
    match result {
        Ok(answered) => respond::passed_on(
            head,
            answered.response.status,
            &answered.response.headers,
            CacheStatus::Bypass,
            answered.response.body,
        ),
        Err(refused) => respond::rejection(head, &refused),
    }
}

/// A record the origin has just confirmed, served to the client whose request
/// was sent, with the `Set-Cookie` fields of the 304 (meant for that client,
/// and never stored).
fn confirmed(
    head: &RequestHead,
    record: &StoredResponse,
    set_cookie: &Headers,
    status: CacheStatus,
    age: u64,
) -> EdgeResponse {
    let mut response = from_record(head, record, status, age);
    for (name, value) in set_cookie.iter() {
        response.headers.append(name, value);
    }
    response
}

fn from_record(
    head: &RequestHead,
    stored: &StoredResponse,
    status: CacheStatus,
    age: u64,
) -> EdgeResponse {
    respond::cached(
        head,
        stored.status,
        &stored.headers,
        status,
        Some(age),
        stored.body.clone(),
    )
}

/// A fetched answer served as a MISS; when it was stored, a client holding the
/// same representation gets a 304.
fn from_answer(head: &RequestHead, answered: &Answered, stored: bool) -> EdgeResponse {
    let response = &answered.response;
    if stored {
        respond::cached(
            head,
            response.status,
            &response.headers,
            CacheStatus::Miss,
            None,
            response.body.clone(),
        )
    } else {
        respond::passed_on(
            head,
            response.status,
            &response.headers,
            CacheStatus::Miss,
            response.body.clone(),
        )
    }
}

fn failed(head: &RequestHead, failure: Result<Answered, Rejection>) -> EdgeResponse {
    match failure {
        Ok(answered) => from_answer(head, &answered, false),
        Err(refused) => respond::rejection(head, &refused),
    }
}

#[cfg(test)]
mod tests;
