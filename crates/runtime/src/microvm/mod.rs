//! microVM isolation: each Fargate task in its own qemu `microvm` guest (Debian's kernel,
//! an initramfs berth builds), in the manner of Fargate's Firecracker.
//!
//! [`MicroVm::prepare`] finds qemu and the kernel, builds (or finds cached) the initramfs
//! and boots one probe guest: with `kvm` a host whose KVM cannot run a guest is refused
//! here, at start-up, rather than at the first task. The container runtime
//! ([`Runtime::with_microvm`](crate::container::Runtime::with_microvm)) then runs a
//! container whose config asks for a VM ([`VmResources`]) under the same shim, which starts
//! qemu instead of runc (see `container/vm.rs`).
//!
//! # Behavior
//!
//! - The guest: `-M microvm` with ACPI (Debian's kernel cannot take virtio-mmio devices
//!   from the command line), the task's vCPUs (`ceil(cpu / 1024)`) and memory (`-m`), the
//!   container's rootfs and bundle directory as 9p shares, and its eth0 a virtio-net device
//!   on a tap in the task's network namespace, redirected to and from the task's CNI
//!   interface with tc `mirred` (as Kata Containers does), with the task's address, MAC
//!   and gateway.
//! - Inside, berth's init loads the modules, mounts the shares, and runs the bundle with
//!   `runc run --no-pivot` (the initramfs cannot be pivoted out of); the console lines
//!   `@@berth READY|STARTED|EXIT <code>|FAILED <why>` are the control channel, and signal
//!   names written to the console reach the container through `runc kill`.
//!
//! # Limitations
//!
//! - One container per task (the VM is the task's); health checks (`runc exec`), host
//!   and task volumes and `initProcessEnabled` are refused for microVM tasks.
//! - The memory of qemu itself is counted in the task cgroup, which is raised by
//!   [`VMM_OVERHEAD_MIB`] for microVM tasks.

mod bundle;
mod cpio;
mod initramfs;
mod qemu;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use bundle::{rewrite as rewrite_bundle, GUEST_BUNDLE, GUEST_ROOT};
pub use initramfs::Initramfs;
pub use qemu::{vcpus_for, GuestNetwork, Share, VmLaunch};

/// What the task cgroup allows on top of the task's memory for qemu's own use.
pub const VMM_OVERHEAD_MIB: u64 = 256;
/// The prefix of the guest init's console lines.
pub const CONSOLE_PREFIX: &str = "@@berth ";
/// How long the start-up probe waits for the guest.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// The probe guest's memory.
const PROBE_MEMORY_MIB: u64 = 256;

/// How qemu runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization (`/dev/kvm`).
    Kvm,
    /// qemu's emulator: slow, but runs anywhere (tests; hosts whose KVM is unusable).
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown microVM accelerator {other:?} (kvm or tcg)")),
        }
    }
}

/// The size and network of one task's VM (set on a container's config by the engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmResources {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub network: Option<GuestNetwork>,
}

/// Errors of microVM preparation.
#[derive(Debug, thiserror::Error)]
pub enum MicroVmError {
    #[error("{what} not found (install Debian's `{package}` package)")]
    Missing { what: &'static str, package: &'static str },
    #[error("kernel module {name} not found in the guest kernel's modules.dep")]
    Module { name: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the probe microVM ({accel:?}) did not boot: {reason}")]
    Probe { accel: Accel, reason: String },
    #[error("microVM isolation does not support {0}")]
    Unsupported(String),
}

/// The host side of microVM isolation: qemu, the guest kernel and initramfs.
#[derive(Debug, Clone)]
pub struct MicroVm {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: Initramfs,
    pub accel: Accel,
}

impl MicroVm {
    /// Finds qemu and the newest `/boot/vmlinuz-*`, builds the initramfs in `cache_dir`
    /// (once), and boots a probe guest with `accel`; answers the probe's boot time.
    pub fn prepare(cache_dir: &Path, accel: Accel) -> Result<(Self, Duration), MicroVmError> {
        let vm = Self::find(cache_dir, accel)?;
        let boot = vm.probe()?;
        Ok((vm, boot))
    }

    fn find(cache_dir: &Path, accel: Accel) -> Result<Self, MicroVmError> {
        let qemu = PathBuf::from("/usr/bin/qemu-system-x86_64");
        if !qemu.is_file() {
            return Err(MicroVmError::Missing { what: "qemu-system-x86_64", package: "qemu-system-x86" });
        }
        if accel == Accel::Kvm && fs::File::options().read(true).write(true).open("/dev/kvm").is_err() {
            return Err(MicroVmError::Probe { accel, reason: "/dev/kvm cannot be opened".into() });
        }
        let (kernel, version) = newest_kernel(Path::new("/boot"))?;
        let busybox = PathBuf::from("/bin/busybox");
        if !busybox.is_file() {
            return Err(MicroVmError::Missing { what: "/bin/busybox", package: "busybox-static" });
        }
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(MicroVmError::Missing { what: "runc", package: "runc" })?;
        let sources = initramfs::Sources { busybox, runc, modules_dir: Path::new("/lib/modules").join(&version) };
        let initramfs = initramfs::ensure(cache_dir, &version, &sources)?;
        Ok(MicroVm { qemu, kernel, initramfs, accel })
    }

    /// The launch of a container's VM.
    pub fn launch(&self, container_id: &str, resources: &VmResources, shares: Vec<Share>) -> VmLaunch {
        VmLaunch {
            qemu: self.qemu.clone(),
            kernel: self.kernel.clone(),
            initrd: self.initramfs.path.clone(),
            accel: self.accel,
            vcpus: resources.vcpus,
            memory_mib: resources.memory_mib,
            modules: self.initramfs.modules.clone(),
            container_id: container_id.into(),
            shares,
            network: resources.network.clone(),
            probe: false,
        }
    }

    /// Boots a guest to its init's READY line: the time from qemu's spawn to it.
    pub fn probe(&self) -> Result<Duration, MicroVmError> {
        let resources = VmResources { vcpus: 1, memory_mib: PROBE_MEMORY_MIB, network: None };
        let launch = VmLaunch { probe: true, ..self.launch("probe", &resources, Vec::new()) };
        let fail = |reason: String| MicroVmError::Probe { accel: self.accel, reason };
        let started = Instant::now();
        let mut child = Command::new(&launch.qemu)
            .args(launch.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| MicroVmError::Io { path: launch.qemu.clone(), source })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&format!("{CONSOLE_PREFIX}READY")) {
                    let _ = tx.send(Ok(started.elapsed()));
                    return;
                }
                if let Some(at) = line.find(&format!("{CONSOLE_PREFIX}FAILED")) {
                    let _ = tx.send(Err(Some(line[at + CONSOLE_PREFIX.len()..].to_string())));
                    return;
                }
            }
            // qemu ended (closed the console) without the guest getting there.
            let _ = tx.send(Err(None));
        });
        let result = rx.recv_timeout(PROBE_TIMEOUT);
        let _ = child.kill();
        let status = child.wait();
        let how = match result {
            Ok(Ok(boot)) => return Ok(boot),
            Ok(Err(Some(line))) => return Err(fail(line)),
            Ok(Err(None)) => format!("qemu ended ({})", status.map_or_else(|e| e.to_string(), |s| s.to_string())),
            Err(_) => format!("no READY from the guest within {PROBE_TIMEOUT:?}"),
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        Err(fail(format!("{how}: {}", stderr.trim())))
    }
}

/// The newest `vmlinuz-<version>` in `boot` (by version order) and its version.
fn newest_kernel(boot: &Path) -> Result<(PathBuf, String), MicroVmError> {
    let missing = MicroVmError::Missing { what: "a guest kernel /boot/vmlinuz-*", package: "linux-image-amd64" };
    let entries = fs::read_dir(boot).map_err(|_| missing)?;
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("vmlinuz-").map(String::from))
        .filter(|v| Path::new("/lib/modules").join(v).join("modules.dep").is_file())
        .collect();
    versions.sort_by_key(|v| version_key(v));
    let version = versions.pop().ok_or(MicroVmError::Missing {
        what: "a guest kernel /boot/vmlinuz-* with its modules",
        package: "linux-image-amd64",
    })?;
    Ok((boot.join(format!("vmlinuz-{version}")), version))
}

/// `6.1.0-57-amd64` -> [6, 1, 0, 57]: numeric parts compare as numbers.
fn version_key(version: &str) -> Vec<u64> {
    version.split(['.', '-']).filter_map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically_and_accels_parse() {
        let mut v = vec!["6.1.0-9-amd64", "6.1.0-57-amd64", "5.10.0-30-amd64"];
        v.sort_by_key(|v| version_key(v));
        assert_eq!(v, ["5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-57-amd64"]);
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!("xen".parse::<Accel>().is_err());
    }
}
