//! Launching a berth server for the bench, and reading the credentials a server writes.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// How long a server may take to print its listen line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// What the server prints on stdout once it accepts connections.
const LISTEN_PREFIX: &str = "berth: listening on ";

/// `admin-credentials.json`, as the server writes it into its data dir.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The administrator's access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The region to sign for.
    pub region: String,
    /// `http://HOST:PORT`.
    pub endpoint: String,
    /// The account the server's ARNs use.
    #[serde(default)]
    pub account_id: String,
}

impl Credentials {
    /// Reads a credentials file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// A berth server this process started on a fresh data dir; killed and cleaned up on drop.
pub struct Server {
    child: Child,
    root: PathBuf,
    /// Where the server was started from.
    pub binary: PathBuf,
    /// The endpoint from the server's listen line.
    pub endpoint: String,
    /// The credentials the server wrote.
    pub credentials: Credentials,
}

impl Server {
    /// Starts `binary server` on a fresh temporary data dir and waits for its listen line.
    pub fn start(binary: &Path) -> Result<Self> {
        Self::start_with(binary, &[])
    }

    /// [`Server::start`] with more `berth server` flags.
    pub fn start_with(binary: &Path, flags: &[&str]) -> Result<Self> {
        let root = fresh_dir()?;
        let mut child = match spawn(binary, &root, flags) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        let stdout = child.stdout.take();
        // Constructed now so that any failure below still kills the child and removes the dir.
        let mut server = Self {
            child,
            root,
            binary: binary.to_path_buf(),
            endpoint: String::new(),
            credentials: Credentials::default(),
        };
        let stdout = stdout.context("no stdout pipe")?;
        server.endpoint = wait_for_listen_line(stdout).map_err(|e| e.context(server.log_tail()))?;
        server.credentials = Credentials::read(&server.root.join("data/admin-credentials.json"))?;
        Ok(server)
    }

    /// The server process's CPU time so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.child.id())).context("reading the server's stat")?;
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime (fields 14 and 15 of stat(5)), in USER_HZ (100 on Linux).
        Ok((ticks(11) + ticks(12)) / 100.0)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("server log ({}):\n{tail}", self.root.join("server.log").display())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Runs `binary server` with its data in `root/data` and its log in `root/server.log`.
fn spawn(binary: &Path, root: &Path, flags: &[&str]) -> Result<Child> {
    let log = File::create(root.join("server.log")).context("creating the server log")?;
    Command::new(binary)
        .arg("server")
        .arg("--data-dir")
        .arg(root.join("data"))
        .args(["--listen", "127.0.0.1:0", "--no-profile"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// Reads the server's stdout until the listen line and returns its endpoint; a thread keeps
/// draining stdout afterwards so that the server never blocks on a full pipe.
fn wait_for_listen_line(stdout: impl Read + Send + 'static) -> Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(endpoint) = parse_listen_line(&line) {
                let _ = tx.send(endpoint);
                break;
            }
        }
        drop(tx);
        lines.for_each(drop);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(endpoint) => Ok(endpoint),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            bail!("no listen line from the server within {START_TIMEOUT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            bail!("the server exited before it was listening")
        }
    }
}

/// The endpoint in `berth: listening on http://HOST:PORT`.
fn parse_listen_line(line: &str) -> Option<String> {
    let endpoint = line.trim().strip_prefix(LISTEN_PREFIX)?;
    endpoint.starts_with("http://").then(|| endpoint.to_string())
}

/// A new, empty directory under the system temp dir.
fn fresh_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("berth-bench-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `binary --version`, trimmed (`berth 0.1.0`).
pub fn version(binary: &Path) -> Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    if !out.status.success() {
        bail!("{} --version failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_line_parses() {
        assert_eq!(
            parse_listen_line("berth: listening on http://127.0.0.1:41234\n").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(parse_listen_line("berth: data in /tmp/x"), None);
        assert_eq!(parse_listen_line("berth: listening on soon"), None);
    }

    #[test]
    fn listen_line_is_found_among_others() {
        let out = "starting\nberth: listening on http://127.0.0.1:9\nberth: data in /x\n";
        assert_eq!(wait_for_listen_line(std::io::Cursor::new(out)).unwrap(), "http://127.0.0.1:9");
        let err = wait_for_listen_line(std::io::Cursor::new("nothing\n")).unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");
    }

    #[test]
    fn credentials_parse() {
        let dir = fresh_dir().unwrap();
        let path = dir.join("admin-credentials.json");
        fs::write(
            &path,
            r#"{"accessKeyId":"AKIA1","secretAccessKey":"s","region":"us-east-1",
               "endpoint":"http://127.0.0.1:1","accountId":"123456789012"}"#,
        )
        .unwrap();
        let c = Credentials::read(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.access_key_id, "AKIA1");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.account_id, "123456789012");
    }
}
