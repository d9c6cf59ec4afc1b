//! CloudFront-style cache behaviours: path patterns tried in order, each with
//! its origin group, allowed methods, TTL bounds, and the request headers,
//! query parameters and cookies that go to the origin. Whatever goes to the
//! origin on a cacheable request also joins the cache key, so a forwarded
//! value can never make the origin answer one client differently and plant
//! that answer for all (cache poisoning): the configuration cannot express
//! "forwarded but not keyed".
//!
//! Configuration (variables `origin_groups` and `behaviours`):
//!
//! ```text
//! origin_groups = "static=http://127.0.0.1:9000,http://127.0.0.1:9001; media=http://m:80"
//! behaviours    = "/static/* origin=static methods=GET,HEAD ttl=60,300,86400 query=v cookies=none headers=none;
//!                  /api/* origin=default"
//! ```
//!
//! `default` is the group of the `origins` variable. Without `behaviours`,
//! `/api` and `/api/*` go to it with today's forwarded headers
//! ([`Behaviour::api`]); a path that no behaviour matches is answered 404.

use crate::headers::{HOP_BY_HOP, Headers};
use crate::request::OVERRIDE_HEADERS;

/// Methods a behaviour lets through, CloudFront's three sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    GetHead,
    GetHeadOptions,
    /// GET, HEAD, OPTIONS, PUT, PATCH, POST, DELETE.
    All,
}

impl Methods {
    pub fn allows(self, method: &str) -> bool {
        match self {
            Self::GetHead => matches!(method, "GET" | "HEAD"),
            Self::GetHeadOptions => matches!(method, "GET" | "HEAD" | "OPTIONS"),
            Self::All => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetHead => "GET, HEAD",
            Self::GetHeadOptions => "GET, HEAD, OPTIONS",
            Self::All => "GET, HEAD, OPTIONS, PUT, PATCH, POST, DELETE",
        }
    }
}

/// Which query parameters or cookies go to the origin and into the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    None,
    All,
    /// Only these names (exact, case-sensitive for query parameters and cookies).
    Only(Vec<String>),
}

impl Selection {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// Freshness bounds in seconds: a response's lifetime is raised to `min_secs`
/// and cut to `max_secs`; `default_secs` applies when it states none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub min_secs: u64,
    pub default_secs: u64,
    pub max_secs: u64,
}

/// One behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// `*` matches any run of characters, `?` one character; case-sensitive.
    pub pattern: String,
    /// Index of the origin group: 0 is `origins`, then `origin_groups` in order.
    pub group: usize,
    pub methods: Methods,
    /// `None`: the configuration's global TTL bounds.
    pub ttl: Option<Ttl>,
    /// Request headers forwarded on reads, and keyed (lower-case).
    pub headers: Vec<String>,
    pub query: Selection,
    pub cookies: Selection,
}

/// Headers today's API behaviour forwards on reads.
const API_HEADERS: &[&str] = &["accept", "accept-language", "authorization", "content-type"];

/// Request headers the edge handles itself on reads (conditionals: it answers
/// some and passes the others on where it bypasses the cache, see
/// [`crate::request::PRECONDITIONS`]; ranges): never configurable as forwarded,
/// which would only add them to the cache key, like those that rewrite the
/// request ([`crate::request::OVERRIDE_HEADERS`]).
const EDGE_HANDLED: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

impl Behaviour {
    /// `pattern` to the `origins` group with today's API rules: every method,
    /// the global TTLs, the whole query, no cookies, and `Accept`,
    /// `Accept-Language`, `Authorization`, `Content-Type` forwarded.
    pub fn api(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            group: 0,
            methods: Methods::All,
            ttl: None,
            headers: API_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            query: Selection::All,
            cookies: Selection::None,
        }
    }

    /// The behaviours used when the `behaviours` variable is absent.
    pub fn defaults() -> Vec<Self> {
        vec![Self::api("/api"), Self::api("/api/*")]
    }

    pub fn matches(&self, path: &str) -> bool {
        pattern_matches(self.pattern.as_bytes(), path.as_bytes())
    }

    /// The request target sent to the origin: the path and the selected query.
    pub fn origin_target(&self, path_and_query: &str) -> String {
        let Some((path, query)) = path_and_query.split_once('?') else {
            return path_and_query.to_owned();
        };
        match &self.query {
            Selection::All => path_and_query.to_owned(),
            selection => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| !pair.is_empty())
                    .filter(|pair| selection.keeps(pair.split('=').next().unwrap_or_default()))
                    .collect();
                if kept.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
        }
    }

    /// The target as it goes into the cache key (query normalised by the key).
    pub fn key_target(&self, path_and_query: &str) -> String {
        self.origin_target(path_and_query)
    }

    /// The selected cookies of a request, as one `Cookie` value.
    pub fn selected_cookies(&self, request: &Headers) -> Option<String> {
        if self.cookies == Selection::None {
            return None;
        }
        let kept: Vec<&str> = request
            .get_all("cookie")
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .filter(|c| self.cookies.keeps(c.split('=').next().unwrap_or_default()))
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    /// What, besides host, generation and target, keys a cacheable request:
    /// the values of the forwarded headers and cookies, lower-case names.
    pub fn key_parts(&self, request: &Headers) -> Vec<(String, String)> {
        let mut parts = Vec::new();
        for name in &self.headers {
            if let Some(value) = request.get_joined(name) {
                parts.push((name.clone(), value));
            }
        }
        if let Some(cookies) = self.selected_cookies(request) {
            // By name, keeping the order of one name's values (as the query in
            // the key: the origin receives them as the client sent them).
            let mut sorted: Vec<&str> = cookies.split("; ").collect();
            sorted.sort_by_key(|cookie| cookie.split('=').next().unwrap_or_default());
            parts.push(("cookie".to_owned(), sorted.join("; ")));
        }
        parts
    }
}

/// CloudFront's path patterns: `*` any run of characters (also `/`), `?` one.
pub fn pattern_matches(pattern: &[u8], path: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == path[s]) {
            p += 1;
            s += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
        } else if let Some((star_p, star_s)) = star {
            p = star_p + 1;
            s = star_s + 1;
            star = Some((star_p, star_s + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A named origin group from `origin_groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginGroup {
    pub name: String,
    pub origins: Vec<String>,
}

/// Parses `name=url,url; name=url`.
pub fn parse_groups(text: &str) -> Result<Vec<OriginGroup>, String> {
    let mut groups: Vec<OriginGroup> = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, list) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not `name=url[,url...]`"))?;
        let name = name.trim();
        if !valid_name(name) || name == "default" {
            return Err(format!(
                "group name `{name}` must be lower-case letters, digits, `-` or `_`, and not `default` (that is `origins`)"
            ));
        }
        if groups.iter().any(|g| g.name == name) {
            return Err(format!("group `{name}` is named twice"));
        }
        let origins =
            crate::config::parse_origins(list).map_err(|e| format!("group `{name}`: {e}"))?;
        groups.push(OriginGroup {
            name: name.to_owned(),
            origins,
        });
    }
    Ok(groups)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses the `behaviours` variable, with `groups` the named origin groups
/// (index + 1 is the group index; 0 is `default`).
pub fn parse_behaviours(
    text: &str,
    groups: &[OriginGroup],
) -> Result<Vec<Behaviour>, (String, String)> {
    let mut behaviours = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let fail = |problem: String| (entry.to_owned(), problem);
        let mut tokens = entry.split_ascii_whitespace();
        let pattern = tokens.next().unwrap_or_default();
        if !pattern.starts_with('/') && pattern != "*" {
            return Err(fail(format!(
                "path pattern `{pattern}` must start with `/` (or be `*`)"
            )));
        }
        let mut behaviour = Behaviour {
            pattern: pattern.to_owned(),
            group: 0,
            methods: Methods::All,
            ttl: None,
            headers: Vec::new(),
            query: Selection::All,
            cookies: Selection::None,
        };
        for token in tokens {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| fail(format!("`{token}` is not `key=value`")))?;
            match key {
                "origin" => {
                    behaviour.group = match value {
                        "default" => 0,
                        name => groups
                            .iter()
                            .position(|g| g.name == name)
                            .map(|i| i + 1)
                            .ok_or_else(|| {
                                fail(format!(
                                    "no origin group named `{name}` (see `origin_groups`)"
                                ))
                            })?,
                    }
                }
                "methods" => behaviour.methods = parse_methods(value).map_err(fail)?,
                "ttl" => behaviour.ttl = Some(parse_ttl(value).map_err(fail)?),
                "headers" => behaviour.headers = parse_headers(value).map_err(fail)?,
                "query" => behaviour.query = parse_selection(value),
                "cookies" => behaviour.cookies = parse_selection(value),
                other => {
                    return Err(fail(format!(
                        "unknown setting `{other}` (known: origin, methods, ttl, headers, query, cookies)"
                    )));
                }
            }
        }
        behaviours.push(behaviour);
    }
    if behaviours.is_empty() {
        return Err((text.to_owned(), "no behaviour given".to_owned()));
    }
    Ok(behaviours)
}

fn parse_methods(value: &str) -> Result<Methods, String> {
    let mut methods: Vec<String> = value
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    methods.sort_unstable();
    match methods
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["GET", "HEAD"] => Ok(Methods::GetHead),
        ["GET", "HEAD", "OPTIONS"] => Ok(Methods::GetHeadOptions),
        ["ALL"] => Ok(Methods::All),
        _ => Err(format!(
            "methods `{value}`: use GET,HEAD or GET,HEAD,OPTIONS or ALL (CloudFront's three sets)"
        )),
    }
}

fn parse_ttl(value: &str) -> Result<Ttl, String> {
    let numbers: Result<Vec<u64>, _> = value.split(',').map(|n| n.trim().parse::<u64>()).collect();
    match numbers.as_deref() {
        Ok([min, default, max]) if min <= default && default <= max => Ok(Ttl {
            min_secs: *min,
            default_secs: *default,
            max_secs: *max,
        }),
        Ok([_, _, _]) => Err(format!("ttl `{value}`: needs min <= default <= max")),
        _ => Err(format!("ttl `{value}` is not `min,default,max` in seconds")),
    }
}

fn parse_headers(value: &str) -> Result<Vec<String>, String> {
    if value == "none" {
        return Ok(Vec::new());
    }
    let mut headers = Vec::new();
    for name in value.split(',').map(|n| n.trim().to_ascii_lowercase()) {
        if name == "cookie" {
            return Err("forward cookies with `cookies=`, not as a header".to_owned());
        }
        let name_str = name.as_str();
        if OVERRIDE_HEADERS.contains(&name_str)
            || EDGE_HANDLED.contains(&name_str)
            || HOP_BY_HOP.contains(&name_str)
        {
            return Err(format!(
                "header `{name}` cannot be forwarded: it rewrites the request or belongs to the edge"
            ));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("`{name}` is not a header name"));
        }
        headers.push(name);
    }
    Ok(headers)
}

fn parse_selection(value: &str) -> Selection {
    match value {
        "all" => Selection::All,
        "none" => Selection::None,
        names => Selection::Only(
            names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_cloudfront() {
        fn check(pattern: &str, path: &str, expected: bool) {
            assert_eq!(
                pattern_matches(pattern.as_bytes(), path.as_bytes()),
                expected,
                "{pattern} {path}"
            );
        }
        check("/api/*", "/api/songs/1", true);
        check("/api/*", "/api/", true);
        check("/api/*", "/api", false);
        check("/api", "/api", true);
        check("/api", "/apix", false);
        check("*", "/anything/at/all", true);
        check("*.jpg", "/images/a.jpg", true);
        check("*.jpg", "/images/a.jpeg", false);
        check("/images/*.jpg", "/images/x/y.jpg", true);
        check("/a?c", "/abc", true);
        check("/a?c", "/ac", false);
        check("/API/*", "/api/x", false);
        check("/a*b*c", "/aXbYc", true);
        check("/a*b*c", "/aXbY", false);
    }

    #[test]
    fn targets_and_keys_keep_only_the_selected_query_and_cookies() {
        let mut b = Behaviour::api("/static/*");
        b.query = Selection::Only(vec!["v".into()]);
        assert_eq!(
            b.origin_target("/static/a.js?utm=x&v=2"),
            "/static/a.js?v=2"
        );
        assert_eq!(b.origin_target("/static/a.js?utm=x"), "/static/a.js");
        assert_eq!(b.origin_target("/static/a.js"), "/static/a.js");
        b.query = Selection::None;
        assert_eq!(b.origin_target("/static/a.js?v=2"), "/static/a.js");
        b.query = Selection::All;
        assert_eq!(b.origin_target("/s?b=1&a=2"), "/s?b=1&a=2");
        b.headers = vec!["accept".into()];
        b.cookies = Selection::Only(vec!["lang".into()]);
        let request: Headers = [
            ("accept", "a/b"),
            ("cookie", "session=s; lang=fr"),
            ("x-other", "o"),
        ]
        .into_iter()
        .collect();
        assert_eq!(b.selected_cookies(&request).as_deref(), Some("lang=fr"));
        assert_eq!(
            b.key_parts(&request),
            vec![
                ("accept".into(), "a/b".into()),
                ("cookie".into(), "lang=fr".into())
            ]
        );
        assert_eq!(Behaviour::api("/x").selected_cookies(&request), None);
        b.cookies = Selection::All;
        let cookie_part = |cookie: &str| {
            let request: Headers = [("cookie", cookie)].into_iter().collect();
            b.key_parts(&request)
        };
        assert_eq!(cookie_part("b=1; a=2"), cookie_part("a=2; b=1"));
        assert_ne!(
            cookie_part("lang=en; lang=fr"),
            cookie_part("lang=fr; lang=en"),
            "one name's values keep their order, as the origin receives them"
        );
    }

    #[test]
    fn configurations_parse_and_bad_ones_are_refused_with_a_reason() {
        let groups = parse_groups("static=http://s:1; media=http://m:2,http://m:3").unwrap();
        assert_eq!(groups[1].origins, vec!["http://m:2", "http://m:3"]);
        let parsed = parse_behaviours(
            "/static/* origin=static methods=GET,HEAD ttl=1,60,600 query=v cookies=none headers=none; /api/* origin=default",
            &groups,
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[0],
            Behaviour {
                pattern: "/static/*".into(),
                group: 1,
                methods: Methods::GetHead,
                ttl: Some(Ttl {
                    min_secs: 1,
                    default_secs: 60,
                    max_secs: 600
                }),
                headers: vec![],
                query: Selection::Only(vec!["v".into()]),
                cookies: Selection::None,
            }
        );
        assert_eq!(parsed[1].group, 0);
        fn refused(text: &str, groups: &[OriginGroup], needle: &str) {
            let error = parse_behaviours(text, groups).unwrap_err();
            assert!(error.1.contains(needle), "{text}: {error:?}");
        }
        refused(
            "/x origin=nowhere",
            &groups,
            "no origin group named `nowhere`",
        );
        refused("/x methods=GET,POST", &groups, "three sets");
        refused("/x ttl=10,5,60", &groups, "min <= default <= max");
        refused("/x ttl=1,2", &groups, "min,default,max");
        refused(
            "/x headers=x-forwarded-host",
            &groups,
            "cannot be forwarded",
        );
        refused("/x headers=cookie", &groups, "cookies=");
        refused("/x headers=connection", &groups, "cannot be forwarded");
        refused("/x colour=blue", &groups, "unknown setting");
        refused("/x origin", &groups, "key=value");
        refused("static/*", &groups, "must start with `/`");
        refused(" ; ", &groups, "no behaviour");
        assert!(parse_groups("default=http://a:1").is_err());
        assert!(parse_groups("Bad=http://a:1").is_err());
        assert!(parse_groups("a=http://a:1;a=http://b:1").is_err());
        assert!(parse_groups("a=ftp://x").unwrap_err().contains("group `a`"));
        assert!(parse_groups("a").is_err());
    }
}
