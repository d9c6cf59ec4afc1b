//! Phase: the lost-write check. Every write the study's runs saw acknowledged (201), and
//! did not delete themselves, must be in PostgreSQL.

use anyhow::Context as _;

use super::model::{StudyResults, WriteCheck};
use super::session::Session;
use crate::recorder::AckedWrite;

pub async fn run(session: &mut Session, results: &mut StudyResults) -> anyhow::Result<()> {
    let (writes, deleted) = session.acknowledged();
    session.step(&format!(
        "lost-write check: {} acknowledged writes",
        writes.len()
    ));
    results.writes = check_writes(&session.stack.database_url(), writes, deleted).await?;
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
