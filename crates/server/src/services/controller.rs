//! The service controller: a level-triggered loop that converges every service's tasks to
//! what the service asks for.
//!
//! Behavior: each pass reads the services, their tasks (found by `group: service:NAME` and
//! `startedBy: DEPLOYMENT`), the instances and task protections from the store, and decides
//! afresh: mark silent instances disconnected, stop tasks of lost instances, run the circuit
//! breaker, stop unhealthy tasks, start missing tasks and stop extra or replaced ones within
//! the deployment bounds, then record counts, rollout states and events. Nothing lives only
//! in memory, so a pass interrupted by a crash is simply redone by the next one. A pass runs
//! on every tick and soon after any task or service change.
//!
//! Limitations: health means RUNNING and, for tasks with container health checks, HEALTHY;
//! tasks without checks count as healthy `task_healthy_after` after they start (ECS: 40 s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_api::model::{
    ContainerInstance, Deployment, DeploymentRolloutState, HealthStatus, PlacementConstraintType, PropagateTags,
    SchedulingStrategy, Tag, TaskStopCode,
};
use berth_api::{query, ApiError, Arn};

use super::deployments::{self, Bounds};
use super::{events, group, history, Stored, ACTIVE, DRAINING, INACTIVE};
use crate::container_instances;
use crate::records::{self, Decision};
use crate::state::{now, Call, State};
use crate::tasks::{self, LaunchRequest};

/// How long a burst of changes may gather before a pass answers it.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Failures in a row before restarts back off.
const BACKOFF_AFTER: usize = 3;
/// The reason ECS gives a task stopped for failing its health checks.
const HEALTH_REASON: &str = "Task failed container health checks";
/// What a rollback of the circuit breaker gives as its cause.
const BREAKER: &str = "ECS deployment circuit breaker";

/// The controller's clocks (server flags; tests use small values).
#[derive(Debug, Clone)]
pub struct Timing {
    /// How often a pass runs when nothing changes.
    pub tick: Duration,
    /// How long a task without container health checks runs before it counts as healthy.
    pub task_healthy_after: Duration,
    /// Silence after which an instance is marked `agentConnected: false`.
    pub agent_disconnect_after: Duration,
    /// Silence after which an instance's service tasks are replaced elsewhere.
    pub instance_lost_after: Duration,
    /// The first delay before restarting after failures in a row; it doubles with each more.
    pub restart_backoff: Duration,
    /// The longest delay between restarts.
    pub restart_backoff_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            task_healthy_after: Duration::from_secs(40),
            agent_disconnect_after: Duration::from_secs(60),
            instance_lost_after: Duration::from_secs(180),
            restart_backoff: Duration::from_secs(10),
            restart_backoff_max: Duration::from_secs(900),
        }
    }
}

/// Wakes the controller soon: a service changed.
pub fn wake(state: &State) {
    state.service_changes.notify_one();
}

/// Runs the controller until the server stops.
pub fn spawn(state: Arc<State>, timing: Timing) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut task_changes = state.assignments.subscribe();
        loop {
            if let Err(e) = pass(&state, &timing).await {
                tracing::warn!(error = %e.message, "service controller pass failed; the next one retries");
            }
            tokio::select! {
                () = tokio::time::sleep(timing.tick) => {}
                _ = task_changes.changed() => {}
                () = state.service_changes.notified() => {}
            }
            tokio::time::sleep(DEBOUNCE).await;
        }
    })
}

/// One pass over every cluster: instance liveness, then each service that is not INACTIVE.
pub async fn pass(state: &Arc<State>, timing: &Timing) -> Result<(), ApiError> {
    let lost = liveness(state, timing).await?;
    let mut by_cluster: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for (key, s) in records::list_all::<Stored>(&*state.store, "service/").await? {
        let cluster = key.split('/').nth(1).unwrap_or_default().to_string();
        if s.service.status.as_deref() != Some(INACTIVE) {
            by_cluster.entry(cluster).or_default().push(s);
        }
    }
    for (cluster, services) in by_cluster {
        let world = World::load(state, &cluster, &lost).await?;
        for s in services {
            let name = s.service.service_name.clone().unwrap_or_default();
            if let Err(e) = reconcile(state, timing, &world, s).await {
                tracing::warn!(service = %name, error = %e.message, "service reconcile failed");
            }
        }
    }
    Ok(())
}

/// Marks instances connected or not by their heartbeats; answers the ARNs of lost ones.
async fn liveness(state: &State, timing: &Timing) -> Result<HashSet<String>, ApiError> {
    let mut lost = HashSet::new();
    for (key, instance) in records::list_all::<ContainerInstance>(&*state.store, "instance/").await? {
        if instance.status.as_deref() == Some("INACTIVE") {
            continue;
        }
        let arn = instance.container_instance_arn.clone().unwrap_or_default();
        let silent = state.heartbeats.silent_for(container_instances::id_of(&arn));
        let connected = silent < timing.agent_disconnect_after;
        if silent >= timing.instance_lost_after {
            lost.insert(arn.clone());
        }
        if instance.agent_connected == Some(connected) {
            continue;
        }
        records::update(&*state.store, &key, |current: Option<ContainerInstance>| match current {
            Some(mut i) if i.agent_connected != Some(connected) => {
                i.agent_connected = Some(connected);
                Ok(Decision::Write(i, ()))
            }
            _ => Ok(Decision::Keep(())),
        })
        .await?;
        let cluster = key.split('/').nth(1).unwrap_or_default();
        state.placements.invalidate(cluster).await;
        tracing::info!(instance = %arn, connected, "agent connection changed");
    }
    Ok(lost)
}

/// One task of a service, as the controller judges it.
#[derive(Debug, Clone, Default)]
struct TaskView {
    id: String,
    deployment: String,
    instance: String,
    /// Meant to run and not STOPPED (and not on a lost instance).
    live: bool,
    /// Asked to stop, not STOPPED yet (and not on a lost instance).
    stopping: bool,
    running: bool,
    healthy: bool,
    /// Failing its container health checks past the grace period.
    unhealthy: bool,
    /// STOPPED without being asked to: it failed to start, exited, or failed health checks.
    failed: bool,
    /// On an instance that is not ACTIVE (DRAINING), or lost.
    displaced: bool,
    lost: bool,
    asked_to_stop: bool,
    stopped: bool,
    protected: bool,
    started_at: f64,
    stopped_at: f64,
}

/// What a cluster's services are reconciled against.
struct World {
    cluster: String,
    tasks: HashMap<String, Vec<tasks::Stored>>,
    instances: HashMap<String, ContainerInstance>,
    /// The Fargate capacity (pool instances) its Fargate tasks run on.
    capacity: HashMap<String, ContainerInstance>,
    protected: HashSet<String>,
    lost: HashSet<String>,
}

/// The cluster's container instances by ARN.
async fn instances_of(state: &State, cluster: &str) -> Result<HashMap<String, ContainerInstance>, ApiError> {
    let list = records::list_all::<ContainerInstance>(&*state.store, &format!("instance/{cluster}/")).await?;
    Ok(list.into_iter().map(|(_, i)| (i.container_instance_arn.clone().unwrap_or_default(), i)).collect())
}

impl World {
    async fn load(state: &State, cluster: &str, lost: &HashSet<String>) -> Result<Self, ApiError> {
        let mut by_group: HashMap<String, Vec<tasks::Stored>> = HashMap::new();
        for (_, t) in records::list_all::<tasks::Stored>(&*state.store, &format!("task/{cluster}/")).await? {
            if let Some(g) = t.task.group.clone().filter(|g| g.starts_with("service:")) {
                by_group.entry(g).or_default().push(t);
            }
        }
        let instances = instances_of(state, cluster).await?;
        let capacity = instances_of(state, crate::fargate::POOL).await?;
        let protected = tasks::protection::protected_ids(state, cluster).await?;
        Ok(Self { cluster: cluster.to_string(), tasks: by_group, instances, capacity, protected, lost: lost.clone() })
    }

    fn views(&self, service: &Stored, timing: &Timing, at: f64) -> Vec<TaskView> {
        let name = service.service.service_name.as_deref().unwrap_or_default();
        let grace = f64::from(service.service.health_check_grace_period_seconds.unwrap_or(0));
        self.tasks.get(&group(name)).into_iter().flatten().map(|t| self.view(t, timing, grace, at)).collect()
    }

    fn view(&self, stored: &tasks::Stored, timing: &Timing, grace: f64, at: f64) -> TaskView {
        let t = &stored.task;
        let instance = stored.placed_on(&self.cluster).map(|(_, arn)| arn.to_string()).unwrap_or_default();
        let lost = self.lost.contains(&instance);
        let on = self.instances.get(&instance).or_else(|| self.capacity.get(&instance));
        let active_instance = on.is_some_and(|i| i.status.as_deref() == Some("ACTIVE"));
        let last = t.last_status.as_deref().unwrap_or_default();
        let asked_to_stop = t.desired_status.as_deref() == Some("STOPPED");
        let stopped = last == "STOPPED";
        let running = !stopped && !asked_to_stop && !lost && last == "RUNNING";
        let started_at = t.started_at.unwrap_or(0.0);
        let checked = has_health_check(stored);
        let health = t.health_status.unwrap_or(HealthStatus::Unknown);
        let healthy = running
            && health != HealthStatus::Unhealthy
            && if checked {
                health == HealthStatus::Healthy
            } else {
                at - started_at >= timing.task_healthy_after.as_secs_f64()
            };
        let id = t.task_arn.as_deref().map(berth_api::arn::resource_id).unwrap_or_default().to_string();
        let by_scheduler =
            matches!(t.stop_code, Some(TaskStopCode::ServiceSchedulerInitiated | TaskStopCode::UserInitiated));
        TaskView {
            protected: self.protected.contains(&id),
            id,
            deployment: t.started_by.clone().unwrap_or_default(),
            instance,
            live: !stopped && !asked_to_stop && !lost,
            stopping: !stopped && asked_to_stop && !lost,
            running,
            healthy,
            unhealthy: running && health == HealthStatus::Unhealthy && at - started_at >= grace,
            failed: stopped && (!by_scheduler || t.stopped_reason.as_deref() == Some(HEALTH_REASON)),
            displaced: lost || !active_instance,
            lost,
            asked_to_stop,
            stopped,
            started_at,
            stopped_at: t.stopped_at.unwrap_or(0.0),
        }
    }
}

fn has_health_check(stored: &tasks::Stored) -> bool {
    stored
        .definition
        .container_definitions
        .iter()
        .flatten()
        .any(|d| d.essential.unwrap_or(true) && d.health_check.is_some())
}

/// What one pass does to one service's tasks.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Copies of the PRIMARY to start (REPLICA).
    launch: usize,
    /// Instances to start one PRIMARY copy on (DAEMON).
    launch_on: Vec<String>,
    /// Tasks to stop, with their reason.
    stop: Vec<(String, String)>,
}

async fn reconcile(state: &Arc<State>, timing: &Timing, world: &World, service: Stored) -> Result<(), ApiError> {
    let at = now();
    let key = super::key(&world.cluster, service.service.service_name.as_deref().unwrap_or_default());
    let views = world.views(&service, timing, at);
    let service = records::update(&*state.store, &key, |current: Option<Stored>| {
        let Some(mut s) = current else { return Err(ApiError::server("service vanished")) };
        Ok(if circuit_breaker(&mut s, &views) {
            s.sync_history();
            Decision::Write(s.clone(), s)
        } else {
            Decision::Keep(s)
        })
    })
    .await?;
    let daemon_targets = daemon_targets(&service, world);
    let mut plan = plan(&service, &views, timing, at, daemon_targets.as_deref());
    stop_lost(state, world, &views).await?;
    let mut started = Vec::new();
    let mut placement_event = None;
    if plan.launch > 0 || !plan.launch_on.is_empty() {
        match launch(state, world, &service, &mut plan).await {
            Ok((ids, event)) => {
                started = ids;
                placement_event = event;
            }
            Err(e) => placement_event = Some(e),
        }
    }
    for (id, reason) in &plan.stop {
        tasks::request_stop(state, &world.cluster, id, TaskStopCode::ServiceSchedulerInitiated, reason).await?;
    }
    if !plan.stop.is_empty() {
        state.notify_assignments();
    }
    let views = world.views(&service, timing, at);
    let throttled = backoff_wait(&service, &views, timing, at).is_some();
    records::update(&*state.store, &key, |current: Option<Stored>| {
        let Some(mut s) = current else { return Err(ApiError::server("service vanished")) };
        let before = serde_json::to_vec(&s).unwrap_or_default();
        record(&mut s, &views, &started, &plan.stop, placement_event.clone(), throttled, daemon_targets.as_deref(), at);
        s.sync_history();
        let changed = serde_json::to_vec(&s).unwrap_or_default() != before;
        Ok(if changed { Decision::Write(s, ()) } else { Decision::Keep(()) })
    })
    .await
}

/// The instances a DAEMON service runs one task on: ACTIVE, connected, not lost, and
/// matching its `memberOf` constraints.
fn daemon_targets(service: &Stored, world: &World) -> Option<Vec<String>> {
    if service.service.scheduling_strategy != Some(SchedulingStrategy::Daemon) {
        return None;
    }
    let member_of: Vec<query::Expr> = service
        .service
        .placement_constraints
        .iter()
        .flatten()
        .filter(|c| c.r#type == Some(PlacementConstraintType::MemberOf))
        .filter_map(|c| query::parse(c.expression.as_deref().unwrap_or_default()).ok())
        .collect();
    let mut targets: Vec<String> = world
        .instances
        .values()
        .filter(|i| i.status.as_deref() == Some("ACTIVE") && i.agent_connected == Some(true))
        .filter(|i| member_of.iter().all(|e| container_instances::matches(i, e)))
        .filter_map(|i| i.container_instance_arn.clone())
        .filter(|arn| !world.lost.contains(arn))
        .collect();
    targets.sort();
    Some(targets)
}

/// Trips the circuit breaker on the PRIMARY when its failures reach the threshold, and rolls
/// back when asked; answers whether the service changed.
fn circuit_breaker(s: &mut Stored, views: &[TaskView]) -> bool {
    let config = s.service.deployment_configuration.clone().unwrap_or_default();
    let (enabled, rollback) = deployments::circuit_breaker(&config);
    let name = s.service.service_name.clone().unwrap_or_default();
    let Some(primary) = s.service.deployments.as_mut().and_then(|d| d.first_mut()) else { return false };
    let id = primary.id.clone().unwrap_or_default();
    let in_progress = primary.rollout_state == Some(DeploymentRolloutState::InProgress);
    if !enabled || !in_progress || s.control.succeeded.contains(&id) {
        return false;
    }
    let desired = usize::try_from(primary.desired_count.unwrap_or(0)).unwrap_or(0);
    let failed = views.iter().filter(|v| v.deployment == id && v.failed).count();
    if failed < deployments::failure_threshold(desired) {
        return false;
    }
    primary.rollout_state = Some(DeploymentRolloutState::Failed);
    primary.rollout_state_reason = Some(format!("{BREAKER}: tasks failed to start."));
    primary.failed_tasks = Some(i32::try_from(failed).unwrap_or(i32::MAX));
    primary.updated_at = Some(now());
    events::push(&mut s.service, events::deployment_failed(&name, &id));
    let target = s.control.last_completed.clone().filter(|d| d.id.as_deref() != Some(id.as_str()));
    if let (true, Some(target)) = (rollback, target) {
        roll_back(s, &name, &target, BREAKER);
    }
    true
}

/// A new PRIMARY that runs what the last COMPLETED deployment ran.
pub(super) fn roll_back(s: &mut Stored, name: &str, target: &Deployment, why: &str) {
    let old = target.id.clone().unwrap_or_default();
    let td = target.task_definition.clone().unwrap_or_default();
    let desired = s.service.desired_count.unwrap_or(0);
    let failed = primary_id(s);
    let reason = format!("{why}: rolling back to deploymentId {old}.");
    s.service.deployments.get_or_insert_with(Vec::new).iter_mut().for_each(deployments::retire);
    let platform = deployments::Platform::of(&s.service);
    let list = s.service.deployments.get_or_insert_with(Vec::new);
    list.insert(
        0,
        deployments::new_primary(&td, desired, target.network_configuration.clone(), Some(reason.clone()), &platform),
    );
    let by = primary_id(s);
    history::rolling_back(&mut s.history, &s.service, &failed, &old, &by, &reason);
    s.service.task_definition = Some(td);
    s.control.steady = false;
    events::push(&mut s.service, events::rolling_back(name, &old));
}

/// Failures of the PRIMARY in a row since a task of the service last ran healthy: the
/// restart delay still to wait, if restarts are backing off.
fn backoff_wait(s: &Stored, views: &[TaskView], timing: &Timing, at: f64) -> Option<f64> {
    let primary = primary_id(s);
    let mark = views.iter().filter(|v| v.healthy).map(|v| v.started_at).fold(s.control.healthy_mark, f64::max);
    let failures: Vec<f64> = views
        .iter()
        .filter(|v| v.failed && v.deployment == primary && v.stopped_at > mark)
        .map(|v| v.stopped_at)
        .collect();
    if failures.len() < BACKOFF_AFTER {
        return None;
    }
    let doublings = i32::try_from(failures.len() - BACKOFF_AFTER).unwrap_or(i32::MAX).min(30);
    let delay =
        (timing.restart_backoff.as_secs_f64() * 2f64.powi(doublings)).min(timing.restart_backoff_max.as_secs_f64());
    let latest = failures.iter().copied().fold(0.0, f64::max);
    let wait = latest + delay - at;
    (wait > 0.0).then_some(wait)
}

fn primary_id(s: &Stored) -> String {
    s.service.deployments.as_deref().and_then(|d| d.first()).and_then(|d| d.id.clone()).unwrap_or_default()
}

fn scaling_reason(deployment: &str) -> String {
    format!("Scaling activity initiated by (deployment {deployment})")
}

/// Decides the pass: which tasks to start and which to stop.
fn plan(s: &Stored, views: &[TaskView], timing: &Timing, at: f64, daemon: Option<&[String]>) -> Plan {
    let primary = primary_id(s);
    let reason = scaling_reason(&primary);
    let mut plan = Plan::default();
    if s.service.status.as_deref() == Some(DRAINING) {
        plan.stop = views.iter().filter(|v| v.live).map(|v| (v.id.clone(), reason.clone())).collect();
        return plan;
    }
    for v in views.iter().filter(|v| v.live && v.unhealthy) {
        plan.stop.push((v.id.clone(), HEALTH_REASON.to_string()));
    }
    let stopping: HashSet<&str> = plan.stop.iter().map(|(id, _)| id.as_str()).collect();
    let live: Vec<&TaskView> = views.iter().filter(|v| v.live && !stopping.contains(v.id.as_str())).collect();
    let failed_primary = s
        .service
        .deployments
        .as_deref()
        .and_then(|d| d.first())
        .is_some_and(|d| d.rollout_state == Some(DeploymentRolloutState::Failed));
    let may_launch = !failed_primary && backoff_wait(s, views, timing, at).is_none();
    match daemon {
        Some(targets) => plan_daemon(&mut plan, &live, &primary, targets, may_launch, &reason),
        None => plan_replica(&mut plan, s, &live, views, &primary, may_launch, failed_primary, &reason),
    }
    plan
}

/// REPLICA: start PRIMARY copies up to desiredCount within maximumPercent; stop extra
/// PRIMARY copies; stop replaced copies (older deployments, displaced instances) while
/// minimumHealthyPercent holds. Protected tasks are never chosen.
#[allow(clippy::too_many_arguments)]
fn plan_replica(
    plan: &mut Plan,
    s: &Stored,
    live: &[&TaskView],
    views: &[TaskView],
    primary: &str,
    may_launch: bool,
    failed_primary: bool,
    reason: &str,
) {
    let desired = usize::try_from(s.service.desired_count.unwrap_or(0)).unwrap_or(0);
    let bounds = Bounds::of(&s.service.deployment_configuration.clone().unwrap_or_default(), desired);
    let current = |v: &&&TaskView| v.deployment == primary && !v.displaced;
    let primary_live = live.iter().filter(current).count();
    let total = live.len() + views.iter().filter(|v| v.stopping).count();
    if may_launch && primary_live < desired {
        plan.launch = (desired - primary_live).min(bounds.max_total.saturating_sub(total));
    }
    let by_preference = |list: &mut Vec<&&TaskView>| {
        list.sort_by_key(|v| (v.healthy, v.running, std::cmp::Reverse(v.started_at.to_bits())))
    };
    let mut extra: Vec<&&TaskView> = live.iter().filter(current).filter(|v| !v.protected).collect();
    by_preference(&mut extra);
    for v in extra.into_iter().take(primary_live.saturating_sub(desired)) {
        plan.stop.push((v.id.clone(), reason.to_string()));
    }
    if failed_primary {
        return;
    }
    let mut healthy = live.iter().filter(|v| v.healthy).count();
    let mut replaced: Vec<&&TaskView> = live.iter().filter(|v| !current(v) && !v.protected).collect();
    by_preference(&mut replaced);
    for v in replaced {
        if !v.healthy {
            plan.stop.push((v.id.clone(), reason.to_string()));
        } else if healthy > bounds.min_healthy {
            healthy -= 1;
            plan.stop.push((v.id.clone(), reason.to_string()));
        }
    }
}

/// DAEMON: one PRIMARY task on each target instance; a task of an older deployment or on an
/// instance that is no longer a target is stopped first (minimumHealthyPercent 0).
fn plan_daemon(plan: &mut Plan, live: &[&TaskView], primary: &str, targets: &[String], may_launch: bool, reason: &str) {
    let mut covered = HashSet::new();
    for v in live {
        let wanted = v.deployment == primary && targets.contains(&v.instance) && covered.insert(v.instance.clone());
        if !wanted && !v.protected {
            plan.stop.push((v.id.clone(), reason.to_string()));
        }
    }
    if may_launch {
        let occupied: HashSet<&str> = live.iter().map(|v| v.instance.as_str()).collect();
        plan.launch_on = targets.iter().filter(|t| !occupied.contains(t.as_str())).cloned().collect();
    }
}

/// Starts what the plan asks for through RunTask's (or StartTask's) path: the ids started,
/// and the placement event when some copies fit nowhere.
async fn launch(
    state: &State,
    world: &World,
    s: &Stored,
    plan: &mut Plan,
) -> Result<(Vec<String>, Option<String>), String> {
    let svc = &s.service;
    let name = svc.service_name.clone().unwrap_or_default();
    let Some(primary) = svc.deployments.as_deref().and_then(|d| d.first()) else { return Ok((Vec::new(), None)) };
    let region = svc.service_arn.as_deref().and_then(Arn::parse).map(|a| a.region).unwrap_or_default();
    let call = Call { region, principal: svc.created_by.clone().unwrap_or_default() };
    let mut tags: Vec<Tag> = Vec::new();
    if svc.propagate_tags == Some(PropagateTags::Service) {
        tags.extend(svc.tags.iter().flatten().cloned());
    }
    if svc.enable_ecs_managed_tags == Some(true) {
        tags.push(Tag { key: Some("aws:ecs:serviceName".into()), value: Some(name.clone()) });
    }
    let request = || LaunchRequest {
        task_definition: primary.task_definition.clone(),
        overrides: None,
        group: Some(group(&name)),
        started_by: primary.id.clone(),
        tags: Some(tags.clone()),
        propagate_tags: svc.propagate_tags.filter(|p| *p == PropagateTags::TaskDefinition),
        enable_ecs_managed_tags: svc.enable_ecs_managed_tags.unwrap_or(false),
        enable_execute_command: svc.enable_execute_command.unwrap_or(false),
        may_be_inactive: true,
        launch_type: svc.launch_type,
        capacity_provider_strategy: svc.capacity_provider_strategy.clone().unwrap_or_default(),
        network_configuration: primary.network_configuration.clone(),
        platform_version: svc.platform_version.clone(),
    };
    let constraints = svc.placement_constraints.as_deref().unwrap_or_default();
    let result = if plan.launch_on.is_empty() {
        let strategies = svc.placement_strategy.as_deref().unwrap_or_default();
        tasks::launch(state, &call, &world.cluster, request(), plan.launch, constraints, strategies).await
    } else {
        tasks::launch_on(state, &call, &world.cluster, request(), std::mem::take(&mut plan.launch_on)).await
    };
    let (started, failures) = result.map_err(|e| events::unplaceable(&name, None, &e.message))?;
    let ids = started
        .iter()
        .filter_map(|t| t.task_arn.as_deref())
        .map(|a| berth_api::arn::resource_id(a).to_string())
        .collect();
    let event = failures.first().map(|f| {
        let instance = f.arn.as_deref().map(berth_api::arn::resource_id);
        events::unplaceable(&name, instance, f.reason.as_deref().unwrap_or_default())
    });
    Ok((ids, event))
}

/// Asks the tasks of lost instances to stop and records them STOPPED: their agent is gone,
/// so the service replaces them; an agent that comes back stops their containers.
async fn stop_lost(state: &Arc<State>, world: &World, views: &[TaskView]) -> Result<(), ApiError> {
    for v in views.iter().filter(|v| v.lost && !v.asked_to_stop && !v.stopped) {
        let reason = "Task stopped because its container instance stopped responding (agent disconnected).";
        tasks::request_stop(state, &world.cluster, &v.id, TaskStopCode::ServiceSchedulerInitiated, reason).await?;
        state.notify_assignments();
    }
    Ok(())
}

/// Writes what the pass saw: per-deployment and service counts, drained deployments
/// removed, completion, the steady state, and the events.
#[allow(clippy::too_many_arguments)]
fn record(
    s: &mut Stored,
    views: &[TaskView],
    started: &[String],
    stopped: &[(String, String)],
    placement_event: Option<String>,
    throttled: bool,
    daemon: Option<&[String]>,
    at: f64,
) {
    let name = s.service.service_name.clone().unwrap_or_default();
    let stopped_now: HashSet<&str> = stopped.iter().map(|(id, _)| id.as_str()).collect();
    let live = |v: &&TaskView| v.live && !stopped_now.contains(v.id.as_str());
    if let Some(event) = placement_event {
        events::push(&mut s.service, event);
    }
    for (id, _) in stopped.iter().filter(|(_, reason)| reason == HEALTH_REASON) {
        events::push(&mut s.service, events::unhealthy(&name, id));
    }
    if !stopped.is_empty() {
        let ids: Vec<String> = stopped.iter().map(|(id, _)| id.clone()).collect();
        events::push(&mut s.service, events::stopped(&name, &ids));
    }
    if !started.is_empty() {
        events::push(&mut s.service, events::started(&name, started));
    }
    if throttled && !s.control.throttled {
        events::push(&mut s.service, events::throttled(&name));
    }
    s.control.throttled = throttled;
    s.control.healthy_mark =
        views.iter().filter(|v| v.healthy).map(|v| v.started_at).fold(s.control.healthy_mark, f64::max);
    if let Some(targets) = daemon {
        let n = i32::try_from(targets.len()).unwrap_or(i32::MAX);
        s.service.desired_count = Some(n);
        if let Some(p) = s.service.deployments.as_mut().and_then(|d| d.first_mut()) {
            p.desired_count = Some(n);
        }
    }
    let desired = s.service.desired_count.unwrap_or(0);
    let count =
        |pred: &dyn Fn(&TaskView) -> bool| i32::try_from(views.iter().filter(|v| pred(v)).count()).unwrap_or(i32::MAX);
    let mut list = s.service.deployments.take().unwrap_or_default();
    let primary = list.first().and_then(|d| d.id.clone()).unwrap_or_default();
    for (i, d) in list.iter_mut().enumerate() {
        let id = d.id.clone().unwrap_or_default();
        let mine = |v: &TaskView| v.deployment == id;
        let running = count(&|v| mine(v) && live(&v) && v.running);
        let pending = count(&|v| mine(v) && live(&v) && !v.running)
            + if i == 0 { i32::try_from(started.len()).unwrap_or(0) } else { 0 };
        if views.iter().any(|v| mine(v) && v.healthy) && !s.control.succeeded.contains(&id) {
            s.control.succeeded.push(id.clone());
        }
        let failed = if s.control.succeeded.contains(&id) { 0 } else { count(&|v| mine(v) && v.failed) };
        if (d.running_count, d.pending_count, d.failed_tasks) != (Some(running), Some(pending), Some(failed)) {
            d.running_count = Some(running);
            d.pending_count = Some(pending);
            d.failed_tasks = Some(failed);
            d.updated_at = Some(at);
        }
    }
    let leftover = |id: &str| {
        views.iter().any(|v| v.deployment == id && (live(&v) || v.stopping || stopped_now.contains(v.id.as_str())))
    };
    list.retain(|d| d.id.as_deref() == Some(primary.as_str()) || leftover(d.id.as_deref().unwrap_or_default()));
    let ids: HashSet<String> = list.iter().filter_map(|d| d.id.clone()).collect();
    s.control.succeeded.retain(|id| ids.contains(id));
    s.service.running_count = Some(list.iter().map(|d| d.running_count.unwrap_or(0)).sum());
    s.service.pending_count = Some(list.iter().map(|d| d.pending_count.unwrap_or(0)).sum());
    let settled = list.len() == 1
        && started.is_empty()
        && stopped.is_empty()
        && !views.iter().any(|v| v.stopping)
        && count(&|v| live(&v) && v.healthy && !v.displaced) == desired
        && count(&|v| live(&v)) == desired;
    s.service.deployments = Some(list);
    if s.service.status.as_deref() == Some(DRAINING) {
        if !views.iter().any(|v| live(&v)) && started.is_empty() {
            s.service.status = Some(INACTIVE.into());
        }
        return;
    }
    if s.service.status.as_deref() != Some(ACTIVE) {
        return;
    }
    let Some(p) = s.service.deployments.as_mut().and_then(|d| d.first_mut()) else { return };
    let completes = settled && p.rollout_state == Some(DeploymentRolloutState::InProgress);
    if completes {
        p.rollout_state = Some(DeploymentRolloutState::Completed);
        p.rollout_state_reason = Some(format!("ECS deployment {primary} completed."));
        p.updated_at = Some(at);
        s.control.last_completed = Some(p.clone());
    }
    let steady = settled && p.rollout_state == Some(DeploymentRolloutState::Completed);
    if completes {
        events::push(&mut s.service, events::deployment_completed(&name, &primary));
    }
    if steady && !s.control.steady {
        events::push(&mut s.service, events::steady(&name));
    }
    s.control.steady = steady;
}

#[cfg(test)]
mod tests {
    use berth_api::model::{DeploymentConfiguration, Service};

    use super::*;

    fn service(desired: i32, min: i32, max: i32, deployments: &[&str]) -> Stored {
        let deployments = deployments
            .iter()
            .map(|id| Deployment {
                id: Some((*id).into()),
                rollout_state: Some(DeploymentRolloutState::InProgress),
                ..Default::default()
            })
            .collect();
        Stored {
            service: Service {
                service_name: Some("web".into()),
                status: Some(ACTIVE.into()),
                desired_count: Some(desired),
                deployment_configuration: Some(DeploymentConfiguration {
                    minimum_healthy_percent: Some(min),
                    maximum_percent: Some(max),
                    ..Default::default()
                }),
                deployments: Some(deployments),
                ..Default::default()
            },
            client_token: None,
            control: super::super::Control::default(),
            history: Default::default(),
        }
    }

    fn task(id: &str, deployment: &str, healthy: bool) -> TaskView {
        TaskView {
            id: id.into(),
            deployment: deployment.into(),
            instance: "i".into(),
            live: true,
            running: true,
            healthy,
            ..Default::default()
        }
    }

    fn run(s: &Stored, views: &[TaskView]) -> Plan {
        plan(s, views, &Timing::default(), 1000.0, None)
    }

    fn stopped(p: &Plan) -> Vec<&str> {
        p.stop.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn a_rollout_starts_up_to_max_and_stops_old_tasks_down_to_min_healthy() {
        let s = service(4, 50, 150, &["new", "old"]);
        let views: Vec<_> = (0..4).map(|i| task(&format!("o{i}"), "old", true)).collect();
        let p = run(&s, &views);
        assert_eq!(p.launch, 2, "4 * 150% = 6 tasks at most");
        assert_eq!(stopped(&p).len(), 2, "4 * 50% = 2 healthy tasks must stay");
    }

    #[test]
    fn unhealthy_old_tasks_go_first_and_do_not_count_against_the_minimum() {
        let s = service(2, 100, 200, &["new", "old"]);
        let views = vec![task("o1", "old", true), task("o2", "old", false), task("n1", "new", true)];
        let p = run(&s, &views);
        assert_eq!(stopped(&p), ["o2"], "o1 stays: with n1 it keeps the 2 healthy tasks 100% asks for");
        assert_eq!(p.launch, 1);
    }

    #[test]
    fn scale_in_spares_protected_tasks_and_pending_ones_go_first() {
        let s = service(1, 100, 200, &["d"]);
        let mut views = vec![task("a", "d", true), task("b", "d", true), task("c", "d", false)];
        views[0].protected = true;
        views[2].running = false;
        let p = run(&s, &views);
        assert_eq!(stopped(&p), ["c", "b"]);
        assert_eq!(p.launch, 0);
    }

    #[test]
    fn displaced_tasks_are_replaced_before_they_are_stopped() {
        let s = service(2, 100, 200, &["d"]);
        let mut views = vec![task("a", "d", true), task("b", "d", true)];
        views[1].displaced = true;
        let p = run(&s, &views);
        assert_eq!(p.launch, 1);
        assert!(p.stop.is_empty(), "b stays until its replacement is healthy: {:?}", p.stop);
    }

    #[test]
    fn a_failed_primary_starts_nothing_and_keeps_the_old_tasks() {
        let mut s = service(2, 50, 200, &["new", "old"]);
        if let Some(d) = s.service.deployments.as_mut().and_then(|d| d.first_mut()) {
            d.rollout_state = Some(DeploymentRolloutState::Failed);
        }
        let p = run(&s, &[task("o1", "old", true), task("o2", "old", true)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn the_breaker_trips_at_the_threshold_and_rolls_back_to_the_last_completed() {
        let mut s = service(2, 100, 200, &["new"]);
        s.service.deployment_configuration = Some(deployments::with_defaults(
            Some(DeploymentConfiguration {
                deployment_circuit_breaker: Some(berth_api::model::DeploymentCircuitBreaker {
                    enable: Some(true),
                    rollback: Some(true),
                }),
                ..Default::default()
            }),
            false,
        ));
        s.control.last_completed =
            Some(Deployment { id: Some("old".into()), task_definition: Some("td:1".into()), ..Default::default() });
        let failed =
            |id: &str| TaskView { id: id.into(), deployment: "new".into(), failed: true, ..Default::default() };
        assert!(!circuit_breaker(&mut s, &[failed("a"), failed("b")]), "2 failures are below the threshold of 3");
        assert!(circuit_breaker(&mut s, &[failed("a"), failed("b"), failed("c")]));
        let list = s.service.deployments.clone().unwrap_or_default();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].task_definition.as_deref(), Some("td:1"));
        assert_eq!(list[1].rollout_state, Some(DeploymentRolloutState::Failed));
        assert_eq!(list[1].status.as_deref(), Some(deployments::ACTIVE));
    }

    #[test]
    fn restarts_back_off_after_three_failures_in_a_row() {
        let s = service(1, 100, 200, &["d"]);
        let failed = |id: &str, at: f64| TaskView {
            id: id.into(),
            deployment: "d".into(),
            failed: true,
            stopped_at: at,
            ..Default::default()
        };
        let timing = Timing { restart_backoff: Duration::from_secs(10), ..Timing::default() };
        let two = [failed("a", 990.0), failed("b", 995.0)];
        assert_eq!(backoff_wait(&s, &two, &timing, 1000.0), None);
        let three = [failed("a", 990.0), failed("b", 995.0), failed("c", 998.0)];
        assert_eq!(backoff_wait(&s, &three, &timing, 1000.0), Some(8.0));
        assert_eq!(plan(&s, &three, &timing, 1000.0, None).launch, 0);
        assert_eq!(plan(&s, &three, &timing, 1009.0, None).launch, 1);
    }
}
