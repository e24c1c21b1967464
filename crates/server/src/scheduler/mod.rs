//! Task placement: which container instance each new task goes to. Pure, in-memory logic; the
//! server keeps one [`Placement`] per cluster, rebuilt from the store at start and updated on
//! every change, and RunTask, StartTask and the service controller ask it where to put tasks.
//!
//! # Behavior
//!
//! ECS's process ("Amazon ECS task placement"): keep the instances that have the CPU, memory
//! and ports the task needs, then those that satisfy the placement constraints, then order them
//! by the placement strategies and take the first.
//!
//! - Candidates are the container instances that are ACTIVE with a connected agent. DRAINING or
//!   INACTIVE instances are never chosen and never reported.
//! - `binpack` on `cpu` or `memory` prefers the instance with the least remaining of it that still
//!   fits. `spread` on `instanceId`/`host` prefers the instance with the fewest tasks of the
//!   task's group; on `attribute:NAME`, the instances whose value of NAME has the fewest tasks of
//!   the group across the cluster (an instance without the attribute counts as one more value).
//!   "Service tasks are spread based on the tasks from that service. Standalone tasks are spread
//!   based on the tasks from the same task group": the group is `service:NAME` or
//!   `family:NAME` (or the RunTask `group`). `random` picks uniformly.
//! - Strategies chain in order, lexicographically: each orders the candidates, ties are broken by
//!   the next strategy, and remaining ties at random. Strategies are best effort and never
//!   exclude a candidate; constraints are binding.
//! - `distinctInstance`: no two tasks of the group on one instance. `memberOf`: the instance
//!   satisfies a cluster query expression ([`berth_api::query`]), evaluated live, so
//!   `task:group` and `runningTasksCount` see the copies placed earlier in the same call.
//! - Every copy placed is reserved at once (CPU, memory, host ports, group count, task count), so
//!   later copies of the same call see it. [`Placement::release`] gives it back.
//! - When a copy fits nowhere, every later copy of the call fails too (reservations only grow),
//!   so placement stops and reports, as RunTask's `failures` do, one entry per ACTIVE instance
//!   with the first reason it was rejected: `AGENT` (agent disconnected), `ATTRIBUTE` (lacks an
//!   attribute the task requires), `RESOURCE:CPU`, `RESOURCE:MEMORY`, `RESOURCE:PORTS`,
//!   `RESOURCE:PORTS_UDP`, then `DistinctInstance placement constraint unsatisfied.` and
//!   `MemberOf placement constraint unsatisfied.`. With no instance at all the list is empty:
//!   RunTask answers that case with `InvalidParameterException` "No Container Instances were
//!   found in your cluster." (see [`Placement::is_empty`]).
//!
//! # Index
//!
//! Placement does not scan every instance per task. Each placeable instance sits in two ordered
//! sets keyed `(remaining cpu | memory, salt, slot)`; binpack walks the set from the task's need
//! upward and takes the first instance that passes the checks. Within a tier of equal remaining it
//! starts at a random salt (salts are redrawn at every change), which breaks ties at random and
//! keeps the instances a constraint rules out from piling up in front of the walk.
//!
//! A `spread` over an attribute builds (on first use, then keeps up to date) one bucket per value,
//! each with its own ordered sets, member list and per-group task counts, so spread(zone)+binpack
//! is a few ordered-set walks. `spread(instanceId)` first looks for an instance running no task of
//! the group through the rest of the chain's index. `random` probes random members and only scans
//! when most are unfit. Chains without an index (`binpack` tie tiers broken by another strategy, a
//! second attribute spread) scan the candidates they concern.
//!
//! # Limitations
//!
//! - Binpack walks past instances that have enough of the binpacked resource but not of the
//!   other one, or fail a constraint; on clusters where most instances are like that it degrades
//!   toward a scan.
//! - `spread(instanceId)` is indexed while some candidate runs no task of the group (the usual
//!   case for services); once every instance has one, it scans.
//! - GPUs, ENIs (awsvpc) and other resources than CPU, memory and ports are not accounted here.

mod index;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use berth_api::model::{
    Failure, PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
};
use berth_api::query::{self, Expr, Field, FieldValue, Subject};
use berth_api::ApiError;

pub use index::Placement;

/// CPU, memory and ports, as a container instance's `registeredResources` and
/// `remainingResources` report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU units (1024 per core).
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    /// TCP host ports in use, as ECS's `PORTS` string set: in `registered`, the ports the host
    /// reserves (22, 2375, 51678, ...); in `remaining`, those plus every task's static host ports.
    pub ports_tcp: BTreeSet<u16>,
    /// UDP host ports in use (`PORTS_UDP`), likewise.
    pub ports_udp: BTreeSet<u16>,
}

/// What placement knows of one container instance. `Default` is a fresh ACTIVE instance with a
/// connected agent and nothing else, so `InstanceState { arn, .., ..Default::default() }` works.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceState {
    /// The container instance ARN.
    pub arn: String,
    /// The container instance id (the ARN's last part); [`Placement`] finds instances by either.
    pub id: String,
    /// The EC2 (or host) instance id, for `ec2InstanceId`; empty when unknown.
    pub ec2_instance_id: String,
    /// Status ACTIVE. DRAINING, INACTIVE and the rest take no new tasks and are not reported.
    pub active: bool,
    /// Whether the agent is connected. An ACTIVE instance whose agent is not takes no tasks and
    /// is reported as `AGENT`.
    pub agent_connected: bool,
    /// Attributes, built-in (`ecs.availability-zone`, `ecs.os-type`, `ecs.cpu-architecture`,
    /// `ecs.instance-type`, ...) and custom. An attribute without a value maps to "".
    pub attributes: BTreeMap<String, String>,
    /// What the instance registered with.
    pub registered: Resources,
    /// What is left; CPU and memory may be negative only if the store says so.
    pub remaining: Resources,
    /// Group (`service:web`, `family:batch`) -> tasks of it on the instance, pending or running.
    pub task_groups: BTreeMap<String, u32>,
    /// Tasks on the instance, pending or running (what `runningTasksCount` sees).
    pub running_tasks: u32,
    /// The agent's version, for `agentVersion`.
    pub agent_version: Option<String>,
    /// When the instance registered, epoch seconds, for `registeredAt`.
    pub registered_at: Option<f64>,
}

impl Default for InstanceState {
    fn default() -> Self {
        Self {
            arn: String::new(),
            id: String::new(),
            ec2_instance_id: String::new(),
            active: true,
            agent_connected: true,
            attributes: BTreeMap::new(),
            registered: Resources::default(),
            remaining: Resources::default(),
            task_groups: BTreeMap::new(),
            running_tasks: 0,
            agent_version: None,
            registered_at: None,
        }
    }
}

impl InstanceState {
    /// Tasks of `group` on the instance.
    pub fn group_count(&self, group: &str) -> u32 {
        self.task_groups.get(group).copied().unwrap_or(0)
    }

    /// The instance can take new tasks: ACTIVE with its agent connected.
    pub fn placeable(&self) -> bool {
        self.active && self.agent_connected
    }
}

impl Subject for InstanceState {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    fn task_groups(&self) -> impl Iterator<Item = &str> {
        self.task_groups.iter().filter(|(_, n)| **n > 0).map(|(g, _)| g.as_str())
    }

    fn has_task_group(&self, group: &str) -> bool {
        self.group_count(group) > 0
    }

    fn field(&self, field: Field) -> Option<FieldValue<'_>> {
        match field {
            Field::AgentConnected => Some(FieldValue::Bool(self.agent_connected)),
            Field::AgentVersion => self.agent_version.as_deref().map(FieldValue::Text),
            Field::Ec2InstanceId => Some(self.ec2_instance_id.as_str()).filter(|s| !s.is_empty()).map(FieldValue::Text),
            Field::RegisteredAt => self.registered_at.map(FieldValue::Time),
            Field::RunningTasksCount => Some(FieldValue::Number(f64::from(self.running_tasks))),
        }
    }
}

/// An attribute a task requires (a task definition's `requiresAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredAttribute {
    /// The attribute's name.
    pub name: String,
    /// The value it must have; `None` when any value (or none) will do.
    pub value: Option<String>,
}

/// What one copy of a task needs from its instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// CPU units.
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    /// Static TCP host ports (host port 0, a dynamic port, takes none).
    pub ports_tcp: Vec<u16>,
    /// Static UDP host ports.
    pub ports_udp: Vec<u16>,
    /// The task group: `service:NAME` for a service's tasks, else the RunTask `group` or
    /// `family:FAMILY`.
    pub group: String,
    /// Attributes the instance must have.
    pub requires: Vec<RequiredAttribute>,
}

/// The resource `binpack` packs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinpackField {
    /// `cpu`.
    Cpu,
    /// `memory`.
    Memory,
}

/// What `spread` evens out over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpreadField {
    /// `instanceId` (or `host`): one value per instance.
    Instance,
    /// `attribute:NAME`: the instances' values of attribute NAME.
    Attribute(String),
}

/// A placement strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Least remaining of the field that still fits.
    Binpack(BinpackField),
    /// Fewest tasks of the group per value of the field.
    Spread(SpreadField),
    /// Uniformly at random.
    Random,
}

/// The longest strategy chain ECS accepts.
pub const MAX_STRATEGIES: usize = 5;
/// The most constraints ECS accepts on a RunTask or service.
pub const MAX_CONSTRAINTS: usize = 10;

impl Strategy {
    /// What a service places with when it names no strategy: spread over Availability Zones, then
    /// over instances ("sort the valid container instances by the fewest number of running tasks
    /// for this service in the same Availability Zone ... then on the instance with the fewest
    /// tasks for this service").
    pub fn service_default() -> Vec<Strategy> {
        vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".to_string())),
            Strategy::Spread(SpreadField::Instance),
        ]
    }

    /// What RunTask places with when it names no strategy: random (an empty chain means the same).
    pub fn run_task_default() -> Vec<Strategy> {
        vec![Strategy::Random]
    }

    /// The strategy a request's `placementStrategy` item names.
    pub fn from_model(s: &PlacementStrategy) -> Result<Self, ApiError> {
        let field = s.field.as_deref().unwrap_or_default();
        match s.r#type {
            None => Err(ApiError::invalid("A placement strategy must have a type: random, spread or binpack.")),
            Some(PlacementStrategyType::Random) => Ok(Strategy::Random),
            Some(PlacementStrategyType::Binpack) => match field.to_ascii_lowercase().as_str() {
                "cpu" => Ok(Strategy::Binpack(BinpackField::Cpu)),
                "memory" => Ok(Strategy::Binpack(BinpackField::Memory)),
                _ => Err(ApiError::invalid(format!(
                    "Invalid field '{field}' for placement strategy binpack. Valid fields are cpu and memory."
                ))),
            },
            Some(PlacementStrategyType::Spread) => {
                if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                    return Ok(Strategy::Spread(SpreadField::Instance));
                }
                match field.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => Ok(Strategy::Spread(SpreadField::Attribute(name.to_string()))),
                    _ => Err(ApiError::invalid(format!(
                        "Invalid field '{field}' for placement strategy spread. Valid fields are instanceId, host \
                         and attribute:NAME."
                    ))),
                }
            }
        }
    }

    /// The strategies of a request, at most [`MAX_STRATEGIES`].
    pub fn from_models(list: &[PlacementStrategy]) -> Result<Vec<Self>, ApiError> {
        if list.len() > MAX_STRATEGIES {
            return Err(ApiError::invalid(format!(
                "A maximum of {MAX_STRATEGIES} placement strategies may be specified; {} were given.",
                list.len()
            )));
        }
        list.iter().map(Self::from_model).collect()
    }
}

/// A placement constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No two tasks of the group on one instance.
    DistinctInstance,
    /// Only instances the expression matches.
    MemberOf(Expr),
}

impl Constraint {
    /// The constraint a request's `placementConstraints` item names; a bad expression is an
    /// `InvalidParameterException` naming where it went wrong.
    pub fn from_model(c: &PlacementConstraint) -> Result<Self, ApiError> {
        let expression = c.expression.as_deref().filter(|e| !e.trim().is_empty());
        match (c.r#type, expression) {
            (None, _) => {
                Err(ApiError::invalid("A placement constraint must have a type: distinctInstance or memberOf."))
            }
            (Some(PlacementConstraintType::DistinctInstance), None) => Ok(Constraint::DistinctInstance),
            (Some(PlacementConstraintType::DistinctInstance), Some(_)) => {
                Err(ApiError::invalid("You cannot specify an expression if the constraint type is distinctInstance."))
            }
            (Some(PlacementConstraintType::MemberOf), None) => {
                Err(ApiError::invalid("An expression is required for a memberOf placement constraint."))
            }
            (Some(PlacementConstraintType::MemberOf), Some(e)) => Ok(Constraint::MemberOf(query::parse(e)?)),
        }
    }

    /// The constraints of a request, at most [`MAX_CONSTRAINTS`].
    pub fn from_models(list: &[PlacementConstraint]) -> Result<Vec<Self>, ApiError> {
        if list.len() > MAX_CONSTRAINTS {
            return Err(ApiError::invalid(format!(
                "A maximum of {MAX_CONSTRAINTS} placement constraints may be specified; {} were given.",
                list.len()
            )));
        }
        list.iter().map(Self::from_model).collect()
    }
}

/// A resource an instance lacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceName {
    /// `CPU`.
    Cpu,
    /// `MEMORY`.
    Memory,
    /// `PORTS` (TCP host ports).
    Ports,
    /// `PORTS_UDP`.
    PortsUdp,
}

/// Why an instance did not take a task; `as_str` is the `reason` ECS puts in `failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// `RESOURCE:CPU`, `RESOURCE:MEMORY`, `RESOURCE:PORTS`, `RESOURCE:PORTS_UDP`.
    Resource(ResourceName),
    /// `AGENT`: the instance's agent is disconnected.
    Agent,
    /// `ATTRIBUTE`: the instance lacks an attribute the task requires.
    Attribute,
    /// A `distinctInstance` constraint rules the instance out.
    DistinctInstance,
    /// A `memberOf` constraint rules the instance out.
    MemberOf,
    /// `MISSING`: no such container instance (StartTask).
    Missing,
    /// `INACTIVE`: the instance is not ACTIVE (StartTask).
    Inactive,
}

impl FailureReason {
    /// The wire `reason`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Resource(ResourceName::Cpu) => "RESOURCE:CPU",
            Self::Resource(ResourceName::Memory) => "RESOURCE:MEMORY",
            Self::Resource(ResourceName::Ports) => "RESOURCE:PORTS",
            Self::Resource(ResourceName::PortsUdp) => "RESOURCE:PORTS_UDP",
            Self::Agent => "AGENT",
            Self::Attribute => "ATTRIBUTE",
            Self::DistinctInstance => "DistinctInstance placement constraint unsatisfied.",
            Self::MemberOf => "MemberOf placement constraint unsatisfied.",
            Self::Missing => "MISSING",
            Self::Inactive => "INACTIVE",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance that could not take a task, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFailure {
    /// The container instance ARN (for `MISSING`, what the caller named).
    pub arn: Option<String>,
    /// Why.
    pub reason: FailureReason,
}

impl From<PlacementFailure> for Failure {
    fn from(f: PlacementFailure) -> Self {
        Failure { arn: f.arn, reason: Some(f.reason.as_str().to_string()), detail: None }
    }
}

/// What [`Placement::place`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementResult {
    /// The instance ARN of each copy placed, in order; each is reserved.
    pub placed: Vec<String>,
    /// When some copies fit nowhere: one entry per ACTIVE instance, with why it was rejected.
    pub failures: Vec<PlacementFailure>,
    /// How many copies were not placed.
    pub unplaced: usize,
}
