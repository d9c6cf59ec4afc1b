//! Cache keys: the normalised request identity under which a response is stored,
//! and the generations that let one write make every stored variant of what it
//! changed unreachable at once.
//!
//! Key scheme (all plain strings, so any key-value store can hold them):
//! - `c:<host>:<generation>:<path>?<sorted query>` holds one stored response,
//!   followed by the values of what its behaviour forwards and keys (one key per
//!   variant, see [`CacheKey::with_parts`]).
//! - `gen:song:<id>` holds the decimal generation of everything under
//!   `/api/songs/<id>` (absent = 0): every page of a song moves together.
//! - `gen:uri:<host>:<path>?<sorted query>` holds the generation of any other
//!   target: all its variants move together.
//!
//! Invalidating is moving a generation: the old keys become unreachable without
//! listing or deleting them, which a key-value store without prefix delete cannot
//! do (and a write cannot name the variants: they are keyed by other clients'
//! header values); the orphaned entries age out of the store. Generations
//! follow the clock ([`next_generation`]), and a generation the store does not
//! hold (never written, evicted early, unreadable) is replaced by a new one
//! rather than read as 0, so a lost generation costs misses and never brings
//! back what was stored under an older one.

use std::fmt;

use crate::decimal::push_decimal;

/// The store key of one cached response (GET and HEAD share it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Builds the key from the normalised host (see [`crate::RequestHead::key_host`]),
    /// the request target, and the generation read for its song scope.
    pub fn new(host: &str, path_and_query: &str, generation: u64) -> Self {
        let mut key = String::with_capacity(host.len() + path_and_query.len() + 26);
        key.push_str("c:");
        key.push_str(host);
        key.push(':');
        push_decimal(&mut key, generation);
        key.push(':');
        push_target(&mut key, path_and_query);
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

/// Appends `path_and_query` with its query normalised ([`normalise_query`]).
fn push_target(key: &mut String, path_and_query: &str) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, normalise_query(query)),
        None => (path_and_query, String::new()),
    };
    key.push_str(path);
    if !query.is_empty() {
        key.push('?');
        key.push_str(&query);
    }
}

/// Sorts query parameters by name and drops empty ones, so `?b=2&a=1` and
/// `?a=1&b=2&` are one entry. Parameters of one name keep their order
/// (`?a=1&a=2` and `?a=2&a=1` are two entries: an origin may read the first or
/// the last, and it receives them as the client sent them). Values are kept
/// byte-for-byte (no decoding), so distinct queries can never collide.
pub fn normalise_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_by_key(|pair| pair.split('=').next().unwrap_or_default());
    pairs.join("&")
}

/// The song a path belongs to: `/api/songs/<id>` and everything below it.
/// Digits may be percent-encoded (`%31` is `1`, RFC 3986 section 2.3): the
/// origin decodes them, so such a path reads the same song and must move with
/// its generation.
pub fn song_of_path(path: &str) -> Option<u64> {
    let path = path.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix("/api/songs/")?;
    let id = rest.split('/').next()?.as_bytes();
    let mut song: u64 = 0;
    let mut i = 0;
    while i < id.len() {
        let digit = match id[i] {
            b'0'..=b'9' => id[i],
            b'%' if id.get(i + 1) == Some(&b'3')
                && id.get(i + 2).is_some_and(u8::is_ascii_digit) =>
            {
                i += 2;
                id[i]
            }
            _ => return None,
        };
        song = song.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        i += 1;
    }
    (!id.is_empty()).then_some(song)
}

/// The store key holding the generation of `target` (a behaviour's key target,
/// see [`crate::behaviour::Behaviour::key_target`]) on `host`: its song's under
/// `/api/songs/<id>`, else its own.
pub fn generation_key(host: &str, target: &str) -> String {
    if let Some(song) = song_of_path(target) {
        return song_generation_key(song);
    }
    let mut key = String::with_capacity(host.len() + target.len() + 9);
    key.push_str("gen:uri:");
    key.push_str(host);
    key.push(':');
    push_target(&mut key, target);
    key
}

/// The store key holding a song's generation.
pub fn song_generation_key(song: u64) -> String {
    let mut key = String::with_capacity(29);
    key.push_str("gen:song:");
    push_decimal(&mut key, song);
    key
}

/// How long a store that expires entries must keep a generation: longer than
/// any record keyed under it (twice the longest, see
/// [`crate::StoredResponse::retention_secs`]), or an evicted generation would
/// bring old records back. The longest TTL bound is the largest of the
/// default's and every behaviour's own.
pub fn generation_retention_secs(config: &crate::EdgeConfig) -> u64 {
    let longest = config
        .behaviours
        .iter()
        .filter_map(|behaviour| behaviour.ttl)
        .map(|ttl| ttl.max_secs)
        .fold(config.max_ttl_secs, u64::max);
    longest.saturating_mul(4).max(60)
}

/// Reads a stored generation value; `None` for anything unreadable (which
/// the flow treats as never written: see [`crate::key`]).
pub fn parse_generation(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
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
        check("h", "/api/songs?a=2&a=1", 0, "c:h:0:/api/songs?a=2&a=1");
        check(
            "h",
            "/api/songs?b=1&a=2&a=1",
            0,
            "c:h:0:/api/songs?a=2&a=1&b=1",
        );
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
        check("/api/songs/%31/comments", Some(1));
        check("/api/songs/4%32", Some(42));
        check("/api/songs/%3", None);
        check("/api/songs/%41", None);
        check("/api/songs/%2F1", None);
    }

    #[test]
    fn generations_outlive_the_records_of_every_behaviour() {
        let config = crate::EdgeConfig::from_vars(|name| match name {
            "origins" => Some("http://a:1".to_owned()),
            "max_ttl_secs" => Some("60".to_owned()),
            "behaviours" => Some("/static/* ttl=0,60,86400; /api/*".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(generation_retention_secs(&config), 4 * 86_400);
        let plain = crate::EdgeConfig::from_vars(|name| match name {
            "origins" => Some("http://a:1".to_owned()),
            "max_ttl_secs" => Some("60".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(generation_retention_secs(&plain), 240);
    }

    #[test]
    fn generations_round_trip_and_always_move() {
        assert_eq!(song_generation_key(9), "gen:song:9");
        assert_eq!(
            generation_key("h", "/api/songs/9/comments?limit=5"),
            "gen:song:9"
        );
        assert_eq!(
            generation_key("h:8000", "/api/comments/c1?b=2&a=1"),
            "gen:uri:h:8000:/api/comments/c1?a=1&b=2"
        );
        assert_eq!(parse_generation(b"17"), Some(17));
        assert_eq!(parse_generation(b"x"), None);
        assert_eq!(parse_generation(&[0xff]), None);
        assert_eq!(next_generation(0, 1000), 1000);
        assert_eq!(next_generation(1000, 1000), 1001);
        assert_eq!(next_generation(5000, 1000), 5001);
        assert_eq!(next_generation(u64::MAX, 0), u64::MAX);
    }
}
