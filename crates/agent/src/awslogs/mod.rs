//! The awslogs log driver: ships each container's output from the shim's CRI log to the
//! server's CloudWatch Logs API, one shipper per container.
//!
//! # Behavior
//!
//! - The shim writes every stdout and stderr line to the container's log file whatever the
//!   shipper does, and the file is the spool while the server is away. In `non-blocking`
//!   mode (berth's default, as `defaultLogDriverMode`) shipping never slows the container;
//!   in `blocking` mode the shipper holds the file it reads (`<log>.hold`), so a rotation
//!   that would delete it waits, and the container's writes block instead of lines being
//!   lost.
//! - A shipper reads from its saved position ([`cri::Position`], in `awslogs.json` beside
//!   the log), batches up to PutLogEvents' limits, and saves the new position only once
//!   the server acknowledged the batch. Before sending, it saves which batch is in flight;
//!   after an agent restart it resends exactly that batch under the same `berth-ship:`
//!   sequence token, which the server applies at most once. So neither an agent nor a
//!   server restart loses or duplicates a line.
//! - The stream is `prefix/container-name/task-id` (ECS's form), or the container's id
//!   without a prefix. `awslogs-create-group: true` creates the group.
//!
//! # Limitations
//!
//! In `non-blocking` mode the spool is bounded by the log's rotation: the current file and
//! one rotated file (10 MiB each). A shipper more than one rotation behind (the server away
//! while a container writes more than 10 MiB, or a container writing faster than the
//! shipper sends) loses the oldest lines, and logs the gap.
//! Requests are signed in the agent's region, not `awslogs-region`.

mod batch;
mod cri;
mod ship;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::model::{ContainerDefinition, LogDriver};
use berth_client::EcsClient;
use regex::Regex;
use tokio::sync::watch;

use batch::Framing;

/// Where one container's lines go.
#[derive(Debug, Clone)]
pub struct Destination {
    pub group: String,
    pub stream: String,
    pub create_group: bool,
    /// `mode: blocking`: the container waits rather than lose lines (see [`ship`]).
    pub blocking: bool,
    framing: Framing,
}

impl Destination {
    /// The destination of `def`'s output in task `task_id`, if it uses the awslogs driver.
    pub fn of(def: &ContainerDefinition, task_id: &str) -> Option<Self> {
        let container_id = crate::engine::container_id(task_id, def.name.as_deref().unwrap_or_default());
        let config = def.log_configuration.as_ref().filter(|c| c.log_driver == Some(LogDriver::Awslogs))?;
        let option = |k: &str| config.options.as_ref().and_then(|o| o.get(k)).filter(|v| !v.is_empty());
        let name = def.name.as_deref().unwrap_or_default();
        let stream = match option("awslogs-stream-prefix") {
            Some(prefix) => format!("{prefix}/{name}/{task_id}"),
            None => container_id,
        };
        let start = match (option("awslogs-multiline-pattern"), option("awslogs-datetime-format")) {
            (Some(pattern), _) => Regex::new(pattern).ok(),
            (None, Some(format)) => Regex::new(&datetime_regex(format)).ok(),
            (None, None) => None,
        };
        Some(Destination {
            group: option("awslogs-group")?.clone(),
            stream,
            create_group: option("awslogs-create-group").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            blocking: option("mode").is_some_and(|m| m == "blocking"),
            framing: Framing { start },
        })
    }
}

/// A regex that matches a line starting with a timestamp in strftime `format`, as the
/// awslogs driver reads `awslogs-datetime-format`.
fn datetime_regex(format: &str) -> String {
    let mut out = String::from("^");
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push_str(&regex::escape(&c.to_string()));
            continue;
        }
        out.push_str(match chars.next() {
            Some('Y') => r"\d{4}",
            Some('y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'I') => r"\d{2}",
            Some('e') => r"[ \d]\d",
            Some('j') => r"\d{3}",
            Some('f') => r"\d+",
            Some('L') => r"\d{3}",
            Some('b' | 'a') => r"[A-Za-z]{3}",
            Some('B' | 'A') => r"[A-Za-z]+",
            Some('p') => "(?:AM|PM)",
            Some('Z') => r"[A-Za-z]+",
            Some('z') => r"(?:Z|[+-]\d{2}:?\d{2})",
            Some('%') => "%",
            _ => ".",
        });
    }
    out
}

/// The running shippers of one task, by container name.
#[derive(Default)]
pub struct Shippers {
    running: HashMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Shippers {
    /// Starts shipping `def`'s log, if it uses the awslogs driver and is not shipped yet.
    pub fn start(&mut self, client: &Arc<EcsClient>, def: &ContainerDefinition, task_id: &str, log: PathBuf) {
        let name = def.name.clone().unwrap_or_default();
        let Some(dest) = Destination::of(def, task_id) else { return };
        if self.running.contains_key(&name) {
            return;
        }
        let (exited, rx) = watch::channel(false);
        let handle = tokio::spawn(ship::run(Arc::clone(client), dest, log, rx));
        self.running.insert(name, (exited, handle));
    }

    /// Tells every shipper its container exited, and waits until each shipped everything.
    pub async fn drain(&mut self) {
        for (name, (exited, handle)) in self.running.drain() {
            let _ = exited.send(true);
            if let Err(e) = handle.await {
                tracing::warn!(container = %name, error = %e, "log shipper failed");
            }
        }
    }
}

/// Where the agent with data dir `agent_dir` keeps the output of container `name` of
/// task `task_id` (the runtime's `containers/<id>/container.log`), while the task is there.
pub fn host_log(agent_dir: &Path, task_id: &str, name: &str) -> PathBuf {
    let id = crate::engine::container_id(task_id, name);
    agent_dir.join("runtime").join("containers").join(id).join("container.log")
}

/// Reads a container's log on this host as lines, following it as it grows.
pub struct HostLog {
    path: PathBuf,
    position: cri::Position,
}

impl HostLog {
    /// Reads `path` (a [`host_log`]) from its oldest kept line.
    pub fn new(path: PathBuf) -> Self {
        HostLog { path, position: cri::Position::default() }
    }

    /// The complete lines written since the last call (pieces of long lines joined).
    pub fn read_new(&mut self) -> std::io::Result<Vec<String>> {
        let Some((mut src, _)) = cri::open(&self.path, self.position)? else { return Ok(Vec::new()) };
        let b = batch::read(&mut src, &Framing::default(), None, false)?;
        self.position = b.end;
        if b.finished_file {
            self.position = cri::start_of(&self.path).unwrap_or_default();
        }
        Ok(b.events.into_iter().filter_map(|e| e.message).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::model::LogConfiguration;

    fn def(options: &[(&str, &str)]) -> ContainerDefinition {
        ContainerDefinition {
            name: Some("web".into()),
            log_configuration: Some(LogConfiguration {
                log_driver: Some(LogDriver::Awslogs),
                options: Some(options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                secret_options: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn streams_are_named_as_ecs_names_them() {
        let d =
            Destination::of(&def(&[("awslogs-group", "/ecs/web"), ("awslogs-stream-prefix", "app")]), "t1").unwrap();
        assert_eq!((d.group.as_str(), d.stream.as_str(), d.create_group), ("/ecs/web", "app/web/t1", false));
        let d = Destination::of(&def(&[("awslogs-group", "g"), ("awslogs-create-group", "true")]), "t1").unwrap();
        assert_eq!((d.stream.as_str(), d.create_group), ("t1-web", true));
        assert!(Destination::of(&ContainerDefinition::default(), "t").is_none());
    }

    #[test]
    fn datetime_formats_frame_events() {
        let r = Regex::new(&datetime_regex("%Y-%m-%d %H:%M:%S")).unwrap();
        assert!(r.is_match("2026-01-02 03:04:05 started"));
        assert!(!r.is_match("  at stack frame"));
        let d = Destination::of(&def(&[("awslogs-group", "g"), ("awslogs-multiline-pattern", "^INFO")]), "t").unwrap();
        assert!(d.framing.start.is_some_and(|r| r.is_match("INFO x")));
    }
}
