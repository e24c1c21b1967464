//! Container health checks: the command form and the documented ranges, and the defaults ECS
//! stores (`interval` 30, `timeout` 5, `retries` 3; `startPeriod` stays off when absent).

use std::ops::RangeInclusive;

use super::{client, name_of};
use crate::model::{ContainerDefinition, HealthCheck};
use crate::ApiError;

/// Seconds between checks: documented range and default.
const INTERVAL: (RangeInclusive<i32>, i32) = (5..=300, 30);
/// Seconds one check may take: documented range and default.
const TIMEOUT: (RangeInclusive<i32>, i32) = (2..=60, 5);
/// Consecutive failures before unhealthy: documented range and default.
const RETRIES: (RangeInclusive<i32>, i32) = (1..=10, 3);
/// Grace period in seconds: documented range (no default).
const START_PERIOD: RangeInclusive<i32> = 0..=300;

/// Checks every container's health check.
pub(super) fn check(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    for container in containers {
        if let Some(health) = &container.health_check {
            check_one(health, name_of(container))?;
        }
    }
    Ok(())
}

/// The health check with ECS's defaults filled in.
pub(super) fn with_defaults(health: &HealthCheck) -> HealthCheck {
    HealthCheck {
        interval: health.interval.or(Some(INTERVAL.1)),
        timeout: health.timeout.or(Some(TIMEOUT.1)),
        retries: health.retries.or(Some(RETRIES.1)),
        ..health.clone()
    }
}

/// The command runs as Docker's `CMD` (exec form) or `CMD-SHELL`; `NONE` disables the image's.
fn check_one(health: &HealthCheck, name: &str) -> Result<(), ApiError> {
    let invalid = |detail: &str| client(format!("Invalid 'healthCheck' setting for container '{name}'. {detail}"));
    let command = health.command.as_deref().unwrap_or_default();
    let well_formed = match command.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL") => command.len() > 1,
        Some("NONE") => command.len() == 1,
        _ => false,
    };
    if !well_formed {
        return Err(invalid("The 'command' must start with CMD or CMD-SHELL, followed by the command to run."));
    }
    let bounded = [
        ("interval", health.interval, &INTERVAL.0),
        ("timeout", health.timeout, &TIMEOUT.0),
        ("retries", health.retries, &RETRIES.0),
        ("startPeriod", health.start_period, &START_PERIOD),
    ];
    for (member, value, range) in bounded {
        if value.is_some_and(|v| !range.contains(&v)) {
            return Err(invalid(&format!("'{member}' must be between {} and {}.", range.start(), range.end())));
        }
    }
    Ok(())
}
