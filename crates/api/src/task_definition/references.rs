//! Names that point elsewhere in the definition: mount points to volumes, `volumesFrom` and
//! `dependsOn` to containers. A dangling name would only fail when a task starts; ECS refuses
//! it at registration.

use std::collections::{HashMap, HashSet};

use super::{client, name_of, Spec};
use crate::model::{ContainerCondition, ContainerDefinition, ContainerDependency};
use crate::ApiError;

/// Checks volumes, mount points, `volumesFrom` and the dependency graph.
pub(super) fn check(spec: &Spec<'_>) -> Result<(), ApiError> {
    let volumes = volume_names(spec)?;
    let by_name: HashMap<&str, &ContainerDefinition> = spec.containers.iter().map(|c| (name_of(c), c)).collect();
    for container in spec.containers {
        check_mount_points(container, &volumes)?;
        check_volumes_from(container, &by_name)?;
        for dependency in container.depends_on.as_deref().unwrap_or_default() {
            check_dependency(container, dependency, &by_name)?;
        }
    }
    check_acyclic(spec.containers, &by_name)
}

/// The task's volume names, which must be unique for mount points to be unambiguous.
fn volume_names<'a>(spec: &Spec<'a>) -> Result<HashSet<&'a str>, ApiError> {
    let mut names = HashSet::new();
    for volume in spec.req.volumes.as_deref().unwrap_or_default() {
        if let Some(name) = volume.name.as_deref() {
            if !names.insert(name) {
                return Err(client(format!("Volume names must be unique within a Task Definition: '{name}'.")));
            }
        }
    }
    Ok(names)
}

/// Every mount point names a task volume.
fn check_mount_points(container: &ContainerDefinition, volumes: &HashSet<&str>) -> Result<(), ApiError> {
    for mount in container.mount_points.as_deref().unwrap_or_default() {
        let source = mount.source_volume.as_deref();
        if !source.is_some_and(|s| volumes.contains(s)) {
            return Err(client(format!("Unknown volume '{}'.", source.unwrap_or("null"))));
        }
    }
    Ok(())
}

/// Every `volumesFrom` names another container of the task.
fn check_volumes_from(
    container: &ContainerDefinition,
    by_name: &HashMap<&str, &ContainerDefinition>,
) -> Result<(), ApiError> {
    for from in container.volumes_from.as_deref().unwrap_or_default() {
        let source = from.source_container.as_deref();
        let known = source.is_some_and(|s| s != name_of(container) && by_name.contains_key(s));
        if !known {
            return Err(client(format!("Unknown container '{}'.", source.unwrap_or("null"))));
        }
    }
    Ok(())
}

/// One dependency: an existing other container, in a state its condition can reach.
fn check_dependency(
    container: &ContainerDefinition,
    dependency: &ContainerDependency,
    by_name: &HashMap<&str, &ContainerDefinition>,
) -> Result<(), ApiError> {
    let target_name = dependency.container_name.as_deref().unwrap_or("null");
    let Some(target) = by_name.get(target_name) else {
        return Err(client(format!("Cannot depend on container + '{target_name}' because it does not exist")));
    };
    if target_name == name_of(container) {
        return Err(client(format!("Container '{target_name}' cannot depend on itself.")));
    }
    match dependency.condition {
        Some(ContainerCondition::Complete | ContainerCondition::Success) if target.essential != Some(false) => Err(
            client("A dependency container with SUCCESS or COMPLETE condition cannot be an essential container"),
        ),
        Some(ContainerCondition::Healthy) if target.health_check.is_none() => Err(client(format!(
            "A dependency container with HEALTHY condition must have a health check: container '{target_name}' has none."
        ))),
        _ => Ok(()),
    }
}

/// Containers that wait on each other in a ring would never start.
fn check_acyclic(
    containers: &[ContainerDefinition],
    by_name: &HashMap<&str, &ContainerDefinition>,
) -> Result<(), ApiError> {
    let mut done = HashSet::new();
    for container in containers {
        let mut path = Vec::new();
        if let Some(cycle) = find_cycle(name_of(container), by_name, &mut path, &mut done) {
            return Err(client(format!("Container dependencies contain a cycle: {}.", cycle.join(" -> "))));
        }
    }
    Ok(())
}

/// Depth-first search from `name`; returns the names around a cycle if one is reachable.
/// `path` holds the containers being visited, `done` those already known to be cycle-free.
fn find_cycle<'a>(
    name: &'a str,
    by_name: &HashMap<&'a str, &'a ContainerDefinition>,
    path: &mut Vec<&'a str>,
    done: &mut HashSet<&'a str>,
) -> Option<Vec<&'a str>> {
    if let Some(start) = path.iter().position(|n| *n == name) {
        let mut cycle = path[start..].to_vec();
        cycle.push(name);
        return Some(cycle);
    }
    if done.contains(name) {
        return None;
    }
    path.push(name);
    let dependencies = by_name.get(name).and_then(|c| c.depends_on.as_deref()).unwrap_or_default();
    for dependency in dependencies {
        if let Some(next) = dependency.container_name.as_deref().and_then(|n| by_name.get_key_value(n)) {
            if let Some(cycle) = find_cycle(next.0, by_name, path, done) {
                return Some(cycle);
            }
        }
    }
    path.pop();
    done.insert(name);
    None
}
