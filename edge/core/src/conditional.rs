//! Conditional requests (RFC 9110 section 13): entity-tag comparison, whether a
//! client's `If-None-Match` / `If-Modified-Since` lets the edge answer 304 from
//! what it has, and whether an origin's 304 identifies the stored response it
//! would update (RFC 9111 section 4.3.4).

use crate::headers::Headers;
use crate::policy::parse_http_date;

/// An entity tag: `"opaque"` or `W/"opaque"` (RFC 9110 section 8.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    /// The quoted part, quotes included.
    pub opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// Parses one entity tag; `None` when it is not one.
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let (weak, opaque) = match text.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
        // etagc = %x21 / %x23-7E / obs-text: no DQUOTE, no controls, no space.
        let valid = inner
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
        valid.then_some(Self { weak, opaque })
    }

    /// Strong comparison: both strong and the same characters.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same characters, either or both may be weak.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The members of an `If-None-Match`-style list: `None` for `*`, else the tags
/// (members that are not entity tags are skipped).
fn tag_list(headers: &Headers, name: &str) -> Option<Option<Vec<String>>> {
    let joined = headers.get_joined(name)?;
    if joined.trim() == "*" {
        return Some(None);
    }
    Some(Some(split_tags(&joined)))
}

/// Splits a list of entity tags on the commas between them (a comma may appear
/// inside a quoted tag).
fn split_tags(list: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => tags.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    tags.push(current);
    tags.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a `200` with `response_headers` may be answered `304 Not Modified`
/// to a GET or HEAD carrying `request_headers` (RFC 9110 sections 13.1.2,
/// 13.1.3 and 13.2.2): `If-None-Match` by weak comparison (`*` matches any
/// stored representation); only when it is absent, `If-Modified-Since` against
/// `Last-Modified`. An unparseable date or a missing validator never matches.
pub fn client_has_current(request_headers: &Headers, response_headers: &Headers) -> bool {
    if let Some(list) = tag_list(request_headers, "if-none-match") {
        let Some(tags) = list else {
            return true;
        };
        let Some(current) = response_headers.get("etag").and_then(EntityTag::parse) else {
            return false;
        };
        return tags
            .iter()
            .filter_map(|t| EntityTag::parse(t))
            .any(|t| t.weak_eq(&current));
    }
    let Some(since) = request_headers
        .get("if-modified-since")
        .and_then(parse_http_date)
    else {
        return false;
    };
    response_headers
        .get("last-modified")
        .and_then(parse_http_date)
        .is_some_and(|modified| modified <= since)
}

/// The header fields a 304 carries (RFC 9110 section 15.4.5): those that would
/// be sent with the 200 and that guide caches, and `Last-Modified` only when
/// there is no `ETag`.
pub fn not_modified_headers(full: &Headers) -> Headers {
    const KEPT: &[&str] = &[
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "vary",
        "age",
        "x-cache",
    ];
    let has_etag = full.contains("etag");
    full.iter()
        .filter(|(name, _)| KEPT.contains(name) || (*name == "last-modified" && !has_etag))
        .collect()
}

/// Whether an origin's 304 identifies `stored` for update (RFC 9111 section
/// 4.3.4): a strong `ETag` must equal the stored one strongly, a weak one by
/// weak comparison; without an `ETag`, a `Last-Modified` must equal the stored
/// one. A 304 with no validator at all is taken as the answer to the
/// conditional request this edge built from `stored`'s own validators (it keeps
/// one response per key, so there is nothing else it could mean).
pub fn identifies(not_modified: &Headers, stored: &Headers) -> bool {
    if let Some(new) = not_modified.get("etag") {
        let (Some(new), Some(old)) = (
            EntityTag::parse(new),
            stored.get("etag").and_then(EntityTag::parse),
        ) else {
            return false;
        };
        return if new.weak {
            new.weak_eq(&old)
        } else {
            new.strong_eq(&old)
        };
    }
    if let Some(new) = not_modified.get("last-modified") {
        return stored
            .get("last-modified")
            .is_some_and(|old| old.trim() == new.trim());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fields: &[(&str, &str)]) -> Headers {
        fields.iter().copied().collect()
    }

    #[test]
    fn entity_tags_parse_and_compare() {
        let strong = EntityTag::parse("\"a\"").unwrap();
        let weak = EntityTag::parse("W/\"a\"").unwrap();
        let other = EntityTag::parse("\"b\"").unwrap();
        assert!(strong.strong_eq(&strong));
        assert!(!strong.strong_eq(&weak) && !weak.strong_eq(&weak));
        assert!(strong.weak_eq(&weak) && weak.weak_eq(&weak));
        assert!(!strong.weak_eq(&other));
        for bad in ["a", "\"a", "W/a", "w/\"a\"", "\"a b\"", "\"a\"\"", ""] {
            assert_eq!(EntityTag::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            split_tags("\"a,b\", W/\"c\" ,,\"d\""),
            vec!["\"a,b\"", "W/\"c\"", "\"d\""]
        );
    }

    #[test]
    fn clients_with_a_current_copy_get_304() {
        const DAY: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
        const LATER: &str = "Thu, 01 Jan 2026 00:01:00 GMT";
        fn check(request: &[(&str, &str)], response: &[(&str, &str)], expected: bool) {
            assert_eq!(
                client_has_current(&h(request), &h(response)),
                expected,
                "{request:?} {response:?}"
            );
        }
        let tagged: &[(&str, &str)] = &[("etag", "\"v1\""), ("last-modified", DAY)];
        check(&[("if-none-match", "\"v1\"")], tagged, true);
        check(&[("if-none-match", "W/\"v1\"")], tagged, true);
        check(&[("if-none-match", "\"v0\", \"v1\"")], tagged, true);
        check(
            &[("if-none-match", "\"v0\""), ("if-none-match", "\"v1\"")],
            tagged,
            true,
        );
        check(&[("if-none-match", "\"v0\"")], tagged, false);
        check(&[("if-none-match", "*")], tagged, true);
        check(&[("if-none-match", "*")], &[], true);
        check(&[("if-none-match", "v1")], tagged, false);
        check(
            &[("if-none-match", "\"v1\"")],
            &[("etag", "W/\"v1\"")],
            true,
        );
        check(&[("if-none-match", "\"v1\"")], &[], false);
        // If-None-Match present: If-Modified-Since is not looked at.
        check(
            &[("if-none-match", "\"v0\""), ("if-modified-since", LATER)],
            tagged,
            false,
        );
        check(&[("if-modified-since", DAY)], tagged, true);
        check(&[("if-modified-since", LATER)], tagged, true);
        check(
            &[("if-modified-since", DAY)],
            &[("last-modified", LATER)],
            false,
        );
        check(&[("if-modified-since", "yesterday")], tagged, false);
        check(&[("if-modified-since", DAY)], &[("etag", "\"v1\"")], false);
        check(&[], tagged, false);
    }

    #[test]
    fn not_modified_keeps_only_cache_guiding_fields() {
        let full = h(&[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("last-modified", "x"),
            ("cache-control", "max-age=5"),
            ("vary", "accept"),
            ("age", "3"),
            ("x-cache", "HIT"),
            ("content-length", "10"),
        ]);
        assert_eq!(
            not_modified_headers(&full),
            h(&[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=5"),
                ("vary", "accept"),
                ("age", "3"),
                ("x-cache", "HIT"),
            ])
        );
        let untagged = h(&[("last-modified", "x"), ("content-type", "t")]);
        assert_eq!(
            not_modified_headers(&untagged),
            h(&[("last-modified", "x")])
        );
    }

    #[test]
    fn a_304_updates_only_the_response_it_names() {
        fn check(not_modified: &[(&str, &str)], stored: &[(&str, &str)], expected: bool) {
            assert_eq!(
                identifies(&h(not_modified), &h(stored)),
                expected,
                "{not_modified:?} {stored:?}"
            );
        }
        check(&[("etag", "\"a\"")], &[("etag", "\"a\"")], true);
        check(&[("etag", "\"b\"")], &[("etag", "\"a\"")], false);
        check(&[("etag", "\"a\"")], &[("etag", "W/\"a\"")], false);
        check(&[("etag", "W/\"a\"")], &[("etag", "\"a\"")], true);
        check(&[("etag", "W/\"a\"")], &[("etag", "W/\"a\"")], true);
        check(&[("etag", "\"a\"")], &[], false);
        check(&[("last-modified", "x")], &[("last-modified", "x")], true);
        check(&[("last-modified", "y")], &[("last-modified", "x")], false);
        check(&[], &[("etag", "\"a\"")], true);
    }
}
