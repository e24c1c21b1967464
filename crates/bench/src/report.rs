//! The printed report: a machine header, one fixed-width row per phase, and a verdict.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::client::Outcome;
use crate::stats::{ms, Summary};

/// What a phase is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At least this many successful operations per second.
    MinOpsPerSec(f64),
    /// A 99th-percentile latency of at most this.
    MaxP99(Duration),
}

impl Target {
    fn label(self) -> String {
        match self {
            Target::MinOpsPerSec(n) => format!(">={n:.0}/s"),
            Target::MaxP99(d) => format!("p99<={}ms", ms(d)),
        }
    }
}

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// The operation, in CLI spelling (`describe-clusters`).
    pub op: &'static str,
    /// Concurrent clients.
    pub clients: usize,
    /// Calls made (successful or not).
    pub requests: u64,
    /// Failed calls.
    pub errors: u64,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Latencies of the successful calls.
    pub latency: Summary,
    /// What the phase must reach.
    pub target: Target,
}

impl Row {
    /// The row for a phase's outcome.
    pub fn new(op: &'static str, clients: usize, outcome: Outcome, target: Target) -> Self {
        let (requests, errors, elapsed) = (outcome.requests(), outcome.errors, outcome.elapsed);
        Self { op, clients, requests, errors, elapsed, latency: Summary::of(outcome.latencies), target }
    }

    /// Successful calls per second of wall time.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latency.count as f64 / secs
        } else {
            0.0
        }
    }

    /// Why the row misses its target or failed calls, if it does.
    pub fn miss(&self) -> Option<String> {
        let mut why = Vec::new();
        match self.target {
            Target::MinOpsPerSec(min) if self.ops_per_sec() < min => {
                why.push(format!("{:.0} ops/s < {min:.0}/s", self.ops_per_sec()));
            }
            Target::MaxP99(max) if self.latency.p99 > max || self.latency.count == 0 => {
                why.push(format!("p99 {:.2} ms > {} ms", ms(self.latency.p99), ms(max)));
            }
            _ => {}
        }
        if self.errors > 0 {
            why.push(format!("{} errors", self.errors));
        }
        (!why.is_empty()).then(|| format!("{}: {}", self.op, why.join(", ")))
    }

    /// The row as the table prints it.
    pub fn line(&self) -> String {
        format!(
            "{:<24} {:>7} {:>8} {:>6} {:>7.2} {:>8.0} {:>7.2} {:>7.2} {:>7.2}  {:<10} {}",
            self.op,
            self.clients,
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.max),
            self.target.label(),
            if self.miss().is_none() { "yes" } else { "no" },
        )
    }
}

/// The table's column heads, aligned with [`Row::line`].
pub fn table_head() -> String {
    format!(
        "{:<24} {:>7} {:>8} {:>6} {:>7} {:>8} {:>7} {:>7} {:>7}  {:<10} {}",
        "op", "clients", "requests", "errors", "seconds", "ops/s", "p50_ms", "p99_ms", "max_ms", "target", "ok?"
    )
}

/// The closing line: `bench: PASS`, or `bench: MISS (...)` naming every miss.
pub fn verdict(rows: &[Row]) -> String {
    let misses: Vec<_> = rows.iter().filter_map(Row::miss).collect();
    if misses.is_empty() {
        "bench: PASS".to_string()
    } else {
        format!("bench: MISS ({})", misses.join("; "))
    }
}

/// `cpus, CPU model, memory, kernel, load average` of this machine, from `/proc`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = proc_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = proc_field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut out = format!("nproc {cpus}, {model}, {mem_gib:.1} GiB RAM");
    if !kernel.trim().is_empty() {
        let _ = write!(out, ", Linux {}", kernel.trim());
    }
    // Other work on the machine skews every figure; say how busy it was.
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    if let Some(one_minute) = loadavg.split_whitespace().next() {
        let _ = write!(out, ", load average {one_minute} at start");
    }
    out
}

/// The value of `key` in a `/proc` file of `key : value` lines.
fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The file system type and device that hold `path` (`ext4 on /dev/vda`), from `/proc/mounts`.
pub fn filesystem_of(path: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, point, fstype) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point).then(|| (point.len(), format!("{fstype} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ops: u64, secs: u64, p99_us: u64, errors: u64, target: Target) -> Row {
        let mut latencies = vec![Duration::from_micros(100); ops as usize];
        if let Some(last) = latencies.last_mut() {
            *last = Duration::from_micros(p99_us);
        }
        let outcome = Outcome { latencies, errors, first_error: None, elapsed: Duration::from_secs(secs) };
        Row::new("describe-clusters", 16, outcome, target)
    }

    #[test]
    fn throughput_target() {
        let min = Target::MinOpsPerSec(2000.0);
        assert_eq!(row(4000, 2, 100, 0, min).miss(), None);
        let miss = row(3000, 2, 100, 0, min).miss().unwrap();
        assert_eq!(miss, "describe-clusters: 1500 ops/s < 2000/s");
    }

    #[test]
    fn latency_target_and_errors() {
        let p99 = Target::MaxP99(Duration::from_millis(5));
        // One slow call in 50 is above p99's rank; in 100 samples the 100th is not.
        assert_eq!(row(100, 1, 9_000, 0, p99).miss(), None);
        assert!(row(50, 1, 9_000, 0, p99).miss().unwrap().contains("p99 9.00 ms > 5 ms"));
        assert!(row(100, 1, 100, 2, p99).miss().unwrap().ends_with("2 errors"));
        assert!(row(0, 1, 100, 0, p99).miss().is_some());
    }

    #[test]
    fn table_lines_align() {
        let r = row(100, 1, 100, 0, Target::MaxP99(Duration::from_millis(5)));
        let (head, line) = (table_head(), r.line());
        assert_eq!(head.find("target"), line.find("p99<=5ms"));
        assert!(line.ends_with("yes"));
        assert_eq!(verdict(&[r]), "bench: PASS");
    }

    #[test]
    fn proc_fields() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nMemTotal:       16384 kB\n";
        assert_eq!(proc_field(text, "model name"), Some("AMD EPYC"));
        assert_eq!(proc_field(text, "MemTotal"), Some("16384 kB"));
        assert_eq!(proc_field(text, "flags"), None);
    }
}
