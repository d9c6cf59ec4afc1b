//! Liveness (`/healthz`: the process answers), readiness (`/readyz`: its
//! database answers) and Prometheus metrics (`/metrics`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

pub async fn healthz() -> Response {
    no_store(Json(json!({ "status": "alive" })).into_response())
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.storage.ping().await?;
    Ok(no_store(Json(json!({ "status": "ready" })).into_response()))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.storage.pool_status());
    let mut response = no_store(body.into_response());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
