//! The floor of the edge bench (`cargo run --release -p edge-host --example bench`):
//! a `wasi:http/handler@0.3.0` component that does what every edge request must do
//! on the component model and nothing else. It reads the request's head in the
//! same host calls as the edge (method, path, authority, headers) and answers with
//! a response shaped like the edge's cache HIT: about as many fields, among them
//! `Content-Length`, and a body of about the same size, sent the same way.
//!
//! It has no cache, no key-value store and no origin (and wasi-libc's allocator,
//! where the edge has its own). Its rate on `edge-host` is about the most an edge
//! HIT on this host and component model could reach, so the bench can say how
//! much of the edge HIT's cost is the caching flow and how much the platform
//! under it.

use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Request, Response};
use spin_sdk::wasip3::{wit_future, wit_stream};

/// A song as the origin sends it (about the size of the bench's song read).
const BODY: &[u8] = br#"{"id":1,"title":"Song 1","artist":"Artist 1","duration_ms":215000,"created_at":"2026-01-01T00:00:00Z","comment_count":12}"#;

struct Component;

spin_sdk::wasip3::http::service::export!(Component);

impl spin_sdk::wasip3::exports::http::handler::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        // The edge's request head, read and then unused.
        let _ = (
            request.get_method(),
            request.get_path_with_query(),
            request.get_authority(),
            request.get_headers().copy_all(),
        );
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"application/json".to_vec()),
            (
                "cache-control".to_owned(),
                b"public, max-age=5, s-maxage=10, stale-while-revalidate=30, stale-if-error=300"
                    .to_vec(),
            ),
            ("etag".to_owned(), b"\"5f3a9c1e\"".to_vec()),
            ("age".to_owned(), b"1".to_vec()),
            ("x-cache".to_owned(), b"HIT".to_vec()),
            ("vary".to_owned(), b"accept-encoding".to_vec()),
            // As the edge does: `edge-host` then hands a small body to hyper whole
            // instead of streaming it chunked.
            (
                "content-length".to_owned(),
                BODY.len().to_string().into_bytes(),
            ),
        ])
        .map_err(|error| ErrorCode::InternalError(Some(format!("{error:?}"))))?;
        // Dropping the writer sends its default: the end of the body, without trailers.
        let (end_writer, end) = wit_future::new(|| Ok(None));
        let (mut writer, contents) = wit_stream::new();
        spin_sdk::wasip3::spawn(async move {
            let _unwritten = writer.write_all(BODY.to_vec()).await;
            drop(writer);
            drop(end_writer);
        });
        let (response, _sent) = Response::new(headers, Some(contents), end);
        Ok(response)
    }
}
