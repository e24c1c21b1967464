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

/// Removes the streams and events of a deleted group, then its marker; nothing when the
/// group has no marker.
pub async fn purge_group(store: &dyn Store, group: &str) -> Result<(), RecordError> {
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
