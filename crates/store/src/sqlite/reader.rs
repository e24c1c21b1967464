//! Read side: a small pool of read-only connections, used from blocking threads.
//!
//! In WAL mode readers never wait for the writer, and each statement reads one
//! snapshot of the last commit, so a `list` is consistent on its own.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::{ListQuery, Record, StoreError};

/// How long a connection waits on a lock before `SQLITE_BUSY`; readers in WAL mode
/// only wait during recovery or a checkpoint truncation.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A fixed set of read-only connections.
pub(crate) struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    /// Opens `size` read-only connections to the (already migrated) database.
    pub(crate) fn open(path: &Path, size: usize) -> Result<Self, StoreError> {
        let conns = (0..size.max(1)).map(|_| open_reader(path).map(Mutex::new)).collect::<Result<_, _>>()?;
        Ok(Self { conns, next: AtomicUsize::new(0) })
    }

    /// Runs `f` on a free connection, or waits for one. Blocks: call from a blocking thread.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        for conn in &self.conns {
            if let Ok(guard) = conn.try_lock() {
                return f(&guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        // A panic in another reader leaves its connection usable: no txn spans calls.
        let guard = self.conns[i].lock().unwrap_or_else(PoisonError::into_inner);
        f(&guard)
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(StoreError::sqlite("opening a read connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(StoreError::sqlite("setting the read busy timeout"))?;
    // Room for every shape `list_sql` can produce, plus `get`.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The record at `key`.
pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<Record>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value, version, revision FROM kv WHERE key = ?1")
        .map_err(StoreError::sqlite("preparing get"))?;
    let row = stmt.query_row([key], raw_record).optional().map_err(StoreError::sqlite("reading a key"))?;
    row.map(RawRecord::into_record).transpose()
}

/// The records matching `query`, as one range scan on the primary key.
pub(crate) fn list(conn: &Connection, query: &ListQuery) -> Result<Vec<Record>, StoreError> {
    let (sql, params) = list_sql(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::sqlite("preparing list"))?;
    let rows =
        stmt.query_map(rusqlite::params_from_iter(params), raw_record).map_err(StoreError::sqlite("listing keys"))?;
    rows.map(|row| row.map_err(StoreError::sqlite("listing keys"))?.into_record()).collect()
}

/// Builds the list statement. Bounds are plain comparisons (not `LIKE`) so SQLite
/// turns them into a range on the primary key; only the shape of the query goes
/// into the SQL text, so the statement cache holds at most a few variants.
fn list_sql(query: &ListQuery) -> (String, Vec<Value>) {
    let value = if query.keys_only { "X''" } else { "value" };
    let mut sql = format!("SELECT key, {value}, version, revision FROM kv WHERE key >= ?");
    let mut params = vec![Value::Text(query.prefix.clone())];
    if let Some(end) = prefix_successor(&query.prefix) {
        sql.push_str(" AND key < ?");
        params.push(Value::Text(end));
    }
    if let Some(after) = &query.start_after {
        sql.push_str(if query.reverse { " AND key < ?" } else { " AND key > ?" });
        params.push(Value::Text(after.clone()));
    }
    sql.push_str(if query.reverse { " ORDER BY key DESC" } else { " ORDER BY key ASC" });
    if let Some(limit) = query.limit {
        sql.push_str(" LIMIT ?");
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, params)
}

/// The smallest string greater than every string starting with `prefix`, or `None`
/// when no such bound is needed (empty prefix, or only `char::MAX` characters).
///
/// UTF-8 byte order equals code-point order, so incrementing the last character
/// that can be incremented gives the bound SQLite's binary collation agrees with.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The next Unicode scalar value after `c`, skipping the surrogate gap.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        c => char::from_u32(u32::from(c) + 1),
    }
}

/// A row as SQLite stores it, before range checks.
struct RawRecord {
    key: String,
    value: Vec<u8>,
    version: i64,
    revision: i64,
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord { key: row.get(0)?, value: row.get(1)?, version: row.get(2)?, revision: row.get(3)? })
}

impl RawRecord {
    fn into_record(self) -> Result<Record, StoreError> {
        let version = to_u64(self.version, "version", &self.key)?;
        let revision = to_u64(self.revision, "revision", &self.key)?;
        Ok(Record { key: self.key, value: self.value, version, revision })
    }
}

fn to_u64(value: i64, what: &str, key: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("key `{key}` has negative {what} {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }

    #[test]
    fn successor_orders_after_every_extension() {
        for prefix in ["a", "a\u{7f}", "é", "z\u{FFFF}"] {
            let end = prefix_successor(prefix).unwrap_or_default();
            for tail in ["", "\u{1}", "zzz", "\u{10FFFF}\u{10FFFF}"] {
                let key = format!("{prefix}{tail}");
                assert!(key.as_bytes() < end.as_bytes(), "{key:?} !< {end:?}");
            }
        }
    }
}
