//! Bulk loading of a generated data set into ScyllaDB / Cassandra: prepared
//! inserts, at most [`WINDOW`] in flight, table after table.
//!
//! CQL has no COPY and no transactions, but an insert is an idempotent upsert
//! of a row that is a pure function of its number, so an interrupted load is
//! finished by inserting again from a checkpoint. Rows complete in order (the
//! window is an ordered buffer), and every [`CHECKPOINT_ROWS`] rows the number
//! done so far is recorded in `seed_progress`; `--resume` starts each table
//! there. The plan (seed and sizes) lives in `seed_plan`, so a resume with
//! another data set is refused. Both bookkeeping tables are dropped at the end.
//!
//! A comment goes into `comments_by_song` (with its author's name and avatar)
//! and `comments_by_id` (its index entry) as two concurrent plain inserts, not
//! the conditional writes the service uses: nothing else writes during a load,
//! Paxos would cost several round trips per row, and a row missing from one
//! table after an interruption is written again by the resume.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream};
use indicatif::ProgressBar;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::serialize::row::SerializeRow;
use scylla::statement::Statement;
use scylla::statement::prepared::PreparedStatement;

use super::generate::{Dataset, Generator};
use super::{Existing, Start, StartError};
use origin::storage::scylla::{self as backend, ScyllaError, ScyllaOptions, to_cql};

/// Requests in flight at once.
pub const WINDOW: usize = 256;
/// Rows between recorded checkpoints.
pub const CHECKPOINT_ROWS: u64 = 10_000;
/// Bounds each insert; a loaded cluster answers slower than a serving one.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows between progress-bar updates.
const ROWS_PER_TICK: u64 = 1024;

const BOOKKEEPING_CQL: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS {ks}.seed_plan (id int PRIMARY KEY, seed bigint, songs bigint, \
     users bigint, comments bigint, zipf_exponent double)",
    "CREATE TABLE IF NOT EXISTS {ks}.seed_progress (table_name text PRIMARY KEY, rows_done bigint)",
];
const DATA_TABLES: [&str; 4] = ["songs", "users", "comments_by_song", "comments_by_id"];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the keyspace already holds data (in {0}); pass --force to truncate it and load again")]
    NotEmpty(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Scylla(#[from] ScyllaError),
    #[error("ScyllaDB failed while {step}")]
    Cql {
        step: String,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("ScyllaDB answered {step} with rows we could not read")]
    Rows {
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn cql(step: impl Into<String>) -> impl FnOnce(ExecutionError) -> LoadError {
    let step = step.into();
    move |source| LoadError::Cql {
        step,
        source: Box::new(source),
    }
}

fn rows_error<E: std::error::Error + Send + Sync + 'static>(
    step: &str,
) -> impl FnOnce(E) -> LoadError + '_ {
    move |source| LoadError::Rows {
        step: step.to_owned(),
        source: Box::new(source),
    }
}

/// What a completed load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub rows: u64,
    pub total_time: Duration,
}

/// Loads `dataset` into the keyspace of `options` (creating the schema first).
pub async fn load(
    options: &ScyllaOptions,
    dataset: Dataset,
    existing: Existing,
    progress: &ProgressBar,
) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    let session = backend::session(options).await?;
    backend::migrate(&session, options).await?;
    let ks = options.keyspace.as_str();
    prepare(&session, ks, dataset, existing).await?;
    let done = read_progress(&session, ks).await?;

    let tables = [
        ("songs", dataset.songs),
        ("users", dataset.users),
        ("comments", dataset.comments),
    ];
    progress.set_length(tables.iter().map(|(_, rows)| rows).sum());
    progress.set_message("inserting rows");
    let record = backend::prepare(
        &session,
        ks,
        "INSERT INTO {ks}.seed_progress (table_name, rows_done) VALUES (?, ?)",
    )
    .await?;
    let mut generator = Generator::new(dataset).expect("the dataset was validated before loading");
    for (table, rows) in tables {
        let start = done.get(table).map_or(0, |&n| n.max(0) as u64).min(rows);
        progress.inc(start);
        let load = Table {
            session: &session,
            ks,
            record: &record,
            name: table,
            progress,
        };
        load.insert(&mut generator, start..rows).await?;
    }
    drop_bookkeeping(&session, ks).await?;
    Ok(LoadReport {
        rows: tables.iter().map(|(_, rows)| rows).sum(),
        total_time: started.elapsed(),
    })
}

/// Drops `seed_progress` and `seed_plan` once every table is loaded.
async fn drop_bookkeeping(session: &Session, ks: &str) -> Result<(), LoadError> {
    for table in ["seed_progress", "seed_plan"] {
        session
            .query_unpaged(format!("DROP TABLE IF EXISTS {ks}.{table}"), ())
            .await
            .map_err(cql("dropping the bookkeeping tables"))?;
    }
    Ok(())
}

/// One table's load: inserts in a bounded window, progress and checkpoints.
struct Table<'a> {
    session: &'a Session,
    ks: &'a str,
    record: &'a PreparedStatement,
    name: &'static str,
    progress: &'a ProgressBar,
}

impl Table<'_> {
    async fn insert_all<F, Fut>(&self, rows: Range<u64>, insert: F) -> Result<(), LoadError>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<(), ExecutionError>>,
    {
        let step = || format!("inserting into {}", self.name);
        // Ordered: row n is reported done only after every row before it, so
        // a checkpoint never skips a row that failed or was still in flight.
        let mut results = stream::iter(rows.clone()).map(insert).buffered(WINDOW);
        let mut done = rows.start;
        while let Some(result) = results.next().await {
            result.map_err(cql(step()))?;
            done += 1;
            if done.is_multiple_of(ROWS_PER_TICK) {
                self.progress.inc(ROWS_PER_TICK);
            }
            if done.is_multiple_of(CHECKPOINT_ROWS) {
                self.checkpoint(done).await?;
            }
        }
        self.progress.inc(done % ROWS_PER_TICK);
        self.checkpoint(done).await
    }

    async fn checkpoint(&self, done: u64) -> Result<(), LoadError> {
        self.session
            .execute_unpaged(self.record, (self.name, done as i64))
            .await
            .map(drop)
            .map_err(cql("recording the load's progress"))
    }

    /// Inserts the rows numbered `rows` of this table.
    async fn insert(&self, generator: &mut Generator, rows: Range<u64>) -> Result<(), LoadError> {
        match self.name {
            "songs" => {
                self.insert_rows(
                    "INSERT INTO {ks}.songs (id, title, artist, duration_ms, created_at) \
                     VALUES (?, ?, ?, ?, ?)",
                    rows,
                    |n| {
                        let song = generator.song(n as i64 + 1);
                        (
                            song.id,
                            song.title,
                            song.artist,
                            song.duration_ms,
                            to_cql(song.created_at),
                        )
                    },
                )
                .await
            }
            "users" => {
                self.insert_rows(
                    "INSERT INTO {ks}.users (id, name, avatar_url, location) VALUES (?, ?, ?, ?)",
                    rows,
                    |n| {
                        let user = generator.user(n as i64 + 1);
                        (user.id, user.name, user.avatar_url, user.location)
                    },
                )
                .await
            }
            _ => self.insert_comments(generator, rows).await,
        }
    }

    /// Prepares `cql` and inserts, for each row number in `rows`, the values
    /// that `values` makes for it.
    async fn insert_rows<V: SerializeRow>(
        &self,
        cql: &str,
        rows: Range<u64>,
        mut values: impl FnMut(u64) -> V,
    ) -> Result<(), LoadError> {
        let insert = backend::prepare(self.session, self.ks, cql).await?;
        self.insert_all(rows, |n| {
            let values = values(n);
            let (insert, session) = (&insert, self.session);
            async move { session.execute_unpaged(insert, values).await.map(drop) }
        })
        .await
    }

    /// Inserts the comments numbered `rows`, each into both comment tables.
    async fn insert_comments(
        &self,
        generator: &mut Generator,
        rows: Range<u64>,
    ) -> Result<(), LoadError> {
        let by_song = backend::prepare(
            self.session,
            self.ks,
            "INSERT INTO {ks}.comments_by_song (song_id, track_ms, id, user_id, body, \
             created_at, updated_at, author_name, author_avatar_url) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .await?;
        let by_id = backend::prepare(
            self.session,
            self.ks,
            "INSERT INTO {ks}.comments_by_id (id, song_id, track_ms, user_id) \
             VALUES (?, ?, ?, ?)",
        )
        .await?;
        self.insert_all(rows, |n| {
            let comment = generator.comment(n);
            let author = generator.user(comment.user_id.get());
            let (by_song, by_id, session) = (&by_song, &by_id, self.session);
            async move {
                let (created, updated) = (to_cql(comment.created_at), to_cql(comment.updated_at));
                let song_row = (
                    comment.song_id,
                    comment.track_ms,
                    comment.id,
                    comment.user_id,
                    comment.body.as_str(),
                    created,
                    updated,
                    author.name,
                    author.avatar_url,
                );
                let id_row = (
                    comment.id,
                    comment.song_id,
                    comment.track_ms,
                    comment.user_id,
                );
                futures::try_join!(
                    session.execute_unpaged(by_song, song_row),
                    session.execute_unpaged(by_id, id_row),
                )
                .map(drop)
            }
        })
        .await
    }
}

/// Decides from what the keyspace holds whether to start, restart or resume.
async fn prepare(
    session: &Session,
    ks: &str,
    dataset: Dataset,
    existing: Existing,
) -> Result<(), LoadError> {
    let plan = read_plan(session, ks).await?;
    let start = existing.start(plan, dataset)?;
    match start {
        Start::Resume => return Ok(()),
        Start::IntoEmpty => {
            let mut holding = Vec::new();
            for table in DATA_TABLES {
                let result = session
                    .query_unpaged(format!("SELECT id FROM {ks}.{table} LIMIT 1"), ())
                    .await
                    .map_err(cql(format!("looking for rows in {table}")))?;
                let rows = result
                    .into_rows_result()
                    .map_err(rows_error("the emptiness check"))?;
                if rows.rows_num() > 0 {
                    holding.push(table);
                }
            }
            if !holding.is_empty() {
                return Err(LoadError::NotEmpty(holding.join(", ")));
            }
        }
        Start::Replace => {}
    }
    for statement in BOOKKEEPING_CQL {
        session
            .query_unpaged(statement.replace("{ks}", ks), ())
            .await
            .map_err(cql("creating the bookkeeping tables"))?;
    }
    // A refused load got here only with every table empty; only a forced one must empty them.
    let to_empty: Vec<&str> = match start {
        Start::Replace => DATA_TABLES.into_iter().chain(["seed_progress"]).collect(),
        Start::IntoEmpty | Start::Resume => Vec::new(),
    };
    for table in to_empty {
        // TRUNCATE waits for every replica to flush; give it longer than a write.
        let mut truncate = Statement::new(format!("TRUNCATE {ks}.{table}"));
        truncate.set_request_timeout(Some(Duration::from_secs(120)));
        session
            .query_unpaged(truncate, ())
            .await
            .map_err(cql(format!("truncating {table}")))?;
    }
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.seed_plan (id, seed, songs, users, comments, zipf_exponent) \
                 VALUES (0, ?, ?, ?, ?, ?)"
            ),
            (
                dataset.seed as i64,
                dataset.songs as i64,
                dataset.users as i64,
                dataset.comments as i64,
                dataset.zipf_exponent,
            ),
        )
        .await
        .map_err(cql("recording the plan"))?;
    Ok(())
}

async fn bookkeeping_exists(session: &Session, ks: &str) -> Result<bool, LoadError> {
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables \
             WHERE keyspace_name = ? AND table_name = 'seed_plan'",
            (ks,),
        )
        .await
        .map_err(cql("looking for an interrupted load"))?;
    let rows = result
        .into_rows_result()
        .map_err(rows_error("looking for an interrupted load"))?;
    Ok(rows.rows_num() > 0)
}

async fn read_plan(session: &Session, ks: &str) -> Result<Option<Dataset>, LoadError> {
    if !bookkeeping_exists(session, ks).await? {
        return Ok(None);
    }
    let step = "reading the plan";
    let result = session
        .query_unpaged(
            format!(
                "SELECT seed, songs, users, comments, zipf_exponent FROM {ks}.seed_plan WHERE id = 0"
            ),
            (),
        )
        .await
        .map_err(cql(step))?;
    let row = result
        .into_rows_result()
        .map_err(rows_error(step))?
        .maybe_first_row::<(i64, i64, i64, i64, f64)>()
        .map_err(rows_error(step))?;
    Ok(
        row.map(|(seed, songs, users, comments, zipf_exponent)| Dataset {
            seed: seed as u64,
            songs: songs as u64,
            users: users as u64,
            comments: comments as u64,
            zipf_exponent,
        }),
    )
}

async fn read_progress(session: &Session, ks: &str) -> Result<HashMap<String, i64>, LoadError> {
    let step = "reading the load's progress";
    let result = session
        .query_unpaged(
            format!("SELECT table_name, rows_done FROM {ks}.seed_progress"),
            (),
        )
        .await
        .map_err(cql(step))?;
    let rows = result.into_rows_result().map_err(rows_error(step))?;
    rows.rows::<(String, i64)>()
        .map_err(rows_error(step))?
        .collect::<Result<HashMap<_, _>, _>>()
        .map_err(rows_error(step))
}

/// Rows recorded as loaded per table by an interrupted load, for the message
/// printed after Ctrl-C; `None` when no load was under way.
pub async fn remaining(options: &ScyllaOptions) -> Result<Option<Vec<(String, i64)>>, LoadError> {
    let session = backend::session(options).await?;
    let ks = options.keyspace.as_str();
    if read_plan(&session, ks).await?.is_none() {
        return Ok(None);
    }
    let mut done: Vec<_> = read_progress(&session, ks).await?.into_iter().collect();
    done.sort();
    Ok(Some(done))
}
