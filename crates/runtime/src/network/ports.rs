//! Host ports: which ones this agent handed out, which ones the host uses, and the choice of
//! dynamic ports from the ephemeral range.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;

use super::{Mode, NetworkError, PortBinding, PortRequest, Protocol};

/// The address berth publishes host ports on: all of the host's IPv4 addresses.
pub(super) const BIND_ALL: &str = "0.0.0.0";

/// The host ports handed out to this agent's tasks, and the cursor of the dynamic choice.
#[derive(Debug)]
pub(super) struct PortTable {
    range: RangeInclusive<u16>,
    held: HashMap<(Protocol, u16), String>,
    next: u16,
}

impl PortTable {
    /// `seed` spreads where the dynamic choice starts, so two agents on one host rarely race
    /// for the same port.
    pub(super) fn new(range: RangeInclusive<u16>, seed: u64) -> Self {
        let len = u64::from(range.end() - range.start()) + 1;
        let next = range.start() + u16::try_from(seed % len).unwrap_or(0);
        PortTable { range, held: HashMap::new(), next }
    }

    /// Mark a recorded task's binding as handed out (after an agent restart).
    pub(super) fn hold(&mut self, task_id: &str, binding: &PortBinding) {
        self.held.insert((binding.protocol, binding.host_port), task_id.to_string());
    }

    /// Give back every port of `task_id`.
    pub(super) fn release_task(&mut self, task_id: &str) {
        self.held.retain(|_, holder| holder != task_id);
    }

    #[cfg(test)]
    pub(super) fn holder(&self, protocol: Protocol, port: u16) -> Option<&str> {
        self.held.get(&(protocol, port)).map(String::as_str)
    }

    /// Check `requests` against `mode` and choose their host ports; `in_use` says whether the
    /// host uses a port (a listener, or a DNAT rule of another agent). On success the ports are
    /// held for `task_id`; on error nothing is held.
    pub(super) fn allocate(
        &mut self,
        task_id: &str,
        mode: Mode,
        requests: &[PortRequest],
        in_use: &dyn Fn(Protocol, u16) -> bool,
    ) -> Result<Vec<PortBinding>, NetworkError> {
        let invalid = |reason: String| NetworkError::InvalidPorts { mode, reason };
        if let Some(r) = requests.iter().find(|r| r.container_port == 0) {
            return Err(invalid(format!("containerPort must be between 1 and 65535 ({} mapping)", r.protocol)));
        }
        let requested = |r: &PortRequest| r.host_port.filter(|&p| p != 0);
        match mode {
            Mode::None if !requests.is_empty() => {
                return Err(invalid("a task in the none network mode has no port mappings".into()))
            }
            Mode::None => return Ok(Vec::new()),
            Mode::Awsvpc | Mode::Host => {
                if let Some(r) = requests.iter().find(|r| requested(r).is_some_and(|p| p != r.container_port)) {
                    return Err(invalid(format!(
                        "when networkMode={mode}, the host ports and container ports in port mappings must match \
                         (hostPort {} for containerPort {})",
                        requested(r).unwrap_or_default(),
                        r.container_port
                    )));
                }
                // awsvpc ports live in the task's own namespace: nothing to publish on the host.
                if mode == Mode::Awsvpc {
                    return Ok(Vec::new());
                }
            }
            Mode::Bridge => {}
        }

        let mut chosen: Vec<Option<u16>> = vec![None; requests.len()];
        let mut taken_now: HashSet<(Protocol, u16)> = HashSet::new();
        // Static ports first, so a dynamic choice never takes a port asked for by number.
        for (slot, r) in chosen.iter_mut().zip(requests) {
            let port = match mode {
                Mode::Host => r.container_port,
                _ => match requested(r) {
                    Some(p) => p,
                    None => continue,
                },
            };
            if !taken_now.insert((r.protocol, port)) {
                return Err(invalid(format!("host port {port}/{} is mapped twice", r.protocol)));
            }
            if let Some(holder) = self.held.get(&(r.protocol, port)) {
                let by = format!("by task {holder}");
                return Err(NetworkError::PortInUse { port, protocol: r.protocol, by });
            }
            if in_use(r.protocol, port) {
                return Err(NetworkError::PortInUse { port, protocol: r.protocol, by: "on the host".into() });
            }
            *slot = Some(port);
        }
        let len = u32::from(self.range.end() - self.range.start()) + 1;
        for (slot, r) in chosen.iter_mut().zip(requests) {
            if slot.is_some() {
                continue;
            }
            let mut found = None;
            let mut candidate = self.next;
            for _ in 0..len {
                let key = (r.protocol, candidate);
                if !self.held.contains_key(&key) && !taken_now.contains(&key) && !in_use(r.protocol, candidate) {
                    found = Some(candidate);
                    break;
                }
                candidate = self.after(candidate);
            }
            let Some(port) = found else {
                let (start, end) = (*self.range.start(), *self.range.end());
                return Err(NetworkError::PortsExhausted { protocol: r.protocol, start, end });
            };
            self.next = self.after(port);
            taken_now.insert((r.protocol, port));
            *slot = Some(port);
        }

        let bindings: Vec<PortBinding> = chosen
            .into_iter()
            .zip(requests)
            .filter_map(|(port, r)| {
                Some(PortBinding {
                    container_port: r.container_port,
                    host_port: port?,
                    protocol: r.protocol,
                    bind_ip: BIND_ALL.to_string(),
                })
            })
            .collect();
        for b in &bindings {
            self.hold(task_id, b);
        }
        Ok(bindings)
    }

    fn after(&self, port: u16) -> u16 {
        if port >= *self.range.end() {
            *self.range.start()
        } else {
            port + 1
        }
    }
}

/// Whether a listener or socket on the host holds `port`: binding it on the IPv4 and IPv6
/// wildcard addresses fails with "address in use". Sends nothing.
pub(super) fn bound_on_host(protocol: Protocol, port: u16) -> bool {
    let v4 = match protocol {
        Protocol::Tcp => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map(drop),
        Protocol::Udp => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map(drop),
    };
    let v6 = match protocol {
        Protocol::Tcp => TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).map(drop),
        Protocol::Udp => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).map(drop),
    };
    // A host without IPv6 answers "address not available"; only "in use" means taken.
    let in_use = |r: std::io::Result<()>| matches!(r, Err(e) if e.kind() == ErrorKind::AddrInUse);
    in_use(v4) || in_use(v6)
}
