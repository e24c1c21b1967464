//! The task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`): `/v4/<container>` answers
//! the container, `/task` the task with all its containers, `/taskWithTags` the task with
//! its tags, in the shapes the ECS documentation gives. A Fargate task's `/task` also has
//! `EphemeralStorageMetrics`, measured on its file system at each request.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{error, json, peer, AppState, Container, Peer, TaskView};

/// `/v4/<container>/task`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskMetadata {
    pub cluster: String,
    #[serde(rename = "TaskARN")]
    pub task_arn: String,
    pub family: String,
    pub revision: String,
    pub desired_status: String,
    pub known_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<String>,
    pub availability_zone: String,
    pub launch_type: String,
    pub containers: Vec<ContainerMetadata>,
    /// Fargate tasks only, as on Fargate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_metrics: Option<EphemeralStorageMetrics>,
    /// `/taskWithTags` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_tags: Option<BTreeMap<String, String>>,
}

/// A task's ephemeral storage in MiB (the ECS agent's `Utilized` and `Reserved`, whole MiB):
/// what its files take, and the size they can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageMetrics {
    pub utilized: u64,
    pub reserved: u64,
}

impl From<berth_runtime::storage::Usage> for EphemeralStorageMetrics {
    fn from(u: berth_runtime::storage::Usage) -> Self {
        Self { utilized: u.used_bytes >> 20, reserved: u.size_bytes >> 20 }
    }
}

/// CPU and memory limits: vCPUs and MiB for a task, CPU units and MiB for a container.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limits {
    #[serde(rename = "CPU", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
}

/// `/v4/<container>`, and each of `/task`'s `Containers`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerMetadata {
    pub docker_id: String,
    pub name: String,
    pub docker_name: String,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub desired_status: String,
    pub known_status: String,
    pub limits: Limits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_options: Option<BTreeMap<String, String>>,
    #[serde(rename = "ContainerARN")]
    pub container_arn: String,
    pub networks: Vec<Network>,
    pub snapshotter: String,
}

/// One of a container's networks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Network {
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    #[serde(rename = "IPv4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<String>,
    #[serde(rename = "AttachmentIndex", skip_serializing_if = "Option::is_none")]
    pub attachment_index: Option<u32>,
    #[serde(rename = "MACAddress", skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(rename = "IPv4SubnetCIDRBlock", skip_serializing_if = "Option::is_none")]
    pub ipv4_subnet_cidr_block: Option<String>,
    #[serde(rename = "SubnetGatewayIpv4Address", skip_serializing_if = "Option::is_none")]
    pub subnet_gateway_ipv4_address: Option<String>,
}

/// The task that holds container `id`, if the request may see it.
pub(super) fn lookup(app: &super::App, from: Peer, id: &str) -> Option<TaskView> {
    app.registry.find(peer(from), |v| v.metadata.containers.iter().any(|c| c.docker_id == id))
}

pub(super) fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "NotFound", &format!("V4 container metadata handler: unable to find container {id}"))
}

pub(super) async fn container(State(app): AppState, from: Peer, id: Container) -> Response {
    let found = lookup(&app, from, &id.0).and_then(|v| v.metadata.containers.into_iter().find(|c| c.docker_id == id.0));
    found.map_or_else(|| not_found(&id.0), |c| json(StatusCode::OK, &c))
}

pub(super) async fn task(State(app): AppState, from: Peer, id: Container) -> Response {
    lookup(&app, from, &id.0).map_or_else(|| not_found(&id.0), |v| json(StatusCode::OK, &measured(v)))
}

pub(super) async fn task_with_tags(State(app): AppState, from: Peer, id: Container) -> Response {
    let Some(view) = lookup(&app, from, &id.0) else { return not_found(&id.0) };
    let tags = view.tags.iter().filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default())));
    let task_tags = Some(tags.collect());
    json(StatusCode::OK, &TaskMetadata { task_tags, ..measured(view) })
}

/// The task's metadata with its storage measured now (none when it has no storage of its
/// own, or it cannot be measured).
fn measured(view: TaskView) -> TaskMetadata {
    let usage = view.storage.as_deref().map(berth_runtime::storage::usage);
    let ephemeral_storage_metrics = match usage {
        Some(Ok(u)) => Some(u.into()),
        Some(Err(e)) => {
            tracing::warn!(task = %view.metadata.task_arn, error = %e, "measuring the task's ephemeral storage");
            None
        }
        None => None,
    };
    TaskMetadata { ephemeral_storage_metrics, ..view.metadata }
}
