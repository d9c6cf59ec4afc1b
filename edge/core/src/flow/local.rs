//! Decoded records this instance read from its store, kept for the instance's
//! life so that a HIT reads the store once (the key's generation) instead of
//! twice, and decodes nothing.
//!
//! Every invalidation moves a generation, which is part of the key (see
//! [`crate::key`]), so a record kept here is never found again once another
//! instance (or another edge on the same store) has invalidated it.
//!
//! A kept record stands in for the store only while [`crate::serve::lookup`]
//! calls it a plain HIT (fresh, its `Vary` matching, the client not asking for
//! validation): anything else (stale, revalidation, a miss) reads the store, so
//! a refresh another instance stored is picked up the first time it matters.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::key::CacheKey;
use crate::stored::StoredResponse;

/// Most records kept, and most bytes (bodies and headers) they hold; beyond
/// either, the whole map is dropped (refilled by the next HITs from the store).
const MAX_RECORDS: usize = 4096;
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct LocalRecords {
    records: RefCell<HashMap<String, Rc<StoredResponse>>>,
    bytes: Cell<usize>,
}

impl LocalRecords {
    pub fn get(&self, key: &CacheKey) -> Option<Rc<StoredResponse>> {
        self.records.borrow().get(key.as_str()).cloned()
    }

    /// Keeps `record` as the store's current value of `key`.
    pub fn keep(&self, key: &CacheKey, record: &Rc<StoredResponse>) {
        let size = size_of(key, record);
        let mut records = self.records.borrow_mut();
        if records.len() >= MAX_RECORDS || self.bytes.get() + size > MAX_BYTES {
            records.clear();
            self.bytes.set(0);
        }
        if size > MAX_BYTES {
            return;
        }
        if let Some(old) = records.insert(key.as_str().to_owned(), record.clone()) {
            self.bytes
                .set(self.bytes.get().saturating_sub(size_of(key, &old)));
        }
        self.bytes.set(self.bytes.get() + size);
    }

    /// The store holds nothing (usable) under `key`.
    pub fn forget(&self, key: &CacheKey) {
        if let Some(old) = self.records.borrow_mut().remove(key.as_str()) {
            self.bytes
                .set(self.bytes.get().saturating_sub(size_of(key, &old)));
        }
    }

    pub fn len(&self) -> usize {
        self.records.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn size_of(key: &CacheKey, record: &StoredResponse) -> usize {
    let headers: usize = record.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    key.as_str().len() + record.body.len() + headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Headers;
    use bytes::Bytes;

    fn record(body: &str) -> Rc<StoredResponse> {
        Rc::new(StoredResponse {
            status: 200,
            headers: Headers::new(),
            body: Bytes::from(body.to_owned()),
            stored_at_ms: 0,
            initial_age_ms: 0,
            freshness_lifetime: 60,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            vary: Vec::new(),
        })
    }

    #[test]
    fn keeps_replaces_forgets_and_stays_bounded() {
        let local = LocalRecords::default();
        let key = CacheKey::new("h", "/api/songs/1", 7);
        assert!(local.get(&key).is_none());
        local.keep(&key, &record("a"));
        local.keep(&key, &record("bb"));
        assert_eq!(
            local.get(&key).map(|r| r.body.clone()),
            Some(Bytes::from("bb"))
        );
        assert_eq!(local.bytes.get(), key.as_str().len() + 2);
        let moved = CacheKey::new("h", "/api/songs/1", 8);
        assert!(local.get(&moved).is_none(), "a new generation is a new key");
        local.forget(&key);
        assert!(local.is_empty());
        assert_eq!(local.bytes.get(), 0);
        for n in 0..=MAX_RECORDS {
            local.keep(
                &CacheKey::new("h", &format!("/api/songs/{n}"), 0),
                &record("x"),
            );
        }
        assert!(local.len() <= MAX_RECORDS);
        let huge = record(&"y".repeat(MAX_BYTES + 1));
        local.keep(&key, &huge);
        assert!(
            local.get(&key).is_none(),
            "a record over the byte bound is not kept"
        );
    }
}
