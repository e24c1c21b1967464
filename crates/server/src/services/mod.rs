//! Services: CreateService, UpdateService, DeleteService, DescribeServices, ListServices.
//!
//! A service is stored at `service/CLUSTER/NAME` ([`Stored`]): the ECS `Service` shape with
//! its deployments and events, and what the controller remembers between passes. The
//! handlers only change what the user asked for; the [`controller`] starts and stops the
//! tasks and keeps the counts, rollout states and events.
//!
//! Limitations: no load balancers, service registries, Service Connect or task sets; the
//! ECS deployment controller only; EC2 launch type only.

pub mod controller;
mod deployments;
mod events;
mod history;
mod service_deployments;

use std::sync::Arc;

use berth_api::model::{
    CreateServiceRequest, CreateServiceResponse, DeleteServiceRequest, DeleteServiceResponse, Deployment,
    DeploymentConfiguration, DeploymentController, DeploymentControllerType, DescribeServicesRequest,
    DescribeServicesResponse, LaunchType, ListServicesRequest, ListServicesResponse, NetworkConfiguration,
    PropagateTags, SchedulingStrategy, Service, ServiceField, UpdateServiceRequest, UpdateServiceResponse,
};
use berth_api::{ApiError, Arn, ErrorKind, ResourceKind};
use serde::{Deserialize, Serialize};

pub use controller::Timing;
pub use service_deployments::{describe_deployments, describe_revisions, list_deployments, stop_deployment};

use crate::clusters;
use crate::fargate;
use crate::pagination::{self, Page};
use crate::records::{self, Decision};
use crate::scheduler::{Constraint, Strategy};
use crate::state::{now, Call, State};
use crate::tasks;

const ACTIVE: &str = "ACTIVE";
const DRAINING: &str = "DRAINING";
const INACTIVE: &str = "INACTIVE";

/// A stored service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// What DescribeServices answers (tags included; they are shown on request).
    pub service: Service,
    /// The `clientToken` of the CreateService that made it.
    #[serde(default)]
    pub client_token: Option<String>,
    /// What the controller remembers between passes.
    #[serde(default)]
    pub control: Control,
    /// Its service deployments and revisions.
    #[serde(default)]
    pub history: history::History,
}

impl Stored {
    /// Records in the history what the deployments now say; every write of a service calls it.
    pub fn sync_history(&mut self) {
        history::sync(&self.service, &mut self.history);
    }
}

/// The controller's memory of a service: only what the tasks in the store cannot tell.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// The last deployment that COMPLETED: what a circuit-breaker rollback returns to.
    pub last_completed: Option<Deployment>,
    /// Whether the steady-state event was emitted since the service last changed.
    pub steady: bool,
    /// Deployments that had a task running healthy: their failures no longer count.
    pub succeeded: Vec<String>,
    /// When a task of the service last ran healthy: failures before this are forgiven.
    pub healthy_mark: f64,
    /// Whether the crash-loop event was emitted for the current run of failures.
    pub throttled: bool,
}

/// The store key of service `name` in `cluster`.
pub fn key(cluster: &str, name: &str) -> String {
    format!("service/{cluster}/{name}")
}

/// The prefix of every service of `cluster` (`None`: of every cluster).
fn prefix(cluster: Option<&str>) -> String {
    cluster.map_or_else(|| "service/".to_string(), |c| format!("service/{c}/"))
}

/// The service name a request means by `ident` (a name or an ARN).
fn name_of(ident: &str) -> &str {
    berth_api::arn::resource_id(ident)
}

/// The task group of the service's tasks, as ECS sets it.
pub fn group(name: &str) -> String {
    format!("service:{name}")
}

fn not_found() -> ApiError {
    ApiError::new(ErrorKind::ServiceNotFound, "Service not found.")
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if clusters::is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "serviceName must be 1 to 255 letters (uppercase and lowercase), numbers, hyphens and underscores.",
        ))
    }
}

fn validate_count(count: Option<i32>) -> Result<(), ApiError> {
    match count {
        Some(n) if n < 0 => Err(ApiError::invalid("desiredCount must be greater than or equal to 0.")),
        _ => Ok(()),
    }
}

fn validate_deployment_configuration(c: &DeploymentConfiguration, daemon: bool) -> Result<(), ApiError> {
    let min = c.minimum_healthy_percent.unwrap_or(0);
    let max = c.maximum_percent.unwrap_or(100);
    if !(0..=100).contains(&min) {
        return Err(ApiError::invalid("deploymentConfiguration.minimumHealthyPercent must be between 0 and 100."));
    }
    if daemon && max != 100 {
        return Err(ApiError::invalid(
            "deploymentConfiguration.maximumPercent must be 100 for a service with the DAEMON scheduling strategy.",
        ));
    }
    if max < 100 {
        return Err(ApiError::invalid("deploymentConfiguration.maximumPercent must be at least 100."));
    }
    Ok(())
}

/// The placement members berth checks the way RunTask does; DAEMON services take no strategy.
fn validate_placement(service: &Service, daemon: bool) -> Result<(), ApiError> {
    Constraint::from_models(service.placement_constraints.as_deref().unwrap_or_default())?;
    let strategies = service.placement_strategy.as_deref().unwrap_or_default();
    if daemon && !strategies.is_empty() {
        return Err(ApiError::invalid("Placement strategies are not supported with DAEMON scheduling strategy."));
    }
    Strategy::from_models(strategies)?;
    Ok(())
}

fn validate_grace_period(seconds: Option<i32>) -> Result<(), ApiError> {
    match seconds {
        Some(s) if s < 0 => Err(ApiError::invalid("healthCheckGracePeriodSeconds must be greater than or equal to 0.")),
        _ => Ok(()),
    }
}

/// What berth cannot offer a service yet, refused as ECS refuses an unavailable feature.
fn check_supported(req: &CreateServiceRequest) -> Result<(), ApiError> {
    let unsupported = |what: &str| {
        Err(ApiError::new(ErrorKind::UnsupportedFeature, format!("berth does not support {what} for services.")))
    };
    if req.load_balancers.as_ref().is_some_and(|l| !l.is_empty()) {
        return unsupported("loadBalancers");
    }
    if req.service_registries.as_ref().is_some_and(|l| !l.is_empty()) {
        return unsupported("serviceRegistries");
    }
    if req.deployment_controller.as_ref().and_then(|d| d.r#type).is_some_and(|t| t != DeploymentControllerType::Ecs) {
        return unsupported("deployment controllers other than ECS");
    }
    Ok(())
}

fn validate_create(req: &CreateServiceRequest, daemon: bool) -> Result<(), ApiError> {
    validate_name(req.service_name.as_deref().unwrap_or_default())?;
    check_supported(req)?;
    if daemon {
        if req.desired_count.is_some() {
            return Err(ApiError::invalid(
                "The daemon scheduling strategy does not support a desired count for services.",
            ));
        }
    } else if req.desired_count.is_none() {
        return Err(ApiError::invalid("desiredCount is required for a service with the REPLICA scheduling strategy."));
    }
    validate_count(req.desired_count)?;
    validate_grace_period(req.health_check_grace_period_seconds)?;
    if let Some(c) = &req.deployment_configuration {
        validate_deployment_configuration(c, daemon)?;
    }
    if let Some(token) = &req.client_token {
        if token.is_empty() || token.len() > 36 || !token.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(ApiError::invalid("clientToken must be 1 to 36 printable ASCII characters."));
        }
    }
    crate::tags::validate(req.tags.as_deref().unwrap_or_default())
}

/// The full ARN of the ACTIVE definition `reference` names, runnable where `platform` says
/// (on Fargate with the service's `network`), with a task role ECS can assume.
async fn definition_arn(
    state: &State,
    reference: Option<&str>,
    platform: &deployments::Platform,
    network: Option<&NetworkConfiguration>,
) -> Result<String, ApiError> {
    let reference =
        reference.filter(|r| !r.is_empty()).ok_or_else(|| ApiError::invalid("taskDefinition is required."))?;
    let fargate = platform.launch_type == Some(LaunchType::Fargate) || platform.capacity_provider_strategy.is_some();
    let target = if fargate { fargate::Target::Fargate { providers: Vec::new() } } else { fargate::Target::Ec2 };
    let stored = tasks::runnable_definition(state, reference, &target, false).await?;
    crate::task_roles::check(state, &stored.task_definition, None).await?;
    if fargate {
        fargate::check_launch(&stored.task_definition, network)?;
    }
    stored.task_definition.task_definition_arn.ok_or_else(|| ApiError::server("task definition without an ARN"))
}

/// Where a new service's tasks run: its launch type or strategy, else the cluster's default
/// strategy, else EC2; on Fargate with the platform version resolved.
async fn platform_of(
    state: &State,
    cluster: &str,
    req: &CreateServiceRequest,
    daemon: bool,
) -> Result<deployments::Platform, ApiError> {
    let default = clusters::require_active(state, Some(cluster)).await?.default_capacity_provider_strategy;
    let given = req.capacity_provider_strategy.clone().filter(|s| !s.is_empty());
    let target = fargate::target(
        req.launch_type,
        given.as_deref().unwrap_or_default(),
        default.as_deref().unwrap_or_default(),
        1,
    )?;
    if target == fargate::Target::Ec2 {
        return Ok(deployments::Platform { launch_type: Some(LaunchType::Ec2), ..Default::default() });
    }
    if daemon {
        return Err(ApiError::invalid("The daemon scheduling strategy is not supported with the FARGATE launch type."));
    }
    let strategy = if req.launch_type.is_some() { None } else { given.or(default) };
    Ok(deployments::Platform {
        launch_type: req.launch_type,
        capacity_provider_strategy: strategy,
        platform_version: Some(fargate::platform_version(req.platform_version.as_deref())?),
        platform_family: Some(fargate::PLATFORM_FAMILY.into()),
    })
}

/// CreateService: a new ACTIVE service with one PRIMARY deployment; the controller starts its tasks.
pub async fn create(
    state: Arc<State>,
    call: Call,
    req: CreateServiceRequest,
) -> Result<CreateServiceResponse, ApiError> {
    let cluster = clusters::require_user_cluster(&state, req.cluster.as_deref()).await?;
    let daemon = req.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    validate_create(&req, daemon)?;
    let name = req.service_name.clone().unwrap_or_default();
    let platform = platform_of(&state, &cluster, &req, daemon).await?;
    let task_definition =
        definition_arn(&state, req.task_definition.as_deref(), &platform, req.network_configuration.as_ref()).await?;
    let service = new_service(&state, &call, &cluster, &name, &req, &task_definition, &platform);
    validate_placement(&service, daemon)?;
    let mut stored = Stored {
        service,
        client_token: req.client_token.clone(),
        control: Control::default(),
        history: Default::default(),
    };
    stored.sync_history();
    let token = req.client_token.clone();
    let answer = records::update(&*state.store, &key(&cluster, &name), |current: Option<Stored>| match current {
        Some(existing) if existing.service.status.as_deref() != Some(INACTIVE) => {
            if token.is_some() && existing.client_token == token {
                return Ok(Decision::Keep(existing.service));
            }
            Err(ApiError::invalid("Creation of service was not idempotent."))
        }
        _ => Ok(Decision::Write(stored.clone(), stored.service.clone())),
    })
    .await?;
    controller::wake(&state);
    Ok(CreateServiceResponse { service: Some(shown(answer, false)) })
}

fn new_service(
    state: &State,
    call: &Call,
    cluster: &str,
    name: &str,
    req: &CreateServiceRequest,
    task_definition: &str,
    platform: &deployments::Platform,
) -> Service {
    let daemon = req.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    let desired = req.desired_count.unwrap_or(0);
    let primary = deployments::new_primary(task_definition, desired, req.network_configuration.clone(), None, platform);
    Service {
        service_arn: Some(state.arn(call, ResourceKind::Service, format!("{cluster}/{name}")).to_string()),
        service_name: Some(name.to_string()),
        cluster_arn: Some(state.arn(call, ResourceKind::Cluster, cluster).to_string()),
        load_balancers: Some(Vec::new()),
        service_registries: Some(Vec::new()),
        status: Some(ACTIVE.into()),
        desired_count: Some(desired),
        running_count: Some(0),
        pending_count: Some(0),
        launch_type: platform.launch_type,
        capacity_provider_strategy: platform.capacity_provider_strategy.clone(),
        platform_version: platform.platform_version.clone(),
        platform_family: platform.platform_family.clone(),
        task_definition: Some(task_definition.to_string()),
        deployment_configuration: Some(deployments::with_defaults(req.deployment_configuration.clone(), daemon)),
        created_at: primary.created_at,
        deployments: Some(vec![primary]),
        events: Some(Vec::new()),
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
        network_configuration: req.network_configuration.clone(),
        health_check_grace_period_seconds: req.health_check_grace_period_seconds,
        scheduling_strategy: Some(if daemon { SchedulingStrategy::Daemon } else { SchedulingStrategy::Replica }),
        deployment_controller: Some(DeploymentController { r#type: Some(DeploymentControllerType::Ecs) }),
        tags: Some(req.tags.clone().unwrap_or_default()),
        created_by: Some(call.principal.clone()),
        enable_ecs_managed_tags: Some(req.enable_ecs_managed_tags.unwrap_or(false)),
        propagate_tags: Some(req.propagate_tags.unwrap_or(PropagateTags::None)),
        enable_execute_command: Some(req.enable_execute_command.unwrap_or(false)),
        ..Default::default()
    }
}

/// The service as an answer shows it: tags only when asked for.
fn shown(service: Service, with_tags: bool) -> Service {
    Service { tags: if with_tags { service.tags } else { None }, ..service }
}

/// UpdateService: rescales the PRIMARY, or starts a new deployment when what the tasks run
/// changes (or `forceNewDeployment`).
pub async fn update(
    state: Arc<State>,
    _call: Call,
    req: UpdateServiceRequest,
) -> Result<UpdateServiceResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let ident =
        req.service.clone().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid("service is required."))?;
    validate_count(req.desired_count)?;
    validate_grace_period(req.health_check_grace_period_seconds)?;
    if req.capacity_provider_strategy.as_ref().is_some_and(|s| !s.is_empty()) || req.platform_version.is_some() {
        return Err(ApiError::new(
            ErrorKind::UnsupportedFeature,
            "berth does not change a service's capacityProviderStrategy or platformVersion; create a new service.",
        ));
    }
    let current =
        records::get::<Stored>(&*state.store, &key(&cluster, name_of(&ident))).await?.ok_or_else(not_found)?.0;
    let network = req.network_configuration.as_ref().or(current.service.network_configuration.as_ref());
    let platform = deployments::Platform::of(&current.service);
    let task_definition = match req.task_definition.as_deref() {
        Some(r) => Some(definition_arn(&state, Some(r), &platform, network).await?),
        None => None,
    };
    let answer = records::update(&*state.store, &key(&cluster, name_of(&ident)), |current: Option<Stored>| {
        let mut stored = current.ok_or_else(not_found)?;
        if stored.service.status.as_deref() != Some(ACTIVE) {
            return Err(ApiError::new(ErrorKind::ServiceNotActive, "Service was not ACTIVE."));
        }
        apply_update(&mut stored, &req, task_definition.as_deref())?;
        stored.sync_history();
        Ok(Decision::Write(stored.clone(), stored.service))
    })
    .await?;
    controller::wake(&state);
    Ok(UpdateServiceResponse { service: Some(shown(answer, false)) })
}

/// Sets `field` to `value` when one is given; answers whether that changed it.
fn replace<T: PartialEq + Clone>(field: &mut Option<T>, value: &Option<T>) -> bool {
    let changed = value.is_some() && field != value;
    if changed {
        field.clone_from(value);
    }
    changed
}

fn apply_update(
    stored: &mut Stored,
    req: &UpdateServiceRequest,
    task_definition: Option<&str>,
) -> Result<(), ApiError> {
    let s = &mut stored.service;
    let daemon = s.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    if daemon && req.desired_count.is_some() {
        return Err(ApiError::invalid("The daemon scheduling strategy does not support a desired count for services."));
    }
    if let Some(given) = &req.deployment_configuration {
        let mut merged = s.deployment_configuration.clone().unwrap_or_default();
        merged.minimum_healthy_percent = given.minimum_healthy_percent.or(merged.minimum_healthy_percent);
        merged.maximum_percent = given.maximum_percent.or(merged.maximum_percent);
        if given.deployment_circuit_breaker.is_some() {
            merged.deployment_circuit_breaker = given.deployment_circuit_breaker.clone();
        }
        let merged = deployments::with_defaults(Some(merged), daemon);
        validate_deployment_configuration(&merged, daemon)?;
        s.deployment_configuration = Some(merged);
    }
    let changes = [
        replace(&mut s.task_definition, &task_definition.map(str::to_string)),
        replace(&mut s.network_configuration, &req.network_configuration),
        replace(&mut s.placement_constraints, &req.placement_constraints),
        replace(&mut s.placement_strategy, &req.placement_strategy),
        replace(&mut s.propagate_tags, &req.propagate_tags),
        replace(&mut s.enable_ecs_managed_tags, &req.enable_ecs_managed_tags),
    ];
    let redeploy = req.force_new_deployment.unwrap_or(false) || changes.contains(&true);
    validate_placement(s, daemon)?;
    if let Some(n) = req.desired_count {
        s.desired_count = Some(n);
    }
    s.health_check_grace_period_seconds = req.health_check_grace_period_seconds.or(s.health_check_grace_period_seconds);
    s.enable_execute_command = req.enable_execute_command.or(s.enable_execute_command);
    let desired = s.desired_count.unwrap_or(0);
    let platform = deployments::Platform::of(s);
    let td = s.task_definition.clone().unwrap_or_default();
    let list = s.deployments.get_or_insert_with(Vec::new);
    if redeploy {
        list.iter_mut().for_each(deployments::retire);
        list.insert(0, deployments::new_primary(&td, desired, s.network_configuration.clone(), None, &platform));
    } else if let Some(primary) = list.first_mut() {
        primary.desired_count = Some(desired);
        primary.updated_at = Some(now());
    }
    stored.control.steady = false;
    Ok(())
}

/// DeleteService: the service turns DRAINING (desiredCount 0, out of ListServices); the
/// controller stops its tasks and then makes it INACTIVE.
pub async fn delete(
    state: Arc<State>,
    _call: Call,
    req: DeleteServiceRequest,
) -> Result<DeleteServiceResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let ident =
        req.service.clone().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid("service is required."))?;
    let force = req.force.unwrap_or(false);
    let answer = records::update(&*state.store, &key(&cluster, name_of(&ident)), |current: Option<Stored>| {
        let mut stored = current.ok_or_else(not_found)?;
        let s = &mut stored.service;
        match s.status.as_deref() {
            Some(INACTIVE) => return Err(not_found()),
            Some(DRAINING) => return Ok(Decision::Keep(stored.service)),
            _ => {}
        }
        let replica = s.scheduling_strategy != Some(SchedulingStrategy::Daemon);
        if replica && !force && s.desired_count.unwrap_or(0) > 0 {
            return Err(ApiError::invalid("The service cannot be stopped while it is scaled above 0."));
        }
        s.status = Some(DRAINING.into());
        s.desired_count = Some(0);
        for d in s.deployments.iter_mut().flatten() {
            d.desired_count = Some(0);
            d.updated_at = Some(now());
        }
        stored.sync_history();
        Ok(Decision::Write(stored.clone(), stored.service))
    })
    .await?;
    controller::wake(&state);
    Ok(DeleteServiceResponse { service: Some(shown(answer, false)) })
}

/// DescribeServices: up to 10 services by name or ARN, in request order, with a MISSING
/// failure for each unknown one; DRAINING and INACTIVE ones are answered too.
pub async fn describe(
    state: Arc<State>,
    call: Call,
    req: DescribeServicesRequest,
) -> Result<DescribeServicesResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let idents = req.services.unwrap_or_default();
    if idents.is_empty() || idents.len() > 10 {
        return Err(ApiError::invalid("services must name 1 to 10 services."));
    }
    let with_tags = req.include.unwrap_or_default().contains(&ServiceField::Tags);
    let arn_for = |ident: &str| {
        Arn::parse(ident).map_or_else(
            || state.arn(&call, ResourceKind::Service, format!("{cluster}/{ident}")).to_string(),
            |a| a.to_string(),
        )
    };
    let (found, failures) =
        records::find_each::<Stored>(&*state.store, idents, |i| key(&cluster, name_of(i)), arn_for).await?;
    let services = found.into_iter().map(|s| shown(s.service, with_tags)).collect();
    Ok(DescribeServicesResponse { services: Some(services), failures: Some(failures) })
}

/// How many of the cluster's services are ACTIVE or DRAINING (a cluster with any cannot be deleted).
pub async fn active_count(state: &State, cluster: &str) -> Result<i32, ApiError> {
    let all = records::list_all::<Stored>(&*state.store, &prefix(Some(cluster))).await?;
    let active = all.iter().filter(|(_, s)| s.service.status.as_deref() != Some(INACTIVE)).count();
    Ok(i32::try_from(active).unwrap_or(i32::MAX))
}

/// ListServices: the cluster's ACTIVE services, by launch type and scheduling strategy.
pub async fn list(state: Arc<State>, _call: Call, req: ListServicesRequest) -> Result<ListServicesResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let page = Page::from_request(req.max_results.or(Some(10)), req.next_token.as_deref(), 100)?;
    let (arns, next_token) = pagination::collect(&*state.store, &prefix(Some(&cluster)), &page, |_, s: Stored| {
        let s = s.service;
        let wanted = s.status.as_deref() == Some(ACTIVE)
            && req.launch_type.is_none_or(|l| s.launch_type == Some(l))
            && req.scheduling_strategy.is_none_or(|st| s.scheduling_strategy == Some(st));
        wanted.then(|| s.service_arn.unwrap_or_default())
    })
    .await?;
    Ok(ListServicesResponse { service_arns: Some(arns), next_token })
}
