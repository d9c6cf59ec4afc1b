//! Writes: sent to the origin group (failing over only where that is safe),
//! and after a success, the invalidation of what they changed (RFC 9111
//! section 4.4) by moving generations (see [`crate::key`]).

use bytes::Bytes;

use super::{Edge, EdgeIo, EdgeResponse, RecordStore, fetch::fetch, passed_on};
use crate::headers::Headers;
use crate::invalidate::{Invalidation, invalidation};
use crate::key::{generation_key, generation_retention_secs, next_generation, song_generation_key};
use crate::request::{RequestHead, forward_headers};

/// A write goes to the origin group (failing over only where that is safe);
/// after a success (or an attempt that may have carried it out), the
/// generation of everything it changed moves (see [`changed_generations`]),
/// which makes every stored variant of it unreachable, in every instance: the keys a reader builds carry the
/// generation, whatever the reader's forwarded header values. What a read in
/// flight during the write stores goes under the old generation and is never
/// found either.
pub(super) async fn write<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    head: &RequestHead,
    body: Bytes,
) -> EdgeResponse {
    let behaviour = edge.behaviour(&head.path_and_query);
    let headers = forward_headers(head, behaviour);
    let target = behaviour.origin_target(&head.path_and_query);
    let group = behaviour.group;
    let fetched = fetch(edge, io, group, &head.method, &target, &headers, body).await;
    let host = head.key_host();
    let changed = match &fetched.result {
        Ok(answered) => invalidation(
            &head.method,
            &head.path_and_query,
            &host,
            answered.response.status,
            &answered.response.headers,
        ),
        Err(_) => Invalidation::default(),
    };
    // RFC 9111 section 4.4 asks for invalidation after a non-error answer. An
    // attempt that broke after sending or timed out may have carried the write
    // out all the same, whatever the client is told (a 504, or a retried
    // DELETE's 404): its target is invalidated too. A needless invalidation
    // costs misses; a missing one serves what the write replaced.
    let changed = if changed.is_empty() && fetched.others_may_have_acted {
        invalidation(
            &head.method,
            &head.path_and_query,
            &host,
            200,
            &Headers::default(),
        )
    } else {
        changed
    };
    if let Some(store) = io.store() {
        let keep_secs = generation_retention_secs(&edge.config);
        for key in changed_generations(edge, &host, &changed) {
            let current = store.generation(&key).await.unwrap_or(0);
            let next = next_generation(current, io.now_ms());
            store.set_generation(&key, next, keep_secs).await;
        }
    }
    passed_on(head, fetched.result)
}

/// The generation keys an invalidation moves: each song it names (all its
/// pages), and each other target some behaviour caches (all its variants).
fn changed_generations(edge: &Edge, host: &str, changed: &Invalidation) -> Vec<String> {
    let mut keys: Vec<String> = changed
        .songs
        .iter()
        .map(|&song| song_generation_key(song))
        .collect();
    for target in &changed.targets {
        let path = target.split('?').next().unwrap_or_default();
        if let Some(behaviour) = edge.config.behaviour_for(path) {
            let key = generation_key(host, &behaviour.key_target(target));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}
