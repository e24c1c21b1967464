//! A container's rootfs: an overlay of the image's extracted layers (read-only, shared) under
//! a per-container `upper` and `work` directory.
//!
//! # Behavior
//! - `dir/rootfs` is the mount point, `dir/upper` takes the container's writes, `dir/work` is
//!   overlayfs' scratch directory. All three are created when missing.
//! - Mounting is idempotent: when `dir/rootfs` already carries an overlay (an agent restarted
//!   while its containers ran), it is left as it is. After a host reboot the same call mounts
//!   it again over the kept `upper`, so the container's writes come back.
//! - Lower layers are named by short symlinks, `<store>/l/<12 hex>`, so that the option string
//!   holds about `4096 / (len(store root) + 16)` layers: ~95 with the agent's default root
//!   (`/var/lib/berth/agent/images`), more than Docker's 127-layer limit for short roots.
//! - Longer chains are mounted with the new mount API (`fsopen` + one `lowerdir+` per layer,
//!   Linux 6.8+), which has no length limit; overlayfs itself stacks at most 500 layers.
//! - A layer that appears twice in one image is stacked once, at its topmost place (the lower
//!   copy is fully shadowed by the upper one, so the view is the same).
//!
//! # Limitations
//! - `dir` must not contain `:`, `,` or `\` (overlay's option separators).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::ImageError;

/// The longest option string `mount(2)` takes: one page, including the terminating NUL.
fn option_limit() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map(|n| n as usize).unwrap_or(4096) - 1
}

/// The file system type mounted at `path`, if `path` is a mount point (topmost mount wins).
pub(crate) fn mounted_fs_type(path: &Path) -> Result<Option<String>, ImageError> {
    crate::mountinfo::fs_type_at(path).map_err(ImageError::io("reading", "/proc/self/mountinfo"))
}

fn check_path(path: &Path) -> Result<(), ImageError> {
    let s = path.to_string_lossy();
    if s.contains([':', ',', '\\']) {
        return Err(ImageError::Mount {
            action: "mounting the rootfs in",
            path: path.to_path_buf(),
            reason: "the path contains ':', ',' or '\\', which overlayfs options cannot carry".into(),
        });
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), ImageError> {
    fs::create_dir_all(path).map_err(ImageError::io("creating", path))
}

/// Mounts `lowers` (topmost first) under `dir`. Returns `dir/rootfs`.
pub(crate) fn mount_overlay(lowers: &[PathBuf], dir: &Path) -> Result<PathBuf, ImageError> {
    mkdir(dir)?;
    let dir = dir.canonicalize().map_err(ImageError::io("resolving", dir))?;
    check_path(&dir)?;
    let (rootfs, upper, work) = (dir.join("rootfs"), dir.join("upper"), dir.join("work"));
    for d in [&rootfs, &upper, &work] {
        mkdir(d)?;
    }
    match mounted_fs_type(&rootfs)? {
        Some(t) if t == "overlay" => return Ok(rootfs),
        Some(other) => {
            return Err(ImageError::Mount {
                action: "mounting the rootfs at",
                path: rootfs,
                reason: format!("a {other} file system is already mounted there"),
            })
        }
        None => {}
    }
    for lower in lowers {
        check_path(lower)?;
    }
    let mut seen = std::collections::HashSet::new();
    let lowers: Vec<&PathBuf> = lowers.iter().filter(|l| seen.insert(l.as_path())).collect();
    let lower_list: Vec<String> = lowers.iter().map(|l| l.to_string_lossy().into_owned()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower_list.join(":"),
        upper.to_string_lossy(),
        work.to_string_lossy()
    );
    let fail =
        |reason: String| ImageError::Mount { action: "mounting the overlay rootfs at", path: rootfs.clone(), reason };
    if options.len() <= option_limit() {
        mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
            .map_err(|e| fail(format!("{e} (options: {options})")))?;
    } else {
        mount_with_fsconfig(&lower_list, &upper, &work, &rootfs).map_err(|e| {
            fail(format!(
                "{} layers need {} bytes of lowerdir options (more than mount(2)'s {}), and the new mount API \
                 (lowerdir+, Linux 6.8+) failed: {e}",
                lower_list.len(),
                options.len(),
                option_limit()
            ))
        })?;
    }
    Ok(rootfs)
}

/// The new mount API: one `lowerdir+` per layer, so the chain has no option-length limit.
fn mount_with_fsconfig(lowers: &[String], upper: &Path, work: &Path, target: &Path) -> rustix::io::Result<()> {
    use rustix::fs::CWD;
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags,
        MoveMountFlags,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", "overlay")?;
    for lower in lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower.as_str())?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(&mnt, "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

/// Unmounts `dir/rootfs` if it is mounted (lazily when busy). Leaves `upper` and `work`.
pub(crate) fn unmount(dir: &Path) -> Result<(), ImageError> {
    let rootfs = match dir.join("rootfs").canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("resolving", dir.join("rootfs"))(e)),
    };
    // Overlays stacked on the same point (a double mount) come off one by one.
    for _ in 0..8 {
        if mounted_fs_type(&rootfs)?.is_none() {
            break;
        }
        match umount2(&rootfs, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => umount2(&rootfs, MntFlags::MNT_DETACH).map_err(|e| ImageError::Mount {
                action: "unmounting",
                path: rootfs.clone(),
                reason: e.to_string(),
            })?,
            Err(e) => {
                return Err(ImageError::Mount { action: "unmounting", path: rootfs.clone(), reason: e.to_string() })
            }
        }
    }
    Ok(())
}
