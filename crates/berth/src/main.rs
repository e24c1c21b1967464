//! The one berth binary: `berth server` runs the control plane, `berth dev` runs
//! everything a newcomer needs on one machine with its data in one directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_server::{Config, RunningServer, ServiceTiming, DEFAULT_LISTEN, FARGATE_POOL};
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
    /// Boot probe microVMs and print each boot time (scripts/bench-microvm).
    #[command(hide = true)]
    MicrovmBoot(MicrovmBootArgs),
}

#[derive(Args)]
struct MicrovmBootArgs {
    /// Where the initramfs is built and cached.
    #[arg(long)]
    cache_dir: PathBuf,
    #[arg(long, default_value = "kvm")]
    accel: berth_runtime::microvm::Accel,
    /// How many guests to boot, one after another.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

/// Prints `boot_ms N` for each probe guest: qemu's spawn to the guest init's READY line.
fn microvm_boot(a: MicrovmBootArgs) -> Result<()> {
    let (vm, first) =
        berth_runtime::microvm::MicroVm::prepare(&a.cache_dir, a.accel).context("preparing the microVM")?;
    println!("boot_ms {}", first.as_millis());
    for _ in 1..a.runs {
        println!("boot_ms {}", vm.probe().context("booting a probe microVM")?.as_millis());
    }
    Ok(())
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
    /// Run Fargate capacity on this host: a managed agent that runs FARGATE tasks.
    #[arg(long)]
    fargate_capacity: bool,
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
    /// Run no Fargate capacity (FARGATE tasks then fail to place).
    #[arg(long)]
    no_fargate: bool,
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
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    fargate: FargateArgs,
}

/// Where the Fargate capacity's tasks get their addresses (apart from the local agent's).
#[derive(Args, Clone)]
struct FargateArgs {
    /// Bridge of the Fargate capacity's task network namespaces.
    #[arg(long, default_value = "berthf0", env = "BERTH_FARGATE_BRIDGE")]
    fargate_bridge: String,
    /// Its IPv4 subnet.
    #[arg(long, default_value = "10.213.254.0/24", env = "BERTH_FARGATE_SUBNET")]
    fargate_subnet: String,
    /// Seconds an interrupted FARGATE_SPOT task has between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 120, env = "BERTH_FARGATE_SPOT_WARNING")]
    fargate_spot_warning: u64,
    /// How Fargate tasks are isolated: `namespace` (their own namespaces and cgroup) or
    /// `microvm` (each task in its own qemu microVM; see docs/microvm.md).
    #[arg(long, default_value = "namespace", value_parser = ["namespace", "microvm"], env = "BERTH_ISOLATION")]
    isolation: String,
    /// The microVMs' accelerator: `kvm` (probed at start-up: berth refuses to start when
    /// KVM cannot run a guest) or `tcg` (emulation: for tests and hosts without usable KVM).
    #[arg(long, default_value = "kvm", env = "BERTH_MICROVM_ACCEL")]
    microvm_accel: berth_runtime::microvm::Accel,
}

impl FargateArgs {
    /// With `--isolation microvm`: qemu, the guest kernel and initramfs, after a probe boot.
    fn microvm(&self, data_dir: &std::path::Path) -> Result<Option<berth_runtime::microvm::MicroVm>> {
        if self.isolation != "microvm" {
            return Ok(None);
        }
        let (vm, boot) = berth_runtime::microvm::MicroVm::prepare(&data_dir.join("microvm"), self.microvm_accel)
            .context("--isolation microvm")?;
        println!(
            "berth: microVM isolation ({:?}): a probe guest booted in {} ms",
            self.microvm_accel,
            boot.as_millis()
        );
        Ok(Some(vm))
    }
}

/// The service controller's clocks, in seconds.
#[derive(Args)]
struct ServiceArgs {
    /// Silence (no agent poll) after which an instance shows `agentConnected: false`.
    #[arg(long, default_value_t = 60.0, env = "BERTH_AGENT_DISCONNECT_AFTER")]
    agent_disconnect_after: f64,
    /// Silence after which a disconnected instance's service tasks are replaced elsewhere.
    #[arg(long, default_value_t = 180.0, env = "BERTH_INSTANCE_LOST_AFTER")]
    instance_lost_after: f64,
    /// How long a task without container health checks runs before it counts as healthy.
    #[arg(long, default_value_t = 40.0, env = "BERTH_TASK_HEALTHY_AFTER")]
    task_healthy_after: f64,
    /// The first delay before a service restarts tasks that keep failing (doubles each time).
    #[arg(long, default_value_t = 10.0, env = "BERTH_RESTART_BACKOFF")]
    restart_backoff: f64,
    /// The longest such delay.
    #[arg(long, default_value_t = 900.0, env = "BERTH_RESTART_BACKOFF_MAX")]
    restart_backoff_max: f64,
}

impl ServiceArgs {
    fn timing(&self) -> Result<ServiceTiming> {
        let secs = |name: &str, v: f64| {
            std::time::Duration::try_from_secs_f64(v).with_context(|| format!("--{name} must be a number of seconds"))
        };
        Ok(ServiceTiming {
            agent_disconnect_after: secs("agent-disconnect-after", self.agent_disconnect_after)?,
            instance_lost_after: secs("instance-lost-after", self.instance_lost_after)?,
            task_healthy_after: secs("task-healthy-after", self.task_healthy_after)?,
            restart_backoff: secs("restart-backoff", self.restart_backoff)?,
            restart_backoff_max: secs("restart-backoff-max", self.restart_backoff_max)?,
            ..ServiceTiming::default()
        })
    }
}

impl CommonArgs {
    fn config(self, data_dir: PathBuf) -> Result<Config> {
        Ok(Config {
            data_dir,
            listen: self.listen,
            services: self.services.timing()?,
            account_id: self.account_id,
            region: self.region,
            write_profile: !self.no_profile,
        })
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
    if let Command::MicrovmBoot(a) = cli.command {
        return microvm_boot(a);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    let (config, with_agent, fargate) = match command {
        Command::Server(a) => {
            let fargate = a.fargate_capacity.then(|| a.common.fargate.clone());
            (a.common.config(a.data_dir)?, false, fargate)
        }
        Command::Image(a) => return image::run(a).await,
        Command::Logs(a) => return logs::run(a).await,
        Command::Agent(a) => return agent::run(a).await,
        Command::Shim(_) | Command::MicrovmBoot(_) => {
            anyhow::bail!("this command runs before the async runtime starts")
        }
        Command::Dev(a) => {
            let dir = match a.data_dir {
                Some(d) => d,
                None => dirs::data_dir().context("no user data directory; pass --data-dir")?.join("berth"),
            };
            let fargate = (!a.no_fargate && !a.no_agent).then(|| a.common.fargate.clone());
            (a.common.config(dir)?, !a.no_agent, fargate)
        }
    };
    let data_dir = config.data_dir.clone();
    let region = config.region.clone();
    let microvm = match &fargate {
        Some(f) => f.microvm(&data_dir.join("fargate"))?,
        None => None,
    };
    let mut server = RunningServer::start(config).await.context("starting the berth server")?;
    println!("berth: listening on {}", server.endpoint);
    println!("berth: data in {}; try: aws --profile berth ecs list-clusters", data_dir.display());
    let endpoint = server.endpoint.clone();
    let local_agent = async {
        if !with_agent {
            return std::future::pending().await;
        }
        let creds = agent::credentials(Some(&data_dir.join("admin-credentials.json")), &region)?;
        let config = berth_agent::AgentConfig::new(endpoint.clone(), "default".into(), data_dir.join("agent"), creds);
        println!("berth: local agent joining cluster default (data in {})", config.data_dir.display());
        berth_agent::run(config).await.context("the local agent")
    };
    let fargate_capacity = async {
        let Some(f) = fargate else { return std::future::pending().await };
        let creds = agent::credentials(Some(&data_dir.join("admin-credentials.json")), &region)?;
        let mut config =
            berth_agent::AgentConfig::new(endpoint.clone(), FARGATE_POOL.into(), data_dir.join("fargate"), creds);
        config.bridge = f.fargate_bridge;
        config.subnet = f.fargate_subnet;
        config.spot_warning = std::time::Duration::from_secs(f.fargate_spot_warning);
        config.microvm = microvm;
        println!(
            "berth: Fargate capacity on {} {} (data in {})",
            config.bridge,
            config.subnet,
            config.data_dir.display()
        );
        berth_agent::run(config).await.context("the Fargate capacity")
    };
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = server.wait() => return r.context("berth server stopped"),
        r = local_agent => return r,
        r = fargate_capacity => return r,
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    server.stop().await.context("stopping the berth server")
}
