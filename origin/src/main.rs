//! The `origin` binary: parses the command line and hands over to the library.

use std::io::Write as _;

use clap::Parser as _;
use origin::configuration::{Cli, Command};
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
            Command::Migrate(args) => {
                let applied = origin::storage::postgres::migrate(&args.database_url).await?;
                tracing::info!(?applied, "migrations applied");
            }
            Command::Seed(args) => origin::datagen::run(args).await?,
        }
        Ok::<(), anyhow::Error>(())
    })
}
