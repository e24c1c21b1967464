//! The container log in the CRI format, size-bounded by rotation.
//!
//! A reader that must not lose lines (the awslogs driver in `blocking` mode) names the
//! inode of the file it still reads in `<log>.hold`; a rotation that would delete that
//! file (the rotated `<log>.1`) waits until the reader moved on, so the pipes fill and the
//! container's writes block instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};

/// The log rotates when a write would take it past this size (10 MiB).
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Appended to the log's path: the file whose content names the inode a reader holds.
pub const HOLD_SUFFIX: &str = ".hold";
/// How often a held rotation looks again.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(10);
/// Lines longer than this are split into `P` pieces (containerd's 16 KiB).
pub const LOG_MAX_LINE: usize = 16 * 1024;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// An append-only CRI log file that keeps one rotated file (`<path>.1`).
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
}

impl LogFile {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_path_buf(), file, size, max_bytes })
    }

    /// Writes one entry: `<timestamp> <stream> <F|P> <content>\n`.
    pub fn write_entry(&mut self, stream: Stream, partial: bool, content: &[u8]) -> io::Result<()> {
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let tag = if partial { "P" } else { "F" };
        let mut entry = Vec::with_capacity(timestamp.len() + content.len() + 12);
        entry.extend_from_slice(timestamp.as_bytes());
        entry.push(b' ');
        entry.extend_from_slice(stream.as_str().as_bytes());
        entry.push(b' ');
        entry.extend_from_slice(tag.as_bytes());
        entry.push(b' ');
        entry.extend_from_slice(content);
        entry.push(b'\n');
        if self.size > 0 && self.size + entry.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        wait_for_holder(&self.path, Path::new(&old));
        fs::rename(&self.path, &old)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Waits while `<log>.hold` names the inode of `old`, the file a rotation would delete.
fn wait_for_holder(log: &Path, old: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut hold = log.as_os_str().to_owned();
    hold.push(HOLD_SUFFIX);
    loop {
        let held = fs::read_to_string(&hold).ok().and_then(|s| s.trim().parse::<u64>().ok());
        if held.is_none() || held != fs::metadata(old).ok().map(|m| m.ino()) {
            return;
        }
        std::thread::sleep(HOLD_POLL);
    }
}

/// Copies `reader` into `log` line by line until EOF. A final line without a newline is
/// written as a full (`F`) entry. Write errors are reported once and reading goes on, so
/// a full disk never blocks the container on a full pipe.
pub(crate) fn pump(mut reader: impl Read, stream: Stream, log: &Mutex<LogFile>, max_line: usize) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(max_line);
    let mut reported = false;
    let mut emit = |line: &[u8], partial: bool| {
        let result = log.lock().unwrap_or_else(|p| p.into_inner()).write_entry(stream, partial, line);
        if let Err(e) = result {
            if !reported {
                tracing::error!(error = %e, "writing the container log");
                reported = true;
            }
        }
    };
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, stream = stream.as_str(), "reading container output");
                break;
            }
        };
        let mut data = &chunk[..n];
        while !data.is_empty() {
            let room = max_line - line.len();
            match data.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&data[..i]);
                    emit(&line, false);
                    line.clear();
                    data = &data[i + 1..];
                }
                None => {
                    let take = room.min(data.len());
                    line.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if line.len() == max_line {
                        emit(&line, true);
                        line.clear();
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        emit(&line, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<(String, String, String)> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().unwrap();
                assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "timestamp {ts}");
                (p.next().unwrap().into(), p.next().unwrap().into(), p.next().unwrap_or("").into())
            })
            .collect()
    }

    #[test]
    fn splits_lines_long_lines_and_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = Mutex::new(LogFile::open(&path, LOG_MAX_BYTES).unwrap());
        let input = b"one\n\ntwo three\n0123456789abcdeXYZ\nlast".to_vec();
        pump(&input[..], Stream::Stderr, &log, 8);
        let e = entries(&path);
        let got: Vec<(&str, &str)> = e.iter().map(|(_, t, c)| (t.as_str(), c.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("F", "one"),
                ("F", ""),
                ("P", "two thre"),
                ("F", "e"),
                ("P", "01234567"),
                ("P", "89abcdeX"),
                ("F", "YZ"),
                ("F", "last")
            ]
        );
        assert!(e.iter().all(|(s, _, _)| s == "stderr"));
    }

    #[test]
    fn a_held_rotated_file_is_kept_until_its_reader_moves_on() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(&path, 100).unwrap();
        for i in 0..6 {
            log.write_entry(Stream::Stdout, false, format!("line {i:02}").as_bytes()).unwrap();
        }
        let old = dir.path().join("c.log.1");
        let held = fs::metadata(&old).unwrap().ino();
        let hold = dir.path().join("c.log.hold");
        fs::write(&hold, held.to_string()).unwrap();
        let writer = std::thread::spawn(move || {
            for i in 6..12 {
                log.write_entry(Stream::Stdout, false, format!("line {i:02}").as_bytes()).unwrap();
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(fs::metadata(&old).unwrap().ino(), held, "the held file was rotated away");
        assert!(!writer.is_finished(), "the writer should wait");
        fs::write(&hold, "0").unwrap();
        writer.join().unwrap();
        assert_ne!(fs::metadata(&old).unwrap().ino(), held);
    }

    #[test]
    fn rotates_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(&path, 200).unwrap();
        for i in 0..20 {
            log.write_entry(Stream::Stdout, false, format!("line {i:02}").as_bytes()).unwrap();
        }
        let current = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(dir.path().join("c.log.1")).unwrap().len();
        assert!(current <= 200 && old <= 200, "{current} {old}");
        assert!(!dir.path().join("c.log.2").exists());
        let last = entries(&path).pop().unwrap();
        assert_eq!(last.2, "line 19");
    }
}
