//! The berth agent: one per host. It registers the host as a container instance, long-polls
//! the server for the tasks placed on it, and runs them as real containers through
//! `berth-runtime`, reporting every change back with the ECS operations
//! SubmitTaskStateChange and SubmitContainerStateChange.
//!
//! # Behavior
//! - The agent is level-triggered: each poll answer is the instance's full desired state,
//!   and the engine converges running tasks to it. A lost answer or report is repaired by
//!   the next round.
//! - Containers outlive the agent (each has its own shim). A restarted agent re-registers
//!   with the same instance ARN, adopts the containers it finds through its task records,
//!   and reports their true state, including exits that happened while it was away.
//! - When the server is unreachable the agent keeps its tasks running and retries.

pub mod awslogs;
mod config;
mod endpoints;
mod engine;
mod host;
mod registration;

pub use config::{AgentConfig, AgentCredentials, DEFAULT_BRIDGE, DEFAULT_SPOT_WARNING, DEFAULT_SUBNET, DEFAULT_ZONE};
pub use engine::Engine;

use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{PollAssignments, PollAssignmentsRequest};
use berth_client::{ClientError, EcsClient, Signer};

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The runtime could not be prepared (state dirs, runc, CNI, cgroups, images).
    #[error("preparing the runtime: {0}")]
    Runtime(String),
    /// The server refused the registration for good (e.g. the cluster does not exist).
    #[error("registering the container instance: {0}")]
    Registration(ClientError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    /// The task endpoints (credentials, metadata) could not be served.
    #[error(transparent)]
    Endpoints(#[from] endpoints::EndpointError),
    /// The server endpoint or credentials are unusable.
    #[error("client: {0}")]
    Client(ClientError),
}

/// How long to wait before retrying the server after a failure.
const RETRY: Duration = Duration::from_secs(2);

/// Runs the agent until the process ends.
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    let creds = &config.credentials;
    let signer = Signer::new(&creds.access_key_id, &creds.secret_access_key, &creds.region);
    let client = Arc::new(EcsClient::new(&config.server, signer, 4).map_err(AgentError::Client)?);
    let engine = Engine::open(&config, Arc::clone(&client)).await?;
    let instance_arn = registration::register(&config, &client).await?;
    engine.set_instance(&instance_arn);
    tracing::info!(instance = %instance_arn, cluster = %config.cluster, "container instance registered");
    let mut generation = None;
    loop {
        let request = PollAssignmentsRequest {
            cluster: Some(config.cluster.clone()),
            container_instance: Some(instance_arn.clone()),
            generation: generation.clone(),
            wait_seconds: None,
        };
        match client.call::<PollAssignments>(&request).await {
            Ok(answer) => {
                generation = Some(answer.generation);
                engine.reconcile(answer.assignments).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "polling the server failed; tasks keep running, retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
