//! Containers: an OCI bundle per container, run by `runc` under a small per-container
//! shim that outlives the agent (the containerd way).
//!
//! [`Runtime::start`] writes the bundle (`config.json` built with `oci-spec`, plus the
//! container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`) into
//! `<state>/containers/<id>/` and spawns the shim: the berth binary re-executed as
//! `berth shim ...` ([`ShimCommand`]). The shim detaches into its own session, runs
//! `runc run --detach` (create and start in one runc process) with the container's
//! stdout and stderr on pipes it holds, writes the output to the container log, and
//! when the container exits writes its exit status to `exit.json` and exits. The agent
//! can die and restart at any point: a new [`Runtime`] on the same state directory
//! finds every container ([`Runtime::list`]), its state ([`Runtime::state`]) and its
//! exit status ([`Runtime::wait`]).
//!
//! # Behavior
//!
//! - State directory layout: `<state>/runc` is runc's `--root` (berth's containers are
//!   separate from `/run/runc`); `<state>/containers/<id>/` holds `config.json`,
//!   `container.json` (berth's own metadata: the stop signal), `etc/`, `container.log`
//!   (+ `container.log.1`), `shim.log` (the shim's own diagnostics), `runc.log`,
//!   `started.json` and `exit.json`.
//! - The shim is alive exactly while it holds an exclusive `flock` on
//!   `<id>/shim.lock`. The runtime takes that lock *before* spawning the shim and hands
//!   the locked file to it as its stdin, so there is no moment where a starting
//!   container looks abandoned. The shim puts itself in a new session (`setsid`),
//!   blocks SIGTERM/SIGINT/SIGHUP/SIGQUIT, and becomes a child subreaper so it can
//!   `waitpid` the container's init after `runc run --detach` exits.
//! - Log format: the CRI format (what kubelet and containerd write),
//!   `<RFC3339 timestamp with nanoseconds, UTC> <stdout|stderr> <F|P> <line>`. A line
//!   longer than 16 KiB is written as `P` (partial) pieces ending with an `F` piece.
//!   The file rotates when a write would take it past 10 MiB: `container.log` becomes
//!   `container.log.1` (the one older file kept) and a new `container.log` starts.
//! - Exit status: the init's wait status (`code`, or `128 + signal` with `signal` set),
//!   and `oom_killed` when the container's memory cgroup counted an OOM kill (v1
//!   `memory.oom_control` `oom_kill`, v2 `memory.events`), read before the shim runs
//!   `runc delete`. `exit.json` is written with temp file + fsync + rename + directory
//!   fsync, after the output has been drained to the log, so a reader of `exit.json`
//!   sees the complete log. The shim deletes the runc container (and so its cgroup)
//!   *before* writing `exit.json`: once [`Runtime::wait`] returns, the task cgroup can
//!   be removed.
//! - The OCI spec follows Docker's defaults for an unprivileged container: its 14
//!   default capabilities (adjusted as moby does: adding `ALL` gives every capability
//!   but the dropped ones, dropping `ALL` gives only the added ones, otherwise the
//!   defaults minus `cap_drop` plus `cap_add`), its masked and
//!   read-only `/proc` and `/sys` paths, `/sys` read-only, a 64 MiB `/dev/shm`, a
//!   device cgroup that denies everything but runc's default devices,
//!   `noNewPrivileges` off, private pid/ipc/uts/mount namespaces and (v2 only) a
//!   private cgroup namespace. A missing `PATH` gets Docker's default, `HOME` comes
//!   from the user's passwd entry (or `/`), `HOSTNAME` from the hostname.
//! - `privileged` gives every capability in the host's bounding set, all devices
//!   (cgroup rule and the host's `/dev` device nodes), no masked or read-only paths and
//!   a writable `/sys` and `/sys/fs/cgroup`.
//! - `init` runs a static init (`tini-static` from Debian's `tini` package, or
//!   `docker-init` / `catatonit`) bind-mounted read-only at `/dev/.berth-init` as pid 1
//!   in front of the command, so zombies are reaped and SIGTERM reaches the command
//!   (a bare pid 1 ignores signals it has no handler for). The mount lives on the
//!   container's `/dev` tmpfs, so the image's rootfs is not touched.
//! - Memory: `memory_limit_mib` is a hard limit without swap (swap limit = memory
//!   limit), `memory_reservation_mib` the soft limit. CPU: `cpu_units` become shares
//!   (at least 2). The container's cgroup is `<cgroup_parent>/<id>` (default
//!   `berth/<id>`).
//! - `ulimits` must stay within the host's hard limits (root here lacks
//!   CAP_SYS_RESOURCE): a larger value is refused at start with an error naming the
//!   limit and both values. Unset limits are inherited from the agent.
//! - [`Runtime::exec`] runs `runc exec` with the container's own process settings
//!   (env, user, cwd, capabilities) and new arguments; on timeout the exec'd process is
//!   SIGKILLed.
//!
//! # Limitations
//!
//! - No seccomp profile and no AppArmor/SELinux label are applied (Docker applies its
//!   default seccomp profile); capabilities, masked paths and namespaces are the
//!   isolation.
//! - runc's own error output for a failed `runc run` goes to the container's stderr
//!   (runc passes its stdio through to the container), so it also appears in the
//!   container log; [`RuntimeError::StartFailed`] carries runc's message.
//! - If the shim itself is killed (SIGKILL, host OOM), the exit code of a container that
//!   exits afterwards is lost: [`Runtime::state`] then reports `Running` while runc
//!   says so and afterwards `Exited` with `code: None` and a `reason`.
//! - When the agent runs as a systemd service, the unit needs `KillMode=process` (as
//!   containerd's does): the shims stay in the agent's cgroup until they exit.
//! - Loopback nameservers are dropped from a container's `resolv.conf` when it has its
//!   own network namespace; if none remain, the file has no nameserver.
//! - Only the ipc namespace is always private (no ECS `ipcMode`); pid namespaces can be
//!   shared through [`Namespace`].

mod etc_files;
mod logfile;
mod runtime;
mod shim;
mod spec;
mod state;
mod user;
mod vm;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

pub use logfile::{HOLD_SUFFIX, LOG_MAX_BYTES, LOG_MAX_LINE};
pub use runtime::{Runtime, MAX_ID_LEN};
pub use shim::{shim_main, ShimArgs, ShimError};

use crate::cgroups::CgroupError;

/// Everything needed to run one container (the task engine derives it from the ECS
/// container definition and the image config).
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Unique id, e.g. `<task-id>-<container-name>`: ASCII letters, digits, `-`, `_`,
    /// `.`, at most 128 characters.
    pub id: String,
    /// An already-mounted rootfs (the images module builds it).
    pub rootfs: PathBuf,
    /// Entrypoint + command, resolved. Must not be empty.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory; `/` when unset.
    pub cwd: Option<String>,
    /// `uid`, `uid:gid`, `name` or `name:group`, resolved against the rootfs's
    /// `/etc/passwd` and `/etc/group`; root when unset.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// Bind mounts (host paths, task volumes) and tmpfs mounts.
    pub mounts: Vec<Mount>,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// ECS capability names without `CAP_` (`NET_ADMIN`), or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// ECS `initProcessEnabled`: run a static init as pid 1 (see the module docs).
    pub init: bool,
    /// `/dev/shm` size; 64 MiB when unset.
    pub shm_size_mib: Option<u64>,
    pub ulimits: Vec<Ulimit>,
    pub resources: Resources,
    /// The task's cgroup (relative, e.g. `berth/<task-id>`, see
    /// [`TaskCgroup::path`](crate::cgroups::TaskCgroup::path)), so task-level limits
    /// bound all of the task's containers.
    pub cgroup_parent: Option<String>,
    /// The network namespace: a task's (`/run/netns/<bridge>-<task>`), the host's, or a
    /// fresh one with only `lo` (ECS `none`).
    pub net_namespace: Namespace,
    /// The pid namespace (ECS `pidMode`).
    pub pid_namespace: Namespace,
    /// Extra `/etc/hosts` entries as (hostname, address).
    pub hosts: Vec<(String, String)>,
    /// Nameservers; the host's (minus loopback ones in a private netns) when empty.
    pub dns_servers: Vec<String>,
    /// Search domains; the host's when empty.
    pub dns_search: Vec<String>,
    /// Signal for [`Runtime::stop`]: `SIGTERM` (default), `TERM` or a number.
    pub stop_signal: Option<String>,
    /// Run the container in its own microVM of this size (the runtime needs
    /// [`Runtime::with_microvm`]); `None` runs it with runc on the host.
    pub vm: Option<crate::microvm::VmResources>,
}

/// A mount in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A recursive bind mount of a host path.
    Bind { source: PathBuf, destination: String, readonly: bool },
    /// A tmpfs; `options` are mount options such as `noexec` (default
    /// `nosuid,nodev,noexec`, as Docker's `--tmpfs`).
    Tmpfs { destination: String, size_mib: Option<u64>, options: Vec<String> },
}

/// One rlimit: an ECS ulimit name (`nofile`, `nproc`, `core`, `memlock`, `stack`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Container-level resource limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// ECS CPU units; shares = `max(units, 2)`, so ECS's `cpu: 0` gives 2 shares.
    pub cpu_units: Option<u32>,
    /// Hard limit (ECS `memory`); swap is not allowed.
    pub memory_limit_mib: Option<u64>,
    /// Soft limit (ECS `memoryReservation`).
    pub memory_reservation_mib: Option<u64>,
    /// Maximum number of processes (pids cgroup).
    pub pids_limit: Option<i64>,
}

/// Which namespace (of one kind: pid, network) the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// Its own, made by runc (the default; a new network namespace has only `lo`, up).
    #[default]
    Private,
    /// The host's (ECS `pidMode: host`, `networkMode: host`).
    Host,
    /// Join an existing one: a task's network namespace, or
    /// `/proc/<pid of the task's first container>/ns/pid` (ECS `pidMode: task`; when that
    /// first container exits, the kernel kills every process in the pid namespace).
    Join(PathBuf),
}

/// How the runtime launches a shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// When set, the shim's own arguments are passed as a JSON array of strings in this
    /// environment variable instead of after `args` (for launchers that take no extra
    /// arguments, such as a test harness re-executing itself).
    pub args_env: Option<String>,
}

impl ShimCommand {
    /// Production: the running binary with the hidden `shim` subcommand.
    pub fn current_exe() -> Result<Self, RuntimeError> {
        let program = std::env::current_exe()
            .map_err(|source| RuntimeError::Io { path: PathBuf::from("/proc/self/exe"), source })?;
        Ok(ShimCommand { program, args: vec!["shim".into()], args_env: None })
    }
}

/// Returned by [`Runtime::start`] once runc reports the container running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The container's init process, in the host pid namespace.
    pub pid: u32,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
}

/// What [`Runtime::state`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// The shim is alive but has not reported the container running yet.
    Starting,
    Running {
        pid: u32,
        started_at: DateTime<Utc>,
    },
    Exited(ExitStatus),
    /// No such container in the state directory.
    Missing,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, `128 + n` when killed by signal n; `None` when unknown (the
    /// container never started, or its shim died before it could collect the status).
    pub code: Option<i32>,
    /// The signal that killed the init process (`SIGKILL`), if one did.
    pub signal: Option<String>,
    /// The kernel OOM killer killed a process in the container's cgroup.
    pub oom_killed: bool,
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    /// Why the status is incomplete or the container did not start (runc's error).
    pub reason: Option<String>,
}

/// Errors of the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("container {id}: invalid {field} {value:?}: {reason}")]
    InvalidConfig { id: String, field: &'static str, value: String, reason: String },
    #[error("container {id}: ulimit {name} hard limit {requested} is above the host's hard limit {host} (berth has no CAP_SYS_RESOURCE to raise it)")]
    UlimitAboveHost { id: String, name: String, requested: u64, host: u64 },
    #[error("container {id}: init process requested but no static init binary was found (install Debian's `tini` package for /usr/bin/tini-static)")]
    NoInitBinary { id: String },
    #[error("runc binary not found in PATH (install Debian's `runc` package)")]
    RuncNotFound,
    #[error("container {id} already exists")]
    AlreadyExists { id: String },
    #[error("container {id} not found")]
    NotFound { id: String },
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("container {id} is still running")]
    StillRunning { id: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("container {id}: building the OCI spec: {source}")]
    Spec { id: String, source: oci_spec::OciSpecError },
    #[error("container {id}: bad state file {path}: {source}")]
    StateFile { id: String, path: PathBuf, source: serde_json::Error },
    #[error("spawning the shim {program}: {source}")]
    SpawnShim { program: PathBuf, source: std::io::Error },
    #[error("container {id} failed to start: {message}")]
    StartFailed { id: String, message: String },
    #[error("container {id} did not start within {after:?}")]
    StartTimeout { id: String, after: Duration },
    #[error("container {id}: runc {command} failed: {message}")]
    Runc { id: String, command: &'static str, message: String },
    #[error("container {id}: exec {args:?} timed out after {timeout:?}")]
    ExecTimeout { id: String, args: Vec<String>, timeout: Duration },
    #[error("container {id} did not exit within {after:?} of SIGKILL")]
    StopTimeout { id: String, after: Duration },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("container {id}: {source}")]
    MicroVm { id: String, source: crate::microvm::MicroVmError },
}

/// Serde for timestamps as RFC 3339 with nanoseconds (chrono is built without serde).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
