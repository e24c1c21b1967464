//! Instance liveness: the agent's long poll is its heartbeat.
//!
//! The server remembers, in memory, when each instance's agent last polled and whether a
//! poll is open now. An instance silent for longer than the disconnect timeout is marked
//! `agentConnected: false` by the service controller; after the lost timeout its service
//! tasks are replaced elsewhere. A restarted server counts every instance as heard from at
//! its start, so a restart alone never makes an instance look lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Beat {
    last: Instant,
    open_polls: u32,
}

/// When each instance (by id) was last heard from.
#[derive(Debug)]
pub struct Heartbeats {
    boot: Instant,
    beats: Mutex<HashMap<String, Beat>>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self { boot: Instant::now(), beats: Mutex::new(HashMap::new()) }
    }
}

/// An open poll: the instance counts as heard from until it is dropped.
pub struct OpenPoll<'a> {
    beats: &'a Heartbeats,
    instance: String,
}

impl Heartbeats {
    /// Records a poll from `instance` that stays open until the guard drops.
    pub fn poll(&self, instance: &str) -> OpenPoll<'_> {
        self.with(instance, |b| b.open_polls += 1);
        OpenPoll { beats: self, instance: instance.to_string() }
    }

    /// Records that `instance` was heard from now (it registered).
    pub fn beat(&self, instance: &str) {
        self.with(instance, |_| {});
    }

    fn with(&self, instance: &str, change: impl FnOnce(&mut Beat)) {
        let mut beats = self.beats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let beat = beats.entry(instance.to_string()).or_insert(Beat { last: Instant::now(), open_polls: 0 });
        beat.last = Instant::now();
        change(beat);
    }

    /// How long `instance` has been silent (zero while a poll is open).
    pub fn silent_for(&self, instance: &str) -> Duration {
        let beats = self.beats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match beats.get(instance) {
            Some(b) if b.open_polls > 0 => Duration::ZERO,
            Some(b) => b.last.elapsed(),
            None => self.boot.elapsed(),
        }
    }
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        self.beats.with(&self.instance, |b| b.open_polls = b.open_polls.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_poll_is_a_heartbeat_and_silence_counts_from_its_end() {
        let beats = Heartbeats::default();
        let poll = beats.poll("i1");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(beats.silent_for("i1"), Duration::ZERO);
        drop(poll);
        std::thread::sleep(Duration::from_millis(20));
        let silent = beats.silent_for("i1");
        assert!(silent >= Duration::from_millis(20) && silent < Duration::from_secs(1), "{silent:?}");
        assert!(beats.silent_for("never-polled") >= Duration::from_millis(40));
    }
}
