//! Deployments: the PRIMARY (newest) and ACTIVE (being replaced) generations of a service,
//! the bounds a rolling update keeps (minimumHealthyPercent, maximumPercent), and the
//! circuit breaker's threshold.

use berth_api::model::{
    CapacityProviderStrategyItem, Deployment, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentRolloutState, LaunchType, NetworkConfiguration, Service,
};
use rand::Rng;

use crate::state::now;

/// The newest deployment, the one tasks are started for.
pub const PRIMARY: &str = "PRIMARY";
/// An older deployment whose tasks are being replaced.
pub const ACTIVE: &str = "ACTIVE";

/// A new deployment id: `ecs-svc/` and 19 digits, as ECS's.
fn new_id() -> String {
    format!("ecs-svc/{}", rand::rng().random_range(1_000_000_000_000_000_000u64..=9_223_372_036_854_775_807))
}

/// Where a service's tasks run, as its deployments report it.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    pub launch_type: Option<LaunchType>,
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    pub platform_version: Option<String>,
    pub platform_family: Option<String>,
}

impl Platform {
    /// The service's.
    pub fn of(s: &Service) -> Self {
        Self {
            launch_type: s.launch_type,
            capacity_provider_strategy: s.capacity_provider_strategy.clone(),
            platform_version: s.platform_version.clone(),
            platform_family: s.platform_family.clone(),
        }
    }
}

/// A new PRIMARY deployment of `task_definition`, IN_PROGRESS, with no tasks yet.
pub fn new_primary(
    task_definition: &str,
    desired: i32,
    network: Option<NetworkConfiguration>,
    reason: Option<String>,
    platform: &Platform,
) -> Deployment {
    let id = new_id();
    let at = now();
    Deployment {
        rollout_state_reason: Some(reason.unwrap_or_else(|| format!("ECS deployment {id} in progress."))),
        id: Some(id),
        status: Some(PRIMARY.into()),
        task_definition: Some(task_definition.to_string()),
        desired_count: Some(desired),
        pending_count: Some(0),
        running_count: Some(0),
        failed_tasks: Some(0),
        created_at: Some(at),
        updated_at: Some(at),
        launch_type: platform.launch_type,
        capacity_provider_strategy: platform.capacity_provider_strategy.clone(),
        platform_version: platform.platform_version.clone(),
        platform_family: platform.platform_family.clone(),
        network_configuration: network,
        rollout_state: Some(DeploymentRolloutState::InProgress),
        ..Default::default()
    }
}

/// Makes `deployment` an ACTIVE one that is being replaced (ECS reports desiredCount 0).
pub fn retire(deployment: &mut Deployment) {
    deployment.status = Some(ACTIVE.into());
    deployment.desired_count = Some(0);
    deployment.updated_at = Some(now());
}

/// The deployment configuration with ECS's defaults filled in (REPLICA 100/200, DAEMON 0/100,
/// the circuit breaker off).
pub fn with_defaults(given: Option<DeploymentConfiguration>, daemon: bool) -> DeploymentConfiguration {
    let mut c = given.unwrap_or_default();
    c.minimum_healthy_percent = c.minimum_healthy_percent.or(Some(if daemon { 0 } else { 100 }));
    c.maximum_percent = c.maximum_percent.or(Some(if daemon { 100 } else { 200 }));
    let cb = c.deployment_circuit_breaker.get_or_insert_with(DeploymentCircuitBreaker::default);
    cb.enable = cb.enable.or(Some(false));
    cb.rollback = cb.rollback.or(Some(false));
    c
}

/// The bounds of a rolling update of `desired` tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Healthy tasks that must keep running: ceil(desired * minimumHealthyPercent / 100).
    pub min_healthy: usize,
    /// Tasks that may be running or pending at once: floor(desired * maximumPercent / 100),
    /// and never fewer than `desired`.
    pub max_total: usize,
}

impl Bounds {
    /// The bounds `config` sets for `desired` tasks.
    pub fn of(config: &DeploymentConfiguration, desired: usize) -> Self {
        let min = usize::try_from(config.minimum_healthy_percent.unwrap_or(100).max(0)).unwrap_or(0);
        let max = usize::try_from(config.maximum_percent.unwrap_or(200).max(0)).unwrap_or(0);
        Self { min_healthy: (desired * min).div_ceil(100), max_total: (desired * max / 100).max(desired) }
    }
}

/// Consecutive failed tasks that make the circuit breaker fail a deployment of `desired`
/// tasks: half of them (rounded up), at least 3 and at most 200.
pub fn failure_threshold(desired: usize) -> usize {
    desired.div_ceil(2).clamp(3, 200)
}

/// Whether `config` asks for the circuit breaker, and whether it rolls back.
pub fn circuit_breaker(config: &DeploymentConfiguration) -> (bool, bool) {
    let cb = config.deployment_circuit_breaker.as_ref();
    (cb.and_then(|c| c.enable).unwrap_or(false), cb.and_then(|c| c.rollback).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min: i32, max: i32) -> DeploymentConfiguration {
        DeploymentConfiguration { minimum_healthy_percent: Some(min), maximum_percent: Some(max), ..Default::default() }
    }

    #[test]
    fn bounds_follow_the_ecs_examples() {
        assert_eq!(Bounds::of(&config(50, 200), 4), Bounds { min_healthy: 2, max_total: 8 });
        assert_eq!(Bounds::of(&config(50, 200), 6), Bounds { min_healthy: 3, max_total: 12 });
        assert_eq!(Bounds::of(&config(100, 200), 3), Bounds { min_healthy: 3, max_total: 6 });
        assert_eq!(Bounds::of(&config(50, 150), 3), Bounds { min_healthy: 2, max_total: 4 });
        assert_eq!(Bounds::of(&config(0, 100), 0), Bounds { min_healthy: 0, max_total: 0 });
    }

    #[test]
    fn threshold_is_half_the_desired_count_between_3_and_200() {
        assert_eq!(failure_threshold(1), 3);
        assert_eq!(failure_threshold(6), 3);
        assert_eq!(failure_threshold(9), 5);
        assert_eq!(failure_threshold(1000), 200);
    }

    #[test]
    fn ids_look_like_ecs_ones() {
        let id = new_id();
        let digits = id.strip_prefix("ecs-svc/").unwrap_or_default();
        assert_eq!(digits.len(), 19, "{id}");
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn defaults_differ_for_daemon() {
        let d = with_defaults(None, true);
        assert_eq!((d.minimum_healthy_percent, d.maximum_percent), (Some(0), Some(100)));
        let r = with_defaults(Some(config(50, 300)), false);
        assert_eq!((r.minimum_healthy_percent, r.maximum_percent), (Some(50), Some(300)));
        assert_eq!(circuit_breaker(&r), (false, false));
    }
}
