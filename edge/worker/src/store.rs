//! Cloudflare's Cache API used as the edge's key-value store. Each edge-core record
//! (and each song's generation) is the body of one cached response under a
//! synthetic URL, so the Cache API's own HTTP rules (it ignores `stale-*`, refuses
//! `Set-Cookie`, answers conditionals itself) never see the origin's headers; the
//! only header it reads is our `Cache-Control: max-age`, which says how long the
//! record may be useful. Freshness lives inside the record and edge-core judges it.

use edge_core::{CacheKey, EdgeConfig, StoredResponse, parse_generation};
use worker::{Cache, Response, ResponseBuilder};

/// Where the records of one zone live in the Cache API.
pub struct Store {
    cache: Cache,
    /// `scheme://host` of the zone; Cloudflare keeps Cache API entries per zone.
    base: String,
}

impl Store {
    pub fn new(base: String) -> Self {
        Self {
            cache: Cache::default(),
            base,
        }
    }

    fn record_url(&self, key: &CacheKey) -> String {
        format!(
            "{}/__edge-cache/{}",
            self.base,
            hex(key.as_str().as_bytes())
        )
    }

    fn generation_url(&self, generation_key: &str) -> String {
        format!(
            "{}/__edge-cache/{}",
            self.base,
            hex(generation_key.as_bytes())
        )
    }

    /// The record under `key`; anything unreadable counts as nothing stored.
    pub async fn get(&self, key: &CacheKey) -> Option<StoredResponse> {
        let bytes = self.get_bytes(&self.record_url(key)).await?;
        StoredResponse::decode(&bytes).ok()
    }

    /// Stores `record` for as long as edge-core could still use it.
    pub async fn put(&self, key: &CacheKey, record: &StoredResponse, config: &EdgeConfig) {
        let keep_secs = retention_secs(record, config);
        self.put_bytes(&self.record_url(key), record.encode(), keep_secs)
            .await;
    }

    pub async fn delete(&self, key: &CacheKey) {
        if let Err(error) = self.cache.delete(self.record_url(key), false).await {
            worker::console_warn!("cache delete of {key} failed: {error}");
        }
    }

    /// A song's generation (0 when never written or evicted).
    pub async fn generation(&self, generation_key: &str) -> u64 {
        let bytes = self.get_bytes(&self.generation_url(generation_key)).await;
        parse_generation(bytes.as_deref())
    }

    /// Generations must outlive every record keyed under them, or an evicted
    /// generation would bring old records back; they are kept for twice the
    /// longest any record is kept.
    pub async fn set_generation(&self, generation_key: &str, generation: u64, config: &EdgeConfig) {
        let keep_secs = config.max_ttl_secs.saturating_mul(4).max(60);
        self.put_bytes(
            &self.generation_url(generation_key),
            generation.to_string().into_bytes(),
            keep_secs,
        )
        .await;
    }

    async fn get_bytes(&self, url: &str) -> Option<Vec<u8>> {
        match self.cache.get(url, false).await {
            Ok(Some(mut response)) => response.bytes().await.ok(),
            Ok(None) => None,
            Err(error) => {
                worker::console_warn!("cache match failed: {error}");
                None
            }
        }
    }

    /// A failed put only costs a later miss, so it is logged, not returned.
    async fn put_bytes(&self, url: &str, body: Vec<u8>, keep_secs: u64) {
        let response = envelope(body, keep_secs);
        let outcome = match response {
            Ok(response) => self.cache.put(url, response).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            worker::console_warn!("cache put failed: {error}");
        }
    }
}

fn envelope(body: Vec<u8>, keep_secs: u64) -> worker::Result<Response> {
    let headers = worker::Headers::new();
    headers.set("content-type", "application/octet-stream")?;
    headers.set("cache-control", &format!("public, max-age={keep_secs}"))?;
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body))
}

/// How long a record stays useful: while fresh, then while it may be served
/// stale (either stale window), and, when it has a validator, up to the TTL bound
/// so a later request can revalidate it with a 304 instead of a full fetch.
pub fn retention_secs(record: &StoredResponse, config: &EdgeConfig) -> u64 {
    let stale_window = record.stale_while_revalidate.max(record.stale_if_error);
    let usable = record.freshness_lifetime.saturating_add(stale_window);
    let has_validator = !record.conditional_headers().is_empty();
    let keep = if has_validator {
        usable.max(config.max_ttl_secs)
    } else {
        usable
    };
    keep.saturating_sub(record.initial_age_ms / 1000).max(1)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
