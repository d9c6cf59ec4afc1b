//! Every way a request can fail, mapped to a status code and a JSON body in
//! this one place. Internal causes are logged, never sent to the client.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

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
    /// The path exists, the method does not; axum adds the `Allow` field.
    #[error("this path does not take this method (see the Allow field)")]
    MethodNotAllowed,
}

/// The body of every error answer (4xx and 5xx).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, in words meant for the client's developer.
    pub error: String,
    pub code: ErrorCode,
}

/// A short machine-readable name for the error, next to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A value that parsed but is not allowed (an id, a body, a position, a limit, a cursor).
    InvalidInput,
    /// A path, query or body that did not parse (the status says which: 400, 413, 415, 422).
    BadRequest,
    NotFound,
    /// The path does not take the method; `Allow` lists the ones it takes.
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    /// Overloaded or shedding: retry after `Retry-After` seconds.
    Overloaded,
    /// The request took longer than the server allows.
    Timeout,
    /// The database is away or slow: retry after `Retry-After` seconds.
    Unavailable,
    Internal,
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
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
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

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidInput(_) => ErrorCode::InvalidInput,
            Self::BadRequest { .. } => ErrorCode::BadRequest,
            Self::NotFound(_) | Self::NoRoute => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::Storage(_) if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                ErrorCode::Unavailable
            }
            Self::Storage(_) if self.status() == StatusCode::UNAUTHORIZED => {
                ErrorCode::Unauthorized
            }
            Self::Storage(_) => ErrorCode::Internal,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::TimedOut => ErrorCode::Timeout,
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
        let body = ErrorBody {
            error: message,
            code: self.code(),
        };
        let mut response = (status, Json(body)).into_response();
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
