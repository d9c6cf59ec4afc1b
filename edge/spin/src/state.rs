//! State that lives as long as the component instance: the configuration, origin
//! health, and the requests in flight that concurrent misses wait on.
//!
//! A host that reuses one instance for many (also concurrent) requests, such as
//! `edge-host` (wasmtime's `ProxyHandler`), keeps this state across them, which is
//! what makes passive health and request collapsing work; a host that makes a
//! fresh instance per request loses nothing but those two optimisations.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use edge_core::{EdgeConfig, OriginHealth, StoredResponse};
use spin_sdk::key_value::Store;

/// What a collapsed request receives from the leader of its key.
#[derive(Debug, Clone)]
pub enum Collapsed {
    /// The leader stored this response; followers serve it if their `Vary` values match.
    Stored(Rc<StoredResponse>),
    /// The leader's answer may not be shared; fetch on your own.
    FetchYourself,
}

pub struct InstanceState {
    pub config: Option<Rc<EdgeConfig>>,
    /// The key-value store, opened by the first request that needs it.
    pub store: Option<Rc<Store>>,
    pub health: OriginHealth,
    /// Cache keys with an origin fetch in flight, and the slots of those who wait for it.
    pub in_flight: HashMap<String, Vec<Slot>>,
    /// Cache keys with a background refresh in flight.
    pub refreshing: HashSet<String>,
}

thread_local! {
    static STATE: RefCell<InstanceState> = RefCell::new(InstanceState {
        config: None,
        store: None,
        health: OriginHealth::new(0),
        in_flight: HashMap::new(),
        refreshing: HashSet::new(),
    });
}

/// Runs `f` with the instance state. Never hold the borrow across an `.await`.
pub fn with<R>(f: impl FnOnce(&mut InstanceState) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

/// Guard for a collapsed fetch: whoever leads must release its followers, also on
/// an early return, so they never wait for a leader that is gone.
pub struct Leader {
    key: String,
    released: bool,
}

/// Where a leader leaves its outcome for one follower. Followers poll their slot
/// on their own timer instead of being woken by the leader: wit-bindgen, as
/// spin-sdk 7 builds it, panics when one component task wakes another, and its
/// `inter-task-wakeup` feature traps on wasmtime 48.
pub type Slot = Rc<RefCell<Option<Collapsed>>>;

/// Either leads the fetch for `key`, or waits as a follower.
pub enum Join {
    Leader(Leader),
    Follower(Slot),
}

pub fn join(key: &str) -> Join {
    with(|s| match s.in_flight.get_mut(key) {
        Some(waiters) => {
            let slot = Slot::default();
            waiters.push(slot.clone());
            Join::Follower(slot)
        }
        None => {
            s.in_flight.insert(key.to_owned(), Vec::new());
            Join::Leader(Leader {
                key: key.to_owned(),
                released: false,
            })
        }
    })
}

impl Leader {
    pub fn release(mut self, outcome: Collapsed) {
        self.released = true;
        let waiters = with(|s| s.in_flight.remove(&self.key)).unwrap_or_default();
        for waiter in waiters {
            *waiter.borrow_mut() = Some(outcome.clone());
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.released {
            let waiters = with(|s| s.in_flight.remove(&self.key)).unwrap_or_default();
            for waiter in waiters {
                *waiter.borrow_mut() = Some(Collapsed::FetchYourself);
            }
        }
    }
}
