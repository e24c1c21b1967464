//! What this host offers: CPU units (1024 per core), memory in MiB, and the standard attributes.

use berth_api::model::{Attribute, Resource};

/// Ports ECS reserves on every instance (ssh, Docker, the ECS agent's).
const RESERVED_PORTS: &[&str] = &["22", "2375", "2376", "51678", "51679"];

/// CPU units: 1024 per online CPU.
pub fn cpu_units() -> i32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    i32::try_from(cores * 1024).unwrap_or(i32::MAX)
}

/// Total memory in MiB, from /proc/meminfo.
pub fn memory_mib() -> i32 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    i32::try_from(kib / 1024).unwrap_or(i32::MAX)
}

/// The registered resources ECS reports: CPU, MEMORY, PORTS, PORTS_UDP.
pub fn resources() -> Vec<Resource> {
    let int = |name: &str, v: i32| Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(v),
        ..Default::default()
    };
    let set = |name: &str, v: &[&str]| Resource {
        name: Some(name.into()),
        r#type: Some("STRINGSET".into()),
        string_set_value: Some(v.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    vec![int("CPU", cpu_units()), int("MEMORY", memory_mib()), set("PORTS", RESERVED_PORTS), set("PORTS_UDP", &[])]
}

/// The capabilities this agent honours, which the server matches against a definition's
/// `requiresAttributes`. Not listed, so not placed here: SSM parameters as secrets,
/// S3 environment files, EFS, FireLens, ECR authentication, SELinux and AppArmor options,
/// and pid/ipc namespace sharing. The Docker API levels stand for the features ECS ties to
/// them (log options, ulimits, health checks, init), which the runtime implements itself.
const CAPABILITIES: &[&str] = &[
    "ecs.capability.task-eni",
    "ecs.capability.container-health-check",
    "ecs.capability.container-ordering",
    "ecs.capability.execution-role-awslogs",
    "com.amazonaws.ecs.capability.task-iam-role",
    "ecs.capability.secrets.asm.environment-variables",
    "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
    "com.amazonaws.ecs.capability.privileged-container",
    "com.amazonaws.ecs.capability.logging-driver.awslogs",
    "com.amazonaws.ecs.capability.logging-driver.json-file",
    "com.amazonaws.ecs.capability.logging-driver.none",
    "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18",
    "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.20",
    "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.docker-remote-api.1.22",
    "com.amazonaws.ecs.capability.docker-remote-api.1.23",
    "com.amazonaws.ecs.capability.docker-remote-api.1.24",
    "com.amazonaws.ecs.capability.docker-remote-api.1.25",
];

/// The standard attributes, the capabilities, then the custom ones.
pub fn attributes(zone: &str, custom: &[(String, String)]) -> Vec<Attribute> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let standard = [
        ("ecs.os-type", "linux"),
        ("ecs.os-family", "LINUX"),
        ("ecs.cpu-architecture", arch),
        ("ecs.availability-zone", zone),
    ];
    standard
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(CAPABILITIES.iter().map(|c| (c.to_string(), String::new())))
        .chain(custom.iter().cloned())
        .map(|(name, value)| Attribute {
            name: Some(name),
            value: (!value.is_empty()).then_some(value),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_positive() {
        assert!(cpu_units() >= 1024);
        assert!(memory_mib() > 0);
        let r = resources();
        assert_eq!(
            r.iter().filter_map(|r| r.name.as_deref()).collect::<Vec<_>>(),
            ["CPU", "MEMORY", "PORTS", "PORTS_UDP"]
        );
    }

    #[test]
    fn attributes_include_custom_ones() {
        let a = attributes("local-a", &[("stack".into(), "prod".into())]);
        assert!(a
            .iter()
            .any(|a| a.name.as_deref() == Some("ecs.availability-zone") && a.value.as_deref() == Some("local-a")));
        assert!(a.iter().any(|a| a.name.as_deref() == Some("stack") && a.value.as_deref() == Some("prod")));
    }
}
