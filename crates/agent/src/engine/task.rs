//! One task's run through the ECS lifecycle: pull, network, start in dependency order,
//! health checks, essential exits, stop, clean up, report.
//!
//! # Behavior
//! - PENDING is reported when images start to pull; a failed pull stops the task with
//!   `CannotPullContainerError: ...` (the server records TaskFailedToStart).
//! - Containers start when their `dependsOn` conditions hold (START, COMPLETE, SUCCESS,
//!   HEALTHY); a condition that can no longer hold stops the task. The task is RUNNING once
//!   every container has started.
//! - An essential container's exit stops the others (SIGTERM, then SIGKILL after the
//!   container's stopTimeout, default 30 s) and the task with "Essential container in task
//!   exited". A container killed by the OOM killer reports `OutOfMemoryError: Container
//!   killed due to memory usage`.
//! - A record in `tasks/<id>.json` lists what was started, so a restarted agent adopts the
//!   running containers and collects the exits it missed.

use crate::awslogs::Shippers;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{Assignment, ContainerHealth, SubmitTaskDetailsRequest};
use berth_api::model::{
    ContainerCondition, ContainerDefinition, ContainerStateChange, HealthStatus, LaunchType, NetworkMode,
    TaskDefinition,
};
use berth_api::task_definition::DEFAULT_EPHEMERAL_GIB;
use berth_runtime::container::{ContainerState, ExitStatus};
use berth_runtime::images::Image;
use berth_runtime::microvm::{vcpus_for, GuestNetwork, VmResources, VMM_OVERHEAD_MIB};
use berth_runtime::network::{Mode, PortRequest, Protocol, TaskNetwork};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

mod credentials;
mod metadata;
mod secrets;

use super::report::{self, now, Report};
use super::spec::{self, TaskContext};
use super::{Desired, Shared};

/// ECS's default stop timeout (`ECS_CONTAINER_STOP_TIMEOUT`).
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
const ESSENTIAL_EXITED: &str = "Essential container in task exited";
const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";

/// The guest's tap in the task's network namespace.
const MICROVM_TAP: &str = "tap0";
/// A microVM's memory when the task names none (Fargate tasks always do).
const DEFAULT_VM_MEMORY_MIB: u64 = 512;

/// Refuses what a task's microVM cannot run yet (docs/microvm.md), as ECS refuses a
/// container it cannot create.
fn microvm_supports(containers: &[ContainerDefinition]) -> Result<(), String> {
    let refuse = |what: &str| Err(format!("CannotStartContainerError: microVM isolation does not support {what} yet"));
    if containers.len() != 1 {
        return refuse("tasks of more than one container");
    }
    let c = &containers[0];
    if c.health_check.is_some() {
        return refuse("container health checks");
    }
    if c.mount_points.as_ref().is_some_and(|m| !m.is_empty()) || c.volumes_from.as_ref().is_some_and(|v| !v.is_empty())
    {
        return refuse("volumes");
    }
    if c.linux_parameters.as_ref().and_then(|l| l.init_process_enabled).unwrap_or(false) {
        return refuse("initProcessEnabled");
    }
    Ok(())
}

/// What survives an agent restart about one task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    containers: BTreeMap<String, ContainerRecord>,
    network: Option<TaskNetwork>,
    running_reported: bool,
    /// The unguessable id of the task's credentials URI (tasks with a task role).
    credentials_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerRecord {
    started: bool,
    exit: Option<ExitStatus>,
    reason: Option<String>,
    /// When it was created and started (RFC 3339), for the metadata endpoint.
    created_at: Option<String>,
    started_at: Option<String>,
}

/// Something that happened to a container.
enum Event {
    Exited(String, ExitStatus),
    Health(String, bool),
}

struct Run {
    shared: Arc<Shared>,
    def: TaskDefinition,
    /// The task as the server assigned it (ARNs, zone, tags, overrides).
    task: berth_api::model::Task,
    /// The last status reported, and the one wanted (for the metadata endpoint).
    known_status: String,
    desired_status: String,
    /// Refreshes the task role's credentials while the task runs.
    refresher: Option<tokio::task::JoinHandle<()>>,
    /// Task-level CPU units and MiB as the task has them (overrides applied).
    cpu: Option<String>,
    memory: Option<String>,
    id: String,
    arn: String,
    record: Record,
    images: HashMap<String, Image>,
    health: HashMap<String, bool>,
    events: mpsc::Sender<Event>,
    pull_started_at: Option<f64>,
    pull_stopped_at: Option<f64>,
    /// The PENDING report, sent while the task prepares; awaited before the next report
    /// so the server receives them in order.
    pending_report: Option<tokio::task::JoinHandle<()>>,
    /// The awslogs shippers of this task's containers.
    shippers: Shippers,
    /// The resolved `secrets` and `repositoryCredentials` of containers yet to start,
    /// by container name: only in memory, never in the record or a report.
    secrets: HashMap<String, berth_api::agent::ContainerSecrets>,
}

/// Drives one task until it is STOPPED and reported.
pub async fn run(shared: Arc<Shared>, a: Assignment, mut desired: watch::Receiver<Desired>) {
    let (events, mut inbox) = mpsc::channel(64);
    let arn = a.task.task_arn.clone().unwrap_or_default();
    let id = arn.rsplit('/').next().unwrap_or_default().to_string();
    let record = load_record(&shared, &id).unwrap_or_default();
    let mut def = a.task_definition;
    match berth_api::task_definition::with_overrides(&def, a.task.overrides.as_ref()) {
        Ok(containers) => def.container_definitions = Some(containers),
        Err(e) => tracing::warn!(task = %arn, error = %e.message, "ignoring container overrides"),
    }
    let mut run = Run {
        shared,
        def,
        known_status: a.task.last_status.clone().unwrap_or_else(|| "PROVISIONING".into()),
        desired_status: a.task.desired_status.clone().unwrap_or_else(|| "RUNNING".into()),
        refresher: None,
        cpu: a.task.cpu.clone(),
        memory: a.task.memory.clone(),
        id,
        arn,
        record,
        images: HashMap::new(),
        health: HashMap::new(),
        events,
        pull_started_at: None,
        pull_stopped_at: None,
        pending_report: None,
        shippers: Shippers::default(),
        secrets: HashMap::new(),
        task: a.task,
    };
    let reason = run.drive(&mut desired, &mut inbox).await;
    run.finish(reason).await;
}

/// Removes what task `task_id` holds on the host: its (exited) containers and their rootfs,
/// its network, cgroup and task-scoped volumes.
pub(super) async fn clean_up(shared: &Shared, task_id: &str, container_ids: Vec<String>) {
    let (containers, volumes) = writable_dirs(shared, task_id);
    for id in container_ids {
        let _ = shared.runtime.delete(&id).await;
        let dir = containers.join(&id);
        if shared.images.unmount_rootfs(&dir).is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if let Err(e) = shared.networks.teardown_task(task_id).await {
        tracing::warn!(task = task_id, error = %e, "tearing down the task network");
    }
    if let Ok(cgroup) = shared.cgroups.task(task_id) {
        let _ = cgroup.remove();
    }
    let _ = std::fs::remove_dir_all(volumes.join(task_id));
    if let Err(e) = shared.storage.remove(task_id) {
        tracing::warn!(task = task_id, error = %e, "removing the task's ephemeral storage");
    }
    shared.endpoints.remove(task_id);
}

/// Where a task's containers keep their writable layers and its scoped volumes live: inside
/// the task's own file system when it has one (Fargate's ephemeral storage), else in the
/// agent's data dir.
fn writable_dirs(shared: &Shared, task_id: &str) -> (PathBuf, PathBuf) {
    if shared.storage.exists(task_id) {
        let own = shared.storage.mount_point(task_id);
        return (own.join("containers"), own.join("volumes"));
    }
    (shared.containers.clone(), shared.volumes.clone())
}

/// The size of a Fargate task's ephemeral storage in bytes; none for other tasks, which
/// write to the agent's file system as on an EC2 instance.
fn ephemeral_bytes(task: &berth_api::model::Task) -> Option<u64> {
    if task.launch_type != Some(LaunchType::Fargate) {
        return None;
    }
    let gib = task.ephemeral_storage.as_ref().and_then(|e| e.size_in_gi_b).unwrap_or(DEFAULT_EPHEMERAL_GIB);
    Some(u64::try_from(gib).unwrap_or(0) << 30)
}

pub(super) fn record_path(shared: &Shared, id: &str) -> PathBuf {
    shared.records.join(format!("{id}.json"))
}

fn load_record(shared: &Shared, id: &str) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(record_path(shared, id)).ok()?).ok()
}

impl Run {
    fn containers(&self) -> Vec<ContainerDefinition> {
        self.def.container_definitions.clone().unwrap_or_default()
    }

    fn mode(&self) -> NetworkMode {
        self.def.network_mode.unwrap_or(NetworkMode::Bridge)
    }

    fn save(&self) {
        let path = record_path(&self.shared, &self.id);
        let tmp = path.with_extension("tmp");
        let ok = serde_json::to_vec(&self.record)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = ok {
            tracing::warn!(task = %self.arn, error = %e, "could not save the task record");
        }
        self.publish();
    }

    /// Runs the task; answers the stopped reason when the task stops for a reason of its own.
    async fn drive(
        &mut self,
        desired: &mut watch::Receiver<Desired>,
        inbox: &mut mpsc::Receiver<Event>,
    ) -> Option<String> {
        self.adopt().await;
        if let Err(reason) = self.prepare().await {
            self.stop_all(None).await;
            return Some(reason);
        }
        loop {
            // The value may have been STOPPED from the start (a StopTask while the agent was
            // away), which `changed()` would never announce.
            let now_desired = desired.borrow_and_update().clone();
            if now_desired.stop() {
                self.stop_all(now_desired.warning).await;
                return None;
            }
            if let Some(reason) = self.start_ready().await {
                self.stop_all(None).await;
                return Some(reason);
            }
            self.report_running_once().await;
            if self.all_exited() {
                return Some(ESSENTIAL_EXITED.to_string());
            }
            tokio::select! {
                changed = desired.changed() => {
                    let now_desired = desired.borrow().clone();
                    if changed.is_err() || now_desired.stop() {
                        self.stop_all(now_desired.warning).await;
                        return None;
                    }
                }
                Some(event) = inbox.recv() => {
                    if let Some(reason) = self.on_event(event).await {
                        self.stop_all(None).await;
                        return Some(reason);
                    }
                }
            }
        }
    }

    /// Picks up what a previous agent process started: the runtime, not the record, says
    /// which containers exist (the agent may have died between starting one and saving).
    async fn adopt(&mut self) {
        for c in self.containers() {
            let name = c.name.clone().unwrap_or_default();
            let id = spec::container_id(&self.id, &name);
            let known = self.record.containers.get(&name).is_some_and(|r| r.exit.is_some());
            match self.shared.runtime.state(&id).await {
                Ok(ContainerState::Running { .. } | ContainerState::Starting) if !known => {
                    self.ship_logs(&c);
                    self.record.containers.entry(name.clone()).or_default().started = true;
                    self.watch_exit(&name);
                    if let Some(check) = c.health_check.clone() {
                        tokio::spawn(health_loop(Arc::clone(&self.shared), id, name, check, self.events.clone()));
                    }
                }
                Ok(ContainerState::Exited(status)) if !known => {
                    self.ship_logs(&c);
                    let entry = self.record.containers.entry(name).or_default();
                    entry.started = true;
                    entry.exit = Some(status);
                }
                _ => {}
            }
        }
        if self.record.network.is_none() {
            self.record.network = self.shared.networks.recover(&self.id).ok().flatten();
        }
        self.save();
    }

    /// Images, network and cgroup; each only once (an adopted task has them).
    async fn prepare(&mut self) -> Result<(), String> {
        if self.shared.microvm {
            microvm_supports(&self.containers())?;
        }
        self.pull_started_at = Some(now());
        // Not awaited here: pulling and starting need not wait for the server's answer.
        let (shared, arn, report) = (Arc::clone(&self.shared), self.arn.clone(), self.snapshot("PENDING", None));
        self.pending_report = Some(tokio::spawn(async move { report::send(&shared, &arn, report).await }));
        self.fetch_secrets().await?;
        for c in self.containers() {
            let name = c.name.clone().unwrap_or_default();
            let reference = c.image.clone().unwrap_or_default();
            if self.record.containers.get(&name).is_some_and(|r| r.started) {
                continue;
            }
            let auth = self.registry_auth(&name);
            match self.shared.images.pull(&reference, auth.as_ref(), self.shared.pull_policy).await {
                Ok(image) => {
                    self.images.insert(name, image);
                }
                Err(e) => return Err(format!("CannotPullContainerError: {e}")),
            }
        }
        self.pull_stopped_at = Some(now());
        if self.record.network.is_none() {
            let network = self
                .shared
                .networks
                .setup_task(&self.id, network_mode(self.mode()), &port_requests(&self.def))
                .await
                .map_err(|e| format!("ResourceInitializationError: failed to set up the task network: {e}"))?;
            if network.mode == Mode::Awsvpc {
                let details = SubmitTaskDetailsRequest {
                    private_ipv4_address: network.ipv4.clone(),
                    mac_address: network.mac.clone(),
                    ..Default::default()
                };
                report::send_details(&self.shared, &self.arn, details).await;
            }
            self.record.network = Some(network);
            self.save();
        }
        self.start_credentials().await?;
        let cpu = self.cpu.as_deref().and_then(|c| c.parse().ok());
        let memory: Option<u64> = self.memory.as_deref().and_then(|m| m.parse().ok());
        // qemu itself lives in the task cgroup beside the guest's memory.
        let memory = memory.map(|m| if self.shared.microvm { m + VMM_OVERHEAD_MIB } else { m });
        self.shared
            .cgroups
            .create_task(&self.id, cpu, memory)
            .map_err(|e| format!("ResourceInitializationError: failed to create the task cgroup: {e}"))?;
        self.set_up_storage()
    }

    /// Mounts a Fargate task's ephemeral storage (or finds it mounted) before any rootfs
    /// goes in it, and has the metadata endpoint measure it from then on.
    fn set_up_storage(&self) -> Result<(), String> {
        let Some(bytes) = ephemeral_bytes(&self.task) else { return Ok(()) };
        let started = std::time::Instant::now();
        let mount_point =
            self.shared.storage.set_up(&self.id, bytes).map_err(|e| {
                format!("ResourceInitializationError: failed to create the task's ephemeral storage: {e}")
            })?;
        tracing::info!(task = %self.arn, gib = bytes >> 30, elapsed = ?started.elapsed(), "ephemeral storage ready");
        self.shared.endpoints.update(&self.id, |v| v.storage = Some(mount_point));
        Ok(())
    }

    /// Starts every container whose dependencies hold; answers a reason when one never can.
    async fn start_ready(&mut self) -> Option<String> {
        for c in self.containers() {
            let name = c.name.clone().unwrap_or_default();
            if self.record.containers.get(&name).is_some_and(|r| r.started || r.exit.is_some()) {
                continue;
            }
            match self.dependencies(&c) {
                Readiness::Wait => continue,
                Readiness::Never(reason) => return Some(reason),
                Readiness::Ready => {}
            }
            if let Err(reason) = self.start(&c).await {
                return Some(reason);
            }
        }
        None
    }

    fn dependencies(&self, c: &ContainerDefinition) -> Readiness {
        for dep in c.depends_on.iter().flatten() {
            let target = dep.container_name.clone().unwrap_or_default();
            let state = self.record.containers.get(&target);
            let exit_code = state.and_then(|s| s.exit.as_ref()).map(|e| e.code);
            let started = state.is_some_and(|s| s.started);
            let ready = match dep.condition.unwrap_or(ContainerCondition::Start) {
                ContainerCondition::Start => started,
                ContainerCondition::Complete => exit_code.is_some(),
                ContainerCondition::Success => match exit_code {
                    Some(Some(0)) => true,
                    Some(code) => {
                        return Readiness::Never(format!(
                            "Dependency container {target} exited with code {} instead of succeeding",
                            code.map_or("unknown".into(), |c| c.to_string())
                        ))
                    }
                    None => false,
                },
                ContainerCondition::Healthy => match (self.health.get(&target), exit_code) {
                    (Some(true), _) => true,
                    (_, Some(_)) => {
                        return Readiness::Never(format!("Dependency container {target} exited before it was healthy"))
                    }
                    _ => false,
                },
            };
            if !ready {
                return Readiness::Wait;
            }
        }
        Readiness::Ready
    }

    async fn start(&mut self, c: &ContainerDefinition) -> Result<(), String> {
        let name = c.name.clone().unwrap_or_default();
        let image = self.images.get(&name).cloned().ok_or_else(|| format!("no image for container {name}"))?;
        let id = spec::container_id(&self.id, &name);
        let (containers, volumes) = writable_dirs(&self.shared, &self.id);
        let dir = containers.join(&id);
        let rootfs =
            self.shared.images.mount_rootfs(&image, &dir).map_err(|e| format!("CannotCreateContainerError: {e}"))?;
        let cgroup = self.shared.cgroups.task(&self.id).ok().map(|c| c.path().to_string());
        let (endpoint_base, agent_env) = self.agent_env();
        let ctx = TaskContext {
            task_id: &self.id,
            definition: &self.def,
            cgroup,
            net_namespace: self.record.network.as_ref().map(|n| n.namespace.clone()).unwrap_or_default(),
            volumes_dir: &volumes,
            endpoint_base: &endpoint_base,
            agent_env: &agent_env,
            secrets: self.secrets.get(&name).map_or(&[], |s| s.environment.as_slice()),
        };
        for m in c.mount_points.iter().flatten() {
            if let Some(source) = m.source_volume.as_deref().and_then(|v| spec::volume_source(&ctx, v)) {
                let _ = std::fs::create_dir_all(source);
            }
        }
        let mut config = spec::container_config(c, &image, rootfs, &ctx);
        if self.shared.microvm {
            config.vm = Some(self.vm_resources());
        }
        let created_at = Some(report::rfc3339_now());
        if let Err(e) = self.shared.runtime.start(&config).await {
            let reason = format!("CannotStartContainerError: {e}");
            self.record.containers.insert(name, ContainerRecord { reason: Some(reason.clone()), ..Default::default() });
            self.save();
            return Err(reason);
        }
        let record = ContainerRecord {
            started: true,
            created_at,
            started_at: Some(report::rfc3339_now()),
            ..Default::default()
        };
        self.record.containers.insert(name.clone(), record);
        self.save();
        self.ship_logs(c);
        self.watch_exit(&name);
        if let Some(check) = c.health_check.clone() {
            tokio::spawn(health_loop(Arc::clone(&self.shared), id, name, check, self.events.clone()));
        }
        Ok(())
    }

    /// The task's microVM: its cpu and memory, and its awsvpc address as the guest's eth0.
    fn vm_resources(&self) -> VmResources {
        let network = self.record.network.as_ref().and_then(|n| {
            Some(GuestNetwork {
                interface: n.interface.clone()?,
                tap: MICROVM_TAP.into(),
                mac: n.mac.clone()?,
                address: format!("{}/{}", n.ipv4.as_deref()?, self.shared.subnet_prefix),
                gateway: n.gateway.clone()?,
            })
        });
        VmResources {
            vcpus: vcpus_for(self.cpu.as_deref().and_then(|c| c.parse().ok())),
            memory_mib: self.memory.as_deref().and_then(|m| m.parse().ok()).unwrap_or(DEFAULT_VM_MEMORY_MIB),
            network,
        }
    }

    /// Starts shipping the container's output, when its definition says awslogs.
    fn ship_logs(&mut self, c: &ContainerDefinition) {
        let log = self.shared.runtime.log_path(&spec::container_id(&self.id, c.name.as_deref().unwrap_or_default()));
        self.shippers.start(&self.shared.client, c, &self.id, log);
    }

    fn watch_exit(&self, name: &str) {
        let shared = Arc::clone(&self.shared);
        let events = self.events.clone();
        let id = spec::container_id(&self.id, name);
        let name = name.to_string();
        tokio::spawn(async move {
            let status = shared.runtime.wait(&id).await.unwrap_or_else(|e| ExitStatus {
                code: None,
                signal: None,
                oom_killed: false,
                finished_at: chrono::Utc::now(),
                reason: Some(format!("the container's status was lost: {e}")),
            });
            let _ = events.send(Event::Exited(name, status)).await;
        });
    }

    async fn report_running_once(&mut self) {
        let all_started = self.containers().iter().all(|c| {
            let name = c.name.as_deref().unwrap_or_default();
            self.record.containers.get(name).is_some_and(|r| r.started)
        });
        if all_started && !self.record.running_reported {
            self.report("RUNNING", None).await;
            self.record.running_reported = true;
            self.save();
        }
    }

    fn all_exited(&self) -> bool {
        let names = self.containers();
        !names.is_empty()
            && names.iter().all(|c| {
                self.record.containers.get(c.name.as_deref().unwrap_or_default()).is_some_and(|r| r.exit.is_some())
            })
    }

    /// Records an event; answers a stop reason when it stops the task.
    async fn on_event(&mut self, event: Event) -> Option<String> {
        match event {
            Event::Health(name, healthy) => {
                self.health.insert(name, healthy);
                let container_health = self
                    .health
                    .iter()
                    .map(|(name, healthy)| ContainerHealth {
                        name: name.clone(),
                        health_status: if *healthy { HealthStatus::Healthy } else { HealthStatus::Unhealthy },
                    })
                    .collect();
                let details = SubmitTaskDetailsRequest { container_health, ..Default::default() };
                report::send_details(&self.shared, &self.arn, details).await;
                None
            }
            Event::Exited(name, status) => {
                let essential = self
                    .containers()
                    .iter()
                    .find(|c| c.name.as_deref() == Some(&name))
                    .is_none_or(|c| c.essential.unwrap_or(true));
                let entry = self.record.containers.entry(name).or_default();
                if status.oom_killed {
                    entry.reason = Some(OOM_REASON.to_string());
                }
                entry.exit = Some(status);
                self.save();
                self.report(if self.record.running_reported { "RUNNING" } else { "PENDING" }, None).await;
                essential.then(|| ESSENTIAL_EXITED.to_string())
            }
        }
    }

    /// Stops every running container, each with its stop timeout (or the Spot `warning`),
    /// all at once.
    async fn stop_all(&mut self, warning: Option<Duration>) {
        self.desired_status = "STOPPED".into();
        let mut stops = tokio::task::JoinSet::new();
        for c in self.containers() {
            let name = c.name.clone().unwrap_or_default();
            if !self.record.containers.get(&name).is_some_and(|r| r.started && r.exit.is_none()) {
                continue;
            }
            let timeout = warning.unwrap_or_else(|| {
                c.stop_timeout.and_then(|s| u64::try_from(s).ok()).map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs)
            });
            let shared = Arc::clone(&self.shared);
            let id = spec::container_id(&self.id, &name);
            stops.spawn(async move { (name, shared.runtime.stop(&id, timeout).await) });
        }
        while let Some(joined) = stops.join_next().await {
            let Ok((name, result)) = joined else { continue };
            let entry = self.record.containers.entry(name).or_default();
            match result {
                Ok(status) => {
                    if status.oom_killed {
                        entry.reason = Some(OOM_REASON.to_string());
                    }
                    entry.exit = Some(status);
                }
                Err(e) => entry.reason = Some(format!("could not stop the container: {e}")),
            }
        }
        self.save();
    }

    /// Cleans up and reports STOPPED; the task's record goes last, once the server has it.
    async fn finish(&mut self, reason: Option<String>) {
        if let Some(refresher) = self.refresher.take() {
            refresher.abort();
        }
        let ids = self
            .containers()
            .iter()
            .map(|c| spec::container_id(&self.id, c.name.as_deref().unwrap_or_default()))
            .collect();
        self.shippers.drain().await;
        clean_up(&self.shared, &self.id, ids).await;
        let stopped_at = now();
        let mut report = self.snapshot("STOPPED", reason);
        report.execution_stopped_at = Some(stopped_at);
        self.flush_pending_report().await;
        report::send(&self.shared, &self.arn, report).await;
        let _ = std::fs::remove_file(record_path(&self.shared, &self.id));
    }

    async fn report(&mut self, status: &str, reason: Option<String>) {
        self.known_status = status.to_string();
        self.publish();
        self.flush_pending_report().await;
        report::send(&self.shared, &self.arn, self.snapshot(status, reason)).await;
    }

    /// Waits for the PENDING report, if it is still on its way.
    async fn flush_pending_report(&mut self) {
        if let Some(pending) = self.pending_report.take() {
            if let Err(e) = pending.await {
                tracing::warn!(task = %self.arn, error = %e, "sending the PENDING report");
            }
        }
    }

    /// Where the containers reach the task endpoints, and the variables the agent gives
    /// them: bridge and awsvpc tasks reach `169.254.170.2`, host-mode tasks share the
    /// host's loopback and reach the endpoints and the server there.
    fn agent_env(&self) -> (String, Vec<(String, String)>) {
        let host = self.mode() == NetworkMode::Host;
        let base = if host {
            format!("http://127.0.0.1:{}", self.shared.endpoint_port)
        } else {
            format!("http://{}", crate::endpoints::ENDPOINT_IP)
        };
        let mut env = Vec::new();
        if let Some(id) = &self.record.credentials_id {
            env.push(if host {
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(), format!("{base}/v2/credentials/{id}"))
            } else {
                ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".to_string(), format!("/v2/credentials/{id}"))
            });
        }
        let server = if host { self.shared.server.clone() } else { base.clone() };
        env.push(("AWS_ENDPOINT_URL".into(), server));
        env.push(("AWS_REGION".into(), self.shared.region.clone()));
        env.push(("AWS_DEFAULT_REGION".into(), self.shared.region.clone()));
        let fargate = self.task.launch_type == Some(berth_api::model::LaunchType::Fargate);
        env.push(("AWS_EXECUTION_ENV".into(), if fargate { "AWS_ECS_FARGATE" } else { "AWS_ECS_EC2" }.into()));
        (base, env)
    }

    /// The task's status with every container's, as one idempotent report.
    fn snapshot(&self, status: &str, reason: Option<String>) -> Report {
        let bindings = self.record.network.as_ref().map(|n| n.bindings.clone()).unwrap_or_default();
        let containers = self
            .containers()
            .iter()
            .map(|c| {
                let name = c.name.clone().unwrap_or_default();
                let r = self.record.containers.get(&name).cloned().unwrap_or_default();
                let ports: Vec<u16> = c
                    .port_mappings
                    .iter()
                    .flatten()
                    .filter_map(|m| m.container_port.and_then(|p| u16::try_from(p).ok()))
                    .collect();
                let mine: Vec<_> = bindings.iter().filter(|b| ports.contains(&b.container_port)).cloned().collect();
                let container_status = match (&r.exit, r.started, status) {
                    (Some(_), _, _) | (None, _, "STOPPED") => "STOPPED",
                    (None, true, _) => "RUNNING",
                    (None, false, _) => "PENDING",
                };
                ContainerStateChange {
                    container_name: Some(name.clone()),
                    runtime_id: r.started.then(|| spec::container_id(&self.id, &name)),
                    exit_code: r.exit.as_ref().and_then(|e| e.code),
                    network_bindings: (!mine.is_empty()).then(|| report::bindings(&mine)),
                    reason: r.reason.clone().or_else(|| r.exit.as_ref().and_then(|e| e.reason.clone())),
                    status: Some(container_status.to_string()),
                    image_digest: self.images.get(&name).map(|i| i.manifest_digest.clone()),
                }
            })
            .collect();
        Report {
            status: status.to_string(),
            reason,
            containers,
            pull_started_at: self.pull_started_at,
            pull_stopped_at: self.pull_stopped_at,
            execution_stopped_at: None,
        }
    }
}

enum Readiness {
    Ready,
    Wait,
    Never(String),
}

fn network_mode(mode: NetworkMode) -> Mode {
    match mode {
        NetworkMode::Awsvpc => Mode::Awsvpc,
        NetworkMode::Host => Mode::Host,
        NetworkMode::None => Mode::None,
        NetworkMode::Bridge => Mode::Bridge,
    }
}

/// The host ports the task asks for: static ones, and dynamic ones (hostPort 0 or unset in
/// bridge mode). In awsvpc mode ports are the task's own and nothing is published.
fn port_requests(def: &TaskDefinition) -> Vec<PortRequest> {
    let mode = def.network_mode.unwrap_or(NetworkMode::Bridge);
    if mode != NetworkMode::Bridge {
        return Vec::new();
    }
    def.container_definitions
        .iter()
        .flatten()
        .flat_map(|c| c.port_mappings.iter().flatten())
        .filter_map(|m| {
            Some(PortRequest {
                container_port: u16::try_from(m.container_port?).ok()?,
                host_port: m.host_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0),
                protocol: match m.protocol {
                    Some(berth_api::model::TransportProtocol::Udp) => Protocol::Udp,
                    _ => Protocol::Tcp,
                },
            })
        })
        .collect()
}

/// Runs a container's health check as ECS does: after `startPeriod` failures count, and
/// `retries` consecutive failures make it UNHEALTHY; a success makes it HEALTHY.
async fn health_loop(
    shared: Arc<Shared>,
    id: String,
    name: String,
    check: berth_api::model::HealthCheck,
    events: mpsc::Sender<Event>,
) {
    let secs = |v: Option<i32>, d: u64| {
        v.and_then(|s| u64::try_from(s).ok()).map_or(Duration::from_secs(d), Duration::from_secs)
    };
    let interval = secs(check.interval, 30);
    let timeout = secs(check.timeout, 5);
    let retries = check.retries.unwrap_or(3).max(1);
    let start_period = secs(check.start_period, 0);
    let command = check.command.unwrap_or_default();
    let args: Vec<String> = match command.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), command[1..].join(" ")],
        Some("CMD") => command[1..].to_vec(),
        _ => return,
    };
    let began = tokio::time::Instant::now();
    let mut failures = 0;
    let mut last: Option<bool> = None;
    loop {
        let ok = matches!(shared.runtime.exec(&id, &args, timeout).await, Ok(0));
        if ok {
            failures = 0;
        } else if began.elapsed() >= start_period {
            failures += 1;
        }
        let now_healthy = if ok {
            Some(true)
        } else if failures >= retries {
            Some(false)
        } else {
            last
        };
        if now_healthy != last {
            if let Some(h) = now_healthy {
                if events.send(Event::Health(name.clone(), h)).await.is_err() {
                    return;
                }
            }
            last = now_healthy;
        }
        tokio::time::sleep(interval).await;
        if !matches!(shared.runtime.state(&id).await, Ok(ContainerState::Running { .. })) {
            return;
        }
    }
}
