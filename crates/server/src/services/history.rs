//! Service deployments and service revisions: the history ListServiceDeployments,
//! DescribeServiceDeployments, DescribeServiceRevisions and StopServiceDeployment answer.
//!
//! The controller works on the `Deployment`s in the `Service` shape; this module keeps, in
//! the same record, what ECS reports about each of them after they are gone. [`sync`] runs
//! before every write of a service, so the history always matches the deployments written
//! with it (one CAS write: nothing is recorded that the service does not also show):
//! - a new PRIMARY deployment opens a service deployment (IN_PROGRESS) and a service
//!   revision (what it runs); the revisions of the deployments still running are its sources;
//! - COMPLETED makes it SUCCESSFUL; a FAILED one without rollback is STOPPED with the
//!   breaker's reason; one replaced by a newer deployment before it completed is STOPPED;
//! - a rollback (the circuit breaker's, or StopServiceDeployment's) does not open a new service
//!   deployment: the failed one goes ROLLBACK_REQUESTED / ROLLBACK_IN_PROGRESS, then
//!   ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED as the rollback deployment ends.
//!
//! The newest [`KEPT`] service deployments are kept, with the revisions they name.

use berth_api::model::{CapacityProviderStrategyItem, Deployment, LaunchType, NetworkConfiguration};
use berth_api::model::{
    DeploymentConfiguration, DeploymentRolloutState, Rollback, Service, ServiceDeployment, ServiceDeploymentBrief,
    ServiceDeploymentCircuitBreaker, ServiceDeploymentRollbackMonitorsStatus, ServiceDeploymentStatus, ServiceRevision,
    ServiceRevisionSummary,
};
use berth_api::{Arn, ResourceKind};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::deployments;
use crate::state::now;

/// How many service deployments a service keeps.
pub const KEPT: usize = 50;

const SUPERSEDED: &str = "Superseded by a newer service deployment.";
const DELETED: &str = "The service was deleted.";

/// A service's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Newest first.
    pub deployments: Vec<Entry>,
    pub revisions: Vec<Revision>,
}

/// One service deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The last part of its ARN.
    pub id: String,
    /// The `Deployment` (`ecs-svc/...`) that rolls it out.
    pub deployment: String,
    /// The `Deployment` that rolls it back, once one does.
    pub rollback_deployment: Option<String>,
    /// The revision it deploys.
    pub revision: String,
    /// The revisions running when it started.
    pub sources: Vec<String>,
    pub status: ServiceDeploymentStatus,
    pub status_reason: Option<String>,
    pub created_at: f64,
    pub finished_at: Option<f64>,
    pub stopped_at: Option<f64>,
    pub updated_at: f64,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub rollback: Option<Rollback>,
    /// The last counts of its deployment, shown once that deployment is gone.
    pub counts: Counts,
}

/// Requested, running and pending task counts of a revision's deployment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub requested: i32,
    pub running: i32,
    pub pending: i32,
}

/// What one deployment runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// The last part of its ARN: digits, as ECS's.
    pub id: String,
    pub task_definition: Option<String>,
    pub launch_type: Option<LaunchType>,
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    pub platform_version: Option<String>,
    pub platform_family: Option<String>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub created_at: f64,
}

/// The ARN of a service deployment or revision of service `s`:
/// `arn:aws:ecs:R:A:KIND/CLUSTER/SERVICE/ID`, under the service's own ARN.
fn child_arn(s: &Service, kind: ResourceKind, id: &str) -> String {
    let service = s.service_arn.as_deref().and_then(Arn::parse);
    service.map(|a| Arn { kind, id: format!("{}/{id}", a.id), ..a }.to_string()).unwrap_or_default()
}

fn deployment_arn(s: &Service, id: &str) -> String {
    child_arn(s, ResourceKind::ServiceDeployment, id)
}

fn revision_arn(s: &Service, id: &str) -> String {
    child_arn(s, ResourceKind::ServiceRevision, id)
}

const fn is_final(status: ServiceDeploymentStatus) -> bool {
    matches!(
        status,
        ServiceDeploymentStatus::Successful
            | ServiceDeploymentStatus::Stopped
            | ServiceDeploymentStatus::RollbackSuccessful
            | ServiceDeploymentStatus::RollbackFailed
    )
}

/// Whether StopServiceDeployment may act on a service deployment in `status`.
pub const fn is_stoppable(status: ServiceDeploymentStatus) -> bool {
    matches!(status, ServiceDeploymentStatus::Pending | ServiceDeploymentStatus::InProgress)
}

/// Brings `history` in line with the service's deployments (see the module docs).
pub fn sync(s: &Service, history: &mut History) {
    let at = now();
    let list = s.deployments.clone().unwrap_or_default();
    for d in list.iter().rev() {
        let id = d.id.clone().unwrap_or_default();
        let known =
            history.deployments.iter().any(|e| e.deployment == id || e.rollback_deployment.as_ref() == Some(&id));
        if !known {
            open(s, history, d, &list, at);
        }
    }
    let gone = s.status.as_deref() != Some("ACTIVE");
    for e in history.deployments.iter_mut().filter(|e| !is_final(e.status)) {
        advance(e, &list, gone, at);
    }
    let ids: Vec<&str> = list.iter().filter_map(|d| d.id.as_deref()).collect();
    for e in &mut history.deployments {
        let carrier = e.rollback_deployment.as_deref().unwrap_or(&e.deployment);
        if ids.contains(&carrier) {
            e.counts = counts(list.iter().find(|d| d.id.as_deref() == Some(carrier)));
        }
    }
    history.deployments.truncate(KEPT);
    let named: Vec<String> =
        history.deployments.iter().flat_map(|e| std::iter::once(e.revision.clone()).chain(e.sources.clone())).collect();
    history.revisions.retain(|r| named.contains(&r.id));
}

fn counts(d: Option<&Deployment>) -> Counts {
    d.map_or_else(Counts::default, |d| Counts {
        requested: d.desired_count.unwrap_or(0),
        running: d.running_count.unwrap_or(0),
        pending: d.pending_count.unwrap_or(0),
    })
}

/// A new service deployment for `d`, with a new revision; the ones still in progress are
/// superseded.
fn open(s: &Service, history: &mut History, d: &Deployment, list: &[Deployment], at: f64) {
    let id = d.id.clone().unwrap_or_default();
    let revision = Revision {
        id: rand::rng().random_range(1_000_000_000_000_000_000u64..=9_223_372_036_854_775_807).to_string(),
        task_definition: d.task_definition.clone(),
        launch_type: d.launch_type,
        capacity_provider_strategy: d.capacity_provider_strategy.clone(),
        platform_version: d.platform_version.clone(),
        platform_family: d.platform_family.clone(),
        network_configuration: d.network_configuration.clone(),
        created_at: d.created_at.unwrap_or(at),
    };
    let sources = list
        .iter()
        .filter(|other| other.id != d.id)
        .filter_map(|other| {
            let oid = other.id.as_deref()?;
            history.deployments.iter().find(|e| e.deployment == oid || e.rollback_deployment.as_deref() == Some(oid))
        })
        .map(|e| e.revision.clone())
        .collect();
    for e in history.deployments.iter_mut().filter(|e| !is_final(e.status)) {
        finish(e, ServiceDeploymentStatus::Stopped, Some(SUPERSEDED.into()), at);
    }
    history.deployments.insert(
        0,
        Entry {
            id: Alphanumeric.sample_string(&mut rand::rng(), 21),
            deployment: id,
            rollback_deployment: None,
            revision: revision.id.clone(),
            sources,
            status: ServiceDeploymentStatus::InProgress,
            status_reason: None,
            created_at: d.created_at.unwrap_or(at),
            finished_at: None,
            stopped_at: None,
            updated_at: at,
            deployment_configuration: s.deployment_configuration.clone(),
            rollback: None,
            counts: counts(Some(d)),
        },
    );
    history.revisions.push(revision);
}

fn finish(e: &mut Entry, status: ServiceDeploymentStatus, reason: Option<String>, at: f64) {
    e.status = status;
    e.status_reason = reason.or(e.status_reason.take());
    e.updated_at = at;
    if status == ServiceDeploymentStatus::Stopped {
        e.stopped_at = Some(at);
    } else {
        e.finished_at = Some(at);
    }
}

/// Moves a service deployment on as its deployment (or its rollback's) went.
fn advance(e: &mut Entry, list: &[Deployment], gone: bool, at: f64) {
    let find = |id: &str| list.iter().find(|d| d.id.as_deref() == Some(id));
    if gone {
        return finish(e, ServiceDeploymentStatus::Stopped, Some(DELETED.into()), at);
    }
    if let Some(rollback) = e.rollback_deployment.clone() {
        let Some(d) = find(&rollback) else {
            return finish(e, ServiceDeploymentStatus::RollbackFailed, Some(SUPERSEDED.into()), at);
        };
        match d.rollout_state {
            Some(DeploymentRolloutState::Completed) => finish(e, ServiceDeploymentStatus::RollbackSuccessful, None, at),
            Some(DeploymentRolloutState::Failed) => {
                finish(e, ServiceDeploymentStatus::RollbackFailed, d.rollout_state_reason.clone(), at)
            }
            _ if d.running_count.unwrap_or(0) + d.pending_count.unwrap_or(0) > 0 => {
                e.status = ServiceDeploymentStatus::RollbackInProgress;
                e.updated_at = at;
            }
            _ => {}
        }
        return;
    }
    match find(&e.deployment).map(|d| (d.rollout_state, d.rollout_state_reason.clone())) {
        Some((Some(DeploymentRolloutState::Completed), _)) => finish(e, ServiceDeploymentStatus::Successful, None, at),
        Some((Some(DeploymentRolloutState::Failed), reason)) => finish(e, ServiceDeploymentStatus::Stopped, reason, at),
        Some(_) => {}
        None => finish(e, ServiceDeploymentStatus::Stopped, Some(SUPERSEDED.into()), at),
    }
}

/// Marks the service deployment carried by `failed` as rolled back by the deployment
/// `by`, which runs the revision of `target` (the last COMPLETED deployment).
pub fn rolling_back(history: &mut History, s: &Service, failed: &str, target: &str, by: &str, reason: &str) {
    let at = now();
    let target_revision = history.deployments.iter().find(|e| e.deployment == target).map(|e| e.revision.clone());
    let Some(e) = history.deployments.iter_mut().find(|e| e.deployment == failed) else { return };
    e.rollback_deployment = Some(by.to_string());
    e.status = ServiceDeploymentStatus::RollbackRequested;
    e.status_reason = Some(reason.to_string());
    e.finished_at = None;
    e.updated_at = at;
    e.rollback = Some(Rollback {
        reason: Some(reason.to_string()),
        started_at: Some(at),
        service_revision_arn: target_revision.map(|r| revision_arn(s, &r)),
    });
}

fn summary(s: &Service, revision: &str, counts: Counts) -> ServiceRevisionSummary {
    ServiceRevisionSummary {
        arn: Some(revision_arn(s, revision)),
        requested_task_count: Some(counts.requested),
        running_task_count: Some(counts.running),
        pending_task_count: Some(counts.pending),
        ..Default::default()
    }
}

/// The ListServiceDeployments item.
pub fn brief(s: &Service, e: &Entry) -> ServiceDeploymentBrief {
    ServiceDeploymentBrief {
        service_deployment_arn: Some(deployment_arn(s, &e.id)),
        service_arn: s.service_arn.clone(),
        cluster_arn: s.cluster_arn.clone(),
        started_at: Some(e.created_at),
        created_at: Some(e.created_at),
        finished_at: e.finished_at.or(e.stopped_at),
        target_service_revision_arn: Some(revision_arn(s, &e.revision)),
        status: Some(e.status),
        status_reason: e.status_reason.clone(),
    }
}

/// The DescribeServiceDeployments item; `history` gives the sources' counts.
pub fn full(s: &Service, history: &History, e: &Entry) -> ServiceDeployment {
    let source_counts =
        |rev: &str| history.deployments.iter().find(|o| o.revision == rev).map(|o| o.counts).unwrap_or_default();
    ServiceDeployment {
        service_deployment_arn: Some(deployment_arn(s, &e.id)),
        service_arn: s.service_arn.clone(),
        cluster_arn: s.cluster_arn.clone(),
        created_at: Some(e.created_at),
        started_at: Some(e.created_at),
        finished_at: e.finished_at,
        stopped_at: e.stopped_at,
        updated_at: Some(e.updated_at),
        source_service_revisions: Some(e.sources.iter().map(|r| summary(s, r, source_counts(r))).collect()),
        target_service_revision: Some(summary(s, &e.revision, e.counts)),
        status: Some(e.status),
        status_reason: e.status_reason.clone(),
        deployment_configuration: e.deployment_configuration.clone(),
        rollback: e.rollback.clone(),
        deployment_circuit_breaker: Some(circuit_breaker(s, e)),
        ..Default::default()
    }
}

fn circuit_breaker(s: &Service, e: &Entry) -> ServiceDeploymentCircuitBreaker {
    let config = e.deployment_configuration.clone().unwrap_or_default();
    let (enabled, _) = deployments::circuit_breaker(&config);
    let desired = usize::try_from(e.counts.requested.max(s.desired_count.unwrap_or(0))).unwrap_or(0);
    let failed = s
        .deployments
        .iter()
        .flatten()
        .find(|d| d.id.as_deref() == Some(e.deployment.as_str()))
        .and_then(|d| d.failed_tasks)
        .unwrap_or(0);
    let status = match (enabled, e.status) {
        (false, _) => ServiceDeploymentRollbackMonitorsStatus::Disabled,
        (true, ServiceDeploymentStatus::InProgress | ServiceDeploymentStatus::Pending) => {
            ServiceDeploymentRollbackMonitorsStatus::Monitoring
        }
        (true, ServiceDeploymentStatus::Successful) => ServiceDeploymentRollbackMonitorsStatus::MonitoringComplete,
        (true, _) if e.rollback.is_some() => ServiceDeploymentRollbackMonitorsStatus::Triggered,
        (true, _) => ServiceDeploymentRollbackMonitorsStatus::MonitoringComplete,
    };
    ServiceDeploymentCircuitBreaker {
        status: Some(status),
        failure_count: Some(failed),
        threshold: Some(i32::try_from(deployments::failure_threshold(desired)).unwrap_or(i32::MAX)),
    }
}

/// The DescribeServiceRevisions item.
pub fn revision(s: &Service, r: &Revision) -> ServiceRevision {
    ServiceRevision {
        service_revision_arn: Some(revision_arn(s, &r.id)),
        service_arn: s.service_arn.clone(),
        cluster_arn: s.cluster_arn.clone(),
        task_definition: r.task_definition.clone(),
        capacity_provider_strategy: r.capacity_provider_strategy.clone(),
        launch_type: r.launch_type,
        platform_version: r.platform_version.clone(),
        platform_family: r.platform_family.clone(),
        network_configuration: r.network_configuration.clone(),
        load_balancers: Some(Vec::new()),
        service_registries: Some(Vec::new()),
        created_at: Some(r.created_at),
        ..Default::default()
    }
}
