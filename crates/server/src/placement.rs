//! Per-cluster placement indexes (the scheduler's) kept in memory, loaded from the store on
//! first use and dropped whenever instances change, so they are rebuilt from the truth.
//!
//! Placement decisions in one cluster are serialized by the cluster's lock; the store's
//! compare-and-swap on the instance record guards what is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_api::model::{ContainerInstance, Failure, PlacementConstraint, PlacementStrategy, Resource};
use berth_api::ApiError;

use crate::container_instances;
use crate::records;
use crate::scheduler::{Constraint, Demand, InstanceState, Placement, RequiredAttribute, Resources, Strategy};
use crate::state::State;
use crate::tasks::{self, Reservation};

/// Where copies went, and why the others did not go anywhere.
pub struct Outcome {
    /// Instance ARNs, one per placed copy.
    pub placed: Vec<String>,
    /// ECS failures for the copies that did not fit.
    pub failures: Vec<Failure>,
}

/// The placement index of every cluster used since it last changed.
#[derive(Default)]
pub struct Placements {
    clusters: tokio::sync::Mutex<HashMap<String, Placement>>,
}

impl Placements {
    /// Places `count` copies of a task in `cluster`.
    pub async fn place(
        &self,
        state: &State,
        cluster: &str,
        demand: &Demand,
        count: usize,
        constraints: &[PlacementConstraint],
        strategies: &[PlacementStrategy],
    ) -> Result<Outcome, ApiError> {
        let constraints = Constraint::from_models(constraints)?;
        let strategies = match Strategy::from_models(strategies)? {
            s if s.is_empty() => Strategy::run_task_default(),
            s => s,
        };
        let mut map = self.clusters.lock().await;
        let index = loaded(&mut map, state, cluster).await?;
        if index.is_empty() {
            return Err(ApiError::invalid("No Container Instances were found in your cluster."));
        }
        let result = index.place(demand, count, &constraints, &strategies, &mut rand::rng());
        Ok(Outcome { placed: result.placed, failures: result.failures.into_iter().map(Failure::from).collect() })
    }

    /// Places one copy on instance `arn` (StartTask); the inner error is the ECS failure.
    pub async fn place_on(
        &self,
        state: &State,
        cluster: &str,
        arn: &str,
        demand: &Demand,
    ) -> Result<Result<(), Failure>, ApiError> {
        let mut map = self.clusters.lock().await;
        let index = loaded(&mut map, state, cluster).await?;
        Ok(index.place_on(arn, demand).map_err(Failure::from))
    }

    /// Gives back what a task held (it stopped, or its write failed).
    pub async fn release(&self, cluster: &str, instance_arn: &str, demand: &Demand) {
        if let Some(index) = self.clusters.lock().await.get_mut(cluster) {
            index.release(instance_arn, demand);
        }
    }

    /// Forgets the cluster's index: its instances changed.
    pub async fn invalidate(&self, cluster: &str) {
        self.clusters.lock().await.remove(cluster);
    }
}

async fn loaded<'a>(
    map: &'a mut HashMap<String, Placement>,
    state: &State,
    cluster: &str,
) -> Result<&'a mut Placement, ApiError> {
    if !map.contains_key(cluster) {
        let index = load(state, cluster).await?;
        map.insert(cluster.to_string(), index);
    }
    map.get_mut(cluster).ok_or_else(|| ApiError::server("placement index vanished"))
}

/// Builds the cluster's index from its instance records and its tasks that are not STOPPED.
async fn load(state: &State, cluster: &str) -> Result<Placement, ApiError> {
    let mut groups: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    for (_, t) in records::list_all::<tasks::Stored>(&*state.store, &format!("task/{cluster}/")).await? {
        if t.task.last_status.as_deref() == Some("STOPPED") {
            continue;
        }
        let instance = t.task.container_instance_arn.unwrap_or_default();
        *groups.entry(instance).or_default().entry(t.task.group.unwrap_or_default()).or_default() += 1;
    }
    let mut index = Placement::default();
    let prefix = format!("instance/{cluster}/");
    for (_, i) in records::list_all::<ContainerInstance>(&*state.store, &prefix).await? {
        if i.status.as_deref() == Some("INACTIVE") {
            continue;
        }
        let arn = i.container_instance_arn.clone().unwrap_or_default();
        index.upsert(instance_state(&i, groups.remove(&arn).unwrap_or_default()));
    }
    Ok(index)
}

fn instance_state(i: &ContainerInstance, task_groups: BTreeMap<String, u32>) -> InstanceState {
    let arn = i.container_instance_arn.clone().unwrap_or_default();
    InstanceState {
        id: container_instances::id_of(&arn).to_string(),
        arn,
        ec2_instance_id: i.ec2_instance_id.clone().unwrap_or_default(),
        active: i.status.as_deref() == Some("ACTIVE"),
        agent_connected: i.agent_connected.unwrap_or(false),
        agent_version: i.version_info.as_ref().and_then(|v| v.agent_version.clone()),
        registered_at: i.registered_at,
        attributes: i
            .attributes
            .iter()
            .flatten()
            .filter_map(|a| Some((a.name.clone()?, a.value.clone().unwrap_or_default())))
            .collect(),
        registered: resources(i.registered_resources.as_deref().unwrap_or_default()),
        remaining: resources(i.remaining_resources.as_deref().unwrap_or_default()),
        running_tasks: u32::try_from(i.running_tasks_count.unwrap_or(0) + i.pending_tasks_count.unwrap_or(0))
            .unwrap_or(0),
        task_groups,
    }
}

fn resources(list: &[Resource]) -> Resources {
    let ports = |name: &str| -> BTreeSet<u16> {
        list.iter()
            .find(|r| r.name.as_deref() == Some(name))
            .and_then(|r| r.string_set_value.as_ref())
            .map(|s| s.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    };
    Resources {
        cpu: i64::from(container_instances::resource_value(list, "CPU")),
        memory: i64::from(container_instances::resource_value(list, "MEMORY")),
        ports_tcp: ports("PORTS"),
        ports_udp: ports("PORTS_UDP"),
    }
}

/// What a task in `group` holding `r` takes from its instance: the unit of placement and
/// of release.
pub fn demand(r: &Reservation, group: &str, requires: Vec<RequiredAttribute>) -> Demand {
    Demand {
        cpu: r.cpu,
        memory: r.memory,
        ports_tcp: r.ports_tcp.clone(),
        ports_udp: r.ports_udp.clone(),
        group: group.to_string(),
        requires,
    }
}
