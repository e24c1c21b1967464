//! Group commit: one thread owns the write connection and applies queued txns in
//! batches, one SQLite transaction (one fsync) per batch.
//!
//! # Behavior
//!
//! The thread blocks for the first queued txn, then drains up to [`MAX_BATCH`]
//! queued behind it. The batch runs in one `BEGIN IMMEDIATE` transaction; each txn
//! runs in its own SAVEPOINT, so a txn whose expectation fails (or that hits a
//! SQLite error) is rolled back alone and the rest of the batch still applies.
//! After the single COMMIT the thread publishes the new revision, broadcasts the
//! changes, then answers every caller. If the COMMIT itself fails, every txn of
//! the batch fails with that error and none is applied.
//!
//! Queue order is commit-call order and txns apply in queue order, which is the
//! store's ordering promise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use crate::{Change, Op, StoreError, Txn};

/// Most txns applied in one SQLite transaction; bounds the latency a batch adds.
pub(crate) const MAX_BATCH: usize = 256;

/// A queued txn and where its outcome goes.
pub(crate) struct Request {
    pub(crate) txn: Txn,
    pub(crate) reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// State owned by the writer thread.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// Last committed revision, read by `Store::revision`.
    pub(crate) revision: Arc<AtomicU64>,
    pub(crate) changes: broadcast::Sender<Arc<Change>>,
}

/// What a batch did, ready to publish once committed.
struct Applied {
    /// One outcome per txn, in batch order.
    results: Vec<Result<u64, StoreError>>,
    changes: Vec<Change>,
    revision: u64,
}

impl Writer {
    /// Serves the queue until every sender is dropped and the queue is empty.
    pub(crate) fn run(mut self, queue: mpsc::Receiver<Request>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        tracing::debug!("store writer stopped");
    }

    /// Applies, commits and answers one batch.
    fn commit_batch(&mut self, batch: Vec<Request>) {
        let (txns, replies): (Vec<Txn>, Vec<_>) = batch.into_iter().map(|Request { txn, reply }| (txn, reply)).unzip();
        match self.apply_batch(txns) {
            Ok(applied) => self.publish(applied, replies),
            Err(error) => {
                tracing::warn!(%error, size = replies.len(), "store group commit failed");
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Runs `txns` in one SQLite transaction and commits it.
    fn apply_batch(&mut self, txns: Vec<Txn>) -> Result<Applied, StoreError> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("beginning a group commit"))?;
        // Read back rather than trust memory, so the revision only ever moves on
        // from what is on disk.
        let start = read_revision(&tx)?;
        let mut applied = Applied { results: Vec::with_capacity(txns.len()), changes: Vec::new(), revision: start };
        for txn in txns {
            let outcome = apply_txn(&mut tx, txn, applied.revision + 1);
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back (e.g. disk full): nothing
                // in this batch can be committed any more.
                return Err(outcome.err().unwrap_or_else(|| StoreError::corrupt("group commit transaction vanished")));
            }
            let result = outcome.map(|changes| {
                if !changes.is_empty() {
                    applied.revision += 1;
                    applied.changes.extend(changes);
                }
                applied.revision
            });
            applied.results.push(result);
        }
        finish_batch(tx, start, applied.revision)?;
        Ok(applied)
    }

    /// Makes a committed batch visible: revision, change feed, then the callers, so
    /// a caller that sees Ok also sees its revision and its changes already queued
    /// to every watcher.
    fn publish(&self, applied: Applied, replies: Vec<oneshot::Sender<Result<u64, StoreError>>>) {
        self.revision.store(applied.revision, Ordering::Release);
        if self.changes.receiver_count() > 0 {
            for change in applied.changes {
                let _ = self.changes.send(Arc::new(change));
            }
        }
        for (reply, result) in replies.into_iter().zip(applied.results) {
            // The caller may have dropped its future; the txn is committed anyway.
            let _ = reply.send(result);
        }
    }
}

/// Persists the batch's final revision (if it moved) and commits: the one fsync.
fn finish_batch(tx: Transaction<'_>, start: u64, end: u64) -> Result<(), StoreError> {
    if end != start {
        write_revision(&tx, end)?;
    }
    tx.commit().map_err(StoreError::sqlite("committing a group commit"))
}

/// Applies one txn in its own savepoint at revision `revision`; returns its changes
/// (empty if it changed nothing). On error the savepoint is rolled back.
fn apply_txn(tx: &mut Transaction<'_>, txn: Txn, revision: u64) -> Result<Vec<Change>, StoreError> {
    let savepoint = tx.savepoint().map_err(StoreError::sqlite("opening a txn savepoint"))?;
    // Dropping the savepoint without commit rolls it back.
    let changes = check_and_write(&savepoint, txn, revision)?;
    savepoint.commit().map_err(StoreError::sqlite("releasing a txn savepoint"))?;
    Ok(changes)
}

/// Checks every expectation first, so a conflict writes nothing, then writes.
fn check_and_write(conn: &Connection, txn: Txn, revision: u64) -> Result<Vec<Change>, StoreError> {
    let mut current = Vec::with_capacity(txn.ops.len());
    for op in &txn.ops {
        let version = current_version(conn, op.key())?;
        if !op.expect().matches(version) {
            return Err(StoreError::Conflict { key: op.key().to_owned() });
        }
        current.push(version);
    }
    let mut changes = Vec::with_capacity(txn.ops.len());
    for (op, version) in txn.ops.into_iter().zip(current) {
        if let Some(change) = write_op(conn, op, version, revision)? {
            changes.push(change);
        }
    }
    Ok(changes)
}

/// Writes one checked op; `None` when it changed nothing (delete of an absent key).
fn write_op(conn: &Connection, op: Op, version: Option<u64>, revision: u64) -> Result<Option<Change>, StoreError> {
    match op {
        Op::Put { key, value, .. } => {
            let next = match version {
                None => 1,
                Some(v) => {
                    v.checked_add(1).ok_or_else(|| StoreError::corrupt(format!("version of key `{key}` overflows")))?
                }
            };
            put(conn, &key, &value, next, revision)?;
            Ok(Some(Change { revision, key, value: Some(value) }))
        }
        Op::Delete { key, .. } if version.is_some() => {
            delete(conn, &key)?;
            Ok(Some(Change { revision, key, value: None }))
        }
        Op::Delete { .. } => Ok(None),
    }
}

fn current_version(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT version FROM kv WHERE key = ?1")
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
        .map_err(StoreError::sqlite("reading a key version"))?;
    version
        .map(|v| u64::try_from(v).map_err(|_| StoreError::corrupt(format!("key `{key}` has negative version {v}"))))
        .transpose()
}

fn put(conn: &Connection, key: &str, value: &[u8], version: u64, revision: u64) -> Result<(), StoreError> {
    let version = to_i64(version)?;
    let revision = to_i64(revision)?;
    conn.prepare_cached(
        "INSERT INTO kv (key, value, version, revision) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET
           value = excluded.value, version = excluded.version, revision = excluded.revision",
    )
    .and_then(|mut stmt| stmt.execute(rusqlite::params![key, value, version, revision]))
    .map_err(StoreError::sqlite("writing a key"))?;
    Ok(())
}

fn delete(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM kv WHERE key = ?1")
        .and_then(|mut stmt| stmt.execute([key]))
        .map_err(StoreError::sqlite("deleting a key"))?;
    Ok(())
}

/// The persisted store revision.
pub(crate) fn read_revision(conn: &Connection) -> Result<u64, StoreError> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE name = 'revision'")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
        .map_err(StoreError::sqlite("reading the store revision"))?;
    let value = value.ok_or_else(|| StoreError::corrupt("meta has no revision row"))?;
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative store revision {value}")))
}

fn write_revision(conn: &Connection, revision: u64) -> Result<(), StoreError> {
    let revision = to_i64(revision)?;
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")
        .and_then(|mut stmt| stmt.execute([revision]))
        .map_err(StoreError::sqlite("writing the store revision"))?;
    Ok(())
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::corrupt(format!("number {n} exceeds SQLite's integer range")))
}

#[cfg(test)]
mod tests;
