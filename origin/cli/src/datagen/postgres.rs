//! Bulk loading of a generated data set into PostgreSQL: binary COPY, one table
//! per connection in parallel, indexes and constraints built after the data.
//!
//! Each table loads in one transaction that first truncates it, so COPY can use
//! FREEZE: rows arrive already frozen and all-visible (index-only scans work at
//! once, no VACUUM pass), and with `wal_level = minimal` PostgreSQL skips WAL for
//! them. A table's completion is recorded in that same transaction, which makes
//! an interrupted load resumable table by table. Constraint and index
//! definitions are captured from the catalogue before they are dropped and kept
//! in the database until rebuilt, so an interruption at any point loses nothing.

use std::pin::pin;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use indicatif::ProgressBar;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Transaction};

use super::generate::{Dataset, Generator};
use super::{Existing, Start, StartError};

/// The migrations that create the schema the loader fills.
const SCHEMA_SQL: &str = include_str!("../../../migrations/0001_schema.sql");

/// The loader's own bookkeeping; dropped when a load completes.
const BOOKKEEPING_SQL: &str = "
    CREATE TABLE IF NOT EXISTS seed_plan (
        seed bigint NOT NULL, songs bigint NOT NULL, users bigint NOT NULL,
        comments bigint NOT NULL, zipf_exponent double precision NOT NULL);
    CREATE TABLE IF NOT EXISTS seed_loaded_tables (table_name text PRIMARY KEY, rows bigint NOT NULL);
    CREATE TABLE IF NOT EXISTS seed_deferred_ddl (
        position serial PRIMARY KEY, is_foreign_key boolean NOT NULL, statement text NOT NULL UNIQUE);";

const DATA_TABLES: [&str; 3] = ["songs", "users", "comments"];

/// Rows between progress-bar updates and cancellation checks.
const ROWS_PER_TICK: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the database already holds data ({songs} songs, {users} users, {comments} comments); \
         pass --force to truncate it and load again"
    )]
    NotEmpty {
        songs: i64,
        users: i64,
        comments: i64,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] tokio_postgres::Error),
    #[error("PostgreSQL failed while {step}")]
    Sql {
        step: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

fn sql(step: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> LoadError {
    let step = step.into();
    move |source| LoadError::Sql { step, source }
}

/// What a completed load did and how long each part took.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub rows: u64,
    pub copy_time: Duration,
    pub index_time: Duration,
    pub total_time: Duration,
}

/// Tables and deferred statements still to do in an interrupted load.
#[derive(Debug, Clone)]
pub struct Remaining {
    pub loaded_tables: Vec<String>,
    pub pending_statements: i64,
}

pub async fn connect(url: &str) -> Result<Client, LoadError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(LoadError::Connect)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "loader connection closed");
        }
    });
    // A backend notices within this time that its client went away (Ctrl-C)
    // even in the middle of a long index build, and rolls back.
    client
        .batch_execute(
            "SET client_connection_check_interval = '500ms'; SET synchronous_commit = off",
        )
        .await
        .map_err(sql("configuring the session"))?;
    Ok(client)
}

/// Loads `dataset` into the database at `url`. `progress` counts rows.
pub async fn load(
    url: &str,
    dataset: Dataset,
    existing: Existing,
    progress: &ProgressBar,
) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    let client = connect(url).await?;
    prepare(&client, dataset, existing).await?;

    let loaded: Vec<String> = client
        .query("SELECT table_name FROM seed_loaded_tables", &[])
        .await
        .map_err(sql("reading the load's progress"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let sizes = [dataset.songs, dataset.users, dataset.comments];
    progress.set_length(sizes.iter().sum());
    progress.set_message("copying rows");
    let mut copies = Vec::new();
    for (table, rows) in DATA_TABLES.into_iter().zip(sizes) {
        if loaded.iter().any(|done| done == table) {
            progress.inc(rows);
        } else {
            copies.push(copy_table(url, table, dataset, progress));
        }
    }
    try_join_all(copies).await?;
    let copy_time = started.elapsed();

    progress.set_message("building indexes and constraints");
    let indexing = Instant::now();
    rebuild_deferred(url).await?;
    client
        .batch_execute("ANALYZE songs, users, comments; DROP TABLE seed_plan, seed_loaded_tables, seed_deferred_ddl")
        .await
        .map_err(sql("analyzing the tables"))?;
    Ok(LoadReport {
        rows: sizes.iter().sum(),
        copy_time,
        index_time: indexing.elapsed(),
        total_time: started.elapsed(),
    })
}

/// Decides from what the database holds whether to start, restart or resume,
/// and for a new load drops the indexes and constraints it will rebuild.
async fn prepare(client: &Client, dataset: Dataset, existing: Existing) -> Result<(), LoadError> {
    let plan = read_plan(client).await?;
    if plan.is_none() {
        // Not during a resume: the schema would bring back the dropped indexes.
        client
            .batch_execute(SCHEMA_SQL)
            .await
            .map_err(sql("creating the schema"))?;
    }
    match existing.start(plan, dataset)? {
        Start::Resume => return Ok(()),
        Start::IntoEmpty => {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM songs), (SELECT count(*) FROM users), \
                     (SELECT count(*) FROM comments)",
                    &[],
                )
                .await
                .map_err(sql("counting existing rows"))?;
            let (songs, users, comments): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if songs + users + comments > 0 {
                return Err(LoadError::NotEmpty {
                    songs,
                    users,
                    comments,
                });
            }
        }
        Start::Replace => {}
    }
    client
        .batch_execute(BOOKKEEPING_SQL)
        .await
        .map_err(sql("creating the bookkeeping tables"))?;
    // Rows go first so that dropping the constraints below never has to check them.
    client
        .batch_execute("TRUNCATE songs, users, comments; TRUNCATE seed_plan, seed_loaded_tables")
        .await
        .map_err(sql("truncating the tables"))?;
    client
        .execute(
            "INSERT INTO seed_plan VALUES ($1, $2, $3, $4, $5)",
            &[
                &(dataset.seed as i64),
                &(dataset.songs as i64),
                &(dataset.users as i64),
                &(dataset.comments as i64),
                &dataset.zipf_exponent,
            ],
        )
        .await
        .map_err(sql("recording the plan"))?;
    defer_indexes_and_constraints(client).await
}

async fn read_plan(client: &Client) -> Result<Option<Dataset>, LoadError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('seed_plan') IS NOT NULL", &[])
        .await
        .map_err(sql("looking for an interrupted load"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT seed, songs, users, comments, zipf_exponent FROM seed_plan",
            &[],
        )
        .await
        .map_err(sql("reading the plan"))?;
    Ok(row.map(|row| Dataset {
        seed: row.get::<_, i64>(0) as u64,
        songs: row.get::<_, i64>(1) as u64,
        users: row.get::<_, i64>(2) as u64,
        comments: row.get::<_, i64>(3) as u64,
        zipf_exponent: row.get(4),
    }))
}

/// Records the definitions of the data tables' keys, foreign keys and indexes,
/// then drops them: loading into bare heaps and indexing once is several times
/// faster than maintaining the indexes row by row.
async fn defer_indexes_and_constraints(client: &Client) -> Result<(), LoadError> {
    let tables = "('songs'::regclass, 'users'::regclass, 'comments'::regclass)";
    let capture = format!(
        "INSERT INTO seed_deferred_ddl (is_foreign_key, statement)
         SELECT kind = 2, statement FROM (
             SELECT CASE c.contype WHEN 'f' THEN 2 ELSE 0 END AS kind, c.conname::text AS name,
                    format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                           pg_get_constraintdef(c.oid)) AS statement
             FROM pg_constraint c
             WHERE c.conrelid IN {tables} AND c.contype IN ('p', 'u', 'f')
             UNION ALL
             SELECT 1, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
             FROM pg_index i
             WHERE i.indrelid IN {tables} AND NOT EXISTS (
                 SELECT 1 FROM pg_constraint c
                 WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
         ) AS deferred
         ON CONFLICT (statement) DO NOTHING"
    );
    client
        .execute(&capture, &[])
        .await
        .map_err(sql("recording index definitions"))?;
    let drops = format!(
        "DO $$ DECLARE r record; BEGIN
             FOR r IN SELECT c.conrelid::regclass AS tbl, c.conname FROM pg_constraint c
                      WHERE c.conrelid IN {tables} AND c.contype IN ('p', 'u', 'f')
                      ORDER BY c.contype = 'f' DESC LOOP
                 EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
             END LOOP;
             FOR r IN SELECT i.indexrelid::regclass AS idx FROM pg_index i
                      WHERE i.indrelid IN {tables} LOOP
                 EXECUTE format('DROP INDEX %s', r.idx);
             END LOOP;
         END $$"
    );
    client
        .batch_execute(&drops)
        .await
        .map_err(sql("dropping indexes before the load"))
}

/// Rebuilds what [`defer_indexes_and_constraints`] dropped: keys and indexes in
/// parallel, one connection each, then the foreign keys (which need the keys).
async fn rebuild_deferred(url: &str) -> Result<(), LoadError> {
    let client = connect(url).await?;
    let pending = client
        .query(
            "SELECT position, is_foreign_key, statement FROM seed_deferred_ddl ORDER BY position",
            &[],
        )
        .await
        .map_err(sql("reading the deferred statements"))?;
    let (foreign, local): (Vec<_>, Vec<_>) = pending.iter().partition(|row| row.get::<_, bool>(1));
    try_join_all(
        local
            .iter()
            .map(|row| run_deferred(url, row.get(0), row.get(2))),
    )
    .await?;
    for row in foreign {
        run_deferred(url, row.get(0), row.get(2)).await?;
    }
    Ok(())
}

async fn run_deferred(url: &str, position: i32, statement: String) -> Result<(), LoadError> {
    let mut client = connect(url).await?;
    client
        .batch_execute("SET maintenance_work_mem = '1GB'")
        .await
        .map_err(sql("configuring index builds"))?;
    let transaction = client
        .transaction()
        .await
        .map_err(sql("starting a transaction"))?;
    transaction
        .batch_execute(&statement)
        .await
        .map_err(sql(statement.clone()))?;
    transaction
        .execute(
            "DELETE FROM seed_deferred_ddl WHERE position = $1",
            &[&position],
        )
        .await
        .map_err(sql("recording a rebuilt index"))?;
    transaction.commit().await.map_err(sql(statement))
}

/// Copies one whole table in one transaction on its own connection.
async fn copy_table(
    url: &str,
    table: &'static str,
    dataset: Dataset,
    progress: &ProgressBar,
) -> Result<(), LoadError> {
    let mut client = connect(url).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(sql("starting a transaction"))?;
    transaction
        .batch_execute(&format!("TRUNCATE {table}"))
        .await
        .map_err(sql(format!("truncating {table}")))?;
    let rows = copy_rows(&transaction, table, dataset, progress).await?;
    progress.inc(rows % ROWS_PER_TICK);
    transaction
        .execute(
            "INSERT INTO seed_loaded_tables VALUES ($1, $2)",
            &[&table, &(rows as i64)],
        )
        .await
        .map_err(sql("recording a loaded table"))?;
    transaction
        .commit()
        .await
        .map_err(sql(format!("committing {table}")))?;
    Ok(())
}

/// Column types of each table's COPY, in the order its statement names them.
const SONG_TYPES: [Type; 5] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TIMESTAMPTZ,
];
const USER_TYPES: [Type; 4] = [Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT];
const COMMENT_TYPES: [Type; 7] = [
    Type::UUID,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// Generates every row of `table` and copies them in; returns how many.
async fn copy_rows(
    transaction: &Transaction<'_>,
    table: &'static str,
    dataset: Dataset,
    progress: &ProgressBar,
) -> Result<u64, LoadError> {
    let mut generator = Generator::new(dataset).expect("the dataset was validated before loading");
    let copy = TableCopy {
        transaction,
        step: format!("copying {table}"),
        progress,
    };
    match table {
        "songs" => {
            copy.write(
                "COPY songs (id, title, artist, duration_ms, created_at) FROM STDIN (FORMAT binary, FREEZE)",
                &SONG_TYPES,
                (1..=dataset.songs as i64).map(|id| generator.song(id)),
                |song| {
                    [
                        &song.id,
                        &song.title,
                        &song.artist,
                        &song.duration_ms,
                        &song.created_at,
                    ]
                },
            )
            .await
        }
        "users" => {
            copy.write(
                "COPY users (id, name, avatar_url, location) FROM STDIN (FORMAT binary, FREEZE)",
                &USER_TYPES,
                (1..=dataset.users as i64).map(|id| generator.user(id)),
                |user| [&user.id, &user.name, &user.avatar_url, &user.location],
            )
            .await
        }
        _ => {
            copy.write(
                "COPY comments (id, song_id, user_id, body, track_ms, created_at, updated_at) \
                 FROM STDIN (FORMAT binary, FREEZE)",
                &COMMENT_TYPES,
                (0..dataset.comments).map(|index| generator.comment(index)),
                |comment| {
                    [
                        &comment.id,
                        &comment.song_id,
                        &comment.user_id,
                        &comment.body,
                        &comment.track_ms,
                        &comment.created_at,
                        &comment.updated_at,
                    ]
                },
            )
            .await
        }
    }
}

/// One table's binary COPY inside its loading transaction.
struct TableCopy<'a> {
    transaction: &'a Transaction<'a>,
    /// Names the COPY in its errors.
    step: String,
    progress: &'a ProgressBar,
}

impl TableCopy<'_> {
    /// Streams `rows` through `statement`, each as the columns `fields` picks
    /// (of the types `types`), ticking the progress bar; returns the row count.
    async fn write<R, const N: usize>(
        &self,
        statement: &str,
        types: &[Type],
        rows: impl Iterator<Item = R>,
        fields: impl Fn(&R) -> [&(dyn ToSql + Sync); N],
    ) -> Result<u64, LoadError> {
        let sink = self
            .transaction
            .copy_in(statement)
            .await
            .map_err(sql(&self.step))?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
        let mut written = 0;
        for row in rows {
            writer
                .as_mut()
                .write(&fields(&row))
                .await
                .map_err(sql(&self.step))?;
            written += 1;
            tick(self.progress, written);
        }
        writer.finish().await.map_err(sql(&self.step))
    }
}

fn tick(progress: &ProgressBar, done: u64) {
    if done.is_multiple_of(ROWS_PER_TICK) {
        progress.inc(ROWS_PER_TICK);
    }
}

/// What an interrupted load has done and still has to do, for the message
/// printed after Ctrl-C.
pub async fn remaining(url: &str) -> Result<Option<Remaining>, LoadError> {
    let client = connect(url).await?;
    if read_plan(&client).await?.is_none() {
        return Ok(None);
    }
    let loaded_tables = client
        .query(
            "SELECT table_name FROM seed_loaded_tables ORDER BY table_name",
            &[],
        )
        .await
        .map_err(sql("reading the load's progress"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let pending_statements = client
        .query_one("SELECT count(*) FROM seed_deferred_ddl", &[])
        .await
        .map_err(sql("reading the load's progress"))?
        .get(0);
    Ok(Some(Remaining {
        loaded_tables,
        pending_statements,
    }))
}
