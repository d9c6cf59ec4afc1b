//! An ordered, case-insensitive header list: the one header type every edge decision reads and writes.

/// Header fields in arrival order. Names are stored lower-case so lookups
/// never depend on how a client or origin spelled them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1),
/// and so are never forwarded or stored.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a field, keeping earlier fields of the same name.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Appends a field whose name and value the caller already owns (a host's
    /// field list): the name is lower-cased in place, not copied.
    pub fn append_owned(&mut self, mut name: String, value: String) {
        name.make_ascii_lowercase();
        self.0.push((name, value));
    }

    /// Replaces every field of this name with one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Removes every field of this name.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The first value of this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Length` field's first value as a number (spaces around it
    /// ignored), or the value itself when it is not one.
    pub fn content_length(&self) -> Option<Result<u64, &str>> {
        self.get("content-length")
            .map(|value| value.trim().parse().map_err(|_| value))
    }

    /// Every value of this name, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of this name joined the way a list-valued field may be (`a, b`);
    /// `None` when the field is absent.
    pub fn get_joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.get_all(name).collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(", "))
        }
    }

    /// Whether a field of this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All fields as (lower-case name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes the fields take on the wire as `name: value\r\n`, for header-size limits.
    pub fn wire_size(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
    }

    /// Removes hop-by-hop fields, including any the `Connection` field names.
    pub fn remove_hop_by_hop(&mut self) {
        let named = self.connection_names();
        self.0
            .retain(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()) && !named.contains(n));
    }

    /// A copy without hop-by-hop fields (those `Connection` names included) and
    /// without the fields named in `except` (lower-case), with room for `extra`
    /// more: what [`Self::remove_hop_by_hop`] and a `remove` per name would
    /// leave, in one pass.
    pub fn end_to_end(&self, except: &[&str], extra: usize) -> Headers {
        let named = self.connection_names();
        let mut out = Vec::with_capacity(self.0.len() + extra);
        out.extend(
            self.0
                .iter()
                .filter(|(n, _)| {
                    !HOP_BY_HOP.contains(&n.as_str())
                        && !except.contains(&n.as_str())
                        && !named.contains(n)
                })
                .cloned(),
        );
        Headers(out)
    }

    /// The field names a `Connection` field lists (lower-case).
    fn connection_names(&self) -> Vec<String> {
        self.get_all("connection")
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (n, v) in iter {
            headers.append(n.as_ref(), v);
        }
        headers
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fields: &[(&str, &str)]) -> Headers {
        fields.iter().copied().collect()
    }

    #[test]
    fn lookups_ignore_case() {
        let headers = h(&[("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2")]);
        assert_eq!(headers.get("content-type"), Some("text/plain"));
        assert_eq!(headers.get("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(headers.get_joined("x-a").as_deref(), Some("1, 2"));
        assert_eq!(headers.get_joined("x-b"), None);
    }

    #[test]
    fn set_replaces_all_values() {
        let mut headers = h(&[("age", "1"), ("Age", "2")]);
        headers.set("AGE", "3");
        assert_eq!(headers.get_all("age").collect::<Vec<_>>(), vec!["3"]);
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        fn check(input: &[(&str, &str)], expected: &[(&str, &str)]) {
            let mut headers = h(input);
            headers.remove_hop_by_hop();
            assert_eq!(headers, h(expected), "input {input:?}");
            assert_eq!(h(input).end_to_end(&[], 0), h(expected), "input {input:?}");
        }
        check(&[("connection", "close"), ("a", "1")], &[("a", "1")]);
        check(&[("Keep-Alive", "timeout=5"), ("b", "2")], &[("b", "2")]);
        check(&[("transfer-encoding", "chunked")], &[]);
        check(
            &[("upgrade", "h2c"), ("te", "trailers"), ("trailer", "x")],
            &[],
        );
        check(
            &[("proxy-authorization", "x"), ("proxy-authenticate", "y")],
            &[],
        );
        check(
            &[
                ("connection", "X-Secret, foo"),
                ("x-secret", "s"),
                ("foo", "f"),
                ("bar", "b"),
            ],
            &[("bar", "b")],
        );
        check(
            &[("content-type", "a"), ("etag", "\"1\"")],
            &[("content-type", "a"), ("etag", "\"1\"")],
        );
    }

    #[test]
    fn an_end_to_end_copy_leaves_out_what_it_is_told() {
        let input = h(&[
            ("Connection", "x-hop"),
            ("X-Hop", "1"),
            ("Content-Type", "a"),
            ("Age", "3"),
            ("etag", "\"1\""),
            ("age", "4"),
        ]);
        let mut removed = input.clone();
        removed.remove_hop_by_hop();
        removed.remove("age");
        assert_eq!(input.end_to_end(&["age"], 2), removed);
        assert_eq!(
            input.end_to_end(&["age"], 2),
            h(&[("content-type", "a"), ("etag", "\"1\"")])
        );
    }

    #[test]
    fn owned_names_are_lower_cased() {
        let mut headers = Headers::new();
        headers.append_owned("If-None-Match".to_owned(), "\"1\"".to_owned());
        assert_eq!(headers, h(&[("if-none-match", "\"1\"")]));
    }

    #[test]
    fn wire_size_counts_separators() {
        assert_eq!(h(&[("ab", "cd")]).wire_size(), 8);
        assert_eq!(h(&[]).wire_size(), 0);
    }

    #[test]
    fn content_length_is_a_number_or_the_value_that_is_not() {
        assert_eq!(
            h(&[("Content-Length", " 12 ")]).content_length(),
            Some(Ok(12))
        );
        assert_eq!(
            h(&[("content-length", "1e3")]).content_length(),
            Some(Err("1e3"))
        );
        assert_eq!(
            h(&[("content-length", "-1")]).content_length(),
            Some(Err("-1"))
        );
        assert_eq!(h(&[("content-type", "a")]).content_length(), None);
    }
}
