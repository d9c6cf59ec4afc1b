//! A real HTTP/1.1 origin on 127.0.0.1 that answers by script and logs what it
//! saw, and origins that misbehave in the ways the suite needs (hang up after
//! reading a request; answer with raw bytes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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

/// An origin speaking raw TCP on 127.0.0.1: `answer` gets each accepted connection.
async fn raw_origin<F, Fut>(answer: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    format!("http://{addr}")
}

/// An origin that reads each request and closes the connection without answering.
pub async fn hang_up_origin() -> String {
    use tokio::io::AsyncReadExt;
    raw_origin(|mut stream| async move {
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await;
    })
    .await
}

/// An origin that reads each request and then says nothing, holding the
/// connection open: only the edge's time limit ends the wait.
pub async fn silent_origin() -> String {
    use tokio::io::AsyncReadExt;
    raw_origin(|mut stream| async move {
        let mut buffer = [0u8; 4096];
        while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
    })
    .await
}

/// An origin that answers at once and then sends its body a byte every 100 ms,
/// for 10 s: no gap is long, the whole is.
pub async fn trickling_origin() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw_origin(|mut stream| async move {
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if stream.write_all(b"1\r\nx\r\n").await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await
}

/// An origin whose answers say both `Transfer-Encoding: chunked` and
/// `Content-Length: 5`, and whose chunked body is `hello` and then `, world`:
/// the length names the first chunk. It answers one request per connection.
pub async fn length_beside_chunking_origin() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw_origin(|mut stream| async move {
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await;
        let answer = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                      cache-control: public, max-age=60\r\ntransfer-encoding: chunked\r\n\
                      content-length: 5\r\nconnection: close\r\n\r\n\
                      5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await
}

/// An origin whose answers are `length` bytes of `y` in chunks of 10,000,
/// framed by `Transfer-Encoding: chunked` alone: nothing says how long the body
/// is before it has come. Writes that fail (the edge stopped reading) end the answer.
pub async fn chunked_origin(length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw_origin(move |mut stream| async move {
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                    cache-control: public, max-age=60\r\ntransfer-encoding: chunked\r\n\
                    connection: close\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut left = length;
        while left > 0 {
            let part = left.min(10_000);
            let chunk = format!("{part:x}\r\n{}\r\n", "y".repeat(part));
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            left -= part;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await
}

/// An address where nothing listens: bound, then released.
pub fn dead_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

/// A plain static file server, `python3 -m http.server`, serving `files`
/// (relative path, content) from a temporary directory on 127.0.0.1: an origin
/// that is not ours, for behaviours that front other origins. Stopped on drop.
pub struct FileServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl FileServer {
    pub fn start(files: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let dir = tempfile::Builder::new()
            .prefix("edge-files-")
            .tempdir()
            .expect("temporary directory");
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
            std::fs::write(path, content).expect("a file");
        }
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts (python3 is needed for this scenario)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's first line");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|word| *word != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_owned();
        Self {
            child,
            _dir: dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
