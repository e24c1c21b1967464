//! Task storage: a size-limited file system per task, so that a Fargate task's writes (its
//! containers' writable layers and its scoped volumes) are bounded by its `ephemeralStorage`
//! and `df /` in its containers shows that size, as on Fargate.
//!
//! # Behavior
//! - A task's storage is a sparse file `<root>/<task>.img` of the task's size, formatted ext4
//!   with lazy inode-table and journal initialisation (a 20 GiB file costs a few MiB of disk
//!   and tens of milliseconds), loop-mounted at `<root>/<task>/`.
//! - The file is formatted under a temporary name and renamed, so an `.img` is always a
//!   complete file system: a crash mid-format only leaves a temporary file the next set-up
//!   overwrites.
//! - Set-up is idempotent: an ext4 already mounted at the mount point (an agent restarted
//!   while the task ran) is reused, and a kept `.img` (a host reboot) is mounted again with
//!   its contents.
//! - The loop device is set up by util-linux `mount -o loop`, which picks a free device
//!   without racing other mounts and sets autoclear: the device detaches when the file system
//!   is unmounted (also a lazy unmount, once its last user is gone), so none leak.
//!
//! # Limitations
//! - The sparse files overcommit the agent's data file system: the sum of the tasks' sizes may
//!   exceed it, and a task then fails with ENOSPC below its own size.
//! - ext4's own metadata (journal, inode tables) takes about 2% of the size: `df` shows a
//!   total slightly below it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{umount2, MntFlags};

/// What failed while setting up or removing a task's storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation on the storage's files failed.
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// `mkfs.ext4` or `mount` failed (or could not be run).
    #[error("{command} {path}: {reason}")]
    Command { command: &'static str, path: PathBuf, reason: String },
    /// Something other than the task's ext4 is mounted where it belongs.
    #[error("{path} already carries a {fs_type} file system, not the task's ext4")]
    Occupied { path: PathBuf, fs_type: String },
    /// Unmounting the task's file system failed.
    #[error("unmounting {path}: {reason}")]
    Unmount { path: PathBuf, reason: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |cause| StorageError::Io { action, path, cause }
}

/// The task file systems of one agent, under one directory of its data dir.
#[derive(Debug, Clone)]
pub struct TaskStorage {
    root: PathBuf,
}

impl TaskStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where the task's file system is mounted (whether or not it is now).
    pub fn mount_point(&self, task_id: &str) -> PathBuf {
        self.root.join(task_id)
    }

    fn image(&self, task_id: &str) -> PathBuf {
        self.root.join(format!("{task_id}.img"))
    }

    /// Whether the task has storage here (set up, or left half removed).
    pub fn exists(&self, task_id: &str) -> bool {
        self.image(task_id).exists() || self.mount_point(task_id).exists()
    }

    /// The tasks that have storage here, so a sweep can remove what no task owns.
    pub fn tasks(&self) -> Vec<String> {
        let entries = fs::read_dir(&self.root).into_iter().flatten().flatten();
        let mut tasks: Vec<String> = entries
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let task = name.strip_suffix(".img.new").or_else(|| name.strip_suffix(".img")).unwrap_or(&name);
                Some(task.to_string())
            })
            .collect();
        tasks.sort();
        tasks.dedup();
        tasks
    }

    /// Makes the task's file system of `size_bytes` and mounts it; reuses what is already
    /// there. Returns the mount point.
    pub fn set_up(&self, task_id: &str, size_bytes: u64) -> Result<PathBuf, StorageError> {
        let mount_point = self.mount_point(task_id);
        fs::create_dir_all(&mount_point).map_err(io("creating", &mount_point))?;
        match mounted_fs_type(&mount_point)? {
            Some(t) if t == "ext4" => return Ok(mount_point),
            Some(fs_type) => return Err(StorageError::Occupied { path: mount_point, fs_type }),
            None => {}
        }
        let image = self.image(task_id);
        if !image.exists() {
            format(&image, size_bytes)?;
        }
        run(Command::new("mount").args(["-t", "ext4", "-o", "loop"]).arg(&image).arg(&mount_point), "mount", &image)?;
        Ok(mount_point)
    }

    /// Unmounts the task's file system (lazily while something still holds it) and deletes
    /// its file. Doing nothing when there is none.
    pub fn remove(&self, task_id: &str) -> Result<(), StorageError> {
        let mount_point = self.mount_point(task_id);
        // A file system mounted twice on the same point (two set-ups racing a crash) comes
        // off one mount at a time.
        for _ in 0..8 {
            if mounted_fs_type(&mount_point)?.is_none() {
                break;
            }
            unmount(&mount_point)?;
        }
        match fs::remove_dir(&mount_point) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", &mount_point)(e)),
            _ => {}
        }
        let image = self.image(task_id);
        for file in [image.with_extension("img.new"), image] {
            match fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", &file)(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// How much of a file system its files take, as `df` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The size files can use: the file system's size less ext4's own metadata.
    pub size_bytes: u64,
    /// What is in use (data written but not yet flushed included: ext4 counts it at once).
    pub used_bytes: u64,
}

/// The usage of the file system mounted at `path` (`statvfs`), so the task metadata endpoint
/// can report a task's ephemeral storage as Fargate does.
pub fn usage(path: &Path) -> Result<Usage, StorageError> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| io("measuring", path)(e.into()))?;
    let block = s.fragment_size() as u64;
    let size_bytes = s.blocks() as u64 * block;
    let used_bytes = size_bytes.saturating_sub(s.blocks_free() as u64 * block);
    Ok(Usage { size_bytes, used_bytes })
}

fn mounted_fs_type(path: &Path) -> Result<Option<String>, StorageError> {
    crate::mountinfo::fs_type_at(path).map_err(io("reading the mounts for", path))
}

/// Writes a sparse file of `size_bytes` formatted ext4 at `image`, through a temporary name.
fn format(image: &Path, size_bytes: u64) -> Result<(), StorageError> {
    let tmp = image.with_extension("img.new");
    let file = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    file.set_len(size_bytes).map_err(io("sizing", &tmp))?;
    drop(file);
    // Lazy init leaves the inode tables and journal to be zeroed on first use (the sparse
    // file reads back zeros anyway); -m 0 reserves nothing for root: the task has it all.
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1"]).arg(&tmp);
    run(&mut mkfs, "mkfs.ext4", &tmp)?;
    fs::rename(&tmp, image).map_err(io("renaming into place", image))
}

fn run(cmd: &mut Command, command: &'static str, path: &Path) -> Result<(), StorageError> {
    let fail = |reason: String| StorageError::Command { command, path: path.to_path_buf(), reason };
    let out = cmd.output().map_err(|e| fail(format!("could not run it: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(fail(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())))
}

/// Unmounts `path`; detaches it lazily when busy (a container process not yet reaped), and
/// autoclear then frees the loop device once the last user is gone.
fn unmount(path: &Path) -> Result<(), StorageError> {
    let fail = |e: nix::errno::Errno| StorageError::Unmount { path: path.to_path_buf(), reason: e.to_string() };
    match umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => umount2(path, MntFlags::MNT_DETACH).map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests;
