//! Behaviour of the SQLite store through the `Store` trait.

use std::sync::Arc;

use berth_store::{Change, Expect, ListQuery, SqliteStore, Store, StoreError, Txn};
use tempfile::TempDir;

fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("state/berth.db")).expect("open");
    (dir, store)
}

fn put(key: &str, value: &str, expect: Expect) -> Txn {
    Txn::new().put(key, value, expect)
}

async fn value(store: &SqliteStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get").map(|r| r.value)
}

fn is_conflict(result: Result<u64, StoreError>, key: &str) -> bool {
    matches!(result, Err(StoreError::Conflict { key: k }) if k == key)
}

#[tokio::test]
async fn cas_absent_version_any() {
    let (_dir, store) = open();
    assert_eq!(store.commit(put("k", "1", Expect::Absent)).await.unwrap(), 1);
    assert!(is_conflict(store.commit(put("k", "x", Expect::Absent)).await, "k"));
    assert!(is_conflict(store.commit(put("k", "x", Expect::Version(2))).await, "k"));
    assert_eq!(store.commit(put("k", "2", Expect::Version(1))).await.unwrap(), 2);
    assert_eq!(store.commit(put("k", "3", Expect::Any)).await.unwrap(), 3);
    assert_eq!(value(&store, "k").await, Some(b"3".to_vec()));
    // Version(0) means absent, as in etcd.
    assert!(is_conflict(store.commit(put("k", "x", Expect::Version(0))).await, "k"));
    assert_eq!(store.commit(put("new", "1", Expect::Version(0))).await.unwrap(), 4);
    assert!(is_conflict(store.commit(put("none", "x", Expect::Version(1))).await, "none"));
    assert_eq!(store.revision(), 4);
}

#[tokio::test]
async fn delete_with_expect() {
    let (_dir, store) = open();
    store.commit(put("k", "1", Expect::Absent)).await.unwrap();
    let stale = Txn::new().delete("k", Expect::Version(2));
    assert!(is_conflict(store.commit(stale).await, "k"));
    let absent = Txn::new().delete("k", Expect::Absent);
    assert!(is_conflict(store.commit(absent).await, "k"));
    assert_eq!(store.commit(Txn::new().delete("k", Expect::Version(1))).await.unwrap(), 2);
    assert_eq!(store.get("k").await.unwrap(), None);
    // Deleting an absent key changes nothing, so the revision does not move.
    assert_eq!(store.commit(Txn::new().delete("k", Expect::Any)).await.unwrap(), 2);
    assert_eq!(store.commit(Txn::new().delete("k", Expect::Absent)).await.unwrap(), 2);
    // Recreated keys start again at version 1.
    store.commit(put("k", "again", Expect::Absent)).await.unwrap();
    let record = store.get("k").await.unwrap().unwrap();
    assert_eq!((record.version, record.revision), (1, 3));
}

#[tokio::test]
async fn failing_expectation_applies_nothing() {
    let (_dir, store) = open();
    store.commit(put("b", "old", Expect::Absent)).await.unwrap();
    let txn = Txn::new().put("a", "1", Expect::Absent).put("b", "new", Expect::Version(7)).delete("c", Expect::Any);
    assert!(is_conflict(store.commit(txn).await, "b"));
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(value(&store, "b").await, Some(b"old".to_vec()));
    assert_eq!(store.revision(), 1);
}

#[tokio::test]
async fn conflict_in_a_batch_spares_the_others() {
    let (_dir, store) = open();
    // Queued back to back, these land in one group commit (or a few); results must
    // be those of applying them one by one, in call order.
    let futures: Vec<_> = (0..50)
        .map(|i| {
            let expect = if i % 5 == 3 { Expect::Version(99) } else { Expect::Absent };
            store.commit(put(&format!("key/{i:03}"), "v", expect))
        })
        .collect();
    let mut revision = 0;
    for (i, future) in futures.into_iter().enumerate() {
        let result = future.await;
        if i % 5 == 3 {
            assert!(is_conflict(result, &format!("key/{i:03}")));
        } else {
            revision += 1;
            assert_eq!(result.unwrap(), revision);
        }
    }
    let all = store.list(ListQuery::prefix("key/")).await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|r| !r.key.ends_with('3') && !r.key.ends_with('8')));
}

#[tokio::test]
async fn versions_and_revisions() {
    let (_dir, store) = open();
    let txn = Txn::new().put("a", "1", Expect::Any).put("b", "1", Expect::Any);
    assert_eq!(store.commit(txn).await.unwrap(), 1);
    assert_eq!(store.commit(put("a", "2", Expect::Any)).await.unwrap(), 2);
    assert_eq!(store.commit(put("c", "1", Expect::Any)).await.unwrap(), 3);
    let a = store.get("a").await.unwrap().unwrap();
    let b = store.get("b").await.unwrap().unwrap();
    let c = store.get("c").await.unwrap().unwrap();
    assert_eq!((a.version, a.revision), (2, 2));
    assert_eq!((b.version, b.revision), (1, 1));
    assert_eq!((c.version, c.revision), (1, 3));
    assert_eq!(store.revision(), 3);
}

#[tokio::test]
async fn empty_txn_returns_current_revision() {
    let (_dir, store) = open();
    assert_eq!(store.commit(Txn::new()).await.unwrap(), 0);
    store.commit(put("a", "1", Expect::Any)).await.unwrap();
    assert_eq!(store.commit(Txn::new()).await.unwrap(), 1);
}

#[tokio::test]
async fn invalid_txns_are_rejected() {
    let (_dir, store) = open();
    let dup = Txn::new().put("a", "1", Expect::Any).delete("a", Expect::Any);
    assert!(matches!(store.commit(dup).await, Err(StoreError::DuplicateKey { .. })));
    let empty = put("", "1", Expect::Any);
    assert!(matches!(store.commit(empty).await, Err(StoreError::InvalidKey { .. })));
    assert_eq!(store.revision(), 0);
}

async fn keys(store: &SqliteStore, query: ListQuery) -> Vec<String> {
    store.list(query).await.unwrap().into_iter().map(|r| r.key).collect()
}

#[tokio::test]
async fn list_prefix_start_after_reverse_limit() {
    let (_dir, store) = open();
    let mut txn = Txn::new();
    for key in ["a", "a/1", "a/2", "a/3", "a0", "b/1", "a/\u{7f}", "a/é"] {
        txn = txn.put(key, format!("v:{key}"), Expect::Absent);
    }
    store.commit(txn).await.unwrap();

    let all_a = keys(&store, ListQuery::prefix("a/")).await;
    assert_eq!(all_a, ["a/1", "a/2", "a/3", "a/\u{7f}", "a/é"]);
    assert_eq!(keys(&store, ListQuery::prefix("")).await.len(), 8);
    assert_eq!(keys(&store, ListQuery::prefix("a/\u{7f}")).await, ["a/\u{7f}"]);

    let after = ListQuery { start_after: Some("a/2".into()), limit: Some(2), ..ListQuery::prefix("a/") };
    assert_eq!(keys(&store, after).await, ["a/3", "a/\u{7f}"]);

    let reverse = ListQuery { start_after: Some("a/3".into()), reverse: true, ..ListQuery::prefix("a/") };
    assert_eq!(keys(&store, reverse).await, ["a/2", "a/1"]);

    let last = ListQuery { reverse: true, limit: Some(1), ..ListQuery::prefix("a/") };
    assert_eq!(keys(&store, last).await, ["a/é"]);

    let none = ListQuery { limit: Some(0), ..ListQuery::prefix("a/") };
    assert!(keys(&store, none).await.is_empty());

    let full = store.list(ListQuery::prefix("b/")).await.unwrap();
    assert_eq!(full[0].value, b"v:b/1");
    assert_eq!((full[0].version, full[0].revision), (1, 1));
    let bare = store.list(ListQuery { keys_only: true, ..ListQuery::prefix("b/") }).await.unwrap();
    assert_eq!(bare[0].key, "b/1");
    assert!(bare[0].value.is_empty());
    assert_eq!((bare[0].version, bare[0].revision), (1, 1));
}

#[tokio::test]
async fn commits_apply_in_call_order() {
    let (_dir, store) = open();
    // The second is called before the first is polled; both must still apply in
    // call order: the CAS in the second only passes if the first applied before it.
    let first = store.commit(put("k", "1", Expect::Absent));
    let second = store.commit(put("k", "2", Expect::Version(1)));
    let third = store.commit(Txn::new().delete("k", Expect::Version(2)));
    assert_eq!(third.await.unwrap(), 3);
    assert_eq!(second.await.unwrap(), 2);
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(store.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn dropped_commit_future_still_applies() {
    let (_dir, store) = open();
    drop(store.commit(put("k", "1", Expect::Absent)));
    assert_eq!(store.commit(put("k", "2", Expect::Version(1))).await.unwrap(), 2);
}

#[tokio::test]
async fn reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.commit(put("a", "1", Expect::Absent)).await.unwrap();
        store.commit(put("a", "2", Expect::Version(1))).await.unwrap();
        store.commit(put("b", "1", Expect::Absent)).await.unwrap();
        store.commit(Txn::new().delete("b", Expect::Any)).await.unwrap();
        // Queued but never awaited: the drop drains the queue before closing.
        drop(store.commit(put("c", "1", Expect::Absent)));
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.revision(), 5);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.version, a.revision), (&b"2"[..], 2, 2));
    assert_eq!(store.get("b").await.unwrap(), None);
    assert!(store.get("c").await.unwrap().is_some());
    // Revisions keep climbing after a restart, even past deleted keys.
    assert_eq!(store.commit(put("d", "1", Expect::Absent)).await.unwrap(), 6);
}

#[tokio::test]
async fn watch_delivers_committed_changes_in_order() {
    let (_dir, store) = open();
    let mut watch = store.watch();
    store.commit(Txn::new().put("a", "1", Expect::Any).put("b", "1", Expect::Any)).await.unwrap();
    let _ = store.commit(put("a", "x", Expect::Absent)).await; // conflict: no change
    store.commit(Txn::new().delete("a", Expect::Version(1))).await.unwrap();
    store.commit(Txn::new().delete("zz", Expect::Any)).await.unwrap(); // no-op
    let expected = [
        Change { revision: 1, key: "a".into(), value: Some(b"1".to_vec()) },
        Change { revision: 1, key: "b".into(), value: Some(b"1".to_vec()) },
        Change { revision: 2, key: "a".into(), value: None },
    ];
    for want in expected {
        // Already queued: the store sends changes before answering the commit.
        let got: Arc<Change> = watch.try_recv().expect("change delivered");
        assert_eq!(*got, want);
    }
    assert!(watch.try_recv().is_err());
}

#[tokio::test]
async fn schema_too_new_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET value = 999 WHERE name = 'schema_version'", []).unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found, supported, .. }) => {
            assert_eq!(found, 999);
            assert_eq!(supported, 1);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    assert!(matches!(SqliteStore::open(&foreign), Err(StoreError::Corrupt { .. })));

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    assert!(matches!(SqliteStore::open(&garbage), Err(StoreError::Sqlite { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_never_lose_updates() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut done = 0;
                while done < 25 {
                    let current = store.get("counter").await.unwrap();
                    let (n, expect) = match &current {
                        None => (0, Expect::Absent),
                        Some(r) => {
                            (String::from_utf8_lossy(&r.value).parse::<u64>().unwrap(), Expect::Version(r.version))
                        }
                    };
                    let txn = put("counter", &(n + 1).to_string(), expect);
                    match store.commit(txn).await {
                        Ok(_) => done += 1,
                        Err(StoreError::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let record = store.get("counter").await.unwrap().unwrap();
    assert_eq!(record.value, b"200");
    assert_eq!(record.version, 200);
}
