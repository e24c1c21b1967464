//! The agent's reports: SubmitTaskStateChange and SubmitContainerStateChange.
//!
//! Reports may repeat or arrive late (an agent replays them after a restart), so a task's
//! `lastStatus` only moves forward through the ECS lifecycle, and the STOPPED report that
//! releases the instance's resources does so exactly once, in the same transaction.

use std::sync::Arc;

use berth_api::agent::{SubmitTaskDetailsRequest, SubmitTaskDetailsResponse};
use berth_api::model::{
    Attachment, Container, ContainerInstance, ContainerStateChange, HealthStatus, KeyValuePair, NetworkInterface,
    SubmitContainerStateChangeRequest, SubmitContainerStateChangeResponse, SubmitTaskStateChangeRequest,
    SubmitTaskStateChangeResponse, TaskStopCode,
};
use berth_api::ApiError;
use berth_store::{Expect, StoreError, Txn};

use super::{id_of, instance_key, key, Stored, MAX_ATTEMPTS};
use crate::clusters;
use crate::container_instances;
use crate::placement;
use crate::records::{self, RecordError};
use crate::state::{now, Call, State};

/// The ECS task lifecycle, in order.
const LIFECYCLE: &[&str] =
    &["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"];

fn rank(status: &str) -> Option<usize> {
    LIFECYCLE.iter().position(|s| *s == status)
}

/// What ECS reports when an essential container's exit stops the task.
pub const ESSENTIAL_EXITED: &str = "Essential container in task exited";

/// SubmitTaskStateChange: the task's status, its containers', and its timestamps.
pub async fn submit_task_state_change(
    state: Arc<State>,
    _call: Call,
    req: SubmitTaskStateChangeRequest,
) -> Result<SubmitTaskStateChangeResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let status = req.status.clone().unwrap_or_default();
    if rank(&status).is_none() {
        return Err(ApiError::invalid(format!("Invalid task status '{status}'.")));
    }
    let task_key = key(&cluster, id_of(req.task.as_deref().unwrap_or_default()));
    for _ in 0..MAX_ATTEMPTS {
        let (mut stored, version) = records::get::<Stored>(&*state.store, &task_key)
            .await?
            .ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
        let before = stored.task.last_status.clone().unwrap_or_default();
        apply_task_change(&mut stored, &req);
        let mut txn = Txn::new().put(task_key.clone(), records::encode(&stored)?, Expect::Version(version));
        let released = became(&before, &stored, "STOPPED");
        if let Some(ikey) = stored.placed_on(&cluster).map(|(c, a)| instance_key(c, a)) {
            if let Some((mut instance, iv)) = records::get::<ContainerInstance>(&*state.store, &ikey).await? {
                let unchanged = instance.clone();
                count_transition(&mut instance, &before, &stored);
                if instance != unchanged {
                    txn = txn.put(ikey, records::encode(&instance)?, Expect::Version(iv));
                }
            }
        }
        match state.store.commit(txn).await {
            Ok(_) => {
                if let Some((on, arn)) = stored.placed_on(&cluster).filter(|_| released) {
                    let group = stored.task.group.clone().unwrap_or_default();
                    state
                        .placements
                        .release(on, arn, &placement::demand(&stored.reservation, &group, Vec::new()))
                        .await;
                }
                state.notify_assignments();
                return Ok(SubmitTaskStateChangeResponse { acknowledgment: Some("true".into()) });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: task_key }).into())
}

/// Whether the task moved into `status` with this change.
fn became(before: &str, stored: &Stored, status: &str) -> bool {
    before != status && stored.task.last_status.as_deref() == Some(status)
}

/// Moves the instance's pending/running counts (and on STOPPED its resources) with the task.
fn count_transition(instance: &mut ContainerInstance, before: &str, stored: &Stored) {
    let running_rank = rank("RUNNING").unwrap_or(3);
    let was_running = rank(before).is_some_and(|r| r >= running_rank);
    let after = stored.task.last_status.as_deref().unwrap_or_default();
    let dec = |n: Option<i32>| Some(n.unwrap_or(0).saturating_sub(1).max(0));
    if after == "STOPPED" && before != "STOPPED" {
        if was_running {
            instance.running_tasks_count = dec(instance.running_tasks_count);
        } else {
            instance.pending_tasks_count = dec(instance.pending_tasks_count);
        }
        container_instances::reserve(instance, &stored.reservation, -1);
    } else if after == "RUNNING" && !was_running {
        instance.pending_tasks_count = dec(instance.pending_tasks_count);
        instance.running_tasks_count = Some(instance.running_tasks_count.unwrap_or(0) + 1);
    }
}

fn apply_task_change(stored: &mut Stored, req: &SubmitTaskStateChangeRequest) {
    for change in req.containers.as_deref().unwrap_or_default() {
        apply_container_change(&mut stored.task.containers, change);
    }
    let t = &mut stored.task;
    let status = req.status.as_deref().unwrap_or_default();
    let current = t.last_status.as_deref().and_then(rank).unwrap_or(0);
    t.pull_started_at = t.pull_started_at.or(req.pull_started_at);
    t.pull_stopped_at = t.pull_stopped_at.or(req.pull_stopped_at);
    if rank(status).is_none_or(|r| r <= current) {
        return;
    }
    t.last_status = Some(status.to_string());
    t.version = Some(t.version.unwrap_or(0) + 1);
    let at = now();
    match status {
        "RUNNING" => {
            t.started_at = Some(at);
            t.connectivity = Some(berth_api::model::Connectivity::Connected);
            t.connectivity_at = Some(at);
        }
        "STOPPED" => stopped(t, req, at),
        _ => {}
    }
}

/// The STOPPED bookkeeping: desired status, stop code and reason as ECS reports them.
fn stopped(t: &mut berth_api::model::Task, req: &SubmitTaskStateChangeRequest, at: f64) {
    t.desired_status = Some("STOPPED".into());
    t.stopping_at = t.stopping_at.or(Some(at));
    t.execution_stopped_at = req.execution_stopped_at.or(Some(at));
    t.stopped_at = Some(at);
    if t.stop_code.is_none() {
        let reason = req.reason.clone().unwrap_or_else(|| ESSENTIAL_EXITED.to_string());
        t.stop_code = Some(if t.started_at.is_none() {
            TaskStopCode::TaskFailedToStart
        } else {
            TaskStopCode::EssentialContainerExited
        });
        t.stopped_reason = Some(reason);
    }
}

fn apply_container_change(containers: &mut Option<Vec<Container>>, change: &ContainerStateChange) {
    let Some(c) = containers.iter_mut().flatten().find(|c| c.name == change.container_name) else { return };
    let status = change.status.as_deref().unwrap_or_default();
    let forward = rank(status).is_some_and(|r| c.last_status.as_deref().and_then(rank).is_none_or(|cur| r >= cur));
    if forward {
        c.last_status = Some(status.to_string());
    }
    c.exit_code = change.exit_code.or(c.exit_code);
    c.reason = change.reason.clone().or(c.reason.take());
    c.runtime_id = change.runtime_id.clone().or(c.runtime_id.take());
    c.image_digest = change.image_digest.clone().or(c.image_digest.take());
    if change.network_bindings.is_some() {
        c.network_bindings = change.network_bindings.clone();
    }
}

/// SubmitContainerStateChange: one container's status, exit code and bindings.
pub async fn submit_container_state_change(
    state: Arc<State>,
    _call: Call,
    req: SubmitContainerStateChangeRequest,
) -> Result<SubmitContainerStateChangeResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let change = ContainerStateChange {
        container_name: req.container_name.clone(),
        runtime_id: req.runtime_id.clone(),
        exit_code: req.exit_code,
        network_bindings: req.network_bindings.clone(),
        reason: req.reason.clone(),
        status: req.status.clone(),
        image_digest: None,
    };
    let task_key = key(&cluster, id_of(req.task.as_deref().unwrap_or_default()));
    records::update(&*state.store, &task_key, |current: Option<Stored>| {
        let mut stored = current.ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
        apply_container_change(&mut stored.task.containers, &change);
        Ok(records::Decision::Write(stored, ()))
    })
    .await?;
    Ok(SubmitContainerStateChangeResponse { acknowledgment: Some("true".into()) })
}

/// SubmitTaskDetails (berth's agent channel): the task's ENI attachment in awsvpc mode, and
/// container and task health.
pub async fn submit_task_details(
    state: Arc<State>,
    _call: Call,
    req: SubmitTaskDetailsRequest,
) -> Result<SubmitTaskDetailsResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let task_key = key(&cluster, id_of(req.task.as_deref().unwrap_or_default()));
    records::update(&*state.store, &task_key, |current: Option<Stored>| {
        let mut stored = current.ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
        if let Some(ip) = &req.private_ipv4_address {
            attach_eni(&mut stored, ip, req.mac_address.as_deref());
        }
        for h in &req.container_health {
            if let Some(c) = stored.task.containers.iter_mut().flatten().find(|c| c.name.as_deref() == Some(&h.name)) {
                c.health_status = Some(h.health_status);
            }
        }
        stored.task.health_status = Some(task_health(&stored));
        Ok(records::Decision::Write(stored, ()))
    })
    .await?;
    Ok(SubmitTaskDetailsResponse {})
}

/// Reports the task's address as ECS does for awsvpc: an ElasticNetworkInterface
/// attachment, and the address on every container's network interface.
fn attach_eni(stored: &mut Stored, ip: &str, mac: Option<&str>) {
    let id = stored.task.task_arn.as_deref().map(id_of).unwrap_or_default().to_string();
    let precreated =
        stored.task.attachments.iter().flatten().find(|a| a.r#type.as_deref() == Some("ElasticNetworkInterface"));
    let attachment_id = precreated.and_then(|a| a.id.clone()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let subnet = stored.network.iter().flat_map(|n| n.subnets.iter().flatten()).next();
    let detail = |name: &str, value: String| KeyValuePair { name: Some(name.into()), value: Some(value) };
    let mut details = vec![
        detail("subnetId", subnet.cloned().unwrap_or_else(|| "subnet-berth".into())),
        detail("networkInterfaceId", format!("eni-{}", &id[..17.min(id.len())])),
        detail("privateIPv4Address", ip.to_string()),
    ];
    if let Some(mac) = mac {
        details.push(detail("macAddress", mac.to_string()));
    }
    stored.task.attachments = Some(vec![Attachment {
        id: Some(attachment_id.clone()),
        r#type: Some("ElasticNetworkInterface".into()),
        status: Some("ATTACHED".into()),
        details: Some(details),
    }]);
    for c in stored.task.containers.iter_mut().flatten() {
        c.network_interfaces = Some(vec![NetworkInterface {
            attachment_id: Some(attachment_id.clone()),
            private_ipv4_address: Some(ip.to_string()),
            ipv6_address: None,
        }]);
    }
}

/// The task's health as ECS derives it from its essential containers' health checks.
fn task_health(stored: &Stored) -> HealthStatus {
    let essential_checked: Vec<_> = stored
        .definition
        .container_definitions
        .iter()
        .flatten()
        .filter(|d| d.essential.unwrap_or(true) && d.health_check.is_some())
        .filter_map(|d| stored.task.containers.iter().flatten().find(|c| c.name == d.name))
        .map(|c| c.health_status.unwrap_or(HealthStatus::Unknown))
        .collect();
    if essential_checked.contains(&HealthStatus::Unhealthy) {
        HealthStatus::Unhealthy
    } else if !essential_checked.is_empty() && essential_checked.iter().all(|h| *h == HealthStatus::Healthy) {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unknown
    }
}
