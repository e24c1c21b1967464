//! Log configuration rules ECS checks at registration.

use super::client;
use crate::model::{ContainerDefinition, LogDriver};
use crate::ApiError;

/// The options the awslogs driver cannot work without, in the order ECS lists them.
const AWSLOGS_REQUIRED: &[&str] = &["awslogs-region", "awslogs-group"];

/// Every awslogs configuration names its region and group.
pub(super) fn check(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    for config in containers.iter().filter_map(|c| c.log_configuration.as_ref()) {
        if config.log_driver != Some(LogDriver::Awslogs) {
            continue;
        }
        let options = config.options.as_ref();
        let missing: Vec<&str> = AWSLOGS_REQUIRED
            .iter()
            .copied()
            .filter(|o| options.and_then(|m| m.get(*o)).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(client(format!("Log driver awslogs requires options: {}", missing.join(", "))));
        }
    }
    Ok(())
}
