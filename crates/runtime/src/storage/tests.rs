//! Tests of task storage with real loop mounts and a real overlay on them (run as root, as
//! CI does). The 64 MiB size is test-only: tasks get whole GiB.

use std::fs;
use std::io::Write;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::*;

const SIZE: u64 = 64 << 20;

/// A task storage root of its own (dropped last: the tests remove their storage first).
fn fresh() -> (tempfile::TempDir, TaskStorage) {
    let root = tempfile::tempdir().unwrap();
    let storage = TaskStorage::new(root.path());
    (root, storage)
}

fn mounts_at(path: &Path) -> usize {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let wanted = path.to_string_lossy();
    info.lines().filter(|l| l.split(' ').nth(4) == Some(&*wanted)).count()
}

/// Whether any loop device is still backed by `image` (a leaked device).
fn loop_backs(image: &Path) -> bool {
    let wanted = image.to_string_lossy();
    let devices = fs::read_dir("/sys/block").unwrap().flatten();
    devices
        .filter_map(|d| fs::read_to_string(d.path().join("loop/backing_file")).ok())
        .any(|b| b.trim().starts_with(&*wanted))
}

/// Writes 1 MiB chunks to `path` until `limit` bytes or an error; answers the error.
fn fill(path: &Path, limit: u64) -> Option<std::io::Error> {
    let mut file = fs::File::create(path).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..limit >> 20 {
        if let Err(e) = file.write_all(&chunk) {
            return Some(e);
        }
    }
    file.sync_all().err()
}

#[test]
fn writes_through_an_overlay_on_task_storage_stop_at_its_size() {
    let (root, storage) = fresh();
    let mp = storage.set_up("t1", SIZE).unwrap();
    assert_eq!(mounted_fs_type(&mp).unwrap().as_deref(), Some("ext4"));
    let lower = root.path().join("lower");
    fs::create_dir_all(&lower).unwrap();
    fs::write(lower.join("from-image"), "layer\n").unwrap();
    let (upper, work, merged) = (mp.join("upper"), mp.join("work"), mp.join("rootfs"));
    for d in [&upper, &work, &merged] {
        fs::create_dir_all(d).unwrap();
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(options.as_str())).unwrap();
    // `df /` in a container: the overlay reports its upper file system, about the task's size.
    let total = usage(&merged).unwrap().size_bytes;
    assert!(total <= SIZE && total > SIZE * 8 / 10, "total {total} for a {SIZE}-byte storage");
    assert_eq!(usage(&mp).unwrap().size_bytes, total, "the task's file system itself");
    assert_eq!(fs::read_to_string(merged.join("from-image")).unwrap(), "layer\n");
    let err = fill(&merged.join("big"), 2 * SIZE).expect("a write past the size fails");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    assert!(upper.join("big").exists(), "the write went to the upper directory on the task storage");
    // The agent's data file system (the lower side) got none of it.
    assert!(!lower.join("big").exists());
    umount2(&merged, MntFlags::empty()).unwrap();
    storage.remove("t1").unwrap();
}

#[test]
fn set_up_is_idempotent_and_survives_a_restart_and_a_remount() {
    let (root, storage) = fresh();
    let mp = storage.set_up("t2", SIZE).unwrap();
    fs::write(mp.join("kept"), "yes").unwrap();
    // An agent restarted while the task runs: the mounted file system is reused, not stacked.
    let restarted = TaskStorage::new(root.path());
    assert_eq!(restarted.set_up("t2", SIZE).unwrap(), mp);
    assert_eq!(mounts_at(&mp), 1);
    assert_eq!(fs::read_to_string(mp.join("kept")).unwrap(), "yes");
    assert_eq!(restarted.tasks(), vec!["t2".to_string()]);
    // A host reboot: unmounted, the kept file is mounted again with its contents.
    umount2(&mp, MntFlags::empty()).unwrap();
    assert_eq!(restarted.set_up("t2", SIZE).unwrap(), mp);
    assert_eq!(fs::read_to_string(mp.join("kept")).unwrap(), "yes");
    let image = root.path().join("t2.img");
    assert!(loop_backs(&image), "the mounted storage is on a loop device");
    restarted.remove("t2").unwrap();
    assert_eq!(mounts_at(&mp), 0);
    assert!(!mp.exists() && !image.exists(), "the mount point and the file are gone");
    assert!(!loop_backs(&image), "autoclear detached the loop device");
    assert!(!restarted.exists("t2") && restarted.tasks().is_empty());
    // Removing what is gone is no error.
    restarted.remove("t2").unwrap();
}

#[test]
fn removal_of_busy_storage_detaches_it_and_frees_the_loop_device_when_released() {
    let (root, storage) = fresh();
    let mp = storage.set_up("t3", SIZE).unwrap();
    let image = root.path().join("t3.img");
    let held = fs::File::create(mp.join("open")).unwrap();
    storage.remove("t3").unwrap();
    assert_eq!(mounts_at(&mp), 0, "detached from the tree while a file is open");
    assert!(!image.exists());
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while loop_backs(&image) {
        assert!(std::time::Instant::now() < deadline, "the loop device stayed attached");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn something_else_mounted_at_the_mount_point_is_refused() {
    let (_root, storage) = fresh();
    let mp = storage.mount_point("t4");
    fs::create_dir_all(&mp).unwrap();
    mount(Some("tmpfs"), &mp, Some("tmpfs"), MsFlags::empty(), Some("size=1m")).unwrap();
    let err = storage.set_up("t4", SIZE).unwrap_err();
    assert!(matches!(&err, StorageError::Occupied { fs_type, .. } if fs_type == "tmpfs"), "{err}");
    umount2(&mp, MntFlags::empty()).unwrap();
    storage.remove("t4").unwrap();
}

#[test]
fn usage_counts_what_the_task_writes() {
    let (_root, storage) = fresh();
    let mp = storage.set_up("t5", SIZE).unwrap();
    let before = usage(&mp).unwrap();
    assert!(before.size_bytes <= SIZE && before.size_bytes > SIZE * 8 / 10, "{before:?}");
    assert!(before.used_bytes < before.size_bytes / 10, "a fresh file system is nearly empty: {before:?}");
    let mut file = fs::File::create(mp.join("eight")).unwrap();
    file.write_all(&vec![7u8; 8 << 20]).unwrap();
    // Not synced: ext4 counts delayed allocations as used at once.
    let after = usage(&mp).unwrap();
    assert_eq!(after.size_bytes, before.size_bytes);
    let grown = after.used_bytes - before.used_bytes;
    assert!((8 << 20..9 << 20).contains(&grown), "8 MiB written, used grew by {grown}");
    drop(file);
    storage.remove("t5").unwrap();
}
