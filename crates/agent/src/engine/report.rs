//! Reporting task and container state to the server, retried until it is accepted.

use std::time::Duration;

use berth_api::agent::{SubmitTaskDetails, SubmitTaskDetailsRequest};
use berth_api::model::{ops, ContainerStateChange, NetworkBinding, SubmitTaskStateChangeRequest, TransportProtocol};
use berth_api::Operation;
use berth_client::ClientError;
use berth_runtime::network::{PortBinding, Protocol};

use super::Shared;

/// Now, as the task metadata endpoint writes times (RFC 3339, nanoseconds, UTC).
pub fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One task state report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub status: String,
    pub reason: Option<String>,
    pub containers: Vec<ContainerStateChange>,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub execution_stopped_at: Option<f64>,
}

/// Sends `report` for `task_arn`.
pub async fn send(shared: &Shared, task_arn: &str, report: Report) {
    let request = SubmitTaskStateChangeRequest {
        cluster: Some(cluster_of(shared, task_arn)),
        task: Some(task_arn.to_string()),
        status: Some(report.status.clone()),
        reason: report.reason,
        containers: Some(report.containers),
        pull_started_at: report.pull_started_at,
        pull_stopped_at: report.pull_stopped_at,
        execution_stopped_at: report.execution_stopped_at,
        ..Default::default()
    };
    submit::<ops::SubmitTaskStateChange>(shared, task_arn, &request).await;
}

/// Sends what ECS's state changes cannot carry: the task's address, container health.
pub async fn send_details(shared: &Shared, task_arn: &str, mut details: SubmitTaskDetailsRequest) {
    details.cluster = Some(cluster_of(shared, task_arn));
    details.task = Some(task_arn.to_string());
    submit::<SubmitTaskDetails>(shared, task_arn, &details).await;
}

/// The cluster a task belongs to, from its ARN (`task/CLUSTER/ID`): the agent's own, except
/// on Fargate capacity, whose tasks live in their users' clusters.
pub(crate) fn cluster_of(shared: &Shared, task_arn: &str) -> String {
    berth_api::Arn::parse(task_arn)
        .and_then(|a| a.id.split_once('/').map(|(cluster, _)| cluster.to_string()))
        .unwrap_or_else(|| shared.cluster.clone())
}

/// Calls `O`, retrying while the server is unreachable or failing; a call the server
/// refuses (4xx) is logged and dropped, since repeating it cannot help.
async fn submit<O: Operation>(shared: &Shared, task_arn: &str, request: &O::Input)
where
    O::Input: serde::Serialize,
    O::Output: serde::de::DeserializeOwned,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match shared.client.call::<O>(request).await {
            Ok(_) => return,
            Err(ClientError::Api { status, ref message, .. }) if status < 500 => {
                tracing::warn!(task = task_arn, %message, "the server refused a state report");
                return;
            }
            Err(e) => {
                tracing::warn!(task = task_arn, error = %e, "state report failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// ECS `networkBindings` for the runtime's port bindings.
pub fn bindings(ports: &[PortBinding]) -> Vec<NetworkBinding> {
    ports
        .iter()
        .map(|p| NetworkBinding {
            bind_ip: Some(p.bind_ip.clone()),
            container_port: Some(i32::from(p.container_port)),
            host_port: Some(i32::from(p.host_port)),
            protocol: Some(match p.protocol {
                Protocol::Tcp => TransportProtocol::Tcp,
                Protocol::Udp => TransportProtocol::Udp,
            }),
            ..Default::default()
        })
        .collect()
}

/// Now, in epoch seconds.
pub fn now() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}
