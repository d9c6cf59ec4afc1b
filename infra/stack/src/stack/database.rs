//! The stack's database: PostgreSQL (the default) or one Apache Cassandra node, started
//! with its data kept under the root of runs, the fault that restarts it, and the flags
//! that point `origin` (serve, migrate, seed) at it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DATABASE_NAME, StackConfig, StackError};
use crate::cassandra::{CassandraOptions, CassandraServer};
use crate::postgres::{PostgresOptions, PostgresServer};

/// Which database the stack's origins run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    /// PostgreSQL 15, the origins' default backend.
    #[default]
    Postgres,
    /// One Apache Cassandra 5.0 node (the origins' CQL backend).
    Cassandra,
}

impl DatabaseBackend {
    pub fn label(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Cassandra => "Cassandra",
        }
    }
}

/// The running database of a stack.
pub(super) enum Database {
    Postgres {
        server: PostgresServer,
        /// The stack's database on that server.
        url: String,
    },
    Cassandra(CassandraServer),
}

impl Database {
    /// Starts the configured database with its data in `<root of runs>/pgdata` or
    /// `<root of runs>/cassandra` (kept across runs) and links its log into `run_dir`.
    pub(super) async fn start(config: &StackConfig, run_dir: &Path) -> Result<Self, StackError> {
        match config.backend {
            DatabaseBackend::Postgres => {
                let options = PostgresOptions::default()
                    .port(config.ports.postgres)
                    .data_dir(Self::data_dir(config))
                    // Ten instances with their pools, plus seeding and the study's own clients.
                    .max_connections(300)
                    .setting("shared_buffers", "256MB");
                let server = PostgresServer::start(options).await?;
                let _ = std::os::unix::fs::symlink(server.log_path(), run_dir.join("postgres.log"));
                let url = ensure_database(&server).await?;
                Ok(Self::Postgres { server, url })
            }
            DatabaseBackend::Cassandra => {
                let options = CassandraOptions::default()
                    .native_port(config.ports.cassandra)
                    .storage_port(config.ports.cassandra_storage)
                    .dir(Self::data_dir(config));
                let server = CassandraServer::start(options).await?;
                let _ =
                    std::os::unix::fs::symlink(server.log_path(), run_dir.join("cassandra.log"));
                Ok(Self::Cassandra(server))
            }
        }
    }

    /// Where the configured backend keeps its data, across runs.
    pub(super) fn data_dir(config: &StackConfig) -> PathBuf {
        match config.backend {
            DatabaseBackend::Postgres => config.run_dir.join("pgdata"),
            DatabaseBackend::Cassandra => config.run_dir.join("cassandra"),
        }
    }

    /// The file that records the seed scale loaded, beside the data.
    pub(super) fn seed_marker(config: &StackConfig) -> PathBuf {
        Self::data_dir(config).join(format!("seeded-{DATABASE_NAME}"))
    }

    pub(super) fn backend(&self) -> DatabaseBackend {
        match self {
            Self::Postgres { .. } => DatabaseBackend::Postgres,
            Self::Cassandra(_) => DatabaseBackend::Cassandra,
        }
    }

    /// The PostgreSQL URL of the stack's database, or Cassandra's contact point.
    pub(super) fn url(&self) -> String {
        match self {
            Self::Postgres { url, .. } => url.clone(),
            Self::Cassandra(server) => server.uri(),
        }
    }

    /// The flags that point `origin serve`, `migrate` and `seed` at this database.
    pub(super) fn origin_args(&self) -> Vec<String> {
        match self {
            Self::Postgres { url, .. } => vec!["--database-url".to_owned(), url.clone()],
            Self::Cassandra(server) => vec![
                "--backend".to_owned(),
                "cassandra".to_owned(),
                "--scylla-uri".to_owned(),
                server.uri(),
            ],
        }
    }

    pub(super) fn port(&self) -> u16 {
        match self {
            Self::Postgres { server, .. } => server.port(),
            Self::Cassandra(server) => server.port(),
        }
    }

    /// The server's process id while it runs.
    pub(super) fn pid(&mut self) -> Option<u32> {
        match self {
            Self::Postgres { server, .. } => postmaster_pid(server.data_dir()),
            Self::Cassandra(server) => server.is_running().then(|| server.pid()).flatten(),
        }
    }

    /// Stops the server gracefully and starts it again on the same port and data.
    pub(super) async fn restart(&mut self) -> Result<(), StackError> {
        match self {
            Self::Postgres { server, .. } => server.restart().await?,
            Self::Cassandra(server) => {
                server.stop().await;
                server.start_again().await?;
            }
        }
        Ok(())
    }

    /// Stops the server gracefully and waits for it to exit.
    pub(super) async fn stop(&mut self) {
        match self {
            Self::Postgres { server, .. } => {
                let _ = server.stop().await;
            }
            Self::Cassandra(server) => server.stop().await,
        }
    }
}

/// Creates the stack's database if it does not exist yet and returns its URL.
async fn ensure_database(postgres: &PostgresServer) -> Result<String, StackError> {
    let (client, connection) = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls)
        .await
        .map_err(StackError::Database)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&DATABASE_NAME],
        )
        .await
        .map_err(StackError::Database)?
        .is_some();
    if exists {
        Ok(postgres.database_url(DATABASE_NAME))
    } else {
        Ok(postgres.create_database(DATABASE_NAME).await?)
    }
}

/// The postmaster's pid from its lock file (first line of `postmaster.pid`).
fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
