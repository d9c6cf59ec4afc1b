//! Request collapsing within one isolate: concurrent misses for one cache key
//! wait for the first one's origin answer instead of each going to the origin.
//! Isolates do not share memory, so on Workers collapsing is per isolate, not
//! per data centre.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use edge_core::Rejection;
use futures::channel::oneshot;
use futures::future::{Either, select};
use worker::Delay;

use crate::upstream::OriginAnswer;

type Waiters = Vec<oneshot::Sender<OriginAnswer>>;

thread_local! {
    static IN_FLIGHT: RefCell<HashMap<String, Waiters>> = RefCell::new(HashMap::new());
}

/// Removes the leader's entry even when its request is dropped half-way, so
/// followers stop waiting for an answer that will never come.
struct Leadership<'a>(&'a str);

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        IN_FLIGHT.with(|map| map.borrow_mut().remove(self.0));
    }
}

/// Runs `fetch` unless a fetch for `key` is already running here, in which case
/// it waits up to `wait_ms` for that answer and only then fetches itself.
/// `wait_ms == 0` turns collapsing off.
pub async fn fetch_once<F, Fut>(
    key: &str,
    wait_ms: u64,
    fetch: F,
) -> Result<OriginAnswer, Rejection>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<OriginAnswer, Rejection>>,
{
    if wait_ms == 0 {
        return fetch().await;
    }
    let follower = IN_FLIGHT.with(|map| {
        let mut map = map.borrow_mut();
        match map.get_mut(key) {
            Some(waiters) => {
                let (sender, receiver) = oneshot::channel();
                waiters.push(sender);
                Some(receiver)
            }
            None => {
                map.insert(key.to_owned(), Vec::new());
                None
            }
        }
    });
    if let Some(receiver) = follower {
        let timer = Delay::from(Duration::from_millis(wait_ms));
        if let Either::Left((Ok(answer), _)) = select(receiver, Box::pin(timer)).await {
            return Ok(answer);
        }
        return fetch().await;
    }
    let leadership = Leadership(key);
    let result = fetch().await;
    let waiters = IN_FLIGHT
        .with(|map| map.borrow_mut().remove(key))
        .unwrap_or_default();
    drop(leadership);
    if let Ok(answer) = &result {
        for waiter in waiters {
            let _ = waiter.send(answer.clone());
        }
    }
    result
}
