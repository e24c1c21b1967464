use super::*;

/// Lines from this project's hybrid hosts (Debian 12, cgroup v1 + cgroup2 beside).
const HYBRID: &str = "\
25 1 0:23 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,relatime shared:5 - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:6 - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime shared:8 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
";

const COMBINED: &str = "\
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
37 30 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
";

const UNIFIED: &str = "\
29 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

#[test]
fn detects_hybrid_as_v1_with_every_mount_for_cleanup() {
    let h = Hierarchy::from_mountinfo(HYBRID).unwrap();
    assert_eq!(h.version(), CgroupVersion::V1);
    assert_eq!(h.dir("memory", "berth/t1").unwrap(), Path::new("/sys/fs/cgroup/memory/berth/t1"));
    assert_eq!(h.dir("cpu", "/berth/t1").unwrap(), Path::new("/sys/fs/cgroup/cpu/berth/t1"));
    assert!(matches!(h.dir("pids", "x"), Err(CgroupError::MissingController { .. })));
    let Hierarchy::V1 { controllers, mounts } = &h else { unreachable!() };
    assert!(controllers.contains_key("name=systemd"));
    assert!(!controllers.contains_key("rw"));
    assert_eq!(mounts.len(), 5, "{mounts:?}");
    assert!(mounts.contains(&PathBuf::from("/sys/fs/cgroup/unified")));
}

#[test]
fn detects_combined_v1_and_unified_v2() {
    let h = Hierarchy::from_mountinfo(COMBINED).unwrap();
    assert_eq!(h.dir("cpuacct", "a").unwrap(), Path::new("/sys/fs/cgroup/cpu,cpuacct/a"));
    assert_eq!(h.dir("cpu", "a").unwrap(), h.dir("cpuacct", "a").unwrap());
    let h = Hierarchy::from_mountinfo(UNIFIED).unwrap();
    assert_eq!(h, Hierarchy::V2 { root: "/sys/fs/cgroup".into() });
    assert_eq!(h.dir("memory", "berth/t").unwrap(), Path::new("/sys/fs/cgroup/berth/t"));
    assert!(matches!(Hierarchy::from_mountinfo("1 2 0:1 / / rw - ext4 x rw"), Err(CgroupError::NoHierarchy(_))));
    assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
}

#[test]
fn cpu_conversions() {
    assert_eq!(units_to_shares(0), 2);
    assert_eq!(units_to_shares(1), 2);
    assert_eq!(units_to_shares(512), 512);
    assert_eq!(units_to_shares(u32::MAX), 262_144);
    assert_eq!(units_to_quota(1024), 100_000);
    assert_eq!(units_to_quota(256), 25_000);
    assert_eq!(units_to_quota(1), 1000);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(weight_to_shares(shares_to_weight(262_144)), 262_144);
}

#[test]
fn task_ids_are_validated() {
    let h = Hierarchy::from_mountinfo(HYBRID).unwrap();
    for bad in ["", "..", "a/b", "a b"] {
        assert!(matches!(h.task(bad), Err(CgroupError::InvalidTaskId { .. })), "{bad:?}");
    }
    assert_eq!(h.task("t-1_2.3").unwrap().path(), "berth/t-1_2.3");
}

/// The real thing on this host: limits written, read back, removed everywhere.
#[test]
fn task_cgroup_limits_read_back_and_remove() {
    let task_id = format!("cgtest-{}", std::process::id());
    let cg = create_task_cgroup(&task_id, Some(512), Some(64)).unwrap();
    assert_eq!(cg.path(), format!("berth/{task_id}"));
    assert_eq!(cg.memory_limit_bytes().unwrap(), Some(64 * MIB));
    assert_eq!(cg.cpu_quota().unwrap(), Some((50_000, 100_000)));
    let shares = cg.cpu_shares().unwrap();
    match cg.hierarchy().version() {
        CgroupVersion::V1 => assert_eq!(shares, 512),
        CgroupVersion::V2 => assert!((500..=520).contains(&shares), "{shares}"),
    }
    // A child cgroup (what runc makes for a container) keeps the task busy.
    let child = cg.hierarchy().dir("memory", &format!("{}/child", cg.path())).unwrap();
    fs::create_dir(&child).unwrap();
    assert!(matches!(cg.remove(), Err(CgroupError::Busy { .. })));
    fs::remove_dir(&child).unwrap();
    cg.remove().unwrap();
    assert!(!cg.hierarchy().exists(cg.path()));
    cg.remove().unwrap(); // idempotent
                          // No limits: unlimited memory and quota.
    let cg = create_task_cgroup(&task_id, None, None).unwrap();
    assert_eq!(cg.memory_limit_bytes().unwrap(), None);
    assert_eq!(cg.cpu_quota().unwrap(), None);
    cg.remove().unwrap();
    assert!(matches!(
        create_task_cgroup(&task_id, None, Some(0)),
        Err(CgroupError::InvalidValue { what: "memory (MiB)", value: 0, .. })
    ));
}
