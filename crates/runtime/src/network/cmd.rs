//! Running the host tools (`ip`, `iptables-save`, `iptables-restore`) and the CNI plugins.

use std::ffi::{OsStr, OsString};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::NetworkError;

/// How long one tool or plugin run may take before it is killed.
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);

/// The agent's `PATH` with the sbin directories appended when missing: `ip` and `iptables`
/// live there, and the CNI plugins exec `iptables` through `PATH` too.
pub(super) fn tool_path() -> OsString {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    let present: Vec<_> = std::env::split_paths(&path).collect();
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !present.iter().any(|p| p.as_os_str() == dir) {
            if !path.is_empty() {
                path.push(":");
            }
            path.push(dir);
        }
    }
    path
}

/// A command with the tool `PATH`, no stdin unless given, killed if the caller goes away.
pub(super) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", tool_path()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// Spawn `cmd`, feed it `stdin`, and collect its output within [`TIMEOUT`].
/// `what` names the command in errors.
pub(super) async fn output(mut cmd: Command, stdin: Option<&[u8]>, what: &str) -> Result<Output, NetworkError> {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let fail = |reason: String| NetworkError::Command { command: what.to_string(), reason };
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A plugin that exits without reading stdin closes the pipe: its exit status tells why.
        let _ = pipe.write_all(input).await;
        drop(pipe);
    }
    match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(fail(format!("waiting for it: {e}"))),
        Err(_) => Err(fail(format!("no answer within {}s (killed)", TIMEOUT.as_secs()))),
    }
}

/// Run a host tool that must succeed; its stdout on success, its stderr in the error.
pub(super) async fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, NetworkError> {
    let what = format!("{program} {}", args.join(" "));
    let mut cmd = command(program);
    cmd.args(args);
    let out = output(cmd, stdin, &what).await?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(NetworkError::Command {
            command: what,
            reason: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}
