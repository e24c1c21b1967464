//! `berth image ...`: the agent's image store from the command line: load archives, list,
//! pull, and build-and-push a one-layer image from a directory (what the end-to-end tests use
//! to put busybox images into a loopback registry).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_runtime::images::{push_rootfs, ImageConfig, ImageStore, ImageStoreConfig, PullPolicy, RegistryAuth};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ImageArgs {
    /// Directory for berth's data; the agent's images are under `<data-dir>/agent/images`
    /// (default: $XDG_DATA_HOME/berth or ~/.local/share/berth).
    #[arg(long, env = "BERTH_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load a `docker save` tarball or an OCI image layout (directory or tar) into the store.
    Load {
        /// The archive.
        file: PathBuf,
    },
    /// List the images in the store.
    List,
    /// Pull an image from a registry into the store.
    Pull {
        /// `host[:port]/repo[:tag|@sha256:...]`, or a Docker Hub name.
        reference: String,
        /// ECS_IMAGE_PULL_BEHAVIOR: default, always, once or prefer-cached.
        #[arg(long, default_value = "always")]
        policy: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Build a one-layer image from a directory and push it to a registry (plain HTTP for
    /// loopback). Prints the manifest digest.
    PushRootfs(PushRootfsArgs),
}

#[derive(Args)]
struct RegistryArgs {
    /// Registry user name (basic or token auth).
    #[arg(long, env = "BERTH_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password.
    #[arg(long, env = "BERTH_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A registry (`host:port` or `host`) to reach over plain HTTP; loopback ones always are.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
}

impl RegistryArgs {
    fn auth(&self) -> Result<Option<RegistryAuth>> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok(Some(RegistryAuth { username: u.clone(), password: p.clone() })),
            (None, None) => Ok(None),
            _ => bail!("--username and --password go together"),
        }
    }
}

#[derive(Args)]
struct PushRootfsArgs {
    /// The directory whose contents are the image's file system.
    dir: PathBuf,
    /// Where to push: `host[:port]/repo:tag`.
    reference: String,
    /// ENTRYPOINT as a JSON array, e.g. '["/bin/sh","-c"]'.
    #[arg(long)]
    entrypoint: Option<String>,
    /// CMD as a JSON array, e.g. '["echo","hi"]'.
    #[arg(long)]
    cmd: Option<String>,
    /// An ENV entry, KEY=value (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// WORKDIR.
    #[arg(long)]
    workdir: Option<String>,
    /// USER (name, uid or uid:gid).
    #[arg(long)]
    user: Option<String>,
    /// An EXPOSE entry, e.g. 8080/tcp (repeatable).
    #[arg(long = "expose")]
    expose: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn json_list(flag: &str, value: &Option<String>) -> Result<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) => {
            serde_json::from_str(v).with_context(|| format!("--{flag} must be a JSON array of strings, got {v}"))
        }
    }
}

fn open_store(data_dir: Option<PathBuf>, insecure_registries: Vec<String>) -> Result<ImageStore> {
    let data_dir = match data_dir {
        Some(d) => d,
        None => dirs::data_dir().context("no user data directory; pass --data-dir")?.join("berth"),
    };
    let root = data_dir.join("agent").join("images");
    let config = ImageStoreConfig { insecure_registries, ..Default::default() };
    ImageStore::open_with(&root, config).with_context(|| format!("opening the image store {}", root.display()))
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

pub async fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Load { file } => {
            let store = open_store(args.data_dir, Vec::new())?;
            let path = Path::new(&file).to_path_buf();
            let images = tokio::task::spawn_blocking(move || store.load_archive(&path))
                .await?
                .with_context(|| format!("loading {}", file.display()))?;
            for image in images {
                println!("Loaded image: {} ({})", image.reference, image.manifest_digest);
            }
        }
        ImageCommand::List => {
            let store = open_store(args.data_dir, Vec::new())?;
            println!("{:<60} {:<14} {:<14} LAYERS", "REFERENCE", "DIGEST", "IMAGE ID");
            for image in store.list()? {
                let (digest, id) = (short(&image.manifest_digest), short(&image.id));
                println!("{:<60} {digest:<14} {id:<14} {}", image.reference, image.layers.len());
            }
        }
        ImageCommand::Pull { reference, policy, registry } => {
            let policy = PullPolicy::from_ecs(&policy)
                .with_context(|| format!("--policy {policy}: expected default, always, once or prefer-cached"))?;
            let auth = registry.auth()?;
            let store = open_store(args.data_dir, registry.insecure_registries)?;
            let image = store.pull(&reference, auth.as_ref(), policy).await?;
            println!("{} {}", image.reference, image.manifest_digest);
        }
        ImageCommand::PushRootfs(a) => {
            let config = ImageConfig {
                entrypoint: json_list("entrypoint", &a.entrypoint)?,
                cmd: json_list("cmd", &a.cmd)?,
                env: a.env,
                working_dir: a.workdir,
                user: a.user,
                exposed_ports: a.expose,
                stop_signal: None,
            };
            let auth = a.registry.auth()?;
            let digest = push_rootfs(&a.dir, &a.reference, &config, auth.as_ref(), &a.registry.insecure_registries)
                .await
                .with_context(|| format!("pushing {} as {}", a.dir.display(), a.reference))?;
            eprintln!("berth: pushed {} as {}@{digest}", a.dir.display(), a.reference);
            println!("{digest}");
        }
    }
    Ok(())
}
