//! Tasks: RunTask, StartTask, StopTask, DescribeTasks, ListTasks, and the agent's reports
//! (SubmitTaskStateChange, SubmitContainerStateChange).
//!
//! A task is stored at `task/CLUSTER/ID` with the task definition it runs and what it
//! reserved on its container instance ([`Stored`]). Creating a task and reserving its
//! resources on the instance is one transaction; so is the STOPPED report that releases
//! them. Stopped tasks stay describable (berth does not purge them yet).

mod launch;
pub mod protection;
mod reports;

use std::sync::Arc;

use berth_api::model::{
    ContainerInstance, DescribeTasksRequest, DescribeTasksResponse, Failure, ListTasksRequest, ListTasksResponse,
    RunTaskRequest, RunTaskResponse, StartTaskRequest, StartTaskResponse, StopTaskRequest, StopTaskResponse, Task,
    TaskDefinition, TaskDefinitionStatus, TaskField, TaskStopCode,
};
use berth_api::{ApiError, Arn, ResourceKind};
use berth_store::{Expect, StoreError, Txn};
use serde::{Deserialize, Serialize};

pub use launch::Reservation;
pub use reports::{submit_container_state_change, submit_task_details, submit_task_state_change};

use crate::container_instances;
use crate::pagination::{self, Page};
use crate::records::{self, Decision, RecordError};
use crate::state::{now, Call, State};
use crate::{clusters, fargate, task_definitions};
use launch::Launch;
pub use launch::LaunchRequest;

/// How often creating a task retries when its instance changed at the same moment.
const MAX_ATTEMPTS: usize = 16;

/// A stored task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// What DescribeTasks answers.
    pub task: Task,
    /// The definition it runs, as it was when the task was created (the agent runs this).
    pub definition: TaskDefinition,
    /// What it holds on its instance until it is STOPPED.
    pub reservation: Reservation,
    /// The Fargate pool instance that runs it (a Fargate task has no `containerInstanceArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// A Fargate task's awsvpc configuration: its ENI's subnets and security groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<berth_api::model::AwsVpcConfiguration>,
}

impl Stored {
    /// The cluster and ARN of the instance that holds the task's reservation.
    pub fn placed_on<'a>(&'a self, cluster: &'a str) -> Option<(&'a str, &'a str)> {
        placed_on(self.capacity.as_deref(), self.task.container_instance_arn.as_deref(), cluster)
    }
}

/// The cluster and ARN of the instance that holds a task's reservation: the Fargate pool
/// instance (`capacity`) if it has one, else its container instance in `cluster`.
pub fn placed_on<'a>(
    capacity: Option<&'a str>,
    container_instance_arn: Option<&'a str>,
    cluster: &'a str,
) -> Option<(&'a str, &'a str)> {
    match capacity {
        Some(arn) => Some((crate::fargate::POOL, arn)),
        None => container_instance_arn.map(|arn| (cluster, arn)),
    }
}

/// The store key of task `id` in `cluster`.
pub fn key(cluster: &str, id: &str) -> String {
    format!("task/{cluster}/{id}")
}

use berth_api::arn::resource_id as id_of;

fn task_id(task: &Task) -> &str {
    task.task_arn.as_deref().map_or("", id_of)
}

/// The [`LaunchRequest`] of a RunTask or StartTask request: two generated types with the
/// same launch members.
macro_rules! launch_request {
    ($req:expr) => {
        LaunchRequest {
            task_definition: $req.task_definition.clone(),
            overrides: $req.overrides.clone(),
            group: $req.group.clone(),
            started_by: $req.started_by.clone(),
            tags: $req.tags.clone(),
            propagate_tags: $req.propagate_tags,
            enable_ecs_managed_tags: $req.enable_ecs_managed_tags.unwrap_or(false),
            enable_execute_command: $req.enable_execute_command.unwrap_or(false),
            launch_type: None,
            capacity_provider_strategy: Vec::new(),
            network_configuration: $req.network_configuration.clone(),
            platform_version: None,
            may_be_inactive: false,
        }
    };
}

/// Validates a RunTask/StartTask request's tags and resolves what its `count` tasks run and
/// where (the request's launch type or strategy, else the cluster's default strategy).
async fn resolve_launch(state: &State, cluster: &str, r: LaunchRequest, count: usize) -> Result<Launch, ApiError> {
    crate::tags::validate(r.tags.as_deref().unwrap_or_default())?;
    let default = clusters::require_active(state, Some(cluster)).await?.default_capacity_provider_strategy;
    let target =
        fargate::target(r.launch_type, &r.capacity_provider_strategy, default.as_deref().unwrap_or_default(), count)?;
    let reference = r.task_definition.as_deref().unwrap_or_default();
    let stored = runnable_definition(state, reference, &target, r.may_be_inactive).await?;
    crate::task_roles::check(state, &stored.task_definition, r.overrides.as_ref()).await?;
    Launch::new(cluster, stored, r, target)
}

/// The definition a RunTask/StartTask names: ACTIVE (unless `may_be_inactive`), and able to
/// run on EC2 when that is the target (Fargate's checks need the request too: [`Launch::new`]).
pub async fn runnable_definition(
    state: &State,
    reference: &str,
    target: &fargate::Target,
    may_be_inactive: bool,
) -> Result<task_definitions::Stored, ApiError> {
    let stored = task_definitions::resolve_stored(state, reference).await?;
    let def = &stored.task_definition;
    if def.status != Some(TaskDefinitionStatus::Active) && !may_be_inactive {
        return Err(ApiError::client("TaskDefinition is inactive"));
    }
    let ec2 = def.compatibilities.as_deref().unwrap_or_default().contains(&berth_api::model::Compatibility::Ec2);
    if *target == fargate::Target::Ec2 && !ec2 {
        return Err(ApiError::client("Task definition does not support launch_type EC2."));
    }
    Ok(stored)
}

/// Places `count` copies of what `request` describes on the cluster's instances (the
/// request's constraints and the definition's) and creates them: RunTask's path, which the
/// service controller takes too.
pub async fn launch(
    state: &State,
    call: &Call,
    cluster: &str,
    request: LaunchRequest,
    count: usize,
    constraints: &[berth_api::model::PlacementConstraint],
    strategies: &[berth_api::model::PlacementStrategy],
) -> Result<(Vec<Task>, Vec<Failure>), ApiError> {
    let launch = resolve_launch(state, cluster, request, count).await?;
    if launch.fargate.is_some() {
        let (placed, short) =
            match state.placements.place(state, fargate::POOL, &launch.demand(), count, &[], &[]).await {
                Ok(outcome) => (outcome.placed, outcome.failures.len()),
                // No managed capacity at all: every copy fails as when it is all taken.
                Err(e) if e.kind == berth_api::ErrorKind::InvalidParameter => (Vec::new(), count),
                Err(e) => return Err(e),
            };
        let providers = launch.fargate.as_ref().map(|f| f.providers.as_slice()).unwrap_or_default();
        let on_demand_short =
            providers.iter().skip(placed.len()).filter(|p| p.as_deref() != Some(fargate::FARGATE_SPOT)).count();
        if on_demand_short > 0 {
            fargate::interrupt_spot(state, &launch.reservation, on_demand_short).await?;
        }
        let (tasks, mut failures) = create_all(state, call, &launch, placed).await?;
        failures.extend(std::iter::repeat_n(no_capacity(), short));
        return Ok((tasks, failures));
    }
    let mut constraints = constraints.to_vec();
    constraints.extend(launch.definition.placement_constraints.iter().flatten().map(|c| {
        berth_api::model::PlacementConstraint {
            r#type: c.r#type.map(|t| match t {
                berth_api::model::TaskDefinitionPlacementConstraintType::MemberOf => {
                    berth_api::model::PlacementConstraintType::MemberOf
                }
            }),
            expression: c.expression.clone(),
        }
    }));
    let outcome = state.placements.place(state, cluster, &launch.demand(), count, &constraints, strategies).await?;
    let (tasks, mut failures) = create_all(state, call, &launch, outcome.placed).await?;
    failures.extend(outcome.failures);
    Ok((tasks, failures))
}

/// RunTask: places `count` copies on the cluster's instances by the constraints and strategies.
pub async fn run(state: Arc<State>, call: Call, req: RunTaskRequest) -> Result<RunTaskResponse, ApiError> {
    let cluster = clusters::require_user_cluster(&state, req.cluster.as_deref()).await?;
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(ApiError::invalid("count must be between 1 and 10."));
    }
    if let Some(previous) = idempotent_answer(&state, &cluster, req.client_token.as_deref()).await? {
        return Ok(previous);
    }
    let request = LaunchRequest {
        launch_type: req.launch_type,
        capacity_provider_strategy: req.capacity_provider_strategy.clone().unwrap_or_default(),
        platform_version: req.platform_version.clone(),
        ..launch_request!(req)
    };
    let (tasks, failures) = launch(
        &state,
        &call,
        &cluster,
        request,
        count as usize,
        req.placement_constraints.as_deref().unwrap_or_default(),
        req.placement_strategy.as_deref().unwrap_or_default(),
    )
    .await?;
    let answer = RunTaskResponse { tasks: Some(tasks), failures: Some(failures) };
    remember_token(&state, &cluster, req.client_token.as_deref(), &answer).await?;
    Ok(answer)
}

fn token_key(cluster: &str, token: &str) -> String {
    format!("runtoken/{cluster}/{token}")
}

/// A RunTask repeated with the same `clientToken` answers the tasks the first call started,
/// as they are now.
async fn idempotent_answer(
    state: &State,
    cluster: &str,
    token: Option<&str>,
) -> Result<Option<RunTaskResponse>, ApiError> {
    let Some(token) = token else { return Ok(None) };
    if token.is_empty() || token.len() > 64 || !token.is_ascii() {
        return Err(ApiError::invalid("clientToken must be 1 to 64 ASCII characters."));
    }
    let Some((previous, _)) = records::get::<RunTaskResponse>(&*state.store, &token_key(cluster, token)).await? else {
        return Ok(None);
    };
    let mut tasks = Vec::new();
    for t in previous.tasks.iter().flatten() {
        if let Some((stored, _)) = records::get::<Stored>(&*state.store, &key(cluster, task_id(t))).await? {
            tasks.push(stored.task);
        }
    }
    Ok(Some(RunTaskResponse { tasks: Some(tasks), failures: previous.failures }))
}

async fn remember_token(
    state: &State,
    cluster: &str,
    token: Option<&str>,
    answer: &RunTaskResponse,
) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    let txn = Txn::new().put(token_key(cluster, token), records::encode(answer)?, Expect::Any);
    state.store.commit(txn).await.map_err(RecordError::from)?;
    Ok(())
}

/// StartTask: one task on each named instance, without a placement strategy.
pub async fn start(state: Arc<State>, call: Call, req: StartTaskRequest) -> Result<StartTaskResponse, ApiError> {
    let cluster = clusters::require_user_cluster(&state, req.cluster.as_deref()).await?;
    let instances = req.container_instances.clone().unwrap_or_default();
    if instances.is_empty() || instances.len() > 10 {
        return Err(ApiError::invalid("containerInstances must name 1 to 10 container instances."));
    }
    let (tasks, failures) = launch_on(&state, &call, &cluster, launch_request!(req), instances).await?;
    Ok(StartTaskResponse { tasks: Some(tasks), failures: Some(failures) })
}

/// Creates one copy of what `request` describes on each named instance, without a placement
/// strategy: StartTask's path, which DAEMON services take too.
pub async fn launch_on(
    state: &State,
    call: &Call,
    cluster: &str,
    request: LaunchRequest,
    instances: Vec<String>,
) -> Result<(Vec<Task>, Vec<Failure>), ApiError> {
    // Named instances are EC2 capacity, whatever the cluster's default strategy says.
    let request = LaunchRequest {
        launch_type: Some(berth_api::model::LaunchType::Ec2),
        capacity_provider_strategy: Vec::new(),
        ..request
    };
    let launch = resolve_launch(state, cluster, request, instances.len()).await?;
    let mut placed = Vec::new();
    let mut failures = Vec::new();
    for ident in instances {
        let record = records::get::<ContainerInstance>(&*state.store, &instance_key(cluster, &ident)).await?;
        let Some(arn) = record.and_then(|(i, _)| i.container_instance_arn) else {
            failures.push(Failure { arn: Some(ident), reason: Some("MISSING".into()), detail: None });
            continue;
        };
        match state.placements.place_on(state, cluster, &arn, &launch.demand()).await? {
            Ok(()) => placed.push(arn),
            Err(f) => failures.push(f),
        }
    }
    let (tasks, more) = create_all(state, call, &launch, placed).await?;
    failures.extend(more);
    Ok((tasks, failures))
}

/// Creates a task on each placed instance; a copy whose write fails is released and reported.
async fn create_all(
    state: &State,
    call: &Call,
    launch: &Launch,
    placed: Vec<String>,
) -> Result<(Vec<Task>, Vec<Failure>), ApiError> {
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for (i, instance_arn) in placed.into_iter().enumerate() {
        let provider = launch.fargate.as_ref().and_then(|f| f.providers.get(i).cloned().flatten());
        match create(state, call, launch, &instance_arn, provider.as_deref()).await {
            Ok(task) => tasks.push(task),
            Err(e) => {
                state.placements.release(launch.capacity_cluster(), &instance_arn, &launch.demand()).await;
                failures.push(Failure { arn: Some(instance_arn), reason: Some(e.message), detail: None });
            }
        }
    }
    state.notify_assignments();
    Ok((tasks, failures))
}

/// A Fargate copy that found no room: ECS's capacity failure, not an instance's.
fn no_capacity() -> Failure {
    Failure { arn: None, reason: Some(fargate::NO_CAPACITY.into()), detail: None }
}

/// Writes the task and its reservation on the instance in one transaction.
async fn create(
    state: &State,
    call: &Call,
    launch: &Launch,
    instance_arn: &str,
    provider: Option<&str>,
) -> Result<Task, ApiError> {
    let instance_key = instance_key(launch.capacity_cluster(), instance_arn);
    for _ in 0..MAX_ATTEMPTS {
        let (mut instance, version) = records::get::<ContainerInstance>(&*state.store, &instance_key)
            .await?
            .ok_or_else(|| ApiError::invalid(format!("Container instance {instance_arn} is not registered.")))?;
        let zone = container_instances::attribute(&instance, "ecs.availability-zone");
        let task = launch.task(state, call, &launch::Placed { instance_arn, zone, provider })?;
        container_instances::reserve(&mut instance, &launch.reservation, 1);
        instance.pending_tasks_count = Some(instance.pending_tasks_count.unwrap_or(0) + 1);
        let stored = Stored {
            task: task.clone(),
            definition: launch.definition.clone(),
            reservation: launch.reservation.clone(),
            capacity: launch.fargate.as_ref().map(|_| instance_arn.to_string()),
            network: launch.fargate.as_ref().map(|f| f.network.clone()),
        };
        let txn = Txn::new().put(key(&launch.cluster, task_id(&task)), records::encode(&stored)?, Expect::Absent).put(
            instance_key.clone(),
            records::encode(&instance)?,
            Expect::Version(version),
        );
        match state.store.commit(txn).await {
            Ok(_) => return Ok(task),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: instance_key }).into())
}

fn instance_key(cluster: &str, instance_arn: &str) -> String {
    container_instances::key(cluster, container_instances::id_of(instance_arn))
}

/// StopTask: the task's desired status becomes STOPPED; its agent stops it.
pub async fn stop(state: Arc<State>, _call: Call, req: StopTaskRequest) -> Result<StopTaskResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let ident = req.task.unwrap_or_default();
    let reason = req.reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "Task stopped by user".into());
    let task = request_stop(&state, &cluster, id_of(&ident), TaskStopCode::UserInitiated, &reason).await?;
    state.notify_assignments();
    Ok(StopTaskResponse { task: Some(task) })
}

/// Sets the task's desired status to STOPPED with `code` and `reason` (once: a task already
/// asked to stop keeps its first reason). The caller wakes the agents
/// ([`State::notify_assignments`]), once for a batch of stops.
pub async fn request_stop(
    state: &State,
    cluster: &str,
    id: &str,
    code: TaskStopCode,
    reason: &str,
) -> Result<Task, ApiError> {
    records::update(&*state.store, &key(cluster, id), |current: Option<Stored>| {
        let mut stored = current.ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
        if stored.task.desired_status.as_deref() == Some("STOPPED") {
            return Ok(Decision::Keep(stored.task));
        }
        let t = &mut stored.task;
        t.desired_status = Some("STOPPED".into());
        t.stop_code = Some(code);
        t.stopped_reason = Some(reason.to_string());
        t.stopping_at = Some(now());
        t.version = Some(t.version.unwrap_or(0) + 1);
        Ok(Decision::Write(stored.clone(), stored.task))
    })
    .await
}

/// DescribeTasks: found tasks in request order, `failures` (MISSING) for the rest.
pub async fn describe(
    state: Arc<State>,
    call: Call,
    req: DescribeTasksRequest,
) -> Result<DescribeTasksResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let idents = req.tasks.unwrap_or_default();
    if idents.len() > 100 {
        return Err(ApiError::invalid("tasks can have at most 100 items."));
    }
    let with_tags = req.include.unwrap_or_default().contains(&TaskField::Tags);
    let arn_for = |ident: &str| {
        Arn::parse(ident).map_or_else(
            || state.arn(&call, ResourceKind::Task, format!("{cluster}/{ident}")).to_string(),
            |a| a.to_string(),
        )
    };
    let (found, failures) =
        records::find_each::<Stored>(&*state.store, idents, |ident| key(&cluster, id_of(ident)), arn_for).await?;
    let tasks =
        found.into_iter().map(|s| Task { tags: if with_tags { s.task.tags } else { None }, ..s.task }).collect();
    Ok(DescribeTasksResponse { tasks: Some(tasks), failures: Some(failures) })
}

/// ListTasks: by desired status (default RUNNING), family, startedBy, service, instance and launch type.
pub async fn list(state: Arc<State>, _call: Call, req: ListTasksRequest) -> Result<ListTasksResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let desired = req.desired_status.map_or("RUNNING", |d| d.as_str());
    let instance = req.container_instance.as_deref().map(container_instances::id_of);
    let group = req.service_name.as_deref().map(|s| format!("service:{s}"));
    let (arns, next_token) = pagination::collect(&*state.store, &format!("task/{cluster}/"), &page, |_, s: Stored| {
        let t = &s.task;
        let family = s.definition.family.as_deref();
        let wanted = t.desired_status.as_deref() == Some(desired)
            && req.family.as_deref().is_none_or(|f| family == Some(f))
            && req.started_by.as_deref().is_none_or(|b| t.started_by.as_deref() == Some(b))
            && group.as_deref().is_none_or(|g| t.group.as_deref() == Some(g))
            && instance.is_none_or(|i| t.container_instance_arn.as_deref().map(container_instances::id_of) == Some(i))
            && req.launch_type.is_none_or(|l| t.launch_type == Some(l));
        wanted.then(|| t.task_arn.clone().unwrap_or_default())
    })
    .await?;
    Ok(ListTasksResponse { task_arns: Some(arns), next_token })
}
