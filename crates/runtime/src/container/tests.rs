//! Real containers: runc, as root, on a busybox rootfs. The shim is this test binary
//! re-executed to run only [`shim_child`], with its arguments in [`SHIM_ENV`].

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tempfile::TempDir;

use super::*;
use crate::cgroups::{create_task_cgroup, Hierarchy};

const SHIM_ENV: &str = "BERTH_TEST_SHIM_ARGS";
const AGENT_ENV: &str = "BERTH_TEST_AGENT";
const MIB: u64 = 1024 * 1024;

/// The shim side; does nothing unless started by a runtime under test.
#[test]
#[ignore = "the shim, re-executed by the container tests"]
fn shim_child() {
    let Ok(json) = std::env::var(SHIM_ENV) else { return };
    let code = match ShimArgs::from_json(&json).and_then(shim_main) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    // Leave before the harness prints anything more.
    std::process::exit(code);
}

fn shim_command() -> ShimCommand {
    ShimCommand {
        program: std::env::current_exe().unwrap(),
        args: ["--exact", "container::tests::shim_child", "--ignored", "--nocapture", "--test-threads=1"]
            .map(String::from)
            .to_vec(),
        args_env: Some(SHIM_ENV.into()),
    }
}

/// A busybox rootfs: /bin/busybox + applet symlinks, a user `app` (1000:1000), /tmp.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "home/app", "proc", "sys", "dev"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static must be installed (/bin/busybox)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
        .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    rootfs
}

struct Fixture {
    dir: TempDir,
    rootfs: PathBuf,
    runtime: Runtime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let runtime = Runtime::new(&dir.path().join("state"), shim_command()).unwrap();
        Fixture { dir, rootfs, runtime }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A config with a per-process unique id.
    fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        config(&self.rootfs, name, args)
    }

    fn log(&self, id: &str) -> Vec<(String, String, String)> {
        fs::read_to_string(self.runtime.log_path(id))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().unwrap();
                assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "bad timestamp in {l:?}");
                (p.next().unwrap().into(), p.next().unwrap().into(), p.next().unwrap_or("").into())
            })
            .collect()
    }

    /// The container's stdout lines.
    fn stdout(&self, id: &str) -> Vec<String> {
        self.log(id).into_iter().filter(|(s, _, _)| s == "stdout").map(|(_, _, l)| l).collect()
    }
}

impl Drop for Fixture {
    /// Kills whatever a failed test left running.
    fn drop(&mut self) {
        for id in self.runtime.list().unwrap_or_default() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.state_dir().join("runc"))
                .args(["delete", "--force", &id])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn config(rootfs: &Path, name: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        id: format!("bt{}-{name}", std::process::id()),
        rootfs: rootfs.to_path_buf(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// `Runtime::wait` bounded, so a bug fails the test instead of hanging CI.
async fn wait(runtime: &Runtime, id: &str) -> ExitStatus {
    match tokio::time::timeout(Duration::from_secs(30), runtime.wait(id)).await {
        Ok(status) => status.unwrap(),
        Err(_) => panic!("container {id} did not exit within 30 s"),
    }
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test]
async fn runs_a_command_with_env_and_args_and_collects_exit_code_and_cri_log() {
    let f = Fixture::new();
    let mut cfg = f.config(
        "echo",
        &["sh", "-c", "echo \"$GREETING from $0 $1\"; echo to-stderr >&2; printf no-newline; exit 3", "a0", "a1"],
    );
    cfg.env = vec![("GREETING".into(), "hello".into())];
    let started = f.runtime.start(&cfg).await.unwrap();
    assert!(started.pid > 0);
    let status = wait(&f.runtime, &cfg.id).await;
    assert_eq!((status.code, status.signal.as_deref(), status.oom_killed), (Some(3), None, false));
    assert!(status.finished_at >= started.started_at);
    let log = f.log(&cfg.id);
    assert!(log.contains(&("stdout".into(), "F".into(), "hello from a0 a1".into())), "{log:?}");
    assert!(log.contains(&("stderr".into(), "F".into(), "to-stderr".into())), "{log:?}");
    assert!(log.contains(&("stdout".into(), "F".into(), "no-newline".into())), "{log:?}");
    assert_eq!(f.runtime.state(&cfg.id).await.unwrap(), ContainerState::Exited(status));
    assert_eq!(f.runtime.list().unwrap(), vec![cfg.id.clone()]);
    assert!(matches!(f.runtime.start(&cfg).await, Err(RuntimeError::AlreadyExists { .. })));
    f.runtime.delete(&cfg.id).await.unwrap();
    assert_eq!(f.runtime.state(&cfg.id).await.unwrap(), ContainerState::Missing);
    assert!(f.runtime.list().unwrap().is_empty());
}

#[tokio::test]
async fn a_command_that_cannot_start_reports_runcs_error_and_leaves_nothing() {
    let f = Fixture::new();
    let cfg = f.config("nope", &["/no/such/binary"]);
    match f.runtime.start(&cfg).await {
        Err(RuntimeError::StartFailed { id, message }) => {
            assert_eq!(id, cfg.id);
            assert!(message.contains("/no/such/binary"), "{message}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert_eq!(f.runtime.state(&cfg.id).await.unwrap(), ContainerState::Missing);
}

/// The agent side of [`the_shim_outlives_a_sigkilled_agent`]: starts a container, prints
/// its pid, and waits to be killed.
#[test]
#[ignore = "child process of the_shim_outlives_a_sigkilled_agent"]
fn agent_child() {
    let Ok(json) = std::env::var(AGENT_ENV) else { return };
    let (state, rootfs, id): (PathBuf, PathBuf, String) = serde_json::from_str(&json).unwrap();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let runtime = Runtime::new(&state, shim_command()).unwrap();
        let mut cfg = config(&rootfs, "survivor", &["sh", "-c", "trap 'exit 42' TERM; sleep 1000 & wait"]);
        cfg.id = id;
        let started = runtime.start(&cfg).await.unwrap();
        println!("\nSTARTED {}", started.pid);
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test]
async fn the_shim_outlives_a_sigkilled_agent() {
    let f = Fixture::new();
    let id = config(&f.rootfs, "survivor", &[]).id;
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "container::tests::agent_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(AGENT_ENV, serde_json::to_string(&(f.state_dir(), &f.rootfs, &id)).unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pid = None;
    for line in BufReader::new(agent.stdout.take().unwrap()).lines() {
        // The harness may have printed "test ... " on the same line.
        if let Some((_, p)) = line.unwrap().split_once("STARTED ") {
            pid = Some(p.trim().parse::<u32>().unwrap());
            break;
        }
    }
    let pid = pid.expect("the agent child did not start its container");
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();

    // A new runtime instance (the restarted agent) finds the container running.
    let runtime = Runtime::new(&f.state_dir(), shim_command()).unwrap();
    assert_eq!(runtime.list().unwrap(), vec![id.clone()]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(alive(pid), "the container died with the agent");
    match runtime.state(&id).await.unwrap() {
        ContainerState::Running { pid: p, .. } => assert_eq!(p, pid),
        other => panic!("expected Running, got {other:?}"),
    }
    // SIGTERM reaches the trap: a clean exit code, collected by the orphaned shim.
    let status = runtime.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!((status.code, status.signal), (Some(42), None));
    assert!(!alive(pid));
    runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_timeout() {
    let f = Fixture::new();
    let cfg = f.config("stubborn", &["sh", "-c", "trap '' TERM; sleep 100"]);
    f.runtime.start(&cfg).await.unwrap();
    let begin = Instant::now();
    let status = f.runtime.stop(&cfg.id, Duration::from_millis(300)).await.unwrap();
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(300), "stopped after {took:?}, before the timeout");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!((status.code, status.signal.as_deref()), (Some(137), Some("SIGKILL")));
    assert!(!status.oom_killed);
    assert!(matches!(f.runtime.kill(&cfg.id, Signal::SIGTERM).await, Err(RuntimeError::NotRunning { .. })));
    f.runtime.delete(&cfg.id).await.unwrap();
}

/// Allocates without bound in one process: busybox `tail` keeps a newline-free stream
/// in memory.
const ALLOCATE: &[&str] = &["sh", "-c", "head -c 400m /dev/zero | tail"];

#[tokio::test]
async fn over_the_memory_limit_the_container_is_oom_killed() {
    let f = Fixture::new();
    let mut cfg = f.config("oom", ALLOCATE);
    cfg.resources.memory_limit_mib = Some(32);
    f.runtime.start(&cfg).await.unwrap();
    let status = wait(&f.runtime, &cfg.id).await;
    assert!(status.oom_killed, "{status:?}");
    // tail was killed; the shell reports it as 128 + SIGKILL.
    assert_eq!(status.code, Some(137), "{status:?}");
    f.runtime.delete(&cfg.id).await.unwrap();
}

#[tokio::test]
async fn exec_runs_health_checks_in_the_container_with_a_timeout() {
    let f = Fixture::new();
    let mut cfg = f.config("health", &["sleep", "1000"]);
    cfg.init = true;
    cfg.env = vec![("HEALTH".into(), "ok".into())];
    f.runtime.start(&cfg).await.unwrap();
    let run = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let t = Duration::from_secs(10);
    assert_eq!(f.runtime.exec(&cfg.id, &run(&["sh", "-c", "test \"$HEALTH\" = ok"]), t).await.unwrap(), 0);
    assert_eq!(f.runtime.exec(&cfg.id, &run(&["sh", "-c", "exit 7"]), t).await.unwrap(), 7);
    // pid 1 is the init, running the command.
    let init_check = run(&["sh", "-c", "grep -q berth-init /proc/1/cmdline && pidof sleep"]);
    assert_eq!(f.runtime.exec(&cfg.id, &init_check, t).await.unwrap(), 0);
    let begin = Instant::now();
    let timed_out = f.runtime.exec(&cfg.id, &run(&["sleep", "30"]), Duration::from_millis(300)).await;
    assert!(matches!(timed_out, Err(RuntimeError::ExecTimeout { .. })), "{timed_out:?}");
    assert!(begin.elapsed() < Duration::from_secs(5));
    // The timed-out process was killed.
    let sleeps = run(&["sh", "-c", "test $(pidof sleep | wc -w) -eq 1"]);
    assert_eq!(f.runtime.exec(&cfg.id, &sleeps, t).await.unwrap(), 0);
    // With an init, SIGTERM reaches `sleep` (a bare pid 1 would ignore it): no escalation.
    let begin = Instant::now();
    let status = f.runtime.stop(&cfg.id, Duration::from_secs(20)).await.unwrap();
    assert!(begin.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code, Some(128 + 15), "{status:?}");
    assert!(matches!(f.runtime.exec(&cfg.id, &run(&["true"]), t).await, Err(RuntimeError::NotRunning { .. })));
    f.runtime.delete(&cfg.id).await.unwrap();
}

#[tokio::test]
async fn user_cwd_readonly_rootfs_hostname_capabilities_and_ulimits_apply() {
    let f = Fixture::new();
    let script = "id -u; id -g; pwd; hostname; cat /etc/hostname; echo $HOME; ulimit -n; ulimit -Hn; \
                  grep CapBnd /proc/self/status | cut -f2; \
                  (touch /rootfile 2>/dev/null && echo rootfs-writable) || echo rootfs-readonly; \
                  (touch /dev/shm/x && echo shm-writable) || echo shm-readonly; \
                  (touch /data/x 2>/dev/null && echo bind-writable) || echo bind-readonly; cat /data/hello; \
                  (touch /scratch/x && echo tmpfs-writable) || echo tmpfs-readonly";
    let mut cfg = f.config("identity", &["sh", "-c", script]);
    let data = f.dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("hello"), "from-the-host\n").unwrap();
    cfg.user = Some("app".into());
    cfg.cwd = Some("/tmp".into());
    cfg.readonly_rootfs = true;
    cfg.hostname = Some("berth-box".into());
    cfg.cap_drop = vec!["NET_RAW".into()];
    cfg.ulimits = vec![Ulimit { name: "nofile".into(), soft: 1234, hard: 2345 }];
    cfg.mounts = vec![
        Mount::Bind { source: data, destination: "/data".into(), readonly: true },
        Mount::Tmpfs { destination: "/scratch".into(), size_mib: Some(4), options: vec![] },
    ];
    f.runtime.start(&cfg).await.unwrap();
    let status = wait(&f.runtime, &cfg.id).await;
    assert_eq!(status.code, Some(0), "{:?}", f.log(&cfg.id));
    let out = f.stdout(&cfg.id);
    assert_eq!(
        out[..8],
        ["1000", "1000", "/tmp", "berth-box", "berth-box", "/home/app", "1234", "2345"].map(String::from),
        "{out:?}"
    );
    let bounding = u64::from_str_radix(&out[8], 16).unwrap();
    assert_eq!(bounding & (1 << 13), 0, "NET_RAW still in the bounding set: {bounding:x}");
    assert_ne!(bounding & 1, 0, "CHOWN (a Docker default) missing: {bounding:x}");
    assert_eq!(bounding & (1 << 21), 0, "SYS_ADMIN must not be a default: {bounding:x}");
    assert_eq!(
        out[9..],
        ["rootfs-readonly", "shm-writable", "bind-readonly", "from-the-host", "tmpfs-writable"].map(String::from),
        "{out:?}"
    );
    f.runtime.delete(&cfg.id).await.unwrap();

    // Root with every capability dropped but CHOWN.
    let mut cfg = f.config("caps", &["sh", "-c", "grep CapEff /proc/self/status | cut -f2"]);
    cfg.cap_drop = vec!["ALL".into()];
    cfg.cap_add = vec!["CHOWN".into()];
    f.runtime.start(&cfg).await.unwrap();
    assert_eq!(wait(&f.runtime, &cfg.id).await.code, Some(0));
    assert_eq!(f.stdout(&cfg.id), vec!["0000000000000001".to_string()]);
    f.runtime.delete(&cfg.id).await.unwrap();
}

#[tokio::test]
async fn bad_configs_are_refused_before_anything_runs() {
    let f = Fixture::new();
    let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap().1;
    let mut cfg = f.config("bad", &["true"]);
    cfg.ulimits = vec![Ulimit { name: "nofile".into(), soft: 1024, hard: host_hard + 1 }];
    let err = f.runtime.start(&cfg).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UlimitAboveHost { name, requested, host, .. }
            if name == "nofile" && *requested == host_hard + 1 && *host == host_hard),
        "{err:?}"
    );
    assert!(err.to_string().contains(&host_hard.to_string()), "{err}");
    let refused = |cfg: ContainerConfig, field: &'static str| {
        let runtime = &f.runtime;
        async move {
            match runtime.start(&cfg).await {
                Err(RuntimeError::InvalidConfig { field: f, .. }) if f == field => {}
                other => panic!("expected InvalidConfig for {field}, got {other:?}"),
            }
            assert_eq!(runtime.state(&cfg.id).await.unwrap(), ContainerState::Missing);
        }
    };
    let mut c = f.config("bad", &["true"]);
    c.ulimits = vec![Ulimit { name: "nofile".into(), soft: 20, hard: 10 }];
    refused(c, "ulimit").await;
    let mut c = f.config("bad", &["true"]);
    c.ulimits = vec![Ulimit { name: "fish".into(), soft: 1, hard: 1 }];
    refused(c, "ulimit").await;
    let mut c = f.config("bad", &["true"]);
    c.user = Some("ghost".into());
    refused(c, "user").await;
    let mut c = f.config("bad", &["true"]);
    c.cap_add = vec!["FLY".into()];
    refused(c, "capability").await;
    let mut c = f.config("bad", &["true"]);
    c.stop_signal = Some("SIGNOPE".into());
    refused(c, "stop signal").await;
    refused(f.config("bad", &[]), "args").await;
    let mut c = f.config("bad", &["true"]);
    c.id = "../escape".into();
    assert!(matches!(f.runtime.start(&c).await, Err(RuntimeError::InvalidId { .. })));
    let runtime = Runtime::new(&f.state_dir(), shim_command()).unwrap().with_init_binary(None);
    let mut c = f.config("bad", &["true"]);
    c.init = true;
    assert!(matches!(runtime.start(&c).await, Err(RuntimeError::NoInitBinary { .. })));
    assert!(matches!(f.runtime.wait("bt-none").await, Err(RuntimeError::NotFound { .. })));
}

#[tokio::test]
async fn containers_nest_in_the_task_cgroup_whose_limit_bounds_them() {
    let f = Fixture::new();
    let hierarchy = Hierarchy::detect().unwrap();
    let task = create_task_cgroup(&format!("bt{}-task", std::process::id()), Some(512), Some(40)).unwrap();
    let mut cfg = f.config("in-task", &["sleep", "1000"]);
    cfg.cgroup_parent = Some(task.path().to_string());
    cfg.resources = Resources {
        cpu_units: Some(256),
        memory_limit_mib: Some(24),
        memory_reservation_mib: Some(16),
        pids_limit: Some(50),
    };
    f.runtime.start(&cfg).await.unwrap();
    let path = format!("{}/{}", task.path(), cfg.id);
    assert!(hierarchy.exists(&path), "no cgroup {path}");
    assert_eq!(hierarchy.memory_limit(&path).unwrap(), Some(24 * MIB));
    assert_eq!(hierarchy.cpu_shares(&path).unwrap(), 256);
    assert!(matches!(task.remove(), Err(crate::cgroups::CgroupError::Busy { .. })));
    f.runtime.kill(&cfg.id, Signal::SIGKILL).await.unwrap();
    wait(&f.runtime, &cfg.id).await;
    // The shim deleted the runc container (and its cgroup) before reporting the exit.
    assert!(!hierarchy.exists(&path));
    f.runtime.delete(&cfg.id).await.unwrap();

    // No container limit: the task's 40 MiB is what stops the allocation.
    let mut cfg = f.config("task-oom", ALLOCATE);
    cfg.cgroup_parent = Some(task.path().to_string());
    f.runtime.start(&cfg).await.unwrap();
    let status = wait(&f.runtime, &cfg.id).await;
    assert!(status.oom_killed, "{status:?}");
    f.runtime.delete(&cfg.id).await.unwrap();
    task.remove().unwrap();
    assert!(!hierarchy.exists(task.path()));
}

#[tokio::test]
async fn network_namespace_hosts_and_dns_files_and_a_shared_pid_namespace() {
    let f = Fixture::new();
    let netns = format!("bt{}-ns", std::process::id());
    let ip = |args: &[&str]| Command::new("ip").args(args).status().expect("iproute2 (ip) must be installed");
    assert!(ip(&["netns", "add", &netns]).success());
    struct DelNetns(String);
    impl Drop for DelNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
        }
    }
    let _netns_guard = DelNetns(netns.clone());

    let mut first = f.config("ns-first", &["sleep", "1000"]);
    first.net_namespace = Namespace::Join(PathBuf::from("/run/netns").join(&netns));
    first.hostname = Some("web".into());
    first.hosts = vec![("db.internal".into(), "10.1.2.3".into())];
    first.dns_servers = vec!["10.0.0.2".into()];
    first.dns_search = vec!["corp.example".into()];
    first.init = true;
    let started = f.runtime.start(&first).await.unwrap();
    let script = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let t = Duration::from_secs(10);
    let check = |s: &'static str| {
        let runtime = &f.runtime;
        let id = first.id.clone();
        async move { runtime.exec(&id, &script(s), t).await.unwrap() }
    };
    // Only loopback in the new namespace; the host's interfaces are not there.
    assert_eq!(check("test $(grep -c : /proc/net/dev) -eq 1 && grep -q lo: /proc/net/dev").await, 0);
    assert_eq!(
        check("grep -q '^10.1.2.3\tdb.internal$' /etc/hosts && grep -q '^127.0.0.1\tlocalhost$' /etc/hosts").await,
        0
    );
    assert_eq!(
        check("test \"$(cat /etc/resolv.conf)\" = \"$(printf 'search corp.example\nnameserver 10.0.0.2')\"").await,
        0
    );
    assert_eq!(check("test \"$HOSTNAME\" = web").await, 0);

    // pidMode task: the second container joins the first's pid namespace and sees its sleep.
    let mut second = f.config("ns-second", &["sh", "-c", "pidof sleep"]);
    second.pid_namespace = Namespace::Join(format!("/proc/{}/ns/pid", started.pid).into());
    f.runtime.start(&second).await.unwrap();
    assert_eq!(wait(&f.runtime, &second.id).await.code, Some(0), "{:?}", f.log(&second.id));
    assert_eq!(f.stdout(&second.id).len(), 1, "{:?}", f.log(&second.id));
    f.runtime.delete(&second.id).await.unwrap();
    f.runtime.stop(&first.id, Duration::from_secs(5)).await.unwrap();
    f.runtime.delete(&first.id).await.unwrap();

    // A private network namespace (ECS `none`): runc's own, with only `lo`, and `lo` up
    // (flags 0x9: IFF_UP | IFF_LOOPBACK).
    let own = f.config(
        "ns-own",
        &["sh", "-c", "grep -c : /proc/net/dev; cat /sys/class/net/lo/flags; hostname; cat /etc/hostname"],
    );
    assert_eq!(own.net_namespace, Namespace::Private);
    f.runtime.start(&own).await.unwrap();
    assert_eq!(wait(&f.runtime, &own.id).await.code, Some(0), "{:?}", f.log(&own.id));
    // No hostname asked for: Docker's default, the id's first 12 characters, in both places.
    let short: String = own.id.chars().take(12).collect();
    assert_eq!(f.stdout(&own.id), ["1", "0x9", &short, &short], "{:?}", f.log(&own.id));
    f.runtime.delete(&own.id).await.unwrap();
}

#[tokio::test]
async fn privileged_gets_every_capability_writable_sys_and_host_devices() {
    let f = Fixture::new();
    let script = "grep CapEff /proc/self/status | cut -f2; \
                  mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted; \
                  test -c /dev/kvm && echo kvm-device; \
                  grep -q ' /sys sysfs rw' /proc/mounts && echo sys-rw";
    let mut cfg = f.config("priv", &["sh", "-c", script]);
    cfg.privileged = true;
    f.runtime.start(&cfg).await.unwrap();
    assert_eq!(wait(&f.runtime, &cfg.id).await.code, Some(0), "{:?}", f.log(&cfg.id));
    let out = f.stdout(&cfg.id);
    let effective = u64::from_str_radix(&out[0], 16).unwrap();
    assert_ne!(effective & (1 << 21), 0, "no SYS_ADMIN: {effective:x}");
    assert_eq!(out[1], "mounted", "{out:?}");
    if Path::new("/dev/kvm").exists() {
        assert!(out.contains(&"kvm-device".to_string()), "{out:?}");
    }
    assert!(out.contains(&"sys-rw".to_string()), "{out:?}");
    f.runtime.delete(&cfg.id).await.unwrap();
}

/// The task engine shares one `Runtime` across tasks on a multi-threaded runtime.
#[test]
fn runtime_is_shareable_and_its_futures_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let f = Fixture::new();
    send_sync(&f.runtime);
    let cfg = f.config("send", &["true"]);
    let d = Duration::from_secs(1);
    send(f.runtime.start(&cfg));
    send(f.runtime.state(&cfg.id));
    send(f.runtime.wait(&cfg.id));
    send(f.runtime.kill(&cfg.id, Signal::SIGTERM));
    send(f.runtime.stop(&cfg.id, d));
    send(f.runtime.exec(&cfg.id, &[], d));
    send(f.runtime.delete(&cfg.id));
}

/// The production launch path, `berth shim ...` with the arguments on the command line.
/// Run: `cargo build -p berth && BERTH_BIN=$PWD/target/debug/berth cargo test -p berth-runtime --lib
/// container::tests::the_berth_binary_is_the_shim -- --ignored`
#[tokio::test]
#[ignore = "needs BERTH_BIN, the built berth binary"]
async fn the_berth_binary_is_the_shim() {
    let bin = PathBuf::from(std::env::var_os("BERTH_BIN").expect("set BERTH_BIN to the berth binary"));
    let f = Fixture::new();
    let shim = ShimCommand { program: bin, args: vec!["shim".into()], args_env: None };
    let runtime = Runtime::new(&f.state_dir(), shim).unwrap();
    let cfg = f.config("prod", &["sh", "-c", "echo via-berth; exit 5"]);
    runtime.start(&cfg).await.unwrap();
    assert_eq!(wait(&runtime, &cfg.id).await.code, Some(5));
    assert_eq!(f.stdout(&cfg.id), vec!["via-berth".to_string()]);
    let shim_log = fs::read_to_string(f.state_dir().join("containers").join(&cfg.id).join("shim.log")).unwrap();
    assert!(shim_log.contains("container exited"), "{shim_log}");
    runtime.delete(&cfg.id).await.unwrap();
}

/// Start latency: `start` call to runc reporting the container running, busybox
/// `sleep`, median of 10. Run:
/// `cargo test -p berth-runtime --release --lib container::tests::start_latency -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark; prints the median start latency"]
async fn start_latency() {
    let f = Fixture::new();
    let mut samples = Vec::new();
    for i in 0..11 {
        let cfg = f.config(&format!("lat{i}"), &["sleep", "1000"]);
        let begin = Instant::now();
        f.runtime.start(&cfg).await.unwrap();
        let took = begin.elapsed();
        if i > 0 {
            samples.push(took); // the first run warms the page cache
        }
        f.runtime.kill(&cfg.id, Signal::SIGKILL).await.unwrap();
        wait(&f.runtime, &cfg.id).await;
        f.runtime.delete(&cfg.id).await.unwrap();
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start latency over {} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}
