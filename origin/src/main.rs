//! The `origin` binary: parses the command line and hands over to the library.

use std::io::Write as _;

use clap::Parser as _;
use origin::configuration::{Backend, Cli, Command};
use origin::startup::Application;

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
            Command::Serve(args) => {
                let app = Application::build(args).await?;
                // Scripts and tests read this one line to learn the port.
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "listening on http://{}", app.address())?;
                stdout.flush()?;
                drop(stdout);
                tracing::info!(address = %app.address(), "serving");
                app.run_until_stopped().await?;
                tracing::info!("stopped");
            }
            Command::Migrate(args) => match args.backend {
                Backend::Postgres => {
                    let url = args.database_url.as_deref().ok_or_else(|| {
                        anyhow::anyhow!(
                            "--database-url (DATABASE_URL) is required for the postgres backend"
                        )
                    })?;
                    let applied = origin::storage::postgres::migrate(url).await?;
                    tracing::info!(?applied, "migrations applied");
                }
                Backend::Scylla => {
                    let options = args
                        .scylla
                        .options(std::time::Duration::from_secs(10))
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--scylla-uri (SCYLLA_URI) is required for the scylla backend"
                            )
                        })?;
                    let session = origin::storage::scylla::session(&options).await?;
                    origin::storage::scylla::migrate(&session, &options).await?;
                }
            },
            Command::Seed(args) => origin::datagen::run(args).await?,
            Command::BenchQueries(args) => origin::bench::run_cli(args).await?,
        }
        Ok::<(), anyhow::Error>(())
    })
}
