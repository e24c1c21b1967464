//! Task-level `cpu` and `memory`: the string forms ECS accepts, the range it enforces, and the
//! Fargate size table.
//!
//! ECS takes `cpu` as CPU units (`"1024"`) or vCPUs (`"1 vCPU"`, `"0.25 vcpu"`) and `memory`
//! as MiB (`"2048"`) or GB (`"2 GB"`, `"2GB"`), and stores both as plain integers. A string
//! that is not one of these forms is an `InvalidParameterException`; a well-formed value out
//! of range is a `ClientException`.

use std::ops::RangeInclusive;

use super::client;
use crate::model::RegisterTaskDefinitionRequest;
use crate::ApiError;

/// CPU units in one vCPU, and MiB in one GB, as ECS converts them.
const PER_UNIT: u64 = 1024;

/// Task `cpu` ECS accepts outside Fargate: 128 units (0.125 vCPU) to 196608 units (192 vCPU).
const TASK_CPU_UNITS: RangeInclusive<u32> = 128..=196_608;

/// ECS's answer to a task `cpu` outside the supported range.
const CPU_OUT_OF_RANGE: &str = "Invalid 'cpu' setting for task. For more information, see the \
                                Troubleshooting section of the Amazon ECS Developer Guide.";

/// The largest value ECS can store and clients can read back as an integer.
const MAX_VALUE: u64 = i32::MAX as u64;

/// The task size, normalized to CPU units and MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TaskSize {
    /// Task `cpu` in CPU units.
    pub cpu: Option<u32>,
    /// Task `memory` in MiB.
    pub memory: Option<u32>,
}

/// Parses and range-checks the request's task `cpu` and `memory`.
pub(super) fn task_size(req: &RegisterTaskDefinitionRequest) -> Result<TaskSize, ApiError> {
    let cpu = req.cpu.as_deref().map(parse_cpu).transpose()?;
    let memory = req.memory.as_deref().map(parse_memory).transpose()?;
    if cpu.is_some_and(|c| !TASK_CPU_UNITS.contains(&c)) {
        return Err(client(CPU_OUT_OF_RANGE));
    }
    if memory == Some(0) {
        return Err(client("Invalid 'memory' setting for task."));
    }
    Ok(TaskSize { cpu, memory })
}

/// Task-level cpu string (`"256"`, `"1 vCPU"`, `"0.5 vcpu"`) to CPU units, as ECS parses it.
///
/// Only the syntax is checked here; the supported range is the caller's business.
pub fn parse_cpu(s: &str) -> Result<u32, ApiError> {
    parse_quantity(s, &[("vcpus", PER_UNIT), ("vcpu", PER_UNIT)])
        .ok_or_else(|| ApiError::invalid("Invalid 'cpu' setting for task."))
}

/// Task-level memory string (`"512"`, `"1 GB"`, `"2GB"`, `"1024 MiB"`) to MiB, as ECS parses it.
///
/// ECS documents MiB integers and GB strings; GiB, MB and MiB suffixes are accepted too because
/// compose-style tools send them and they are unambiguous.
pub fn parse_memory(s: &str) -> Result<u32, ApiError> {
    parse_quantity(s, &[("gib", PER_UNIT), ("gb", PER_UNIT), ("mib", 1), ("mb", 1)])
        .ok_or_else(|| ApiError::invalid("Invalid 'memory' setting for task."))
}

/// ECS's refusal of a task size Fargate does not offer, at registration or (with overrides)
/// at launch.
pub fn no_fargate_configuration(cpu_units: u32, memory_mib: u32) -> ApiError {
    client(format!(
        "No Fargate configuration exists for given values: {cpu_units} CPU, {memory_mib} memory. \
         See the Amazon ECS documentation for the valid values."
    ))
}

/// Whether Fargate offers `memory_mib` with `cpu_units` (Linux table; Windows needs 1 vCPU or
/// more, which callers check).
pub fn fargate_memory_allowed(cpu_units: u32, memory_mib: u32) -> bool {
    let (min, max, step): (u32, u32, usize) = match cpu_units {
        256 => return matches!(memory_mib, 512 | 1024 | 2048),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122_880, 8192),
        _ => return false,
    };
    (min..=max).step_by(step).any(|allowed| allowed == memory_mib)
}

/// `s` in base units: plain digits, or a decimal number followed by one of `units`
/// (case-insensitive, optional space) that is a whole number of base units once scaled.
fn parse_quantity(s: &str, units: &[(&str, u64)]) -> Option<u32> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    match units.iter().find(|(unit, _)| lower.ends_with(unit)) {
        Some((unit, scale)) => {
            let number = s.get(..s.len() - unit.len())?.trim_end();
            scaled_decimal(number, *scale)
        }
        None => plain_integer(s),
    }
}

/// A string of ASCII digits as a storable integer.
fn plain_integer(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = s.parse().ok()?;
    to_stored(value)
}

/// `number` (`"2"`, `"0.25"`) times `scale`, exactly, if the product is whole.
fn scaled_decimal(number: &str, scale: u64) -> Option<u32> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_empty() != number.contains('.');
    if whole.is_empty() || !fraction_ok || !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    if whole.len() > 12 || fraction.len() > 12 {
        return None;
    }
    let denominator = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    let numerator = format!("{whole}{fraction}").parse::<u128>().ok()? * u128::from(scale);
    if numerator % denominator != 0 {
        return None;
    }
    to_stored(u64::try_from(numerator / denominator).ok()?)
}

/// `value` if it fits what ECS stores.
fn to_stored(value: u64) -> Option<u32> {
    if value > MAX_VALUE {
        return None;
    }
    u32::try_from(value).ok()
}
