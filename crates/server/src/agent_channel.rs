//! The agent channel: DiscoverPollEndpoint and berth's PollAssignments long poll
//! (see `berth_api::agent` for the protocol).

use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{Assignment, PollAssignmentsRequest, PollAssignmentsResponse, MAX_WAIT_SECONDS};
use berth_api::model::{DiscoverPollEndpointRequest, DiscoverPollEndpointResponse};
use berth_api::ApiError;

use crate::clusters;
use crate::container_instances;
use crate::pagination::{self, Page};
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
    let page = Page { size: usize::MAX, after: None };
    let (assignments, _) =
        pagination::collect(&*state.store, &format!("task/{cluster}/"), &page, |_, s: tasks::Stored| {
            let on_instance =
                s.task.container_instance_arn.as_deref().map(container_instances::id_of) == Some(&instance);
            let live = s.task.last_status.as_deref() != Some("STOPPED");
            (on_instance && live).then_some(Assignment { task: s.task, task_definition: s.definition })
        })
        .await?;
    Ok(PollAssignmentsResponse { generation, assignments })
}
