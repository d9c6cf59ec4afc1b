//! `fetch` to the origin group: the order, retry and time limits come from
//! edge-core; this file only performs attempts and reports how each ended.

use std::cell::RefCell;
use std::time::Duration;

use edge_core::{
    AttemptOutcome, EdgeConfig, Headers, OriginHealth, Rejection, attempt_timeout_ms, origin_url,
    should_retry,
};
use futures::future::{Either, select};
use worker::{AbortController, Delay, Fetch, Method, Request, RequestInit, RequestRedirect};

use crate::clock::now_ms;
use crate::convert::{core_headers, worker_headers};

/// An origin's complete answer.
#[derive(Debug, Clone)]
pub struct OriginAnswer {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// One request to send to the group.
pub struct Outbound<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a Headers,
    pub body: Option<&'a [u8]>,
}

/// Sends `outbound` to the origins in edge-core's order, failing over as
/// edge-core allows. When every attempt failed, the last origin answer (a 502-504)
/// is passed on if there was one; otherwise the edge answers 502 or 504 itself.
pub async fn send(
    outbound: &Outbound<'_>,
    config: &EdgeConfig,
    health: &RefCell<OriginHealth>,
) -> Result<OriginAnswer, Rejection> {
    let started = now_ms();
    let order = health.borrow().attempt_order(started);
    let mut last_answer = None;
    let mut last_outcome = AttemptOutcome::ConnectError;
    for (attempt_index, &index) in order.iter().enumerate() {
        let Some(limit_ms) = attempt_timeout_ms(now_ms().saturating_sub(started), config) else {
            last_outcome = AttemptOutcome::Timeout;
            break;
        };
        let url = origin_url(&config.origins[index], outbound.path_and_query);
        let (outcome, answer) = attempt(&url, outbound, limit_ms).await;
        health.borrow_mut().record(index, outcome, now_ms(), config);
        last_outcome = outcome;
        if answer.is_some() {
            last_answer = answer;
        }
        let elapsed = now_ms().saturating_sub(started);
        if !should_retry(
            outbound.method,
            outcome,
            attempt_index + 1,
            order.len(),
            elapsed,
            config,
        ) {
            break;
        }
    }
    match (last_answer, last_outcome) {
        (Some(answer), _) => Ok(answer),
        (None, AttemptOutcome::Timeout) => Err(Rejection::gateway_timeout()),
        (None, _) => Err(Rejection::bad_gateway(
            "every origin refused the connection",
        )),
    }
}

/// One attempt at one origin, bounded by `limit_ms` for the head and body together.
async fn attempt(
    url: &str,
    outbound: &Outbound<'_>,
    limit_ms: u64,
) -> (AttemptOutcome, Option<OriginAnswer>) {
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = async {
        let request = build_request(url, outbound)?;
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        let headers = core_headers(response.headers());
        let body = response.bytes().await?;
        Ok::<_, worker::Error>(OriginAnswer {
            status,
            headers,
            body,
        })
    };
    let timer = Delay::from(Duration::from_millis(limit_ms));
    match select(Box::pin(exchange), Box::pin(timer)).await {
        Either::Left((Ok(answer), _)) => (AttemptOutcome::Status(answer.status), Some(answer)),
        Either::Left((Err(error), _)) => {
            worker::console_warn!("origin {url}: {error}");
            (AttemptOutcome::ConnectError, None)
        }
        Either::Right(((), _)) => {
            controller.abort();
            (AttemptOutcome::Timeout, None)
        }
    }
}

fn build_request(url: &str, outbound: &Outbound<'_>) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(Method::from(outbound.method.to_owned()))
        .with_headers(worker_headers(outbound.headers)?)
        // Redirects belong to the client; following them here would cache the target under the wrong key.
        .with_redirect(RequestRedirect::Manual);
    if let Some(body) = outbound.body {
        init.with_body(Some(worker::js_sys::Uint8Array::from(body).into()));
    }
    Request::new_with_init(url, &init)
}
