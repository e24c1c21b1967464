//! The one error type of the store.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a store operation failed. `Clone` (sources behind `Arc`) because one failed
/// group commit answers every txn in the batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An expectation failed on key `{key}`; nothing in the txn was applied.
    #[error("expectation failed on key `{key}`; nothing in the transaction was applied")]
    Conflict { key: String },

    /// The txn names key `{key}` more than once.
    #[error("transaction names key `{key}` more than once")]
    DuplicateKey { key: String },

    /// Key `{key:?}` cannot be stored: {reason}.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// SQLite failed while `{context}`: {source}.
    #[error("sqlite failed while {context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },

    /// I/O on `{path}` failed: {source}.
    #[error("i/o on `{path}` failed: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The database at `{path}` has schema version {found}, newer than the {supported} this build knows.
    #[error("database `{path}` has schema version {found}, newer than this build supports ({supported})")]
    SchemaTooNew { path: PathBuf, found: u64, supported: u64 },

    /// The database holds something the store cannot have written: {detail}.
    #[error("store data is corrupt: {detail}")]
    Corrupt { detail: String },

    /// A blocking read task died: {detail}.
    #[error("store read task failed: {detail}")]
    ReadTask { detail: String },

    /// The store is closed (its writer thread is gone).
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps a SQLite error with what the store was doing.
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { context, source: Arc::new(source) }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source: Arc::new(source) }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt { detail: detail.into() }
    }
}
