//! `origin bench-queries`: the original study's query table, measured here.
//!
//! On a loaded database (`origin seed`) it measures three reads, the song, its
//! comments page and its feed, three ways: through the [`Storage`] layer
//! directly, and through the HTTP API of an in-process [`Application`] on
//! 127.0.0.1 without and with Redis. Each cell runs `--concurrency` closed-loop
//! clients (each sends its next request when the last one answered) for a
//! warm-up and then `--seconds`, draws song ids from the loaded range
//! (uniformly, or by the data set's own Zipf popularity law), and records every
//! request's latency in an HDR histogram. The table puts the original
//! capstone's figures (Node/Express, 10M songs) beside ours.
//!
//! Closed loop is deliberate here: this is a latency-at-a-given-concurrency
//! table like the original's, not a capacity search (`loadtest` does that with
//! an open model). Client and server share one process and its cores.

mod markdown;
mod measure;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use origin::configuration::ScyllaArgs;
use origin::domain::{MAX_PAGE_LIMIT, SongId};
use origin::storage::postgres::PostgresOptions;
use origin::storage::{self, Database, Schema, Storage};

use measure::{Plan, Sampler, measure_http, measure_storage};

/// Bounds each database request the bench makes (the serving default is 1 s).
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `origin bench-queries`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// PostgreSQL holding a loaded data set; without it the PostgreSQL rows are skipped.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Cassandra or ScyllaDB holding a loaded data set (`origin seed --backend
    /// cassandra`); without --scylla-uri / SCYLLA_URI its rows are skipped.
    #[command(flatten)]
    pub scylla: ScyllaArgs,
    /// Redis for the "HTTP + Redis" rows. The bench runs FLUSHDB on it before
    /// each of those cells, so give it a Redis (or database) of its own.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Measured time per cell, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Unmeasured warm-up before each cell, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Unmeasured load before each backend's first cell, in seconds: the three reads
    /// in turn, through the storage layer, from the largest client count. A database
    /// warms as it serves (a JVM compiles its read path, caches fill); without this
    /// the first cells measured pay for it, and read slower than the HTTP cells
    /// measured after them that include the same reads.
    #[arg(long, default_value_t = 15.0)]
    pub backend_warmup_seconds: f64,
    /// Clients per cell, each with one request in flight; a list measures
    /// every cell at each count (the original's table: one client, then 16).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub concurrency: Vec<usize>,
    /// Song ids are drawn from 1..=songs; by default the largest song id in PostgreSQL.
    #[arg(long)]
    pub songs: Option<u64>,
    /// How song ids are drawn.
    #[arg(long, value_enum, default_value_t = Draw::Uniform)]
    pub distribution: Draw,
    /// The data set's seed (as given to `origin seed`): with `--distribution
    /// zipf` the most-read songs are then the most-commented ones. Also seeds
    /// the clients' draws.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The data set's Zipf exponent (as given to `origin seed`).
    #[arg(long, default_value_t = 0.5)]
    pub zipf_exponent: f64,
    /// Page size of the comments query and the feed.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Draw {
    /// Every loaded song equally likely: mostly cold reads at full scale.
    Uniform,
    /// The data set's popularity law: a few songs take most reads.
    Zipf,
}

/// The reads measured, with the original study's figure for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Song,
    Comments,
    Feed,
}

impl Read {
    const ALL: [Read; 3] = [Read::Song, Read::Comments, Read::Feed];

    fn label(self) -> &'static str {
        match self {
            Read::Song => "single song read",
            Read::Comments => "comments query",
            Read::Feed => "song-comments feed",
        }
    }

    fn original(self) -> &'static str {
        match self {
            Read::Song => "Cassandra single read: 2–11 ms",
            Read::Comments => "PostgreSQL comments query: 0.6 ms",
            Read::Feed => "PostgreSQL song-comments join: 0.9 ms",
        }
    }

    fn cache_kind(self) -> &'static str {
        match self {
            Read::Song => "song",
            Read::Comments => "comments",
            Read::Feed => "feed",
        }
    }

    fn path(self, song: SongId, limit: u32) -> String {
        match self {
            Read::Song => format!("/api/songs/{song}"),
            Read::Comments => format!("/api/songs/{song}/comments?limit={limit}"),
            Read::Feed => format!("/api/songs/{song}/feed?limit={limit}"),
        }
    }
}

/// Through what a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Storage,
    Http,
    HttpRedis,
}

impl Via {
    const ALL: [Via; 3] = [Via::Storage, Via::Http, Via::HttpRedis];

    /// The `through` of each cell in the JSON; the study's report matches the first two
    /// (`loadtest`'s `report::database`), so renaming one here needs the same change there.
    fn label(self) -> &'static str {
        match self {
            Via::Storage => "storage",
            Via::Http => "HTTP, no Redis",
            Via::HttpRedis => "HTTP + Redis",
        }
    }
}

/// The figures of one measured cell.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub throughput_per_s: f64,
    /// Successful requests in the measured window.
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Redis hits among the cache lookups of this cell, warm-up included
    /// (HTTP + Redis only).
    pub redis_hit_ratio: Option<f64>,
    /// Lookups that skipped Redis because it failed or was slower than its
    /// timeout (HTTP + Redis only).
    pub redis_bypasses: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub backend: String,
    pub query: String,
    pub through: String,
    /// Closed-loop clients of this cell.
    pub clients: usize,
    pub original: String,
    /// `None` when the cell was not measured; `not_measured` says why.
    pub measured: Option<Measured>,
    pub not_measured: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub songs: u64,
    pub songs_from: String,
    pub distribution: Draw,
    pub concurrency: Vec<usize>,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub backend_warmup_seconds: f64,
    pub limit: u32,
    pub cores: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub settings: Settings,
    pub cells: Vec<Cell>,
    /// Backends not measured at all, with the reason.
    pub skipped: Vec<String>,
}

/// `origin bench-queries`: runs the bench, prints the table, writes the JSON.
pub async fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    let report = run(&args).await?;
    println!("{}", report.markdown());
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs every cell the arguments allow.
pub async fn run(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    check_args(args)?;
    let most_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let postgres = match &args.database_url {
        Some(url) => Some(open_postgres(url, most_clients).await?),
        None => None,
    };
    let (songs, songs_from) = loaded_songs(args).await?;
    anyhow::ensure!(songs >= 1, "no songs are loaded; run `origin seed` first");
    let draw = Sampler::new(args, songs)?;
    let (backends, skipped) = open_backends(args, postgres).await?;
    let cells = measure_all(args, &draw, backends).await?;
    Ok(BenchReport {
        settings: Settings {
            songs,
            songs_from,
            distribution: args.distribution,
            concurrency: args.concurrency.clone(),
            seconds: args.seconds,
            warmup_seconds: args.warmup_seconds,
            backend_warmup_seconds: args.backend_warmup_seconds,
            limit: args.limit,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        },
        cells,
        skipped,
    })
}

/// Refuses durations, client counts and page sizes the bench cannot use.
fn check_args(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup_seconds >= 0.0 && args.backend_warmup_seconds >= 0.0,
        "--seconds must be > 0, and --warmup-seconds and --backend-warmup-seconds >= 0"
    );
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|&n| n >= 1),
        "--concurrency takes client counts of at least 1, such as 1,16"
    );
    anyhow::ensure!(
        (1..=MAX_PAGE_LIMIT).contains(&args.limit),
        "--limit must be between 1 and {MAX_PAGE_LIMIT}"
    );
    Ok(())
}

/// Opens PostgreSQL with a pool large enough for the busiest cell.
async fn open_postgres(url: &str, pool_size: usize) -> anyhow::Result<Arc<dyn Storage>> {
    let database = Database::Postgres {
        url: url.to_owned(),
        options: PostgresOptions {
            pool_size,
            timeout: DB_TIMEOUT,
        },
    };
    storage::open(&database, Schema::AsIs)
        .await
        .context("connecting to PostgreSQL")
}

/// How many songs to draw ids from, and where that number came from.
async fn loaded_songs(args: &BenchArgs) -> anyhow::Result<(u64, String)> {
    Ok(match (args.songs, &args.database_url) {
        (Some(songs), _) => (songs, "--songs".to_owned()),
        (None, Some(url)) => (
            postgres_song_count(url).await?,
            "the largest song id in PostgreSQL".to_owned(),
        ),
        (None, None) => anyhow::bail!(
            "give --songs (the loaded song count): without PostgreSQL the bench cannot find it"
        ),
    })
}

/// The backends to measure, PostgreSQL first, and why any other was skipped.
async fn open_backends(
    args: &BenchArgs,
    postgres: Option<Arc<dyn Storage>>,
) -> anyhow::Result<(Vec<Arc<dyn Storage>>, Vec<String>)> {
    let mut backends: Vec<Arc<dyn Storage>> = Vec::new();
    let mut skipped = Vec::new();
    match postgres {
        Some(storage) => backends.push(storage),
        None => {
            skipped.push("PostgreSQL: skipped: no --database-url (DATABASE_URL) given".to_owned())
        }
    }
    match args.scylla.options(DB_TIMEOUT) {
        Some(options) => {
            let storage = storage::open(&Database::Scylla(options), Schema::AsIs)
                .await
                .context(
                    "opening the CQL keyspace (is it loaded? `origin seed --backend cassandra`)",
                )?;
            backends.push(storage);
        }
        None => skipped.push(
            "Cassandra/ScyllaDB: skipped: no --scylla-uri (SCYLLA_URI) given (load a node \
             first: `origin seed --backend cassandra`; see infra/scylla/README.md)"
                .to_owned(),
        ),
    }
    anyhow::ensure!(
        !backends.is_empty(),
        "nothing to measure: give --database-url (DATABASE_URL) and/or --scylla-uri (SCYLLA_URI)"
    );
    Ok((backends, skipped))
}

/// Every cell, returned in table order (backend, way through, client count, read) but
/// measured with the ways through innermost: each read's storage-layer cell runs just
/// before its HTTP cells, so what a database still warming or a busy moment costs falls
/// on neighbours that are compared (the study's report checks the storage layer against
/// HTTP), not on all of one way through.
async fn measure_all(
    args: &BenchArgs,
    draw: &Sampler,
    backends: Vec<Arc<dyn Storage>>,
) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for storage in backends {
        warm_up(args, draw, &storage).await;
        let mut measured = Vec::new();
        for (at_clients, &clients) in args.concurrency.iter().enumerate() {
            for (at_read, read) in Read::ALL.into_iter().enumerate() {
                for (at_via, via) in Via::ALL.into_iter().enumerate() {
                    let plan = Plan {
                        draw: draw.clone(),
                        concurrency: clients,
                        warmup: Duration::from_secs_f64(args.warmup_seconds),
                        measure: Duration::from_secs_f64(args.seconds),
                        limit: args.limit,
                        // Each way through draws its own songs: the same draws would
                        // send the HTTP cells to rows the storage cell just brought
                        // into the database's caches.
                        seed: args.seed ^ (at_via as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    };
                    let cell = measure_cell(args, &plan, &storage, read, via).await?;
                    measured.push(((at_via, at_clients, at_read), cell));
                }
            }
        }
        measured.sort_by_key(|(order, _)| *order);
        cells.extend(measured.into_iter().map(|(_, cell)| cell));
    }
    Ok(cells)
}

/// `--backend-warmup-seconds` of the three reads in turn, unmeasured, from the largest
/// client count.
async fn warm_up(args: &BenchArgs, draw: &Sampler, storage: &Arc<dyn Storage>) {
    if args.backend_warmup_seconds <= 0.0 {
        return;
    }
    let clients = args.concurrency.iter().copied().max().unwrap_or(1);
    eprintln!(
        "warming {} up: the three reads through the storage layer from {clients} clients, {:.1} s unmeasured",
        storage.product(),
        args.backend_warmup_seconds
    );
    let each = Duration::from_secs_f64(args.backend_warmup_seconds / Read::ALL.len() as f64);
    for read in Read::ALL {
        let plan = Plan {
            draw: draw.clone(),
            concurrency: clients,
            warmup: each,
            measure: Duration::ZERO,
            limit: args.limit,
            seed: args.seed,
        };
        measure_storage(&plan, Arc::clone(storage), read).await;
    }
}

/// One read of one backend through `via` at one client count. A cached cell starts
/// from an empty Redis, so it fills its own cache.
async fn measure_cell(
    args: &BenchArgs,
    plan: &Plan,
    storage: &Arc<dyn Storage>,
    read: Read,
    via: Via,
) -> anyhow::Result<Cell> {
    let backend = storage.product();
    let redis_url = match (via, &args.redis_url) {
        (Via::HttpRedis, None) => {
            let why = "no Redis URL given (--redis-url or REDIS_URL)";
            return Ok(Cell::not_measured(
                backend,
                read,
                via,
                plan.concurrency,
                why,
            ));
        }
        (Via::HttpRedis, Some(url)) => {
            flush_redis(url).await?;
            Some(url.clone())
        }
        (Via::Storage | Via::Http, _) => None,
    };
    eprintln!(
        "measuring {backend} {} through {} with {} clients ({:.1} s + {:.1} s warm-up)",
        read.label(),
        via.label(),
        plan.concurrency,
        args.seconds,
        args.warmup_seconds,
    );
    let measured = match via {
        Via::Storage => measure_storage(plan, Arc::clone(storage), read).await,
        Via::Http | Via::HttpRedis => {
            measure_http(plan, Arc::clone(storage), redis_url, read).await?
        }
    };
    Ok(Cell {
        backend: backend.to_owned(),
        query: read.label().to_owned(),
        through: via.label().to_owned(),
        clients: plan.concurrency,
        original: read.original().to_owned(),
        measured: Some(measured),
        not_measured: None,
    })
}

impl Cell {
    fn not_measured(backend: &str, read: Read, via: Via, clients: usize, why: &str) -> Self {
        Self {
            backend: backend.to_owned(),
            query: read.label().to_owned(),
            through: via.label().to_owned(),
            clients,
            original: read.original().to_owned(),
            measured: None,
            not_measured: Some(why.to_owned()),
        }
    }
}

async fn postgres_song_count(url: &str) -> anyhow::Result<u64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let max: Option<i64> = client
        .query_one("SELECT max(id) FROM songs", &[])
        .await
        .context("reading the largest song id (is the database loaded? `origin seed`)")?
        .get(0);
    drop(client);
    let _ = connection.await;
    Ok(max.unwrap_or(0).max(0) as u64)
}

async fn flush_redis(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("parsing the Redis URL")?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut connection)
        .await
        .context("flushing the bench's Redis database")
}
