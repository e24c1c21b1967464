//! berth's agent channel: the one operation berth adds to the ECS API.
//!
//! An agent long-polls `BerthAgentV1.PollAssignments` (signed like any AWS JSON 1.1 call)
//! for the full desired state of its container instance: every task placed on it that is
//! not yet STOPPED, with the definition it runs. The answer comes at once when anything
//! changed since the generation the agent last saw, else when something changes or the
//! wait ends. The agent reports back through the ECS operations SubmitTaskStateChange and
//! SubmitContainerStateChange, plus `BerthAgentV1.SubmitTaskDetails` for what those have no
//! member for (a task's own address, container health), and fetches its tasks' role
//! credentials with `BerthAgentV1.GetTaskCredentials` and their Secrets Manager references
//! (read as the execution role) with `BerthAgentV1.GetTaskSecrets`. Full state, not deltas, keeps both sides level-triggered:
//! a lost answer is repaired by the next one.

use serde::{Deserialize, Serialize};

use crate::model::{Task, TaskDefinition};
use crate::validate::{Validate, Validator};
use crate::Operation;

/// The `X-Amz-Target` prefix of agent-channel operations.
pub const AGENT_TARGET_PREFIX: &str = "BerthAgentV1.";

/// The longest a poll waits for a change.
pub const MAX_WAIT_SECONDS: u32 = 20;

/// PollAssignments input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollAssignmentsRequest {
    /// The cluster of the instance.
    pub cluster: Option<String>,
    /// The instance's ARN or id.
    pub container_instance: Option<String>,
    /// The generation of the last answer seen; absent on the first poll.
    pub generation: Option<String>,
    /// How long to wait for a change (at most [`MAX_WAIT_SECONDS`]).
    pub wait_seconds: Option<u32>,
}

impl Validate for PollAssignmentsRequest {
    fn validate(&self, v: &mut Validator) {
        if self.container_instance.is_none() {
            v.missing("containerInstance");
        }
    }
}

/// One task placed on the instance, with what it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The task as the server knows it (desiredStatus says what to do).
    pub task: Task,
    /// The definition it runs.
    pub task_definition: TaskDefinition,
}

/// PollAssignments output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollAssignmentsResponse {
    /// Pass back as `generation` in the next poll.
    pub generation: String,
    /// Every task on the instance that is not STOPPED.
    pub assignments: Vec<Assignment>,
}

/// The PollAssignments operation.
#[derive(Debug, Clone, Copy)]
pub struct PollAssignments;

impl Operation for PollAssignments {
    const TARGET_PREFIX: &'static str = AGENT_TARGET_PREFIX;
    const NAME: &'static str = "PollAssignments";
    type Input = PollAssignmentsRequest;
    type Output = PollAssignmentsResponse;
}

/// SubmitTaskDetails input: what the agent knows of a task that ECS's own state-change
/// operations have no member for — the task's network address (reported as an
/// ElasticNetworkInterface attachment in awsvpc mode) and container health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTaskDetailsRequest {
    /// The task's cluster.
    pub cluster: Option<String>,
    /// The task's ARN or id.
    pub task: Option<String>,
    /// The task's own address (awsvpc).
    pub private_ipv4_address: Option<String>,
    /// The MAC address of the task's interface (awsvpc).
    pub mac_address: Option<String>,
    /// Health of the containers that have a health check.
    #[serde(default)]
    pub container_health: Vec<ContainerHealth>,
}

/// One container's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerHealth {
    /// The container's name.
    pub name: String,
    /// Its health.
    pub health_status: crate::model::HealthStatus,
}

impl Validate for SubmitTaskDetailsRequest {
    fn validate(&self, v: &mut Validator) {
        if self.task.is_none() {
            v.missing("task");
        }
    }
}

/// SubmitTaskDetails output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTaskDetailsResponse {}

/// The SubmitTaskDetails operation.
#[derive(Debug, Clone, Copy)]
pub struct SubmitTaskDetails;

impl Operation for SubmitTaskDetails {
    const TARGET_PREFIX: &'static str = AGENT_TARGET_PREFIX;
    const NAME: &'static str = "SubmitTaskDetails";
    type Input = SubmitTaskDetailsRequest;
    type Output = SubmitTaskDetailsResponse;
}

/// GetTaskCredentials input: the agent asks for the temporary credentials of the task
/// role of a task placed on its own instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskCredentialsRequest {
    /// The task's cluster.
    pub cluster: Option<String>,
    /// The asking agent's container instance (ARN or id): the task must be placed on it.
    pub container_instance: Option<String>,
    /// The task's ARN or id.
    pub task: Option<String>,
}

impl Validate for GetTaskCredentialsRequest {
    fn validate(&self, v: &mut Validator) {
        if self.container_instance.is_none() {
            v.missing("containerInstance");
        }
        if self.task.is_none() {
            v.missing("task");
        }
    }
}

/// GetTaskCredentials output: a role session's credentials, as the credentials endpoint
/// serves them to the task's containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskCredentialsResponse {
    /// The task role.
    pub role_arn: String,
    /// `ASIA...`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they expire (ISO 8601, UTC).
    pub expiration: String,
}

/// The GetTaskCredentials operation.
#[derive(Debug, Clone, Copy)]
pub struct GetTaskCredentials;

impl Operation for GetTaskCredentials {
    const TARGET_PREFIX: &'static str = AGENT_TARGET_PREFIX;
    const NAME: &'static str = "GetTaskCredentials";
    type Input = GetTaskCredentialsRequest;
    type Output = GetTaskCredentialsResponse;
}

/// GetTaskSecrets input: the same members as GetTaskCredentials (a task placed on the
/// asking agent's instance).
pub type GetTaskSecretsRequest = GetTaskCredentialsRequest;

/// GetTaskSecrets output: what a task's Secrets Manager references resolve to, read as its
/// execution role. Never logged (its `Debug` shows names only).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskSecretsResponse {
    /// One entry per container that has `secrets` or `repositoryCredentials`.
    pub containers: Vec<ContainerSecrets>,
}

/// One container's resolved secrets.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecrets {
    /// The container's name.
    pub container_name: String,
    /// `secrets`: variable name and value.
    #[serde(default)]
    pub environment: Vec<(String, String)>,
    /// `repositoryCredentials`: the username and password for its image's registry.
    pub registry_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for GetTaskSecretsResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.containers.iter().map(|c| &c.container_name)).finish()
    }
}

impl std::fmt::Debug for ContainerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.environment.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ContainerSecrets")
            .field("container_name", &self.container_name)
            .field("environment", &names)
            .field("registry_credentials", &self.registry_credentials.is_some())
            .finish()
    }
}

/// Whether a container has secrets its agent must ask for: `secrets`, or
/// `repositoryCredentials`.
pub fn needs_secrets(c: &crate::model::ContainerDefinition) -> bool {
    c.repository_credentials.as_ref().is_some_and(|r| r.credentials_parameter.is_some())
        || c.secrets.as_ref().is_some_and(|s| !s.is_empty())
}

/// The GetTaskSecrets operation.
#[derive(Debug, Clone, Copy)]
pub struct GetTaskSecrets;

impl Operation for GetTaskSecrets {
    const TARGET_PREFIX: &'static str = AGENT_TARGET_PREFIX;
    const NAME: &'static str = "GetTaskSecrets";
    type Input = GetTaskSecretsRequest;
    type Output = GetTaskSecretsResponse;
}
