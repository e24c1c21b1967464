//! Task-level cgroups: the CPU and memory limits an ECS task definition puts on all of
//! its containers together, and the read-back helpers the runtime and tests use.
//!
//! A task gets the cgroup `berth/<task-id>`; each of its containers is created by runc
//! one level below (`berth/<task-id>/<container-id>`, see
//! [`ContainerConfig::cgroup_parent`](crate::container::ContainerConfig::cgroup_parent)),
//! so the task's limits bound the sum of its containers, as on ECS.
//!
//! # Behavior
//!
//! - The hierarchy is detected the way runc detects it: if `/sys/fs/cgroup` is itself a
//!   cgroup2 mount the host is *unified* ([`Hierarchy::V2`]); otherwise each v1
//!   controller is found from `/proc/self/mountinfo` ([`Hierarchy::V1`]), and a cgroup2
//!   tree mounted beside them (a *hybrid* host such as this project's) is only cleaned up.
//!   The two layouts differ only inside [`Hierarchy`]'s methods.
//! - `cpu_units` (ECS CPU units, 1024 per core) set both a weight and a hard cap:
//!   v1 `cpu.shares = max(units, 2)` and `cpu.cfs_quota_us = units * 100000 / 1024` over a
//!   100 ms period; v2 `cpu.weight` (runc's shares→weight formula) and `cpu.max`.
//!   This is the ECS agent's behaviour for task-level CPU.
//! - `memory_mib` is a hard limit without swap: v1 `memory.limit_in_bytes` and
//!   `memory.memsw.limit_in_bytes` (when swap accounting exists), v2 `memory.max` and
//!   `memory.swap.max = 0`.
//! - [`TaskCgroup::remove`] removes `berth/<task-id>` from every cgroup hierarchy where
//!   it exists (runc creates it in controllers berth did not configure, e.g. `pids`,
//!   `cpuset`, `name=systemd`), so finished tasks leave no empty directories behind.
//!
//! # Limitations
//!
//! - Removal fails with [`CgroupError::Busy`] while a container cgroup or process is
//!   still inside; delete the task's containers first.
//! - berth assumes it sees the host's cgroup root (mount root `/`); running the agent in
//!   a container with a private cgroup namespace is not supported.
//! - The v2 code path is written and unit-tested for its arithmetic, but this project's
//!   hosts are hybrid, so it has not run against a real unified host.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The parent of every berth cgroup, relative to each hierarchy's root.
pub const BERTH_CGROUP: &str = "berth";

const CFS_PERIOD_US: u64 = 100_000;
const MIN_CPU_SHARES: u64 = 2;
const MAX_CPU_SHARES: u64 = 262_144;
const MIB: u64 = 1024 * 1024;
/// v1 reports "no limit" as a page-rounded `i64::MAX`; anything this large is unlimited.
const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Errors of the cgroups module.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The mount table could not be read.
    #[error("reading {path}: {source}")]
    MountInfo { path: PathBuf, source: io::Error },
    /// No usable cgroup hierarchy was found.
    #[error("no cgroup hierarchy found: {0}")]
    NoHierarchy(String),
    /// A controller berth needs is not mounted.
    #[error("cgroup v1 controller {controller:?} is not mounted")]
    MissingController { controller: String },
    /// A task id that cannot be a cgroup directory name.
    #[error("invalid task id {task_id:?} for a cgroup name: {reason}")]
    InvalidTaskId { task_id: String, reason: &'static str },
    /// A value outside what the kernel accepts.
    #[error("invalid {what} {value} for task cgroup {path}")]
    InvalidValue { what: &'static str, value: u64, path: String },
    /// Creating a cgroup directory failed.
    #[error("creating cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    /// Writing a control file failed.
    #[error("writing {value:?} to {path}: {source}")]
    Write { path: PathBuf, value: String, source: io::Error },
    /// Reading a control file failed.
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A control file held something unexpected.
    #[error("unexpected content {content:?} in {path}")]
    Parse { path: PathBuf, content: String },
    /// The cgroup still holds processes or child cgroups.
    #[error("cgroup {path} is busy (a container or process is still in it)")]
    Busy { path: PathBuf },
    /// Removing a cgroup directory failed for another reason.
    #[error("removing cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// Which cgroup version a host uses for resource control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The host's cgroup layout, detected once; every difference between v1 and v2 lives in
/// this enum's methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Controllers mounted one per hierarchy (or combined, e.g. `cpu,cpuacct`).
    V1 {
        /// Controller (or `name=...` hierarchy) to its mount point.
        controllers: BTreeMap<String, PathBuf>,
        /// Every cgroup mount point (v1 and a hybrid host's cgroup2), for clean-up.
        mounts: Vec<PathBuf>,
    },
    /// A single unified hierarchy.
    V2 { root: PathBuf },
}

impl Hierarchy {
    /// Detects the layout from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|source| CgroupError::MountInfo { path: path.into(), source })?;
        Self::from_mountinfo(&text)
    }

    /// Parses a mountinfo table (see `proc(5)`).
    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        let mut controllers = BTreeMap::new();
        let mut mounts = Vec::new();
        let mut unified_root = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount_point = left.split(' ').nth(4);
            let mut right = right.split(' ');
            let (Some(fstype), Some(mount_point)) = (right.next(), mount_point) else { continue };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            match fstype {
                "cgroup2" => {
                    if mount_point == Path::new("/sys/fs/cgroup") {
                        unified_root = Some(mount_point.clone());
                    }
                    mounts.push(mount_point);
                }
                "cgroup" => {
                    let options = right.nth(1).unwrap_or("");
                    for option in options.split(',') {
                        if is_v1_controller_option(option) {
                            controllers.insert(option.to_string(), mount_point.clone());
                        }
                    }
                    mounts.push(mount_point);
                }
                _ => {}
            }
        }
        if let Some(root) = unified_root {
            return Ok(Hierarchy::V2 { root });
        }
        if controllers.is_empty() {
            return Err(CgroupError::NoHierarchy("no cgroup or cgroup2 mount in /proc/self/mountinfo".into()));
        }
        Ok(Hierarchy::V1 { controllers, mounts })
    }

    pub fn version(&self) -> CgroupVersion {
        match self {
            Hierarchy::V1 { .. } => CgroupVersion::V1,
            Hierarchy::V2 { .. } => CgroupVersion::V2,
        }
    }

    /// Creates `berth/<task_id>` with the task's CPU and memory limits.
    pub fn create_task(
        &self,
        task_id: &str,
        cpu_units: Option<u32>,
        memory_mib: Option<u64>,
    ) -> Result<TaskCgroup, CgroupError> {
        validate_task_id(task_id)?;
        let path = format!("{BERTH_CGROUP}/{task_id}");
        if let Some(mib) = memory_mib {
            if mib == 0 || mib > i64::MAX as u64 / MIB {
                return Err(CgroupError::InvalidValue { what: "memory (MiB)", value: mib, path });
            }
        }
        let cgroup = TaskCgroup { hierarchy: self.clone(), path };
        match self {
            Hierarchy::V1 { .. } => cgroup.create_v1(cpu_units, memory_mib)?,
            Hierarchy::V2 { .. } => cgroup.create_v2(cpu_units, memory_mib)?,
        }
        Ok(cgroup)
    }

    /// A handle on an existing task cgroup (after an agent restart), to read or remove it.
    pub fn task(&self, task_id: &str) -> Result<TaskCgroup, CgroupError> {
        validate_task_id(task_id)?;
        Ok(TaskCgroup { hierarchy: self.clone(), path: format!("{BERTH_CGROUP}/{task_id}") })
    }

    /// The directory of cgroup `path` (relative, e.g. `berth/t1`) for `controller`
    /// (ignored on v2).
    pub fn dir(&self, controller: &str, path: &str) -> Result<PathBuf, CgroupError> {
        let path = path.trim_start_matches('/');
        match self {
            Hierarchy::V1 { controllers, .. } => controllers
                .get(controller)
                .map(|mount| mount.join(path))
                .ok_or_else(|| CgroupError::MissingController { controller: controller.into() }),
            Hierarchy::V2 { root } => Ok(root.join(path)),
        }
    }

    /// Moves process `pid` into cgroup `path` (on v1, into each controller where the
    /// cgroup exists: berth creates task cgroups in `cpu` and `memory`).
    pub fn add_process(&self, path: &str, pid: u32) -> Result<(), CgroupError> {
        let dirs: Vec<PathBuf> = match self {
            Hierarchy::V1 { controllers, .. } => {
                controllers.values().map(|mount| mount.join(path.trim_start_matches('/'))).collect()
            }
            Hierarchy::V2 { root } => vec![root.join(path.trim_start_matches('/'))],
        };
        for dir in dirs.into_iter().filter(|d| d.is_dir()) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Whether cgroup `path` exists (in the memory controller on v1).
    pub fn exists(&self, path: &str) -> bool {
        self.dir("memory", path).map(|d| d.is_dir()).unwrap_or(false)
    }

    /// The hard memory limit of cgroup `path` in bytes, `None` when unlimited.
    pub fn memory_limit(&self, path: &str) -> Result<Option<u64>, CgroupError> {
        match self {
            Hierarchy::V1 { .. } => {
                let value = read_u64(&self.dir("memory", path)?.join("memory.limit_in_bytes"))?;
                Ok((value < V1_UNLIMITED_THRESHOLD).then_some(value))
            }
            Hierarchy::V2 { .. } => {
                let file = self.dir("memory", path)?.join("memory.max");
                let text = read_trimmed(&file)?;
                if text == "max" {
                    return Ok(None);
                }
                parse_u64(&file, &text).map(Some)
            }
        }
    }

    /// The CPU weight of cgroup `path` as v1 shares (exact on v1; on v2 converted back
    /// from `cpu.weight`, so only approximately the shares that were asked for).
    pub fn cpu_shares(&self, path: &str) -> Result<u64, CgroupError> {
        match self {
            Hierarchy::V1 { .. } => read_u64(&self.dir("cpu", path)?.join("cpu.shares")),
            Hierarchy::V2 { .. } => {
                let weight = read_u64(&self.dir("cpu", path)?.join("cpu.weight"))?;
                Ok(weight_to_shares(weight))
            }
        }
    }

    /// Sets the CPU weight of the existing cgroup `path` (v1 `cpu.shares`, v2 `cpu.weight`).
    pub fn set_cpu_shares(&self, path: &str, shares: u64) -> Result<(), CgroupError> {
        let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
        match self {
            Hierarchy::V1 { .. } => write(&self.dir("cpu", path)?.join("cpu.shares"), &shares.to_string()),
            Hierarchy::V2 { .. } => {
                write(&self.dir("cpu", path)?.join("cpu.weight"), &shares_to_weight(shares).to_string())
            }
        }
    }

    /// The CFS bandwidth limit of cgroup `path` as `(quota_us, period_us)`, `None` when
    /// unlimited.
    pub fn cpu_quota(&self, path: &str) -> Result<Option<(u64, u64)>, CgroupError> {
        match self {
            Hierarchy::V1 { .. } => {
                let dir = self.dir("cpu", path)?;
                let quota_file = dir.join("cpu.cfs_quota_us");
                let quota = read_trimmed(&quota_file)?;
                if quota == "-1" {
                    return Ok(None);
                }
                let quota = parse_u64(&quota_file, &quota)?;
                Ok(Some((quota, read_u64(&dir.join("cpu.cfs_period_us"))?)))
            }
            Hierarchy::V2 { .. } => {
                let file = self.dir("cpu", path)?.join("cpu.max");
                let text = read_trimmed(&file)?;
                let mut parts = text.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some("max"), _) => Ok(None),
                    (Some(q), Some(p)) => Ok(Some((parse_u64(&file, q)?, parse_u64(&file, p)?))),
                    _ => Err(CgroupError::Parse { path: file, content: text }),
                }
            }
        }
    }

    /// How many processes the kernel's OOM killer has killed in cgroup `path` (and its
    /// descendants): v1 `memory.oom_control`'s `oom_kill` line, v2 `memory.events`'
    /// `oom_kill`. `Ok(0)` for a kernel without the counter.
    pub fn oom_kills(&self, path: &str) -> Result<u64, CgroupError> {
        let (file, key) = match self {
            Hierarchy::V1 { .. } => (self.dir("memory", path)?.join("memory.oom_control"), "oom_kill"),
            Hierarchy::V2 { .. } => (self.dir("memory", path)?.join("memory.events"), "oom_kill"),
        };
        let text = fs::read_to_string(&file).map_err(|source| CgroupError::Read { path: file.clone(), source })?;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(' ') {
                if k == key {
                    return parse_u64(&file, v.trim());
                }
            }
        }
        Ok(0)
    }

    /// Whether v1 swap accounting (`memory.memsw.*`) is available.
    pub fn has_swap_accounting(&self) -> bool {
        match self {
            Hierarchy::V1 { controllers, .. } => {
                controllers.get("memory").is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists())
            }
            Hierarchy::V2 { .. } => true,
        }
    }
}

/// One task's cgroup, `berth/<task-id>`.
#[derive(Debug, Clone)]
pub struct TaskCgroup {
    hierarchy: Hierarchy,
    path: String,
}

impl TaskCgroup {
    /// The cgroup path relative to the hierarchy root (`berth/<task-id>`): pass it as the
    /// containers' `cgroup_parent`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The hard memory limit in bytes, `None` when unlimited.
    pub fn memory_limit_bytes(&self) -> Result<Option<u64>, CgroupError> {
        self.hierarchy.memory_limit(&self.path)
    }

    /// The CPU weight as v1 shares (see [`Hierarchy::cpu_shares`]).
    pub fn cpu_shares(&self) -> Result<u64, CgroupError> {
        self.hierarchy.cpu_shares(&self.path)
    }

    /// The CFS quota and period in µs, `None` when unlimited.
    pub fn cpu_quota(&self) -> Result<Option<(u64, u64)>, CgroupError> {
        self.hierarchy.cpu_quota(&self.path)
    }

    /// Removes the task cgroup from every hierarchy. Missing directories are fine (the
    /// call is idempotent); a cgroup that still holds containers is [`CgroupError::Busy`].
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mounts: Vec<PathBuf> = match &self.hierarchy {
            Hierarchy::V1 { mounts, .. } => mounts.clone(),
            Hierarchy::V2 { root } => vec![root.clone()],
        };
        for mount in mounts {
            let dir = mount.join(&self.path);
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EBUSY) || e.kind() == io::ErrorKind::DirectoryNotEmpty =>
                {
                    return Err(CgroupError::Busy { path: dir })
                }
                Err(source) => return Err(CgroupError::Remove { path: dir, source }),
            }
        }
        Ok(())
    }

    fn create_v1(&self, cpu_units: Option<u32>, memory_mib: Option<u64>) -> Result<(), CgroupError> {
        let cpu_dir = self.hierarchy.dir("cpu", &self.path)?;
        let memory_dir = self.hierarchy.dir("memory", &self.path)?;
        for dir in [&cpu_dir, &memory_dir] {
            fs::create_dir_all(dir).map_err(|source| CgroupError::Create { path: dir.clone(), source })?;
        }
        if let Some(units) = cpu_units {
            write(&cpu_dir.join("cpu.shares"), &units_to_shares(units).to_string())?;
            write(&cpu_dir.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
            write(&cpu_dir.join("cpu.cfs_quota_us"), &units_to_quota(units).to_string())?;
        }
        if let Some(mib) = memory_mib {
            let bytes = (mib * MIB).to_string();
            let memsw = memory_dir.join("memory.memsw.limit_in_bytes");
            // memsw must stay >= the memory limit: lower memory first, then memsw.
            write(&memory_dir.join("memory.limit_in_bytes"), &bytes)?;
            if memsw.exists() {
                write(&memsw, &bytes)?;
            }
        }
        Ok(())
    }

    fn create_v2(&self, cpu_units: Option<u32>, memory_mib: Option<u64>) -> Result<(), CgroupError> {
        let Hierarchy::V2 { root } = &self.hierarchy else { unreachable!("create_v2 on a v1 hierarchy") };
        // A child only gets the controllers its parent enables in cgroup.subtree_control;
        // enable them down to the task cgroup, whose children are the containers.
        let mut dir = root.clone();
        enable_v2_controllers(&dir)?;
        for part in self.path.split('/') {
            dir = dir.join(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CgroupError::Create { path: dir, source }),
            }
            enable_v2_controllers(&dir)?;
        }
        if let Some(units) = cpu_units {
            write(&dir.join("cpu.weight"), &shares_to_weight(units_to_shares(units)).to_string())?;
            write(&dir.join("cpu.max"), &format!("{} {CFS_PERIOD_US}", units_to_quota(units)))?;
        }
        if let Some(mib) = memory_mib {
            write(&dir.join("memory.max"), &(mib * MIB).to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
        }
        Ok(())
    }
}

/// Creates the task cgroup `berth/<task_id>` on the detected hierarchy.
pub fn create_task_cgroup(
    task_id: &str,
    cpu_units: Option<u32>,
    memory_mib: Option<u64>,
) -> Result<TaskCgroup, CgroupError> {
    Hierarchy::detect()?.create_task(task_id, cpu_units, memory_mib)
}

/// ECS CPU units to v1 shares: the units themselves, at least 2 (the kernel minimum;
/// ECS gives `cpu: 0` containers 2 shares) and at most 262144.
pub fn units_to_shares(units: u32) -> u64 {
    u64::from(units).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// ECS CPU units to a CFS quota over [`CFS_PERIOD_US`]: 1024 units = one full CPU.
fn units_to_quota(units: u32) -> u64 {
    (u64::from(units) * CFS_PERIOD_US / 1024).max(1000)
}

/// runc's conversion of v1 shares to a v2 weight (1..=10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9999
}

fn validate_task_id(task_id: &str) -> Result<(), CgroupError> {
    let reason = if task_id.is_empty() {
        "empty"
    } else if task_id.len() > 200 {
        "longer than 200 characters"
    } else if task_id == "." || task_id == ".." {
        "a relative path component"
    } else if !task_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidTaskId { task_id: task_id.into(), reason })
}

fn is_v1_controller_option(option: &str) -> bool {
    const CONTROLLERS: &[&str] = &[
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    ];
    CONTROLLERS.contains(&option) || option.starts_with("name=")
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok());
        if let (b'\\', Some(Ok(v))) = (bytes[i], octal.map(|d| u8::from_str_radix(d, 8))) {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Enables cpu, memory and pids (those the cgroup has) for the children of `dir`.
fn enable_v2_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_trimmed(&dir.join("cgroup.controllers"))?;
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "memory" | "pids"))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write { path: path.into(), value: value.into(), source })
}

fn read_trimmed(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| CgroupError::Read { path: path.into(), source })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_trimmed(path)?;
    parse_u64(path, &text)
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.parse().map_err(|_| CgroupError::Parse { path: path.into(), content: text.into() })
}

#[cfg(test)]
mod tests;
