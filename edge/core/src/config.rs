//! The edge's configuration, parsed from string variables (Spin variables, Worker vars, CLI `--var`).

use thiserror::Error;

use crate::behaviour::{Behaviour, OriginGroup, Ttl, parse_behaviours, parse_groups};

/// Everything an adapter needs to know about its deployment. Built once per
/// instance from named string variables by [`EdgeConfig::from_vars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// The ordered origin group: primary first, then failovers. Base URLs
    /// such as `http://127.0.0.1:8100`, without a trailing slash.
    pub origins: Vec<String>,
    /// Freshness lifetime for a storable response that states none, in seconds.
    pub default_ttl_secs: u64,
    /// Upper bound on any freshness lifetime, in seconds.
    pub max_ttl_secs: u64,
    /// Time limit for one attempt at one origin, in milliseconds.
    pub origin_timeout_ms: u64,
    /// Time limit for all attempts of one request across the group, in milliseconds.
    pub total_timeout_ms: u64,
    /// How long a collapsed request waits for the leader's response before it
    /// goes to the origin itself, in milliseconds.
    pub collapse_wait_ms: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Largest total size of request header fields accepted, in bytes.
    pub max_header_bytes: u64,
    /// Largest origin response body the edge reads, in bytes. A longer one is
    /// given up as soon as it is known to be longer (at once when its
    /// `Content-Length` says so), and the attempt fails: the body is never held
    /// whole in memory, which on a wasm guest would trap the instance and every
    /// request in flight on it.
    pub max_origin_body_bytes: u64,
    /// Consecutive failures after which an origin is skipped.
    pub failure_threshold: u32,
    /// How long a failing origin is skipped, in milliseconds.
    pub cooldown_ms: u64,
    /// Named origin groups besides `origins` (which is group 0, `default`).
    pub origin_groups: Vec<OriginGroup>,
    /// Cache behaviours in the order they are tried (see [`crate::behaviour`]).
    pub behaviours: Vec<Behaviour>,
    /// `false` (variable `cache=off`): every read bypasses the cache, so the
    /// edge only routes, fails over and refuses bad requests (the study's
    /// "edge cache off" tier).
    pub cache: bool,
}

/// Variable names, as they appear in `spin.toml` and on `edge-host --var`.
pub mod vars {
    pub const ORIGINS: &str = "origins";
    pub const DEFAULT_TTL_SECS: &str = "default_ttl_secs";
    pub const MAX_TTL_SECS: &str = "max_ttl_secs";
    pub const ORIGIN_TIMEOUT_MS: &str = "origin_timeout_ms";
    pub const TOTAL_TIMEOUT_MS: &str = "total_timeout_ms";
    pub const COLLAPSE_WAIT_MS: &str = "collapse_wait_ms";
    pub const MAX_BODY_BYTES: &str = "max_body_bytes";
    pub const MAX_HEADER_BYTES: &str = "max_header_bytes";
    pub const MAX_ORIGIN_BODY_BYTES: &str = "max_origin_body_bytes";
    pub const FAILURE_THRESHOLD: &str = "failure_threshold";
    pub const COOLDOWN_MS: &str = "cooldown_ms";
    pub const ORIGIN_GROUPS: &str = "origin_groups";
    pub const BEHAVIOURS: &str = "behaviours";
    pub const CACHE: &str = "cache";
    /// Every variable the edge reads; `origins` is the only required one.
    pub const ALL: &[&str] = &[
        ORIGINS,
        DEFAULT_TTL_SECS,
        MAX_TTL_SECS,
        ORIGIN_TIMEOUT_MS,
        TOTAL_TIMEOUT_MS,
        COLLAPSE_WAIT_MS,
        MAX_BODY_BYTES,
        MAX_HEADER_BYTES,
        MAX_ORIGIN_BODY_BYTES,
        FAILURE_THRESHOLD,
        COOLDOWN_MS,
        ORIGIN_GROUPS,
        BEHAVIOURS,
        CACHE,
    ];
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            default_ttl_secs: 5,
            max_ttl_secs: 3600,
            origin_timeout_ms: 5_000,
            total_timeout_ms: 10_000,
            collapse_wait_ms: 5_000,
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_origin_body_bytes: 32 * 1024 * 1024,
            failure_threshold: 3,
            cooldown_ms: 5_000,
            origin_groups: Vec::new(),
            behaviours: Behaviour::defaults(),
            cache: true,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("variable `origins` is missing or empty")]
    NoOrigins,
    #[error("origin `{0}` is not an http:// or https:// base URL without path, query or fragment")]
    BadOrigin(String),
    #[error("variable `{name}` = `{value}` is not a non-negative integer")]
    NotANumber { name: &'static str, value: String },
    #[error("variable `{0}` must be greater than zero")]
    Zero(&'static str),
    #[error("variable `default_ttl_secs` = {default} is above `max_ttl_secs` = {max}")]
    DefaultAboveMax { default: u64, max: u64 },
    #[error("variable `cache` = `{0}` is neither `on` nor `off`")]
    Cache(String),
    #[error("variable `origin_groups`: {0}")]
    OriginGroups(String),
    #[error("variable `behaviours`, behaviour `{entry}`: {problem}")]
    Behaviour { entry: String, problem: String },
    #[error("unknown variable `{name}`; the edge reads {}", vars::ALL.join(", "))]
    UnknownVariable { name: String },
}

impl EdgeConfig {
    /// Builds the configuration from a variable lookup; absent variables take
    /// the defaults of [`EdgeConfig::default`].
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let origins = parse_origins(&lookup(vars::ORIGINS).unwrap_or_default())?;
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| ConfigError::NotANumber { name, value: v }),
            }
        };
        let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match number(name, default)? {
                0 => Err(ConfigError::Zero(name)),
                n => Ok(n),
            }
        };
        let origin_groups = match lookup(vars::ORIGIN_GROUPS) {
            Some(text) if !text.trim().is_empty() => {
                parse_groups(&text).map_err(ConfigError::OriginGroups)?
            }
            _ => Vec::new(),
        };
        let behaviours = match lookup(vars::BEHAVIOURS) {
            Some(text) if !text.trim().is_empty() => parse_behaviours(&text, &origin_groups)
                .map_err(|(entry, problem)| ConfigError::Behaviour { entry, problem })?,
            _ => Behaviour::defaults(),
        };
        let cache = match lookup(vars::CACHE).as_deref().map(str::trim) {
            None | Some("" | "on") => true,
            Some("off") => false,
            Some(other) => return Err(ConfigError::Cache(other.to_owned())),
        };
        let failure_threshold = positive(
            vars::FAILURE_THRESHOLD,
            u64::from(defaults.failure_threshold),
        )?;
        let default_ttl_secs = number(vars::DEFAULT_TTL_SECS, defaults.default_ttl_secs)?;
        let max_ttl_secs = number(vars::MAX_TTL_SECS, defaults.max_ttl_secs)?;
        // The bound would cut the default to itself anyway; a configuration that
        // says otherwise is a mistake, refused as a behaviour's `ttl=` is.
        if default_ttl_secs > max_ttl_secs {
            return Err(ConfigError::DefaultAboveMax {
                default: default_ttl_secs,
                max: max_ttl_secs,
            });
        }
        Ok(Self {
            origins,
            default_ttl_secs,
            max_ttl_secs,
            origin_timeout_ms: positive(vars::ORIGIN_TIMEOUT_MS, defaults.origin_timeout_ms)?,
            total_timeout_ms: positive(vars::TOTAL_TIMEOUT_MS, defaults.total_timeout_ms)?,
            collapse_wait_ms: number(vars::COLLAPSE_WAIT_MS, defaults.collapse_wait_ms)?,
            max_body_bytes: number(vars::MAX_BODY_BYTES, defaults.max_body_bytes)?,
            max_header_bytes: positive(vars::MAX_HEADER_BYTES, defaults.max_header_bytes)?,
            max_origin_body_bytes: positive(
                vars::MAX_ORIGIN_BODY_BYTES,
                defaults.max_origin_body_bytes,
            )?,
            failure_threshold: u32::try_from(failure_threshold).unwrap_or(u32::MAX),
            cooldown_ms: number(vars::COOLDOWN_MS, defaults.cooldown_ms)?,
            behaviours,
            origin_groups,
            cache,
        })
    }

    /// The global TTL bounds, for behaviours that set none.
    pub fn ttl(&self) -> Ttl {
        Ttl {
            min_secs: 0,
            default_secs: self.default_ttl_secs,
            max_secs: self.max_ttl_secs,
        }
    }

    /// The TTL bounds of a behaviour.
    pub fn ttl_of(&self, behaviour: &Behaviour) -> Ttl {
        behaviour.ttl.unwrap_or_else(|| self.ttl())
    }

    /// The base URLs of origin group `index` (0 is `origins`).
    pub fn group(&self, index: usize) -> &[String] {
        match index {
            0 => &self.origins,
            n => self
                .origin_groups
                .get(n - 1)
                .map_or(&[][..], |g| g.origins.as_slice()),
        }
    }

    /// How many origin groups there are, `origins` included.
    pub fn group_count(&self) -> usize {
        1 + self.origin_groups.len()
    }

    /// Every origin of every group: what a host must let the edge reach.
    pub fn all_origins(&self) -> Vec<&str> {
        (0..self.group_count())
            .flat_map(|g| self.group(g).iter().map(String::as_str))
            .collect()
    }

    /// The first behaviour whose pattern matches `path` (without query).
    pub fn behaviour_for(&self, path: &str) -> Option<&Behaviour> {
        self.behaviour_index(path).map(|i| &self.behaviours[i])
    }

    /// The index of [`EdgeConfig::behaviour_for`].
    pub fn behaviour_index(&self, path: &str) -> Option<usize> {
        self.behaviours.iter().position(|b| b.matches(path))
    }
}

/// Refuses a variable name the edge does not read, which would otherwise be
/// ignored and leave its setting at the default (`max_ttl=60` for
/// `max_ttl_secs=60`). For hosts that know every variable they were given
/// (`edge-host --var`); Spin and Workers offer only lookups by name.
pub fn check_variable_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    match names.into_iter().find(|name| !vars::ALL.contains(name)) {
        Some(name) => Err(ConfigError::UnknownVariable {
            name: name.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Why an origin's answer was given up when its body is longer than
/// `max_origin_body_bytes` ([`crate::flow::AttemptError::TooLarge`]): the words
/// the client reads in the 502's error.
pub(crate) fn origin_body_too_large(limit: u64) -> String {
    format!("its response body is longer than the edge's max_origin_body_bytes ({limit} bytes)")
}

/// Splits a comma-separated origin list and checks each base URL.
pub fn parse_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let base = raw.trim_end_matches('/');
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| ConfigError::BadOrigin(raw.to_owned()))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
            return Err(ConfigError::BadOrigin(raw.to_owned()));
        }
        origins.push(base.to_owned());
    }
    if origins.is_empty() {
        return Err(ConfigError::NoOrigins);
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<EdgeConfig, ConfigError> {
        EdgeConfig::from_vars(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn origin_lists_parse() {
        fn check(input: &str, expected: Result<Vec<&str>, ConfigError>) {
            let expected = expected.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(parse_origins(input), expected, "input {input:?}");
        }
        check("http://127.0.0.1:8100", Ok(vec!["http://127.0.0.1:8100"]));
        check("http://127.0.0.1:8100/", Ok(vec!["http://127.0.0.1:8100"]));
        check(
            " http://a:1 , http://b:2 ",
            Ok(vec!["http://a:1", "http://b:2"]),
        );
        check("https://lb.example", Ok(vec!["https://lb.example"]));
        check("http://a:1,,", Ok(vec!["http://a:1"]));
        check("", Err(ConfigError::NoOrigins));
        check(" , ", Err(ConfigError::NoOrigins));
        check("ftp://a", Err(ConfigError::BadOrigin("ftp://a".into())));
        check(
            "127.0.0.1:8100",
            Err(ConfigError::BadOrigin("127.0.0.1:8100".into())),
        );
        check("http://", Err(ConfigError::BadOrigin("http://".into())));
        check(
            "http://a/api",
            Err(ConfigError::BadOrigin("http://a/api".into())),
        );
        check(
            "http://a?x",
            Err(ConfigError::BadOrigin("http://a?x".into())),
        );
        check(
            "http://user@a",
            Err(ConfigError::BadOrigin("http://user@a".into())),
        );
    }

    #[test]
    fn variables_fill_the_config() {
        let config = from(&[
            ("origins", "http://a:1,http://b:2"),
            ("default_ttl_secs", "7"),
            ("max_ttl_secs", "70"),
            ("origin_timeout_ms", "100"),
            ("total_timeout_ms", "300"),
            ("collapse_wait_ms", "50"),
            ("max_body_bytes", "10"),
            ("max_header_bytes", "20"),
            ("max_origin_body_bytes", "30"),
            ("failure_threshold", "2"),
            ("cooldown_ms", "1000"),
        ])
        .unwrap();
        assert_eq!(
            config,
            EdgeConfig {
                origins: vec!["http://a:1".into(), "http://b:2".into()],
                default_ttl_secs: 7,
                max_ttl_secs: 70,
                origin_timeout_ms: 100,
                total_timeout_ms: 300,
                collapse_wait_ms: 50,
                max_body_bytes: 10,
                max_header_bytes: 20,
                max_origin_body_bytes: 30,
                failure_threshold: 2,
                cooldown_ms: 1000,
                ..EdgeConfig::default()
            }
        );
    }

    #[test]
    fn absent_variables_take_defaults_and_bad_ones_are_refused() {
        let config = from(&[("origins", "http://a:1"), ("max_ttl_secs", " ")]).unwrap();
        assert_eq!(
            config,
            EdgeConfig {
                origins: vec!["http://a:1".into()],
                ..EdgeConfig::default()
            }
        );
        assert_eq!(from(&[]), Err(ConfigError::NoOrigins));
        assert_eq!(
            from(&[("origins", "http://a:1"), ("max_ttl_secs", "ten")]),
            Err(ConfigError::NotANumber {
                name: "max_ttl_secs",
                value: "ten".into()
            })
        );
        assert_eq!(
            from(&[("origins", "http://a:1"), ("origin_timeout_ms", "0")]),
            Err(ConfigError::Zero("origin_timeout_ms"))
        );
        assert_eq!(
            from(&[("origins", "http://a:1"), ("failure_threshold", "0")]),
            Err(ConfigError::Zero("failure_threshold"))
        );
        assert!(
            !from(&[("origins", "http://a:1"), ("cache", "off")])
                .unwrap()
                .cache
        );
        assert!(
            from(&[("origins", "http://a:1"), ("cache", "on")])
                .unwrap()
                .cache
        );
        assert_eq!(
            from(&[("origins", "http://a:1"), ("cache", "maybe")]),
            Err(ConfigError::Cache("maybe".into()))
        );
    }

    #[test]
    fn a_default_ttl_above_the_bound_is_refused() {
        let with = |default: &str, max: &str| {
            from(&[
                ("origins", "http://a:1"),
                ("default_ttl_secs", default),
                ("max_ttl_secs", max),
            ])
        };
        assert_eq!(
            with("7200", "3600"),
            Err(ConfigError::DefaultAboveMax {
                default: 7200,
                max: 3600
            })
        );
        assert_eq!(
            with("7200", "3600").unwrap_err().to_string(),
            "variable `default_ttl_secs` = 7200 is above `max_ttl_secs` = 3600"
        );
        // Against the other's default, too.
        assert_eq!(
            from(&[("origins", "http://a:1"), ("max_ttl_secs", "2")]),
            Err(ConfigError::DefaultAboveMax { default: 5, max: 2 })
        );
        assert_eq!(with("60", "60").map(|c| c.default_ttl_secs), Ok(60));
        assert_eq!(with("0", "0").map(|c| c.max_ttl_secs), Ok(0));
    }

    #[test]
    fn the_origin_body_limit_has_a_default_and_must_be_positive() {
        let config = from(&[("origins", "http://a:1")]).unwrap();
        assert_eq!(config.max_origin_body_bytes, 32 * 1024 * 1024);
        assert_eq!(
            from(&[("origins", "http://a:1"), ("max_origin_body_bytes", "0")]),
            Err(ConfigError::Zero("max_origin_body_bytes"))
        );
        assert!(vars::ALL.contains(&vars::MAX_ORIGIN_BODY_BYTES));
        assert!(origin_body_too_large(100).contains("max_origin_body_bytes (100 bytes)"));
    }

    #[test]
    fn unknown_variable_names_are_refused_with_the_known_ones() {
        assert_eq!(check_variable_names(vars::ALL.iter().copied()), Ok(()));
        assert_eq!(check_variable_names([]), Ok(()));
        let refused = check_variable_names(["origins", "max_ttl", "cache"]);
        assert_eq!(
            refused,
            Err(ConfigError::UnknownVariable {
                name: "max_ttl".into()
            })
        );
        let message = refused.unwrap_err().to_string();
        assert!(
            message.starts_with("unknown variable `max_ttl`; the edge reads origins, ")
                && message.contains("max_ttl_secs")
                && message.contains("max_origin_body_bytes"),
            "{message}"
        );
        // Names are exact, as Spin's and the Worker's lookups are.
        assert!(check_variable_names(["Origins"]).is_err());
    }
}
