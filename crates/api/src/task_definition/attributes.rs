//! `requiresAttributes`: the container instance capabilities a definition needs, which the
//! scheduler matches against the attributes agents register.
//!
//! Each trigger below was tied to a definition member from real `DescribeTaskDefinition`
//! answers or from the parameter documentation ("requires version 1.x of the Docker Remote
//! API"). ECS reports no attribute at all for a plain definition, and so does berth.

use super::compat::is_ecr_image;
use super::{has_items, Spec};
use crate::model::{Attribute, ContainerDefinition, LogDriver, NetworkMode, Volume};

const DOCKER_API: &str = "com.amazonaws.ecs.capability.docker-remote-api.";
const CAPABILITY: &str = "com.amazonaws.ecs.capability.";

/// The attributes `spec` requires, without duplicates, in discovery order.
pub(super) fn required(spec: &Spec<'_>) -> Vec<Attribute> {
    let mut names = Names::default();
    let has_execution_role = spec.execution_role().is_some();
    if spec.network_mode() == Some(NetworkMode::Awsvpc) {
        names.add(format!("{DOCKER_API}1.18"));
        names.add("ecs.capability.task-eni");
    }
    if spec.task_role().is_some() {
        names.add(format!("{CAPABILITY}task-iam-role"));
    }
    if spec.req.pid_mode.is_some() || spec.req.ipc_mode.is_some() {
        names.add("ecs.capability.pid-ipc-namespace-sharing");
    }
    for volume in spec.req.volumes.as_deref().unwrap_or_default() {
        volume_attributes(volume, &mut names);
    }
    for container in spec.containers {
        logging_attributes(container, has_execution_role, &mut names);
        image_attributes(container, has_execution_role, &mut names);
        container_attributes(container, &mut names);
    }
    names.0.into_iter().map(|name| Attribute { name: Some(name), ..Attribute::default() }).collect()
}

/// An ordered set of attribute names.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn add(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.0.contains(&name) {
            self.0.push(name);
        }
    }
}

/// EFS volumes are mounted through the agent's EFS support and its Docker volume API.
fn volume_attributes(volume: &Volume, names: &mut Names) {
    if volume.efs_volume_configuration.is_some() {
        names.add("ecs.capability.efsAuth");
        names.add("ecs.capability.efs");
        names.add(format!("{DOCKER_API}1.25"));
    }
}

/// The log driver, log options (Docker API 1.19), and awslogs through the execution role.
fn logging_attributes(container: &ContainerDefinition, has_execution_role: bool, names: &mut Names) {
    let Some(log) = &container.log_configuration else {
        return;
    };
    if let Some(driver) = log.log_driver {
        names.add(format!("{CAPABILITY}logging-driver.{}", driver.as_str()));
        if driver == LogDriver::Awslogs && has_execution_role {
            names.add("ecs.capability.execution-role-awslogs");
        }
    }
    if log.options.as_ref().is_some_and(|o| !o.is_empty()) {
        names.add(format!("{DOCKER_API}1.19"));
    }
}

/// Private ECR pulls, with the execution role when there is one, and registry credentials.
fn image_attributes(container: &ContainerDefinition, has_execution_role: bool, names: &mut Names) {
    if container.image.as_deref().is_some_and(is_ecr_image) {
        names.add(format!("{CAPABILITY}ecr-auth"));
        if has_execution_role {
            names.add("ecs.capability.execution-role-ecr-pull");
        }
    }
    if container.repository_credentials.is_some() {
        names.add(format!("{CAPABILITY}private-registry-authentication.secretsmanager"));
    }
}

/// Per-container features that need agent or Docker support.
fn container_attributes(container: &ContainerDefinition, names: &mut Names) {
    if container.health_check.is_some() {
        names.add("ecs.capability.container-health-check");
        names.add(format!("{DOCKER_API}1.24"));
    }
    let ordered = has_items(container.depends_on.as_deref());
    if ordered || container.start_timeout.is_some() || container.stop_timeout.is_some() {
        names.add("ecs.capability.container-ordering");
    }
    for secret in container.secrets.as_deref().unwrap_or_default() {
        let from_secrets_manager = secret.value_from.as_deref().is_some_and(|v| v.contains(":secretsmanager:"));
        names.add(if from_secrets_manager {
            "ecs.capability.secrets.asm.environment-variables"
        } else {
            "ecs.capability.secrets.ssm.environment-variables"
        });
    }
    if has_items(container.environment_files.as_deref()) {
        names.add("ecs.capability.env-files.s3");
    }
    if container.privileged == Some(true) {
        names.add(format!("{CAPABILITY}privileged-container"));
    }
    let labels = container.docker_labels.as_ref().is_some_and(|l| !l.is_empty());
    if labels || has_items(container.ulimits.as_deref()) {
        names.add(format!("{DOCKER_API}1.18"));
    }
    if container.linux_parameters.as_ref().and_then(|l| l.init_process_enabled) == Some(true) {
        names.add(format!("{DOCKER_API}1.25"));
    }
    security_option_attributes(container, names);
    if let Some(kind) = container.firelens_configuration.as_ref().and_then(|f| f.r#type) {
        names.add(format!("ecs.capability.firelens.{}", kind.as_str()));
    }
}

/// SELinux labels and AppArmor profiles need the host to support them.
fn security_option_attributes(container: &ContainerDefinition, names: &mut Names) {
    for option in container.docker_security_options.as_deref().unwrap_or_default() {
        if option.starts_with("label:") {
            names.add(format!("{CAPABILITY}selinux"));
        } else if option.starts_with("apparmor:") {
            names.add(format!("{CAPABILITY}apparmor"));
        }
    }
}
