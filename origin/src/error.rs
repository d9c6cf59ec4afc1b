//! Every way a request can fail, mapped to a status code and a JSON body in
//! this one place. Internal causes are logged, never sent to the client.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::InvalidInput;
use crate::storage::StorageError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// A path, query or body the framework could not parse; the message says why.
    #[error("{message}")]
    BadRequest { status: StatusCode, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("only the author may change this comment")]
    Forbidden,
    #[error("storage failed")]
    Storage(#[source] Arc<StorageError>),
    #[error("server is overloaded")]
    Overloaded,
    #[error("request took too long")]
    TimedOut,
    #[error("no route for this path")]
    NoRoute,
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::Storage(Arc::new(error))
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::BadRequest { status, .. } => *status,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Storage(error) => match **error {
                StorageError::Unavailable(_) | StorageError::Timeout => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                StorageError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
                StorageError::UnknownUser(_) => StatusCode::UNAUTHORIZED,
            },
            Self::Overloaded | Self::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short machine-readable name for the error, next to the message.
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid_input",
            Self::BadRequest { .. } => "bad_request",
            Self::NotFound(_) | Self::NoRoute => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Storage(_) if self.status() == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            Self::Storage(_) if self.status() == StatusCode::UNAUTHORIZED => "unauthorized",
            Self::Storage(_) => "internal",
            Self::Overloaded => "overloaded",
            Self::TimedOut => "timeout",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // The cause stays in the log; the client learns only what kind of failure.
            Self::Storage(cause) => {
                tracing::warn!(error = %error_chain(cause.as_ref()), "storage error");
                match **cause {
                    StorageError::Unavailable(_) => {
                        "database unavailable, retry shortly".to_string()
                    }
                    StorageError::Timeout => {
                        "database did not answer in time, retry shortly".to_string()
                    }
                    StorageError::Backend(_) => "internal error".to_string(),
                    StorageError::UnknownUser(_) => "token subject is not a known user".to_string(),
                }
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(json!({ "error": message, "code": self.code() })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// "outer: inner: innermost", for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
