//! `berth agent`: join a cluster as a container instance and run its tasks.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_agent::{AgentConfig, AgentCredentials};
use clap::Args;

/// Options of `berth agent` (and of the agent `berth dev` runs).
#[derive(Args, Clone)]
pub struct AgentArgs {
    /// The berth server, `http://HOST:PORT`.
    #[arg(long, env = "BERTH_SERVER")]
    pub server: String,
    /// The cluster to join (the `default` cluster is created if missing, as the ECS agent does).
    #[arg(long, default_value = "default", env = "ECS_CLUSTER")]
    pub cluster: String,
    /// The agent's own data: instance identity, task records, images, container state.
    #[arg(long, env = "BERTH_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Credentials file written by the server (`admin-credentials.json`); else the
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Region to sign requests for.
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
    /// Custom attributes, `name=value,name=value`.
    #[arg(long, value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// The availability zone reported as `ecs.availability-zone`.
    #[arg(long, default_value = berth_agent::DEFAULT_ZONE)]
    pub availability_zone: String,
    /// Bridge for bridge and awsvpc tasks (two agents on one host need different ones).
    #[arg(long, default_value = berth_agent::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// The bridge's subnet.
    #[arg(long, default_value = berth_agent::DEFAULT_SUBNET)]
    pub subnet: String,
    /// Registries reached over plain HTTP besides loopback ones.
    #[arg(long, value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Credentials for a private registry, `host[:port]=user:password` (repeatable);
    /// BERTH_REGISTRY_AUTH takes the same, comma-separated.
    #[arg(long = "registry-auth", env = "BERTH_REGISTRY_AUTH", value_delimiter = ',')]
    pub registry_auth: Vec<String>,
    /// Image pull behaviour: default, always, once or prefer-cached.
    #[arg(long, default_value = "default", env = "ECS_IMAGE_PULL_BEHAVIOR")]
    pub pull_behavior: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

/// Reads the credentials the agent signs with.
pub fn credentials(file: Option<&Path>, region: &str) -> Result<AgentCredentials> {
    let (access_key_id, secret_access_key) = match file {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let c: CredentialsFile =
                serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
            (c.access_key_id, c.secret_access_key)
        }
        None => match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            (Ok(id), Ok(secret)) => (id, secret),
            _ => bail!("no credentials: pass --credentials FILE or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        },
    };
    Ok(AgentCredentials { access_key_id, secret_access_key, region: region.to_string() })
}

impl AgentArgs {
    fn config(&self) -> Result<AgentConfig> {
        let attributes = self
            .attributes
            .iter()
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => bail!("attribute {a:?} is not name=value"),
            })
            .collect::<Result<_>>()?;
        Ok(AgentConfig {
            server: self.server.clone(),
            cluster: self.cluster.clone(),
            data_dir: self.data_dir.clone(),
            credentials: credentials(self.credentials.as_deref(), &self.region)?,
            attributes,
            availability_zone: self.availability_zone.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet.clone(),
            insecure_registries: self.insecure_registries.clone(),
            pull_behavior: self.pull_behavior.clone(),
            registry_credentials: self.registry_auth.iter().map(|a| parse_registry_auth(a)).collect::<Result<_>>()?,
            spot_warning: berth_agent::DEFAULT_SPOT_WARNING,
            // microVM isolation is the managed (Fargate) capacity's; see `FargateArgs`.
            microvm: None,
        })
    }
}

/// `host[:port]=user:password`.
fn parse_registry_auth(a: &str) -> Result<(String, String, String)> {
    let parsed = a.split_once('=').and_then(|(host, cred)| cred.split_once(':').map(|(u, p)| (host, u, p)));
    match parsed {
        Some((host, user, password)) if !host.is_empty() => Ok((host.into(), user.into(), password.into())),
        _ => bail!("registry credentials {a:?} are not host[:port]=user:password"),
    }
}

/// Runs the agent until it fails.
pub async fn run(args: AgentArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    berth_agent::run(args.config()?).await.context("berth agent")
}
