//! `origin seed`: a deterministic song/user/comment data set at any scale, bulk
//! loaded into PostgreSQL (binary COPY) or ScyllaDB (prepared statements).
//!
//! - [`generate`]: the rows, a pure function of (seed, table, row number).
//! - [`postgres`]: the COPY loader, resumable table by table.
//! - [`scylla`]: prepared inserts with bounded concurrency, resumable from a
//!   checkpoint.

pub mod generate;
pub mod postgres;
pub mod scylla;
mod words;

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use origin::configuration::DatabaseArgs;
use origin::storage::Database;

pub use generate::{Dataset, Generator};

/// Named sizes: (songs, users, comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// 1k songs, 1k users, 10k comments: tests.
    Tiny,
    /// 10k songs, 10k users, 100k comments.
    Small,
    /// 1M songs, 100k users, 10M comments.
    Medium,
    /// 10M songs, 1M users, 100M comments: the original study's scale.
    Full,
}

impl Scale {
    pub fn sizes(self) -> (u64, u64, u64) {
        match self {
            Scale::Tiny => (1_000, 1_000, 10_000),
            Scale::Small => (10_000, 10_000, 100_000),
            Scale::Medium => (1_000_000, 100_000, 10_000_000),
            Scale::Full => (10_000_000, 1_000_000, 100_000_000),
        }
    }
}

/// Arguments of `origin seed`.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Which database to load, and where it is.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A named size; or give --songs, --users and --comments.
    #[arg(long, value_enum, required_unless_present_all = ["songs", "users", "comments"])]
    pub scale: Option<Scale>,
    #[arg(long, conflicts_with = "scale", requires_all = ["users", "comments"])]
    pub songs: Option<u64>,
    #[arg(long, conflicts_with = "scale", requires_all = ["songs", "comments"])]
    pub users: Option<u64>,
    #[arg(long, conflicts_with = "scale", requires_all = ["songs", "users"])]
    pub comments: Option<u64>,
    /// The same seed gives the same rows and ids.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skew of song popularity (Zipf exponent; 0 = uniform).
    #[arg(long, default_value_t = 0.5)]
    pub zipf_exponent: f64,
    /// Truncate whatever the database holds and load from scratch.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Finish an interrupted load of the same data set.
    #[arg(long)]
    pub resume: bool,
}

impl SeedArgs {
    pub fn dataset(&self) -> Dataset {
        let (songs, users, comments) = match self.scale {
            Some(scale) => scale.sizes(),
            None => (
                self.songs.unwrap_or_default(),
                self.users.unwrap_or_default(),
                self.comments.unwrap_or_default(),
            ),
        };
        Dataset {
            seed: self.seed,
            songs,
            users,
            comments,
            zipf_exponent: self.zipf_exponent,
        }
    }

    pub fn existing(&self) -> Existing {
        if self.force {
            Existing::Replace
        } else if self.resume {
            Existing::Resume
        } else {
            Existing::Refuse
        }
    }
}

/// What to do when the database already holds data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    /// Truncate everything and load from scratch.
    Replace,
    /// Finish an interrupted load of the same data set.
    Resume,
}

/// How a load begins, decided by [`Existing::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Finish the interrupted load the database records.
    Resume,
    /// Load from scratch; the loader must first check that the tables are empty.
    IntoEmpty,
    /// Empty every table and load from scratch.
    Replace,
}

/// Why a load cannot begin, whichever database it loads.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the database holds an interrupted load; pass --resume (with the same --seed and sizes) \
         to finish it, or --force to start over"
    )]
    Interrupted,
    #[error("there is no interrupted load to resume in this database")]
    NothingToResume,
    #[error(
        "the interrupted load was of a different data set ({0:?}); resume with the same --seed and sizes, or start over with --force"
    )]
    DifferentPlan(Dataset),
}

impl Existing {
    /// Decides from the plan an interrupted load recorded (if any) how the load of
    /// `dataset` begins. The same rules for both loaders.
    pub fn start(self, recorded: Option<Dataset>, dataset: Dataset) -> Result<Start, StartError> {
        match (recorded, self) {
            (Some(plan), Existing::Resume) if plan == dataset => Ok(Start::Resume),
            (Some(plan), Existing::Resume) => Err(StartError::DifferentPlan(plan)),
            (Some(_), Existing::Refuse) => Err(StartError::Interrupted),
            (None, Existing::Resume) => Err(StartError::NothingToResume),
            (None, Existing::Refuse) => Ok(Start::IntoEmpty),
            (_, Existing::Replace) => Ok(Start::Replace),
        }
    }
}

/// A bar on stderr with rows per second and time left; when stderr is not a
/// terminal (a log file, CI), a plain line every ten seconds instead.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
        )
        .expect("the template is valid"),
    );
    if std::io::stderr().is_terminal() {
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        log_progress_lines(&bar, Duration::from_secs(10));
    }
    bar
}

/// Prints the bar's state as one line per `every` until it is finished or dropped.
fn log_progress_lines(bar: &ProgressBar, every: Duration) {
    let weak = bar.downgrade();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(bar) = weak.upgrade() else { return };
            if bar.is_finished() {
                return;
            }
            let (done, total) = (bar.position(), bar.length().unwrap_or(0));
            let percent = if total == 0 {
                0.0
            } else {
                100.0 * done as f64 / total as f64
            };
            eprintln!(
                "[{:>5} s] {}: {done}/{total} rows ({percent:.1} %), {:.0} rows/s, about {} s left",
                started.elapsed().as_secs(),
                bar.message(),
                bar.per_sec(),
                bar.eta().as_secs(),
            );
        }
    });
}

/// `origin seed`: loads the data set, or on Ctrl-C stops and says how to go on.
pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let dataset = args.dataset();
    Generator::new(dataset)?;
    // The loaders open their own connections: the pool size is not used.
    match args.database.database(1, scylla::WRITE_TIMEOUT)? {
        Database::Postgres { url, .. } => run_postgres(&url, dataset, args.existing()).await,
        Database::Scylla(options) => run_scylla(&options, dataset, args.existing()).await,
    }
}

async fn run_postgres(url: &str, dataset: Dataset, existing: Existing) -> anyhow::Result<()> {
    let progress = progress_bar();
    let load = postgres::load(url, dataset, existing, &progress);
    let outcome = tokio::select! {
        outcome = load => outcome,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon_with_message("interrupted");
            // The loader's connections are gone; PostgreSQL rolls back what they had open.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let remaining = postgres::remaining(url).await.context("reading what the interrupted load left")?;
            match remaining {
                Some(remaining) => eprintln!(
                    "interrupted. Complete tables kept: {}; {} index/constraint statements still to run.\n\
                     Resume with the same command plus --resume, or start over with --force.",
                    if remaining.loaded_tables.is_empty() { "none".to_owned() } else { remaining.loaded_tables.join(", ") },
                    remaining.pending_statements,
                ),
                None => eprintln!("interrupted before the load started; nothing was changed."),
            }
            std::process::exit(130);
        }
    };
    let report = outcome?;
    progress.finish_with_message("done");
    println!(
        "loaded {} rows (seed {}: {} songs, {} users, {} comments) in {:.1?}: copy {:.1?}, indexes and constraints {:.1?}",
        report.rows,
        dataset.seed,
        dataset.songs,
        dataset.users,
        dataset.comments,
        report.total_time,
        report.copy_time,
        report.index_time,
    );
    Ok(())
}

async fn run_scylla(
    options: &origin::storage::scylla::ScyllaOptions,
    dataset: Dataset,
    existing: Existing,
) -> anyhow::Result<()> {
    let progress = progress_bar();
    let load = scylla::load(options, dataset, existing, &progress);
    let outcome = tokio::select! {
        outcome = load => outcome,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon_with_message("interrupted");
            let done = scylla::remaining(options).await.context("reading what the interrupted load left")?;
            match done {
                Some(done) => eprintln!(
                    "interrupted. Rows recorded as loaded: {}.\n\
                     Resume with the same command plus --resume, or start over with --force.",
                    done.iter().map(|(table, rows)| format!("{table} {rows}")).collect::<Vec<_>>().join(", "),
                ),
                None => eprintln!("interrupted before the load started; nothing was changed."),
            }
            std::process::exit(130);
        }
    };
    let report = outcome?;
    progress.finish_with_message("done");
    println!(
        "loaded {} rows (seed {}: {} songs, {} users, {} comments) into keyspace {} in {:.1?} ({:.0} rows/s)",
        report.rows,
        dataset.seed,
        dataset.songs,
        dataset.users,
        dataset.comments,
        options.keyspace,
        report.total_time,
        report.rows as f64 / report.total_time.as_secs_f64().max(1e-9),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(seed: u64) -> Dataset {
        Dataset {
            seed,
            songs: 10,
            users: 10,
            comments: 100,
            zipf_exponent: 0.5,
        }
    }

    #[test]
    fn a_load_starts_resumes_or_is_refused_by_one_rule() {
        let (wanted, other) = (dataset(1), dataset(2));
        let start = |existing: Existing, recorded| existing.start(recorded, wanted);
        assert_eq!(start(Existing::Refuse, None).unwrap(), Start::IntoEmpty);
        assert_eq!(start(Existing::Replace, None).unwrap(), Start::Replace);
        assert_eq!(
            start(Existing::Replace, Some(other)).unwrap(),
            Start::Replace
        );
        assert_eq!(
            start(Existing::Resume, Some(wanted)).unwrap(),
            Start::Resume
        );
        assert!(matches!(
            start(Existing::Resume, Some(other)),
            Err(StartError::DifferentPlan(plan)) if plan == other
        ));
        assert!(matches!(
            start(Existing::Refuse, Some(wanted)),
            Err(StartError::Interrupted)
        ));
        assert!(matches!(
            start(Existing::Resume, None),
            Err(StartError::NothingToResume)
        ));
    }
}
