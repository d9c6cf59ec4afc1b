//! Outbound requests to the origin group: attempt order from passive health,
//! per-attempt and total time limits, and retries only where edge-core allows them.

use std::time::Instant;

use bytes::Bytes;
use edge_core::{
    AttemptOutcome, EdgeConfig, Headers, attempt_timeout_ms, origin_url, should_retry,
};
use futures::future::{Either, select};
use http_body_util::{BodyExt, Full};
use spin_sdk::http::IntoRequest;

use crate::state;

/// One complete origin response.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: Headers,
    pub body: Bytes,
    /// Unix seconds when the request left and the response arrived.
    pub request_time_ms: u64,
    pub response_time_ms: u64,
}

/// No origin produced a response.
#[derive(Debug, Clone)]
pub enum FetchError {
    TimedOut,
    Unavailable(String),
}

/// Sends `method target` to the origin group, trying the next origin after a
/// retryable failure. A 502/503/504 that may not be retried is returned as a response.
pub async fn fetch(
    config: &EdgeConfig,
    method: &str,
    target: &str,
    headers: &Headers,
    body: Bytes,
) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    let request_time_ms = crate::unix_now_ms();
    let order = state::with(|s| s.health.attempt_order(crate::unix_now_ms()));
    let mut last_error = FetchError::Unavailable("no origin configured".to_owned());
    for (attempts_before, &index) in order.iter().enumerate() {
        let elapsed = started.elapsed().as_millis() as u64;
        let Some(limit_ms) = attempt_timeout_ms(elapsed, config) else {
            last_error = FetchError::TimedOut;
            break;
        };
        let url = origin_url(&config.origins[index], target);
        let result = try_origin(method, &url, headers, body.clone(), limit_ms).await;
        let outcome = match &result {
            Ok(fetched) => AttemptOutcome::Status(fetched.0),
            Err(FetchError::TimedOut) => AttemptOutcome::Timeout,
            Err(FetchError::Unavailable(_)) => AttemptOutcome::ConnectError,
        };
        state::with(|s| {
            s.health
                .record(index, outcome, crate::unix_now_ms(), config)
        });
        let elapsed = started.elapsed().as_millis() as u64;
        match result {
            Ok((status, headers, body)) => {
                if !should_retry(
                    method,
                    outcome,
                    attempts_before + 1,
                    order.len(),
                    elapsed,
                    config,
                ) {
                    return Ok(Fetched {
                        status,
                        headers,
                        body,
                        request_time_ms,
                        response_time_ms: crate::unix_now_ms(),
                    });
                }
                last_error = FetchError::Unavailable(format!(
                    "origin {} answered {status}",
                    config.origins[index]
                ));
            }
            Err(error) => {
                last_error = error;
                if !should_retry(
                    method,
                    outcome,
                    attempts_before + 1,
                    order.len(),
                    elapsed,
                    config,
                ) {
                    break;
                }
            }
        }
    }
    Err(last_error)
}

async fn try_origin(
    method: &str,
    url: &str,
    headers: &Headers,
    body: Bytes,
    limit_ms: u64,
) -> Result<(u16, Headers, Bytes), FetchError> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers.iter() {
        builder = builder.header(name, value);
    }
    if !body.is_empty() {
        builder = builder.header("content-length", body.len().to_string());
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| FetchError::Unavailable(format!("bad origin request: {e}")))?
        .into_request()
        .map_err(|e| FetchError::Unavailable(format!("bad origin request: {e:?}")))?;
    let exchange = async move {
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| FetchError::Unavailable(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let headers: Headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| FetchError::Unavailable(format!("body: {e:?}")))?
            .to_bytes();
        Ok((status, headers, body))
    };
    let timer =
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(limit_ms.saturating_mul(1_000_000));
    match select(Box::pin(exchange), Box::pin(timer)).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(FetchError::TimedOut),
    }
}
