//! The per-task record in the state directory: enough to report a task's network and to tear
//! it down after an agent restart (the CNI network list as run, its runtime config and the
//! cached result that DEL needs as `prevResult`).
//!
//! A record is written before anything is made on the host and removed after everything is
//! gone, each write atomic (temporary file, then rename), so an agent crash at any point
//! leaves either nothing or a record that `teardown_task` can finish. Only the write before
//! CNI ADD is also fsynced (`StateStore::save_synced`): a host crash ends namespaces, links and
//! iptables rules, but the IPAM plugin's address files stay on disk, and the record is what
//! frees them after a reboot. The other fsyncs cost a bridge task's start up to ~2 ms each
//! on a disk busy with other writes.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Mode, NetworkError, PortBinding};

/// The record format; bumped if a field's meaning changes.
const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Phase {
    /// `setup_task` is (or was, when the agent stopped) still running.
    SettingUp,
    /// The network is complete.
    Ready,
}

/// The CNI side of a task: what ADD ran, so DEL can run the same.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CniAttachment {
    /// The network configuration list (`cniVersion`, `name`, `plugins`), as a `.conflist` file holds it.
    pub conflist: Value,
    /// The runtime config given to the plugins that declare the capability (`portMappings`).
    pub runtime_config: Value,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The result of the last plugin that ADD ran; the whole chain's result once `Ready`.
    pub result: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskRecord {
    pub version: u32,
    pub task_id: String,
    pub mode: Mode,
    pub phase: Phase,
    /// The `ip netns` name; `None` in host mode.
    pub netns: Option<String>,
    pub bindings: Vec<PortBinding>,
    pub cni: Option<CniAttachment>,
}

impl TaskRecord {
    pub(super) fn new(task_id: &str, mode: Mode, netns: Option<String>, bindings: Vec<PortBinding>) -> Self {
        TaskRecord {
            version: RECORD_VERSION,
            task_id: task_id.to_string(),
            mode,
            phase: Phase::SettingUp,
            netns,
            bindings,
            cni: None,
        }
    }
}

/// `<state_dir>/tasks/<task id>.json`.
#[derive(Debug)]
pub(super) struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub(super) fn open(dir: PathBuf) -> Result<Self, NetworkError> {
        fs::create_dir_all(&dir).map_err(|e| NetworkError::io("create state directory", &dir, e))?;
        Ok(StateStore { dir })
    }

    fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}.json"))
    }

    pub(super) fn exists(&self, task_id: &str) -> bool {
        self.path(task_id).exists()
    }

    pub(super) fn load(&self, task_id: &str) -> Result<Option<TaskRecord>, NetworkError> {
        read(&self.path(task_id))
    }

    /// Writes `record` atomically (survives an agent crash, not necessarily a host crash).
    pub(super) fn save(&self, record: &TaskRecord) -> Result<(), NetworkError> {
        self.write(record, false)
    }

    /// Writes `record` atomically and durably (also survives a host crash).
    pub(super) fn save_synced(&self, record: &TaskRecord) -> Result<(), NetworkError> {
        self.write(record, true)
    }

    fn write(&self, record: &TaskRecord, synced: bool) -> Result<(), NetworkError> {
        let path = self.path(&record.task_id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(record)
            .map_err(|e| NetworkError::CorruptState { path: path.clone(), source: e })?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&body)?;
            if synced {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if synced {
                fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| NetworkError::io("write task network state", &path, e))
    }

    /// Removes the record (a removal lost in a host crash only repeats an idempotent teardown).
    pub(super) fn remove(&self, task_id: &str) -> Result<(), NetworkError> {
        let path = self.path(task_id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(NetworkError::io("remove task network state", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every record; a record that cannot be read is logged and skipped (recover() of that
    /// task still reports the error).
    pub(super) fn list(&self) -> Result<Vec<TaskRecord>, NetworkError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| NetworkError::io("read state directory", &self.dir, e))?;
        let mut records = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| NetworkError::io("read state directory", &self.dir, e))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match read(&path) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "skipping unreadable task network state"),
            }
        }
        records.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(records)
    }
}

fn read(path: &Path) -> Result<Option<TaskRecord>, NetworkError> {
    let body = match fs::read(path) {
        Ok(body) => body,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NetworkError::io("read task network state", path, e)),
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| NetworkError::CorruptState { path: path.to_path_buf(), source: e })
}
