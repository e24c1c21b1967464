//! Nothing acknowledged is lost when the process is killed with SIGKILL.
//!
//! The test re-executes its own binary as a child that commits in a loop from
//! several tasks and prints each key once its commit is acknowledged. The parent
//! SIGKILLs the child mid-stream, reopens the store and checks every printed key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_store::{Expect, SqliteStore, Store, Txn};

const DB_ENV: &str = "BERTH_STORE_CRASH_DB";
const ROUND_ENV: &str = "BERTH_STORE_CRASH_ROUND";
const ACK: &str = "ACK ";

#[tokio::test]
async fn sigkill_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let mut acked = Vec::new();
    // Several rounds on one file: each restarts from a store recovered after a kill.
    for (round, kill_after) in [(0, 300), (1, 50), (2, 1000)] {
        acked.extend(run_child_and_kill(&path, round, kill_after));
        let store = SqliteStore::open(&path).unwrap();
        for key in &acked {
            let record = store.get(key).await.unwrap();
            assert!(record.is_some(), "acknowledged key {key} lost after SIGKILL");
        }
        assert!(store.revision() >= acked.len() as u64);
    }
}

/// Starts the child, SIGKILLs it after `kill_after` acknowledgements, and returns
/// every key it acknowledged (including lines still in the pipe after the kill).
fn run_child_and_kill(path: &Path, round: u32, kill_after: usize) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DB_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix(ACK) {
            acked.push(key.to_owned());
        }
        if !killed && acked.len() >= kill_after {
            child.kill().unwrap(); // SIGKILL on Unix
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "child exited by itself ({status}) after {} acks", acked.len());
    assert!(!status.success());
    acked
}

/// The child side; does nothing unless started by the test above.
#[test]
#[ignore = "child process of sigkill_loses_no_acknowledged_commit"]
fn crash_child() {
    let (Some(path), Some(round)) = (std::env::var_os(DB_ENV), std::env::var_os(ROUND_ENV)) else {
        return;
    };
    let round = round.to_string_lossy().into_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let store = std::sync::Arc::new(SqliteStore::open(Path::new(&path)).unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let store = store.clone();
                let round = round.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        if Instant::now() > deadline {
                            break;
                        }
                        let key = format!("crash/{round}/{task}/{i:08}");
                        let txn = Txn::new().put(&key, vec![7u8; 64], Expect::Absent);
                        store.commit(txn).await.unwrap();
                        println!("{ACK}{key}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}
