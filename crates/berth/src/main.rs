//! The one berth binary: `berth server` runs the control plane, `berth dev` runs
//! everything a newcomer needs on one machine with its data in one directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_server::{Config, RunningServer, DEFAULT_LISTEN};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(name = "berth", version, about = "Self-hosted container orchestration that speaks the Amazon ECS API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (the ECS API) on a data directory.
    Server(ServerArgs),
    /// Run berth for development: the server with its data under the user's data dir.
    Dev(DevArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// Directory for the store and the administrator credentials.
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct DevArgs {
    /// Directory for all of berth's data (default: $XDG_DATA_HOME/berth or ~/.local/share/berth).
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CommonArgs {
    /// Address to serve the API on.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Account id for ARNs in a new data directory.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// Region written into the `berth` AWS CLI profile.
    #[arg(long, default_value = "us-east-1", env = "BERTH_REGION")]
    region: String,
    /// Do not write the `berth` profile into the AWS CLI config.
    #[arg(long)]
    no_profile: bool,
}

impl CommonArgs {
    fn config(self, data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            listen: self.listen,
            account_id: self.account_id,
            region: self.region,
            write_profile: !self.no_profile,
        }
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    let config = match command {
        Command::Server(a) => a.common.config(a.data_dir),
        Command::Dev(a) => {
            let dir = match a.data_dir {
                Some(d) => d,
                None => dirs::data_dir().context("no user data directory; pass --data-dir")?.join("berth"),
            };
            a.common.config(dir)
        }
    };
    let data_dir = config.data_dir.clone();
    let mut server = RunningServer::start(config).await.context("starting the berth server")?;
    println!("berth: listening on {}", server.endpoint);
    println!("berth: data in {}; try: aws --profile berth ecs list-clusters", data_dir.display());
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = server.wait() => return r.context("berth server stopped"),
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    server.stop().await.context("stopping the berth server")
}
