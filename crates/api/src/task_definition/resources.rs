//! Container `cpu`, `memory` and `memoryReservation`, and how they fit the task size.
//!
//! ECS needs a memory figure for every container when the task has none (that is what it
//! places by); with a task size, containers must fit inside it. The 4/6 MiB floor of the
//! Docker daemon is not checked here: ECS accepts smaller values and the container fails when
//! it is created.

use super::size::TaskSize;
use super::{client, name_of, Spec};
use crate::model::ContainerDefinition;
use crate::ApiError;

/// Checks each container, then the containers' sums against the task size.
pub(super) fn check(spec: &Spec<'_>) -> Result<(), ApiError> {
    for container in spec.containers {
        check_values(container)?;
        check_memory_given(container, spec.size.memory)?;
        check_reservation(container)?;
        check_fits_task(container, spec.size.memory)?;
    }
    check_sums(spec.containers, spec.size)
}

/// Negative or zero amounts cannot be placed or enforced.
fn check_values(container: &ContainerDefinition) -> Result<(), ApiError> {
    let name = name_of(container);
    if container.cpu.is_some_and(|cpu| cpu < 0) {
        return Err(client(format!("Invalid 'cpu' setting for container '{name}'.")));
    }
    if container.memory.is_some_and(|m| m <= 0) {
        return Err(client(format!("Invalid 'memory' setting for container '{name}'.")));
    }
    if container.memory_reservation.is_some_and(|m| m <= 0) {
        return Err(client(format!("Invalid 'memoryReservation' setting for container '{name}'.")));
    }
    Ok(())
}

/// Without a task memory, each container must say how much memory to place it with.
fn check_memory_given(container: &ContainerDefinition, task_memory: Option<u32>) -> Result<(), ApiError> {
    if task_memory.is_none() && container.memory.is_none() && container.memory_reservation.is_none() {
        return Err(client(format!(
            "Invalid setting for container '{}'. At least one of 'memory' or 'memoryReservation' must be specified.",
            name_of(container)
        )));
    }
    Ok(())
}

/// The soft limit cannot exceed the hard limit.
fn check_reservation(container: &ContainerDefinition) -> Result<(), ApiError> {
    match (container.memory, container.memory_reservation) {
        (Some(memory), Some(reservation)) if memory < reservation => Err(client(format!(
            "Invalid setting for container '{}'. 'memory' must be greater than or equal to 'memoryReservation'.",
            name_of(container)
        ))),
        _ => Ok(()),
    }
}

/// A container's hard limit cannot exceed the task's memory.
fn check_fits_task(container: &ContainerDefinition, task_memory: Option<u32>) -> Result<(), ApiError> {
    match (task_memory, container.memory) {
        (Some(task), Some(memory)) if i64::from(memory) > i64::from(task) => Err(client(format!(
            "The 'memory' setting for container '{}' is greater than for the task.",
            name_of(container)
        ))),
        _ => Ok(()),
    }
}

/// What the containers reserve together must fit in the task: cpu, and memory counted as
/// each container's reservation (or its hard limit when it has no reservation).
fn check_sums(containers: &[ContainerDefinition], size: TaskSize) -> Result<(), ApiError> {
    if let Some(task_cpu) = size.cpu {
        let cpu: i64 = containers.iter().map(|c| i64::from(c.cpu.unwrap_or(0).max(0))).sum();
        if cpu > i64::from(task_cpu) {
            return Err(client(
                "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.",
            ));
        }
    }
    if let Some(task_memory) = size.memory {
        let reserved: i64 = containers.iter().map(reserved_memory).sum();
        if reserved > i64::from(task_memory) {
            return Err(client(
                "The sum of all container 'memoryReservation' values cannot be greater than the value of the task 'memory'.",
            ));
        }
    }
    Ok(())
}

/// The memory a container reserves on its host.
fn reserved_memory(container: &ContainerDefinition) -> i64 {
    i64::from(container.memory_reservation.or(container.memory).unwrap_or(0).max(0))
}
