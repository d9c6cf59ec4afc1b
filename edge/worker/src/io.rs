//! [`EdgeIo`] over the Workers runtime: the Cache API as the store, `fetch` to
//! one origin with a time limit, `Date.now()`, and `ctx.wait_until` for work
//! that outlives the response.

use std::time::Duration;

use edge_core::{AttemptError, EdgeIo, Encoded, OriginRequest, OriginResponse, flow::Background};
use futures::future::{Either, select};
use worker::{
    AbortController, Context, Delay, Fetch, Method, Request, RequestInit, RequestRedirect,
};

use crate::body::{self, BodyError};
use crate::convert::{core_headers, worker_headers};
use crate::store::CacheKv;

pub struct WorkerIo {
    store: Encoded<CacheKv>,
    ctx: Context,
    /// `max_origin_body_bytes`: an origin body longer than this fails the attempt.
    max_origin_body_bytes: u64,
}

impl WorkerIo {
    /// `zone` is `scheme://host` of the request: the Cache API keeps entries per zone.
    pub fn new(zone: String, ctx: Context, max_origin_body_bytes: u64) -> Self {
        Self {
            store: Encoded(CacheKv::new(zone)),
            ctx,
            max_origin_body_bytes,
        }
    }
}

/// Why an exchange with an origin ended without a response.
enum Failed {
    /// `fetch` or the body's stream failed.
    Fetch(worker::Error),
    /// The body of an answer with this status is longer than `max_origin_body_bytes`.
    TooLarge(u16),
}

impl From<worker::Error> for Failed {
    fn from(error: worker::Error) -> Self {
        Self::Fetch(error)
    }
}

/// A failed body, of an answer with `status`.
fn answer_failed(status: u16) -> impl FnOnce(BodyError) -> Failed {
    move |error| match error {
        BodyError::Failed(error) => Failed::Fetch(error),
        BodyError::TooLong => Failed::TooLarge(status),
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
        let most = self.max_origin_body_bytes;
        let exchange = async {
            let mut response = Fetch::Request(outbound).send_with_signal(&signal).await?;
            let status = response.status_code();
            let headers = core_headers(response.headers());
            let declared = headers.content_length().and_then(Result::ok);
            let body = body::response(&mut response, declared, most)
                .await
                .map_err(answer_failed(status))?;
            Ok::<_, Failed>(OriginResponse {
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
            Either::Left((Err(Failed::Fetch(error)), _)) => {
                worker::console_warn!("origin {}: {error}", request.url);
                Err(AttemptError::Broken(error.to_string()))
            }
            // The rest of the body is left unread.
            Either::Left((Err(Failed::TooLarge(status)), _)) => {
                controller.abort();
                Err(AttemptError::TooLarge { status })
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
    // workers-rs sends a method it does not list as GET; edge-core forwards only
    // the methods of CloudFront's sets, all listed, but a GET in a write's place
    // must never leave.
    let method = Method::from(request.method.to_owned());
    if method.as_ref() != request.method {
        return Err(worker::Error::RustError(format!(
            "the Worker cannot send method {}",
            request.method
        )));
    }
    let mut init = RequestInit::new();
    init.with_method(method)
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
