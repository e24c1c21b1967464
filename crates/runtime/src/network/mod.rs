//! Task networking through CNI: the ECS network modes `bridge`, `awsvpc`, `host` and `none`.
//!
//! # Behavior
//!
//! - `bridge` and `awsvpc`: each task gets a named network namespace
//!   `/run/netns/<bridge>-<task id>` (made with `ip netns add`, `lo` up) attached to the
//!   agent's Linux bridge by the CNI plugins, as one network configuration list
//!   `berth-<bridge>` (see [`Networks::setup_task`] for the list). The task gets an address
//!   of the agent's subnet from host-local IPAM (its data under `<state_dir>/ipam`), the
//!   bridge's address (the subnet's first) as default gateway, and masquerade for outbound
//!   traffic.
//! - `bridge` publishes port mappings on the host with the portmap plugin (iptables DNAT
//!   from `hostPort` on every local address to the task's `containerPort`); `hostPort` 0 or
//!   absent picks a free port of the ephemeral range (ECS: 49153-65535). The bindings are
//!   ECS's `networkBindings` (`bindIP` 0.0.0.0).
//! - `awsvpc` publishes nothing: the task's address is its ENI's `privateIPv4Address`,
//!   reachable from the host and from the other tasks on the bridge; `hostPort` must be
//!   absent or equal `containerPort` (as ECS demands) and no bindings are reported.
//! - `host`: no namespace; containers join the host's (`/proc/1/ns/net`). The container
//!   ports are the host ports; each must be free on the host and not handed out.
//! - `none`: nothing to set up here: each container gets a fresh namespace of its own from
//!   runc, with only `lo` (as Docker's `--network none`); port mappings are refused.
//!
//! The containers of one `bridge`, `awsvpc` or `host` task share the task's namespace, so
//! they reach each other on `localhost`. ECS's `bridge` mode gives each container its own
//! namespace and joins them with `links`; berth approximates it with the shared task
//! namespace plus `/etc/hosts` entries for the link names, which the container module writes.
//!
//! ## Published ports on 127.0.0.1
//!
//! portmap DNATs in `PREROUTING` (traffic from outside) and in `OUTPUT` for every local
//! destination address (traffic from the host itself: 127.0.0.1, the host's own addresses,
//! the bridge's address). For 127.0.0.1 the rewritten packet leaves through the bridge with
//! source 127.0.0.1, which the kernel drops as martian unless the bridge has
//! `route_localnet=1`, and the task could not answer it anyway. portmap's `snat: true` (its
//! default, which berth spells out) does both halves: it sets `route_localnet=1` on the bridge
//! the task's address routes through, and marks connections from 127.0.0.1 (and hairpin
//! connections from the subnet) for `MASQUERADE`, so the task sees the bridge's address as
//! the source. `hairpinMode` on the bridge lets a task reach its own published port through
//! a host address. Nothing else is needed on Debian 12 (iptables-nft).
//!
//! ## State
//!
//! Each task's record (`<state_dir>/tasks/<task id>.json`) holds its mode, namespace, port
//! bindings, the CNI network list as run, its runtime config and the CNI result. It is
//! written before anything is made and removed after everything is gone, so DEL runs with
//! the same configuration and `prevResult` after an agent restart, and a crash in the
//! middle of `setup_task` leaves a record that `teardown_task` finishes.
//!
//! ## Two agents on one host
//!
//! Each agent has its own bridge and subnet (config); the network name, namespace names,
//! the plugins' iptables chains (hashed from network name and task id) and the IPAM
//! directory follow from them, so the agents' tasks do not collide even with equal task ids.
//! Host ports already published by DNAT rules (another agent, another CNI user) count as in
//! use.
//!
//! # Limitations
//!
//! - IPv4 only (the subnet is IPv4; portmap publishes on IPv4).
//! - Two agents choosing a dynamic port at the same instant can pick the same one: each
//!   sees the other's ports only once they are in iptables. Their dynamic choices start at
//!   different points of the range to make that unlikely.
//! - The bridge stays after the last task is gone (as `cni0` and `docker0` do), and so do
//!   the CNI chains all networks share (`CNI-HOSTPORT-*`, `CNI-FORWARD`); the bridge plugin
//!   turns on `net.ipv4.ip_forward`.
//! - `/etc/resolv.conf` and `/etc/hosts` of the containers are the container module's.

mod cmd;
mod cni;
mod error;
mod iptables;
mod netns;
mod ports;
mod state;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use error::NetworkError;

use ports::PortTable;
use state::{CniAttachment, Phase, StateStore, TaskRecord};

use crate::container::Namespace;

/// The bridge of an agent that is given none.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The task subnet of an agent that is given none.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";
/// Where Debian's `containernetworking-plugins` installs the plugins.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";
/// ECS's ephemeral host port range for dynamic port mappings.
pub const ECS_EPHEMERAL_PORTS: RangeInclusive<u16> = 49153..=65535;
/// The name of a task's interface in its namespace (`CNI_IFNAME`).
pub const TASK_IFNAME: &str = "eth0";

/// One agent's task network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The Linux bridge the tasks attach to, e.g. `berth0`; at most 15 characters. Two agents
    /// on one host use different bridges.
    pub bridge: String,
    /// The tasks' IPv4 subnet, e.g. `10.213.0.0/24`; its first address is the bridge's.
    pub subnet: String,
    /// Where the CNI plugins are, e.g. `/usr/lib/cni`.
    pub cni_bin_dir: PathBuf,
    /// Where the per-task records and the IPAM data live; must survive agent restarts.
    pub state_dir: PathBuf,
    /// Dynamic host ports come from here (ECS: 49153..=65535).
    pub ephemeral_ports: RangeInclusive<u16>,
}

impl NetworkConfig {
    /// The defaults: bridge `berth0`, subnet `10.213.0.0/24`, `/usr/lib/cni`, ECS's range.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetworkConfig {
            bridge: DEFAULT_BRIDGE.to_string(),
            subnet: DEFAULT_SUBNET.to_string(),
            cni_bin_dir: PathBuf::from(DEFAULT_CNI_BIN_DIR),
            state_dir: state_dir.into(),
            ephemeral_ports: ECS_EPHEMERAL_PORTS,
        }
    }
}

/// A port mapping's transport protocol; ECS spells it `tcp` / `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(NetworkError::InvalidConfig(format!("unknown protocol {other:?} (tcp or udp)"))),
        }
    }
}

/// A container definition's port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    pub container_port: u16,
    /// `None` or `Some(0)`: a dynamic port from the ephemeral range (bridge mode).
    pub host_port: Option<u16>,
    pub protocol: Protocol,
}

/// A published port: ECS's `NetworkBinding`, and serialized with its member names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
    /// `0.0.0.0`: every IPv4 address of the host.
    #[serde(rename = "bindIP")]
    pub bind_ip: String,
}

/// A task's network, as set up or as recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskNetwork {
    /// The network namespace of the task's containers: the task's, the host's (host mode),
    /// or a private one per container (none mode).
    pub namespace: Namespace,
    /// The task's address on the bridge (awsvpc: the ENI's `privateIPv4Address`).
    pub ipv4: Option<String>,
    /// The bridge's address, the task's default gateway.
    pub gateway: Option<String>,
    /// The MAC address of the task's interface.
    pub mac: Option<String>,
    /// ECS `networkBindings` (bridge and host mode).
    pub bindings: Vec<PortBinding>,
    /// The task's interface in its namespace (`eth0`), in bridge and awsvpc mode.
    pub interface: Option<String>,
    /// The mode the network was set up in.
    pub mode: Mode,
}

/// ECS's `networkMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A namespace per task on the agent's bridge, ports published through DNAT.
    Bridge,
    /// A namespace per task on the agent's bridge with its own reported address (the ENI).
    Awsvpc,
    /// No namespace: the containers join the host's; ports are the container ports.
    Host,
    /// A namespace with only loopback.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Awsvpc => "awsvpc",
            Mode::Host => "host",
            Mode::None => "none",
        }
    }

    fn attaches_to_bridge(self) -> bool {
        matches!(self, Mode::Bridge | Mode::Awsvpc)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(Mode::Bridge),
            "awsvpc" => Ok(Mode::Awsvpc),
            "host" => Ok(Mode::Host),
            "none" => Ok(Mode::None),
            other => Err(NetworkError::InvalidConfig(format!("unknown network mode {other:?}"))),
        }
    }
}

/// An agent's task networks. Cheap to share (`&self` methods; put it in an `Arc`).
#[derive(Debug)]
pub struct Networks {
    cfg: NetworkConfig,
    /// The CNI network name, `berth-<bridge>`.
    network_name: String,
    ipam_dir: PathBuf,
    store: StateStore,
    ports: Mutex<PortTable>,
    /// Tasks with a setup or teardown under way.
    busy: Mutex<HashSet<String>>,
}

impl Networks {
    /// Check the config and the plugins (CNI `VERSION`), make the state directories, and
    /// take back the host ports of the tasks recorded there.
    pub fn new(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        validate_bridge(&cfg.bridge)?;
        validate_subnet(&cfg.subnet)?;
        let (start, end) = (*cfg.ephemeral_ports.start(), *cfg.ephemeral_ports.end());
        if start == 0 || start > end {
            return Err(NetworkError::InvalidConfig(format!(
                "ephemeral port range {start}-{end} is empty or starts at 0"
            )));
        }
        cni::check_plugins(&cfg.cni_bin_dir)?;
        let store = StateStore::open(cfg.state_dir.join("tasks"))?;
        let ipam_dir = cfg.state_dir.join("ipam");
        std::fs::create_dir_all(&ipam_dir).map_err(|e| NetworkError::io("create IPAM directory", &ipam_dir, e))?;
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
            ^ u64::from(std::process::id());
        let mut table = PortTable::new(cfg.ephemeral_ports.clone(), seed);
        for record in store.list()? {
            for binding in &record.bindings {
                table.hold(&record.task_id, binding);
            }
        }
        Ok(Networks {
            network_name: format!("berth-{}", cfg.bridge),
            cfg,
            ipam_dir,
            store,
            ports: Mutex::new(table),
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// The agent's config.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    /// Set up the network of `task_id` in `mode` with the task's port mappings.
    ///
    /// `bridge` and `awsvpc`: a namespace `/run/netns/<bridge>-<task id>` with `lo` up, then
    /// CNI ADD of the list `bridge` (host-local IPAM, `isGateway`, `ipMasq`, `hairpinMode`),
    /// `portmap` (bridge mode with ports; `snat`), `firewall` (iptables backend). Host ports
    /// are chosen first, so a port conflict fails before anything is made. On any failure
    /// everything made is undone.
    ///
    /// # Errors
    ///
    /// [`NetworkError::PortInUse`] / [`NetworkError::PortsExhausted`] (`RESOURCE:PORTS`),
    /// [`NetworkError::InvalidPorts`] for mappings the mode does not allow,
    /// [`NetworkError::TaskExists`] when the task has a network already, and the failures of
    /// `ip` and the plugins.
    pub async fn setup_task(
        &self,
        task_id: &str,
        mode: Mode,
        ports: &[PortRequest],
    ) -> Result<TaskNetwork, NetworkError> {
        validate_task_id(task_id)?;
        let _claim = self.claim(task_id)?;
        if self.store.exists(task_id) {
            return Err(NetworkError::TaskExists(task_id.to_string()));
        }
        let started = Instant::now();
        let bindings = self.allocate_ports(task_id, mode, ports).await?;
        let netns = mode.attaches_to_bridge().then(|| self.netns_name(task_id));
        let mut record = TaskRecord::new(task_id, mode, netns, bindings);
        if record.netns.is_none() && record.bindings.is_empty() {
            // Nothing made here, nothing to undo after a crash: no record (its fsyncs
            // were up to 15 ms of a `none` task's start on a busy disk).
            return Ok(self.task_network(&record));
        }
        // No await between taking the ports and recording them: from here on the record
        // holds them, and every failure is undone through it.
        if let Err(e) = self.store.save(&record) {
            lock(&self.ports).release_task(task_id);
            return Err(e);
        }
        let outcome = match self.bring_up(&mut record).await {
            Ok(()) => {
                record.phase = Phase::Ready;
                self.store.save(&record)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(task = task_id, %mode, error = %e, "task network setup failed; undoing it");
            self.roll_back(&record).await;
            return Err(e);
        }
        let network = self.task_network(&record);
        tracing::info!(task = task_id, %mode, ipv4 = ?network.ipv4, bindings = network.bindings.len(),
            elapsed = ?started.elapsed(), "task network set up");
        Ok(network)
    }

    /// CNI DEL (in reverse, with the recorded configuration and result), removal of any
    /// iptables rules of the task the plugins left, deletion of the namespace, then the
    /// record and the ports. Idempotent: a task without a record has nothing left.
    ///
    /// # Errors
    ///
    /// When a step fails, the others still run, the record stays (so a later call retries)
    /// and the first error is returned.
    pub async fn teardown_task(&self, task_id: &str) -> Result<(), NetworkError> {
        validate_task_id(task_id)?;
        let _claim = self.claim(task_id)?;
        let started = Instant::now();
        let record = match self.store.load(task_id) {
            Ok(Some(record)) => record,
            Ok(None) => {
                lock(&self.ports).release_task(task_id);
                return Ok(());
            }
            Err(e @ NetworkError::CorruptState { .. }) => {
                tracing::error!(task = task_id, error = %e, "tearing down from a corrupt record: best effort");
                self.synthetic_record(task_id)
            }
            Err(e) => return Err(e),
        };
        self.dismantle(&record).await?;
        self.store.remove(task_id)?;
        lock(&self.ports).release_task(task_id);
        tracing::info!(task = task_id, mode = %record.mode, elapsed = ?started.elapsed(), "task network torn down");
        Ok(())
    }

    /// The network recorded for `task_id` (after an agent restart), or `None` when there is
    /// none. Its host ports stay handed out until `teardown_task`.
    ///
    /// # Errors
    ///
    /// [`NetworkError::SetupIncomplete`] when the agent stopped during the task's
    /// `setup_task` (call `teardown_task`), [`NetworkError::CorruptState`] when the record
    /// does not parse.
    pub fn recover(&self, task_id: &str) -> Result<Option<TaskNetwork>, NetworkError> {
        validate_task_id(task_id)?;
        if lock(&self.busy).contains(task_id) {
            return Err(NetworkError::TaskBusy(task_id.to_string()));
        }
        let Some(record) = self.store.load(task_id)? else {
            return Ok(None);
        };
        if record.phase != Phase::Ready {
            return Err(NetworkError::SetupIncomplete(task_id.to_string()));
        }
        let mut table = lock(&self.ports);
        for binding in &record.bindings {
            table.hold(task_id, binding);
        }
        drop(table);
        if let Some(ns) = record.netns.as_deref().filter(|ns| !netns::exists(ns)) {
            tracing::warn!(task = task_id, netns = ns, "recorded task network namespace is gone (host reboot?)");
        }
        Ok(Some(self.task_network(&record)))
    }

    /// The ids of the tasks with a recorded network: after a restart, the ones the engine
    /// does not know any more are to be torn down.
    pub fn recorded_tasks(&self) -> Result<Vec<String>, NetworkError> {
        Ok(self.store.list()?.into_iter().map(|r| r.task_id).collect())
    }

    fn netns_name(&self, task_id: &str) -> String {
        format!("{}-{task_id}", self.cfg.bridge)
    }

    fn bridge_network(&self) -> cni::BridgeNetwork<'_> {
        cni::BridgeNetwork {
            name: &self.network_name,
            bridge: &self.cfg.bridge,
            subnet: &self.cfg.subnet,
            ipam_dir: &self.ipam_dir,
        }
    }

    fn claim(&self, task_id: &str) -> Result<Claim<'_>, NetworkError> {
        if !lock(&self.busy).insert(task_id.to_string()) {
            return Err(NetworkError::TaskBusy(task_id.to_string()));
        }
        Ok(Claim { busy: &self.busy, task_id: task_id.to_string() })
    }

    async fn allocate_ports(
        &self,
        task_id: &str,
        mode: Mode,
        ports: &[PortRequest],
    ) -> Result<Vec<PortBinding>, NetworkError> {
        let publishes = matches!(mode, Mode::Bridge | Mode::Host) && !ports.is_empty();
        let dnat = if publishes {
            match iptables::save().await {
                Ok(save) => iptables::dnat_ports(&save),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read iptables; checking host ports by binding only");
                    HashSet::new()
                }
            }
        } else {
            HashSet::new()
        };
        let in_use = |protocol, port| dnat.contains(&(protocol, port)) || ports::bound_on_host(protocol, port);
        lock(&self.ports).allocate(task_id, mode, ports, &in_use)
    }

    async fn bring_up(&self, record: &mut TaskRecord) -> Result<(), NetworkError> {
        let Some(ns) = record.netns.clone() else {
            return Ok(());
        };
        netns::create(&ns).await?;
        if !record.mode.attaches_to_bridge() {
            return Ok(());
        }
        let conflist = cni::conflist(&self.bridge_network(), !record.bindings.is_empty());
        let runtime_config = cni::runtime_config(&record.bindings);
        record.cni = Some(CniAttachment {
            conflist: conflist.clone(),
            runtime_config: runtime_config.clone(),
            ifname: TASK_IFNAME.to_string(),
            result: None,
        });
        self.store.save_synced(record)?;
        let task_id = record.task_id.clone();
        let path = netns::path(&ns);
        let call =
            cni::Call { bin_dir: &self.cfg.cni_bin_dir, container_id: &task_id, netns: &path, ifname: TASK_IFNAME };
        cni::add(call, &conflist, &runtime_config, |result| {
            // Each plugin's result is kept before the next runs: DEL after a crash needs the
            // address the bridge plugin gave.
            if let Some(cni) = record.cni.as_mut() {
                cni.result = Some(result.clone());
            }
            self.store.save(record)
        })
        .await?;
        Ok(())
    }

    /// Undo a failed setup; when that fails too, the record stays for `teardown_task`.
    async fn roll_back(&self, record: &TaskRecord) {
        let undone = match self.dismantle(record).await {
            Ok(()) => self.store.remove(&record.task_id),
            Err(e) => Err(e),
        };
        match undone {
            Ok(()) => lock(&self.ports).release_task(&record.task_id),
            Err(e) => {
                tracing::error!(task = record.task_id, error = %e, "cannot undo a failed task network setup; teardown_task retries")
            }
        }
    }

    async fn dismantle(&self, record: &TaskRecord) -> Result<(), NetworkError> {
        let mut first_error: Option<NetworkError> = None;
        if let (Some(ns), Some(attachment)) = (&record.netns, &record.cni) {
            let path = netns::path(ns);
            let call = cni::Call {
                bin_dir: &self.cfg.cni_bin_dir,
                container_id: &record.task_id,
                netns: &path,
                ifname: &attachment.ifname,
            };
            let prev = attachment.result.as_ref();
            if let Err(e) = cni::del(call, &attachment.conflist, &attachment.runtime_config, prev).await {
                first_error.get_or_insert(e);
            }
            let ipv4 = prev
                .and_then(|r| cni::summarize(r, &attachment.ifname).ipv4)
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
            let network = attachment.conflist.get("name").and_then(|n| n.as_str()).unwrap_or(&self.network_name);
            let owner = iptables::Owner { network, container_id: Some(&record.task_id), ipv4 };
            if let Err(e) = iptables::sweep(&owner).await {
                first_error.get_or_insert(e);
            }
        }
        if let Some(ns) = &record.netns {
            if let Err(e) = netns::delete(ns).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// What a task of this agent may have when its record is unreadable: a namespace, and a
    /// bridge attachment with published ports (DEL of plugins that have nothing to delete
    /// succeeds).
    fn synthetic_record(&self, task_id: &str) -> TaskRecord {
        let mut record = TaskRecord::new(task_id, Mode::Bridge, Some(self.netns_name(task_id)), Vec::new());
        record.cni = Some(CniAttachment {
            conflist: cni::conflist(&self.bridge_network(), true),
            runtime_config: cni::runtime_config(&[]),
            ifname: TASK_IFNAME.to_string(),
            result: None,
        });
        record
    }

    fn task_network(&self, record: &TaskRecord) -> TaskNetwork {
        let summary = record
            .cni
            .as_ref()
            .and_then(|c| c.result.as_ref().map(|r| cni::summarize(r, &c.ifname)))
            .unwrap_or_default();
        TaskNetwork {
            namespace: match (&record.netns, record.mode) {
                (Some(ns), _) => Namespace::Join(netns::path(ns)),
                (None, Mode::Host) => Namespace::Host,
                (None, _) => Namespace::Private,
            },
            ipv4: summary.ipv4,
            gateway: summary.gateway,
            mac: summary.mac,
            bindings: record.bindings.clone(),
            interface: record.cni.as_ref().map(|c| c.ifname.clone()),
            mode: record.mode,
        }
    }
}

/// A task's place in `Networks::busy`, given back on drop (also when the caller's future is
/// dropped mid-way).
struct Claim<'a> {
    busy: &'a Mutex<HashSet<String>>,
    task_id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(self.busy).remove(&self.task_id);
    }
}

/// The lock is never held across an await; a panic while holding it leaves consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn validate_task_id(task_id: &str) -> Result<(), NetworkError> {
    let ok = (1..=100).contains(&task_id.len())
        && task_id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && task_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidTaskId(task_id.to_string()))
    }
}

fn validate_bridge(bridge: &str) -> Result<(), NetworkError> {
    let ok = (1..=15).contains(&bridge.len())
        && bridge.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bridge.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidConfig(format!(
            "bridge name {bridge:?}: use 1 to 15 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"
        )))
    }
}

/// An IPv4 network in CIDR notation with no host bits set and room for tasks (/8 to /30).
fn validate_subnet(subnet: &str) -> Result<(Ipv4Addr, u8), NetworkError> {
    let invalid = |why: &str| NetworkError::InvalidConfig(format!("subnet {subnet:?}: {why}"));
    let (addr, len) = subnet.split_once('/').ok_or_else(|| invalid("expected an IPv4 CIDR like 10.213.0.0/24"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
    let len: u8 = len.parse().map_err(|_| invalid("not a prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(invalid("the prefix length must be between 8 and 30"));
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        return Err(invalid("host bits are set; give the network address"));
    }
    Ok((addr, len))
}
