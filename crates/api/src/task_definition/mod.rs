//! ECS's semantic rules for `RegisterTaskDefinition`, and the `TaskDefinition` that
//! `DescribeTaskDefinition` returns.
//!
//! The model-driven checks (required members, enum values) have already run when [`build`]
//! is called; this module adds what ECS checks on top of the shapes.
//!
//! # Behavior
//!
//! - Rules run in the order ECS is seen to apply them: the family, the container list, the
//!   task size strings, then each container (identity, memory, network, health check), the
//!   references between containers and volumes, the roles, and last the launch types named in
//!   `requiresCompatibilities`. A Fargate definition whose containers lack memory therefore
//!   gets the container error first, as ECS answers.
//! - Errors are `ClientException` with ECS's wording where it could be confirmed from real
//!   answers; a task `cpu`/`memory` string that does not parse is `InvalidParameterException`.
//! - The stored definition carries ECS's defaults: task `cpu`/`memory` normalized to CPU units
//!   and MiB, `status`, `compatibilities` (every launch type the definition validates against),
//!   `requiresAttributes`, empty lists for `volumes` and `placementConstraints`, and per
//!   container `cpu: 0`, `essential: true`, empty `portMappings`, `environment`,
//!   `mountPoints`, `volumesFrom` and `systemControls`, port mapping `protocol`/`hostPort`,
//!   and health check `interval`/`timeout`/`retries`. Everything else round-trips.
//! - An empty `taskRoleArn` or `executionRoleArn` counts as absent and is not stored, as ECS
//!   does.
//!
//! # Limitations
//!
//! - `requiresAttributes` covers the capabilities whose trigger could be tied to a definition
//!   member from real ECS answers and the documentation; ECS adds a few more Docker API
//!   versions (1.17, 1.21, 1.29) whose triggers are not published.
//! - FireLens, proxy configuration and Windows-specific rules are not checked beyond the
//!   shapes.

mod attributes;
mod compat;
mod containers;
mod defaults;
mod health;
mod logging;
mod network;
mod overrides;
mod references;
mod resources;
mod roles;
mod size;
#[cfg(test)]
mod tests;

use crate::model::{
    Compatibility, ContainerDefinition, NetworkMode, OSFamily, RegisterTaskDefinitionRequest, TaskDefinition,
};
use crate::ApiError;

pub use compat::DEFAULT_EPHEMERAL_GIB;
pub use containers::validate_family;
pub use overrides::{execution_role, task_role, with_overrides};
pub use size::{fargate_memory_allowed, no_fargate_configuration, parse_cpu, parse_memory};

/// What the server knows when registering (no I/O here).
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// The full task definition ARN, including `:revision`.
    pub arn: &'a str,
    /// The revision this registration becomes.
    pub revision: i32,
    /// When the registration happened.
    pub registered_at: crate::Timestamp,
    /// The caller's ARN.
    pub registered_by: &'a str,
}

/// Validates `req` as ECS does and builds the `TaskDefinition` that `DescribeTaskDefinition`
/// will return.
pub fn build(req: &RegisterTaskDefinitionRequest, reg: &Registration<'_>) -> Result<TaskDefinition, ApiError> {
    let spec = validate(req)?;
    Ok(defaults::task_definition(&spec, reg))
}

/// Runs every rule, in ECS's order, and returns what the builder needs.
fn validate(req: &RegisterTaskDefinitionRequest) -> Result<Spec<'_>, ApiError> {
    validate_family(req.family.as_deref().unwrap_or_default())?;
    let containers = req.container_definitions.as_deref().unwrap_or_default();
    containers::check_list(containers)?;
    let spec = Spec { req, containers, size: size::task_size(req)? };
    containers::check(containers)?;
    resources::check(&spec)?;
    network::check(&spec)?;
    health::check(containers)?;
    logging::check(containers)?;
    references::check(&spec)?;
    roles::check(&spec)?;
    compat::check_required(&spec)?;
    Ok(spec)
}

/// A request read once for the rules: the parsed task size and the members they share.
struct Spec<'a> {
    req: &'a RegisterTaskDefinitionRequest,
    containers: &'a [ContainerDefinition],
    size: size::TaskSize,
}

impl Spec<'_> {
    /// The network mode as given; `None` means Docker's default, `bridge`.
    fn network_mode(&self) -> Option<NetworkMode> {
        self.req.network_mode
    }

    /// The execution role, if one is given; ECS treats an empty ARN as none.
    fn execution_role(&self) -> Option<&str> {
        non_empty(self.req.execution_role_arn.as_deref())
    }

    /// The task role, if one is given; ECS treats an empty ARN as none.
    fn task_role(&self) -> Option<&str> {
        non_empty(self.req.task_role_arn.as_deref())
    }

    /// Whether `requiresCompatibilities` names `launch_type`.
    fn requires(&self, launch_type: Compatibility) -> bool {
        self.req.requires_compatibilities.as_deref().unwrap_or_default().contains(&launch_type)
    }

    /// Whether the runtime platform is a Windows family (Fargate sizes and launch types differ).
    fn is_windows(&self) -> bool {
        let family = self.req.runtime_platform.as_ref().and_then(|p| p.operating_system_family);
        family.is_some_and(|f| f != OSFamily::Linux)
    }
}

/// Whether an optional list is present and holds something (ECS treats `[]` as absent).
fn has_items<T>(list: Option<&[T]>) -> bool {
    list.is_some_and(|l| !l.is_empty())
}

/// `s` unless it is absent or empty.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The container's name for messages. Every rule after the identity checks sees a name.
fn name_of(container: &ContainerDefinition) -> &str {
    container.name.as_deref().unwrap_or("null")
}

/// A `ClientException`, the type ECS answers registration rules with.
fn client(message: impl Into<String>) -> ApiError {
    ApiError::client(message)
}
