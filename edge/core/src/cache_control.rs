//! Parsing of `Cache-Control` (RFC 9111 section 5.2) into the directives the edge acts on.

use crate::headers::Headers;

/// The directives of one message's `Cache-Control` fields that matter to a shared cache.
/// Unknown directives are ignored, as RFC 9111 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// RFC 9111 section 5.2.2.3: store only if the status code is understood.
    pub must_understand: bool,
    /// Request: the client wants a response still fresh this many seconds on.
    pub min_fresh: Option<u64>,
    /// Request: answer from the cache or with 504, never from an origin.
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Reads every `Cache-Control` field of `headers`; `Pragma: no-cache` counts as
    /// `no-cache` when there is no `Cache-Control` at all (RFC 9111 section 5.4).
    pub fn from_headers(headers: &Headers) -> Self {
        let mut cc = Self::default();
        let mut present = false;
        // Each field in turn reads as their comma-joined value would, without the join.
        for value in headers.get_all("cache-control") {
            present = true;
            cc.read(value);
        }
        if !present
            && headers
                .get_all("pragma")
                .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
        {
            cc.no_cache = true;
        }
        cc
    }

    /// Parses one field value such as `public, max-age=60, stale-while-revalidate=30`.
    /// A directive whose number does not parse is treated as absent, except that a
    /// malformed `max-age` or `s-maxage` makes the response stale (RFC 9111 section 4.2.1).
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        cc.read(value);
        cc
    }

    /// Adds the directives of one field value to those already read.
    fn read(&mut self, value: &str) {
        for directive in value.split(',') {
            let directive = directive.trim();
            if directive.is_empty() {
                continue;
            }
            let (name, argument) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let seconds = || argument.and_then(parse_delta_seconds);
            let mut lower = [0; LONGEST_DIRECTIVE];
            // A directive longer than LONGEST_DIRECTIVE must raise it.
            match lower_case(name, &mut lower) {
                "max-age" => self.max_age = Some(once(self.max_age, seconds().unwrap_or(0))),
                "s-maxage" => self.s_maxage = Some(once(self.s_maxage, seconds().unwrap_or(0))),
                "min-fresh" => self.min_fresh = seconds(),
                "only-if-cached" => self.only_if_cached = true,
                "no-store" => self.no_store = true,
                // `no-cache="field"` restricts only some fields; treating it as plain
                // no-cache is the conservative reading.
                "no-cache" => self.no_cache = true,
                "private" => self.private = true,
                "public" => self.public = true,
                "must-revalidate" => self.must_revalidate = true,
                "proxy-revalidate" => self.proxy_revalidate = true,
                "stale-while-revalidate" => self.stale_while_revalidate = seconds(),
                "stale-if-error" => self.stale_if_error = seconds(),
                "must-understand" => self.must_understand = true,
                _ => {}
            }
        }
    }

    /// Request: whether the client takes a stale response. With `max-age` or
    /// `min-fresh` it does not, unless `max-stale` is also present (RFC 9111
    /// sections 5.2.1.1 and 5.2.1.3), which the edge does not honour.
    pub fn accepts_stale(&self) -> bool {
        self.max_age.is_none() && self.min_fresh.is_none()
    }

    /// Whether a stale copy may never be served without revalidating it first.
    pub fn forbids_stale(&self) -> bool {
        self.no_cache || self.must_revalidate || self.proxy_revalidate
    }
}

/// The length of the longest directive name the edge acts on (`stale-while-revalidate`).
const LONGEST_DIRECTIVE: usize = 22;

/// `name` in lower case (ASCII letters only, as `to_ascii_lowercase`), written
/// into `buffer`; a name longer than any directive the edge knows comes back
/// empty, which matches none of them.
fn lower_case<'b>(name: &str, buffer: &'b mut [u8; LONGEST_DIRECTIVE]) -> &'b str {
    let Some(lower) = buffer.get_mut(..name.len()) else {
        return "";
    };
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    // Cannot fail: ASCII case changes keep UTF-8 valid.
    std::str::from_utf8(lower).unwrap_or("")
}

/// A lifetime directive seen again: the same value stands; a different one
/// makes the response stale (RFC 9111 section 4.2.1 lets a cache take the first
/// or consider the response stale; taking either value could make it fresher
/// than the other says).
fn once(earlier: Option<u64>, value: u64) -> u64 {
    match earlier {
        Some(first) if first != value => 0,
        _ => value,
    }
}

/// The value RFC 9111 section 1.2.2 says to use for a delta-seconds that is
/// too large: 2^31 seconds, about 68 years.
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// RFC 9111 section 1.2.2: digits only (no sign, fraction or parameter);
/// values of 2^31 and more are taken as 2^31.
pub fn parse_delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: CacheControl) {
        assert_eq!(CacheControl::parse(input), expected, "input {input:?}");
    }

    fn cc() -> CacheControl {
        CacheControl::default()
    }

    #[test]
    fn directives_parse() {
        check("", cc());
        check(
            "max-age=60",
            CacheControl {
                max_age: Some(60),
                ..cc()
            },
        );
        check(
            "MAX-AGE=60",
            CacheControl {
                max_age: Some(60),
                ..cc()
            },
        );
        check(
            "max-age=\"60\"",
            CacheControl {
                max_age: Some(60),
                ..cc()
            },
        );
        check(
            "max-age=60, max-age=60",
            CacheControl {
                max_age: Some(60),
                ..cc()
            },
        );
        check(
            "max-age=60, max-age=600",
            CacheControl {
                max_age: Some(0),
                ..cc()
            },
        );
        check(
            "min-fresh=5, only-if-cached",
            CacheControl {
                min_fresh: Some(5),
                only_if_cached: true,
                ..cc()
            },
        );
        check(
            "max-age=abc",
            CacheControl {
                max_age: Some(0),
                ..cc()
            },
        );
        check(
            "max-age=-1",
            CacheControl {
                max_age: Some(0),
                ..cc()
            },
        );
        check(
            "max-age=99999999999999999999999",
            CacheControl {
                max_age: Some(DELTA_SECONDS_MAX),
                ..cc()
            },
        );
        check(
            "s-maxage=10, max-age=60",
            CacheControl {
                s_maxage: Some(10),
                max_age: Some(60),
                ..cc()
            },
        );
        check(
            "no-store",
            CacheControl {
                no_store: true,
                ..cc()
            },
        );
        check(
            "no-cache",
            CacheControl {
                no_cache: true,
                ..cc()
            },
        );
        check(
            "no-cache=\"set-cookie\"",
            CacheControl {
                no_cache: true,
                ..cc()
            },
        );
        check(
            "private",
            CacheControl {
                private: true,
                ..cc()
            },
        );
        check(
            "private=\"x\"",
            CacheControl {
                private: true,
                ..cc()
            },
        );
        check(
            "public, max-age=5",
            CacheControl {
                public: true,
                max_age: Some(5),
                ..cc()
            },
        );
        check(
            "must-revalidate",
            CacheControl {
                must_revalidate: true,
                ..cc()
            },
        );
        check(
            "proxy-revalidate",
            CacheControl {
                proxy_revalidate: true,
                ..cc()
            },
        );
        check(
            "stale-while-revalidate=30",
            CacheControl {
                stale_while_revalidate: Some(30),
                ..cc()
            },
        );
        check(
            "stale-if-error=600",
            CacheControl {
                stale_if_error: Some(600),
                ..cc()
            },
        );
        check("stale-if-error=x", cc());
        check(
            " , max-age=1 ,, unknown=2, x ",
            CacheControl {
                max_age: Some(1),
                ..cc()
            },
        );
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let pragma_only: Headers = [("pragma", "no-cache")].into_iter().collect();
        assert!(CacheControl::from_headers(&pragma_only).no_cache);
        let both: Headers = [("pragma", "no-cache"), ("cache-control", "max-age=5")]
            .into_iter()
            .collect();
        assert!(!CacheControl::from_headers(&both).no_cache);
        let split: Headers = [("cache-control", "max-age=5"), ("Cache-Control", "private")]
            .into_iter()
            .collect();
        assert_eq!(
            CacheControl::from_headers(&split),
            CacheControl {
                max_age: Some(5),
                private: true,
                ..cc()
            }
        );
        // A lifetime repeated across fields with another value makes the
        // response stale, as it does within one field.
        let repeated: Headers = [
            ("cache-control", "max-age=60"),
            ("cache-control", "max-age=30"),
        ]
        .into_iter()
        .collect();
        assert_eq!(CacheControl::from_headers(&repeated).max_age, Some(0));
        // An empty Cache-Control field is still one: Pragma does not count then.
        let empty: Headers = [("cache-control", ""), ("pragma", "no-cache")]
            .into_iter()
            .collect();
        assert!(!CacheControl::from_headers(&empty).no_cache);
    }

    #[test]
    fn overlong_and_unknown_names_are_ignored() {
        check(
            "STALE-WHILE-REVALIDATE=5",
            CacheControl {
                stale_while_revalidate: Some(5),
                ..cc()
            },
        );
        check(
            "stale-while-revalidatex=5, no-storeeeeeeeeeeeeeeeeeeeeee",
            cc(),
        );
        check("max-âge=5", cc());
    }

    #[test]
    fn stale_is_forbidden_by_revalidation_directives() {
        assert!(CacheControl::parse("no-cache").forbids_stale());
        assert!(CacheControl::parse("must-revalidate").forbids_stale());
        assert!(CacheControl::parse("proxy-revalidate").forbids_stale());
        assert!(!CacheControl::parse("max-age=1, stale-while-revalidate=5").forbids_stale());
    }
}
