//! `ferry`: the server, the administrator's commands, and the user's commands.

mod admin;
mod api;
mod output;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::Format;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry: share and move research data where it already lives."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct Global {
    /// The data directory (database, keys, administrator's credentials).
    #[arg(
        long,
        global = true,
        env = "FERRY_DATA_DIR",
        default_value = "./ferry-data"
    )]
    pub data_dir: PathBuf,
    /// A TOML configuration file (see README for the keys).
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format of listing and show commands.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run every Ferry service in this process, on one port.
    Serve(serve::ServeArgs),
    /// Manage local accounts (people). Runs on the server host, against the data directory.
    #[command(subcommand)]
    Identity(admin::IdentityCmd),
    /// Manage OAuth2 clients (applications). Runs on the server host, against the data directory.
    #[command(subcommand)]
    Client(admin::ClientCmd),
    /// Manage groups through the Groups API, as a client (the administrator's by default).
    #[command(subcommand)]
    Group(api::GroupCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.global, args).await,
            Command::Identity(cmd) => admin::identity(&cli.global, cmd).await,
            Command::Client(cmd) => admin::client(&cli.global, cmd).await,
            Command::Group(cmd) => api::group(&cli.global, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
