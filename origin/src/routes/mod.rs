//! HTTP routes, one file per area: songs (song, comments page, feed, new
//! comment), comments (read, edit, delete) and health (liveness, readiness,
//! metrics). Handlers parse and check input, then call the cache and storage.

mod comments;
mod health;
mod input;
mod songs;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::startup::AppState;

/// The API under `/api`, behind load shedding.
pub fn api_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/songs/{song_id}", get(songs::song))
        .route(
            "/api/songs/{song_id}/comments",
            get(songs::comments).post(songs::create_comment),
        )
        .route("/api/songs/{song_id}/feed", get(songs::feed))
        .route(
            "/api/comments/{comment_id}",
            get(comments::comment)
                .patch(comments::edit_comment)
                .delete(comments::delete_comment),
        )
}

/// Liveness, readiness and metrics: never shed, so operators can see an overload.
pub fn health_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
}
