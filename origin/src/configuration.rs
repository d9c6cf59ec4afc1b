//! Settings from flags and environment: what `origin serve` runs with, and
//! the database choice that `serve`, `migrate` and `seed` share. Each flag has
//! an environment twin. The command line itself is assembled in `main.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use scylla::statement::Consistency;

use crate::storage::Database;
use crate::storage::postgres::PostgresOptions;
use crate::storage::scylla::{DEFAULT_KEYSPACE, DEFAULT_REPLICATION, ScyllaOptions};

/// Which database the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// PostgreSQL (`--database-url`).
    Postgres,
    /// The CQL backend on Apache Cassandra or ScyllaDB (`--scylla-uri`); `cassandra`
    /// names the same backend.
    #[value(alias = "cassandra")]
    Scylla,
}

/// A setting the chosen backend needs and was not given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--database-url (DATABASE_URL) is required for the postgres backend")]
    MissingDatabaseUrl,
    #[error("--scylla-uri (SCYLLA_URI) is required for the scylla backend")]
    MissingScyllaUri,
}

/// The backend and where it is: shared by `serve`, `migrate` and `seed`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    #[arg(long, env = "ORIGIN_BACKEND", value_enum, default_value_t = Backend::Postgres)]
    pub backend: Backend,
    /// PostgreSQL URL (required for the postgres backend).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// ScyllaDB/Cassandra for the scylla backend.
    #[command(flatten)]
    pub scylla: ScyllaArgs,
}

impl DatabaseArgs {
    /// PostgreSQL at `url`, nothing else set (tests and tools).
    pub fn postgres(url: String) -> Self {
        Self {
            backend: Backend::Postgres,
            database_url: Some(url),
            scylla: ScyllaArgs::default(),
        }
    }

    /// The chosen database with its settings; an error names the missing flag.
    /// `pool_size` sizes PostgreSQL's pool; `timeout` bounds each request.
    pub fn database(&self, pool_size: usize, timeout: Duration) -> Result<Database, ConfigError> {
        match self.backend {
            Backend::Postgres => Ok(Database::Postgres {
                url: self
                    .database_url
                    .clone()
                    .ok_or(ConfigError::MissingDatabaseUrl)?,
                options: PostgresOptions { pool_size, timeout },
            }),
            Backend::Scylla => self
                .scylla
                .options(timeout)
                .map(Database::Scylla)
                .ok_or(ConfigError::MissingScyllaUri),
        }
    }
}

/// Where the ScyllaDB/Cassandra backend is and how it reads and writes.
#[derive(Debug, Clone, Args)]
pub struct ScyllaArgs {
    /// ScyllaDB/Cassandra contact points, `host:port`, comma-separated.
    #[arg(long = "scylla-uri", env = "SCYLLA_URI")]
    pub uri: Option<String>,
    /// Keyspace holding the tables (letters, digits and `_`).
    #[arg(long = "scylla-keyspace", env = "SCYLLA_KEYSPACE", default_value = DEFAULT_KEYSPACE)]
    pub keyspace: String,
    /// Consistency level of every read and write (ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL, ...).
    #[arg(
        long = "scylla-consistency",
        env = "SCYLLA_CONSISTENCY",
        default_value = "LOCAL_QUORUM",
        value_parser = parse_consistency
    )]
    pub consistency: Consistency,
    /// Replication of the keyspace when the schema creates it (a CQL map).
    #[arg(long = "scylla-replication", env = "SCYLLA_REPLICATION", default_value = DEFAULT_REPLICATION)]
    pub replication: String,
}

impl Default for ScyllaArgs {
    fn default() -> Self {
        Self {
            uri: None,
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            consistency: Consistency::LocalQuorum,
            replication: DEFAULT_REPLICATION.to_owned(),
        }
    }
}

impl ScyllaArgs {
    /// The driver options, or `None` when no contact point is given.
    pub fn options(&self, timeout: Duration) -> Option<ScyllaOptions> {
        let uri = self.uri.as_deref()?;
        Some(ScyllaOptions {
            known_nodes: uri
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .map(str::to_owned)
                .collect(),
            keyspace: self.keyspace.clone(),
            consistency: self.consistency,
            replication: self.replication.clone(),
            timeout,
        })
    }
}

/// Accepts the CQL names in any case, with `_` or `-`: `LOCAL_QUORUM`, `local-quorum`.
pub fn parse_consistency(text: &str) -> Result<Consistency, String> {
    let consistency = match text.trim().to_ascii_uppercase().replace('-', "_").as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        "SERIAL" => Consistency::Serial,
        "LOCAL_SERIAL" => Consistency::LocalSerial,
        _ => {
            return Err(format!(
                "{text:?} is not a consistency level; use one of ANY, ONE, TWO, THREE, QUORUM, ALL, \
                 LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE, SERIAL, LOCAL_SERIAL"
            ));
        }
    };
    Ok(consistency)
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to bind; port 0 picks a free port (printed on start).
    #[arg(long, env = "ORIGIN_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Redis URL for the read cache; absent means no cache.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// HS256 secret that signs the bearer tokens (not empty: anyone could sign).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub jwt_secret: String,
    /// Tokio worker threads; default is one per core.
    #[arg(long, env = "ORIGIN_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Database connections per instance.
    #[arg(long, env = "ORIGIN_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Requests served at once; more are answered 503 at once (shed, not queued).
    #[arg(long, env = "ORIGIN_MAX_CONCURRENCY", default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "ORIGIN_REQUEST_TIMEOUT_MS", default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Longest a database connect or query may take.
    #[arg(long, env = "ORIGIN_DB_TIMEOUT_MS", default_value_t = 1000)]
    pub db_timeout_ms: u64,
    /// Longest a Redis command may take before the cache is bypassed.
    #[arg(long, env = "ORIGIN_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub redis_timeout_ms: u64,
    /// How long Redis keeps a cached song, page or feed (a write invalidates sooner).
    #[arg(long, env = "ORIGIN_CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// `max-age` sent to browsers on cacheable reads.
    #[arg(long, env = "ORIGIN_HTTP_MAX_AGE_SECS", default_value_t = 5)]
    pub http_max_age_secs: u32,
    /// `s-maxage` sent to shared caches (the edge) on cacheable reads.
    #[arg(long, env = "ORIGIN_HTTP_S_MAXAGE_SECS", default_value_t = 10)]
    pub http_s_maxage_secs: u32,
    /// `stale-while-revalidate` on cacheable reads.
    #[arg(long, env = "ORIGIN_HTTP_SWR_SECS", default_value_t = 30)]
    pub http_stale_while_revalidate_secs: u32,
    /// `stale-if-error` on cacheable reads.
    #[arg(long, env = "ORIGIN_HTTP_SIE_SECS", default_value_t = 300)]
    pub http_stale_if_error_secs: u32,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ORIGIN_BODY_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub body_limit_bytes: usize,
    /// Longest graceful shutdown waits for in-flight requests.
    #[arg(long, env = "ORIGIN_SHUTDOWN_GRACE_MS", default_value_t = 5000)]
    pub shutdown_grace_ms: u64,
}

impl ServeArgs {
    /// Settings for tests and benchmarks: everything default, on 127.0.0.1:0.
    pub fn for_tests(database_url: String, redis_url: Option<String>, jwt_secret: &str) -> Self {
        /// `ServeArgs` alone as a command line, to fill in every default.
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let mut serve = Serve::parse_from([
            "serve",
            "--jwt-secret",
            jwt_secret,
            "--listen",
            "127.0.0.1:0",
        ])
        .args;
        // Environment twins must not leak from the developer's shell into tests.
        serve.database = DatabaseArgs::postgres(database_url);
        serve.redis_url = redis_url;
        serve
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// A signing key: refused when empty or blank, where anyone could sign a token
/// that verifies. A short key is taken (the local stack's and the tests' are),
/// with a warning at start-up ([`crate::startup`]).
fn parse_secret(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("an empty key would let anyone sign a token; give the HS256 secret".into());
    }
    Ok(text.to_owned())
}

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash, 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_signing_key_is_refused() {
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        for secret in ["", "   "] {
            let refused = Serve::try_parse_from(["serve", "--jwt-secret", secret])
                .err()
                .expect("an empty key is refused");
            assert!(refused.to_string().contains("anyone sign"), "{refused}");
        }
        assert!(Serve::try_parse_from(["serve", "--jwt-secret", "k"]).is_ok());
    }

    #[test]
    fn consistency_levels_parse_in_either_spelling() {
        assert_eq!(
            parse_consistency("LOCAL_QUORUM"),
            Ok(Consistency::LocalQuorum)
        );
        assert_eq!(parse_consistency("local-one"), Ok(Consistency::LocalOne));
        assert_eq!(parse_consistency(" quorum "), Ok(Consistency::Quorum));
        assert!(
            parse_consistency("most")
                .unwrap_err()
                .contains("LOCAL_QUORUM")
        );
    }

    #[test]
    fn scylla_contact_points_split_on_commas() {
        let args = ScyllaArgs {
            uri: Some("10.0.0.1:9042, 10.0.0.2:9042,".into()),
            ..ScyllaArgs::default()
        };
        let options = args.options(Duration::from_secs(1)).unwrap();
        assert_eq!(options.known_nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(options.keyspace, DEFAULT_KEYSPACE);
        assert_eq!(options.consistency, Consistency::LocalQuorum);
        assert!(
            ScyllaArgs::default()
                .options(Duration::from_secs(1))
                .is_none()
        );
    }

    #[test]
    fn cassandra_names_the_cql_backend() {
        assert_eq!(Backend::from_str("cassandra", true), Ok(Backend::Scylla));
        assert_eq!(Backend::from_str("scylla", true), Ok(Backend::Scylla));
        assert_eq!(Backend::from_str("postgres", true), Ok(Backend::Postgres));
    }
}
