//! The per-container shim: `berth shim --id ID --bundle DIR --runc PATH --runc-root DIR`.
//!
//! It runs `runc run --detach` (create and start in one runc process) with the
//! container's stdout/stderr on pipes it holds, copies the output into the container
//! log, reaps the container's init (it is a child subreaper), records the exit status
//! and exits. Its stdout is the start report to the runtime (one line, then
//! `/dev/null`); its stdin is the runtime's locked `shim.lock` (held open, never read)
//! that marks the shim alive; its stderr is `shim.log`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::logfile::{pump, LogFile, Stream, LOG_MAX_BYTES, LOG_MAX_LINE};
use super::state::{read_json, write_json_atomic, ContainerDir, Meta};
use super::vm::{self, Console, Vm, VmPlan};
use super::{ExitStatus, Started};
use crate::cgroups::Hierarchy;

/// First word of the shim's report line when the container is running.
pub(crate) const REPORT_STARTED: &str = "berth-shim-started";
/// First word of the shim's report line when it could not start the container.
pub(crate) const REPORT_FAILED: &str = "berth-shim-failed";
/// How long the shim waits for the output pipes to close after the init exited (a
/// process outside the container's pid namespace could hold them open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of the shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim: bad arguments {args:?}: {reason}")]
    Args { args: Vec<String>, reason: String },
    #[error("shim: {what}: {source}")]
    Sys { what: &'static str, source: Errno },
    #[error("shim: {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("shim: running {program}: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("shim: container {id} failed to start: {message}")]
    Start { id: String, message: String },
}

/// The shim's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub id: String,
    /// The container directory (the OCI bundle).
    pub bundle: PathBuf,
    pub runc: PathBuf,
    /// runc's `--root`.
    pub runc_root: PathBuf,
}

impl ShimArgs {
    /// The command-line form, parsed back by [`ShimArgs::parse`].
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--id".into(),
            self.id.clone(),
            "--bundle".into(),
            self.bundle.to_string_lossy().into_owned(),
            "--runc".into(),
            self.runc.to_string_lossy().into_owned(),
            "--runc-root".into(),
            self.runc_root.to_string_lossy().into_owned(),
        ]
    }

    /// Parses `--id ID --bundle DIR --runc PATH --runc-root DIR` (any order).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, ShimError> {
        let args: Vec<String> = args.into_iter().collect();
        let bad = |reason: String| ShimError::Args { args: args.clone(), reason };
        let (mut id, mut bundle, mut runc, mut runc_root) = (None, None, None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let slot = match flag.as_str() {
                "--id" => &mut id,
                "--bundle" => &mut bundle,
                "--runc" => &mut runc,
                "--runc-root" => &mut runc_root,
                other => return Err(bad(format!("unknown argument {other:?}"))),
            };
            *slot = Some(it.next().ok_or_else(|| bad(format!("{flag} needs a value")))?.clone());
        }
        let need = |v: Option<String>, name: &str| v.ok_or_else(|| bad(format!("missing {name}")));
        Ok(ShimArgs {
            id: need(id, "--id")?,
            bundle: need(bundle, "--bundle")?.into(),
            runc: need(runc, "--runc")?.into(),
            runc_root: need(runc_root, "--runc-root")?.into(),
        })
    }

    /// Parses the JSON array form passed through [`ShimCommand::args_env`](super::ShimCommand::args_env).
    pub fn from_json(json: &str) -> Result<Self, ShimError> {
        let args: Vec<String> = serde_json::from_str(json).map_err(|e| ShimError::Args {
            args: vec![json.into()],
            reason: format!("not a JSON string array: {e}"),
        })?;
        Self::parse(args)
    }
}

/// Runs the shim until the container has exited and its status is recorded.
pub fn shim_main(args: ShimArgs) -> Result<(), ShimError> {
    // Own session: no controlling terminal, not in the agent's process group. EPERM only
    // means we already lead a group, which a launcher may have arranged.
    let _ = nix::unistd::setsid();
    let mut blocked = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT] {
        blocked.add(s);
    }
    // Children get an empty mask (std resets it), so this only protects the shim.
    blocked.thread_block().map_err(|source| ShimError::Sys { what: "blocking signals", source })?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|source| ShimError::Sys { what: "PR_SET_CHILD_SUBREAPER", source })?;
    let mut shim = Shim { dir: ContainerDir::new(args.bundle.clone()), args, reported: false, in_vm: false };
    let result = shim.run();
    if let Err(e) = &result {
        tracing::error!(error = %e, "shim failed");
        let message = match e {
            ShimError::Start { message, .. } => message.clone(),
            other => other.to_string(),
        };
        shim.report(&format!("{REPORT_FAILED} {}", message.replace('\n', " ")));
    }
    result
}

struct Shim {
    args: ShimArgs,
    dir: ContainerDir,
    reported: bool,
    /// The container runs in a microVM (no runc container on the host to clean up).
    in_vm: bool,
}

impl Shim {
    fn run(&mut self) -> Result<(), ShimError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ShimError::Io { path, source }
        };
        let meta: Meta = match read_json(&self.dir.meta()).map_err(io_err(&self.dir.meta()))? {
            Some(Ok(meta)) => meta,
            Some(Err(e)) => return Err(ShimError::Io { path: self.dir.meta(), source: io::Error::other(e) }),
            None => return Err(ShimError::Io { path: self.dir.meta(), source: io::ErrorKind::NotFound.into() }),
        };
        let log = Arc::new(Mutex::new(LogFile::open(&self.dir.log(), LOG_MAX_BYTES).map_err(io_err(&self.dir.log()))?));
        if let Some(plan) = &meta.vm {
            self.in_vm = true;
            return self.run_vm(plan, &log);
        }

        let (out_r, out_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| ShimError::Sys { what: "pipe", source })?;
        let (err_r, err_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| ShimError::Sys { what: "pipe", source })?;
        let run = {
            // The Command owns the write ends; dropping it at the end of this block closes
            // the shim's copies so the readers see EOF when the container's are closed.
            // `run --detach` is `create` + `start` in one runc process: it returns once the
            // container's process runs, leaving the init to the shim (a subreaper).
            let mut cmd = self.runc();
            cmd.arg("run")
                .arg("--detach")
                .arg("--bundle")
                .arg(&self.dir.dir)
                .arg("--pid-file")
                .arg(self.dir.init_pid())
                .arg(&self.args.id)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out_w))
                .stderr(Stdio::from(err_w));
            cmd.spawn()
        };
        let (done_tx, done_rx) = mpsc::channel();
        for (reader, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
            let log = Arc::clone(&log);
            let done = done_tx.clone();
            thread::spawn(move || {
                pump(File::from(reader), stream, &log, LOG_MAX_LINE);
                let _ = done.send(());
            });
        }
        drop(done_tx);
        // Read while runc runs, off the start's critical path.
        let hierarchy = Hierarchy::detect()
            .map_err(|e| tracing::warn!(error = %e, "no cgroup hierarchy; OOM kills will not be detected"))
            .ok();
        let drain = |timeout: Duration| {
            let deadline = Instant::now() + timeout;
            for _ in 0..2 {
                let left = deadline.saturating_duration_since(Instant::now());
                if done_rx.recv_timeout(left).is_err() {
                    tracing::warn!("container output still open after the init exited; log may be incomplete");
                    break;
                }
            }
        };

        let mut run = run.map_err(|source| ShimError::Spawn { program: self.args.runc.clone(), source })?;
        let status = run.wait().map_err(|source| ShimError::Spawn { program: self.args.runc.clone(), source })?;
        if !status.success() {
            let message = self.runc_error("run", &status.to_string());
            return Err(self.fail(message, drain));
        }
        if let Err(message) = apply_cpu_shares(hierarchy.as_ref(), &meta) {
            return Err(self.fail(message, drain));
        }
        let pid_text = fs::read_to_string(self.dir.init_pid()).map_err(io_err(&self.dir.init_pid()))?;
        let pid: i32 = pid_text.trim().parse().map_err(|_| ShimError::Io {
            path: self.dir.init_pid(),
            source: io::Error::other(format!("bad pid {pid_text:?}")),
        })?;
        self.record_started(pid as u32)?;
        tracing::info!(id = %self.args.id, pid, "container running");

        let (code, signal) = wait_for_init(Pid::from_raw(pid));
        let oom_kills = match &hierarchy {
            Some(h) => h.oom_kills(&meta.cgroup_path).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the OOM kill count");
                0
            }),
            None => 0,
        };
        self.runc_delete();
        drain(DRAIN_TIMEOUT);
        let reason = match code {
            None => Some("the container's init was not a child of the shim; exit code unknown".to_string()),
            Some(_) => None,
        };
        let status = ExitStatus {
            code,
            signal: signal.map(|s| s.as_str().to_string()),
            oom_killed: oom_kills > 0,
            finished_at: Utc::now(),
            reason,
        };
        write_json_atomic(&self.dir.exit(), &status).map_err(io_err(&self.dir.exit()))?;
        tracing::info!(id = %self.args.id, ?status, "container exited");
        Ok(())
    }

    /// Runs the container in its microVM (see `vm.rs`) until its exit is recorded.
    fn run_vm(&mut self, plan: &VmPlan, log: &Arc<Mutex<LogFile>>) -> Result<(), ShimError> {
        let vm = match Vm::start(plan, &self.dir, log) {
            Ok(vm) => vm,
            Err(message) => return Err(self.fail(message, |_| {})),
        };
        let (mut started, mut failures) = (false, Vec::new());
        let exit = loop {
            match vm.events.recv() {
                Ok(Some(Console::Ready)) => {
                    tracing::info!(id = %self.args.id, boot = ?vm.spawned_at.elapsed(), "microVM booted");
                }
                Ok(Some(Console::Started)) if !started => {
                    started = true;
                    self.record_started(vm.pid())?;
                }
                Ok(Some(Console::Started)) => {}
                Ok(Some(Console::Failed(why))) => failures.push(why),
                Ok(Some(Console::Exit(code))) => break Some(code),
                Ok(None) | Err(_) => break None,
            }
        };
        let pid = vm.pid();
        vm.finish();
        let guest_runc_error =
            fs::read_to_string(vm::guest_dir(&self.dir).join("runc.log")).ok().and_then(|text| last_runc_error(&text));
        if !started {
            // A container that exits at once can end before the init sees it running:
            // only runc's own error (or a failed boot) makes this a start failure.
            if let Some(message) = guest_runc_error.or_else(|| exit.is_none().then(|| failures.join("; "))) {
                let message = if message.is_empty() { self.vm_ended_reason() } else { message };
                return Err(self.fail(message, |_| {}));
            }
            self.record_started(pid)?;
        }
        let signal = exit.filter(|code| *code > 128).and_then(|code| Signal::try_from(code - 128).ok());
        let status = ExitStatus {
            code: exit,
            signal: signal.map(|s| s.as_str().to_string()),
            oom_killed: false,
            finished_at: Utc::now(),
            reason: exit.is_none().then(|| self.vm_ended_reason()),
        };
        write_json_atomic(&self.dir.exit(), &status)
            .map_err(|source| ShimError::Io { path: self.dir.exit(), source })?;
        tracing::info!(id = %self.args.id, ?status, "container exited");
        Ok(())
    }

    /// Why a VM ended without the container's exit: the end of qemu's own output.
    fn vm_ended_reason(&self) -> String {
        let qemu = fs::read_to_string(self.dir.dir.join("qemu.log")).unwrap_or_default();
        let tail: Vec<&str> = qemu.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("the microVM ended before the container exited: {}", tail.join(" / "))
            .trim_end_matches(": ")
            .to_string()
    }

    /// Writes `started.json` and reports the container running.
    fn record_started(&mut self, pid: u32) -> Result<(), ShimError> {
        let started = Started { pid, started_at: Utc::now() };
        write_json_atomic(&self.dir.started(), &started)
            .map_err(|source| ShimError::Io { path: self.dir.started(), source })?;
        let report = serde_json::to_string(&started).expect("Started serializes");
        self.report(&format!("{REPORT_STARTED} {report}"));
        Ok(())
    }

    /// Records a start failure: removes what runc made, drains the output, writes
    /// `exit.json` with the reason. The caller reports it.
    fn fail(&mut self, message: String, drain: impl FnOnce(Duration)) -> ShimError {
        if !self.in_vm {
            self.runc_delete();
        }
        drain(Duration::from_millis(500));
        let status = ExitStatus {
            code: None,
            signal: None,
            oom_killed: false,
            finished_at: Utc::now(),
            reason: Some(message.clone()),
        };
        if let Err(e) = write_json_atomic(&self.dir.exit(), &status) {
            tracing::error!(error = %e, "writing exit.json");
        }
        ShimError::Start { id: self.args.id.clone(), message }
    }

    fn runc(&self) -> Command {
        let mut cmd = Command::new(&self.args.runc);
        cmd.arg("--root")
            .arg(&self.args.runc_root)
            .arg("--log")
            .arg(self.dir.runc_log())
            .arg("--log-format")
            .arg("json");
        cmd
    }

    fn runc_delete(&self) {
        let result = self
            .runc()
            .args(["delete", "--force", &self.args.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr), "runc delete failed"),
            Err(e) => tracing::warn!(error = %e, "running runc delete"),
        }
    }

    /// runc's last error message from its JSON log, or a fallback naming the status.
    fn runc_error(&self, command: &str, status: &str) -> String {
        let text = fs::read_to_string(self.dir.runc_log()).unwrap_or_default();
        last_runc_error(&text).unwrap_or_else(|| format!("runc {command} failed ({status})"))
    }

    /// Writes the one report line to stdout, then points stdout at /dev/null so nothing
    /// else (and no dead reader) is ever involved again.
    fn report(&mut self, line: &str) {
        if self.reported {
            return;
        }
        self.reported = true;
        {
            let mut out = io::stdout().lock();
            // On a line of its own, whatever a launcher (a test harness) printed before.
            let _ = writeln!(out, "\n{line}");
            let _ = out.flush();
        }
        if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
}

/// Gives the running container the CPU weight its spec leaves out (see
/// `BuiltSpec::cpu_shares`), before it is reported running.
fn apply_cpu_shares(hierarchy: Option<&Hierarchy>, meta: &Meta) -> Result<(), String> {
    let Some(shares) = meta.cpu_shares else { return Ok(()) };
    let hierarchy = hierarchy.ok_or("no cgroup hierarchy to set the container's CPU shares in")?;
    hierarchy.set_cpu_shares(&meta.cgroup_path, shares).map_err(|e| format!("setting the container's CPU shares: {e}"))
}

/// The last `error`/`fatal` message in runc's JSON log.
pub(crate) fn last_runc_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v.get("level").and_then(|l| l.as_str()), Some("error" | "fatal")))
        .find_map(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
}

/// Waits for the container's init (reparented to the shim, a subreaper) and decodes its
/// status as `(code, signal)`; `code` is `128 + n` for signal n, `None` if the init
/// could not be waited for.
fn wait_for_init(pid: Pid) -> (Option<i32>, Option<Signal>) {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return (Some(code), None),
            Ok(WaitStatus::Signaled(_, signal, _)) => return (Some(128 + signal as i32), Some(signal)),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, %pid, "waitpid on the container init; polling /proc instead");
                while Path::new(&format!("/proc/{pid}")).exists() {
                    thread::sleep(Duration::from_millis(100));
                }
                return (None, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let args = ShimArgs {
            id: "t-1".into(),
            bundle: "/var/lib/berth/containers/t-1".into(),
            runc: "/usr/sbin/runc".into(),
            runc_root: "/var/lib/berth/runc".into(),
        };
        assert_eq!(ShimArgs::parse(args.to_args()).unwrap(), args);
        let json = serde_json::to_string(&args.to_args()).unwrap();
        assert_eq!(ShimArgs::from_json(&json).unwrap(), args);
        assert!(ShimArgs::parse(vec!["--id".to_string()]).is_err());
        assert!(ShimArgs::parse(vec!["--what".to_string(), "x".to_string()]).is_err());
    }

    #[test]
    fn runc_errors_come_from_the_json_log() {
        let log = r#"{"level":"warning","msg":"meh","time":"t"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"t"}
"#;
        assert!(last_runc_error(log).unwrap().contains("executable file not found"));
        assert_eq!(last_runc_error("not json"), None);
    }
}
