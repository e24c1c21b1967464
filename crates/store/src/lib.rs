//! The store of record: a versioned key-value store behind the [`Store`] trait.
//!
//! Every piece of berth's control-plane state lives here, and every state change
//! is a compare-and-swap [`Txn`]. The trait is shaped after etcd so that an etcd
//! backend can implement it for several server replicas; [`SqliteStore`] is the
//! embedded default.
//!
//! # Model
//!
//! - **Keys** are non-empty UTF-8 strings with `/` separators (`cluster/default`,
//!   `taskdef/web/0000000003`) and sort byte-wise, so a prefix names a subtree and
//!   zero-padded numbers sort numerically. Values are opaque bytes.
//! - **Revision** is store-wide: every committed txn that changes at least one key
//!   gets the next revision (1, 2, ...), and it never goes back, across restarts too.
//!   A [`Record`]'s `revision` is the revision of the txn that last modified it
//!   (etcd's `mod_revision`).
//! - **Version** is per key: 1 when the key is created, +1 on each put, and the key
//!   starts again at 1 after a delete (etcd's `version`). CAS compares on it
//!   ([`Expect`]) because it is stable under unrelated writes.
//! - **Atomicity**: a txn checks all its expectations against the state before it,
//!   then applies all its ops or none. A key may appear at most once per txn.
//! - **Durability**: `commit` resolves `Ok` only once the txn is on disk (fsynced);
//!   a process killed with SIGKILL afterwards loses nothing acknowledged.
//! - **Ordering**: a txn is enqueued when [`Store::commit`] is *called*, so txns
//!   committed one after another by the same caller apply in that order, awaited
//!   or not. [`Store::watch`] delivers changes in revision order after they are durable.
//!
//! # Limitations
//!
//! - The change feed is live only: a watcher sees changes committed after it
//!   subscribed, and one that falls more than [`WATCH_CAPACITY`] changes behind
//!   gets `RecvError::Lagged` and must re-list.
//! - One process at a time may open a given SQLite store.

mod error;
mod sqlite;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use error::StoreError;
pub use sqlite::SqliteStore;

/// A boxed `Send` future, so that [`Store`] stays usable as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many changes a [`Store::watch`] receiver may fall behind before it lags.
pub const WATCH_CAPACITY: usize = 4096;

/// One key with its value and version information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    /// Empty when listed with [`ListQuery::keys_only`].
    pub value: Vec<u8>,
    /// Per-key version: 1 on create, +1 on each put; like etcd's `version`.
    pub version: u64,
    /// Store-wide revision of the commit that last modified this key (etcd `mod_revision`).
    pub revision: u64,
}

/// The condition an [`Op`] requires of its key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No condition.
    Any,
    /// The key must not exist.
    Absent,
    /// The key's per-key version must equal this. `Version(0)` means absent, as in
    /// etcd where a missing key has version 0.
    Version(u64),
}

impl Expect {
    /// Whether a key whose current version is `current` (`None` = absent) passes.
    pub fn matches(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent | Expect::Version(0) => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// One write inside a [`Txn`].
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        expect: Expect,
    },
    /// Deleting an absent key (with a passing expectation) is a no-op.
    Delete {
        key: String,
        expect: Expect,
    },
}

impl Op {
    /// The key this op touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    /// The expectation this op checks.
    pub fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }
}

/// A set of ops applied atomically by [`Store::commit`].
#[derive(Debug, Clone, Default)]
pub struct Txn {
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `value` at `key`, applied only if `expect` holds.
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>, expect: Expect) -> Self {
        self.ops.push(Op::Put { key: key.into(), value: value.into(), expect });
        self
    }

    /// Adds a delete of `key`, applied only if `expect` holds.
    pub fn delete(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.ops.push(Op::Delete { key: key.into(), expect });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Rejects what no backend can apply: bad keys, and a key named twice
    /// (expectations are checked against the state before the txn, so a second
    /// op on the same key would be ambiguous; etcd rejects it too).
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut seen = HashSet::with_capacity(self.ops.len());
        for op in &self.ops {
            validate_key(op.key())?;
            if !seen.insert(op.key()) {
                return Err(StoreError::DuplicateKey { key: op.key().to_owned() });
            }
        }
        Ok(())
    }
}

/// Checks that `key` can be stored: non-empty and without NUL (which C APIs,
/// SQLite's included, treat as a terminator).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        "key is empty"
    } else if key.contains('\0') {
        "key contains a NUL character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey { key: key.to_owned(), reason })
}

/// What [`Store::list`] returns: keys under `prefix`, in key order.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    /// Exclusive bound: keys strictly after (or strictly before when reverse).
    pub start_after: Option<String>,
    /// Descending key order.
    pub reverse: bool,
    pub limit: Option<usize>,
    /// Leave [`Record::value`] empty (cheaper for large values).
    pub keys_only: bool,
}

impl ListQuery {
    /// All keys starting with `prefix`, ascending.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), ..Self::default() }
    }
}

/// One committed change, as delivered by [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Revision of the txn that made the change.
    pub revision: u64,
    pub key: String,
    /// The new value; `None` when the key was deleted.
    pub value: Option<Vec<u8>>,
}

/// A versioned key-value store (see the crate docs for the model).
pub trait Store: Send + Sync + 'static {
    /// The current record at `key`, if any.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// Records matching `query`, from one consistent snapshot.
    fn list(&self, query: ListQuery) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// Applies every op atomically, after checking every expectation; on any mismatch
    /// nothing is applied and [`StoreError::Conflict`] names the first failing key.
    /// Durable (fsynced) when the future resolves Ok. Ordering promise: the txn is
    /// enqueued when `commit` is called (not when first polled), so two commits called
    /// in sequence are applied in that order even if the first is not yet awaited.
    /// Returns the new store revision (the current one if the txn changed nothing).
    fn commit(&self, txn: Txn) -> BoxFuture<'static, Result<u64, StoreError>>;

    /// Current store-wide revision (last committed).
    fn revision(&self) -> u64;

    /// Change feed of committed changes, delivered after they are durable.
    fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>>;
}

#[cfg(test)]
mod tests;
