//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.
//! Never edit a shipped migration: append a new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::OutboxError;

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: records and per-stream sequence counters.
    //
    // `pos` is AUTOINCREMENT so a position is never reused, even after the table was emptied:
    // the uplink reads "everything after position N", and a reused N would be skipped.
    // `sequences` keeps the last number handed out per stream, so deleting (acking) records
    // never makes a sequence number come back.
    "CREATE TABLE sequences (
         stream   TEXT PRIMARY KEY NOT NULL,
         last_seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE records (
         pos     INTEGER PRIMARY KEY AUTOINCREMENT,
         id      TEXT NOT NULL,
         stream  TEXT NOT NULL,
         seq     INTEGER NOT NULL,
         topic   TEXT NOT NULL,
         payload BLOB NOT NULL,
         created INTEGER NOT NULL,
         UNIQUE (stream, seq)
     );",
    // 2: held items: facts that must survive a crash but are not ready to leave yet (a sale
    // waiting for its plate match). `release` turns one into a record in one transaction.
    "CREATE TABLE held (
         key     TEXT PRIMARY KEY NOT NULL,
         body    BLOB NOT NULL,
         created INTEGER NOT NULL
     );",
    // 3: the archive: records HQ acknowledged, kept for a bounded time so HQ can ask for them
    // again (`resend`). A record lives in exactly one of `records` and `archive`; it keeps its
    // id and seq in both. `rowid` grows with the time of the ack, so pruning by size deletes
    // from the low end. `UNIQUE (stream, seq)` is also the index `resend` reads.
    "CREATE TABLE archive (
         id      TEXT NOT NULL,
         stream  TEXT NOT NULL,
         seq     INTEGER NOT NULL,
         topic   TEXT NOT NULL,
         payload BLOB NOT NULL,
         created INTEGER NOT NULL,
         acked   INTEGER NOT NULL,
         UNIQUE (stream, seq)
     );
     CREATE INDEX archive_by_ack_time ON archive (acked);",
    // 4: the last accounted volume totalizer per nozzle (raw pump units): what the kept sales
    // and gaps add up to, written with them, so a restart compares the pump against it.
    "CREATE TABLE totalizers (
         fp      INTEGER NOT NULL,
         nozzle  INTEGER NOT NULL,
         total   INTEGER NOT NULL,
         updated INTEGER NOT NULL,
         PRIMARY KEY (fp, nozzle)
     ) WITHOUT ROWID;",
    // 5: records dropped over the caps, per stream, since the file was created: the health
    // report's count survives restarts.
    "CREATE TABLE dropped (
         stream  TEXT PRIMARY KEY NOT NULL,
         records INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 6: records that can never be sent (malformed row, too big for the broker), moved out of
    // the queue so they stop blocking it, kept as they were (untyped columns) for forensics.
    "CREATE TABLE dead_letter (
         pos     INTEGER PRIMARY KEY,
         id, stream, seq, topic, payload, created,
         why     TEXT NOT NULL,
         moved   INTEGER NOT NULL
     );",
    // 7: ids of the HQ commands carried out lately: a redelivered command is not run twice.
    "CREATE TABLE commands_seen (
         id TEXT PRIMARY KEY NOT NULL,
         t  INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 8: state a restart takes over that is no record (the hours the analytics are counting),
    // one JSON body per key, replaced as a whole.
    "CREATE TABLE state (
         key     TEXT PRIMARY KEY NOT NULL,
         body    BLOB NOT NULL,
         updated INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 9: the uplink reads the real-time streams ahead of a backlog of the others: one stream's
    // waiting records in queue order, without a scan of the whole queue.
    "CREATE INDEX records_by_stream ON records (stream, pos);",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`SCHEMA_VERSION`]; each step is its own transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), OutboxError> {
    let err = |op, e| OutboxError::sqlite(path, op, e);
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| err("read the schema version", e))?;
    if found > SCHEMA_VERSION {
        return Err(OutboxError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let to = from as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err("begin a migration", e))?;
        tx.execute_batch(sql)
            .map_err(|e| err("apply a schema migration", e))?;
        // PRAGMA takes no bound parameters; `to` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {to}"))
            .map_err(|e| err("record the schema version", e))?;
        tx.commit().map_err(|e| err("commit a migration", e))?;
        tracing::info!(path = %path.display(), version = to, "outbox schema migrated");
    }
    Ok(())
}
