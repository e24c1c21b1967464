//! The files of one container's state directory, shared by the runtime and the shim.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Paths inside `<state>/containers/<id>/` (also the OCI bundle directory).
#[derive(Debug, Clone)]
pub(crate) struct ContainerDir {
    pub dir: PathBuf,
}

impl ContainerDir {
    pub fn new(dir: PathBuf) -> Self {
        ContainerDir { dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn meta(&self) -> PathBuf {
        self.dir.join("container.json")
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    pub fn runc_log(&self) -> PathBuf {
        self.dir.join("runc.log")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("shim.lock")
    }
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    pub fn started(&self) -> PathBuf {
        self.dir.join("started.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
}

/// berth's own metadata about a container, written at start (`container.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Meta {
    pub id: String,
    /// Canonical signal name, e.g. `SIGTERM`.
    pub stop_signal: String,
    /// The container's cgroup path relative to the hierarchy root.
    pub cgroup_path: String,
    /// CPU shares the shim applies once the container runs (see `BuiltSpec::cpu_shares`).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// Set when the container runs in its own microVM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<super::vm::VmPlan>,
}

/// Writes `value` as JSON to `path` atomically: temp file, then rename.
///
/// Not fsynced: these files describe processes, which a crash of the agent or shim leaves
/// running (the page cache survives it) and a crash of the host ends. As runc keeps its
/// own state in `/run`, nothing here has to outlive the kernel.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(value).map_err(io::Error::other)?)?;
    fs::rename(&tmp, path)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<Result<T, serde_json::Error>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
