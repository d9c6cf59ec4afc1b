//! Phase: the lost-write check. Every write the study's runs saw acknowledged (201), and
//! did not delete themselves, must be in the database: looked up in PostgreSQL directly,
//! or on Cassandra read back through the API.

use std::time::Duration;

use anyhow::Context as _;
use stack::DatabaseBackend;
use stack::probe::HttpClient;

use super::model::{StudyResults, WriteCheck};
use super::session::Session;
use crate::recorder::AckedWrite;

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let (writes, deleted) = session.acknowledged();
    session.step(&format!(
        "lost-write check: {} acknowledged writes",
        writes.len()
    ));
    results.writes = match session.stack.backend() {
        DatabaseBackend::Postgres => {
            check_writes(&session.stack.database_url(), writes, deleted).await?
        }
        DatabaseBackend::Cassandra => {
            check_through_api(&session.stack.nginx_url(), writes, deleted).await?
        }
    };
    session.step(&format!("  lost writes: {}", results.writes.lost));
    Ok(())
}

/// Looks every acknowledged (and not deleted) write up in PostgreSQL.
async fn check_writes(
    database_url: &str,
    writes: &[AckedWrite],
    deleted: &[uuid::Uuid],
) -> anyhow::Result<WriteCheck> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let deleted: std::collections::HashSet<_> = deleted.iter().copied().collect();
    let expected: Vec<uuid::Uuid> = writes
        .iter()
        .map(|write| write.id)
        .filter(|id| !deleted.contains(id))
        .collect();
    let mut found = 0u64;
    for chunk in expected.chunks(5_000) {
        let row = client
            .query_one(
                "SELECT count(*) FROM comments WHERE id = ANY($1)",
                &[&chunk],
            )
            .await
            .context("looking up acknowledged writes")?;
        found += row.get::<_, i64>(0) as u64;
    }
    drop(client);
    connection.abort();
    Ok(WriteCheck {
        acknowledged: writes.len() as u64,
        deleted_by_the_run: deleted.len() as u64,
        checked: expected.len() as u64,
        lost: expected.len() as u64 - found,
    })
}

/// Every write a stack acknowledged (and the run did not delete) must read back through
/// its API: `GET /api/comments/{id}` answers 200 (the check of a stack on Cassandra).
pub(super) async fn check_through_api(
    nginx: &str,
    writes: &[crate::recorder::AckedWrite],
    deleted: &[uuid::Uuid],
) -> anyhow::Result<WriteCheck> {
    let deleted: std::collections::HashSet<_> = deleted.iter().copied().collect();
    let expected: Vec<uuid::Uuid> = writes
        .iter()
        .map(|write| write.id)
        .filter(|id| !deleted.contains(id))
        .collect();
    let client = HttpClient::new(Duration::from_secs(10));
    let mut lost = 0u64;
    for id in &expected {
        let answer = client
            .get(&format!("{nginx}/api/comments/{id}"))
            .await
            .with_context(|| format!("reading comment {id} back"))?;
        match answer.status.as_u16() {
            200 => {}
            404 => lost += 1,
            other => anyhow::bail!("reading comment {id} back: status {other}"),
        }
    }
    Ok(WriteCheck {
        acknowledged: writes.len() as u64,
        deleted_by_the_run: deleted.len() as u64,
        checked: expected.len() as u64,
        lost,
    })
}
