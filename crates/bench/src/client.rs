//! The loop that runs concurrent signed clients over a workload.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use berth_client::EcsClient;
use bytes::Bytes;
use hyper::StatusCode;

/// A client that fails this many times in a row stops, so a dead server ends a phase quickly.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// A small, fast pseudo-random generator (splitmix64); statistical quality is plenty
/// for picking request parameters.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock and `stream`, so that clients differ.
    pub fn new(stream: u64) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        Self(now ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A fair coin flip.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// What a phase sends, shared by all its clients.
pub trait Workload: Send + Sync + 'static {
    /// The next call (operation, JSON body), or `None` when the workload is done.
    fn next(&self, rng: &mut Rng) -> Option<(&'static str, Bytes)>;

    /// Checks the body of a 200 reply; an error counts the call as failed.
    fn accept(&self, _body: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// What a phase's clients measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every successful call (send to last body byte).
    pub latencies: Vec<Duration>,
    /// Calls that failed: transport error, non-200 status, or a reply `accept` rejected.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall time from the first client's start to the last client's end.
    pub elapsed: Duration,
}

impl Outcome {
    /// Calls made, successful or not.
    pub fn requests(&self) -> u64 {
        self.latencies.len() as u64 + self.errors
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs `clients` concurrent clients over `workload` until it is done or `deadline` passes.
pub async fn run<W: Workload>(
    client: &Arc<EcsClient>,
    clients: usize,
    deadline: Option<Instant>,
    workload: Arc<W>,
) -> Result<Outcome> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let client = Arc::clone(client);
            let workload = Arc::clone(&workload);
            tokio::spawn(async move { client_loop(&client, deadline, &*workload, Rng::new(i as u64)).await })
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.context("a bench client panicked")??);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One client: call, time, check, repeat.
async fn client_loop<W: Workload>(
    client: &EcsClient,
    deadline: Option<Instant>,
    workload: &W,
    mut rng: Rng,
) -> Result<Outcome> {
    let mut out = Outcome { latencies: Vec::with_capacity(64 * 1024), ..Outcome::default() };
    let mut consecutive_errors = 0;
    while deadline.is_none_or(|d| Instant::now() < d) {
        let Some((op, body)) = workload.next(&mut rng) else {
            break;
        };
        let req = client.prepare(op, body)?;
        let sent = Instant::now();
        let result = client.send(req).await;
        let latency = sent.elapsed();
        let failure = match result {
            Ok(reply) if reply.status == StatusCode::OK => {
                workload.accept(&reply.body).err().map(|e| format!("{op}: {e:#}"))
            }
            Ok(reply) => Some(format!("{op}: HTTP {}: {}", reply.status, String::from_utf8_lossy(&reply.body))),
            Err(e) => Some(format!("{op}: {e:#}")),
        };
        match failure {
            None => {
                out.latencies.push(latency);
                consecutive_errors = 0;
            }
            Some(message) => {
                out.errors += 1;
                out.first_error.get_or_insert(message);
                consecutive_errors += 1;
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range_and_varies() {
        let mut rng = Rng::new(3);
        let picks: Vec<_> = (0..1000).map(|_| rng.below(10)).collect();
        assert!(picks.iter().all(|&p| p < 10));
        assert!((0..10).all(|v| picks.contains(&v)));
        let heads = (0..1000).filter(|_| rng.coin()).count();
        assert!((400..600).contains(&heads), "{heads}");
    }
}
