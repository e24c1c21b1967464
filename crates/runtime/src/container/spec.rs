//! From a [`ContainerConfig`] to an OCI runtime spec (`config.json`) with Docker's
//! defaults for what the config leaves open.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::resource::{getrlimit, Resource};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

use super::user::resolve_user;
use super::{ContainerConfig, Mount, Namespace, RuntimeError, Signal};
use crate::cgroups::{units_to_shares, CgroupVersion, Hierarchy, BERTH_CGROUP};

/// Where the init binary is bind-mounted (on the container's `/dev` tmpfs, so the
/// image's rootfs is not modified).
pub(crate) const INIT_PATH: &str = "/dev/.berth-init";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_SHM_MIB: u64 = 64;
const MIB: i64 = 1024 * 1024;

/// Capability names in kernel bit order (`capability.h`).
pub(crate) const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set.
pub(crate) const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What the spec depends on besides the config.
#[derive(Debug)]
pub(crate) struct SpecContext<'a> {
    pub hierarchy: &'a Hierarchy,
    pub init_binary: Option<&'a Path>,
    /// The directory holding the container's `hosts`, `hostname`, `resolv.conf`.
    pub etc_dir: &'a Path,
    /// The hostname, as `etc_dir/hostname` has it.
    pub hostname: &'a str,
    /// The capabilities root can hand out here (the host's bounding set).
    pub host_capabilities: &'a [&'static str],
}

/// The spec plus what berth keeps beside it.
#[derive(Debug)]
pub(crate) struct BuiltSpec {
    pub spec: Spec,
    pub cgroup_path: String,
    pub stop_signal: Signal,
    /// The container's CPU weight as v1 shares, left out of the spec: runc's init does
    /// its set-up inside the container's cgroup, and at ECS's 2 shares for a container
    /// without `cpu` any other load starves it (measured: 52 ms starts instead of 37 ms
    /// at load 4). The shim applies it once the container runs (see `shim.rs`).
    pub cpu_shares: Option<u64>,
}

pub(crate) fn build(cfg: &ContainerConfig, ctx: &SpecContext<'_>) -> Result<BuiltSpec, RuntimeError> {
    let id = cfg.id.as_str();
    let invalid = |field: &'static str, value: &str, reason: String| RuntimeError::InvalidConfig {
        id: id.into(),
        field,
        value: value.into(),
        reason,
    };
    let spec_err = |source| RuntimeError::Spec { id: id.into(), source };

    if cfg.args.is_empty() || cfg.args[0].is_empty() {
        return Err(invalid("args", &format!("{:?}", cfg.args), "no command to run".into()));
    }
    let stop_signal = parse_signal(cfg.stop_signal.as_deref().unwrap_or("SIGTERM"))
        .ok_or_else(|| invalid("stop signal", cfg.stop_signal.as_deref().unwrap_or(""), "unknown signal".into()))?;
    let cgroup_path = match &cfg.cgroup_parent {
        Some(parent) => {
            let parent = parent.trim_matches('/');
            if parent.is_empty() || parent.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
                return Err(invalid("cgroup parent", parent, "must be a relative path like berth/<task-id>".into()));
            }
            format!("{parent}/{id}")
        }
        None => format!("{BERTH_CGROUP}/{id}"),
    };

    // Process: user, env, args, capabilities, rlimits.
    let user = resolve_user(&cfg.rootfs, cfg.user.as_deref())
        .map_err(|reason| invalid("user", cfg.user.as_deref().unwrap_or("root"), reason))?;
    let mut env: Vec<String> = cfg.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split_once('=').is_some_and(|(k, _)| k == key));
    if !has(&env, "PATH") {
        env.push(DEFAULT_PATH.into());
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", ctx.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    let mut args = cfg.args.clone();
    if cfg.init {
        if ctx.init_binary.is_none() {
            return Err(RuntimeError::NoInitBinary { id: id.into() });
        }
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let caps =
        capabilities(cfg, ctx.host_capabilities).map_err(|(name, reason)| invalid("capability", &name, reason))?;
    let caps: HashSet<Capability> = caps.iter().filter_map(|name| Capability::from_str(name).ok()).collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(spec_err)?;
    let rlimits = rlimits(cfg)?;
    let cwd = cfg.cwd.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(invalid("working directory", &cwd, "must be an absolute path".into()));
    }
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(spec_err)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(false);
    if !rlimits.is_empty() {
        process = process.rlimits(rlimits);
    }
    let process = process.build().map_err(spec_err)?;

    // Mounts.
    let mut mounts = default_mounts(cfg, spec_err)?;
    let etc_options = |ro: bool| {
        let mut o = vec!["rbind".to_string(), "rprivate".to_string()];
        if ro {
            o.push("ro".into());
        }
        o
    };
    for name in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(
            MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(ctx.etc_dir.join(name))
                .options(etc_options(cfg.readonly_rootfs))
                .build()
                .map_err(spec_err)?,
        );
    }
    if let (true, Some(init)) = (cfg.init, ctx.init_binary) {
        mounts.push(
            MountBuilder::default()
                .destination(INIT_PATH)
                .typ("bind")
                .source(init)
                .options(vec!["bind".into(), "ro".into(), "nosuid".into(), "nodev".into()])
                .build()
                .map_err(spec_err)?,
        );
    }
    let mut user_mounts = cfg.mounts.clone();
    user_mounts.sort_by_key(|m| destination(m).trim_end_matches('/').matches('/').count());
    for m in &user_mounts {
        let dest = destination(m);
        if !dest.starts_with('/') {
            return Err(invalid("mount destination", dest, "must be an absolute path".into()));
        }
        let mount = match m {
            Mount::Bind { source, destination, readonly } => {
                if !source.is_absolute() {
                    return Err(invalid("bind mount source", &source.to_string_lossy(), "must be absolute".into()));
                }
                let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
                if *readonly {
                    options.push("ro".into());
                }
                MountBuilder::default().destination(destination).typ("bind").source(source).options(options).build()
            }
            Mount::Tmpfs { destination, size_mib, options } => {
                let mut options = if options.is_empty() {
                    vec!["nosuid".to_string(), "nodev".to_string(), "noexec".to_string()]
                } else {
                    options.clone()
                };
                if let Some(size) = size_mib {
                    options.push(format!("size={size}m"));
                }
                if !options.iter().any(|o| o.starts_with("mode=")) {
                    options.push("mode=1777".into());
                }
                MountBuilder::default().destination(destination).typ("tmpfs").source("tmpfs").options(options).build()
            }
        }
        .map_err(spec_err)?;
        mounts.push(mount);
    }

    // Namespaces.
    let ns = |typ, path: Option<&Path>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p).build(),
            None => b.build(),
        }
    };
    let mut namespaces = vec![
        ns(LinuxNamespaceType::Mount, None).map_err(spec_err)?,
        ns(LinuxNamespaceType::Ipc, None).map_err(spec_err)?,
        ns(LinuxNamespaceType::Uts, None).map_err(spec_err)?,
    ];
    for (typ, namespace) in
        [(LinuxNamespaceType::Pid, &cfg.pid_namespace), (LinuxNamespaceType::Network, &cfg.net_namespace)]
    {
        match namespace {
            Namespace::Private => namespaces.push(ns(typ, None).map_err(spec_err)?),
            Namespace::Host => {}
            Namespace::Join(path) => namespaces.push(ns(typ, Some(path)).map_err(spec_err)?),
        }
    }
    if ctx.hierarchy.version() == CgroupVersion::V2 {
        namespaces.push(ns(LinuxNamespaceType::Cgroup, None).map_err(spec_err)?);
    }

    // Resources.
    let r = &cfg.resources;
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(mib) = r.memory_limit_mib {
        let bytes =
            mib_to_bytes(mib).ok_or_else(|| invalid("memory limit (MiB)", &mib.to_string(), "too large".into()))?;
        if mib < 6 {
            return Err(invalid("memory limit (MiB)", &mib.to_string(), "below the 6 MiB minimum".into()));
        }
        memory = memory.limit(bytes);
        if ctx.hierarchy.has_swap_accounting() {
            memory = memory.swap(bytes);
        }
    }
    if let Some(mib) = r.memory_reservation_mib {
        let bytes = mib_to_bytes(mib)
            .ok_or_else(|| invalid("memory reservation (MiB)", &mib.to_string(), "too large".into()))?;
        memory = memory.reservation(bytes);
    }
    let mut resources = LinuxResourcesBuilder::default().memory(memory.build().map_err(spec_err)?);
    if let Some(limit) = r.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build().map_err(spec_err)?);
    }
    let mut devices = Vec::new();
    let device_rule =
        LinuxDeviceCgroupBuilder::default().allow(cfg.privileged).access("rwm").build().map_err(spec_err)?;
    resources = resources.devices(vec![device_rule]);

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(format!("/{cgroup_path}")))
        .resources(resources.build().map_err(spec_err)?);
    if cfg.privileged {
        devices.extend(host_devices());
        linux = linux.devices(devices);
    } else {
        linux = linux
            .masked_paths(MASKED_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .readonly_paths(READONLY_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }

    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(&cfg.rootfs).readonly(cfg.readonly_rootfs).build().map_err(spec_err)?)
        .process(process)
        .mounts(mounts)
        .linux(linux.build().map_err(spec_err)?)
        .hostname(ctx.hostname);
    let cpu_shares = r.cpu_units.map(units_to_shares);
    Ok(BuiltSpec { spec: spec.build().map_err(spec_err)?, cgroup_path, stop_signal, cpu_shares })
}

fn destination(m: &Mount) -> &str {
    match m {
        Mount::Bind { destination, .. } | Mount::Tmpfs { destination, .. } => destination,
    }
}

fn mib_to_bytes(mib: u64) -> Option<i64> {
    i64::try_from(mib).ok()?.checked_mul(MIB)
}

/// Docker's default mounts (`/sys` and `/sys/fs/cgroup` writable when privileged).
fn default_mounts(
    cfg: &ContainerConfig,
    spec_err: impl Fn(oci_spec::OciSpecError) -> RuntimeError,
) -> Result<Vec<oci_spec::runtime::Mount>, RuntimeError> {
    let ro = if cfg.privileged { "rw" } else { "ro" };
    let shm = cfg.shm_size_mib.unwrap_or(DEFAULT_SHM_MIB);
    let table: [(&str, &str, &str, Vec<String>); 7] = [
        ("/proc", "proc", "proc", vec!["nosuid".into(), "noexec".into(), "nodev".into()]),
        (
            "/dev",
            "tmpfs",
            "tmpfs",
            vec!["nosuid".into(), "strictatime".into(), "mode=755".into(), "size=65536k".into()],
        ),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            vec![
                "nosuid".into(),
                "noexec".into(),
                "newinstance".into(),
                "ptmxmode=0666".into(),
                "mode=0620".into(),
                "gid=5".into(),
            ],
        ),
        ("/sys", "sysfs", "sysfs", vec!["nosuid".into(), "noexec".into(), "nodev".into(), ro.into()]),
        (
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            vec!["nosuid".into(), "noexec".into(), "nodev".into(), "relatime".into(), ro.into()],
        ),
        ("/dev/mqueue", "mqueue", "mqueue", vec!["nosuid".into(), "noexec".into(), "nodev".into()]),
        (
            "/dev/shm",
            "tmpfs",
            "shm",
            vec!["nosuid".into(), "noexec".into(), "nodev".into(), "mode=1777".into(), format!("size={shm}m")],
        ),
    ];
    table
        .into_iter()
        .map(|(dest, typ, source, options)| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source(source)
                .options(options)
                .build()
                .map_err(&spec_err)
        })
        .collect()
}

/// The container's capability names (without `CAP_`), sorted in kernel order.
/// Errors are `(name, reason)`.
pub(crate) fn capabilities(
    cfg: &ContainerConfig,
    host: &[&'static str],
) -> Result<Vec<&'static str>, (String, String)> {
    let normalize = |name: &str| -> Result<Option<&'static str>, (String, String)> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if bare == "ALL" {
            return Ok(None);
        }
        match CAPABILITIES.iter().find(|c| **c == bare) {
            Some(c) => Ok(Some(*c)),
            None => Err((name.to_string(), "unknown capability".into())),
        }
    };
    if cfg.privileged {
        return Ok(CAPABILITIES.iter().copied().filter(|c| host.contains(c)).collect());
    }
    let mut add = Vec::new();
    let mut add_all = false;
    for name in &cfg.cap_add {
        match normalize(name)? {
            None => add_all = true,
            Some(c) => {
                if !host.contains(&c) {
                    return Err((name.clone(), "not available to berth on this host".into()));
                }
                add.push(c);
            }
        }
    }
    let mut drop = Vec::new();
    let mut drop_all = false;
    for name in &cfg.cap_drop {
        match normalize(name)? {
            None => drop_all = true,
            Some(c) => drop.push(c),
        }
    }
    // moby's TweakCapabilities: adding ALL = everything but the drops; dropping ALL =
    // only the adds; otherwise the defaults minus the drops plus the adds.
    let set: Vec<&'static str> = if add_all {
        host.iter().copied().filter(|c| !drop.contains(c)).collect()
    } else if drop_all {
        add
    } else {
        let mut set: Vec<&'static str> =
            DEFAULT_CAPABILITIES.iter().copied().filter(|c| host.contains(c) && !drop.contains(c)).collect();
        set.extend(add);
        set
    };
    let mut out: Vec<&'static str> = CAPABILITIES.iter().copied().filter(|c| set.contains(c)).collect();
    out.dedup();
    Ok(out)
}

/// The capabilities in this process's bounding set (what runc can hand out).
pub(crate) fn host_capabilities() -> Vec<&'static str> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPABILITIES.iter().enumerate().filter(|(bit, _)| mask & (1 << bit) != 0).map(|(_, c)| *c).collect()
}

fn rlimit_type(name: &str) -> Option<(PosixRlimitType, Resource)> {
    Some(match name {
        "core" => (PosixRlimitType::RlimitCore, Resource::RLIMIT_CORE),
        "cpu" => (PosixRlimitType::RlimitCpu, Resource::RLIMIT_CPU),
        "data" => (PosixRlimitType::RlimitData, Resource::RLIMIT_DATA),
        "fsize" => (PosixRlimitType::RlimitFsize, Resource::RLIMIT_FSIZE),
        "locks" => (PosixRlimitType::RlimitLocks, Resource::RLIMIT_LOCKS),
        "memlock" => (PosixRlimitType::RlimitMemlock, Resource::RLIMIT_MEMLOCK),
        "msgqueue" => (PosixRlimitType::RlimitMsgqueue, Resource::RLIMIT_MSGQUEUE),
        "nice" => (PosixRlimitType::RlimitNice, Resource::RLIMIT_NICE),
        "nofile" => (PosixRlimitType::RlimitNofile, Resource::RLIMIT_NOFILE),
        "nproc" => (PosixRlimitType::RlimitNproc, Resource::RLIMIT_NPROC),
        "rss" => (PosixRlimitType::RlimitRss, Resource::RLIMIT_RSS),
        "rtprio" => (PosixRlimitType::RlimitRtprio, Resource::RLIMIT_RTPRIO),
        "rttime" => (PosixRlimitType::RlimitRttime, Resource::RLIMIT_RTTIME),
        "sigpending" => (PosixRlimitType::RlimitSigpending, Resource::RLIMIT_SIGPENDING),
        "stack" => (PosixRlimitType::RlimitStack, Resource::RLIMIT_STACK),
        "as" => (PosixRlimitType::RlimitAs, Resource::RLIMIT_AS),
        _ => return None,
    })
}

/// The config's ulimits, refused when above the host's hard limit (no
/// CAP_SYS_RESOURCE to raise it) or when soft > hard.
fn rlimits(cfg: &ContainerConfig) -> Result<Vec<PosixRlimit>, RuntimeError> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    for u in &cfg.ulimits {
        let invalid = |reason: String| RuntimeError::InvalidConfig {
            id: cfg.id.clone(),
            field: "ulimit",
            value: format!("{}={}:{}", u.name, u.soft, u.hard),
            reason,
        };
        let (typ, resource) = rlimit_type(&u.name).ok_or_else(|| invalid("unknown ulimit name".into()))?;
        if u.soft > u.hard {
            return Err(invalid("soft limit above hard limit".into()));
        }
        let (_, host_hard) = getrlimit(resource).map_err(|e| invalid(format!("reading the host's limit: {e}")))?;
        if u.hard > host_hard {
            return Err(RuntimeError::UlimitAboveHost {
                id: cfg.id.clone(),
                name: u.name.clone(),
                requested: u.hard,
                host: host_hard,
            });
        }
        if out.iter().any(|r| r.typ() == typ) {
            return Err(invalid("given twice".into()));
        }
        out.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft)
                .hard(u.hard)
                .build()
                .map_err(|source| RuntimeError::Spec { id: cfg.id.clone(), source })?,
        );
    }
    Ok(out)
}

/// Parses `SIGTERM`, `TERM`, `sigterm` or `15`.
pub(crate) fn parse_signal(value: &str) -> Option<Signal> {
    let value = value.trim();
    if let Ok(n) = value.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).ok()
}

/// The host's device nodes under `/dev` (what Docker gives a privileged container),
/// skipping the pseudo-terminal, shared-memory and message-queue directories that the
/// container gets its own of.
fn host_devices() -> Vec<LinuxDevice> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !matches!(path.to_str(), Some("/dev/pts" | "/dev/shm" | "/dev/mqueue")) {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path == Path::new("/dev/console") {
                continue;
            }
            let rdev = meta.rdev();
            let device = LinuxDeviceBuilder::default()
                .path(path)
                .typ(typ)
                .major(nix::sys::stat::major(rdev) as i64)
                .minor(nix::sys::stat::minor(rdev) as i64)
                .file_mode(meta.mode() & 0o7777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build();
            if let Ok(device) = device {
                out.push(device);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(add: &[&str], drop: &[&str]) -> Vec<&'static str> {
        let cfg = ContainerConfig {
            cap_add: add.iter().map(|s| s.to_string()).collect(),
            cap_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let host: Vec<&'static str> = CAPABILITIES.iter().copied().filter(|c| *c != "SYS_RESOURCE").collect();
        capabilities(&cfg, &host).unwrap()
    }

    #[test]
    fn capability_arithmetic_follows_docker() {
        let default = caps(&[], &[]);
        assert_eq!(default.len(), 14);
        assert!(!caps(&[], &["NET_RAW"]).contains(&"NET_RAW"));
        assert!(caps(&["NET_ADMIN"], &[]).contains(&"NET_ADMIN"));
        assert_eq!(caps(&["CHOWN"], &["ALL"]), vec!["CHOWN"]);
        assert_eq!(caps(&[], &["ALL"]), Vec::<&str>::new());
        let all = caps(&["ALL"], &["SYS_ADMIN"]);
        assert_eq!(all.len(), 39);
        assert!(!all.contains(&"SYS_ADMIN") && !all.contains(&"SYS_RESOURCE"));
        assert!(caps(&["cap_sys_ptrace"], &[]).contains(&"SYS_PTRACE"));
        let host: Vec<&'static str> = vec!["CHOWN"];
        let cfg = ContainerConfig { cap_add: vec!["SYS_RESOURCE".into()], ..Default::default() };
        assert!(capabilities(&cfg, &host).unwrap_err().1.contains("not available"));
        let cfg = ContainerConfig { cap_add: vec!["FLY".into()], ..Default::default() };
        assert_eq!(capabilities(&cfg, &host).unwrap_err().0, "FLY");
        // Every name maps to oci-spec's typed capability.
        for name in CAPABILITIES {
            assert!(Capability::from_str(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("term"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGQUIT"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("NOPE"), None);
    }
}
