//! Reading the shim's CRI log (`<ts> <stream> <F|P> <content>`) from a saved position,
//! across its rotation to `<log>.1`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A byte position in one log file, named by its inode so that rotation (a rename) keeps
/// it valid, and by a hash of the file's first timestamp, because a file deleted by the
/// next rotation frees its inode for a new file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub inode: u64,
    pub offset: u64,
    #[serde(default)]
    pub head: u64,
}

/// How many leading bytes name a file: a CRI line starts with a nanosecond timestamp.
const HEAD_BYTES: usize = 30;

/// A file's identity: its inode and the hash of its first [`HEAD_BYTES`] (0 while shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    inode: u64,
    head: u64,
}

fn identity(path: &Path) -> Option<Identity> {
    use std::io::Read;
    let mut file = File::open(path).ok()?;
    let inode = file.metadata().ok()?.ino();
    let mut buf = [0u8; HEAD_BYTES];
    let mut n = 0;
    while n < HEAD_BYTES {
        match file.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    Some(Identity { inode, head: if n == HEAD_BYTES { fnv(&buf) } else { 0 } })
}

/// FNV-1a: a stable hash for file heads (std's hasher may change between releases).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

impl Identity {
    /// Whether `at` points into this file: same inode, and same head once anything was read.
    fn holds(&self, at: &Position) -> bool {
        self.inode == at.inode && (at.offset == 0 || at.head == self.head)
    }

    fn start(&self) -> Position {
        Position { inode: self.inode, offset: 0, head: self.head }
    }
}

/// One CRI entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// A piece of a longer line (`P`): the next entry continues it.
    pub partial: bool,
    pub content: String,
    /// Where the entry ends in its file.
    pub end: u64,
}

/// The log file a position reads from: the current file, or the rotated one.
pub struct Source {
    reader: BufReader<File>,
    pub position: Position,
    /// Whether this is `<log>.1`: at its end, reading moves on to the current file.
    pub rotated: bool,
}

fn rotated_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Where the current file starts.
pub fn start_of(path: &Path) -> Option<Position> {
    identity(path).map(|i| i.start())
}

/// Opens the file `at` names. A fresh position (inode 0) starts at the oldest file kept.
/// When neither file is the one `at` names (the log rotated twice while nobody read it),
/// reading restarts at the oldest file kept, and the second value is true: a gap.
pub fn open(log: &Path, at: Position) -> io::Result<Option<(Source, bool)>> {
    let old = rotated_path(log);
    let (path, rotated, position, gap) = match (identity(log), identity(&old)) {
        (Some(cur), _) if cur.holds(&at) => (log.to_path_buf(), false, Position { head: cur.head, ..at }, false),
        (_, Some(prev)) if prev.holds(&at) => (old, true, at, false),
        (_, Some(prev)) => (old, true, prev.start(), at.inode != 0),
        (Some(cur), None) => (log.to_path_buf(), false, cur.start(), at.inode != 0),
        (None, None) => return Ok(None),
    };
    let mut file = File::open(&path)?;
    file.seek(SeekFrom::Start(position.offset))?;
    Ok(Some((Source { reader: BufReader::with_capacity(256 * 1024, file), position, rotated }, gap)))
}

impl Source {
    /// The next complete entry (one ending in a newline), or `None` at the end of what is
    /// written so far. An unparsable line is kept whole as content.
    pub fn next_entry(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Entry>> {
        buf.clear();
        let n = self.reader.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            // A line still being written: read it again next time, from its start.
            self.reader.seek_relative(-(n as i64))?;
            return Ok(None);
        }
        if self.position.offset == 0 && n >= HEAD_BYTES {
            self.position.head = fnv(&buf[..HEAD_BYTES]);
        }
        self.position.offset += n as u64;
        let line = String::from_utf8_lossy(&buf[..n - 1]);
        Ok(Some(parse(&line, self.position.offset)))
    }
}

/// Parses one CRI line; a line that is not CRI is taken as a full line of content.
pub fn parse(line: &str, end: u64) -> Entry {
    let mut parts = line.splitn(4, ' ');
    let (ts, _stream, tag, content) = (parts.next(), parts.next(), parts.next(), parts.next());
    let timestamp = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp_millis());
    match (timestamp, tag) {
        (Some(timestamp), Some(tag @ ("F" | "P"))) => {
            Entry { timestamp, partial: tag == "P", content: content.unwrap_or_default().to_string(), end }
        }
        _ => Entry { timestamp: chrono::Utc::now().timestamp_millis(), partial: false, content: line.to_string(), end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    #[test]
    fn parses_cri_lines() {
        let e = parse("2026-01-02T03:04:05.678901234Z stdout F hello world", 10);
        assert_eq!((e.timestamp, e.partial, e.content.as_str(), e.end), (1_767_323_045_678, false, "hello world", 10));
        assert!(parse("2026-01-02T03:04:05Z stderr P piece", 0).partial);
        assert_eq!(parse("2026-01-02T03:04:05Z stderr F ", 0).content, "");
        assert_eq!(parse("not cri", 0).content, "not cri");
    }

    #[test]
    fn reads_complete_lines_from_a_position_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        fs::write(&log, "2026-01-02T03:04:05Z stdout F one\n2026-01-02T03:04:05Z stdout F tw").unwrap();
        let (mut src, gap) = open(&log, Position::default()).unwrap().unwrap();
        let mut buf = Vec::new();
        assert!(!gap);
        assert_eq!(src.next_entry(&mut buf).unwrap().unwrap().content, "one");
        assert_eq!(src.next_entry(&mut buf).unwrap(), None, "a half-written line waits");
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"o\n").unwrap();
        assert_eq!(src.next_entry(&mut buf).unwrap().unwrap().content, "two");
        let at = src.position;
        // Rotation: the position now names <log>.1, and the new file starts after it.
        fs::rename(&log, rotated_path(&log)).unwrap();
        fs::write(&log, "2026-01-02T03:04:06Z stdout F three\n").unwrap();
        let (mut src, gap) = open(&log, at).unwrap().unwrap();
        assert!(src.rotated && !gap);
        assert_eq!(src.next_entry(&mut buf).unwrap(), None);
        let (mut src, _) = open(&log, start_of(&log).unwrap()).unwrap().unwrap();
        assert_eq!(src.next_entry(&mut buf).unwrap().unwrap().content, "three");
        // A position in a file no longer kept restarts at the oldest file, as a gap.
        let (src, gap) = open(&log, Position { inode: 1, offset: 5, head: 0 }).unwrap().unwrap();
        assert!(gap && src.rotated && src.position.offset == 0);
        // So does a position whose inode a new file reuses: the head tells them apart.
        let reused = Position { head: at.head ^ 1, ..src.position };
        let (_, gap) = open(&log, Position { offset: 10, ..reused }).unwrap().unwrap();
        assert!(gap);
    }
}
