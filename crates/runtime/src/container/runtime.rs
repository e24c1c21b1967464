//! The agent side: [`Runtime`] writes bundles, spawns shims and talks to runc.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::shim::{last_runc_error, ShimArgs, REPORT_FAILED, REPORT_STARTED};
use super::spec::{self, host_capabilities, SpecContext};
use super::state::{read_json, write_json_atomic, ContainerDir, Meta};
use super::vm::{self, VmPlan};
use super::{
    etc_files, ContainerConfig, ContainerState, ExitStatus, Namespace, RuntimeError, ShimCommand, Signal, Started,
};
use crate::cgroups::Hierarchy;
use crate::microvm::{self, MicroVm, MicroVmError, Share, VmResources};

/// How long [`Runtime::start`] waits for the shim's report.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a failed start waits for its shim to exit before killing it.
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Runtime::stop`] waits for the exit after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Static init binaries, in order of preference.
const INIT_CANDIDATES: [&str; 4] =
    ["/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/podman/catatonit", "/usr/bin/catatonit"];
/// The longest container id (runc's state directory name is the id).
pub const MAX_ID_LEN: usize = 128;

/// Runs containers under shims; cheap to construct, holds no processes (a new instance
/// on the same state directory sees everything an old one started).
#[derive(Debug)]
pub struct Runtime {
    state_dir: PathBuf,
    shim: ShimCommand,
    runc: PathBuf,
    init_binary: Option<PathBuf>,
    hierarchy: Hierarchy,
    host_capabilities: Vec<&'static str>,
    exec_counter: AtomicU64,
    /// Runs containers whose config asks for a VM.
    microvm: Option<MicroVm>,
}

impl Runtime {
    /// A runtime keeping its state under `state_dir` (created if missing), using `runc`
    /// from `PATH` and the first static init binary found.
    pub fn new(state_dir: &Path, shim: ShimCommand) -> Result<Self, RuntimeError> {
        let runc = find_in_path("runc").ok_or(RuntimeError::RuncNotFound)?;
        let init_binary = INIT_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file());
        for dir in [state_dir.to_path_buf(), state_dir.join("runc"), state_dir.join("containers")] {
            fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io { path: dir.clone(), source })?;
        }
        let state_dir =
            fs::canonicalize(state_dir).map_err(|source| RuntimeError::Io { path: state_dir.to_path_buf(), source })?;
        Ok(Runtime {
            state_dir,
            shim,
            runc,
            init_binary,
            hierarchy: Hierarchy::detect()?,
            host_capabilities: host_capabilities(),
            exec_counter: AtomicU64::new(0),
            microvm: None,
        })
    }

    /// Uses this runc binary instead of the one in `PATH`.
    pub fn with_runc(mut self, runc: PathBuf) -> Self {
        self.runc = runc;
        self
    }

    /// Uses this static init binary for `init: true` containers.
    pub fn with_init_binary(mut self, init: Option<PathBuf>) -> Self {
        self.init_binary = init;
        self
    }

    /// Runs containers whose [`ContainerConfig::vm`] is set in microVMs.
    pub fn with_microvm(mut self, microvm: MicroVm) -> Self {
        self.microvm = Some(microvm);
        self
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn runc_root(&self) -> PathBuf {
        self.state_dir.join("runc")
    }

    fn container_dir(&self, id: &str) -> ContainerDir {
        ContainerDir::new(self.state_dir.join("containers").join(id))
    }

    /// Path of the container's captured output (CRI format, see the module docs); the
    /// previous file after a rotation is this path with `.1` appended.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).log()
    }

    /// Writes the bundle and starts the container through a new shim. Returns once runc
    /// reports the container running, or its error.
    pub async fn start(&self, cfg: &ContainerConfig) -> Result<Started, RuntimeError> {
        validate_id(&cfg.id)?;
        let id = cfg.id.as_str();
        let dir = self.container_dir(id);
        match fs::create_dir(&dir.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists { id: id.into() })
            }
            Err(source) => return Err(RuntimeError::Io { path: dir.dir.clone(), source }),
        }
        match self.spawn_shim(cfg, &dir).await {
            Ok(started) => Ok(started),
            Err(e) => {
                // Nothing of a container that never ran is worth keeping.
                let _ = fs::remove_dir_all(&dir.dir);
                Err(e)
            }
        }
    }

    async fn spawn_shim(&self, cfg: &ContainerConfig, dir: &ContainerDir) -> Result<Started, RuntimeError> {
        let id = cfg.id.as_str();
        let io_err = |path: PathBuf| move |source| RuntimeError::Io { path, source };
        let etc = dir.etc();
        let etc_files = etc_files::build_from_host(cfg);
        let built = spec::build(
            cfg,
            &SpecContext {
                hierarchy: &self.hierarchy,
                init_binary: self.init_binary.as_deref(),
                etc_dir: &etc,
                hostname: &etc_files.hostname,
                host_capabilities: &self.host_capabilities,
            },
        )?;
        etc_files.write(&etc).map_err(io_err(etc.clone()))?;
        built.spec.save(dir.config()).map_err(|source| RuntimeError::Spec { id: id.into(), source })?;
        let vm = match &cfg.vm {
            Some(resources) => Some(self.vm_plan(cfg, resources, dir, &built.spec)?),
            None => None,
        };
        let meta = Meta {
            id: id.into(),
            stop_signal: built.stop_signal.as_str().into(),
            cgroup_path: built.cgroup_path,
            cpu_shares: built.cpu_shares,
            vm,
        };
        write_json_atomic(&dir.meta(), &meta).map_err(io_err(dir.meta()))?;

        // The lock marks the shim alive: taken here, inherited by the shim as its stdin,
        // released by the kernel when the shim exits.
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.lock())
            .map_err(io_err(dir.lock()))?;
        lock_for_child(&lock_file).map_err(|errno| RuntimeError::Io { path: dir.lock(), source: errno.into() })?;
        let shim_log =
            OpenOptions::new().create(true).append(true).open(dir.shim_log()).map_err(io_err(dir.shim_log()))?;

        let shim_args =
            ShimArgs { id: id.into(), bundle: dir.dir.clone(), runc: self.runc.clone(), runc_root: self.runc_root() }
                .to_args();
        let mut cmd = Command::new(&self.shim.program);
        cmd.args(&self.shim.args);
        match &self.shim.args_env {
            Some(var) => {
                cmd.env(var, serde_json::to_string(&shim_args).expect("strings serialize"));
            }
            None => {
                cmd.args(&shim_args);
            }
        }
        cmd.current_dir("/")
            .stdin(Stdio::from(lock_file))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(shim_log))
            .kill_on_drop(false);
        let mut child =
            cmd.spawn().map_err(|source| RuntimeError::SpawnShim { program: self.shim.program.clone(), source })?;
        // Our copy of the locked file closes here; the shim's keeps the lock.
        drop(cmd);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let report = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find(REPORT_STARTED) {
                    return Ok(line[at + REPORT_STARTED.len()..].trim().to_string());
                }
                if let Some(at) = line.find(REPORT_FAILED) {
                    return Err(Some(line[at + REPORT_FAILED.len()..].trim().to_string()));
                }
            }
            Err(None)
        })
        .await;
        let failure = match report {
            Ok(Ok(json)) => {
                return serde_json::from_str::<Started>(&json).map_err(|source| RuntimeError::StateFile {
                    id: id.into(),
                    path: dir.started(),
                    source,
                })
            }
            // The shim has recorded the failure and is exiting.
            Ok(Err(Some(message))) => {
                let _ = tokio::time::timeout(SHIM_EXIT_TIMEOUT, child.wait()).await;
                RuntimeError::StartFailed { id: id.into(), message }
            }
            Ok(Err(None)) => {
                let _ = tokio::time::timeout(SHIM_EXIT_TIMEOUT, child.wait()).await;
                let log = fs::read_to_string(dir.shim_log()).unwrap_or_default();
                let message = format!("the shim exited without reporting: {}", log.trim());
                RuntimeError::StartFailed { id: id.into(), message }
            }
            Err(_) => RuntimeError::StartTimeout { id: id.into(), after: START_TIMEOUT },
        };
        // Whatever state the shim and runc are in, the container is not to run.
        if tokio::time::timeout(SHIM_EXIT_TIMEOUT, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        if self.runc_status(id).await.is_some() {
            self.runc_quiet(&["delete", "--force", id]).await;
        }
        Err(failure)
    }

    /// Writes the guest's bundle (`vm/config.json`) and plans the container's VM.
    fn vm_plan(
        &self,
        cfg: &ContainerConfig,
        resources: &VmResources,
        dir: &ContainerDir,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<VmPlan, RuntimeError> {
        let id = cfg.id.as_str();
        let vm_err = |source| RuntimeError::MicroVm { id: id.into(), source };
        let microvm = self
            .microvm
            .as_ref()
            .ok_or_else(|| vm_err(MicroVmError::Unsupported("a VM on an agent without --isolation microvm".into())))?;
        let host = serde_json::to_value(spec).map_err(|source| RuntimeError::StateFile {
            id: id.into(),
            path: dir.config(),
            source,
        })?;
        let guest = microvm::rewrite_bundle(&host, &dir.dir).map_err(vm_err)?;
        let guest_dir = vm::guest_dir(dir);
        fs::create_dir_all(&guest_dir).map_err(|source| RuntimeError::Io { path: guest_dir.clone(), source })?;
        let path = guest_dir.join("config.json");
        write_json_atomic(&path, &guest).map_err(|source| RuntimeError::Io { path, source })?;
        let shares = vec![
            Share { tag: "root".into(), path: cfg.rootfs.clone() },
            Share { tag: "bundle".into(), path: dir.dir.clone() },
        ];
        let netns = match &cfg.net_namespace {
            Namespace::Join(path) => Some(path.clone()),
            _ => None,
        };
        Ok(VmPlan { launch: microvm.launch(id, resources, shares), netns, cgroup: cfg.cgroup_parent.clone() })
    }

    /// Whether the container runs in a microVM (its signals go through the VM's console).
    fn in_vm(&self, id: &str) -> Result<bool, RuntimeError> {
        let meta: Option<Meta> = self.read_state_file(id, &self.container_dir(id).meta())?;
        Ok(meta.is_some_and(|m| m.vm.is_some()))
    }

    /// The container's current state.
    pub async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        if !dir.dir.is_dir() {
            return Ok(ContainerState::Missing);
        }
        if let Some(status) = self.read_exit(id, &dir)? {
            return Ok(ContainerState::Exited(status));
        }
        let started: Option<Started> = self.read_state_file(id, &dir.started())?;
        if shim_alive(&dir)? {
            return Ok(match started {
                Some(s) => ContainerState::Running { pid: s.pid, started_at: s.started_at },
                None => ContainerState::Starting,
            });
        }
        // The shim writes exit.json before it exits: look again now that it is gone.
        if let Some(status) = self.read_exit(id, &dir)? {
            return Ok(ContainerState::Exited(status));
        }
        // The shim died without recording an exit: ask runc.
        let status = self.runc_status(id).await;
        match (started, status.as_deref()) {
            (Some(s), Some("running" | "paused" | "created")) => {
                Ok(ContainerState::Running { pid: s.pid, started_at: s.started_at })
            }
            (started, _) => Ok(ContainerState::Exited(ExitStatus {
                code: None,
                signal: None,
                oom_killed: false,
                finished_at: chrono::Utc::now(),
                reason: Some(if started.is_some() {
                    "the shim died before the container exited; exit code unknown".into()
                } else {
                    "the shim died before the container started".into()
                }),
            })),
        }
    }

    /// Resolves when the container has exited (also after an agent restart).
    pub async fn wait(&self, id: &str) -> Result<ExitStatus, RuntimeError> {
        let mut interval = Duration::from_millis(10);
        loop {
            match self.state(id).await? {
                ContainerState::Exited(status) => return Ok(status),
                ContainerState::Missing => return Err(RuntimeError::NotFound { id: id.into() }),
                ContainerState::Starting | ContainerState::Running { .. } => {}
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(100));
        }
    }

    /// Sends `signal` to the container's init process.
    pub async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        match self.state(id).await? {
            ContainerState::Missing => return Err(RuntimeError::NotFound { id: id.into() }),
            ContainerState::Exited(_) => return Err(RuntimeError::NotRunning { id: id.into() }),
            ContainerState::Starting | ContainerState::Running { .. } => {}
        }
        if self.in_vm(id)? {
            let dir = self.container_dir(id);
            return match vm::send_signal(&dir, signal.as_str()) {
                Ok(true) => Ok(()),
                Ok(false) => Err(RuntimeError::NotRunning { id: id.into() }),
                Err(source) => Err(RuntimeError::Io { path: vm::control_fifo(&dir), source }),
            };
        }
        match self.runc_output("kill", &["kill", id, signal.as_str()]).await {
            Ok(_) => Ok(()),
            Err(e) => match self.state(id).await? {
                // It exited in between.
                ContainerState::Exited(_) | ContainerState::Missing => Err(RuntimeError::NotRunning { id: id.into() }),
                _ => Err(e),
            },
        }
    }

    /// The stop signal (SIGTERM unless configured), then SIGKILL after `timeout` (ECS
    /// `stopTimeout`), then the exit status.
    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<ExitStatus, RuntimeError> {
        let dir = self.container_dir(id);
        let meta: Option<Meta> = self.read_state_file(id, &dir.meta())?;
        let signal = meta.and_then(|m| spec::parse_signal(&m.stop_signal)).unwrap_or(Signal::SIGTERM);
        match self.kill(id, signal).await {
            Ok(()) | Err(RuntimeError::NotRunning { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Ok(status) = tokio::time::timeout(timeout, self.wait(id)).await {
            return status;
        }
        match self.kill(id, Signal::SIGKILL).await {
            Ok(()) | Err(RuntimeError::NotRunning { .. }) => {}
            Err(e) => return Err(e),
        }
        tokio::time::timeout(KILL_TIMEOUT, self.wait(id))
            .await
            .map_err(|_| RuntimeError::StopTimeout { id: id.into(), after: KILL_TIMEOUT })?
    }

    /// Runs `args` in the running container with the container's env, user, cwd and
    /// capabilities (a health check); returns its exit code. On timeout the process is
    /// SIGKILLed and [`RuntimeError::ExecTimeout`] returned.
    pub async fn exec(&self, id: &str, args: &[String], timeout: Duration) -> Result<i32, RuntimeError> {
        match self.state(id).await? {
            ContainerState::Running { .. } => {}
            ContainerState::Missing => return Err(RuntimeError::NotFound { id: id.into() }),
            _ => return Err(RuntimeError::NotRunning { id: id.into() }),
        }
        if self.in_vm(id)? {
            let what = "exec (health checks) in a microVM".into();
            return Err(RuntimeError::MicroVm { id: id.into(), source: MicroVmError::Unsupported(what) });
        }
        if args.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                id: id.into(),
                field: "exec command",
                value: "[]".into(),
                reason: "no command to run".into(),
            });
        }
        let dir = self.container_dir(id);
        let config: serde_json::Value = match self.read_state_file(id, &dir.config())? {
            Some(v) => v,
            None => return Err(RuntimeError::NotFound { id: id.into() }),
        };
        let mut process = config.get("process").cloned().unwrap_or_default();
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(false);
        let n = self.exec_counter.fetch_add(1, Ordering::Relaxed);
        let stem = format!("exec-{}-{n}", std::process::id());
        let process_file = dir.dir.join(format!("{stem}.json"));
        let pid_file = dir.dir.join(format!("{stem}.pid"));
        write_json_atomic(&process_file, &process)
            .map_err(|source| RuntimeError::Io { path: process_file.clone(), source })?;
        let mut cmd = self.runc_command();
        cmd.arg("exec").arg("--process").arg(&process_file).arg("--pid-file").arg(&pid_file).arg(id);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        let result = async {
            let mut child = cmd.spawn().map_err(|source| RuntimeError::Io { path: self.runc.clone(), source })?;
            match tokio::time::timeout(timeout, child.wait()).await {
                // runc exec exits with the process's code (255 when runc itself failed).
                Ok(Ok(status)) => Ok(status.code().unwrap_or(-1)),
                Ok(Err(source)) => Err(RuntimeError::Io { path: self.runc.clone(), source }),
                Err(_) => {
                    // Kill the process first, so that runc exec (its parent) reaps it and
                    // exits; only then runc exec itself if it is still there.
                    let pid = fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
                    if let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    Err(RuntimeError::ExecTimeout { id: id.into(), args: args.to_vec(), timeout })
                }
            }
        }
        .await;
        let _ = fs::remove_file(&process_file);
        let _ = fs::remove_file(&pid_file);
        result
    }

    /// Removes the container from runc and its state directory (logs included). Refused
    /// while it runs.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self.state(id).await? {
            ContainerState::Missing => return Ok(()),
            ContainerState::Exited(_) => {}
            ContainerState::Starting | ContainerState::Running { .. } => {
                return Err(RuntimeError::StillRunning { id: id.into() })
            }
        }
        if self.runc_status(id).await.is_some() {
            self.runc_output("delete", &["delete", "--force", id]).await?;
        }
        let dir = self.container_dir(id);
        fs::remove_dir_all(&dir.dir).map_err(|source| RuntimeError::Io { path: dir.dir.clone(), source })
    }

    /// Every container in the state directory, sorted.
    pub fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let dir = self.state_dir.join("containers");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|source| RuntimeError::Io { path: dir.clone(), source })? {
            let entry = entry.map_err(|source| RuntimeError::Io { path: dir.clone(), source })?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if let Some(name) = entry.file_name().to_str() {
                    if validate_id(name).is_ok() {
                        ids.push(name.to_string());
                    }
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn read_exit(&self, id: &str, dir: &ContainerDir) -> Result<Option<ExitStatus>, RuntimeError> {
        self.read_state_file(id, &dir.exit())
    }

    fn read_state_file<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        path: &Path,
    ) -> Result<Option<T>, RuntimeError> {
        match read_json::<T>(path) {
            Ok(None) => Ok(None),
            Ok(Some(Ok(v))) => Ok(Some(v)),
            Ok(Some(Err(source))) => Err(RuntimeError::StateFile { id: id.into(), path: path.into(), source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RuntimeError::Io { path: path.into(), source }),
        }
    }

    fn runc_command(&self) -> Command {
        let mut cmd = Command::new(&self.runc);
        cmd.arg("--root").arg(self.runc_root());
        cmd
    }

    async fn runc_output(&self, command: &'static str, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let id = args.last().copied().unwrap_or_default();
        let out = self
            .runc_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| RuntimeError::Io { path: self.runc.clone(), source })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = last_runc_error(&stderr).unwrap_or_else(|| stderr.trim().to_string());
        Err(RuntimeError::Runc { id: id.into(), command, message })
    }

    async fn runc_quiet(&self, args: &[&str]) {
        if let Err(e) = self.runc_output("cleanup", args).await {
            tracing::warn!(error = %e, "runc clean-up");
        }
    }

    /// runc's status string for `id` (`created`, `running`, `stopped`, ...), `None` when
    /// runc does not know it.
    async fn runc_status(&self, id: &str) -> Option<String> {
        let out = self.runc_output("state", &["state", id]).await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
        v.get("status").and_then(|s| s.as_str()).map(String::from)
    }
}

/// Whether the shim still holds its lock.
fn shim_alive(dir: &ContainerDir) -> Result<bool, RuntimeError> {
    let file = match File::open(dir.lock()) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(RuntimeError::Io { path: dir.lock(), source }),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => Ok(false),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, errno)) => Err(RuntimeError::Io { path: dir.lock(), source: errno.into() }),
    }
}

fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let reason = if id.is_empty() {
        "empty"
    } else if id.len() > MAX_ID_LEN {
        "longer than 128 characters"
    } else if id.starts_with('.') {
        "starts with '.'"
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(RuntimeError::InvalidId { id: id.into(), reason })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Takes the exclusive `flock` that a shim inherits through its stdin. `nix::fcntl::Flock`
/// would unlock on drop, which (the lock belonging to the open file description shared
/// with the child) would release the shim's lock too; hence the plain `flock(2)` call.
#[allow(deprecated)]
fn lock_for_child(file: &File) -> Result<(), nix::errno::Errno> {
    use std::os::fd::AsRawFd;
    nix::fcntl::flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock)
}
