//! Container instances: RegisterContainerInstance, DescribeContainerInstances,
//! ListContainerInstances, DeregisterContainerInstance, UpdateContainerInstancesState,
//! PutAttributes, DeleteAttributes, ListAttributes.
//!
//! An instance is stored whole at `instance/CLUSTER/ID` as the ECS `ContainerInstance`
//! shape; its custom attributes live in it. A deregistered instance stays describable as
//! INACTIVE. `remainingResources` is kept by the task placement code as tasks come and go.

use std::sync::Arc;

use berth_api::model::{
    Attribute, ContainerInstance, ContainerInstanceField, ContainerInstanceStatus, DeleteAttributesRequest,
    DeleteAttributesResponse, DeregisterContainerInstanceRequest, DeregisterContainerInstanceResponse,
    DescribeContainerInstancesRequest, DescribeContainerInstancesResponse, Failure, ListAttributesRequest,
    ListAttributesResponse, ListContainerInstancesRequest, ListContainerInstancesResponse, PutAttributesRequest,
    PutAttributesResponse, RegisterContainerInstanceRequest, RegisterContainerInstanceResponse, Resource, TargetType,
    UpdateContainerInstancesStateRequest, UpdateContainerInstancesStateResponse,
};
use berth_api::query::{self, Field, FieldValue, Subject};
use berth_api::{ApiError, Arn, ResourceKind};

use crate::clusters;
use crate::pagination::{self, Page};
use crate::records::{self, Decision};
use crate::state::{now, Call, State};
use crate::tags;
use crate::tasks::Reservation;

const INACTIVE: &str = "INACTIVE";
/// ECS allows this many custom attributes per resource.
const MAX_CUSTOM_ATTRIBUTES: usize = 10;

/// The store key of instance `id` in `cluster`.
pub fn key(cluster: &str, id: &str) -> String {
    format!("instance/{cluster}/{id}")
}

fn prefix(cluster: &str) -> String {
    format!("instance/{cluster}/")
}

pub use berth_api::arn::resource_id as id_of;

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A resource as ECS reports it (`INTEGER` for CPU and MEMORY, `STRINGSET` for ports).
pub fn integer_resource(name: &str, value: i32) -> Resource {
    Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(value),
        ..Default::default()
    }
}

/// The named INTEGER resource's value.
pub fn resource_value(resources: &[Resource], name: &str) -> i32 {
    resources.iter().find(|r| r.name.as_deref() == Some(name)).and_then(|r| r.integer_value).unwrap_or(0)
}

/// The value of attribute `name` on the instance.
pub fn attribute(instance: &ContainerInstance, name: &str) -> Option<String> {
    instance.attributes.as_deref()?.iter().find(|a| a.name.as_deref() == Some(name)).and_then(|a| a.value.clone())
}

/// Takes (`sign` = 1) or gives back (`sign` = -1) a task's reservation from the instance's
/// `remainingResources`: CPU and MEMORY, and the static host ports in PORTS / PORTS_UDP.
pub fn reserve(instance: &mut ContainerInstance, r: &Reservation, sign: i64) {
    for res in instance.remaining_resources.iter_mut().flatten() {
        let ports = match res.name.as_deref() {
            Some("CPU") => {
                res.integer_value = res.integer_value.map(|v| (i64::from(v) - sign * r.cpu) as i32);
                continue;
            }
            Some("MEMORY") => {
                res.integer_value = res.integer_value.map(|v| (i64::from(v) - sign * r.memory) as i32);
                continue;
            }
            Some("PORTS") => &r.ports_tcp,
            Some("PORTS_UDP") => &r.ports_udp,
            _ => continue,
        };
        let set = res.string_set_value.get_or_insert_with(Vec::new);
        for p in ports.iter().map(u16::to_string) {
            if sign > 0 && !set.contains(&p) {
                set.push(p);
            } else if sign < 0 {
                set.retain(|q| *q != p);
            }
        }
    }
}

fn validate_resources(resources: &[Resource]) -> Result<(), ApiError> {
    for name in ["CPU", "MEMORY"] {
        if resource_value(resources, name) <= 0 {
            return Err(ApiError::invalid(format!(
                "totalResources must include a positive INTEGER resource named {name}."
            )));
        }
    }
    Ok(())
}

/// Names ECS reserves for its own attributes; users may not set them.
fn is_reserved(name: &str) -> bool {
    name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs.")
}

fn validate_attribute(a: &Attribute) -> Result<(), ApiError> {
    let name = a.name.as_deref().unwrap_or_default();
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_/\\.".contains(c));
    if !name_ok {
        return Err(ApiError::invalid(format!(
            "Attribute name '{name}' is invalid: up to 128 letters, numbers, hyphens, underscores, slashes, back slashes or periods."
        )));
    }
    if let Some(value) = &a.value {
        let ok = value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@/\\: ".contains(c));
        if !ok {
            return Err(ApiError::invalid(format!(
                "Attribute value '{value}' is invalid: up to 128 letters, numbers, hyphens, underscores, periods, at signs, slashes, back slashes, colons or spaces."
            )));
        }
    }
    Ok(())
}

/// Sets (or with `remove`, deletes) attributes by name on an instance.
fn apply_attributes(instance: &mut ContainerInstance, changes: &[Attribute], remove: bool) -> Result<(), ApiError> {
    let list = instance.attributes.get_or_insert_with(Vec::new);
    for change in changes {
        list.retain(|a| a.name != change.name);
        if !remove {
            list.push(Attribute { target_type: None, target_id: None, ..change.clone() });
        }
    }
    let custom = list.iter().filter(|a| !is_reserved(a.name.as_deref().unwrap_or_default())).count();
    if custom > MAX_CUSTOM_ATTRIBUTES {
        return Err(ApiError::new(
            berth_api::ErrorKind::AttributeLimitExceeded,
            format!("You can apply up to {MAX_CUSTOM_ATTRIBUTES} custom attributes per resource."),
        ));
    }
    Ok(())
}

/// RegisterContainerInstance: a new instance, or the same one again when its ARN is given
/// (an agent restarting keeps its identity).
pub async fn register(
    state: Arc<State>,
    call: Call,
    req: RegisterContainerInstanceRequest,
) -> Result<RegisterContainerInstanceResponse, ApiError> {
    let cluster = clusters::require_active(&state, req.cluster.as_deref()).await?;
    let cluster_name = cluster.cluster_name.unwrap_or_default();
    let total = req.total_resources.clone().unwrap_or_default();
    validate_resources(&total)?;
    for a in req.attributes.as_deref().unwrap_or_default() {
        validate_attribute(a)?;
    }
    tags::validate(req.tags.as_deref().unwrap_or_default())?;
    let id = req.container_instance_arn.as_deref().map_or_else(new_id, |a| id_of(a).to_string());
    let arn = state.arn(&call, ResourceKind::ContainerInstance, format!("{cluster_name}/{id}")).to_string();
    let instance = records::update(&*state.store, &key(&cluster_name, &id), |current: Option<ContainerInstance>| {
        let instance = match current {
            Some(existing) => reregistered(existing, &req, &total),
            None if req.container_instance_arn.is_some() => {
                return Err(ApiError::invalid(format!("Container instance {arn} is not registered.")))
            }
            None => fresh(&arn, &id, &req, &total),
        };
        Ok(Decision::Write(instance.clone(), instance))
    })
    .await?;
    state.heartbeats.beat(&id);
    state.placements.invalidate(&cluster_name).await;
    Ok(RegisterContainerInstanceResponse { container_instance: Some(instance) })
}

fn fresh(arn: &str, id: &str, req: &RegisterContainerInstanceRequest, total: &[Resource]) -> ContainerInstance {
    ContainerInstance {
        container_instance_arn: Some(arn.to_string()),
        ec2_instance_id: Some(format!("i-{}", &id[..17.min(id.len())])),
        version: Some(1),
        version_info: req.version_info.clone(),
        remaining_resources: Some(total.to_vec()),
        registered_resources: Some(total.to_vec()),
        status: Some(ContainerInstanceStatus::Active.as_str().into()),
        agent_connected: Some(true),
        running_tasks_count: Some(0),
        pending_tasks_count: Some(0),
        attributes: Some(req.attributes.clone().unwrap_or_default()),
        registered_at: Some(now()),
        attachments: Some(Vec::new()),
        tags: Some(req.tags.clone().unwrap_or_default()),
        ..Default::default()
    }
}

/// The instance after its agent registered again: new resources and attributes, same identity.
fn reregistered(
    mut existing: ContainerInstance,
    req: &RegisterContainerInstanceRequest,
    total: &[Resource],
) -> ContainerInstance {
    let used = |name: &str| {
        resource_value(existing.registered_resources.as_deref().unwrap_or_default(), name)
            - resource_value(existing.remaining_resources.as_deref().unwrap_or_default(), name)
    };
    let held_ports = |name: &str| -> Vec<String> {
        let set = |list: &Option<Vec<Resource>>| -> Vec<String> {
            list.iter()
                .flatten()
                .find(|r| r.name.as_deref() == Some(name))
                .and_then(|r| r.string_set_value.clone())
                .unwrap_or_default()
        };
        let registered = set(&existing.registered_resources);
        set(&existing.remaining_resources).into_iter().filter(|p| !registered.contains(p)).collect()
    };
    let remaining: Vec<Resource> = total
        .iter()
        .map(|r| match r.name.as_deref() {
            Some(n @ ("CPU" | "MEMORY")) => integer_resource(n, r.integer_value.unwrap_or(0) - used(n)),
            Some(n @ ("PORTS" | "PORTS_UDP")) => {
                let mut r = r.clone();
                r.string_set_value.get_or_insert_with(Vec::new).extend(held_ports(n));
                r
            }
            _ => r.clone(),
        })
        .collect();
    existing.registered_resources = Some(total.to_vec());
    existing.remaining_resources = Some(remaining);
    existing.version_info = req.version_info.clone().or(existing.version_info);
    existing.attributes = Some(req.attributes.clone().unwrap_or_default());
    existing.status = Some(ContainerInstanceStatus::Active.as_str().into());
    existing.agent_connected = Some(true);
    existing.version = Some(existing.version.unwrap_or(0) + 1);
    existing
}

/// The ARN an instance identifier means (for MISSING failures).
fn arn_for(state: &State, call: &Call, cluster: &str, ident: &str) -> String {
    match Arn::parse(ident) {
        Some(arn) => arn.to_string(),
        None => state.arn(call, ResourceKind::ContainerInstance, format!("{cluster}/{ident}")).to_string(),
    }
}

fn missing(state: &State, call: &Call, cluster: &str, ident: &str) -> Failure {
    Failure { arn: Some(arn_for(state, call, cluster, ident)), reason: Some("MISSING".into()), detail: None }
}

/// DescribeContainerInstances: found instances, `failures` (MISSING) for the rest.
pub async fn describe(
    state: Arc<State>,
    call: Call,
    req: DescribeContainerInstancesRequest,
) -> Result<DescribeContainerInstancesResponse, ApiError> {
    let cluster = clusters::require_user_cluster(&state, req.cluster.as_deref()).await?;
    let idents = req.container_instances.unwrap_or_default();
    if idents.len() > 100 {
        return Err(ApiError::invalid("containerInstances can have at most 100 items."));
    }
    let with_tags = req.include.unwrap_or_default().contains(&ContainerInstanceField::Tags);
    let (mut found, failures) = records::find_each::<ContainerInstance>(
        &*state.store,
        idents,
        |ident| key(&cluster, id_of(ident)),
        |ident| arn_for(&state, &call, &cluster, ident),
    )
    .await?;
    if !with_tags {
        found.iter_mut().for_each(|i| i.tags = None);
    }
    Ok(DescribeContainerInstancesResponse { container_instances: Some(found), failures: Some(failures) })
}

/// Whether the instance satisfies a cluster query (a `memberOf` expression).
pub fn matches(instance: &ContainerInstance, expr: &query::Expr) -> bool {
    expr.matches(&InstanceSubject(instance))
}

/// An instance as the cluster query language sees it. `task:group` is not known here:
/// ListContainerInstances filters by attributes and fields.
struct InstanceSubject<'a>(&'a ContainerInstance);

impl Subject for InstanceSubject<'_> {
    fn attribute(&self, name: &str) -> Option<&str> {
        let a = self.0.attributes.as_deref()?.iter().find(|a| a.name.as_deref() == Some(name))?;
        Some(a.value.as_deref().unwrap_or_default())
    }

    fn task_groups(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }

    fn field(&self, field: Field) -> Option<FieldValue<'_>> {
        let i = self.0;
        match field {
            Field::AgentConnected => i.agent_connected.map(FieldValue::Bool),
            Field::AgentVersion => i.version_info.as_ref()?.agent_version.as_deref().map(FieldValue::Text),
            Field::Ec2InstanceId => i.ec2_instance_id.as_deref().map(FieldValue::Text),
            Field::RegisteredAt => i.registered_at.map(FieldValue::Time),
            Field::RunningTasksCount => i.running_tasks_count.map(|n| FieldValue::Number(f64::from(n))),
        }
    }
}

/// ListContainerInstances: by status (default: every status but INACTIVE) and `filter`.
pub async fn list(
    state: Arc<State>,
    _call: Call,
    req: ListContainerInstancesRequest,
) -> Result<ListContainerInstancesResponse, ApiError> {
    let cluster = clusters::require_user_cluster(&state, req.cluster.as_deref()).await?;
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let filter = match req.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(query::parse(f)?),
        None => None,
    };
    let status = req.status.map(|s| s.as_str());
    let (arns, next_token) = pagination::collect(&*state.store, &prefix(&cluster), &page, |_, i: ContainerInstance| {
        let shown = match status {
            Some(s) => i.status.as_deref() == Some(s),
            None => i.status.as_deref() != Some(INACTIVE),
        };
        (shown && filter.as_ref().is_none_or(|f| f.matches(&InstanceSubject(&i))))
            .then(|| i.container_instance_arn.unwrap_or_default())
    })
    .await?;
    Ok(ListContainerInstancesResponse { container_instance_arns: Some(arns), next_token })
}

/// Applies `change` to a registered (not INACTIVE) instance under CAS.
async fn update_registered(
    state: &State,
    cluster: &str,
    ident: &str,
    mut change: impl FnMut(&mut ContainerInstance) -> Result<(), ApiError>,
) -> Result<ContainerInstance, ApiError> {
    records::update(&*state.store, &key(cluster, id_of(ident)), |current: Option<ContainerInstance>| match current {
        Some(mut i) if i.status.as_deref() != Some(INACTIVE) => {
            change(&mut i)?;
            i.version = Some(i.version.unwrap_or(0) + 1);
            Ok(Decision::Write(i.clone(), i))
        }
        _ => Err(ApiError::invalid(format!("The referenced container instance {ident} is not registered."))),
    })
    .await
}

/// DeregisterContainerInstance: refuses an instance with tasks unless `force`.
pub async fn deregister(
    state: Arc<State>,
    _call: Call,
    req: DeregisterContainerInstanceRequest,
) -> Result<DeregisterContainerInstanceResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let ident = req.container_instance.unwrap_or_default();
    let force = req.force.unwrap_or(false);
    let instance = update_registered(&state, &cluster, &ident, |i| {
        let tasks = i.running_tasks_count.unwrap_or(0) + i.pending_tasks_count.unwrap_or(0);
        if tasks > 0 && !force {
            return Err(ApiError::invalid(
                "Found running tasks on the instance. Set force to true to deregister a container instance with running tasks.",
            ));
        }
        i.status = Some(INACTIVE.into());
        i.agent_connected = Some(false);
        Ok(())
    })
    .await?;
    state.placements.invalidate(&cluster).await;
    Ok(DeregisterContainerInstanceResponse { container_instance: Some(instance) })
}

/// UpdateContainerInstancesState: ACTIVE or DRAINING only.
pub async fn update_state(
    state: Arc<State>,
    call: Call,
    req: UpdateContainerInstancesStateRequest,
) -> Result<UpdateContainerInstancesStateResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let status = req.status.ok_or_else(|| ApiError::client("Status can not be blank."))?;
    if !matches!(status, ContainerInstanceStatus::Active | ContainerInstanceStatus::Draining) {
        return Err(ApiError::invalid("Container instance status can only be updated to ACTIVE or DRAINING."));
    }
    let mut updated = Vec::new();
    let mut failures = Vec::new();
    for ident in req.container_instances.unwrap_or_default() {
        let set = |i: &mut ContainerInstance| {
            i.status = Some(status.as_str().into());
            Ok(())
        };
        match update_registered(&state, &cluster, &ident, set).await {
            Ok(i) => updated.push(i),
            Err(_) => failures.push(missing(&state, &call, &cluster, &ident)),
        }
    }
    state.placements.invalidate(&cluster).await;
    Ok(UpdateContainerInstancesStateResponse { container_instances: Some(updated), failures: Some(failures) })
}

/// The attributes of one PutAttributes/DeleteAttributes call, grouped by target instance.
fn by_target(attributes: Vec<Attribute>) -> Result<Vec<(String, Vec<Attribute>)>, ApiError> {
    let mut groups: Vec<(String, Vec<Attribute>)> = Vec::new();
    for a in attributes {
        validate_attribute(&a)?;
        let target = a.target_id.clone().ok_or_else(|| {
            ApiError::invalid(format!("Attribute '{}' has no targetId.", a.name.as_deref().unwrap_or_default()))
        })?;
        if a.target_type.is_some_and(|t| t != TargetType::ContainerInstance) {
            return Err(ApiError::invalid("targetType must be container-instance."));
        }
        match groups.iter_mut().find(|(t, _)| *t == target) {
            Some((_, list)) => list.push(a),
            None => groups.push((target, vec![a])),
        }
    }
    Ok(groups)
}

async fn change_attributes(
    state: &State,
    cluster: &str,
    attributes: Vec<Attribute>,
    remove: bool,
) -> Result<Vec<Attribute>, ApiError> {
    if attributes.len() > MAX_CUSTOM_ATTRIBUTES {
        return Err(ApiError::invalid(format!("You can specify up to {MAX_CUSTOM_ATTRIBUTES} attributes per call.")));
    }
    let groups = by_target(attributes.clone())?;
    for (target, list) in &groups {
        if is_reserved_change(list) {
            return Err(ApiError::invalid("Attributes with names starting with 'ecs.' are reserved."));
        }
        let key = key(cluster, id_of(target));
        let registered = records::get::<ContainerInstance>(&*state.store, &key)
            .await?
            .is_some_and(|(i, _)| i.status.as_deref() != Some(INACTIVE));
        if !registered {
            return Err(ApiError::new(berth_api::ErrorKind::TargetNotFound, format!("Could not find {target}.")));
        }
        update_registered(state, cluster, target, |i| apply_attributes(i, list, remove)).await?;
    }
    state.placements.invalidate(cluster).await;
    Ok(attributes)
}

fn is_reserved_change(list: &[Attribute]) -> bool {
    list.iter().any(|a| is_reserved(a.name.as_deref().unwrap_or_default()))
}

/// PutAttributes: custom attributes on container instances.
pub async fn put_attributes(
    state: Arc<State>,
    _call: Call,
    req: PutAttributesRequest,
) -> Result<PutAttributesResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let attributes = change_attributes(&state, &cluster, req.attributes.unwrap_or_default(), false).await?;
    Ok(PutAttributesResponse { attributes: Some(attributes) })
}

/// DeleteAttributes.
pub async fn delete_attributes(
    state: Arc<State>,
    _call: Call,
    req: DeleteAttributesRequest,
) -> Result<DeleteAttributesResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let attributes = change_attributes(&state, &cluster, req.attributes.unwrap_or_default(), true).await?;
    Ok(DeleteAttributesResponse { attributes: Some(attributes) })
}

/// ListAttributes: every attribute of every registered instance, by name and value.
pub async fn list_attributes(
    state: Arc<State>,
    _call: Call,
    req: ListAttributesRequest,
) -> Result<ListAttributesResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    if req.attribute_value.is_some() && req.attribute_name.is_none() {
        return Err(ApiError::invalid("attributeName must be specified when attributeValue is."));
    }
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let mut out = Vec::new();
    for (_, i) in records::list_all::<ContainerInstance>(&*state.store, &prefix(&cluster)).await? {
        if i.status.as_deref() == Some(INACTIVE) {
            continue;
        }
        let target = i.container_instance_arn.clone();
        for a in i.attributes.unwrap_or_default() {
            let named = req.attribute_name.as_ref().is_none_or(|n| a.name.as_ref() == Some(n));
            let valued = req.attribute_value.as_ref().is_none_or(|v| a.value.as_ref() == Some(v));
            if named && valued {
                out.push(Attribute {
                    target_type: Some(TargetType::ContainerInstance),
                    target_id: target.clone(),
                    ..a
                });
            }
        }
    }
    let start = page.after.as_deref().and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let items: Vec<Attribute> = out.into_iter().skip(start).take(page.size).collect();
    let next = (start + items.len()).to_string();
    let next_token = page.next_token(items.len(), Some(&next));
    Ok(ListAttributesResponse { attributes: Some(items), next_token })
}
