//! The one error type of task networking.

use std::path::PathBuf;

use super::{Mode, Protocol};

/// What went wrong while setting up, tearing down or recovering a task's network.
///
/// Each message names the value that failed (the port, the task, the plugin and its command).
/// [`NetworkError::PortInUse`] and [`NetworkError::PortsExhausted`] start with ECS's
/// `RESOURCE:PORTS` so the task engine can use the message as the task's stopped reason.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The [`super::NetworkConfig`] is not usable.
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
    /// A task id that cannot name a network namespace, a CNI container id and a state file.
    #[error("invalid task id {0:?}: use 1 to 100 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit")]
    InvalidTaskId(String),
    /// The port mappings do not fit the network mode.
    #[error("invalid port mappings for network mode {mode}: {reason}")]
    InvalidPorts { mode: Mode, reason: String },
    /// A static host port is taken, by another task of this agent or on the host.
    #[error("RESOURCE:PORTS: host port {port}/{protocol} is already in use {by}")]
    PortInUse { port: u16, protocol: Protocol, by: String },
    /// Every port of the ephemeral range is taken.
    #[error("RESOURCE:PORTS: no free {protocol} host port left in the ephemeral range {start}-{end}")]
    PortsExhausted { protocol: Protocol, start: u16, end: u16 },
    /// `setup_task` for a task that already has a network (recover or tear it down first).
    #[error("task {0} already has a network")]
    TaskExists(String),
    /// A setup or teardown of the same task is still running.
    #[error("task {0}: a network setup or teardown is already running")]
    TaskBusy(String),
    /// The agent stopped in the middle of `setup_task`: the network is half made.
    #[error("task {0}: network setup did not finish (the agent stopped during it); tear the task's network down")]
    SetupIncomplete(String),
    /// A CNI plugin ran and reported an error (its `code`, `msg` and `details`).
    #[error("CNI plugin {plugin} {command} for task {task_id} failed: {msg} (code {code}{details})")]
    Plugin { plugin: String, command: &'static str, task_id: String, code: u64, msg: String, details: String },
    /// A CNI plugin could not be run, timed out, or answered something that is not CNI.
    #[error("CNI plugin {plugin}: {reason}")]
    PluginExec { plugin: String, reason: String },
    /// A host tool (`ip`, `iptables-save`, `iptables-restore`) failed.
    #[error("{command} failed: {reason}")]
    Command { command: String, reason: String },
    /// A file-system operation on the state directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A task's state file does not parse.
    #[error("task network state {} is corrupt: {source}", path.display())]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl NetworkError {
    pub(super) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetworkError::Io { action, path: path.into(), source }
    }
}
