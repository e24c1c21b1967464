//! The one berth binary: `berth server` runs the control plane, `berth dev` runs
//! everything a newcomer needs on one machine with its data in one directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_server::{Config, RunningServer, DEFAULT_LISTEN};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

mod agent;
mod image;
mod logs;

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
    /// Run berth for development: the server and a local agent, data under one directory.
    Dev(DevArgs),
    /// Join a cluster as a container instance and run the tasks placed on this host.
    Agent(agent::AgentArgs),
    /// The per-container shim the agent starts (internal).
    #[command(hide = true)]
    Shim(ShimCli),
    /// Manage the agent's image store: load archives, list, pull, push a directory as an image.
    Image(image::ImageArgs),
    /// Print a task's output (`--follow` to keep printing until it stops).
    Logs(logs::LogsArgs),
}

#[derive(Args)]
struct ShimCli {
    /// `--id ID --bundle DIR --runc PATH --runc-root DIR`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<String>,
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
    /// Run only the server (no local agent: nothing can run tasks until an agent joins).
    #[arg(long)]
    no_agent: bool,
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
    if let Command::Shim(shim) = cli.command {
        // Synchronous and outside any async runtime: it outlives the agent that started it.
        let args = berth_runtime::container::ShimArgs::parse(shim.args).context("berth shim arguments")?;
        return berth_runtime::container::shim_main(args).context("berth shim");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    let (config, with_agent) = match command {
        Command::Server(a) => (a.common.config(a.data_dir), false),
        Command::Image(a) => return image::run(a).await,
        Command::Logs(a) => return logs::run(a).await,
        Command::Agent(a) => return agent::run(a).await,
        Command::Shim(_) => anyhow::bail!("the shim runs before the async runtime starts"),
        Command::Dev(a) => {
            let dir = match a.data_dir {
                Some(d) => d,
                None => dirs::data_dir().context("no user data directory; pass --data-dir")?.join("berth"),
            };
            (a.common.config(dir), !a.no_agent)
        }
    };
    let data_dir = config.data_dir.clone();
    let region = config.region.clone();
    let mut server = RunningServer::start(config).await.context("starting the berth server")?;
    println!("berth: listening on {}", server.endpoint);
    println!("berth: data in {}; try: aws --profile berth ecs list-clusters", data_dir.display());
    let endpoint = server.endpoint.clone();
    let local_agent = async {
        if !with_agent {
            return std::future::pending().await;
        }
        let creds = agent::credentials(Some(&data_dir.join("admin-credentials.json")), &region)?;
        let config = berth_agent::AgentConfig::new(endpoint, "default".into(), data_dir.join("agent"), creds);
        println!("berth: local agent joining cluster default (data in {})", config.data_dir.display());
        berth_agent::run(config).await.context("the local agent")
    };
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = server.wait() => return r.context("berth server stopped"),
        r = local_agent => return r,
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    server.stop().await.context("stopping the berth server")
}
