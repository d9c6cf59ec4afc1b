//! [`EdgeIo`] over Spin: the default key-value store, outbound `wasi:http` to
//! one origin with a time limit, the wall clock, and `wasip3::spawn` for work
//! that outlives the response (under wasi:http 0.3 the export task keeps
//! running after the response has been returned, in the same instance).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_core::{
    AttemptError, EdgeIo, Encoded, KeyValue, OriginRequest, OriginResponse, flow::Background,
};
use futures::future::{Either, select};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::clocks::monotonic_clock::{self, wait_for};
use spin_sdk::wasip3::http::client;
use spin_sdk::wasip3::http::types::ErrorCode;

use crate::wire;

thread_local! {
    /// The default store, opened once per instance: the handle is a resource of
    /// this instance and stays valid for every request it serves.
    static STORE: RefCell<Option<Rc<Store>>> = const { RefCell::new(None) };
}

/// Spin key-value as edge-core's byte store (it has no expiry: `keep_secs` is unused).
pub struct SpinKv(Rc<Store>);

impl KeyValue for SpinKv {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.get(key).await.ok().flatten()
    }

    async fn set(&self, key: &str, value: Vec<u8>, _keep_secs: u64) {
        let _ = self.0.set(key, value).await;
    }

    async fn delete(&self, key: &str) {
        let _ = self.0.delete(key).await;
    }
}

pub struct SpinIo {
    store: Option<Encoded<SpinKv>>,
    /// `max_origin_body_bytes`: an origin body longer than this fails the attempt.
    max_origin_body_bytes: u64,
}

impl SpinIo {
    pub async fn new(max_origin_body_bytes: u64) -> Self {
        let store = match STORE.with(|s| s.borrow().clone()) {
            Some(store) => Some(store),
            None => match Store::open_default().await {
                Ok(store) => {
                    Some(STORE.with(|s| s.borrow_mut().get_or_insert(Rc::new(store)).clone()))
                }
                Err(_) => None,
            },
        };
        Self {
            store: store.map(|store| Encoded(SpinKv(store))),
            max_origin_body_bytes,
        }
    }
}

impl EdgeIo for SpinIo {
    type Store = Encoded<SpinKv>;

    fn store(&self) -> Option<&Self::Store> {
        self.store.as_ref()
    }

    async fn attempt(
        &self,
        request: &OriginRequest<'_>,
        limit_ms: u64,
    ) -> Result<OriginResponse, AttemptError> {
        let limit_ns = limit_ms.saturating_mul(1_000_000);
        let (outbound, host_times_out) =
            wire::origin_request(request, limit_ns).map_err(AttemptError::NotSent)?;
        let deadline = host_times_out.then(|| monotonic_clock::now().saturating_add(limit_ns));
        let most = self.max_origin_body_bytes;
        let exchange = async move {
            let response = client::send(outbound).await.map_err(attempt_error)?;
            let (status, headers, body) = wire::origin_response(response, deadline, most)
                .await
                .map_err(|(status, error)| match error {
                    wire::BodyError::Broken(code) => match attempt_error(code) {
                        AttemptError::Broken(detail) => {
                            AttemptError::Broken(format!("response body: {detail}"))
                        }
                        other => other,
                    },
                    wire::BodyError::Late => AttemptError::TimedOut,
                    wire::BodyError::TooLarge => AttemptError::TooLarge { status },
                })?;
            Ok(OriginResponse {
                status,
                headers,
                body,
            })
        };
        if host_times_out {
            // No timer of our own: cancelling one that did not fire was the costliest
            // call of a miss (callgrind). The host bounds the connect, the first byte
            // and each gap; the body's later parts are checked against the deadline.
            return exchange.await;
        }
        let timer = wait_for(limit_ns);
        match select(Box::pin(exchange), Box::pin(timer)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(AttemptError::TimedOut),
        }
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }

    fn spawn(&self, work: Background) {
        spin_sdk::wasip3::spawn(work);
    }

    fn can_collapse(&self) -> bool {
        true
    }

    async fn sleep_ms(&self, ms: u64) {
        wait_for(ms.saturating_mul(1_000_000)).await;
    }
}

/// wasi:http's error codes that mean the request never left: no connection, or
/// the host refused it. Everything else may have reached the origin.
fn attempt_error(code: ErrorCode) -> AttemptError {
    let detail = format!("{code:?}");
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::HttpRequestDenied
        | ErrorCode::HttpRequestUriInvalid => AttemptError::NotSent(detail),
        // The host's first-byte or between-bytes limit (`origin_request`).
        ErrorCode::ConnectionReadTimeout => AttemptError::TimedOut,
        _ => AttemptError::Broken(detail),
    }
}
