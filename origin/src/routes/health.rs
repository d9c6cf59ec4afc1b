//! Liveness (`/healthz`: the process answers), readiness (`/readyz`: its
//! database answers) and Prometheus metrics (`/metrics`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What `/healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `alive` (the process answers) or `ready` (and its database does).
    #[schema(example = "ready")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive.", body = Health))
)]
pub async fn healthz() -> Response {
    no_store(Json(Health { status: "alive" }).into_response())
}

/// Readiness: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Health),
        (status = 503, description = "The database does not answer.", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.storage.ping().await?;
    Ok(no_store(Json(Health { status: "ready" }).into_response()))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Counters, gauges and histograms.", body = String,
        content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.storage.pool_status());
    let mut response = no_store(body.into_response());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// This description (OpenAPI 3.1), as served; `docs/openapi.json` is a copy.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI description.", body = Object))
)]
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    let mut response = Bytes::from_static(state.openapi.as_bytes()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
