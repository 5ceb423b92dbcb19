//! Lossless store-and-forward for everything that leaves the station.
//!
//! The agent [`Outbox::append`]s a message; the uplink reads [`Outbox::pending`] records,
//! publishes them and [`Outbox::ack`]s (deletes) each one only once HQ's broker acknowledged it.
//! A record is durable when `append` returns (WAL + `synchronous=FULL`), so neither `kill -9`
//! nor a power cut loses it. Delivery is at-least-once: HQ deduplicates on [`Record::id`].

mod error;
mod record;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use forecourt_events::{now_millis, UnixMillis};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

pub use error::OutboxError;
pub use record::Record;

use record::Envelope;

/// How long a call waits for another connection's write lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the outbox file. Cheap to clone; clones share one connection, so calls from
/// several threads are serialised (each call is one short statement or transaction).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|source| OutboxError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&conn, &path)?;
        schema::migrate(&mut conn, &path)?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The file this outbox lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stores `body` for publishing on `topic`, stamped with a fresh id and the next sequence
    /// number of `stream`. Durable when this returns.
    pub fn append(
        &self,
        stream: &str,
        topic: &str,
        body: &serde_json::Value,
    ) -> Result<Record, OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin an append")?;
        let record = self.append_in(&tx, stream, topic, body)?;
        tx.commit()
            .map_err(|e| OutboxError::sqlite(self.path(), "commit an append", e))?;
        Ok(record)
    }

    /// Keeps `body` under `key` until [`Outbox::release`]: durable when this returns. Holding the
    /// same key again replaces its body.
    pub fn hold(&self, key: &str, body: &serde_json::Value) -> Result<(), OutboxError> {
        let path = self.path();
        let bytes = serde_json::to_vec(body).map_err(|source| OutboxError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        self.lock()
            .execute(
                "INSERT INTO held (key, body, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                params![key, bytes, now_millis()],
            )
            .map_err(|e| OutboxError::sqlite(path, "hold an item", e))?;
        Ok(())
    }

    /// Everything held, oldest first (after a restart: what was not released before the stop).
    pub fn held(&self) -> Result<Vec<(String, serde_json::Value)>, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read held items", e);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT key, body FROM held ORDER BY created, key")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(err)?;
        rows.map(|row| {
            let (key, bytes) = row.map_err(err)?;
            let body = serde_json::from_slice(&bytes).map_err(|e| OutboxError::MalformedHeld {
                path: path.to_path_buf(),
                key: key.clone(),
                why: e.to_string(),
            })?;
            Ok((key, body))
        })
        .collect()
    }

    /// Appends a record and forgets the held item `key`, in one transaction: the fact is never in
    /// both places, nor in neither. Releasing a key that is not held just appends.
    pub fn release(
        &self,
        key: &str,
        stream: &str,
        topic: &str,
        body: &serde_json::Value,
    ) -> Result<Record, OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin a release")?;
        tx.execute("DELETE FROM held WHERE key = ?1", params![key])
            .map_err(|e| OutboxError::sqlite(self.path(), "forget a held item", e))?;
        let record = self.append_in(&tx, stream, topic, body)?;
        tx.commit()
            .map_err(|e| OutboxError::sqlite(self.path(), "commit a release", e))?;
        Ok(record)
    }

    fn begin<'c>(
        &self,
        conn: &'c mut Connection,
        op: &'static str,
    ) -> Result<rusqlite::Transaction<'c>, OutboxError> {
        // IMMEDIATE takes the write lock up front: another process writing the same file makes
        // us wait (busy timeout) instead of failing halfway on a lock upgrade.
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| OutboxError::sqlite(self.path(), op, e))
    }

    fn append_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        stream: &str,
        topic: &str,
        body: &serde_json::Value,
    ) -> Result<Record, OutboxError> {
        let path = self.path();
        let err = |op, e| OutboxError::sqlite(path, op, e);
        let seq: i64 = tx
            .query_row(
                "INSERT INTO sequences (stream, last_seq) VALUES (?1, 1)
                 ON CONFLICT (stream) DO UPDATE SET last_seq = last_seq + 1
                 RETURNING last_seq",
                params![stream],
                |row| row.get(0),
            )
            .map_err(|e| err("take the next sequence number", e))?;
        let id = Uuid::new_v4();
        let created = now_millis();
        let payload = serde_json::to_vec(&Envelope {
            id: &id,
            seq: seq as u64,
            stream,
            t: created,
            body,
        })
        .map_err(|source| OutboxError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        tx.execute(
            "INSERT INTO records (id, stream, seq, topic, payload, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.to_string(), stream, seq, topic, payload, created],
        )
        .map_err(|e| err("insert a record", e))?;
        Ok(Record {
            rowid: tx.last_insert_rowid(),
            id,
            stream: stream.to_owned(),
            seq: seq as u64,
            topic: topic.to_owned(),
            payload,
            created,
        })
    }

    /// Up to `limit` records after position `after` (from the start if `None`), oldest first.
    pub fn pending(&self, after: Option<i64>, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read pending records", e);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT pos, id, stream, seq, topic, payload, created FROM records
                 WHERE pos > ?1 ORDER BY pos LIMIT ?2",
            )
            .map_err(err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after.unwrap_or(i64::MIN), limit], |row| {
                Ok(RawRecord {
                    rowid: row.get(0)?,
                    id: row.get(1)?,
                    stream: row.get(2)?,
                    seq: row.get(3)?,
                    topic: row.get(4)?,
                    payload: row.get(5)?,
                    created: row.get(6)?,
                })
            })
            .map_err(err)?;
        rows.map(|raw| raw.map_err(err)?.into_record(path))
            .collect()
    }

    /// Deletes the record at `rowid`: HQ has it. Returns whether it was still there.
    pub fn ack(&self, rowid: i64) -> Result<bool, OutboxError> {
        Ok(self.ack_many(&[rowid])? == 1)
    }

    /// Deletes several acknowledged records in one transaction (one disk sync for all).
    /// Returns how many were still there.
    pub fn ack_many(&self, rowids: &[i64]) -> Result<usize, OutboxError> {
        if rowids.is_empty() {
            return Ok(0);
        }
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "delete acknowledged records", e);
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut deleted = 0;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM records WHERE pos = ?1")
                .map_err(err)?;
            for rowid in rowids {
                deleted += stmt.execute(params![rowid]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(deleted)
    }

    /// How many records wait for HQ.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        let conn = self.lock();
        conn.query_row("SELECT COUNT(*) FROM records", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n as u64)
        .map_err(|e| OutboxError::sqlite(self.path(), "count records", e))
    }

    /// When the oldest waiting record was appended (`None` if the outbox is empty):
    /// how far behind HQ is.
    pub fn oldest_created(&self) -> Result<Option<UnixMillis>, OutboxError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT created FROM records ORDER BY pos LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| OutboxError::sqlite(self.path(), "read the oldest record", e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done write: an open transaction
        // rolls back when dropped. So a poisoned lock is safe to keep using.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Connection settings that make an append survive power loss.
fn configure(conn: &Connection, path: &Path) -> Result<(), OutboxError> {
    let err = |op, e| OutboxError::sqlite(path, op, e);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| err("set the busy timeout", e))?;
    // WAL: readers never block the writer, and a commit is one sequential write.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| err("switch to WAL journal mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OutboxError::NoWal {
            path: path.to_path_buf(),
            got: mode,
        });
    }
    // FULL: in WAL mode, NORMAL may lose the last commits on power loss; FULL syncs each commit.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| err("set synchronous=FULL", e))?;
    Ok(())
}

/// A row as stored, before checking it.
struct RawRecord {
    rowid: i64,
    id: String,
    stream: String,
    seq: i64,
    topic: String,
    payload: Vec<u8>,
    created: i64,
}

impl RawRecord {
    fn into_record(self, path: &Path) -> Result<Record, OutboxError> {
        let malformed = |why: String| OutboxError::Malformed {
            path: path.to_path_buf(),
            rowid: self.rowid,
            why,
        };
        let id = Uuid::parse_str(&self.id)
            .map_err(|e| malformed(format!("id {:?} is not a UUID: {e}", self.id)))?;
        let seq = u64::try_from(self.seq)
            .map_err(|_| malformed(format!("sequence number {} is negative", self.seq)))?;
        Ok(Record {
            rowid: self.rowid,
            id,
            stream: self.stream,
            seq,
            topic: self.topic,
            payload: self.payload,
            created: self.created,
        })
    }
}
