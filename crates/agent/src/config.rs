//! The agent's configuration.

use std::path::PathBuf;

/// The access key the agent signs with (the agent authenticates like any AWS client).
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Region to sign for.
    pub region: String,
}

/// What one agent needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's endpoint, `http://HOST:PORT`.
    pub server: String,
    /// The cluster to join.
    pub cluster: String,
    /// The agent's own state: instance identity, task records, images, container state.
    pub data_dir: PathBuf,
    /// How to sign requests.
    pub credentials: AgentCredentials,
    /// Custom attributes (`name=value`) besides the standard `ecs.*` ones.
    pub attributes: Vec<(String, String)>,
    /// The availability zone reported as `ecs.availability-zone`.
    pub availability_zone: String,
    /// The bridge for bridge/awsvpc tasks; two agents on one host need different ones.
    pub bridge: String,
    /// The bridge's IPv4 subnet.
    pub subnet: String,
    /// Registries reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// `ECS_IMAGE_PULL_BEHAVIOR`: default, always, once or prefer-cached.
    pub pull_behavior: String,
    /// Registry credentials (`host[:port]`, user name, password) the agent pulls with.
    pub registry_credentials: Vec<(String, String, String)>,
    /// How long a task's containers have between SIGTERM and SIGKILL when the server
    /// interrupts a FARGATE_SPOT task (two minutes, as on Fargate).
    pub spot_warning: std::time::Duration,
    /// Run every task in its own microVM (`--isolation microvm`, the Fargate capacity only).
    pub microvm: Option<berth_runtime::microvm::MicroVm>,
}

/// The bridge a single agent on a host uses.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The subnet of [`DEFAULT_BRIDGE`].
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";
/// The warning a Spot task gets before it is killed.
pub const DEFAULT_SPOT_WARNING: std::time::Duration = std::time::Duration::from_secs(120);
/// The availability zone reported when none is configured.
pub const DEFAULT_ZONE: &str = "local-1a";

impl AgentConfig {
    /// A configuration with the defaults for everything but where and who.
    pub fn new(server: String, cluster: String, data_dir: PathBuf, credentials: AgentCredentials) -> Self {
        Self {
            server,
            cluster,
            data_dir,
            credentials,
            attributes: Vec::new(),
            availability_zone: DEFAULT_ZONE.into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.into(),
            insecure_registries: Vec::new(),
            pull_behavior: "default".into(),
            registry_credentials: Vec::new(),
            spot_warning: DEFAULT_SPOT_WARNING,
            microvm: None,
        }
    }
}
