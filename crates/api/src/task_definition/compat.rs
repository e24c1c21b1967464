//! Launch-type rules: those ECS enforces for each entry of `requiresCompatibilities`, and the
//! `compatibilities` it reports (every launch type the definition validates against, whether
//! or not it was asked for).

use super::{client, fargate_memory_allowed, has_items, name_of, no_fargate_configuration, Spec};
use crate::model::{
    Compatibility, ContainerDefinition, LinuxParameters, LogDriver, NetworkMode, PidMode, ResourceType,
};
use crate::ApiError;

/// Ephemeral storage a Fargate task gets when its definition names none, in GiB.
pub const DEFAULT_EPHEMERAL_GIB: i32 = 20;

/// Ephemeral storage ECS can give a task, in GiB.
const EPHEMERAL_GIB: std::ops::RangeInclusive<i32> = 21..=200;

/// Stop and start timeouts Fargate honours, in seconds.
const FARGATE_TIMEOUT_MAX: i32 = 120;

/// The smallest Windows task on Fargate, in CPU units.
const FARGATE_WINDOWS_MIN_CPU: u32 = 1024;

/// Enforces the rules of every launch type the request requires.
pub(super) fn check_required(spec: &Spec<'_>) -> Result<(), ApiError> {
    check_ephemeral_storage(spec)?;
    if spec.requires(Compatibility::Fargate) {
        fargate(spec)?;
    }
    if spec.requires(Compatibility::External) {
        external(spec)?;
    }
    if spec.requires(Compatibility::ManagedInstances) {
        managed_instances(spec)?;
    }
    Ok(())
}

/// The launch types the (already valid) definition is compatible with, in the order ECS lists
/// them: `["EXTERNAL", "EC2"]` for bridge, `["EC2", "MANAGED_INSTANCES", "FARGATE"]` for a
/// Fargate-sized awsvpc task.
pub(super) fn compatibilities(spec: &Spec<'_>) -> Vec<Compatibility> {
    let mut all = Vec::with_capacity(4);
    if external(spec).is_ok() {
        all.push(Compatibility::External);
    }
    all.push(Compatibility::Ec2);
    if managed_instances(spec).is_ok() {
        all.push(Compatibility::ManagedInstances);
    }
    if fargate(spec).is_ok() {
        all.push(Compatibility::Fargate);
    }
    all
}

/// Whether `image` lives in a private ECR registry (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`),
/// which needs credentials to pull.
pub(super) fn is_ecr_image(image: &str) -> bool {
    let Some((host, _)) = image.split_once('/') else {
        return false;
    };
    host.contains(".dkr.ecr.") && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
}

/// Ephemeral storage outside ECS's range cannot be provisioned.
fn check_ephemeral_storage(spec: &Spec<'_>) -> Result<(), ApiError> {
    let size = spec.req.ephemeral_storage.as_ref().and_then(|e| e.size_in_gi_b);
    if size.is_some_and(|s| !EPHEMERAL_GIB.contains(&s)) {
        return Err(client(format!(
            "Invalid 'ephemeralStorage' setting for task. 'sizeInGiB' must be between {} and {}.",
            EPHEMERAL_GIB.start(),
            EPHEMERAL_GIB.end()
        )));
    }
    Ok(())
}

/// Fargate: an ENI per task, a size from the Fargate table, no host access, and an execution
/// role for whatever the platform fetches on the task's behalf.
fn fargate(spec: &Spec<'_>) -> Result<(), ApiError> {
    if spec.network_mode() != Some(NetworkMode::Awsvpc) {
        return Err(client("Fargate only supports network mode \u{2018}awsvpc\u{2019}."));
    }
    fargate_size(spec)?;
    fargate_task_members(spec)?;
    for container in spec.containers {
        fargate_container(container)?;
        fargate_execution_role(container, spec.execution_role().is_some())?;
    }
    Ok(())
}

/// Task cpu and memory are required and must be a pair Fargate offers.
fn fargate_size(spec: &Spec<'_>) -> Result<(), ApiError> {
    let cpu = spec.size.cpu.ok_or_else(|| client("Fargate requires that 'cpu' be defined at the task level."))?;
    let memory =
        spec.size.memory.ok_or_else(|| client("Fargate requires that 'memory' be defined at the task level."))?;
    let windows_too_small = spec.is_windows() && cpu < FARGATE_WINDOWS_MIN_CPU;
    if !fargate_memory_allowed(cpu, memory) || windows_too_small {
        return Err(no_fargate_configuration(cpu, memory));
    }
    Ok(())
}

/// Task-level members Fargate does not offer: host IPC/PID namespaces, placement constraints,
/// host paths and Docker volume plugins.
fn fargate_task_members(spec: &Spec<'_>) -> Result<(), ApiError> {
    let req = spec.req;
    if req.ipc_mode.is_some() {
        return Err(client("Tasks using the Fargate launch type do not support ipcMode."));
    }
    if req.pid_mode == Some(PidMode::Host) {
        return Err(client(
            "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'.",
        ));
    }
    if req.placement_constraints.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(unsupported_on_fargate("constraints"));
    }
    for volume in req.volumes.as_deref().unwrap_or_default() {
        if volume.host.as_ref().and_then(|h| h.source_path.as_deref()).is_some_and(|p| !p.is_empty()) {
            return Err(unsupported_on_fargate("sourcePath"));
        }
        if volume.docker_volume_configuration.is_some() {
            return Err(unsupported_on_fargate("dockerVolumeConfiguration"));
        }
    }
    Ok(())
}

/// Container members Fargate does not offer (the "task definition differences for Fargate").
fn fargate_container(container: &ContainerDefinition) -> Result<(), ApiError> {
    let refused = [
        ("privileged", container.privileged == Some(true)),
        ("disableNetworking", container.disable_networking == Some(true)),
        ("links", has_items(container.links.as_deref())),
        ("dnsServers", has_items(container.dns_servers.as_deref())),
        ("dnsSearchDomains", has_items(container.dns_search_domains.as_deref())),
        ("extraHosts", has_items(container.extra_hosts.as_deref())),
        ("dockerSecurityOptions", has_items(container.docker_security_options.as_deref())),
        ("gpu", requests_gpu(container)),
    ];
    if let Some((member, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(unsupported_on_fargate(member));
    }
    if let Some(linux) = &container.linux_parameters {
        fargate_linux_parameters(linux)?;
    }
    fargate_timeouts(container)
}

/// Fargate's kernel settings are fixed; only `SYS_PTRACE` may be added.
fn fargate_linux_parameters(linux: &LinuxParameters) -> Result<(), ApiError> {
    let refused = [
        ("devices", has_items(linux.devices.as_deref())),
        ("sharedMemorySize", linux.shared_memory_size.is_some()),
        ("tmpfs", has_items(linux.tmpfs.as_deref())),
        ("maxSwap", linux.max_swap.is_some()),
        ("swappiness", linux.swappiness.is_some()),
    ];
    if let Some((member, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(unsupported_on_fargate(member));
    }
    let added = linux.capabilities.as_ref().and_then(|c| c.add.as_deref()).unwrap_or_default();
    if added.iter().any(|cap| !matches!(cap.as_str(), "SYS_PTRACE" | "CAP_SYS_PTRACE")) {
        return Err(client("Fargate compatible task definitions only support adding the SYS_PTRACE capability"));
    }
    Ok(())
}

/// Fargate waits at most 120 seconds for a container to start or stop.
fn fargate_timeouts(container: &ContainerDefinition) -> Result<(), ApiError> {
    for (member, value) in [("startTimeout", container.start_timeout), ("stopTimeout", container.stop_timeout)] {
        if value.is_some_and(|v| v > FARGATE_TIMEOUT_MAX) {
            return Err(client(format!(
                "Invalid '{member}' setting for container '{}'. Tasks using the Fargate launch type support up to {FARGATE_TIMEOUT_MAX} seconds.",
                name_of(container)
            )));
        }
    }
    Ok(())
}

/// Fargate pulls private ECR images and ships awslogs with the execution role.
fn fargate_execution_role(container: &ContainerDefinition, has_role: bool) -> Result<(), ApiError> {
    if has_role {
        return Ok(());
    }
    if container.image.as_deref().is_some_and(is_ecr_image) {
        return Err(client("Fargate requires task definition to have execution role ARN to support ECR images."));
    }
    let driver = container.log_configuration.as_ref().and_then(|l| l.log_driver);
    if driver == Some(LogDriver::Awslogs) {
        return Err(client(
            "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
        ));
    }
    Ok(())
}

/// Whether the container asks for a GPU, which Fargate does not have.
fn requests_gpu(container: &ContainerDefinition) -> bool {
    let requirements = container.resource_requirements.as_deref().unwrap_or_default();
    requirements.iter().any(|r| r.r#type == Some(ResourceType::Gpu))
}

/// ECS's answer to a member Fargate does not support.
fn unsupported_on_fargate(member: &str) -> ApiError {
    client(format!("Fargate compatible task definitions do not support {member}"))
}

/// ECS Anywhere hosts have no ENI per task: any mode but `awsvpc`.
fn external(spec: &Spec<'_>) -> Result<(), ApiError> {
    if spec.network_mode() == Some(NetworkMode::Awsvpc) {
        return Err(client("Task definitions with the EXTERNAL compatibility do not support network mode 'awsvpc'."));
    }
    Ok(())
}

/// Managed Instances need an explicit `awsvpc`, `host` or `none` network mode, on Linux.
fn managed_instances(spec: &Spec<'_>) -> Result<(), ApiError> {
    let mode = spec.network_mode();
    if !matches!(mode, Some(NetworkMode::Awsvpc | NetworkMode::Host | NetworkMode::None)) {
        return Err(client(format!(
            "Task definitions with the MANAGED_INSTANCES compatibility do not support network mode '{}'.",
            mode.map_or("bridge", |m| m.as_str())
        )));
    }
    if spec.is_windows() {
        return Err(client("Task definitions with the MANAGED_INSTANCES compatibility only support Linux."));
    }
    Ok(())
}
