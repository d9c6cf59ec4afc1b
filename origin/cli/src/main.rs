//! The `origin` binary: the command line (`serve`, `migrate`, `seed`,
//! `bench-queries`) and the hand-over to the library.

use std::io::Write as _;
use std::time::Duration;

use clap::{Parser, Subcommand};
use origin::configuration::{DatabaseArgs, ServeArgs};
use origin::startup::Application;
use origin_cli::bench::BenchArgs;
use origin_cli::datagen::SeedArgs;

#[derive(Debug, Parser)]
#[command(name = "origin", version, about = "The song-comments origin service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (runs migrations first).
    Serve(ServeArgs),
    /// Apply the schema migrations to the database and exit.
    Migrate(DatabaseArgs),
    /// Load the deterministic data set (owned by the data generator).
    Seed(SeedArgs),
    /// Measure the song read, comments query and feed on a loaded database:
    /// through the storage layer and through the HTTP API with and without Redis.
    BenchQueries(BenchArgs),
}

/// Bounds each schema change request of `origin migrate` on ScyllaDB.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    origin::telemetry::init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(args) = &cli.command
        && let Some(threads) = args.worker_threads
    {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await?,
            Command::Migrate(args) => {
                let database = args.database(1, MIGRATE_TIMEOUT)?;
                origin::storage::migrate(&database).await?;
            }
            Command::Seed(args) => origin_cli::datagen::run(args).await?,
            Command::BenchQueries(args) => origin_cli::bench::run_cli(args).await?,
        }
        Ok::<(), anyhow::Error>(())
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(args).await?;
    // Scripts and tests read this one line to learn the port.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", app.address())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(address = %app.address(), "serving");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
