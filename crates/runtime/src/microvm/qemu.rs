//! qemu's command line for one microVM.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Accel;

/// The TSC frequency given to a TCG guest: without it the kernel's calibration against
/// the (absent) PIT sometimes hangs the boot (docs/microvm.md).
const TCG_TSC_KHZ: u32 = 2_000_000;
/// TCG's translation cache in MiB (qemu's default of 1 GiB would count against the task).
const TCG_TB_MIB: u32 = 64;

/// A directory the guest mounts over 9p at `/vm/<tag>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
}

/// The guest's network: its eth0 (a virtio-net device on a tap in the task's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    /// The task's own interface in its namespace (the CNI `eth0`).
    pub interface: String,
    /// The tap in the task's network namespace.
    pub tap: String,
    pub mac: String,
    /// `address/prefix`.
    pub address: String,
    pub gateway: String,
}

/// Everything qemu's command line is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmLaunch {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub accel: Accel,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// The modules the init loads, in order.
    pub modules: Vec<String>,
    /// The runc container id inside the guest.
    pub container_id: String,
    pub shares: Vec<Share>,
    pub network: Option<GuestNetwork>,
    /// Boot only to the init's READY line and power off (the start-up probe).
    pub probe: bool,
}

impl VmLaunch {
    /// qemu's arguments (the program is [`VmLaunch::qemu`]).
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none"]
            .into_iter()
            .map(String::from)
            .collect();
        match self.accel {
            Accel::Kvm => args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
            Accel::Tcg => args.extend(["-accel".into(), format!("tcg,tb-size={TCG_TB_MIB}")]),
        }
        args.extend([
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.vcpus.to_string(),
            "-serial".into(),
            "stdio".into(),
            "-no-reboot".into(),
            "-kernel".into(),
            path_arg(&self.kernel),
            "-initrd".into(),
            path_arg(&self.initrd),
            "-append".into(),
            self.kernel_command_line(),
        ]);
        for share in &self.shares {
            args.extend([
                "-fsdev".into(),
                format!("local,id={},path={},security_model=passthrough", share.tag, escape(&path_arg(&share.path))),
                "-device".into(),
                format!("virtio-9p-device,fsdev={0},mount_tag={0}", share.tag),
            ]);
        }
        if let Some(net) = &self.network {
            args.extend([
                "-netdev".into(),
                format!("tap,id=net0,ifname={},script=no,downscript=no", net.tap),
                "-device".into(),
                format!("virtio-net-device,netdev=net0,mac={}", net.mac),
            ]);
        }
        args
    }

    /// The guest kernel's command line: `name=value` words without a dot reach the init
    /// as environment variables.
    pub fn kernel_command_line(&self) -> String {
        let mut words: Vec<String> = ["console=ttyS0", "quiet", "loglevel=1", "panic=-1", "rdinit=/init"]
            .into_iter()
            .map(String::from)
            .collect();
        if self.accel == Accel::Tcg {
            words.push(format!("tsc_early_khz={TCG_TSC_KHZ}"));
        }
        words.push(format!("berth_id={}", self.container_id));
        words.push(format!("berth_modules={}", self.modules.join(",")));
        let tags: Vec<&str> = self.shares.iter().map(|s| s.tag.as_str()).collect();
        words.push(format!("berth_shares={}", tags.join(",")));
        if let Some(net) = &self.network {
            words.push(format!("berth_ip={}", net.address));
            words.push(format!("berth_gw={}", net.gateway));
        }
        if self.probe {
            words.push("berth_probe=1".into());
        }
        words.join(" ")
    }
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// qemu's option syntax doubles a comma inside a value.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// The guest's vCPUs for ECS CPU units: one per 1024, at least one.
pub fn vcpus_for(cpu_units: Option<u32>) -> u32 {
    cpu_units.map_or(1, |u| u.div_ceil(1024).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(accel: Accel) -> VmLaunch {
        VmLaunch {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            kernel: "/boot/vmlinuz-6.1.0-57-amd64".into(),
            initrd: "/d/initramfs.cpio".into(),
            accel,
            vcpus: 2,
            memory_mib: 512,
            modules: vec!["virtio".into(), "9p".into()],
            container_id: "t1-app".into(),
            shares: vec![Share { tag: "root".into(), path: "/x,y/rootfs".into() }],
            network: Some(GuestNetwork {
                interface: "eth0".into(),
                tap: "tap0".into(),
                mac: "02:00:00:00:00:01".into(),
                address: "10.1.0.5/24".into(),
                gateway: "10.1.0.1".into(),
            }),
            probe: false,
        }
    }

    #[test]
    fn the_command_line_names_machine_accel_size_shares_and_network() {
        let args = launch(Accel::Tcg).args();
        let joined = args.join(" ");
        assert!(joined.starts_with("-M microvm -nodefaults"), "{joined}");
        assert!(joined.contains("-accel tcg,tb-size=64 -m 512 -smp 2"), "{joined}");
        assert!(joined.contains("local,id=root,path=/x,,y/rootfs,security_model=passthrough"), "{joined}");
        assert!(joined.contains("virtio-9p-device,fsdev=root,mount_tag=root"), "{joined}");
        assert!(joined.contains("tap,id=net0,ifname=tap0,script=no,downscript=no"), "{joined}");
        assert!(joined.contains("virtio-net-device,netdev=net0,mac=02:00:00:00:00:01"), "{joined}");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.contains("tsc_early_khz=2000000"), "{append}");
        assert!(append.contains("berth_id=t1-app berth_modules=virtio,9p berth_shares=root"), "{append}");
        assert!(append.contains("berth_ip=10.1.0.5/24 berth_gw=10.1.0.1"), "{append}");
        assert!(!append.contains("berth_probe"));

        let kvm = launch(Accel::Kvm).args().join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"), "{kvm}");
        assert!(!kvm.contains("tsc_early_khz"), "{kvm}");
    }

    #[test]
    fn vcpus_round_cpu_units_up() {
        assert_eq!(vcpus_for(None), 1);
        assert_eq!(vcpus_for(Some(256)), 1);
        assert_eq!(vcpus_for(Some(1024)), 1);
        assert_eq!(vcpus_for(Some(1025)), 2);
        assert_eq!(vcpus_for(Some(4096)), 4);
    }
}
