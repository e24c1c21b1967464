//! berth's agent channel: the one operation berth adds to the ECS API.
//!
//! An agent long-polls `BerthAgentV1.PollAssignments` (signed like any AWS JSON 1.1 call)
//! for the full desired state of its container instance: every task placed on it that is
//! not yet STOPPED, with the definition it runs. The answer comes at once when anything
//! changed since the generation the agent last saw, else when something changes or the
//! wait ends. The agent reports back through the ECS operations SubmitTaskStateChange and
//! SubmitContainerStateChange. Full state, not deltas, keeps both sides level-triggered:
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
