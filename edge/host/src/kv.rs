//! Key-value backends behind Spin's key-value interface: an in-memory LRU bounded
//! by bytes, or Redis. Both are shared by every component instance of one host.

use std::sync::Mutex;

use lru::LruCache;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Why a key-value operation failed; the guest sees it as `error::other`.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("redis key-value operation failed")]
    Redis(#[source] redis::RedisError),
}

/// Where the host keeps the component's key-value data.
pub enum KvBackend {
    Memory(MemoryKv),
    /// Every key set with an expiry of `expire_secs`: the component's data is a
    /// cache, and a Redis that evicts only keys with an expiry (`volatile-lru`)
    /// would otherwise keep it for ever.
    Redis {
        manager: ConnectionManager,
        expire_secs: u64,
    },
}

impl KvBackend {
    pub fn memory(max_bytes: usize) -> Self {
        Self::Memory(MemoryKv::new(max_bytes))
    }

    /// A Redis store whose keys expire `expire_secs` (at least 1) after they were last set.
    pub async fn redis(url: &str, expire_secs: u64) -> Result<Self, KvError> {
        let client = redis::Client::open(url).map_err(KvError::Redis)?;
        let manager = ConnectionManager::new(client)
            .await
            .map_err(KvError::Redis)?;
        Ok(Self::Redis {
            manager,
            expire_secs: expire_secs.max(1),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Self::Memory(memory) => Ok(memory.get(key)),
            Self::Redis { manager, .. } => manager.clone().get(key).await.map_err(KvError::Redis),
        }
    }

    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        match self {
            Self::Memory(memory) => {
                memory.set(key, value);
                Ok(())
            }
            Self::Redis {
                manager,
                expire_secs,
            } => manager
                .clone()
                .set_ex(key, value, *expire_secs)
                .await
                .map_err(KvError::Redis),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self {
            Self::Memory(memory) => {
                memory.delete(key);
                Ok(())
            }
            Self::Redis { manager, .. } => manager.clone().del(key).await.map_err(KvError::Redis),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self {
            Self::Memory(memory) => Ok(memory.get(key).is_some()),
            Self::Redis { manager, .. } => {
                manager.clone().exists(key).await.map_err(KvError::Redis)
            }
        }
    }
}

/// An LRU map whose keys and values together stay under a byte budget; least
/// recently used entries are evicted first, so orphaned cache generations age out.
pub struct MemoryKv {
    inner: Mutex<MemoryInner>,
}

struct MemoryInner {
    entries: LruCache<String, Vec<u8>>,
    used_bytes: usize,
    max_bytes: usize,
}

impl MemoryKv {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(MemoryInner {
                entries: LruCache::unbounded(),
                used_bytes: 0,
                max_bytes,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().entries.get(key).cloned()
    }

    pub fn set(&self, key: &str, value: Vec<u8>) {
        let mut inner = self.lock();
        let size = key.len() + value.len();
        if let Some(old) = inner.entries.pop(key) {
            inner.used_bytes -= key.len() + old.len();
        }
        if size > inner.max_bytes {
            return;
        }
        while inner.used_bytes + size > inner.max_bytes {
            match inner.entries.pop_lru() {
                Some((k, v)) => inner.used_bytes -= k.len() + v.len(),
                None => break,
            }
        }
        inner.used_bytes += size;
        inner.entries.put(key.to_owned(), value);
    }

    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(key) {
            inner.used_bytes -= key.len() + old.len();
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.lock().used_bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys set through the host's Redis store carry an expiry, so a Redis that
    /// evicts only such keys (`volatile-lru`) can evict them, and they end anyway.
    #[tokio::test]
    async fn redis_keys_expire() {
        let redis = stack::redis::RedisServer::start(stack::redis::RedisOptions::default())
            .await
            .expect("redis-server starts");
        let kv = KvBackend::redis(&redis.url(), 600).await.expect("connect");
        kv.set("c:edge:0:/api/songs/1", b"record".to_vec())
            .await
            .expect("set");
        assert_eq!(
            kv.get("c:edge:0:/api/songs/1").await.expect("get"),
            Some(b"record".to_vec())
        );
        let KvBackend::Redis { manager, .. } = &kv else {
            unreachable!("a Redis store")
        };
        let ttl: i64 = manager
            .clone()
            .ttl("c:edge:0:/api/songs/1")
            .await
            .expect("TTL");
        assert!((590..=600).contains(&ttl), "TTL {ttl}");
    }

    #[test]
    fn memory_kv_evicts_least_recently_used_by_bytes() {
        let kv = MemoryKv::new(30);
        kv.set("a", vec![0; 9]);
        kv.set("b", vec![0; 9]);
        kv.set("c", vec![0; 9]);
        assert_eq!(kv.used_bytes(), 30);
        assert!(kv.get("a").is_some(), "touch a so b is the oldest");
        kv.set("d", vec![0; 9]);
        assert_eq!(
            (
                kv.get("a").is_some(),
                kv.get("b").is_some(),
                kv.get("c").is_some(),
                kv.get("d").is_some()
            ),
            (true, false, true, true)
        );
        assert_eq!(kv.used_bytes(), 30);
        kv.set("a", vec![0; 1]);
        assert_eq!(kv.used_bytes(), 22);
        kv.delete("a");
        assert_eq!((kv.used_bytes(), kv.len()), (20, 2));
        kv.set("huge", vec![0; 100]);
        assert!(kv.get("huge").is_none(), "larger than the whole budget");
        assert_eq!(kv.len(), 2);
    }
}
