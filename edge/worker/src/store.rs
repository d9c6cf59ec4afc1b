//! Cloudflare's Cache API as edge-core's byte key-value store. Each value (an
//! encoded record, or a song's generation) is the body of one cached response
//! under a synthetic URL, so the Cache API's own HTTP rules (it ignores
//! `stale-*`, refuses `Set-Cookie`, answers conditionals itself) never see the
//! origin's headers; the only header it reads is our `Cache-Control: max-age`,
//! the retention edge-core asks for. Freshness lives inside the record and
//! edge-core judges it.

use edge_core::KeyValue;
use worker::{Cache, Response, ResponseBuilder};

/// Where the values of one zone live in the Cache API.
pub struct CacheKv {
    cache: Cache,
    /// `scheme://host` of the zone; Cloudflare keeps Cache API entries per zone.
    base: String,
}

impl CacheKv {
    pub fn new(base: String) -> Self {
        Self {
            cache: Cache::default(),
            base,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("{}/__edge-cache/{}", self.base, hex(key.as_bytes()))
    }
}

impl KeyValue for CacheKv {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.cache.get(self.url(key), false).await {
            Ok(Some(mut response)) => response.bytes().await.ok(),
            Ok(None) => None,
            Err(error) => {
                worker::console_warn!("cache match failed: {error}");
                None
            }
        }
    }

    /// A failed put only costs a later miss, so it is logged, not returned.
    async fn set(&self, key: &str, value: Vec<u8>, keep_secs: u64) {
        let outcome = match envelope(value, keep_secs) {
            Ok(response) => self.cache.put(self.url(key), response).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            worker::console_warn!("cache put failed: {error}");
        }
    }

    async fn delete(&self, key: &str) {
        if let Err(error) = self.cache.delete(self.url(key), false).await {
            worker::console_warn!("cache delete of {key} failed: {error}");
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
