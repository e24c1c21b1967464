//! Turning CRI entries into log events and PutLogEvents batches.
//!
//! Pieces of a long line (`P` entries) join into one event. With a multiline pattern (or a
//! datetime format), a line that does not match it continues the event before it, so an
//! event is complete only when the next one starts, or when the caller flushes (the
//! container exited, or the log has been idle). A batch ends at an event boundary, and
//! its end position is where the next batch starts: lines of an incomplete event are read
//! again next time.

use std::io;

use berth_api::logs_model::InputLogEvent;
use regex::Regex;

use super::cri::{Entry, Position, Source};

/// PutLogEvents' limits: events per batch, batch bytes (messages plus 26 bytes each), and
/// the span of one batch's timestamps.
pub const MAX_EVENTS: usize = 10_000;
pub const MAX_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;
const MAX_SPAN_MS: i64 = 24 * 3_600_000 - 60_000;
/// The longest event; a longer one is cut into several (as the awslogs driver does).
pub const MAX_EVENT_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD;

/// What starts a new event when lines are joined.
#[derive(Debug, Clone, Default)]
pub struct Framing {
    pub start: Option<Regex>,
}

impl Framing {
    fn starts_event(&self, line: &str) -> bool {
        self.start.as_ref().is_none_or(|r| r.is_match(line))
    }
}

/// One batch and where it ends.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<InputLogEvent>,
    pub start: Position,
    pub end: Position,
    /// The batch read to the end of a rotated file: the next one starts in the current file.
    pub finished_file: bool,
}

/// The event being assembled.
struct Open {
    timestamp: i64,
    message: String,
    /// The last entry was a piece of a longer line.
    partial: bool,
}

impl Open {
    fn new(e: Entry) -> Self {
        Open { timestamp: e.timestamp, message: e.content, partial: e.partial }
    }

    fn continued_by(&self, e: &Entry, framing: &Framing) -> bool {
        (self.partial || !framing.starts_event(&e.content)) && self.message.len() + e.content.len() < MAX_EVENT_BYTES
    }

    fn append(&mut self, e: Entry) {
        if !self.partial {
            self.message.push('\n');
        }
        self.message.push_str(&e.content);
        self.partial = e.partial;
    }
}

/// A batch being filled within PutLogEvents' limits.
struct Builder {
    batch: Batch,
    bytes: usize,
    last_ts: i64,
}

impl Builder {
    /// Adds a complete event that ends at `end`, unless the batch is full. Timestamps never
    /// go back within a stream; an empty line is skipped, as the awslogs driver does.
    fn add(&mut self, e: Open, end: Position) -> bool {
        let first = self.batch.events.first().and_then(|e| e.timestamp);
        let fits = self.batch.events.len() < MAX_EVENTS
            && self.bytes + e.message.len() + EVENT_OVERHEAD <= MAX_BYTES
            && first.is_none_or(|f| e.timestamp - f <= MAX_SPAN_MS);
        if !fits {
            return false;
        }
        let timestamp = e.timestamp.max(self.last_ts);
        self.last_ts = timestamp;
        if !e.message.is_empty() {
            self.bytes += e.message.len() + EVENT_OVERHEAD;
            self.batch.events.push(InputLogEvent { timestamp: Some(timestamp), message: Some(e.message) });
        }
        self.batch.end = end;
        true
    }
}

/// Reads one batch from `src`: up to `until` (a resent batch's end) when given, else as
/// much as PutLogEvents takes. `flush` closes the last event even if more lines could
/// continue it; the end of a rotated file always does.
pub fn read(src: &mut Source, framing: &Framing, until: Option<u64>, flush: bool) -> io::Result<Batch> {
    let start = src.position;
    let mut b = Builder { batch: Batch { start, end: start, ..Batch::default() }, bytes: 0, last_ts: i64::MIN };
    let mut open: Option<Open> = None;
    let mut buf = Vec::new();
    let mut eof = false;
    while until.is_none_or(|u| src.position.offset < u) {
        let before = src.position;
        let Some(entry) = src.next_entry(&mut buf)? else {
            eof = true;
            break;
        };
        match open.as_mut() {
            Some(o) if o.continued_by(&entry, framing) => o.append(entry),
            _ => {
                if let Some(done) = open.replace(Open::new(entry)) {
                    if !b.add(done, before) {
                        return Ok(b.batch);
                    }
                }
            }
        }
        if framing.start.is_none() && open.as_ref().is_some_and(|o| !o.partial) {
            if let Some(done) = open.take() {
                if !b.add(done, src.position) {
                    return Ok(b.batch);
                }
            }
        }
    }
    if flush || until.is_some() || (eof && src.rotated) {
        if let Some(done) = open {
            b.add(done, src.position);
        }
    }
    b.batch.finished_file = eof && src.rotated && b.batch.end == src.position;
    Ok(b.batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::awslogs::cri;
    use std::fs;

    fn log(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let text: String = lines.iter().map(|l| format!("2026-01-02T03:04:05.001Z stdout {l}\n")).collect();
        fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn messages(b: &Batch) -> Vec<&str> {
        b.events.iter().map(|e| e.message.as_deref().unwrap_or_default()).collect()
    }

    #[test]
    fn pieces_join_and_empty_lines_are_skipped() {
        let (_d, path) = log(&["F one", "P tw", "P o-", "F two", "F ", "F three"]);
        let (mut src, _) = cri::open(&path, Position::default()).unwrap().unwrap();
        let b = read(&mut src, &Framing::default(), None, false).unwrap();
        assert_eq!(messages(&b), ["one", "two-two", "three"]);
        assert_eq!(b.end.offset, fs::metadata(&path).unwrap().len());
        assert_eq!(b.events[0].timestamp, Some(1_767_323_045_001));
    }

    #[test]
    fn multiline_events_wait_for_the_next_start_or_a_flush() {
        let (_d, path) = log(&["F INFO a", "F   at x", "F   at y", "F INFO b", "F   at z"]);
        let framing = Framing { start: Some(Regex::new("^INFO").unwrap()) };
        let (mut src, _) = cri::open(&path, Position::default()).unwrap().unwrap();
        let b = read(&mut src, &framing, None, false).unwrap();
        assert_eq!(messages(&b), ["INFO a\n  at x\n  at y"]);
        // The open event is read again from its start, and a flush closes it.
        let (mut src, _) = cri::open(&path, b.end).unwrap().unwrap();
        let b2 = read(&mut src, &framing, None, true).unwrap();
        assert_eq!(messages(&b2), ["INFO b\n  at z"]);
    }

    #[test]
    fn a_resent_batch_is_the_same_batch() {
        let (_d, path) = log(&["F a", "F b", "F c"]);
        let (mut src, _) = cri::open(&path, Position::default()).unwrap().unwrap();
        let first = read(&mut src, &Framing::default(), None, false).unwrap();
        let (mut src, _) = cri::open(&path, Position::default()).unwrap().unwrap();
        let again = read(&mut src, &Framing::default(), Some(first.end.offset), false).unwrap();
        assert_eq!(messages(&again), messages(&first));
        assert_eq!(again.end, first.end);
    }

    #[test]
    fn batches_stop_at_the_event_limit() {
        let lines: Vec<String> = (0..MAX_EVENTS + 5).map(|i| format!("F {i}")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (_d, path) = log(&refs);
        let (mut src, _) = cri::open(&path, Position::default()).unwrap().unwrap();
        let b = read(&mut src, &Framing::default(), None, false).unwrap();
        assert_eq!(b.events.len(), MAX_EVENTS);
        let (mut src, _) = cri::open(&path, b.end).unwrap().unwrap();
        let rest = read(&mut src, &Framing::default(), None, false).unwrap();
        assert_eq!(messages(&rest), ["10000", "10001", "10002", "10003", "10004"]);
    }
}
