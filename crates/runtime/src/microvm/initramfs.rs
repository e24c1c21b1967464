//! The guest's initramfs: busybox, runc and the libraries it links, the kernel modules
//! for virtio, 9p and the network, and berth's init script; built once per kernel and
//! berth version and cached.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::cpio::Cpio;
use super::MicroVmError;

/// The guest init; see its comments for the console protocol.
pub(crate) const INIT_SCRIPT: &str = include_str!("init.sh");
/// The modules the guest loads (with their dependencies, from `modules.dep`).
const MODULES: [&str; 4] = ["virtio_mmio", "9pnet_virtio", "9p", "virtio_net"];
/// Directories the init script mounts on or writes to.
const DIRS: [&str; 12] = ["bin", "dev", "etc", "mod", "proc", "run", "sys", "tmp", "usr", "usr/sbin", "vm", "lib64"];

/// A built initramfs and the modules its init loads, in load order.
#[derive(Debug, Clone)]
pub struct Initramfs {
    pub path: PathBuf,
    pub modules: Vec<String>,
}

/// What goes into the archive, found on the host.
pub(crate) struct Sources {
    pub busybox: PathBuf,
    pub runc: PathBuf,
    /// `/lib/modules/<version>`.
    pub modules_dir: PathBuf,
}

/// Finds or builds the initramfs for `kernel_version` under `cache_dir`.
pub(crate) fn ensure(cache_dir: &Path, kernel_version: &str, sources: &Sources) -> Result<Initramfs, MicroVmError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MicroVmError::Io { path, source }
    };
    let dep_path = sources.modules_dir.join("modules.dep");
    let deps = fs::read_to_string(&dep_path).map_err(io(&dep_path))?;
    let modules = load_order(&deps, &MODULES)?;
    let libs = linked_libraries(&sources.runc)?;
    let key = cache_key(kernel_version, &[&sources.busybox, &sources.runc]);
    let path = cache_dir.join(format!("initramfs-{kernel_version}-{key}.cpio"));
    let names = modules.iter().map(|(name, _)| name.clone()).collect();
    if path.is_file() {
        return Ok(Initramfs { path, modules: names });
    }
    fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let tmp = path.with_extension("cpio.tmp");
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut cpio = Cpio::new(BufWriter::new(file));
    let write = |cpio: &mut Cpio<BufWriter<File>>| -> std::io::Result<()> {
        for dir in DIRS {
            cpio.dir(dir)?;
        }
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
        cpio.file("bin/busybox", 0o755, &fs::read(&sources.busybox)?)?;
        cpio.symlink("bin/sh", "busybox")?;
        cpio.file("usr/sbin/runc", 0o755, &fs::read(&sources.runc)?)?;
        let mut made = std::collections::BTreeSet::new();
        for lib in &libs {
            let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
            let mut parent = String::new();
            for part in rel.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
                parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
                if !DIRS.contains(&parent.as_str()) && made.insert(parent.clone()) {
                    cpio.dir(&parent)?;
                }
            }
            cpio.file(&rel, 0o755, &fs::read(lib)?)?;
        }
        for (name, rel) in &modules {
            cpio.file(&format!("mod/{name}.ko"), 0o644, &fs::read(sources.modules_dir.join(rel))?)?;
        }
        Ok(())
    };
    write(&mut cpio).and_then(|()| cpio.finish().map(drop)).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Initramfs { path, modules: names })
}

/// The modules `wanted` and their dependencies as (name, path under the modules dir),
/// dependencies first, each once.
pub(crate) fn load_order(modules_dep: &str, wanted: &[&str]) -> Result<Vec<(String, String)>, MicroVmError> {
    let mut table: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, deps)) = line.split_once(':') else { continue };
        let deps = deps.split_whitespace().map(String::from).collect();
        table.insert(module_name(path), (path.to_string(), deps));
    }
    let mut order = Vec::new();
    for name in wanted {
        visit(&table, name, &mut order)?;
    }
    Ok(order)
}

fn visit(
    table: &HashMap<String, (String, Vec<String>)>,
    name: &str,
    order: &mut Vec<(String, String)>,
) -> Result<(), MicroVmError> {
    if order.iter().any(|(n, _)| n == name) {
        return Ok(());
    }
    let (path, deps) = table.get(name).ok_or_else(|| MicroVmError::Module { name: name.into() })?;
    if !path.ends_with(".ko") {
        return Err(MicroVmError::Module {
            name: format!("{name} (compressed as {path}; berth loads plain .ko files)"),
        });
    }
    for dep in deps {
        visit(table, &module_name(dep), order)?;
    }
    order.push((name.to_string(), path.clone()));
    Ok(())
}

/// `kernel/fs/9p/9p.ko` -> `9p`; modules.dep may spell `-` where the name has `_`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The shared libraries `binary` links (absolute paths, the dynamic loader included),
/// from `ldd`.
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>, MicroVmError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| MicroVmError::Io { path: PathBuf::from("ldd"), source })?;
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// The absolute paths in `ldd` output (`libc.so.6 => /lib/.../libc.so.6 (0x...)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`); `linux-vdso` has none.
pub(crate) fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let target = line.split_once("=>").map_or(line, |(_, t)| t).trim();
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Names the archive after what it holds: the init script, berth's version and the size
/// and modification time of the host binaries copied in (a package upgrade changes them).
fn cache_key(kernel_version: &str, binaries: &[&Path]) -> String {
    let mut hash = Sha256::new();
    hash.update(INIT_SCRIPT.as_bytes());
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update(kernel_version.as_bytes());
    for binary in binaries {
        if let Ok(meta) = fs::metadata(binary) {
            hash.update(meta.len().to_le_bytes());
            let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            hash.update(mtime.map_or(0, |d| d.as_secs()).to_le_bytes());
        }
    }
    hex::encode(&hash.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/zstd/x.ko.xz:
";

    #[test]
    fn modules_load_after_their_dependencies_each_once() {
        let order = load_order(DEP, &MODULES).unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "9pnet",
                "9pnet_virtio",
                "netfs",
                "fscache",
                "9p",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        assert_eq!(order[2].1, "kernel/drivers/virtio/virtio_mmio.ko");
        assert!(matches!(load_order(DEP, &["nope"]), Err(MicroVmError::Module { .. })));
        assert!(matches!(load_order(DEP, &["x"]), Err(MicroVmError::Module { .. })));
    }

    #[test]
    fn ldd_output_gives_absolute_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibseccomp.so.2 => /lib/x86_64-linux-gnu/libseccomp.so.2 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libseccomp.so.2"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
