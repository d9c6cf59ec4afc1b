//! The failover loop: attempts at the origin group in passive-health order, each
//! bounded by the per-attempt limit cut to what remains of the total bound, and
//! a next attempt only where [`should_retry`] allows it.

use bytes::Bytes;

use crate::config::{EdgeConfig, origin_body_too_large};
use crate::flow::Edge;
use crate::flow::io::{AttemptError, EdgeIo, OriginRequest, OriginResponse};
use crate::headers::Headers;
use crate::origin::{AttemptOutcome, attempt_timeout_ms, origin_url, should_retry};
use crate::request::Rejection;

/// An origin's answer with the times the RFC's age calculation needs.
#[derive(Debug, Clone)]
pub struct Answered {
    pub response: OriginResponse,
    /// When the answering attempt left and its response arrived (Unix ms).
    pub request_time_ms: u64,
    pub response_time_ms: u64,
}

/// What the attempts at an origin group came to.
#[derive(Debug)]
pub struct Fetched {
    pub result: Result<Answered, Rejection>,
    /// Whether an attempt other than the one whose answer is `result` may
    /// have reached an origin (it broke after sending, timed out, or was
    /// answered): a write may then have been carried out though `result`
    /// says otherwise.
    pub others_may_have_acted: bool,
}

/// Sends `method target` to the origin group.
///
/// When the attempts end without a usable answer, the last answer an origin
/// gave (a 502-504) is passed on if there is one, also when the time ran out
/// after it: it is what the origin said, often with `Retry-After`, and a 504
/// would claim that no origin answered. If that last answer was too long to
/// read, the edge says so in a 502. Only when no origin answered at all does
/// the edge answer itself: 504 after a timeout, else 502.
pub async fn fetch<I: EdgeIo>(
    edge: &Edge,
    io: &I,
    group: usize,
    method: &str,
    target: &str,
    headers: &Headers,
    body: Bytes,
) -> Fetched {
    let config = &edge.config;
    let origins = config.group(group);
    let Some(health) = edge.health.get(group) else {
        return Fetched {
            result: Err(Rejection::bad_gateway("no such origin group")),
            others_may_have_acted: false,
        };
    };
    // Attempts that may have reached an origin: all but those never sent.
    let mut reached = 0;
    let started = io.now_ms();
    let order = health.borrow().attempt_order(started);
    let mut last_answer = LastAnswer::None;
    let mut last_failure = AttemptOutcome::NotSent;
    let mut detail = "no origin configured".to_owned();
    // The clock is read after each attempt and before each but the first, which
    // starts at `started`: on a guest, each read is a host call.
    let mut request_time_ms = started;
    for (attempt_index, &index) in order.iter().enumerate() {
        if attempt_index > 0 {
            request_time_ms = io.now_ms();
        }
        let elapsed = request_time_ms.saturating_sub(started);
        let Some(limit_ms) = attempt_timeout_ms(elapsed, config) else {
            last_failure = AttemptOutcome::Timeout;
            break;
        };
        let request = OriginRequest {
            method,
            url: origin_url(&origins[index], target),
            headers,
            body: body.clone(),
        };
        let result = io.attempt(&request, limit_ms).await;
        let response_time_ms = io.now_ms();
        let (outcome, why) = outcome_of(&result, &origins[index], config);
        if let Some(why) = why {
            detail = why;
        }
        if outcome != AttemptOutcome::NotSent {
            reached += 1;
        }
        health
            .borrow_mut()
            .record(index, outcome, response_time_ms, config);
        let retry = should_retry(
            method,
            outcome,
            attempt_index + 1,
            order.len(),
            response_time_ms.saturating_sub(started),
            config,
        );
        match result {
            Ok(response) => {
                let answered = Answered {
                    response,
                    request_time_ms,
                    response_time_ms,
                };
                if !retry {
                    return Fetched {
                        result: Ok(answered),
                        others_may_have_acted: reached > 1,
                    };
                }
                last_answer = LastAnswer::Usable(answered);
            }
            Err(AttemptError::TooLarge { .. }) => {
                last_answer = LastAnswer::TooLarge(detail.clone());
                if !retry {
                    break;
                }
            }
            Err(_) => {
                last_failure = outcome;
                if !retry {
                    break;
                }
            }
        }
    }
    last_answer.give_up(last_failure, detail, reached)
}

/// The latest answer an origin gave, which the client gets when the attempts
/// end without a final one.
enum LastAnswer {
    None,
    /// A 502-504, passed on as it is.
    Usable(Answered),
    /// One too long to read ([`AttemptError::TooLarge`]): a 502 saying so.
    TooLarge(String),
}

impl LastAnswer {
    /// What the client gets when the attempts end without a final answer, after
    /// `reached` attempts that may have reached an origin, the last failure
    /// `last_failure` and the last reason given `detail`.
    fn give_up(self, last_failure: AttemptOutcome, detail: String, reached: usize) -> Fetched {
        let (result, answering) = match (self, last_failure) {
            (LastAnswer::Usable(answered), _) => (Ok(answered), 1),
            // An origin answered, unreadably: whatever came after, not a 504.
            (LastAnswer::TooLarge(why), _) => (Err(Rejection::bad_gateway(&why)), 0),
            (LastAnswer::None, AttemptOutcome::Timeout) => (Err(Rejection::gateway_timeout()), 0),
            (LastAnswer::None, _) => (Err(Rejection::bad_gateway(&detail)), 0),
        };
        Fetched {
            result,
            others_may_have_acted: reached > answering,
        }
    }
}

/// What an attempt came to, for the origin's health and the retry rule, and for
/// a failure that says why, the reason with the origin's name.
fn outcome_of(
    result: &Result<OriginResponse, AttemptError>,
    origin: &str,
    config: &EdgeConfig,
) -> (AttemptOutcome, Option<String>) {
    match result {
        Ok(response) => (AttemptOutcome::Status(response.status), None),
        Err(AttemptError::NotSent(why)) => {
            (AttemptOutcome::NotSent, Some(format!("{origin}: {why}")))
        }
        Err(AttemptError::Broken(why)) => {
            (AttemptOutcome::Broken, Some(format!("{origin}: {why}")))
        }
        Err(AttemptError::TimedOut) => (AttemptOutcome::Timeout, None),
        Err(AttemptError::TooLarge { status }) => (
            AttemptOutcome::Status(*status),
            Some(format!(
                "{origin}: {}",
                origin_body_too_large(config.max_origin_body_bytes)
            )),
        ),
    }
}
