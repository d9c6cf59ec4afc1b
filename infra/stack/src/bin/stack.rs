//! The `stack` command: bring the local stack up, operate it from other terminals, stop it, bench its scaling.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use stack::bench::{self, BenchSettings};
use stack::binaries;
use stack::cgroup::parse_size;
use stack::control::{self, ControlCommand, StateFile};
use stack::probe::error_chain;
use stack::{DatabaseBackend, Stack, StackConfig};

#[derive(Parser)]
#[command(
    name = "stack",
    about = "The song-comments stack on loopback: PostgreSQL or Cassandra, Redis, N origins, nginx, the edge"
)]
struct Cli {
    /// Root of runs: pgdata/ or cassandra/, one <timestamp>/ directory of logs per run, the
    /// state file.
    #[arg(long, global = true, env = "STACK_RUN_DIR")]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Start everything, print the URLs, run until Ctrl-C or `stack down`.
    Up(UpArgs),
    /// Stop the stack started by `stack up` in another terminal.
    Down,
    /// Grow or shrink the origin pool (1 to 10) without dropping requests.
    Scale { instances: usize },
    /// SIGKILL origin instance I (numbered from 1).
    KillInstance { index: usize },
    /// Start origin instance I again (numbered from 1).
    RestartInstance { index: usize },
    /// Stop or start Redis.
    Redis {
        #[arg(value_parser = ["stop", "start"])]
        action: String,
    },
    /// Restart the database (PostgreSQL or Cassandra) on the same port and data.
    #[command(alias = "postgres")]
    Database {
        #[arg(value_parser = ["restart"])]
        action: String,
    },
    /// Print the running stack's URLs and processes.
    Status,
    /// Requests/s at the nginx URL for 1, 2 and 4 quota-limited instances (Redis and edge off).
    BenchScaling {
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        instances: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Song ids are drawn from 1..=songs.
        #[arg(long, default_value_t = 1000)]
        songs: u64,
        #[arg(long)]
        cpu_per_instance: Option<f64>,
        #[arg(long, default_value = "small")]
        seed_scale: String,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=10))]
    instances: u64,
    /// The database the origins run on: PostgreSQL, or one Apache Cassandra node
    /// (started from its jars on JDK 17; see infra/stack/src/cassandra.rs).
    #[arg(long, value_enum, default_value_t = DatabaseBackend::Postgres)]
    backend: DatabaseBackend,
    /// CPU share per instance (1.0 = one core); 0 for no quota.
    #[arg(long, default_value_t = stack::stack::DEFAULT_CPU_PER_INSTANCE)]
    cpu_per_instance: f64,
    /// CFS period of the quota in milliseconds (default: the shortest that still gives
    /// the kernel's 1 ms minimum quota, from 10 to 100 ms).
    #[arg(long)]
    cpu_period_ms: Option<u64>,
    /// Memory limit per instance, e.g. 256M; 0 for no limit.
    #[arg(long, default_value = "256M")]
    memory_per_instance: String,
    #[arg(long)]
    no_redis: bool,
    #[arg(long)]
    no_edge: bool,
    /// Run the edge as a pure proxy, without its cache.
    #[arg(long)]
    no_edge_cache: bool,
    #[arg(long, default_value = "small")]
    seed_scale: String,
    #[arg(
        long,
        env = "JWT_SECRET",
        default_value = "local-stack-secret-change-me"
    )]
    jwt_secret: String,
    /// Use free ports instead of the fixed ones (edge 8000, nginx 8100, instances 8101..).
    #[arg(long)]
    ephemeral_ports: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli
        .run_dir
        .unwrap_or_else(|| binaries::workspace_root().join("run"));
    let result = match cli.command {
        Action::Up(args) => up(root, args).await,
        Action::Down => down(&root).await,
        Action::Scale { instances } => send(&root, ControlCommand::Scale(instances)).await,
        Action::KillInstance { index } => send(&root, ControlCommand::KillInstance(index)).await,
        Action::RestartInstance { index } => {
            send(&root, ControlCommand::RestartInstance(index)).await
        }
        Action::Redis { action } => {
            let command = if action == "stop" {
                ControlCommand::StopRedis
            } else {
                ControlCommand::StartRedis
            };
            send(&root, command).await
        }
        Action::Database { .. } => send(&root, ControlCommand::RestartDatabase).await,
        Action::Status => send(&root, ControlCommand::Status).await,
        Action::BenchScaling {
            instances,
            seconds,
            connections,
            songs,
            cpu_per_instance,
            seed_scale,
        } => {
            bench_scaling(
                root,
                instances,
                seconds,
                connections,
                songs,
                cpu_per_instance,
                seed_scale,
            )
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stack: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

async fn up(root: PathBuf, args: UpArgs) -> CliResult {
    if let Ok(existing) = control::read_state(&root)
        && stack::process::pid_alive(existing.owner_pid)
    {
        return Err(format!(
            "a stack is already running (pid {}); stop it with `stack down`",
            existing.owner_pid
        )
        .into());
    }
    let memory = if args.memory_per_instance.trim() == "0" {
        None
    } else {
        Some(parse_size(&args.memory_per_instance)?)
    };
    let config = StackConfig {
        instances: usize::try_from(args.instances)?,
        backend: args.backend,
        cpu_per_instance: (args.cpu_per_instance > 0.0).then_some(args.cpu_per_instance),
        cpu_period: args.cpu_period_ms.map(Duration::from_millis),
        memory_per_instance: memory,
        redis: !args.no_redis,
        edge: !args.no_edge,
        edge_cache: !args.no_edge_cache,
        run_dir: root.clone(),
        ports: if args.ephemeral_ports {
            stack::PortPlan::ephemeral()?
        } else {
            stack::PortPlan::fixed()
        },
        seed_scale: args.seed_scale,
        jwt_secret: args.jwt_secret,
        ..StackConfig::default()
    };
    let mut stack = Stack::up(config).await?;
    let socket = control::socket_path(&root);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    save_state(&root, &mut stack)?;
    print_urls(&stack);
    println!("Ctrl-C or `stack down` stops everything.");

    let outcome = serve_commands(&root, &mut stack, &listener).await;
    stack.down().await;
    control::remove_state(&root);
    outcome
}

/// Runs commands from the socket until Ctrl-C, SIGTERM or `down`.
async fn serve_commands(
    root: &std::path::Path,
    stack: &mut Stack,
    listener: &UnixListener,
) -> CliResult {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let connection = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = connection else {
            continue;
        };
        let (reader, mut writer) = stream.into_split();
        let mut line = String::new();
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            BufReader::new(reader).read_line(&mut line),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            continue;
        }
        let (answer, stop) = match ControlCommand::parse(&line) {
            Ok(command) => {
                let stop = command == ControlCommand::Down;
                (apply(stack, &command).await, stop)
            }
            Err(error) => (Err(error.to_string()), false),
        };
        if answer.is_ok() {
            save_state(root, stack)?;
        }
        let reply = match answer {
            Ok(text) => format!("ok: {text}\n"),
            Err(text) => format!("error: {text}\n"),
        };
        let _ = writer.write_all(reply.as_bytes()).await;
        if stop {
            return Ok(());
        }
    }
}

async fn apply(stack: &mut Stack, command: &ControlCommand) -> Result<String, String> {
    let describe = |error: stack::StackError| error_chain(&error);
    match command {
        ControlCommand::Scale(n) => stack
            .scale_to(*n)
            .await
            .map(|()| format!("{n} instance(s): {}", stack.instance_urls().join(" ")))
            .map_err(describe),
        ControlCommand::KillInstance(i) => stack
            .kill_instance(*i)
            .map(|()| format!("instance {i} killed"))
            .map_err(describe),
        ControlCommand::RestartInstance(i) => stack
            .restart_instance(*i)
            .await
            .map(|()| format!("instance {i} restarted"))
            .map_err(describe),
        ControlCommand::StopRedis => stack
            .stop_redis()
            .await
            .map(|()| "redis stopped".to_owned())
            .map_err(describe),
        ControlCommand::StartRedis => stack
            .start_redis()
            .await
            .map(|()| "redis started".to_owned())
            .map_err(describe),
        ControlCommand::RestartDatabase => stack
            .restart_database()
            .await
            .map(|()| format!("{} restarted", stack.backend().label()))
            .map_err(describe),
        ControlCommand::Status => {
            let state = stack.state();
            serde_json::to_string(&state).map_err(|error| error.to_string())
        }
        ControlCommand::Down => Ok("stopping".to_owned()),
    }
}

fn save_state(root: &std::path::Path, stack: &mut Stack) -> CliResult {
    control::write_state(
        root,
        &StateFile {
            owner_pid: std::process::id(),
            socket: control::socket_path(root),
            stack: stack.state(),
        },
    )?;
    Ok(())
}

fn print_urls(stack: &Stack) {
    match stack.edge_url() {
        Some(url) => println!("edge:     {url}"),
        None => println!("edge:     (off)"),
    }
    println!("nginx:    {}", stack.nginx_url());
    for (position, url) in stack.instance_urls().iter().enumerate() {
        println!("origin {}: {url}", position + 1);
    }
    let database = match stack.backend() {
        DatabaseBackend::Postgres => "postgres: ",
        DatabaseBackend::Cassandra => "cassandra:",
    };
    println!("{database} {}", stack.database_url());
    if let Some(url) = stack.redis_url() {
        println!("redis:    {url}");
    }
    println!("logs:     {}", stack.run_dir().display());
}

/// Asks the running `stack up` to stop; if it is gone, stops its processes from the state file.
async fn down(root: &std::path::Path) -> CliResult {
    let state = control::read_state(root)?;
    if stack::process::pid_alive(state.owner_pid)
        && control::send(root, &ControlCommand::Down).await.is_ok()
    {
        // The owner stops everything in order, then removes the state file.
        for _ in 0..600 {
            if !stack::process::pid_alive(state.owner_pid) {
                println!("stack stopped");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stopped = control::stop_from_state(&state);
    control::remove_state(root);
    println!("stack stopped ({stopped} process(es) signalled directly)");
    Ok(())
}

async fn send(root: &std::path::Path, command: ControlCommand) -> CliResult {
    let answer = control::send(root, &command).await?;
    println!("{answer}");
    Ok(())
}

async fn bench_scaling(
    root: PathBuf,
    instances: Vec<usize>,
    seconds: u64,
    connections: usize,
    songs: u64,
    cpu_per_instance: Option<f64>,
    seed_scale: String,
) -> CliResult {
    let cpu = cpu_per_instance.or(Some(stack::stack::DEFAULT_CPU_PER_INSTANCE));
    let config = StackConfig {
        // Its own root, so it runs beside a `stack up` without sharing its database.
        run_dir: root.join("bench"),
        ports: stack::PortPlan::ephemeral()?,
        cpu_per_instance: cpu.filter(|share| *share > 0.0),
        seed_scale,
        ..StackConfig::default()
    };
    let settings = BenchSettings {
        instance_counts: instances,
        duration: Duration::from_secs(seconds),
        connections,
        songs,
    };
    let rows = bench::run_scaling(config, &settings).await?;
    println!(
        "\nGET /api/songs/{{1..={songs}}}/comments at nginx, wrk -t1 -c{connections} -d{seconds}s, Redis and edge off, {} cores, one machine (a simulation of separate nodes):\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    print!("{}", bench::table(&rows, cpu.filter(|share| *share > 0.0)));
    Ok(())
}
