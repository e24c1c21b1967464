//! The task engine: converges the tasks running on this host to the server's assignments.
//!
//! One runner (an async task, see [`task`]) per task drives the ECS lifecycle. The engine
//! starts runners for new assignments, forwards desired-status changes, and forgets
//! runners that finished. Each runner keeps a small record on disk (`tasks/<id>.json`) so
//! that a restarted agent adopts its containers instead of starting them again.

mod report;
mod spec;
mod task;

pub(crate) use spec::container_id;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::agent::Assignment;
use berth_client::EcsClient;
use berth_runtime::cgroups::Hierarchy;
use berth_runtime::container::{Runtime, ShimCommand};
use berth_runtime::images::{ImageStore, ImageStoreConfig, PullPolicy, RegistryAuth};
use berth_runtime::network::{NetworkConfig, Networks};
use berth_runtime::storage::TaskStorage;
use tokio::sync::{watch, Mutex};

use crate::config::AgentConfig;
use crate::endpoints::{self, Registry};
use crate::AgentError;

/// What every runner shares.
pub(crate) struct Shared {
    pub client: Arc<EcsClient>,
    pub cluster: String,
    pub runtime: Runtime,
    pub images: ImageStore,
    pub networks: Networks,
    pub cgroups: Hierarchy,
    pub records: PathBuf,
    pub volumes: PathBuf,
    pub containers: PathBuf,
    /// The size-limited file systems of Fargate tasks (their writable layers and volumes).
    pub storage: TaskStorage,
    pub pull_policy: PullPolicy,
    /// What the task endpoints serve.
    pub endpoints: Arc<Registry>,
    /// The port of the task endpoints (host-mode containers reach them on loopback).
    pub endpoint_port: u16,
    /// The region the agent signs for, given to containers as `AWS_REGION`.
    pub region: String,
    /// The server's endpoint (host-mode containers reach it directly).
    pub server: String,
    /// This agent's container instance ARN, once registered.
    pub instance: std::sync::OnceLock<String>,
    pub spot_warning: std::time::Duration,
    /// Every task runs in its own microVM (`--isolation microvm`).
    pub microvm: bool,
    /// The prefix length of the tasks' subnet (a microVM guest configures its address).
    pub subnet_prefix: u8,
}

/// What the server wants of a task: its desired status, and for a Spot interruption the
/// warning its containers get between SIGTERM and SIGKILL (instead of their stopTimeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    pub status: String,
    pub warning: Option<std::time::Duration>,
}

impl Desired {
    pub fn stop(&self) -> bool {
        self.status == "STOPPED"
    }
}

struct Runner {
    desired: watch::Sender<Desired>,
    done: tokio::task::JoinHandle<()>,
}

/// The task engine of one agent.
pub struct Engine {
    shared: Arc<Shared>,
    runners: Mutex<Runners>,
    /// Whether this process has swept what no assigned task owns (done once, after the
    /// first assignment list).
    swept: std::sync::atomic::AtomicBool,
}

/// Live runners, and the tasks whose runner finished (reported STOPPED) but which an
/// answer computed before that report may still list: those must not start again.
#[derive(Default)]
struct Runners {
    live: HashMap<String, Runner>,
    finished: HashSet<String>,
}

/// `10.213.254.0/24` -> 24.
fn subnet_prefix(subnet: &str) -> Option<u8> {
    subnet.split_once('/')?.1.parse().ok()
}

fn runtime_err(what: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::Runtime(format!("{what}: {e}"))
}

impl Engine {
    /// Prepares the runtime under the agent's data dir.
    pub async fn open(config: &AgentConfig, client: Arc<EcsClient>) -> Result<Self, AgentError> {
        let dir = &config.data_dir;
        let records = dir.join("tasks");
        for d in [&records, &dir.join("volumes"), &dir.join("containers")] {
            std::fs::create_dir_all(d).map_err(|source| AgentError::Io { path: d.clone(), source })?;
        }
        let shim = ShimCommand::current_exe().map_err(|e| runtime_err("the shim", e))?;
        let mut runtime =
            Runtime::new(&dir.join("runtime"), shim).map_err(|e| runtime_err("the container runtime", e))?;
        if let Some(vm) = &config.microvm {
            runtime = runtime.with_microvm(vm.clone());
        }
        let images = ImageStore::open_with(
            &dir.join("images"),
            ImageStoreConfig {
                insecure_registries: config.insecure_registries.clone(),
                credentials: config
                    .registry_credentials
                    .iter()
                    .map(|(registry, username, password)| {
                        (registry.clone(), RegistryAuth { username: username.clone(), password: password.clone() })
                    })
                    .collect(),
                ..Default::default()
            },
        )
        .map_err(|e| runtime_err("the image store", e))?;
        let mut net = NetworkConfig::new(dir.join("network"));
        net.bridge = config.bridge.clone();
        net.subnet = config.subnet.clone();
        let networks = Networks::new(net).map_err(|e| runtime_err("task networking", e))?;
        let cgroups = Hierarchy::detect().map_err(|e| runtime_err("cgroups", e))?;
        let pull_policy = PullPolicy::from_ecs(&config.pull_behavior)
            .ok_or_else(|| runtime_err("ECS_IMAGE_PULL_BEHAVIOR", &config.pull_behavior))?;
        let registry = Arc::new(Registry::default());
        let endpoint_port =
            endpoints::serve(Arc::clone(&registry), Arc::new(cgroups.clone()), &config.server, &config.bridge, dir)
                .await?;
        let shared = Shared {
            client,
            cluster: config.cluster.clone(),
            runtime,
            images,
            networks,
            cgroups,
            records,
            volumes: dir.join("volumes"),
            containers: dir.join("containers"),
            storage: TaskStorage::new(dir.join("storage")),
            pull_policy,
            endpoints: registry,
            endpoint_port,
            region: config.credentials.region.clone(),
            server: config.server.clone(),
            instance: std::sync::OnceLock::new(),
            spot_warning: config.spot_warning,
            microvm: config.microvm.is_some(),
            // Networks::new has validated the subnet.
            subnet_prefix: subnet_prefix(&config.subnet).unwrap_or(24),
        };
        Ok(Self { shared: Arc::new(shared), runners: Mutex::new(Runners::default()), swept: Default::default() })
    }

    /// Removes the containers, networks and records of tasks the server no longer assigns
    /// here: what a crash between a task's STOPPED report and its cleanup, or a task the
    /// server stopped for good while the agent was away, leaves behind. The server's list
    /// holds every task here that is not STOPPED, so nothing else can still be wanted.
    async fn sweep(&self, listed: &HashSet<String>) {
        let assigned: HashSet<&str> = listed.iter().filter_map(|arn| arn.rsplit('/').next()).collect();
        let containers = self.shared.runtime.list().unwrap_or_default();
        let mut stale: HashMap<String, Vec<String>> = HashMap::new();
        for id in containers {
            if let Some((task, _)) = id.split_once('-').filter(|(task, _)| !assigned.contains(task)) {
                stale.entry(task.to_string()).or_default().push(id);
            }
        }
        let networks = self.shared.networks.recorded_tasks().unwrap_or_default();
        let records = std::fs::read_dir(&self.shared.records).into_iter().flatten().flatten();
        let recorded = records.filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(String::from));
        let stored = self.shared.storage.tasks();
        for task in networks.into_iter().chain(recorded).chain(stored).filter(|t| !assigned.contains(t.as_str())) {
            stale.entry(task).or_default();
        }
        for (task, ids) in stale {
            tracing::info!(task = %task, containers = ids.len(), "removing what a task no longer assigned here left");
            for id in &ids {
                let _ = self.shared.runtime.stop(id, std::time::Duration::from_secs(1)).await;
            }
            task::clean_up(&self.shared, &task, ids).await;
            let _ = std::fs::remove_file(task::record_path(&self.shared, &task));
        }
    }

    /// Records the container instance this agent registered as (its tasks' credentials are
    /// fetched in its name).
    pub fn set_instance(&self, arn: &str) {
        let _ = self.shared.instance.set(arn.to_string());
    }

    /// Converges to `assignments`: every task not STOPPED that the server placed here.
    pub async fn reconcile(&self, assignments: Vec<Assignment>) {
        let mut guard = self.runners.lock().await;
        let runners = &mut *guard;
        let done: Vec<String> =
            runners.live.iter().filter(|(_, r)| r.done.is_finished()).map(|(a, _)| a.clone()).collect();
        for arn in done {
            runners.live.remove(&arn);
            runners.finished.insert(arn);
        }
        let listed: HashSet<String> = assignments.iter().filter_map(|a| a.task.task_arn.clone()).collect();
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.sweep(&listed).await;
        }
        runners.finished.retain(|arn| listed.contains(arn));
        for a in assignments {
            let arn = a.task.task_arn.clone().unwrap_or_default();
            if runners.finished.contains(&arn) {
                continue;
            }
            let spot = a.task.stop_code == Some(berth_api::model::TaskStopCode::SpotInterruption);
            let desired = Desired {
                status: a.task.desired_status.clone().unwrap_or_else(|| "RUNNING".into()),
                warning: spot.then_some(self.shared.spot_warning),
            };
            match runners.live.get(&arn) {
                Some(r) => {
                    r.desired.send_if_modified(|d| std::mem::replace(d, desired.clone()) != desired);
                }
                None => {
                    let (tx, rx) = watch::channel(desired);
                    let done = tokio::spawn(task::run(Arc::clone(&self.shared), a, rx));
                    runners.live.insert(arn, Runner { desired: tx, done });
                }
            }
        }
    }
}
