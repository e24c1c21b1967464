//! Network-mode rules for port mappings, links and hostnames.
//!
//! In `awsvpc` and `host` mode a container's ports are the task's (or host's) ports, so a
//! host port can only equal the container port; links and per-container networking need
//! Docker's bridge. `none` has no ports at all.

use std::collections::HashSet;

use super::{client, has_items, name_of, Spec};
use crate::model::{ContainerDefinition, NetworkMode, PortMapping, TransportProtocol};
use crate::ApiError;

/// The valid port numbers.
const PORTS: std::ops::RangeInclusive<i32> = 1..=65535;

/// Checks every container against the task's network mode.
pub(super) fn check(spec: &Spec<'_>) -> Result<(), ApiError> {
    let mode = spec.network_mode();
    for container in spec.containers {
        check_links(container, mode)?;
        check_hostname(container, mode)?;
        for mapping in container.port_mappings.as_deref().unwrap_or_default() {
            check_port_mapping(mapping, name_of(container), mode)?;
        }
    }
    check_host_ports_unique(spec.containers, mode)
}

/// A host port (per protocol) can be published once per task; in awsvpc and host mode an
/// unset host port is the container port.
fn check_host_ports_unique(containers: &[ContainerDefinition], mode: Option<NetworkMode>) -> Result<(), ApiError> {
    let same_ports = matches!(mode, Some(NetworkMode::Awsvpc | NetworkMode::Host));
    let mut seen = HashSet::new();
    for mapping in containers.iter().flat_map(|c| c.port_mappings.as_deref().unwrap_or_default()) {
        let host = mapping.host_port.filter(|p| *p != 0).or(mapping.container_port.filter(|_| same_ports));
        let Some(host) = host else { continue };
        let protocol = mapping.protocol.unwrap_or(TransportProtocol::Tcp);
        if !seen.insert((host, protocol)) {
            return Err(client(format!(
                "{} host port '{host}' is mapped multiple times in task.",
                protocol.as_str().to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

/// The wire name of a network mode; `None` is Docker's default.
fn mode_name(mode: Option<NetworkMode>) -> &'static str {
    mode.map_or("bridge", |m| m.as_str())
}

/// Links are Docker bridge-network aliases.
fn check_links(container: &ContainerDefinition, mode: Option<NetworkMode>) -> Result<(), ApiError> {
    if has_items(container.links.as_deref()) && !matches!(mode, None | Some(NetworkMode::Bridge)) {
        return Err(client(format!("Links are not supported when networkMode={}.", mode_name(mode))));
    }
    Ok(())
}

/// An `awsvpc` task has one network identity; containers cannot name themselves.
fn check_hostname(container: &ContainerDefinition, mode: Option<NetworkMode>) -> Result<(), ApiError> {
    if container.hostname.is_some() && mode == Some(NetworkMode::Awsvpc) {
        return Err(client("hostname is not supported on container when networkMode=awsvpc."));
    }
    Ok(())
}

/// One port mapping: a port or port range, a host port in range, and the mode's constraints.
fn check_port_mapping(mapping: &PortMapping, name: &str, mode: Option<NetworkMode>) -> Result<(), ApiError> {
    if mode == Some(NetworkMode::None) {
        return Err(client("Port mappings are not supported when networkMode=none."));
    }
    match (&mapping.container_port_range, mapping.container_port) {
        (Some(range), _) => check_port_range(range, mapping, name, mode)?,
        (None, Some(port)) if PORTS.contains(&port) => {}
        (None, _) => return Err(client(format!("Invalid 'containerPort' setting for container '{name}'."))),
    }
    if mapping.host_port.is_some_and(|h| !(0..=65535).contains(&h)) {
        return Err(client(format!("Invalid 'hostPort' setting for container '{name}'.")));
    }
    if let (Some(host), Some(container), Some(NetworkMode::Awsvpc | NetworkMode::Host)) =
        (mapping.host_port, mapping.container_port, mode)
    {
        if host != container {
            return Err(client(format!(
                "When networkMode={}, the host ports and container ports in port mappings must match.",
                mode_name(mode)
            )));
        }
    }
    Ok(())
}

/// A `containerPortRange` (`"8000-8010"`): bridge or awsvpc only, ascending, no host port.
fn check_port_range(range: &str, mapping: &PortMapping, name: &str, mode: Option<NetworkMode>) -> Result<(), ApiError> {
    let invalid = || client(format!("Invalid 'containerPortRange' setting for container '{name}'."));
    if !matches!(mode, None | Some(NetworkMode::Bridge | NetworkMode::Awsvpc)) {
        return Err(client(format!("Container port ranges are not supported when networkMode={}.", mode_name(mode))));
    }
    if mapping.host_port.is_some() {
        return Err(invalid());
    }
    let (first, last) = range.split_once('-').ok_or_else(invalid)?;
    let first: i32 = first.trim().parse().map_err(|_| invalid())?;
    let last: i32 = last.trim().parse().map_err(|_| invalid())?;
    if PORTS.contains(&first) && PORTS.contains(&last) && first < last {
        Ok(())
    } else {
        Err(invalid())
    }
}
