//! One container's shipping loop: read a batch from the saved position, send it, save.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::logs_model::{ops, CreateLogGroupRequest, CreateLogStreamRequest, InputLogEvent, PutLogEventsRequest};
use berth_client::{ClientError, EcsClient};
use berth_runtime::container::HOLD_SUFFIX;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::batch::{self, Batch};
use super::cri::{self, Position};
use super::Destination;

/// How often an idle log is looked at again.
const POLL: Duration = Duration::from_millis(200);
/// How long an event that more lines could continue (multiline) waits before it is sent.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// The longest pause between retries while the server is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What survives an agent restart: where shipping stands, and the batch in flight.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    position: Position,
    /// The end offset of the batch sent from `position` and not yet acknowledged.
    in_flight: Option<u64>,
}

/// The state file beside the log.
fn saved_path(log: &Path) -> PathBuf {
    log.with_file_name("awslogs.json")
}

fn load(path: &Path) -> Saved {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Writes the state atomically (a rename), so a crash leaves the old or the new one.
fn save(path: &Path, saved: &Saved) {
    let tmp = path.with_extension("tmp");
    let written = serde_json::to_vec(saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "saving the log shipping position");
    }
}

/// Ships `log` to `dest` until the container has exited and everything is sent.
pub async fn run(client: Arc<EcsClient>, dest: Destination, log: PathBuf, exited: watch::Receiver<bool>) {
    let mut shipper = Shipper { client, dest, saved_path: saved_path(&log), log, exited, ready: false, held: None };
    shipper.run().await;
}

struct Shipper {
    client: Arc<EcsClient>,
    dest: Destination,
    log: PathBuf,
    saved_path: PathBuf,
    exited: watch::Receiver<bool>,
    /// The group and stream exist.
    ready: bool,
    /// The inode named in `<log>.hold` (blocking mode).
    held: Option<u64>,
}

impl Shipper {
    async fn run(&mut self) {
        let mut saved = load(&self.saved_path);
        let mut idle_since = Instant::now();
        loop {
            let done = *self.exited.borrow();
            let flush = done || idle_since.elapsed() >= FLUSH_AFTER;
            let batch = match self.read(saved, flush).await {
                Ok(Some(b)) => b,
                Ok(None) if done => return,
                Ok(None) => {
                    self.pause().await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(log = %self.log.display(), error = %e, "reading the container log");
                    if done {
                        return;
                    }
                    self.pause().await;
                    continue;
                }
            };
            self.hold(batch.start.inode);
            if batch.end == batch.start && !batch.finished_file {
                if done && flush {
                    return;
                }
                self.pause().await;
                continue;
            }
            idle_since = Instant::now();
            if !batch.events.is_empty() {
                save(&self.saved_path, &Saved { position: batch.start, in_flight: Some(batch.end.offset) });
                let token = format!("berth-ship:{}:{}:{}", batch.start.inode, batch.start.offset, batch.end.offset);
                self.send(batch.events, token).await;
            }
            saved = Saved { position: batch.end, in_flight: None };
            match cri::start_of(&self.log) {
                // The rotated file is done: go on at the start of the current one.
                Some(current) if batch.finished_file && current.inode != batch.end.inode => saved.position = current,
                _ => {}
            }
            save(&self.saved_path, &saved);
            self.hold(saved.position.inode);
            if saved.position == batch.start {
                self.pause().await;
            }
        }
    }

    /// In blocking mode, names the file still to be read, so that the shim does not rotate
    /// it away (`berth_runtime::container::HOLD_SUFFIX`).
    fn hold(&mut self, inode: u64) {
        if !self.dest.blocking || self.held == Some(inode) || inode == 0 {
            return;
        }
        let mut path = self.log.clone().into_os_string();
        path.push(HOLD_SUFFIX);
        let path = PathBuf::from(path);
        let tmp = path.with_extension("hold-tmp");
        match std::fs::write(&tmp, inode.to_string()).and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => self.held = Some(inode),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "holding the log file"),
        }
    }

    /// Reads the next batch (the in-flight one again, if there is one) off the async threads.
    async fn read(&self, saved: Saved, flush: bool) -> std::io::Result<Option<Batch>> {
        let log = self.log.clone();
        let framing = self.dest.framing.clone();
        tokio::task::spawn_blocking(move || {
            let Some((mut src, gap)) = cri::open(&log, saved.position)? else { return Ok(None) };
            if gap {
                tracing::warn!(log = %log.display(), "the log rotated past lines not yet shipped; they are lost");
            }
            let until = saved.in_flight.filter(|_| !gap && src.position == saved.position);
            batch::read(&mut src, &framing, until, flush).map(Some)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Waits a poll interval, or less when the container exits.
    async fn pause(&mut self) {
        let _ = tokio::time::timeout(POLL, self.exited.changed()).await;
    }

    /// Sends one batch until the server takes it. A refusal (4xx) other than a missing
    /// group or stream cannot be cured by resending: once the container exited, it is
    /// dropped with a warning; before that it is retried slowly.
    async fn send(&mut self, events: Vec<InputLogEvent>, token: String) {
        let request = PutLogEventsRequest {
            log_group_name: Some(self.dest.group.clone()),
            log_stream_name: Some(self.dest.stream.clone()),
            log_events: Some(events),
            sequence_token: Some(token),
            ..Default::default()
        };
        let mut delay = POLL;
        loop {
            if !self.ready {
                self.ready = self.ensure_stream().await;
            }
            let result =
                if self.ready { self.client.call::<ops::PutLogEvents>(&request).await.map(drop) } else { Ok(()) };
            match result {
                Ok(()) if self.ready => return,
                Err(ClientError::Api { error_type, .. }) if error_type == "ResourceNotFoundException" => {
                    self.ready = false;
                }
                Err(ClientError::Api { status, message, .. }) if status < 500 => {
                    tracing::warn!(group = %self.dest.group, stream = %self.dest.stream, %message, "the server refused log events");
                    if *self.exited.borrow() {
                        return;
                    }
                    delay = MAX_BACKOFF;
                }
                Ok(()) | Err(_) => {}
            }
            if !self.ready && *self.exited.borrow() && delay >= MAX_BACKOFF {
                tracing::warn!(group = %self.dest.group, "the log group does not exist; dropping the container's remaining output");
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Creates the group (when asked) and the stream; already existing is fine.
    async fn ensure_stream(&self) -> bool {
        let exists = |r: Result<berth_api::Empty, ClientError>| match r {
            Ok(_) => Ok(()),
            Err(ClientError::Api { error_type, .. }) if error_type == "ResourceAlreadyExistsException" => Ok(()),
            Err(e) => Err(e),
        };
        if self.dest.create_group {
            let req = CreateLogGroupRequest { log_group_name: Some(self.dest.group.clone()), ..Default::default() };
            if let Err(e) = exists(self.client.call::<ops::CreateLogGroup>(&req).await) {
                tracing::debug!(error = %e, "creating the log group");
                return false;
            }
        }
        let req = CreateLogStreamRequest {
            log_group_name: Some(self.dest.group.clone()),
            log_stream_name: Some(self.dest.stream.clone()),
        };
        match exists(self.client.call::<ops::CreateLogStream>(&req).await) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, group = %self.dest.group, "creating the log stream");
                false
            }
        }
    }
}
