//! Bodies read within a limit: the client's request (`max_body_bytes`) and an
//! origin's answer (`max_origin_body_bytes`). Refused as soon as one is known to
//! be too long: at once when its `Content-Length` says so, otherwise when the
//! parts read so far pass the limit. Never read whole first (`bytes()` would
//! hold all of it in the isolate's memory before anything is counted).

use futures::StreamExt as _;
use worker::{ByteStream, Request, Response, ResponseBody};

/// Why a body was not read.
pub enum BodyError {
    /// The stream failed (a client or an origin went away, broken framing).
    Failed(worker::Error),
    /// Longer than the limit.
    TooLong,
}

impl From<worker::Error> for BodyError {
    fn from(error: worker::Error) -> Self {
        Self::Failed(error)
    }
}

/// The client's body: none for a request without one. A `Content-Length` over
/// the limit never gets here: edge-core refuses it before it asks for the body.
pub async fn request(request: &mut Request, most: u64) -> Result<Vec<u8>, BodyError> {
    if request.inner().body().is_none() {
        return Ok(Vec::new());
    }
    within(request.stream()?, most).await
}

/// An origin's body.
pub async fn response(
    response: &mut Response,
    declared: Option<u64>,
    most: u64,
) -> Result<Vec<u8>, BodyError> {
    if declared.is_some_and(|length| length > most) {
        return Err(BodyError::TooLong);
    }
    if !matches!(response.body(), ResponseBody::Stream(_)) {
        let body = response.bytes().await?;
        return if body.len() as u64 > most {
            Err(BodyError::TooLong)
        } else {
            Ok(body)
        };
    }
    within(response.stream()?, most).await
}

async fn within(mut parts: ByteStream, most: u64) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(part) = parts.next().await {
        body.extend_from_slice(&part?);
        if body.len() as u64 > most {
            return Err(BodyError::TooLong);
        }
    }
    Ok(body)
}
