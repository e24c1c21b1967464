//! Fargate capacity: the managed agents the server places FARGATE and FARGATE_SPOT tasks on.
//!
//! A managed agent registers as a container instance of [`POOL`], a cluster no user can
//! create, list or run on (its name is not a valid cluster name and its record lives outside
//! the `cluster/` prefix). So the user's clusters never count or list Fargate capacity; a
//! Fargate task lives in the user's cluster with no `containerInstanceArn`, and its stored
//! record names the pool instance that runs it.

use berth_api::model::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, Cluster, LaunchType, NetworkConfiguration, NetworkMode,
    TaskDefinition,
};
use berth_api::task_definition::{fargate_memory_allowed, no_fargate_configuration};
use berth_api::ApiError;

use berth_store::ListQuery;

use crate::records::{self, Decision, RecordError};
use crate::state::State;
use crate::tasks::{self, Reservation};

/// The hidden cluster Fargate capacity registers in.
pub const POOL: &str = "berth:fargate";
/// The store key of [`POOL`]'s record (outside `cluster/`, so ListClusters never sees it).
pub const POOL_KEY: &str = "capacity/fargate/cluster";
/// The platform version `LATEST` resolves to (the current Linux one on ECS).
pub const PLATFORM_VERSION: &str = "1.4.0";
/// The only platform family berth's managed capacity runs.
pub const PLATFORM_FAMILY: &str = "Linux";
pub use berth_api::task_definition::DEFAULT_EPHEMERAL_GIB;
/// The failure reason of a Fargate task that finds no managed capacity free (ECS's words).
pub const NO_CAPACITY: &str =
    "Capacity is unavailable at this time. Please try again later or in a different availability zone";
/// The capacity provider of on-demand Fargate.
pub const FARGATE: &str = "FARGATE";
/// The capacity provider of interruptible Fargate.
pub const FARGATE_SPOT: &str = "FARGATE_SPOT";

/// Creates the pool's cluster record once, so managed agents can register in it.
pub async fn ensure_pool(state: &State, region: &str) -> Result<(), ApiError> {
    let arn = format!("arn:aws:ecs:{region}:{}:cluster/{POOL}", state.account);
    records::update(&*state.store, POOL_KEY, |current: Option<Cluster>| {
        Ok(match current {
            Some(c) => Decision::Keep(c),
            None => {
                let c = Cluster {
                    cluster_arn: Some(arn.clone()),
                    cluster_name: Some(POOL.into()),
                    status: Some("ACTIVE".into()),
                    ..Default::default()
                };
                Decision::Write(c.clone(), c)
            }
        })
    })
    .await?;
    Ok(())
}

/// A cluster's Fargate tasks that are not STOPPED.
#[derive(Debug, Default)]
pub struct TaskCounts {
    pub running: i32,
    pub pending: i32,
}

/// Counts the cluster's Fargate tasks (only records that mention FARGATE are decoded).
pub async fn task_counts(state: &State, cluster: &str) -> Result<TaskCounts, ApiError> {
    let records = state.store.list(ListQuery::prefix(format!("task/{cluster}/"))).await.map_err(RecordError::from)?;
    let mut counts = TaskCounts::default();
    for r in records.into_iter().filter(|r| r.value.windows(FARGATE_MARK.len()).any(|w| w == FARGATE_MARK)) {
        let s: tasks::Stored =
            serde_json::from_slice(&r.value).map_err(|source| RecordError::Decode { key: r.key.clone(), source })?;
        match s.task.last_status.as_deref() {
            Some("STOPPED") => {}
            Some("RUNNING") => counts.running += 1,
            _ => counts.pending += 1,
        }
    }
    Ok(counts)
}

/// The stopped reason of an interrupted Spot task (ECS's words).
pub const SPOT_REASON: &str = "Your Spot Task was interrupted.";

/// Interrupts running FARGATE_SPOT tasks (stop code SpotInterruption; their agent gives
/// them the Spot warning between SIGTERM and SIGKILL) until what they hold covers
/// `copies` on-demand copies of `need` that found no room; those copies fit once the Spot
/// tasks have stopped (a service's next pass, a RunTask retried). Answers how many.
pub async fn interrupt_spot(state: &State, need: &tasks::Reservation, copies: usize) -> Result<usize, ApiError> {
    let copies = i64::try_from(copies).unwrap_or(i64::MAX);
    let (want_cpu, want_memory) = (need.cpu.saturating_mul(copies), need.memory.saturating_mul(copies));
    let records = state.store.list(ListQuery::prefix("task/")).await.map_err(RecordError::from)?;
    let (mut cpu, mut memory, mut interrupted) = (0, 0, 0);
    for r in records.into_iter().filter(|r| r.value.windows(SPOT_MARK.len()).any(|w| w == SPOT_MARK)) {
        if cpu >= want_cpu && memory >= want_memory {
            break;
        }
        let s: tasks::Stored =
            serde_json::from_slice(&r.value).map_err(|source| RecordError::Decode { key: r.key.clone(), source })?;
        let t = &s.task;
        if t.desired_status.as_deref() == Some("STOPPED") || t.last_status.as_deref() == Some("STOPPED") {
            continue;
        }
        let Some((cluster, id)) = r.key.strip_prefix("task/").and_then(|k| k.split_once('/')) else { continue };
        tasks::request_stop(state, cluster, id, berth_api::model::TaskStopCode::SpotInterruption, SPOT_REASON).await?;
        cpu += s.reservation.cpu;
        memory += s.reservation.memory;
        interrupted += 1;
    }
    if interrupted > 0 {
        state.notify_assignments();
    }
    Ok(interrupted)
}

/// What every FARGATE_SPOT task record holds.
const SPOT_MARK: &[u8] = b"\"capacityProviderName\":\"FARGATE_SPOT\"";

/// What every Fargate task record holds (`launchType` as stored).
const FARGATE_MARK: &[u8] = b"\"launchType\":\"FARGATE\"";

/// Where a launch's tasks go: registered instances, or managed capacity with one provider
/// per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The cluster's container instances.
    Ec2,
    /// Managed capacity; `providers[i]` is the capacity provider of the i-th task
    /// (`None` for `launchType: FARGATE`).
    Fargate { providers: Vec<Option<String>> },
}

/// The target of `count` tasks from the request's launch type or strategy, else the
/// cluster's default strategy, else EC2.
pub fn target(
    launch_type: Option<LaunchType>,
    strategy: &[CapacityProviderStrategyItem],
    cluster_default: &[CapacityProviderStrategyItem],
    count: usize,
) -> Result<Target, ApiError> {
    if launch_type.is_some() && !strategy.is_empty() {
        return Err(ApiError::invalid(
            "Specifying both a launch type and capacity provider strategy is not supported.",
        ));
    }
    match launch_type {
        Some(LaunchType::Fargate) => return Ok(Target::Fargate { providers: vec![None; count] }),
        Some(LaunchType::Ec2) => return Ok(Target::Ec2),
        Some(other) => {
            return Err(ApiError::new(
                berth_api::ErrorKind::UnsupportedFeature,
                format!("berth does not run the {} launch type.", other.as_str()),
            ))
        }
        None => {}
    }
    let strategy = if strategy.is_empty() { cluster_default } else { strategy };
    if strategy.is_empty() {
        return Ok(Target::Ec2);
    }
    for item in strategy {
        let name = item.capacity_provider.as_deref().unwrap_or_default();
        if name != FARGATE && name != FARGATE_SPOT {
            return Err(ApiError::invalid(format!("The specified capacity provider '{name}' does not exist.")));
        }
        if !(0..=1000).contains(&item.weight.unwrap_or(0)) || !(0..=100_000).contains(&item.base.unwrap_or(0)) {
            return Err(ApiError::invalid("capacityProviderStrategy weight must be 0 to 1000 and base 0 to 100000."));
        }
    }
    if strategy.iter().all(|i| i.weight.unwrap_or(0) == 0) && strategy.iter().all(|i| i.base.unwrap_or(0) == 0) {
        return Err(ApiError::invalid(
            "At least one capacity provider in a strategy must have a weight greater than zero.",
        ));
    }
    Ok(Target::Fargate { providers: distribute(strategy, count).into_iter().map(Some).collect() })
}

/// ECS's distribution: the provider with a `base` gets its first tasks, then each next task
/// goes to the provider furthest below its weight's share of the tasks placed by weight.
pub fn distribute(strategy: &[CapacityProviderStrategyItem], count: usize) -> Vec<String> {
    let name = |i: &CapacityProviderStrategyItem| i.capacity_provider.clone().unwrap_or_default();
    let mut out = Vec::with_capacity(count);
    for item in strategy {
        let base = usize::try_from(item.base.unwrap_or(0)).unwrap_or(0);
        out.extend(std::iter::repeat_n(name(item), base.min(count - out.len())));
    }
    let weights: Vec<i64> = strategy.iter().map(|i| i64::from(i.weight.unwrap_or(0))).collect();
    let total: i64 = weights.iter().sum();
    let mut given = vec![0i64; strategy.len()];
    while out.len() < count && total > 0 {
        let placed: i64 = given.iter().sum::<i64>() + 1;
        // The provider whose share (weight/total of placed+1) most exceeds what it has.
        let pick = (0..strategy.len())
            .filter(|&i| weights[i] > 0)
            .max_by_key(|&i| (weights[i] * placed - given[i] * total, weights[i], usize::MAX - i))
            .unwrap_or(0);
        given[pick] += 1;
        out.push(name(&strategy[pick]));
    }
    out
}

/// What ECS checks of a Fargate launch: the definition supports FARGATE, and the request
/// gives an awsvpc configuration with subnets. Returns that configuration.
pub fn check_launch(
    def: &TaskDefinition,
    network: Option<&NetworkConfiguration>,
) -> Result<AwsVpcConfiguration, ApiError> {
    let fargate =
        def.compatibilities.as_deref().unwrap_or_default().contains(&berth_api::model::Compatibility::Fargate);
    if !fargate || def.network_mode != Some(NetworkMode::Awsvpc) {
        return Err(ApiError::invalid("Task definition does not support launch_type FARGATE."));
    }
    let vpc = network.and_then(|n| n.awsvpc_configuration.clone()).ok_or_else(|| {
        ApiError::invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    })?;
    if vpc.subnets.as_deref().unwrap_or_default().is_empty() {
        return Err(ApiError::invalid("subnets can not be empty."));
    }
    if vpc.subnets.iter().flatten().chain(vpc.security_groups.iter().flatten()).any(|s| s.is_empty() || s.len() > 255) {
        return Err(ApiError::invalid("awsvpcConfiguration subnets and securityGroups must be 1 to 255 characters."));
    }
    if vpc.security_groups.as_ref().is_some_and(|g| g.len() > 5) || vpc.subnets.as_ref().is_some_and(|s| s.len() > 16) {
        return Err(ApiError::invalid("awsvpcConfiguration can name at most 16 subnets and 5 security groups."));
    }
    Ok(vpc)
}

/// A Fargate task's size after its overrides must still be a pair Fargate offers.
pub fn check_size(reservation: &Reservation) -> Result<(), ApiError> {
    let cpu = u32::try_from(reservation.cpu).unwrap_or(u32::MAX);
    let memory = u32::try_from(reservation.memory).unwrap_or(u32::MAX);
    if fargate_memory_allowed(cpu, memory) {
        Ok(())
    } else {
        Err(no_fargate_configuration(cpu, memory))
    }
}

/// `platformVersion` as ECS reports it: `LATEST` (or none) resolves to [`PLATFORM_VERSION`].
pub fn platform_version(requested: Option<&str>) -> Result<String, ApiError> {
    match requested {
        None | Some("LATEST") | Some(PLATFORM_VERSION) => Ok(PLATFORM_VERSION.into()),
        Some(other) => Err(ApiError::invalid(format!("The specified platform version '{other}' does not exist."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(p: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem { capacity_provider: Some(p.into()), base: Some(base), weight: Some(weight) }
    }

    #[test]
    fn base_first_then_by_weight() {
        let s = [item(FARGATE, 2, 1), item(FARGATE_SPOT, 0, 3)];
        let got = distribute(&s, 6);
        assert_eq!(&got[..2], &[FARGATE, FARGATE]);
        assert_eq!(got[2..].iter().filter(|p| *p == FARGATE_SPOT).count(), 3);
        assert_eq!(got[2..].iter().filter(|p| *p == FARGATE).count(), 1);
        assert_eq!(distribute(&s, 1), vec![FARGATE.to_string()]);
    }

    #[test]
    fn zero_weight_providers_get_only_their_base() {
        let s = [item(FARGATE, 1, 0), item(FARGATE_SPOT, 0, 1)];
        assert_eq!(distribute(&s, 3), vec![FARGATE, FARGATE_SPOT, FARGATE_SPOT]);
    }

    #[test]
    fn targets_follow_launch_type_then_strategies() {
        assert_eq!(target(None, &[], &[], 2).unwrap(), Target::Ec2);
        assert_eq!(
            target(Some(LaunchType::Fargate), &[], &[], 2).unwrap(),
            Target::Fargate { providers: vec![None; 2] }
        );
        let default = [item(FARGATE_SPOT, 0, 1)];
        assert_eq!(
            target(None, &[], &default, 1).unwrap(),
            Target::Fargate { providers: vec![Some(FARGATE_SPOT.into())] }
        );
        assert!(target(Some(LaunchType::Ec2), &default, &[], 1).is_err());
        assert!(target(None, &[item("mine", 0, 1)], &[], 1).is_err());
        assert!(target(None, &[item(FARGATE, 0, 0)], &[], 1).is_err());
    }

    #[test]
    fn latest_resolves_to_a_named_version() {
        assert_eq!(platform_version(None).unwrap(), PLATFORM_VERSION);
        assert_eq!(platform_version(Some("LATEST")).unwrap(), PLATFORM_VERSION);
        assert!(platform_version(Some("9.9.9")).is_err());
    }
}
