//! Test support: a scripted HTTP origin with a request log, an in-process
//! edge-host serving the embedded component, and a small client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// What the origin saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = Arc<dyn Fn(&SeenRequest, usize) -> Reply + Send + Sync>;

/// A real HTTP/1.1 server on 127.0.0.1 that answers by script and logs requests.
pub struct TestOrigin {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestOrigin {
    /// `script(request, n)` gets the request and how many requests came before it.
    pub async fn start(
        script: impl Fn(&SeenRequest, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let (stop, mut stopped) = oneshot::channel();
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (log, script) = (task_log.clone(), script.clone());
                        connections.spawn(async move {
                            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                                let (log, script) = (log.clone(), script.clone());
                                async move {
                                    let seen = SeenRequest {
                                        method: request.method().as_str().to_owned(),
                                        path_and_query: request.uri().path_and_query().map_or("/".into(), |p| p.as_str().to_owned()),
                                        headers: request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect(),
                                    };
                                    let _ = request.into_body().collect().await;
                                    let before = {
                                        let mut log = log.lock().unwrap();
                                        log.push(seen.clone());
                                        log.len() - 1
                                    };
                                    let reply = script(&seen, before);
                                    if !reply.delay.is_zero() {
                                        tokio::time::sleep(reply.delay).await;
                                    }
                                    let mut response = hyper::Response::builder().status(reply.status);
                                    for (n, v) in &reply.headers {
                                        response = response.header(n, v);
                                    }
                                    Ok::<_, std::convert::Infallible>(response.body(Full::new(Bytes::from(reply.body))).unwrap())
                                }
                            });
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        });
                    }
                }
            }
            // Dropping the set aborts every open connection: a killed origin.
            connections.abort_all();
        });
        Self {
            addr,
            log,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn count_of(&self, method: &str, path_and_query: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path_and_query == path_and_query)
            .count()
    }

    /// Closes the listener and every connection, like a crashed process.
    pub async fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An in-process edge-host serving the embedded component.
pub struct TestEdge {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }
}

impl TestEdge {
    pub async fn start(origins: &[&str], extra_vars: &[(&str, &str)]) -> Self {
        Self::start_with(origins, extra_vars, |_| {}).await
    }

    pub async fn start_with(
        origins: &[&str],
        extra_vars: &[(&str, &str)],
        tune: impl FnOnce(&mut edge_host::HostOptions),
    ) -> Self {
        let mut variables = vec![("origins".to_owned(), origins.join(","))];
        variables.extend(
            extra_vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut options = edge_host::HostOptions::new("127.0.0.1:0".parse().unwrap(), variables);
        options.request_timeout = Duration::from_secs(10);
        tune(&mut options);
        let host = edge_host::EdgeHost::bind(options)
            .await
            .expect("edge-host starts");
        let addr = host.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(host.run(async move {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self {
            addr,
            stop: Some(stop),
            client,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .expect("edge answers within 20 s")
            .expect("edge answers");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
