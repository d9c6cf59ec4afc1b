//! HTTP routes, one file per area: songs (song, comments page, feed, new
//! comment), comments (read, edit, delete) and health (liveness, readiness,
//! metrics, the OpenAPI description). Handlers parse and check input, then call
//! the cache and storage. Each handler carries its `#[utoipa::path]`, so the
//! router and the OpenAPI description ([`crate::openapi`]) come from one list.

mod comments;
mod health;
mod input;
mod songs;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The API under `/api`, behind load shedding.
pub fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(songs::song))
        .routes(routes!(songs::comments, songs::create_comment))
        .routes(routes!(songs::feed))
        .routes(routes!(
            comments::comment,
            comments::edit_comment,
            comments::delete_comment
        ))
}

/// Liveness, readiness, metrics and the description: never shed, so operators
/// (and clients) can see an overload.
pub fn health_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
}
