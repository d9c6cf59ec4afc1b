//! [`EdgeIo`] over the Workers runtime: the Cache API as the store, `fetch` to
//! one origin with a time limit, `Date.now()`, and `ctx.wait_until` for work
//! that outlives the response.

use std::time::Duration;

use edge_core::{AttemptError, EdgeIo, Encoded, OriginRequest, OriginResponse, flow::Background};
use futures::future::{Either, select};
use worker::{
    AbortController, Context, Delay, Fetch, Method, Request, RequestInit, RequestRedirect,
};

use crate::convert::{core_headers, worker_headers};
use crate::store::CacheKv;

pub struct WorkerIo {
    store: Encoded<CacheKv>,
    ctx: Context,
}

impl WorkerIo {
    /// `zone` is `scheme://host` of the request: the Cache API keeps entries per zone.
    pub fn new(zone: String, ctx: Context) -> Self {
        Self {
            store: Encoded(CacheKv::new(zone)),
            ctx,
        }
    }
}

impl EdgeIo for WorkerIo {
    type Store = Encoded<CacheKv>;

    fn store(&self) -> Option<&Self::Store> {
        Some(&self.store)
    }

    async fn attempt(
        &self,
        request: &OriginRequest<'_>,
        limit_ms: u64,
    ) -> Result<OriginResponse, AttemptError> {
        let outbound = build_request(request)
            .map_err(|e| AttemptError::NotSent(format!("bad origin request: {e}")))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut response = Fetch::Request(outbound).send_with_signal(&signal).await?;
            let status = response.status_code();
            let headers = core_headers(response.headers());
            let body = response.bytes().await?;
            Ok::<_, worker::Error>(OriginResponse {
                status,
                headers,
                body: body.into(),
            })
        };
        let timer = Delay::from(Duration::from_millis(limit_ms));
        match select(Box::pin(exchange), Box::pin(timer)).await {
            Either::Left((Ok(response), _)) => Ok(response),
            // `fetch` rejects with a TypeError that does not say whether the
            // request left, so a failed attempt counts as possibly sent: reads
            // still fail over, writes do not.
            Either::Left((Err(error), _)) => {
                worker::console_warn!("origin {}: {error}", request.url);
                Err(AttemptError::Broken(error.to_string()))
            }
            Either::Right(((), _)) => {
                controller.abort();
                Err(AttemptError::TimedOut)
            }
        }
    }

    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }

    fn spawn(&self, work: Background) {
        self.ctx.wait_until(work);
    }

    /// workers-rs polls every request's futures on one queue: a request woken by
    /// another's answer resumes in that request's I/O context, and workerd
    /// refuses its response ("Cannot perform I/O on behalf of a different
    /// request"). So each miss fetches for itself.
    fn can_collapse(&self) -> bool {
        false
    }

    async fn sleep_ms(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

fn build_request(request: &OriginRequest<'_>) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method.to_owned()))
        .with_headers(worker_headers(request.headers)?)
        // Redirects belong to the client; following them here would cache the target under the wrong key.
        .with_redirect(RequestRedirect::Manual);
    if !request.body.is_empty() {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(&request.body[..]).into(),
        ));
    }
    Request::new_with_init(&request.url, &init)
}
