//! The stored definition: the request's members, plus what ECS fills in and reports.

use super::{attributes, compat, health, non_empty, Registration, Spec};
use crate::model::{
    ContainerDefinition, NetworkMode, PortMapping, TaskDefinition, TaskDefinitionStatus, TransportProtocol,
};

/// The `TaskDefinition` that `DescribeTaskDefinition` returns for a valid `spec`.
///
/// Every member is named so that a member added to the model cannot be dropped silently.
pub(super) fn task_definition(spec: &Spec<'_>, reg: &Registration<'_>) -> TaskDefinition {
    let req = spec.req;
    let mode = spec.network_mode();
    let requires_attributes = attributes::required(spec);
    TaskDefinition {
        task_definition_arn: Some(reg.arn.to_string()),
        family: req.family.clone(),
        revision: Some(reg.revision),
        status: Some(TaskDefinitionStatus::Active),
        registered_at: Some(reg.registered_at),
        registered_by: Some(reg.registered_by.to_string()),
        deregistered_at: None,
        delete_requested_at: None,
        container_definitions: Some(spec.containers.iter().map(|c| container(c, mode)).collect()),
        cpu: spec.size.cpu.map(|c| c.to_string()),
        memory: spec.size.memory.map(|m| m.to_string()),
        network_mode: mode,
        task_role_arn: spec.task_role().map(str::to_string),
        execution_role_arn: non_empty(req.execution_role_arn.as_deref()).map(str::to_string),
        volumes: Some(req.volumes.clone().unwrap_or_default()),
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        requires_compatibilities: req.requires_compatibilities.clone(),
        compatibilities: Some(compat::compatibilities(spec)),
        requires_attributes: (!requires_attributes.is_empty()).then_some(requires_attributes),
        pid_mode: req.pid_mode,
        ipc_mode: req.ipc_mode,
        proxy_configuration: req.proxy_configuration.clone(),
        inference_accelerators: req.inference_accelerators.clone(),
        ephemeral_storage: req.ephemeral_storage.clone(),
        runtime_platform: req.runtime_platform.clone(),
        enable_fault_injection: req.enable_fault_injection,
    }
}

/// A container definition with the members ECS always reports filled in.
fn container(container: &ContainerDefinition, mode: Option<NetworkMode>) -> ContainerDefinition {
    let ports = container.port_mappings.as_deref().unwrap_or_default();
    ContainerDefinition {
        cpu: container.cpu.or(Some(0)),
        essential: container.essential.or(Some(true)),
        port_mappings: Some(ports.iter().map(|p| port_mapping(p, mode)).collect()),
        environment: Some(container.environment.clone().unwrap_or_default()),
        mount_points: Some(container.mount_points.clone().unwrap_or_default()),
        volumes_from: Some(container.volumes_from.clone().unwrap_or_default()),
        system_controls: Some(container.system_controls.clone().unwrap_or_default()),
        health_check: container.health_check.as_ref().map(health::with_defaults),
        ..container.clone()
    }
}

/// A port mapping as ECS stores it: `tcp` by default; the host port equal to the container
/// port where the mode shares the port space (`awsvpc`, `host`), otherwise 0 (dynamic).
fn port_mapping(mapping: &PortMapping, mode: Option<NetworkMode>) -> PortMapping {
    let host_port = match (mapping.host_port, &mapping.container_port_range, mode) {
        (Some(port), _, _) => Some(port),
        (None, Some(_), _) => None,
        (None, None, Some(NetworkMode::Awsvpc | NetworkMode::Host)) => mapping.container_port,
        (None, None, _) => Some(0),
    };
    PortMapping { protocol: mapping.protocol.or(Some(TransportProtocol::Tcp)), host_port, ..mapping.clone() }
}
