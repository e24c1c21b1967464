//! Turning a task definition, its overrides and a placement into a new ECS `Task`.

use berth_api::model::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, Container, ContainerDefinition, EphemeralStorage, LaunchType,
    NetworkConfiguration, NetworkMode, PropagateTags, Tag, Task, TaskDefinition, TaskOverride,
};
use berth_api::task_definition::{parse_cpu, parse_memory, with_overrides};
use berth_api::{ApiError, ResourceKind};

use crate::fargate;
use crate::placement;
use crate::scheduler::{Demand, RequiredAttribute};
use crate::state::{now, Call, State};
use crate::task_definitions;

/// What a task takes from its container instance while it is not STOPPED.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// CPU units.
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    /// Static host ports (TCP).
    pub ports_tcp: Vec<u16>,
    /// Static host ports (UDP).
    pub ports_udp: Vec<u16>,
}

/// The task-level cpu and memory in force (override, else definition), as CPU units and MiB.
fn task_size(def: &TaskDefinition, overrides: Option<&TaskOverride>) -> Result<(Option<u32>, Option<u32>), ApiError> {
    let cpu = overrides.and_then(|o| o.cpu.clone()).or_else(|| def.cpu.clone());
    let memory = overrides.and_then(|o| o.memory.clone()).or_else(|| def.memory.clone());
    Ok((cpu.as_deref().map(parse_cpu).transpose()?, memory.as_deref().map(parse_memory).transpose()?))
}

/// What the task reserves on an instance: task-level sizes, else the containers' sums;
/// and the static host ports it publishes.
pub fn reservation(def: &TaskDefinition, overrides: Option<&TaskOverride>) -> Result<Reservation, ApiError> {
    let containers = with_overrides(def, overrides)?;
    let (task_cpu, task_memory) = task_size(def, overrides)?;
    let cpu = task_cpu.map_or_else(|| containers.iter().map(|c| i64::from(c.cpu.unwrap_or(0))).sum(), i64::from);
    let memory = task_memory.map_or_else(
        || containers.iter().map(|c| i64::from(c.memory.or(c.memory_reservation).unwrap_or(0))).sum(),
        i64::from,
    );
    let mode = def.network_mode.unwrap_or(NetworkMode::Bridge);
    let mut r = Reservation { cpu, memory, ..Reservation::default() };
    if mode == NetworkMode::Awsvpc || mode == NetworkMode::None {
        return Ok(r);
    }
    for m in containers.iter().flat_map(|c| c.port_mappings.as_deref().unwrap_or_default()) {
        let host = m.host_port.filter(|p| *p > 0).or(m.container_port.filter(|_| mode == NetworkMode::Host));
        let Some(port) = host.and_then(|p| u16::try_from(p).ok()) else { continue };
        match m.protocol {
            Some(berth_api::model::TransportProtocol::Udp) => r.ports_udp.push(port),
            _ => r.ports_tcp.push(port),
        }
    }
    Ok(r)
}

/// What a RunTask or StartTask request says about the tasks to create.
pub struct LaunchRequest {
    pub task_definition: Option<String>,
    pub overrides: Option<TaskOverride>,
    pub group: Option<String>,
    pub started_by: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub propagate_tags: Option<PropagateTags>,
    pub enable_ecs_managed_tags: bool,
    pub enable_execute_command: bool,
    /// Whether the definition may be INACTIVE: a service keeps running (and scaling) a
    /// definition deregistered after the service started using it, as ECS does.
    pub may_be_inactive: bool,
    pub launch_type: Option<LaunchType>,
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub platform_version: Option<String>,
}

/// What a Fargate launch adds: the task's network and platform, and each copy's provider.
pub struct FargateLaunch {
    /// The awsvpc configuration its ENI reports.
    pub network: AwsVpcConfiguration,
    /// The named platform version (`LATEST` resolved).
    pub platform_version: String,
    /// The capacity provider of each copy (none for `launchType: FARGATE`).
    pub providers: Vec<Option<String>>,
}

/// Where one copy of a launch runs.
pub struct Placed<'a> {
    /// The container instance (a pool instance for Fargate).
    pub instance_arn: &'a str,
    /// Its availability zone.
    pub zone: Option<String>,
    /// The Fargate capacity provider of this copy.
    pub provider: Option<&'a str>,
}

/// Everything RunTask and StartTask share about the tasks they create, resolved.
pub struct Launch {
    pub cluster: String,
    pub definition: TaskDefinition,
    pub overrides: Option<TaskOverride>,
    /// The task group (`family:NAME` unless the request names one).
    pub group: String,
    pub started_by: Option<String>,
    pub tags: Vec<Tag>,
    pub enable_execute_command: bool,
    /// What each task reserves on its instance.
    pub reservation: Reservation,
    /// Set when the tasks run on Fargate capacity.
    pub fargate: Option<FargateLaunch>,
}

impl Launch {
    /// What each copy needs of its instance: the reservation, and the definition's
    /// `requiresAttributes` (an instance without one of them fails with `ATTRIBUTE`).
    pub fn demand(&self) -> Demand {
        let requires = self
            .definition
            .requires_attributes
            .iter()
            .flatten()
            .filter_map(|a| Some(RequiredAttribute { name: a.name.clone()?, value: a.value.clone() }))
            .collect();
        placement::demand(&self.reservation, &self.group, requires)
    }

    /// Resolves a request: the definition (with its tags), the reservation, the group, the
    /// tags, and on `target` Fargate what ECS checks of a Fargate launch.
    pub fn new(
        cluster: &str,
        stored: task_definitions::Stored,
        r: LaunchRequest,
        target: fargate::Target,
    ) -> Result<Self, ApiError> {
        let definition = stored.task_definition;
        let fargate = match target {
            fargate::Target::Ec2 => None,
            fargate::Target::Fargate { providers } => Some(FargateLaunch {
                network: fargate::check_launch(&definition, r.network_configuration.as_ref())?,
                platform_version: fargate::platform_version(r.platform_version.as_deref())?,
                providers,
            }),
        };
        let reservation = reservation(&definition, r.overrides.as_ref())?;
        if fargate.is_some() {
            fargate::check_size(&reservation)?;
        }
        let family = definition.family.clone().unwrap_or_default();
        let tags =
            task_tags(r.tags.as_deref(), stored.tags.as_deref(), r.propagate_tags, r.enable_ecs_managed_tags, cluster);
        Ok(Self {
            cluster: cluster.to_string(),
            definition,
            overrides: r.overrides,
            group: r.group.unwrap_or_else(|| format!("family:{family}")),
            started_by: r.started_by,
            tags,
            enable_execute_command: r.enable_execute_command,
            reservation,
            fargate,
        })
    }

    /// The cluster whose instances run the tasks: the user's, or the Fargate pool.
    pub fn capacity_cluster(&self) -> &str {
        if self.fargate.is_some() {
            fargate::POOL
        } else {
            &self.cluster
        }
    }

    /// A new PROVISIONING task where `placed` says.
    pub fn task(&self, state: &State, call: &Call, placed: &Placed<'_>) -> Result<Task, ApiError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let task_arn = state.arn(call, ResourceKind::Task, format!("{}/{id}", self.cluster)).to_string();
        let containers = with_overrides(&self.definition, self.overrides.as_ref())?
            .iter()
            .map(|c| container(state, call, &self.cluster, &id, &task_arn, c))
            .collect();
        let (cpu, memory) = task_size(&self.definition, self.overrides.as_ref())?;
        let task = Task {
            attachments: Some(Vec::new()),
            attributes: Some(Vec::new()),
            availability_zone: placed.zone.clone(),
            cluster_arn: Some(state.arn(call, ResourceKind::Cluster, &self.cluster).to_string()),
            container_instance_arn: Some(placed.instance_arn.to_string()),
            containers: Some(containers),
            cpu: cpu.map(|c| c.to_string()),
            created_at: Some(now()),
            desired_status: Some("RUNNING".into()),
            enable_execute_command: Some(self.enable_execute_command),
            group: Some(self.group.clone()),
            last_status: Some("PROVISIONING".into()),
            launch_type: Some(LaunchType::Ec2),
            memory: memory.map(|m| m.to_string()),
            overrides: Some(self.overrides.clone().unwrap_or_else(|| TaskOverride {
                container_overrides: Some(Vec::new()),
                inference_accelerator_overrides: Some(Vec::new()),
                ..Default::default()
            })),
            started_by: self.started_by.clone(),
            tags: Some(self.tags.clone()),
            task_arn: Some(task_arn),
            task_definition_arn: self.definition.task_definition_arn.clone(),
            version: Some(1),
            ..Default::default()
        };
        Ok(match &self.fargate {
            None => task,
            Some(f) => self.on_fargate(task, f, placed.provider),
        })
    }

    /// A task as ECS reports one on Fargate: no instance, the platform, the provider, the
    /// ephemeral storage, and an ENI attachment that is created before the task starts.
    fn on_fargate(&self, task: Task, f: &FargateLaunch, provider: Option<&str>) -> Task {
        let size = self.definition.ephemeral_storage.as_ref().and_then(|e| e.size_in_gi_b);
        let subnet = f.network.subnets.iter().flatten().next().cloned().unwrap_or_default();
        let detail =
            |name: &str, value: String| berth_api::model::KeyValuePair { name: Some(name.into()), value: Some(value) };
        Task {
            container_instance_arn: None,
            launch_type: Some(LaunchType::Fargate),
            capacity_provider_name: provider.map(str::to_string),
            platform_version: Some(f.platform_version.clone()),
            platform_family: Some(fargate::PLATFORM_FAMILY.into()),
            ephemeral_storage: Some(EphemeralStorage {
                size_in_gi_b: Some(size.unwrap_or(fargate::DEFAULT_EPHEMERAL_GIB)),
            }),
            attachments: Some(vec![berth_api::model::Attachment {
                id: Some(uuid::Uuid::new_v4().to_string()),
                r#type: Some("ElasticNetworkInterface".into()),
                status: Some("PRECREATED".into()),
                details: Some(vec![detail("subnetId", subnet)]),
            }]),
            ..task
        }
    }
}

fn container(
    state: &State,
    call: &Call,
    cluster: &str,
    task_id: &str,
    task_arn: &str,
    c: &ContainerDefinition,
) -> Container {
    let id = uuid::Uuid::new_v4().to_string();
    Container {
        container_arn: Some(
            berth_api::Arn::new(
                &call.region,
                &state.account,
                ResourceKind::Container,
                format!("{cluster}/{task_id}/{id}"),
            )
            .to_string(),
        ),
        task_arn: Some(task_arn.to_string()),
        name: c.name.clone(),
        image: c.image.clone(),
        last_status: Some("PENDING".into()),
        network_interfaces: Some(Vec::new()),
        cpu: Some(c.cpu.unwrap_or(0).to_string()),
        memory: c.memory.map(|m| m.to_string()),
        memory_reservation: c.memory_reservation.map(|m| m.to_string()),
        ..Default::default()
    }
}

/// The task's tags: the request's, the definition's with `propagateTags: TASK_DEFINITION`,
/// and with `enableECSManagedTags` the `aws:ecs:clusterName` tag ECS adds.
fn task_tags(
    requested: Option<&[Tag]>,
    definition_tags: Option<&[Tag]>,
    propagate: Option<PropagateTags>,
    managed: bool,
    cluster: &str,
) -> Vec<Tag> {
    let mut tags: Vec<Tag> = requested.unwrap_or_default().to_vec();
    if propagate == Some(PropagateTags::TaskDefinition) {
        for t in definition_tags.unwrap_or_default() {
            if !tags.iter().any(|o| o.key == t.key) {
                tags.push(t.clone());
            }
        }
    }
    if managed {
        tags.push(Tag { key: Some("aws:ecs:clusterName".into()), value: Some(cluster.to_string()) });
    }
    tags
}
