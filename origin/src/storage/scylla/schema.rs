//! The CQL schema of `cql/schema.cql`: its statements for a keyspace, a
//! replication map and a product, and [`migrate`], which applies them.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::Statement;

use super::cluster::{Product, ScyllaError, ScyllaOptions, check_keyspace};

/// The schema, with the default keyspace name and replication in place.
pub const SCHEMA_CQL: &str = include_str!("../../../cql/schema.cql");
/// The keyspace name `cql/schema.cql` uses (and Terraform's default).
pub const DEFAULT_KEYSPACE: &str = "song_comments";
/// One replica: a development node. Production clusters pass their own map.
pub const DEFAULT_REPLICATION: &str =
    "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}";

/// Bounds each schema change: creating a table takes the cluster far longer
/// than a read or write.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

/// The statements of `cql/schema.cql` for `keyspace`, created with `replication`.
///
/// On ScyllaDB a new keyspace uses vnodes, not tablets (the default since
/// ScyllaDB 6), because the conditional writes of comments need lightweight
/// transactions, which tablet keyspaces do not offer. That option is
/// ScyllaDB's own CQL: Cassandra is never sent it.
pub fn schema_statements(keyspace: &str, replication: &str, product: Product) -> Vec<String> {
    let keyspace_options = match product {
        Product::Cassandra => String::new(),
        Product::ScyllaDb => " AND tablets = {'enabled': false}".to_owned(),
    };
    let without_comments: String = SCHEMA_CQL
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|statement| !statement.is_empty())
        .map(|statement| {
            if statement.starts_with("CREATE KEYSPACE") {
                format!(
                    "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
                     {replication}{keyspace_options}"
                )
            } else {
                statement.replace(&format!("{DEFAULT_KEYSPACE}."), &format!("{keyspace}."))
            }
        })
        .collect()
}

/// Creates the keyspace and tables that do not exist yet. Safe to run again,
/// and from several instances at once (the driver waits for the cluster to
/// agree on the schema after each change).
pub async fn migrate(session: &Session, options: &ScyllaOptions) -> Result<(), ScyllaError> {
    check_keyspace(&options.keyspace)?;
    let product = Product::of(session);
    for statement in schema_statements(&options.keyspace, &options.replication, product) {
        let mut ddl = Statement::new(statement.as_str());
        ddl.set_request_timeout(Some(SCHEMA_TIMEOUT));
        session
            .query_unpaged(ddl, ())
            .await
            .map_err(|source| ScyllaError::Schema {
                statement: statement.clone(),
                source: Box::new(source),
            })?;
    }
    tracing::info!(keyspace = %options.keyspace, product = product.name(), "CQL schema in place");
    Ok(())
}
