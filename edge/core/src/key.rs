//! Cache keys: the normalised request identity under which a response is stored,
//! and the per-song generation that lets one write make every page of a song stale.
//!
//! Key scheme (all plain strings, so any key-value store can hold them):
//! - `gen:song:<id>` holds the decimal generation of song `<id>` (absent = 0).
//! - `c:<host>:<generation>:<path>?<sorted query>` holds one stored response.
//!   Paths under `/api/songs/<id>` use that song's generation; others use 0.
//!
//! Bumping a song's generation makes all its old keys unreachable without listing
//! or deleting them, which a key-value store without prefix delete cannot do;
//! the orphaned entries age out of the store's LRU.

use std::fmt;

use crate::decimal::push_decimal;

/// The store key of one cached response (GET and HEAD share it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Builds the key from the normalised host (see [`crate::RequestHead::key_host`]),
    /// the request target, and the generation read for its song scope.
    pub fn new(host: &str, path_and_query: &str, generation: u64) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let query = query.map(normalise_query).unwrap_or_default();
        let mut key = String::with_capacity(host.len() + path.len() + query.len() + 26);
        key.push_str("c:");
        key.push_str(host);
        key.push(':');
        push_decimal(&mut key, generation);
        key.push(':');
        key.push_str(path);
        if !query.is_empty() {
            key.push('?');
            key.push_str(&query);
        }
        Self(key)
    }

    /// The key of one variant: the request's values of what its behaviour
    /// forwards (headers, cookies), each as `#name=<length>:<value>` so that no
    /// value can be read as another part.
    pub fn with_parts(mut self, parts: &[(String, String)]) -> Self {
        for (name, value) in parts {
            self.0.push('#');
            self.0.push_str(name);
            self.0.push('=');
            push_decimal(&mut self.0, value.len() as u64);
            self.0.push(':');
            self.0.push_str(value);
        }
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sorts query parameters and drops empty ones, so `?b=2&a=1` and `?a=1&b=2&`
/// are one entry. Values are kept byte-for-byte (no decoding), so distinct
/// queries can never collide.
pub fn normalise_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

/// The song a path belongs to: `/api/songs/<id>` and everything below it.
pub fn song_of_path(path: &str) -> Option<u64> {
    let path = path.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix("/api/songs/")?;
    let id = rest.split('/').next()?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// The store key holding a song's generation.
pub fn generation_key(song: u64) -> String {
    let mut key = String::with_capacity(29);
    key.push_str("gen:song:");
    push_decimal(&mut key, song);
    key
}

/// How long a store that expires entries must keep a generation: longer than
/// any record keyed under it (twice the longest, see
/// [`crate::StoredResponse::retention_secs`]), or an evicted generation would
/// bring old records back.
pub fn generation_retention_secs(config: &crate::EdgeConfig) -> u64 {
    config.max_ttl_secs.saturating_mul(4).max(60)
}

/// Reads a stored generation value; anything unreadable counts as 0.
pub fn parse_generation(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The generation to write after a change. It must differ from every earlier
/// value even when two writers read the same old value concurrently (Spin's
/// key-value store has no increment), so it follows the clock, not just +1.
pub fn next_generation(current: u64, now_ms: u64) -> u64 {
    now_ms.max(current.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise() {
        fn check(host: &str, target: &str, generation: u64, expected: &str) {
            assert_eq!(
                CacheKey::new(host, target, generation).as_str(),
                expected,
                "{host} {target}"
            );
        }
        check("h", "/api/songs", 0, "c:h:0:/api/songs");
        check("h", "/api/songs?", 0, "c:h:0:/api/songs");
        check("h", "/api/songs?b=2&a=1", 0, "c:h:0:/api/songs?a=1&b=2");
        check("h", "/api/songs?a=1&b=2", 0, "c:h:0:/api/songs?a=1&b=2");
        check("h", "/api/songs?&a=1&&b=2&", 0, "c:h:0:/api/songs?a=1&b=2");
        check("h", "/api/songs?a=2&a=1", 0, "c:h:0:/api/songs?a=1&a=2");
        check("h", "/api/songs?a=%20", 0, "c:h:0:/api/songs?a=%20");
        assert_eq!(
            CacheKey::new("h", "/a", 0)
                .with_parts(&[
                    ("accept".into(), "x#y".into()),
                    ("cookie".into(), "l=1".into())
                ])
                .as_str(),
            "c:h:0:/a#accept=3:x#y#cookie=3:l=1"
        );
        check(
            "h:8000",
            "/api/songs/7/comments?limit=5",
            42,
            "c:h:8000:42:/api/songs/7/comments?limit=5",
        );
    }

    #[test]
    fn distinct_requests_get_distinct_keys() {
        let pairs = [
            (("h", "/api/a", 0), ("h", "/api/b", 0)),
            (("h", "/api/a", 0), ("g", "/api/a", 0)),
            (("h", "/api/a", 0), ("h", "/api/a", 1)),
            (("h", "/api/a?x=1", 0), ("h", "/api/a?x=2", 0)),
            (("h", "/api/a?x=1&y=2", 0), ("h", "/api/a?x=1y=2", 0)),
            (("h", "/api/a", 0), ("h", "/api/a?", 1)),
        ];
        for (a, b) in pairs {
            assert_ne!(
                CacheKey::new(a.0, a.1, a.2),
                CacheKey::new(b.0, b.1, b.2),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn songs_are_found_in_paths() {
        fn check(path: &str, expected: Option<u64>) {
            assert_eq!(song_of_path(path), expected, "{path}");
        }
        check("/api/songs/1", Some(1));
        check("/api/songs/42/comments", Some(42));
        check("/api/songs/42/comments?after=1", Some(42));
        check("/api/songs/42?x=1", Some(42));
        check("/api/songs/", None);
        check("/api/songs", None);
        check("/api/songs/abc", None);
        check("/api/songs/-1", None);
        check("/api/songs/1x/comments", None);
        check("/api/comments/5", None);
        check("/songs/5", None);
        check("/api/songs/99999999999999999999999", None);
    }

    #[test]
    fn generations_round_trip_and_always_move() {
        assert_eq!(generation_key(9), "gen:song:9");
        assert_eq!(parse_generation(None), 0);
        assert_eq!(parse_generation(Some(b"17")), 17);
        assert_eq!(parse_generation(Some(b"x")), 0);
        assert_eq!(parse_generation(Some(&[0xff])), 0);
        assert_eq!(next_generation(0, 1000), 1000);
        assert_eq!(next_generation(1000, 1000), 1001);
        assert_eq!(next_generation(5000, 1000), 5001);
        assert_eq!(next_generation(u64::MAX, 0), u64::MAX);
    }
}
