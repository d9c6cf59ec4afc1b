//! Reaching the cluster: the options and the errors of setting up, the one way
//! a session is opened, and which product (Cassandra or ScyllaDB) answered.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{ExecutionError, NewSessionError, PrepareError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;

#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`; the driver discovers the rest of the cluster.
    pub known_nodes: Vec<String>,
    pub keyspace: String,
    pub consistency: Consistency,
    /// The CQL replication map used when the schema creates the keyspace.
    pub replication: String,
    /// Bounds each request (the driver's client-side request timeout).
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ScyllaError {
    #[error("no ScyllaDB contact point given (--scylla-uri / SCYLLA_URI)")]
    NoContactPoint,
    #[error("keyspace name {0:?} is not valid: use 1 to 48 letters, digits and _")]
    BadKeyspace(String),
    #[error("could not connect to ScyllaDB at {nodes}")]
    Connect {
        nodes: String,
        #[source]
        source: Box<NewSessionError>,
    },
    #[error("could not apply the CQL schema ({statement})")]
    Schema {
        statement: String,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("could not prepare {statement}")]
    Prepare {
        statement: String,
        #[source]
        source: Box<PrepareError>,
    },
}

/// Opens a session with the defaults every user of the cluster here shares:
/// token-aware routing (requests go straight to a replica of their partition,
/// and on ScyllaDB to the right shard), the configured consistency, and a
/// client-side timeout on every request.
pub async fn session(options: &ScyllaOptions) -> Result<Session, ScyllaError> {
    if options.known_nodes.is_empty() {
        return Err(ScyllaError::NoContactPoint);
    }
    check_keyspace(&options.keyspace)?;
    let profile = ExecutionProfile::builder()
        .consistency(options.consistency)
        .request_timeout(Some(options.timeout))
        .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
        .build();
    SessionBuilder::new()
        .known_nodes(&options.known_nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|source| ScyllaError::Connect {
            nodes: options.known_nodes.join(","),
            source: Box::new(source),
        })
}

pub(super) fn check_keyspace(keyspace: &str) -> Result<(), ScyllaError> {
    let valid = (1..=48).contains(&keyspace.len())
        && keyspace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ScyllaError::BadKeyspace(keyspace.to_owned()))
    }
}

/// Which server a session talks to. ScyllaDB advertises its shards when a
/// connection opens; Cassandra does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Cassandra,
    ScyllaDb,
}

impl Product {
    pub fn of(session: &Session) -> Self {
        let sharded = session
            .get_cluster_state()
            .get_nodes_info()
            .iter()
            .any(|node| node.sharder().is_some());
        if sharded {
            Self::ScyllaDb
        } else {
            Self::Cassandra
        }
    }

    /// The name people know it by, for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cassandra => "Cassandra",
            Self::ScyllaDb => "ScyllaDB",
        }
    }
}
