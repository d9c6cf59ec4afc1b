//! The scripted I/O the flow's tests drive it with: an in-memory store that
//! logs every operation, origins that answer by script, a clock that only
//! moves when told, and background work run when the test says.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::executor::block_on;

use super::super::*;
use crate::headers::Headers;

pub(super) fn h(fields: &[(&str, &str)]) -> Headers {
    fields.iter().copied().collect()
}

/// What an origin answers, and how long it takes (the clock moves by it).
#[derive(Clone)]
pub(super) struct Script {
    result: Result<OriginResponse, AttemptError>,
    takes_ms: u64,
    /// Times the attempt yields before answering, so that others run meanwhile.
    yields: u32,
}

pub(super) fn ok(status: u16, headers: &[(&str, &str)], body: &str) -> Script {
    Script {
        result: Ok(OriginResponse {
            status,
            headers: h(headers),
            body: Bytes::from(body.to_owned()),
        }),
        takes_ms: 0,
        yields: 0,
    }
}

pub(super) fn err(error: AttemptError) -> Script {
    Script {
        result: Err(error),
        takes_ms: 0,
        yields: 0,
    }
}

impl Script {
    pub(super) fn taking(mut self, ms: u64) -> Self {
        self.takes_ms = ms;
        self
    }

    pub(super) fn yielding(mut self, times: u32) -> Self {
        self.yields = times;
        self
    }
}

pub(super) type Answerer = Box<dyn Fn(&Seen, usize) -> Script>;

/// One request an origin saw.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) url: String,
    pub(super) headers: Headers,
    pub(super) body: Bytes,
}

pub(super) struct Scripted {
    store: Option<Memory>,
    now: Cell<u64>,
    answer: Answerer,
    seen: RefCell<Vec<Seen>>,
    background: RefCell<Vec<Background>>,
    collapse: bool,
}

#[derive(Default)]
pub(super) struct Memory {
    records: RefCell<HashMap<String, Rc<StoredResponse>>>,
    generations: RefCell<HashMap<String, u64>>,
    log: RefCell<Vec<String>>,
    reads: Cell<usize>,
}

impl RecordStore for Memory {
    async fn get(&self, key: &CacheKey) -> Option<Rc<StoredResponse>> {
        self.reads.set(self.reads.get() + 1);
        self.records.borrow().get(key.as_str()).cloned()
    }
    async fn put(&self, key: &CacheKey, record: Rc<StoredResponse>, _keep_secs: u64) {
        self.log.borrow_mut().push(format!("put {key}"));
        self.records.borrow_mut().insert(key.to_string(), record);
    }
    async fn delete(&self, key: &CacheKey) {
        self.log.borrow_mut().push(format!("delete {key}"));
        self.records.borrow_mut().remove(key.as_str());
    }
    async fn generation(&self, key: &str) -> Option<u64> {
        self.generations.borrow().get(key).copied()
    }
    async fn set_generation(&self, key: &str, generation: u64, _keep_secs: u64) {
        self.log
            .borrow_mut()
            .push(format!("generation {key} = {generation}"));
        self.generations
            .borrow_mut()
            .insert(key.to_owned(), generation);
    }
}

/// Yields once, so that other tasks of the pool run.
pub(super) struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl EdgeIo for Scripted {
    type Store = Memory;

    fn store(&self) -> Option<&Memory> {
        self.store.as_ref()
    }

    async fn attempt(
        &self,
        request: &OriginRequest<'_>,
        limit_ms: u64,
    ) -> Result<OriginResponse, AttemptError> {
        let seen = Seen {
            method: request.method.to_owned(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        };
        let before = self.seen.borrow().len();
        self.seen.borrow_mut().push(seen.clone());
        let script = (self.answer)(&seen, before);
        for _ in 0..script.yields {
            YieldNow(false).await;
        }
        if script.takes_ms >= limit_ms {
            self.now.set(self.now.get() + limit_ms);
            return Err(AttemptError::TimedOut);
        }
        self.now.set(self.now.get() + script.takes_ms);
        script.result
    }

    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn spawn(&self, work: Background) {
        self.background.borrow_mut().push(work);
    }

    fn can_collapse(&self) -> bool {
        self.collapse
    }

    async fn sleep_ms(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
        YieldNow(false).await;
    }
}

pub(super) const T0: u64 = 1_800_000_000_000;

pub(super) struct Rig {
    pub(super) edge: Rc<Edge>,
    pub(super) io: Rc<Scripted>,
}

impl Rig {
    pub(super) fn new(origins: usize, answer: impl Fn(&Seen, usize) -> Script + 'static) -> Self {
        let config = EdgeConfig {
            origins: (0..origins).map(|i| format!("http://o{i}")).collect(),
            origin_timeout_ms: 1_000,
            total_timeout_ms: 2_500,
            collapse_wait_ms: 500,
            ..EdgeConfig::default()
        };
        Self::with_config(config, answer)
    }

    pub(super) fn with_config(
        config: EdgeConfig,
        answer: impl Fn(&Seen, usize) -> Script + 'static,
    ) -> Self {
        Self {
            edge: Edge::new(config),
            io: Rc::new(Scripted {
                store: Some(Memory::default()),
                now: Cell::new(T0),
                answer: Box::new(answer),
                seen: RefCell::default(),
                background: RefCell::default(),
                collapse: true,
            }),
        }
    }

    pub(super) fn without_store(mut self) -> Self {
        Rc::get_mut(&mut self.io).expect("not shared yet").store = None;
        self
    }

    pub(super) fn without_collapsing(mut self) -> Self {
        Rc::get_mut(&mut self.io).expect("not shared yet").collapse = false;
        self
    }

    pub(super) fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> EdgeResponse {
        block_on(handle(
            &self.edge,
            &self.io,
            head(method, target, headers),
            std::future::ready(Ok(Bytes::from(body.to_owned()))),
        ))
    }

    pub(super) fn get(&self, target: &str) -> EdgeResponse {
        self.send("GET", target, &[], "")
    }

    pub(super) fn advance(&self, ms: u64) {
        self.io.now.set(self.io.now.get() + ms);
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.io.seen.borrow().clone()
    }

    pub(super) fn run_background(&self) -> usize {
        let work: Vec<_> = self.io.background.borrow_mut().drain(..).collect();
        let count = work.len();
        for task in work {
            block_on(task);
        }
        count
    }

    pub(super) fn store_log(&self) -> Vec<String> {
        self.io.store.as_ref().unwrap().log.borrow().clone()
    }

    /// How many records the flow has read from the store so far.
    pub(super) fn record_reads(&self) -> usize {
        self.io.store.as_ref().unwrap().reads.get()
    }

    /// What a store short of room may do: drop a generation.
    pub(super) fn evict_generation(&self, key: &str) {
        let store = self.io.store.as_ref().unwrap();
        store.generations.borrow_mut().remove(key);
    }

    /// What another instance sharing the store does when it invalidates:
    /// move the generation under `key`.
    pub(super) fn bump_generation(&self, key: &str) {
        let store = self.io.store.as_ref().unwrap();
        *store
            .generations
            .borrow_mut()
            .entry(key.to_owned())
            .or_default() += 1;
    }
}

pub(super) fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead {
        method: method.to_owned(),
        path_and_query: target.to_owned(),
        host: Some("edge.test".to_owned()),
        headers: h(headers),
    }
}

pub(super) fn x_cache(response: &EdgeResponse) -> &str {
    response.headers.get("x-cache").unwrap_or("<none>")
}

pub(super) fn summary(response: &EdgeResponse) -> (u16, &str, &str) {
    (
        response.status,
        x_cache(response),
        std::str::from_utf8(&response.body).unwrap_or("<binary>"),
    )
}
