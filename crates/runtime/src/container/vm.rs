//! The shim's microVM mode: the container runs in its own qemu guest (see
//! [`crate::microvm`]). The shim sets up the guest's tap in the task's network
//! namespace, starts qemu there (in the task's cgroup), reads the init's console lines,
//! forwards signals written to the `vm.ctl` FIFO to the console, and copies the
//! container's output (files the guest writes in the bundle share) into the container
//! log. The state files are the ones a runc container's shim writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::logfile::{pump, LogFile, Stream, LOG_MAX_LINE};
use super::state::ContainerDir;
use crate::cgroups::Hierarchy;
use crate::microvm::{GuestNetwork, VmLaunch, CONSOLE_PREFIX};

/// How long qemu gets to end by itself after the final console line.
const POWEROFF_GRACE: Duration = Duration::from_secs(2);
/// How often a log follower looks for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// How a container's VM is run (kept in `container.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VmPlan {
    pub launch: VmLaunch,
    /// The task's network namespace (`/run/netns/<name>`), where qemu runs.
    pub netns: Option<PathBuf>,
    /// The task cgroup qemu joins.
    pub cgroup: Option<String>,
}

/// What the guest init said on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Console {
    Ready,
    Started,
    Exit(i32),
    Failed(String),
}

impl Console {
    pub fn parse(line: &str) -> Option<Console> {
        let at = line.find(CONSOLE_PREFIX)?;
        let rest = line[at + CONSOLE_PREFIX.len()..].trim();
        let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        match word {
            "READY" => Some(Console::Ready),
            "STARTED" => Some(Console::Started),
            "EXIT" => arg.trim().parse().ok().map(Console::Exit),
            "FAILED" => Some(Console::Failed(arg.to_string())),
            _ => None,
        }
    }
}

/// Paths of the VM's files in the container directory.
pub(crate) fn guest_dir(dir: &ContainerDir) -> PathBuf {
    dir.dir.join("vm")
}
pub(crate) fn control_fifo(dir: &ContainerDir) -> PathBuf {
    dir.dir.join("vm.ctl")
}

/// A running VM: qemu, its console events, and the output followers.
pub(crate) struct Vm {
    child: Child,
    pub events: mpsc::Receiver<Option<Console>>,
    followers_done: Arc<AtomicBool>,
    followers: Vec<thread::JoinHandle<()>>,
    pub spawned_at: Instant,
}

impl Vm {
    /// Sets up the tap, starts qemu and the threads around it.
    pub fn start(plan: &VmPlan, dir: &ContainerDir, log: &Arc<Mutex<LogFile>>) -> Result<Vm, String> {
        if let (Some(netns), Some(net)) = (&plan.netns, &plan.launch.network) {
            set_up_tap(netns, net)?;
        }
        let guest = guest_dir(dir);
        let followers_done = Arc::new(AtomicBool::new(false));
        let mut followers = Vec::new();
        for (name, stream) in [("stdout", Stream::Stdout), ("stderr", Stream::Stderr)] {
            let path = guest.join(name);
            // Created here (empty) so the follower can open it before the guest writes.
            let file =
                File::create(&path).and_then(|_| File::open(&path)).map_err(|e| format!("{}: {e}", path.display()))?;
            let (log, done) = (Arc::clone(log), Arc::clone(&followers_done));
            followers.push(thread::spawn(move || pump(Follow { file, done }, stream, &log, LOG_MAX_LINE)));
        }
        let fifo = control_fifo(dir);
        let _ = fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("mkfifo {}: {e}", fifo.display()))?;
        // Read and write: the FIFO never reads EOF while the shim lives.
        let control =
            OpenOptions::new().read(true).write(true).open(&fifo).map_err(|e| format!("{}: {e}", fifo.display()))?;
        let qemu_log = dir.dir.join("qemu.log");
        let qemu_log = File::create(&qemu_log).map_err(|e| format!("{}: {e}", qemu_log.display()))?;
        let mut cmd = match &plan.netns {
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &netns_name(netns)?]).arg(&plan.launch.qemu);
                cmd
            }
            None => Command::new(&plan.launch.qemu),
        };
        cmd.args(plan.launch.args()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(qemu_log);
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("starting qemu: {e}"))?;
        if let Some(cgroup) = &plan.cgroup {
            let joined = Hierarchy::detect().and_then(|h| h.add_process(cgroup, child.id()));
            if let Err(e) = joined {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("moving qemu into the task cgroup {cgroup}: {e}"));
            }
        }
        let stdin = child.stdin.take().expect("piped stdin");
        thread::spawn(move || forward_signals(control, stdin));
        let stdout = child.stdout.take().expect("piped stdout");
        let console_log = dir.dir.join("console.log");
        let (tx, events) = mpsc::channel();
        thread::spawn(move || read_console(stdout, &console_log, tx));
        Ok(Vm { child, events, followers_done, followers, spawned_at })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends qemu (the init powers off, which qemu does not always follow), then lets the
    /// output followers read to the end.
    pub fn finish(mut self) {
        let deadline = Instant::now() + POWEROFF_GRACE;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.followers_done.store(true, Ordering::SeqCst);
        for f in self.followers {
            let _ = f.join();
        }
    }
}

/// The name `ip netns` knows a `/run/netns/<name>` namespace by.
fn netns_name(path: &Path) -> Result<String, String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| format!("bad network namespace path {}", path.display()))
}

/// A tap for the guest in the task's namespace, and tc `mirred` redirects between it and
/// the task's interface both ways, so the guest's eth0 stands in for the task's.
fn set_up_tap(netns: &Path, net: &GuestNetwork) -> Result<(), String> {
    let ns = netns_name(netns)?;
    let (tap, interface) = (net.tap.as_str(), net.interface.as_str());
    let mut commands: Vec<Vec<&str>> =
        vec![vec!["ip", "tuntap", "add", "dev", tap, "mode", "tap"], vec!["ip", "link", "set", tap, "up"]];
    for (from, to) in [(interface, tap), (tap, interface)] {
        commands.push(vec!["tc", "qdisc", "add", "dev", from, "ingress"]);
        commands.push(vec![
            "tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0",
            "action", "mirred", "egress", "redirect", "dev", to,
        ]);
    }
    for args in commands {
        // `ip -n NS` and `tc -n NS` run the command in the task's namespace.
        let out = Command::new(args[0])
            .args(["-n", &ns])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", args[0]))?;
        if !out.status.success() {
            return Err(format!(
                "{} -n {ns} {}: {}",
                args[0],
                args[1..].join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Copies signal names written to the control FIFO to the guest's console.
fn forward_signals(control: File, mut console: ChildStdin) {
    for line in BufReader::new(control).lines().map_while(Result::ok) {
        if console.write_all(format!("{}\n", line.trim()).as_bytes()).and_then(|()| console.flush()).is_err() {
            return;
        }
    }
}

/// Sends each control line of the console; `None` when the console closed. Everything
/// is kept in `console.log` (the guest kernel's messages on a failed boot).
fn read_console(stdout: impl Read, log_path: &Path, events: mpsc::Sender<Option<Console>>) {
    let mut log = File::create(log_path).ok();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "{line}");
        }
        if let Some(event) = Console::parse(&line) {
            let _ = events.send(Some(event));
        }
    }
    let _ = events.send(None);
}

/// Reads a file that another writer (the guest, over 9p) appends to: at its end it
/// waits for more until `done`, then reads what is left and ends.
struct Follow {
    file: File,
    done: Arc<AtomicBool>,
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let finished = self.done.load(Ordering::SeqCst);
            let n = self.file.read(buf)?;
            if n > 0 || finished {
                return Ok(n);
            }
            thread::sleep(FOLLOW_POLL);
        }
    }
}

/// Writes `signal` to a running VM container's control FIFO; `Ok(false)` when no shim
/// reads it any more.
pub(crate) fn send_signal(dir: &ContainerDir, signal: &str) -> io::Result<bool> {
    let fifo = OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(control_fifo(dir));
    match fifo {
        Ok(mut f) => f.write_all(format!("{signal}\n").as_bytes()).map(|()| true),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) || e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_parse_wherever_the_prefix_starts() {
        assert_eq!(Console::parse("@@berth READY"), Some(Console::Ready));
        assert_eq!(Console::parse("\r[ 1.2] x @@berth STARTED"), Some(Console::Started));
        assert_eq!(Console::parse("@@berth EXIT 137"), Some(Console::Exit(137)));
        assert_eq!(
            Console::parse("@@berth FAILED mounting share root"),
            Some(Console::Failed("mounting share root".into()))
        );
        assert_eq!(Console::parse("@@berth EXIT x"), None);
        assert_eq!(Console::parse("hello"), None);
    }
}
