//! Request collapsing within one instance: the first miss for a key leads the
//! origin fetch, later misses for the same key follow and are handed the
//! leader's stored record instead of fetching themselves.
//!
//! Followers poll a slot on their own timer instead of being woken by the
//! leader: in a Spin component, one task waking another panics (wit-bindgen as
//! spin-sdk 7 builds it), and on Workers a request woken by another's I/O may
//! not answer (so Workers do not collapse at all, see [`crate::EdgeIo::can_collapse`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use crate::stored::StoredResponse;

/// What a follower receives from the leader of its key.
#[derive(Debug, Clone)]
pub enum Collapsed {
    /// The leader stored this record; a follower serves it if its `Vary` values match.
    Stored(Rc<StoredResponse>),
    /// The leader's answer may not be shared: fetch on your own.
    FetchYourself,
}

/// Where a leader leaves its outcome for one follower.
pub type Slot = Rc<RefCell<Option<Collapsed>>>;

/// The keys with a fetch in flight in this instance, and who waits for each.
#[derive(Debug, Default)]
pub struct InFlight(RefCell<HashMap<String, Vec<Slot>>>);

/// Either leads the fetch for a key or follows it.
pub enum Join {
    Leader(Leader),
    Follower(Slot),
}

impl InFlight {
    pub fn join(self: &Rc<Self>, key: &str) -> Join {
        let mut map = self.0.borrow_mut();
        match map.get_mut(key) {
            Some(waiters) => {
                let slot = Slot::default();
                waiters.push(slot.clone());
                Join::Follower(slot)
            }
            None => {
                map.insert(key.to_owned(), Vec::new());
                Join::Leader(Leader {
                    key: key.to_owned(),
                    in_flight: Rc::downgrade(self),
                    released: false,
                })
            }
        }
    }

    fn release(&self, key: &str, outcome: &Collapsed) {
        let waiters = self.0.borrow_mut().remove(key).unwrap_or_default();
        for waiter in waiters {
            *waiter.borrow_mut() = Some(outcome.clone());
        }
    }

    /// Keys with a fetch in flight (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whoever leads must release its followers, also on an early return or a
/// dropped future, so that nobody waits for a leader that is gone.
pub struct Leader {
    key: String,
    in_flight: Weak<InFlight>,
    released: bool,
}

impl Leader {
    pub fn release(mut self, outcome: Collapsed) {
        self.released = true;
        if let Some(in_flight) = self.in_flight.upgrade() {
            in_flight.release(&self.key, &outcome);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(in_flight) = self.in_flight.upgrade() {
            in_flight.release(&self.key, &Collapsed::FetchYourself);
        }
    }
}
