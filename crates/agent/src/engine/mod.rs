//! The task engine: converges the tasks running on this host to the server's assignments.
//!
//! One runner (an async task, see [`task`]) per task drives the ECS lifecycle. The engine
//! starts runners for new assignments, forwards desired-status changes, and forgets
//! runners that finished. Each runner keeps a small record on disk (`tasks/<id>.json`) so
//! that a restarted agent adopts its containers instead of starting them again.

mod report;
mod spec;
mod task;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::agent::Assignment;
use berth_client::EcsClient;
use berth_runtime::cgroups::Hierarchy;
use berth_runtime::container::{Runtime, ShimCommand};
use berth_runtime::images::{ImageStore, ImageStoreConfig, PullPolicy, RegistryAuth};
use berth_runtime::network::{NetworkConfig, Networks};
use tokio::sync::{watch, Mutex};

use crate::config::AgentConfig;
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
    pub pull_policy: PullPolicy,
}

struct Runner {
    desired: watch::Sender<String>,
    done: tokio::task::JoinHandle<()>,
}

/// The task engine of one agent.
pub struct Engine {
    shared: Arc<Shared>,
    runners: Mutex<Runners>,
}

/// Live runners, and the tasks whose runner finished (reported STOPPED) but which an
/// answer computed before that report may still list: those must not start again.
#[derive(Default)]
struct Runners {
    live: HashMap<String, Runner>,
    finished: HashSet<String>,
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
        let runtime = Runtime::new(&dir.join("runtime"), shim).map_err(|e| runtime_err("the container runtime", e))?;
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
            pull_policy,
        };
        Ok(Self { shared: Arc::new(shared), runners: Mutex::new(Runners::default()) })
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
        runners.finished.retain(|arn| listed.contains(arn));
        for a in assignments {
            let arn = a.task.task_arn.clone().unwrap_or_default();
            if runners.finished.contains(&arn) {
                continue;
            }
            let desired = a.task.desired_status.clone().unwrap_or_else(|| "RUNNING".into());
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
