//! Container overrides, as RunTask and StartTask give them.

use crate::model::{ContainerDefinition, TaskDefinition, TaskOverride};
use crate::ApiError;

/// The container definitions with a RunTask/StartTask's container overrides applied:
/// command replaced, environment merged by name, cpu and memory replaced. The server
/// sizes the task with this, and the agent runs it.
pub fn with_overrides(
    def: &TaskDefinition,
    overrides: Option<&TaskOverride>,
) -> Result<Vec<ContainerDefinition>, ApiError> {
    let mut containers = def.container_definitions.clone().unwrap_or_default();
    for o in overrides.and_then(|o| o.container_overrides.as_deref()).unwrap_or_default() {
        let name = o.name.as_deref().unwrap_or_default();
        let c = containers.iter_mut().find(|c| c.name.as_deref() == Some(name)).ok_or_else(|| {
            ApiError::invalid(format!("Override for container named {name} is not a container in the TaskDefinition."))
        })?;
        if o.command.is_some() {
            c.command = o.command.clone();
        }
        if let Some(env) = &o.environment {
            let list = c.environment.get_or_insert_with(Vec::new);
            for kv in env {
                list.retain(|e| e.name != kv.name);
                list.push(kv.clone());
            }
        }
        c.cpu = o.cpu.or(c.cpu);
        c.memory = o.memory.or(c.memory);
        c.memory_reservation = o.memory_reservation.or(c.memory_reservation);
    }
    Ok(containers)
}

/// The task role in force: the overrides' `taskRoleArn`, else the definition's.
pub fn task_role<'a>(def: &'a TaskDefinition, overrides: Option<&'a TaskOverride>) -> Option<&'a str> {
    in_force(overrides.and_then(|o| o.task_role_arn.as_deref()), def.task_role_arn.as_deref())
}

/// The execution role in force: the overrides' `executionRoleArn`, else the definition's.
pub fn execution_role<'a>(def: &'a TaskDefinition, overrides: Option<&'a TaskOverride>) -> Option<&'a str> {
    in_force(overrides.and_then(|o| o.execution_role_arn.as_deref()), def.execution_role_arn.as_deref())
}

/// An override replaces the definition's role; an empty one means none.
fn in_force<'a>(overridden: Option<&'a str>, defined: Option<&'a str>) -> Option<&'a str> {
    overridden.or(defined).filter(|r| !r.is_empty())
}
