//! Schema versions and migrations.
//!
//! The schema version lives in `meta` (row `schema_version`). On open, every
//! migration above the stored version runs in order, all in one transaction, so a
//! crash mid-migration leaves the old schema. The next schema change is one more
//! entry at the end of [`MIGRATIONS`]; entries are never edited once released.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;

/// One step from schema version `version - 1` to `version`.
pub(crate) struct Migration {
    pub(crate) version: u64,
    pub(crate) sql: &'static str,
}

/// All migrations, in order; `MIGRATIONS[i].version == i + 1`.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    // WITHOUT ROWID: rows live in the primary-key b-tree, so a prefix list is one
    // range scan with no extra lookup.
    sql: "
        CREATE TABLE meta (
            name  TEXT PRIMARY KEY NOT NULL,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE kv (
            key      TEXT PRIMARY KEY NOT NULL,
            value    BLOB NOT NULL,
            version  INTEGER NOT NULL,
            revision INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO meta (name, value) VALUES ('revision', 0);
        INSERT INTO meta (name, value) VALUES ('schema_version', 0);
    ",
}];

/// The schema version this build writes.
pub(crate) fn latest_version() -> u64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database at `path` (open as `conn`) to [`latest_version`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("starting the migration"))?;
    let found = stored_version(&tx)?;
    let supported = latest_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew { path: path.to_owned(), found, supported });
    }
    if found == 0 && has_tables(&tx)? {
        return Err(StoreError::corrupt(format!(
            "`{}` is a SQLite database with tables but no berth schema",
            path.display()
        )));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        apply(&tx, migration)?;
    }
    tx.commit().map_err(StoreError::sqlite("committing the migration"))
}

/// Runs one migration and records its version.
fn apply(conn: &Connection, migration: &Migration) -> Result<(), StoreError> {
    tracing::info!(version = migration.version, "migrating store schema");
    conn.execute_batch(migration.sql).map_err(StoreError::sqlite("running a schema migration"))?;
    let version = i64::try_from(migration.version).map_err(|_| StoreError::corrupt("schema version out of range"))?;
    conn.execute("UPDATE meta SET value = ?1 WHERE name = 'schema_version'", [version])
        .map_err(StoreError::sqlite("recording the schema version"))?;
    Ok(())
}

/// The stored schema version; 0 for a fresh database (no `meta` table).
fn stored_version(conn: &Connection) -> Result<u64, StoreError> {
    let has_meta = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", [], |_| Ok(()))
        .optional()
        .map_err(StoreError::sqlite("looking for the meta table"))?
        .is_some();
    if !has_meta {
        return Ok(0);
    }
    let value: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE name = 'schema_version'", [], |row| row.get(0))
        .optional()
        .map_err(StoreError::sqlite("reading the schema version"))?;
    let value = value.ok_or_else(|| StoreError::corrupt("meta has no schema_version row"))?;
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative schema version {value}")))
}

/// Whether the database already holds tables, i.e. is not ours to initialise.
fn has_tables(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')", [], |row| row.get(0))
        .map_err(StoreError::sqlite("inspecting an unversioned database"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as u64 + 1);
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as u64);
    }
}
