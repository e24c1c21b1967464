//! The agent channel: DiscoverPollEndpoint and berth's PollAssignments long poll
//! (see `berth_api::agent` for the protocol).

use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{Assignment, PollAssignmentsRequest, PollAssignmentsResponse, MAX_WAIT_SECONDS};
use berth_api::model::{DiscoverPollEndpointRequest, DiscoverPollEndpointResponse};
use berth_api::ApiError;
use berth_store::ListQuery;
use serde::Deserialize;

use crate::clusters;
use crate::container_instances;
use crate::fargate;
use crate::records::RecordError;
use crate::state::{Call, State};
use crate::tasks;

/// DiscoverPollEndpoint: agents poll this same server.
pub async fn discover(
    state: Arc<State>,
    _call: Call,
    req: DiscoverPollEndpointRequest,
) -> Result<DiscoverPollEndpointResponse, ApiError> {
    clusters::require_active(&state, req.cluster.as_deref()).await?;
    Ok(DiscoverPollEndpointResponse {
        endpoint: Some(state.endpoint.clone()),
        telemetry_endpoint: Some(state.endpoint.clone()),
        service_connect_endpoint: None,
    })
}

/// The instance's tasks that are not STOPPED. Records that do not mention the instance id are
/// skipped before they are decoded: every poll of every agent reads the cluster's tasks (a
/// Fargate pool instance's tasks live in every user cluster, so it reads them all).
async fn assigned(state: &State, cluster: &str, instance: &str) -> Result<Vec<Assignment>, ApiError> {
    let prefix = if cluster == fargate::POOL { "task/".to_string() } else { format!("task/{cluster}/") };
    let records = state.store.list(ListQuery::prefix(prefix)).await.map_err(RecordError::from)?;
    let finder = memchr::memmem::Finder::new(instance.as_bytes());
    let mut assignments = Vec::new();
    for r in records.into_iter().filter(|r| !instance.is_empty() && finder.find(&r.value).is_some()) {
        let decode = |source| RecordError::Decode { key: r.key.clone(), source };
        let peek: Placement = serde_json::from_slice(&r.value).map_err(decode)?;
        let arn = tasks::placed_on(peek.capacity.as_deref(), peek.task.container_instance_arn.as_deref(), cluster);
        let on_instance = arn.map(|(_, arn)| container_instances::id_of(arn)) == Some(instance);
        if on_instance && peek.task.last_status.as_deref() != Some("STOPPED") {
            let s: tasks::Stored = serde_json::from_slice(&r.value).map_err(decode)?;
            assignments.push(Assignment { task: s.task, task_definition: s.definition });
        }
    }
    Ok(assignments)
}

/// Just enough of a stored task to tell whether it is one of an instance's assignments.
/// Decoding this skips the rest of the record (its definition, containers and
/// attachments), which the instance's STOPPED tasks, kept an hour and more, would
/// otherwise cost on every poll of every agent.
#[derive(Deserialize)]
struct Placement {
    task: PlacedTask,
    #[serde(default)]
    capacity: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlacedTask {
    #[serde(default)]
    last_status: Option<String>,
    #[serde(default)]
    container_instance_arn: Option<String>,
}

/// PollAssignments: the instance's tasks, at once if they changed since `generation`, else
/// after the next change or the wait.
pub async fn poll(
    state: Arc<State>,
    _call: Call,
    req: PollAssignmentsRequest,
) -> Result<PollAssignmentsResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let instance = container_instances::id_of(req.container_instance.as_deref().unwrap_or_default()).to_string();
    let _heartbeat = state.heartbeats.poll(&instance);
    let mut changes = state.assignments.subscribe();
    if req.generation.as_deref() == Some(state.generation(&changes).as_str()) {
        let wait = Duration::from_secs(u64::from(req.wait_seconds.unwrap_or(MAX_WAIT_SECONDS).min(MAX_WAIT_SECONDS)));
        let _ = tokio::time::timeout(wait, changes.changed()).await;
    }
    let generation = state.generation(&changes);
    let assignments = assigned(&state, &cluster, &instance).await?;
    Ok(PollAssignmentsResponse { generation, assignments })
}
