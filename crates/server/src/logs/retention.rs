//! The retention sweep: deletes events older than their group's retention, and the
//! streams and events of deleted groups.
//!
//! A level-triggered loop over the store: each pass reads the groups and the purge markers
//! and deletes what they say should be gone, in bounded transactions, so a crash at any
//! point leaves work the next pass finishes.

use std::sync::Arc;
use std::time::Duration;

use berth_store::{Expect, ListQuery, Store, Txn};

use super::{keys, now_ms, retention_cutoff, GroupRecord, StreamRecord};
use crate::records::{self, RecordError};
use crate::state::State;

/// How often the sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The most keys one delete transaction removes.
const DELETE_CHUNK: usize = 10_000;

/// Runs the sweep forever.
pub async fn run(state: Arc<State>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        if let Err(error) = sweep(&*state.store, now_ms()).await {
            tracing::warn!(%error, "log retention sweep failed; retrying next pass");
        }
    }
}

/// One pass: purge deleted groups, then expire old events.
pub async fn sweep(store: &dyn Store, now: i64) -> Result<(), RecordError> {
    for (_, group) in records::list_all::<String>(store, keys::PURGES).await? {
        purge_group(store, &group).await?;
    }
    for (_, group) in records::list_all::<GroupRecord>(store, keys::GROUPS).await? {
        let Some(cutoff) = retention_cutoff(&group, now) else { continue };
        for (_, stream) in records::list_all::<StreamRecord>(store, &keys::streams(&group.name)).await? {
            let prefix = keys::events(&group.name, &stream.name);
            let bound = format!("{prefix}{}", keys::time_bound(cutoff));
            delete_while(store, &prefix, |key| key < bound.as_str()).await?;
        }
    }
    Ok(())
}

/// One purge at a time: a CreateLogGroup that finishes a purge must not race a background
/// one still deleting, which would take the new group's first streams with it.
static PURGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Removes the streams and events of a deleted group, then its marker; nothing when the
/// group has no marker.
pub async fn purge_group(store: &dyn Store, group: &str) -> Result<(), RecordError> {
    let _one_at_a_time = PURGING.lock().await;
    if store.get(&keys::purge(group)).await?.is_none() {
        return Ok(());
    }
    delete_while(store, &keys::group_events(group), |_| true).await?;
    delete_while(store, &keys::streams(group), |_| true).await?;
    store.commit(Txn::new().delete(keys::purge(group), Expect::Any)).await?;
    Ok(())
}

/// Deletes the keys under `prefix`, in order, while `keep_going` holds.
async fn delete_while(store: &dyn Store, prefix: &str, keep_going: impl Fn(&str) -> bool) -> Result<(), RecordError> {
    loop {
        let query = ListQuery { limit: Some(DELETE_CHUNK), keys_only: true, ..ListQuery::prefix(prefix) };
        let batch = store.list(query).await?;
        let full = batch.len() == DELETE_CHUNK;
        let doomed: Vec<String> = batch.into_iter().map(|r| r.key).take_while(|k| keep_going(k)).collect();
        let done = !full || doomed.len() < DELETE_CHUNK;
        if !doomed.is_empty() {
            let txn = doomed.into_iter().fold(Txn::new(), |t, k| t.delete(k, Expect::Any));
            store.commit(txn).await?;
        }
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::EventRecord;
    use berth_store::SqliteStore;

    const DAY: i64 = 86_400_000;

    async fn put(store: &dyn Store, key: String, value: &impl serde::Serialize) {
        store.commit(Txn::new().put(key, records::encode(value).unwrap(), Expect::Any)).await.unwrap();
    }

    async fn keys(store: &dyn Store, prefix: &str) -> Vec<String> {
        store.list(ListQuery::prefix(prefix)).await.unwrap().into_iter().map(|r| r.key).collect()
    }

    fn stream(name: &str) -> StreamRecord {
        StreamRecord {
            name: name.into(),
            creation_time: 0,
            first_event_timestamp: None,
            last_event_timestamp: None,
            last_ingestion_time: None,
            next_seq: 0,
            last_batch: None,
        }
    }

    #[tokio::test]
    async fn the_sweep_expires_old_events_and_purges_deleted_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let now = 100 * DAY;
        let group = |name: &str, days| GroupRecord {
            name: name.into(),
            region: "r".into(),
            creation_time: 0,
            retention_in_days: days,
        };
        put(&store, keys::group("kept"), &group("kept", Some(1))).await;
        put(&store, keys::group("forever"), &group("forever", None)).await;
        for g in ["kept", "forever", "gone"] {
            put(&store, keys::stream(g, "s"), &stream("s")).await;
            for (seq, t) in (0..).zip([now - 3 * DAY, now - DAY - 1, now - DAY + 1, now]) {
                let e = EventRecord { t, i: t, m: "m".into() };
                put(&store, format!("{}{}", keys::events(g, "s"), keys::position(t, seq)), &e).await;
            }
        }
        put(&store, keys::purge("gone"), &"gone").await;
        sweep(&store, now).await.unwrap();
        let kept = keys(&store, &keys::events("kept", "s")).await;
        assert_eq!(
            kept,
            vec![
                format!("{}{}", keys::events("kept", "s"), keys::position(now - DAY + 1, 2)),
                format!("{}{}", keys::events("kept", "s"), keys::position(now, 3)),
            ]
        );
        assert_eq!(keys(&store, &keys::events("forever", "s")).await.len(), 4);
        assert!(keys(&store, &keys::group_events("gone")).await.is_empty());
        assert!(keys(&store, &keys::streams("gone")).await.is_empty());
        assert!(keys(&store, keys::PURGES).await.is_empty());
    }
}
