//! HTTP caching headers, which the edge relies on and nothing else: a strong
//! ETag (blake3 of the body), `If-None-Match` → 304, `Cache-Control` for
//! cacheable reads, `no-store` for writes and errors.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Freshness of cacheable reads, as configured.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    cache_control: HeaderValue,
}

impl CachePolicy {
    pub fn new(
        max_age: u32,
        s_maxage: u32,
        stale_while_revalidate: u32,
        stale_if_error: u32,
    ) -> Self {
        let text = format!(
            "public, max-age={max_age}, s-maxage={s_maxage}, \
             stale-while-revalidate={stale_while_revalidate}, stale-if-error={stale_if_error}"
        );
        Self {
            cache_control: HeaderValue::from_str(&text).expect("ASCII header value"),
        }
    }

    pub fn cache_control(&self) -> &HeaderValue {
        &self.cache_control
    }
}

/// A strong validator: the same bytes give the same tag on every instance.
pub fn etag_of(body: &[u8]) -> HeaderValue {
    let hash = blake3::hash(body);
    let hex = hash.to_hex();
    HeaderValue::from_str(&format!("\"{}\"", &hex[..32])).expect("hex is a valid header value")
}

/// Whether `If-None-Match` names this tag (weak comparison, as RFC 9110 asks
/// for If-None-Match; `*` matches any current representation).
pub fn none_match_hits(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|list| {
            list.split(',').map(str::trim).any(|candidate| {
                candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
            })
        })
}

/// A cacheable JSON answer, or 304 when the client already has these bytes.
pub fn cacheable_json(request: &HeaderMap, body: Bytes, policy: &CachePolicy) -> Response {
    let etag = etag_of(&body);
    let hit = none_match_hits(request, &etag);
    let mut response = if hit {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, policy.cache_control.clone());
    response
}

/// A JSON answer to a write: never stored by any cache.
pub fn uncacheable_json(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_none_match_cases() {
        let etag = etag_of(b"{}");
        let tag = etag.to_str().unwrap().to_string();
        for (value, expected) in [
            (tag.clone(), true),
            (format!("W/{tag}"), true),
            (format!("\"other\", {tag}"), true),
            ("*".to_string(), true),
            ("\"other\"".to_string(), false),
            (tag.trim_matches('"').to_string(), false),
        ] {
            assert_eq!(
                none_match_hits(&request_with(&value), &etag),
                expected,
                "{value}"
            );
        }
        assert!(!none_match_hits(&HeaderMap::new(), &etag));
        assert_ne!(etag_of(b"{}"), etag_of(b"[]"));
    }

    #[test]
    fn not_modified_keeps_validators_and_drops_the_body() {
        let policy = CachePolicy::new(5, 10, 30, 300);
        let body = Bytes::from_static(b"{\"a\":1}");
        let fresh = cacheable_json(&HeaderMap::new(), body.clone(), &policy);
        assert_eq!(fresh.status(), StatusCode::OK);
        let etag = fresh.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = cacheable_json(&request_with(&etag), body, &policy);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert_eq!(
            again.headers()[header::CACHE_CONTROL],
            "public, max-age=5, s-maxage=10, stale-while-revalidate=30, stale-if-error=300"
        );
    }
}
