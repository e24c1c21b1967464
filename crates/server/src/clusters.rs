//! Clusters: CreateCluster, DescribeClusters, ListClusters, DeleteCluster, UpdateCluster,
//! UpdateClusterSettings, PutClusterCapacityProviders.
//!
//! A cluster is stored whole at `cluster/NAME` as the ECS `Cluster` shape. Deleting one
//! keeps it as INACTIVE (ECS keeps deleted clusters describable); creating the name
//! again makes a fresh ACTIVE cluster.

use std::sync::Arc;

use berth_api::model::{
    CapacityProviderStrategyItem, Cluster, ClusterField, ClusterSetting, ClusterSettingName, ContainerInstance,
    CreateClusterRequest, CreateClusterResponse, DeleteClusterRequest, DeleteClusterResponse, DescribeClustersRequest,
    DescribeClustersResponse, Failure, KeyValuePair, ListClustersRequest, ListClustersResponse,
    PutClusterCapacityProvidersRequest, PutClusterCapacityProvidersResponse, SettingName, UpdateClusterRequest,
    UpdateClusterResponse, UpdateClusterSettingsRequest, UpdateClusterSettingsResponse,
};
use berth_api::{ApiError, Arn, ResourceKind};

use crate::pagination::{self, Page};
use crate::records::{self, Decision};
use crate::state::{Call, State};
use crate::{account_settings, tags};

const ACTIVE: &str = "ACTIVE";
const INACTIVE: &str = "INACTIVE";
const DEFAULT_CLUSTER: &str = "default";
/// The capacity providers every account has.
const BUILTIN_CAPACITY_PROVIDERS: &[&str] = &["FARGATE", "FARGATE_SPOT"];
const CONTAINER_INSIGHTS_VALUES: &[&str] = &["enabled", "disabled", "enhanced"];

/// The store key of cluster `name` (the Fargate pool's lies outside `cluster/`).
pub fn key(name: &str) -> String {
    if name == crate::fargate::POOL {
        return crate::fargate::POOL_KEY.into();
    }
    format!("cluster/{name}")
}

/// The cluster name a request means: `default` when it names none, the name inside an ARN.
pub fn name_of(ident: Option<&str>) -> String {
    match ident {
        None | Some("") => DEFAULT_CLUSTER.to_string(),
        Some(s) => match Arn::parse(s) {
            Some(arn) if arn.kind == ResourceKind::Cluster => arn.id,
            _ => s.to_string(),
        },
    }
}

/// The ACTIVE cluster a request names, or ClusterNotFoundException.
pub async fn require_active(state: &State, ident: Option<&str>) -> Result<Cluster, ApiError> {
    match records::get::<Cluster>(&*state.store, &key(&name_of(ident))).await? {
        Some((c, _)) if c.status.as_deref() == Some(ACTIVE) => Ok(c),
        _ => Err(ApiError::cluster_not_found()),
    }
}

/// The name of the ACTIVE cluster a request names, or ClusterNotFoundException.
pub async fn require_active_name(state: &State, ident: Option<&str>) -> Result<String, ApiError> {
    Ok(require_active(state, ident).await?.cluster_name.unwrap_or_default())
}

/// ECS's rule for cluster and service names: 1-255 letters, numbers, hyphens and underscores.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The name of the ACTIVE cluster a user-facing request names: as [`require_active_name`],
/// but the Fargate pool is not a cluster users see or run on (only its agents use it).
pub async fn require_user_cluster(state: &State, ident: Option<&str>) -> Result<String, ApiError> {
    if name_of(ident) == crate::fargate::POOL {
        return Err(ApiError::cluster_not_found());
    }
    require_active_name(state, ident).await
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Cluster name must be 1-255 characters long and contain only letters (uppercase and lowercase), numbers, hyphens and underscores.",
        ))
    }
}

fn validate_settings(settings: &[ClusterSetting]) -> Result<(), ApiError> {
    for s in settings {
        let value = s.value.as_deref().unwrap_or_default();
        if s.name == Some(ClusterSettingName::ContainerInsights) && !CONTAINER_INSIGHTS_VALUES.contains(&value) {
            return Err(ApiError::invalid(format!(
                "Invalid value '{value}' for cluster setting 'containerInsights'. Valid values: enabled, disabled, enhanced."
            )));
        }
    }
    Ok(())
}

/// Replaces the settings named in `new`, keeping the others.
fn merge_settings(current: &mut Option<Vec<ClusterSetting>>, new: Vec<ClusterSetting>) {
    let list = current.get_or_insert_with(Vec::new);
    for s in new {
        match list.iter_mut().find(|c| c.name == s.name) {
            Some(existing) => *existing = s,
            None => list.push(s),
        }
    }
}

fn validate_capacity_providers(
    providers: &[String],
    strategy: &[CapacityProviderStrategyItem],
) -> Result<(), ApiError> {
    for p in providers {
        if !BUILTIN_CAPACITY_PROVIDERS.contains(&p.as_str()) {
            return Err(ApiError::invalid(format!("The specified capacity provider '{p}' does not exist.")));
        }
    }
    let mut with_base = 0;
    for (i, item) in strategy.iter().enumerate() {
        let name = item.capacity_provider.as_deref().unwrap_or_default();
        if !providers.iter().any(|p| p == name) {
            return Err(ApiError::invalid(format!(
                "The specified capacity provider strategy cannot contain a capacity provider '{name}' that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again."
            )));
        }
        if strategy[..i].iter().any(|o| o.capacity_provider == item.capacity_provider) {
            return Err(ApiError::invalid(format!("The capacity provider strategy contains '{name}' more than once.")));
        }
        with_base += usize::from(item.base.unwrap_or(0) > 0);
    }
    if with_base > 1 {
        return Err(ApiError::invalid(
            "Only one capacity provider in a capacity provider strategy can have a base value greater than zero.",
        ));
    }
    Ok(())
}

/// A new ACTIVE cluster; `insights` is the caller's effective containerInsights setting.
fn new_cluster(state: &State, call: &Call, name: &str, req: CreateClusterRequest, insights: Option<String>) -> Cluster {
    let mut settings =
        Some(vec![ClusterSetting { name: Some(ClusterSettingName::ContainerInsights), value: insights }]);
    merge_settings(&mut settings, req.settings.unwrap_or_default());
    Cluster {
        cluster_arn: Some(state.arn(call, ResourceKind::Cluster, name).to_string()),
        cluster_name: Some(name.to_string()),
        configuration: req.configuration,
        status: Some(ACTIVE.into()),
        registered_container_instances_count: Some(0),
        running_tasks_count: Some(0),
        pending_tasks_count: Some(0),
        active_services_count: Some(0),
        statistics: Some(Vec::new()),
        tags: Some(req.tags.unwrap_or_default()),
        settings,
        capacity_providers: Some(req.capacity_providers.unwrap_or_default()),
        default_capacity_provider_strategy: Some(req.default_capacity_provider_strategy.unwrap_or_default()),
        attachments: None,
        attachments_status: None,
        service_connect_defaults: None,
    }
}

/// CreateCluster: idempotent by name; an ACTIVE cluster of that name is answered as it is.
pub async fn create(
    state: Arc<State>,
    call: Call,
    req: CreateClusterRequest,
) -> Result<CreateClusterResponse, ApiError> {
    let name = req.cluster_name.clone().unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
    validate_name(&name)?;
    validate_settings(req.settings.as_deref().unwrap_or_default())?;
    tags::validate(req.tags.as_deref().unwrap_or_default())?;
    validate_capacity_providers(
        req.capacity_providers.as_deref().unwrap_or_default(),
        req.default_capacity_provider_strategy.as_deref().unwrap_or_default(),
    )?;
    let insights = account_settings::effective(&state, &call.principal, SettingName::ContainerInsights).await?.value;
    let cluster = records::update(&*state.store, &key(&name), |current: Option<Cluster>| {
        Ok(match current {
            Some(c) if c.status.as_deref() == Some(ACTIVE) => Decision::Keep(c),
            _ => {
                let c = new_cluster(&state, &call, &name, req.clone(), insights.clone());
                Decision::Write(c.clone(), c)
            }
        })
    })
    .await?;
    Ok(CreateClusterResponse { cluster: Some(cluster) })
}

/// The cluster as DescribeClusters shows it with `include`.
fn view(mut c: Cluster, include: &[ClusterField]) -> Cluster {
    if !include.contains(&ClusterField::Statistics) {
        c.statistics = Some(Vec::new());
    }
    if !include.contains(&ClusterField::Tags) {
        c.tags = None;
    }
    if !include.contains(&ClusterField::Settings) {
        c.settings = None;
    }
    if !include.contains(&ClusterField::Configurations) {
        c.configuration = None;
    }
    c
}

/// The cluster with its instance and task counts, derived from its instance records.
async fn with_counts(state: &State, mut c: Cluster) -> Result<Cluster, ApiError> {
    let name = c.cluster_name.clone().unwrap_or_default();
    let instances = records::list_all::<ContainerInstance>(&*state.store, &format!("instance/{name}/")).await?;
    let registered: Vec<_> = instances.iter().filter(|(_, i)| i.status.as_deref() != Some(INACTIVE)).collect();
    let sum = |f: fn(&ContainerInstance) -> Option<i32>| registered.iter().map(|(_, i)| f(i).unwrap_or(0)).sum();
    let fargate = crate::fargate::task_counts(state, &name).await?;
    c.registered_container_instances_count = Some(i32::try_from(registered.len()).unwrap_or(i32::MAX));
    let (running, pending): (i32, i32) = (sum(|i| i.running_tasks_count), sum(|i| i.pending_tasks_count));
    c.running_tasks_count = Some(running + fargate.running);
    c.pending_tasks_count = Some(pending + fargate.pending);
    c.active_services_count = Some(crate::services::active_count(state, &name).await?);
    c.statistics = Some(statistics(&c, &fargate));
    Ok(c)
}

/// The STATISTICS key-value pairs ECS reports, by launch type.
fn statistics(c: &Cluster, fargate: &crate::fargate::TaskCounts) -> Vec<KeyValuePair> {
    let running = c.running_tasks_count.unwrap_or(0) - fargate.running;
    let pending = c.pending_tasks_count.unwrap_or(0) - fargate.pending;
    let services = c.active_services_count.unwrap_or(0);
    [
        ("runningEC2TasksCount", running),
        ("runningFargateTasksCount", fargate.running),
        ("pendingEC2TasksCount", pending),
        ("pendingFargateTasksCount", fargate.pending),
        ("runningExternalTasksCount", 0),
        ("pendingExternalTasksCount", 0),
        ("activeEC2ServiceCount", services),
        ("activeFargateServiceCount", 0),
        ("drainingEC2ServiceCount", 0),
        ("drainingFargateServiceCount", 0),
        ("activeExternalServiceCount", 0),
        ("drainingExternalServiceCount", 0),
    ]
    .into_iter()
    .map(|(k, v)| KeyValuePair { name: Some(k.into()), value: Some(v.to_string()) })
    .collect()
}

/// DescribeClusters: found clusters in request order, `failures` (MISSING) for the rest.
pub async fn describe(
    state: Arc<State>,
    call: Call,
    req: DescribeClustersRequest,
) -> Result<DescribeClustersResponse, ApiError> {
    let include = req.include.unwrap_or_default();
    let idents = req.clusters.unwrap_or_else(|| vec![DEFAULT_CLUSTER.to_string()]);
    if idents.len() > 100 {
        return Err(ApiError::invalid("clusters can have at most 100 items."));
    }
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for ident in idents {
        let name = name_of(Some(&ident));
        let visible = name != crate::fargate::POOL;
        match records::get::<Cluster>(&*state.store, &key(&name)).await?.filter(|_| visible) {
            Some((c, _)) => clusters.push(view(with_counts(&state, c).await?, &include)),
            None => failures.push(Failure {
                arn: Some(state.arn(&call, ResourceKind::Cluster, name).to_string()),
                reason: Some("MISSING".into()),
                detail: None,
            }),
        }
    }
    Ok(DescribeClustersResponse { clusters: Some(clusters), failures: Some(failures) })
}

/// ListClusters: ARNs of ACTIVE clusters, in name order, paginated.
pub async fn list(state: Arc<State>, _call: Call, req: ListClustersRequest) -> Result<ListClustersResponse, ApiError> {
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let (arns, next_token) = pagination::collect(&*state.store, "cluster/", &page, |_, c: Cluster| {
        (c.status.as_deref() == Some(ACTIVE)).then(|| c.cluster_arn.unwrap_or_default())
    })
    .await?;
    Ok(ListClustersResponse { cluster_arns: Some(arns), next_token })
}

/// DeleteCluster: marks the cluster INACTIVE and answers it.
pub async fn delete(
    state: Arc<State>,
    _call: Call,
    req: DeleteClusterRequest,
) -> Result<DeleteClusterResponse, ApiError> {
    require_user_cluster(&state, req.cluster.as_deref()).await?;
    let counted = with_counts(&state, require_active(&state, req.cluster.as_deref()).await?).await?;
    if counted.registered_container_instances_count.unwrap_or(0) > 0 {
        return Err(ApiError::new(
            berth_api::ErrorKind::ClusterContainsContainerInstances,
            "The Cluster cannot be deleted while Container Instances are active or draining.",
        ));
    }
    if counted.active_services_count.unwrap_or(0) > 0 {
        return Err(ApiError::new(
            berth_api::ErrorKind::ClusterContainsServices,
            "The Cluster cannot be deleted while Services are active.",
        ));
    }
    if counted.running_tasks_count.unwrap_or(0) + counted.pending_tasks_count.unwrap_or(0) > 0 {
        return Err(ApiError::new(
            berth_api::ErrorKind::ClusterContainsTasks,
            "The Cluster cannot be deleted while Tasks are active.",
        ));
    }
    let name = name_of(req.cluster.as_deref());
    let cluster = update_active(&state, &name, |c| {
        c.status = Some(INACTIVE.into());
        Ok(())
    })
    .await?;
    Ok(DeleteClusterResponse { cluster: Some(cluster) })
}

/// Applies `change` to the ACTIVE cluster `name` under CAS and answers the result.
async fn update_active(
    state: &State,
    name: &str,
    mut change: impl FnMut(&mut Cluster) -> Result<(), ApiError>,
) -> Result<Cluster, ApiError> {
    records::update(&*state.store, &key(name), |current: Option<Cluster>| match current {
        Some(mut c) if c.status.as_deref() == Some(ACTIVE) => {
            change(&mut c)?;
            Ok(Decision::Write(c.clone(), c))
        }
        _ => Err(ApiError::cluster_not_found()),
    })
    .await
}

/// UpdateCluster: settings, configuration and Service Connect defaults.
pub async fn update(
    state: Arc<State>,
    _call: Call,
    req: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, ApiError> {
    validate_settings(req.settings.as_deref().unwrap_or_default())?;
    let name = name_of(req.cluster.as_deref());
    let cluster = update_active(&state, &name, |c| {
        if let Some(s) = req.settings.clone() {
            merge_settings(&mut c.settings, s);
        }
        if let Some(conf) = req.configuration.clone() {
            c.configuration = Some(conf);
        }
        if let Some(sc) = &req.service_connect_defaults {
            c.service_connect_defaults =
                Some(berth_api::model::ClusterServiceConnectDefaults { namespace: sc.namespace.clone() });
        }
        Ok(())
    })
    .await?;
    Ok(UpdateClusterResponse { cluster: Some(cluster) })
}

/// UpdateClusterSettings.
pub async fn update_settings(
    state: Arc<State>,
    _call: Call,
    req: UpdateClusterSettingsRequest,
) -> Result<UpdateClusterSettingsResponse, ApiError> {
    let settings = req.settings.unwrap_or_default();
    validate_settings(&settings)?;
    let name = name_of(req.cluster.as_deref());
    let cluster = update_active(&state, &name, |c| {
        merge_settings(&mut c.settings, settings.clone());
        Ok(())
    })
    .await?;
    Ok(UpdateClusterSettingsResponse { cluster: Some(cluster) })
}

/// PutClusterCapacityProviders: replaces the cluster's providers and default strategy.
pub async fn put_capacity_providers(
    state: Arc<State>,
    _call: Call,
    req: PutClusterCapacityProvidersRequest,
) -> Result<PutClusterCapacityProvidersResponse, ApiError> {
    let providers = req.capacity_providers.unwrap_or_default();
    let strategy = req.default_capacity_provider_strategy.unwrap_or_default();
    validate_capacity_providers(&providers, &strategy)?;
    let name = name_of(req.cluster.as_deref());
    let cluster = update_active(&state, &name, |c| {
        c.capacity_providers = Some(providers.clone());
        c.default_capacity_provider_strategy = Some(strategy.clone());
        Ok(())
    })
    .await?;
    Ok(PutClusterCapacityProvidersResponse { cluster: Some(cluster) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_arns_or_default() {
        assert_eq!(name_of(None), "default");
        assert_eq!(name_of(Some("web")), "web");
        assert_eq!(name_of(Some("arn:aws:ecs:us-east-1:123456789012:cluster/web")), "web");
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(validate_name("a-b_C9").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strategies_must_use_associated_providers_and_one_base() {
        let item = |p: &str, base| CapacityProviderStrategyItem {
            capacity_provider: Some(p.into()),
            weight: Some(1),
            base: Some(base),
        };
        let fargate = vec!["FARGATE".to_string(), "FARGATE_SPOT".to_string()];
        assert!(validate_capacity_providers(&fargate, &[item("FARGATE", 1), item("FARGATE_SPOT", 0)]).is_ok());
        assert!(validate_capacity_providers(&fargate, &[item("FARGATE", 1), item("FARGATE_SPOT", 1)]).is_err());
        assert!(validate_capacity_providers(&fargate[..1], &[item("FARGATE_SPOT", 0)]).is_err());
        assert!(validate_capacity_providers(&["nope".into()], &[]).is_err());
    }
}
