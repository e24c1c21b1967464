//! The SQLite store against a `BTreeMap` model, for random txns.
//!
//! Each case queues all its txns without awaiting (so they share group commits)
//! and checks that every outcome equals applying them one by one to the model.

use std::collections::{BTreeMap, HashSet};

use berth_store::{Expect, ListQuery, Op, Record, SqliteStore, Store, StoreError, Txn};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "a/1", "a/2", "a/2/x", "a0", "b", "b/1", "é/1"];

/// The store's semantics, spelled out as simply as possible.
#[derive(Default)]
struct Model {
    map: BTreeMap<String, Record>,
    revision: u64,
}

impl Model {
    fn version(&self, key: &str) -> Option<u64> {
        self.map.get(key).map(|r| r.version)
    }

    fn commit(&mut self, txn: &Txn) -> Result<u64, String> {
        let mut seen = HashSet::new();
        for op in &txn.ops {
            if !seen.insert(op.key()) {
                return Err(format!("duplicate {}", op.key()));
            }
        }
        for op in &txn.ops {
            if !expect_holds(op.expect(), self.version(op.key())) {
                return Err(format!("conflict {}", op.key()));
            }
        }
        let revision = self.revision + 1;
        let mut changed = false;
        for op in &txn.ops {
            match op {
                Op::Put { key, value, .. } => {
                    let version = self.version(key).map_or(1, |v| v + 1);
                    let record = Record { key: key.clone(), value: value.clone(), version, revision };
                    self.map.insert(key.clone(), record);
                    changed = true;
                }
                Op::Delete { key, .. } => changed |= self.map.remove(key).is_some(),
            }
        }
        if changed {
            self.revision = revision;
        }
        Ok(self.revision)
    }

    fn list(&self, q: &ListQuery) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .map
            .values()
            .filter(|r| r.key.starts_with(&q.prefix))
            .filter(|r| match &q.start_after {
                None => true,
                Some(s) if q.reverse => r.key < *s,
                Some(s) => r.key > *s,
            })
            .cloned()
            .collect();
        if q.reverse {
            out.reverse();
        }
        out.truncate(q.limit.unwrap_or(usize::MAX));
        if q.keys_only {
            out.iter_mut().for_each(|r| r.value.clear());
        }
        out
    }
}

/// The model's own reading of `Expect`, independent of the store's code.
fn expect_holds(expect: Expect, version: Option<u64>) -> bool {
    match (expect, version) {
        (Expect::Any, _) => true,
        (Expect::Absent, v) => v.is_none(),
        (Expect::Version(0), None) => true,
        (Expect::Version(want), Some(have)) => want == have,
        (Expect::Version(_), None) => false,
    }
}

fn outcome(result: Result<u64, StoreError>) -> Result<u64, String> {
    result.map_err(|e| match e {
        StoreError::Conflict { key } => format!("conflict {key}"),
        StoreError::DuplicateKey { key } => format!("duplicate {key}"),
        other => format!("unexpected {other}"),
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![Just(Expect::Any), Just(Expect::Absent), (0u64..4).prop_map(Expect::Version),]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), prop::collection::vec(any::<u8>(), 0..8), expect())
            .prop_map(|(key, value, expect)| Op::Put { key, value, expect }),
        1 => (key(), expect()).prop_map(|(key, expect)| Op::Delete { key, expect }),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    prop::collection::vec(op(), 0..4).prop_map(|ops| Txn { ops })
}

fn query() -> impl Strategy<Value = ListQuery> {
    let prefix = prop::sample::select(&["", "a", "a/", "a/2", "b", "é", "z"][..]);
    (prefix, prop::option::of(key()), any::<bool>(), prop::option::of(0usize..5), any::<bool>()).prop_map(
        |(prefix, start_after, reverse, limit, keys_only)| ListQuery {
            prefix: prefix.to_owned(),
            start_after,
            reverse,
            limit,
            keys_only,
        },
    )
}

async fn check(txns: Vec<Txn>, queries: Vec<ListQuery>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let mut model = Model::default();
    {
        let store = SqliteStore::open(&path).unwrap();
        let pending: Vec<_> = txns.iter().map(|t| store.commit(t.clone())).collect();
        for (txn, future) in txns.iter().zip(pending) {
            assert_eq!(outcome(future.await), model.commit(txn), "txn {txn:?}");
        }
        assert_eq!(store.revision(), model.revision);
        for q in &queries {
            assert_eq!(store.list(q.clone()).await.unwrap(), model.list(q), "query {q:?}");
        }
    }
    // The same state after a restart.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.revision(), model.revision);
    assert_eq!(store.list(ListQuery::default()).await.unwrap(), model.list(&ListQuery::default()));
    for key in KEYS {
        assert_eq!(store.get(key).await.unwrap().as_ref(), model.map.get(*key));
    }
}

proptest! {
    #[test]
    fn store_matches_model(
        txns in prop::collection::vec(txn(), 0..40),
        queries in prop::collection::vec(query(), 0..10),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(txns, queries));
    }
}
