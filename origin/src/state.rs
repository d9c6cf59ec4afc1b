//! `AppState`: what every handler can reach (storage, cache, keys, metrics,
//! the HTTP caching policy) and the admission limits the router applies.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use tokio::sync::Semaphore;

use crate::auth::JwtKeys;
use crate::cache::Cache;
use crate::http_cache::CachePolicy;
use crate::metrics::Metrics;
use crate::storage::Storage;

pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub cache: Cache,
    pub jwt: JwtKeys,
    pub metrics: Arc<Metrics>,
    pub http_cache: CachePolicy,
    /// The OpenAPI description served at `/openapi.json` ([`crate::openapi::json`]).
    pub openapi: &'static str,
    /// Requests served at once; past it a request is shed.
    pub(crate) limiter: Arc<Semaphore>,
    /// Longest a request may take before it is answered 503.
    pub(crate) request_timeout: Duration,
}

/// The bearer-token extractor needs the keys alone, not the whole state.
impl FromRef<Arc<AppState>> for JwtKeys {
    fn from_ref(state: &Arc<AppState>) -> Self {
        state.jwt.clone()
    }
}
