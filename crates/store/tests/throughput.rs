//! Group-commit throughput: small commits/s with 16 concurrent committers.
//!
//! Run: `cargo test -p berth-store --release --test throughput -- --ignored --nocapture`

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{Expect, SqliteStore, Store, Txn};

const COMMITTERS: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; prints commits/s"]
async fn commits_per_second_16_committers() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("berth.db")).unwrap());
    let start = Instant::now();
    let tasks: Vec<_> = (0..COMMITTERS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < RUN_FOR {
                    let key = format!("bench/{task:02}/{n:010}");
                    let txn = Txn::new().put(key, vec![0u8; 100], Expect::Absent);
                    store.commit(txn).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = total as f64 / elapsed;
    println!("{COMMITTERS} committers: {total} commits in {elapsed:.2} s = {rate:.0} commits/s");
    assert_eq!(store.revision(), total);
}
