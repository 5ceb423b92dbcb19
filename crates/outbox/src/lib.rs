//! Lossless store-and-forward for everything that leaves the station.
//!
//! The agent [`Outbox::append`]s a message; the uplink reads [`Outbox::pending`] records,
//! publishes them and [`Outbox::ack`]s (deletes) each one only once HQ's broker acknowledged it.
//! A record is durable when `append` returns (WAL + `synchronous=FULL`), so neither `kill -9`
//! nor a power cut loses it. Delivery is at-least-once: HQ deduplicates on [`Record::id`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod limits;
mod record;
mod salvage;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use forecourt_events::{now_millis, UnixMillis};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

pub use error::OutboxError;
pub use limits::{CapState, LimitReport, OutboxLimits, OutboxUsage};
pub use record::{Record, Totalizer};
pub use salvage::Salvaged;

/// The stream of the notices [`Outbox::dead_letter`] appends.
pub const DEAD_LETTER_STREAM: &str = wire::Stream::DeadLetter.name();

/// What [`Outbox::resend_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resent {
    pub requeued: u64,
    /// The seq to resend from next, if archived records were left out by the cap.
    pub next_from_seq: Option<u64>,
    /// Seqs of the range this batch covered (inclusive ranges, ascending) that were handed out
    /// but are held neither in the queue nor in the archive: dropped over a cap, moved to the
    /// dead letters, or past the archive's retention. No resend will ever bring them.
    pub gone: Vec<(u64, u64)>,
}

/// Most `gone` ranges one resend reports (a reply stays small; the next batch reports on).
pub const RESEND_MAX_GONE_RANGES: usize = 1000;

/// What [`Outbox::read_pending`] found.
#[derive(Debug, Default)]
pub struct PendingRead {
    pub records: Vec<Record>,
    /// Rows that cannot be records: (position, what is wrong).
    pub malformed: Vec<(i64, String)>,
}

/// The records of `rows` into `read`, and the rows that cannot be records into its malformed.
fn collect_pending(mut rows: rusqlite::Rows<'_>, read: &mut PendingRead) -> rusqlite::Result<()> {
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        match RawRecord::from_row(row).and_then(RawRecord::into_record) {
            Ok(record) => read.records.push(record),
            Err(why) => read.malformed.push((rowid, why)),
        }
    }
    Ok(())
}

/// An unusable outbox file moved aside by [`Outbox::open_or_quarantine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the file is now (its `-wal`/`-shm`, if any, beside it).
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub why: String,
    /// What the fresh outbox took over from it.
    pub salvaged: Salvaged,
}

/// `outbox.sqlite` -> `outbox.sqlite.corrupt-<t>`.
fn quarantine_name(path: &Path, t: UnixMillis) -> PathBuf {
    with_suffix(path, &format!(".corrupt-{t}"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// How long a call waits for another connection's write lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the outbox file. Cheap to clone; clones share two connections: one for what the
/// station writes (appends, held items, limits), one for the uplink's drain (reading pending
/// records, deleting acknowledged ones), so a drain never waits for an append's disk sync nor
/// the other way round beyond SQLite's own write lock. Calls on one connection are serialised
/// (each is one short statement or transaction).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `synchronous=FULL`: an append is on disk when it returns.
    conn: Mutex<Connection>,
    /// `synchronous=NORMAL`: an ack's delete reaches the disk with the next sync (the next
    /// append's commit or a checkpoint). Lost in a power cut, it only means the record is
    /// published again, which HQ dedupes by id; the append path never relies on it.
    drain: Mutex<Connection>,
    limits: OutboxLimits,
    /// [`CapState`] as of the last `enforce_limits`.
    cap_state: AtomicU8,
    /// Low-value records dropped over the cap since the file was created.
    dropped: AtomicU64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox at `path` and brings its schema up to date, with
    /// the default [`OutboxLimits`].
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        Outbox::open_with_limits(path, OutboxLimits::default())
    }

    /// [`Outbox::open`] with the given caps and archive retention.
    pub fn open_with_limits(
        path: impl AsRef<Path>,
        limits: OutboxLimits,
    ) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
        let mut conn = connect(&path, Durability::EveryCommit)?;
        schema::migrate(&mut conn, &path)?;
        let dropped: i64 = conn
            .query_row("SELECT COALESCE(SUM(records), 0) FROM dropped", [], |row| {
                row.get(0)
            })
            .map_err(|e| OutboxError::sqlite(&path, "read the dropped counts", e))?;
        let drain = connect(&path, Durability::NextSync)?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
                drain: Mutex::new(drain),
                limits,
                cap_state: AtomicU8::new(CapState::Ok.to_u8()),
                dropped: AtomicU64::new(u64::try_from(dropped).unwrap_or(0)),
            }),
        })
    }

    /// Opens the outbox like [`Outbox::open_with_limits`], and checks it (`PRAGMA
    /// quick_check`). A corrupt file (see [`OutboxError::is_corrupt`]) is never deleted: it is
    /// renamed, with its `-wal` and `-shm`, to `<name>.corrupt-<unix ms>` for forensics, and a
    /// fresh outbox starts in its place, so the agent keeps polling pumps instead of crash
    /// looping. The fresh outbox takes over whatever SQLite can still read of the old file (see
    /// `salvage`): records not yet at HQ, held sales, kept totalizers, and each stream's
    /// numbering, which goes on after the last seq the old file shows (from 1 where it shows
    /// none). Returns what was moved aside and taken over, if anything.
    pub fn open_or_quarantine(
        path: impl AsRef<Path>,
        limits: OutboxLimits,
    ) -> Result<(Outbox, Option<Quarantined>), OutboxError> {
        let path = path.as_ref();
        let checked = Outbox::open_with_limits(path, limits.clone()).and_then(|outbox| {
            outbox.quick_check()?;
            Ok(outbox)
        });
        let why = match checked {
            Ok(outbox) => return Ok((outbox, None)),
            Err(e) if e.is_corrupt() => e.to_string(),
            Err(e) => return Err(e),
        };
        let moved_to = quarantine_name(path, now_millis());
        for suffix in ["", "-wal", "-shm"] {
            let (from, to) = (with_suffix(path, suffix), with_suffix(&moved_to, suffix));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                // Only the main file must exist; SQLite may have left no -wal or -shm.
                Err(e) if !suffix.is_empty() && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(OutboxError::Quarantine {
                        path: from,
                        to,
                        source,
                    })
                }
            }
        }
        let outbox = Outbox::open_with_limits(path, limits)?;
        let salvage = salvage::read(&moved_to);
        salvage::restore(&mut outbox.lock(), &salvage).map_err(|e| {
            OutboxError::sqlite(path, "take over what the quarantined file still held", e)
        })?;
        let salvaged = salvage.counts();
        Ok((
            outbox,
            Some(Quarantined {
                moved_to,
                why,
                salvaged,
            }),
        ))
    }

    /// `PRAGMA synchronous` of the write connection and of the drain connection as SQLite
    /// reports them (2 = FULL, 1 = NORMAL): what a power cut can undo depends on them.
    pub fn synchronous_levels(&self) -> Result<(i64, i64), OutboxError> {
        let level = |conn: &Connection| {
            conn.query_row("PRAGMA synchronous", [], |row| row.get::<_, i64>(0))
                .map_err(|e| OutboxError::sqlite(self.path(), "read PRAGMA synchronous", e))
        };
        Ok((level(&self.lock())?, level(&lock(&self.inner.drain))?))
    }

    /// `PRAGMA quick_check`: Ok if SQLite finds the file sound.
    pub fn quick_check(&self) -> Result<(), OutboxError> {
        let path = self.path();
        let report: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn
                .prepare("PRAGMA quick_check")
                .map_err(|e| OutboxError::sqlite(path, "check the file", e))?;
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(|e| OutboxError::sqlite(path, "check the file", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| OutboxError::sqlite(path, "check the file", e))?
        };
        if report.len() == 1 && report[0] == "ok" {
            Ok(())
        } else {
            Err(OutboxError::Damaged {
                path: path.to_path_buf(),
                report: report.join("; "),
            })
        }
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
        self.append_counted(stream, topic, body, None)
    }

    /// [`Outbox::append`], and keeps `totalizer` in the same transaction (a `sale_gap` and the
    /// reading that showed it): both or neither.
    pub fn append_counted(
        &self,
        stream: &str,
        topic: &str,
        body: &serde_json::Value,
        totalizer: Option<&Totalizer>,
    ) -> Result<Record, OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin an append")?;
        let record = self.append_in(&tx, stream, topic, body)?;
        if let Some(totalizer) = totalizer {
            self.keep_totalizer_in(&tx, totalizer)?;
        }
        tx.commit()
            .map_err(|e| OutboxError::sqlite(self.path(), "commit an append", e))?;
        Ok(record)
    }

    /// Appends several messages `(stream, topic, body)` in one transaction: one disk sync for
    /// all of them (bulk loads, benchmarks). All or nothing.
    pub fn append_batch(
        &self,
        messages: &[(&str, &str, serde_json::Value)],
    ) -> Result<Vec<Record>, OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin a batch append")?;
        let records = messages
            .iter()
            .map(|(stream, topic, body)| self.append_in(&tx, stream, topic, body))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()
            .map_err(|e| OutboxError::sqlite(self.path(), "commit a batch append", e))?;
        Ok(records)
    }

    /// Keeps `body` under `key` until [`Outbox::release`]: durable when this returns. Holding the
    /// same key again replaces its body.
    pub fn hold(&self, key: &str, body: &serde_json::Value) -> Result<(), OutboxError> {
        self.hold_counted(key, body, None)
    }

    /// [`Outbox::hold`], and keeps `totalizer` in the same transaction (a sale and the
    /// totalizer that counts it): a restart never sees one without the other.
    pub fn hold_counted(
        &self,
        key: &str,
        body: &serde_json::Value,
        totalizer: Option<&Totalizer>,
    ) -> Result<(), OutboxError> {
        let path = self.path();
        let bytes = serde_json::to_vec(body).map_err(|source| OutboxError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin a hold")?;
        tx.execute(
            "INSERT INTO held (key, body, created) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET body = excluded.body",
            params![key, bytes, now_millis()],
        )
        .map_err(|e| OutboxError::sqlite(path, "hold an item", e))?;
        if let Some(totalizer) = totalizer {
            self.keep_totalizer_in(&tx, totalizer)?;
        }
        tx.commit()
            .map_err(|e| OutboxError::sqlite(path, "commit a hold", e))?;
        Ok(())
    }

    /// Keeps a totalizer reading that showed nothing missing.
    pub fn keep_totalizer(&self, totalizer: &Totalizer) -> Result<(), OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin keeping a totalizer")?;
        self.keep_totalizer_in(&tx, totalizer)?;
        tx.commit()
            .map_err(|e| OutboxError::sqlite(self.path(), "commit a totalizer", e))
    }

    fn keep_totalizer_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        t: &Totalizer,
    ) -> Result<(), OutboxError> {
        let total = i64::try_from(t.total).map_err(|_| OutboxError::TotalizerOutOfRange {
            fp: t.fp,
            nozzle: t.nozzle,
            total: t.total,
        })?;
        tx.execute(
            "INSERT INTO totalizers (fp, nozzle, total, updated) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (fp, nozzle) DO UPDATE SET total = excluded.total,
                                                    updated = excluded.updated",
            params![t.fp, t.nozzle, total, now_millis()],
        )
        .map_err(|e| OutboxError::sqlite(self.path(), "keep a totalizer", e))?;
        Ok(())
    }

    /// The totalizers kept, per fuelling point and nozzle. A row that cannot be one (edited
    /// by hand, out of range) is left out with a warning: the nozzle then starts afresh.
    pub fn totalizers(&self) -> Result<Vec<Totalizer>, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read kept totalizers", e);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT fp, nozzle, total FROM totalizers ORDER BY fp, nozzle")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(err)?;
        let mut kept = Vec::new();
        for row in rows {
            let (fp, nozzle, total) = row.map_err(err)?;
            match (u8::try_from(fp), u8::try_from(nozzle), u64::try_from(total)) {
                (Ok(fp), Ok(nozzle), Ok(total)) => kept.push(Totalizer { fp, nozzle, total }),
                _ => tracing::warn!(fp, nozzle, total, "kept totalizer out of range; ignored"),
            }
        }
        Ok(kept)
    }

    /// Keeps `body` under `key` in place of what was there: state a restart takes over that is
    /// not a record (never sent). Durable when this returns.
    pub fn keep_state(&self, key: &str, body: &serde_json::Value) -> Result<(), OutboxError> {
        let path = self.path();
        let bytes = serde_json::to_vec(body).map_err(|source| OutboxError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        self.lock()
            .execute(
                "INSERT INTO state (key, body, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body,
                                                 updated = excluded.updated",
                params![key, bytes, now_millis()],
            )
            .map_err(|e| OutboxError::sqlite(path, "keep state", e))?;
        Ok(())
    }

    /// What [`Outbox::keep_state`] last kept under `key`.
    pub fn state(&self, key: &str) -> Result<Option<serde_json::Value>, OutboxError> {
        let path = self.path();
        let conn = self.lock();
        let bytes: Option<Vec<u8>> = conn
            .query_row("SELECT body FROM state WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| OutboxError::sqlite(path, "read state", e))?;
        bytes
            .map(|b| {
                serde_json::from_slice(&b).map_err(|e| OutboxError::MalformedState {
                    path: path.to_path_buf(),
                    key: key.to_owned(),
                    why: e.to_string(),
                })
            })
            .transpose()
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
        self.release_as(key, Uuid::new_v4(), stream, topic, body)
    }

    /// [`Outbox::release`] under a record id the caller chose, so that it can name the record
    /// (in a later correction) before the write is done. `id` must be new.
    pub fn release_as(
        &self,
        key: &str,
        id: Uuid,
        stream: &str,
        topic: &str,
        body: &serde_json::Value,
    ) -> Result<Record, OutboxError> {
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin a release")?;
        tx.execute("DELETE FROM held WHERE key = ?1", params![key])
            .map_err(|e| OutboxError::sqlite(self.path(), "forget a held item", e))?;
        let record = self.append_with_id(&tx, id, stream, topic, body)?;
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
        self.append_with_id(tx, Uuid::new_v4(), stream, topic, body)
    }

    fn append_with_id(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: Uuid,
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
        let created = now_millis();
        let payload = serde_json::to_vec(&wire::Envelope {
            id,
            seq: seq as u64,
            stream: stream.to_owned(),
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
    /// A malformed row fails the read (see [`Outbox::read_pending`] to go past it).
    pub fn pending(&self, after: Option<i64>, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let read = self.read_pending(after, limit)?;
        match read.malformed.into_iter().next() {
            Some((rowid, why)) => Err(OutboxError::Malformed {
                path: self.path().to_path_buf(),
                rowid,
                why,
            }),
            None => Ok(read.records),
        }
    }

    /// Up to `limit` rows after position `after`, oldest first: the records, and the rows that
    /// cannot be records (a bad id, a negative seq, a column of the wrong type), by position
    /// with what is wrong, so one bad row never stops the ones behind it.
    pub fn read_pending(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<PendingRead, OutboxError> {
        self.read_pending_except(&[], after, limit)
    }

    /// [`Outbox::read_pending`] for every stream but `streams`.
    pub fn read_pending_except(
        &self,
        streams: &[&str],
        after: Option<i64>,
        limit: usize,
    ) -> Result<PendingRead, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read pending records", e);
        let conn = lock(&self.inner.drain);
        // `?3, ?4, ...`: one placeholder per stream left out.
        let left_out: Vec<String> = (0..streams.len()).map(|i| format!("?{}", i + 3)).collect();
        let sql = format!(
            "SELECT pos, id, stream, seq, topic, payload, created FROM records
             WHERE pos > ?1 AND stream NOT IN ({}) ORDER BY pos LIMIT ?2",
            left_out.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
        let mut values: Vec<rusqlite::types::Value> = vec![
            after.unwrap_or(i64::MIN).into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ];
        values.extend(streams.iter().map(|s| s.to_string().into()));
        let rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(err)?;
        let mut read = PendingRead::default();
        collect_pending(rows, &mut read).map_err(err)?;
        Ok(read)
    }

    /// Up to `limit` records of `streams` after position `after`, in queue order (each stream's
    /// seq order): what the uplink sends ahead of the other streams' backlog. Read stream by
    /// stream through the `(stream, pos)` index, so a long queue of other streams costs nothing.
    pub fn read_pending_of(
        &self,
        streams: &[&str],
        after: Option<i64>,
        limit: usize,
    ) -> Result<PendingRead, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read pending records", e);
        let conn = lock(&self.inner.drain);
        let mut stmt = conn
            .prepare_cached(
                "SELECT pos, id, stream, seq, topic, payload, created FROM records
                 WHERE stream = ?1 AND pos > ?2 ORDER BY pos LIMIT ?3",
            )
            .map_err(err)?;
        let mut read = PendingRead::default();
        for stream in streams {
            let rows = stmt
                .query(params![
                    stream,
                    after.unwrap_or(i64::MIN),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ])
                .map_err(err)?;
            collect_pending(rows, &mut read).map_err(err)?;
        }
        // The first `limit` positions of all of them: every row of these streams up to the
        // last one kept is in (a stream that filled its own limit has nothing below it left).
        let mut rows: Vec<(i64, Result<Record, String>)> = read
            .records
            .drain(..)
            .map(|r| (r.rowid, Ok(r)))
            .chain(read.malformed.drain(..).map(|(pos, why)| (pos, Err(why))))
            .collect();
        rows.sort_by_key(|(pos, _)| *pos);
        rows.truncate(limit);
        for (pos, row) in rows {
            match row {
                Ok(record) => read.records.push(record),
                Err(why) => read.malformed.push((pos, why)),
            }
        }
        Ok(read)
    }

    /// Moves the record at `rowid` out of the queue into the dead-letter table (kept as it
    /// was, with `why`), and appends a `dead_letter` notice on `notice_topic` saying which
    /// record and why, in one transaction. For a record that can never be sent: it no longer
    /// blocks those behind it. Returns false if no record is at `rowid`.
    pub fn dead_letter(
        &self,
        rowid: i64,
        why: &str,
        notice_topic: &str,
    ) -> Result<bool, OutboxError> {
        let path = self.path();
        let err = |op, e| OutboxError::sqlite(path, op, e);
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin moving a record to the dead letters")?;
        let described = tx
            .query_row(
                "SELECT quote(id), quote(stream), quote(seq) FROM records WHERE pos = ?1",
                params![rowid],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| err("read a record to move to the dead letters", e))?;
        let Some((id, stream, seq)) = described else {
            return Ok(false);
        };
        tx.execute(
            "INSERT INTO dead_letter (pos, id, stream, seq, topic, payload, created, why, moved)
             SELECT pos, id, stream, seq, topic, payload, created, ?2, ?3 FROM records
             WHERE pos = ?1",
            params![rowid, why, now_millis()],
        )
        .map_err(|e| err("move a record to the dead letters", e))?;
        tx.execute("DELETE FROM records WHERE pos = ?1", params![rowid])
            .map_err(|e| err("move a record to the dead letters", e))?;
        let notice = serde_json::to_value(wire::DeadLetter {
            record: wire::DeadLetterRecord { id, stream, seq },
            why: why.to_owned(),
        })
        .map_err(|source| OutboxError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        self.append_in(&tx, DEAD_LETTER_STREAM, notice_topic, &notice)?;
        tx.commit()
            .map_err(|e| err("commit moving a record to the dead letters", e))?;
        tracing::error!(
            rowid,
            why,
            "record moved to the dead letters: it can never be sent"
        );
        Ok(true)
    }

    /// Notes that the command `id` is being carried out at `now`: true the first time, false
    /// for an id noted within `window_ms` before (a redelivery, not to run again). Ids older
    /// than the window are forgotten.
    pub fn note_command(
        &self,
        id: &str,
        now: UnixMillis,
        window_ms: i64,
    ) -> Result<bool, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "note a command id", e);
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin noting a command id")?;
        tx.execute(
            "DELETE FROM commands_seen WHERE t < ?1",
            params![now.saturating_sub(window_ms)],
        )
        .map_err(err)?;
        let new = tx
            .execute(
                "INSERT OR IGNORE INTO commands_seen (id, t) VALUES (?1, ?2)",
                params![id, now],
            )
            .map_err(err)?
            == 1;
        tx.commit().map_err(err)?;
        Ok(new)
    }

    /// Whether a record of `stream` with envelope id `id` is still held here, waiting or
    /// archived: a record this station sent, within the archive's retention.
    pub fn holds_record(&self, stream: &str, id: &Uuid) -> Result<bool, OutboxError> {
        let id = id.hyphenated().to_string();
        self.lock()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM records WHERE stream = ?1 AND id = ?2)
                     OR EXISTS (SELECT 1 FROM archive WHERE stream = ?1 AND id = ?2)",
                params![stream, id],
                |row| row.get(0),
            )
            .map_err(|e| OutboxError::sqlite(self.path(), "look for a record", e))
    }

    /// Records moved to the dead letters since the file was created.
    pub fn dead_letters(&self) -> Result<u64, OutboxError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM dead_letter", [], |row| row.get(0))
            .map_err(|e| OutboxError::sqlite(self.path(), "count the dead letters", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes the record at `rowid`: HQ has it. Returns whether it was still there.
    pub fn ack(&self, rowid: i64) -> Result<bool, OutboxError> {
        Ok(self.ack_many(&[rowid])? == 1)
    }

    /// Deletes several acknowledged records in one transaction (one disk sync for all), moving
    /// them to the archive when it is enabled. Returns how many were still there.
    pub fn ack_many(&self, rowids: &[i64]) -> Result<usize, OutboxError> {
        if rowids.is_empty() {
            return Ok(0);
        }
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "delete acknowledged records", e);
        let mut conn = lock(&self.inner.drain);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut deleted = 0;
        {
            let mut archive = if self.inner.limits.archive_enabled() {
                // REPLACE: a record sent again by `resend` and acknowledged again replaces its
                // earlier copy (same stream and seq), with the new ack time.
                Some(
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO archive
                             (id, stream, seq, topic, payload, created, acked)
                         SELECT id, stream, seq, topic, payload, created, ?3
                         FROM records WHERE pos BETWEEN ?1 AND ?2",
                    )
                    .map_err(err)?,
                )
            } else {
                None
            };
            let mut delete = tx
                .prepare_cached("DELETE FROM records WHERE pos BETWEEN ?1 AND ?2")
                .map_err(err)?;
            let now = now_millis();
            // Acks come mostly in order: one statement per run of consecutive positions
            // instead of one per record (a run holds exactly the positions acknowledged).
            for (first, last) in consecutive_runs(rowids) {
                if let Some(archive) = archive.as_mut() {
                    archive.execute(params![first, last, now]).map_err(err)?;
                }
                deleted += delete.execute(params![first, last]).map_err(err)?;
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

    /// The caps and archive retention this outbox was opened with.
    pub fn limits(&self) -> &OutboxLimits {
        &self.inner.limits
    }

    /// Puts archived records of `stream` with `seq >= from_seq` back in the queue, in seq order,
    /// with their original id, seq and payload (HQ dedupes by id). They get new positions, so
    /// the uplink sends them after what it has already read. Returns how many were re-queued.
    pub fn resend(&self, stream: &str, from_seq: u64) -> Result<u64, OutboxError> {
        Ok(self
            .resend_batch(stream, from_seq, None, u64::MAX)?
            .requeued)
    }

    /// [`Outbox::resend`] of at most `max` records with `seq <= to_seq` (`None`: no bound), so
    /// one command never holds the write lock for long and one hole is not answered with a
    /// week of records; `next_from_seq` says where to go on, if more are archived, and `gone`
    /// which seqs of the range covered can never come.
    pub fn resend_batch(
        &self,
        stream: &str,
        from_seq: u64,
        to_seq: Option<u64>,
        max: u64,
    ) -> Result<Resent, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "re-queue archived records", e);
        let from_seq = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let to_seq = to_seq.map_or(i64::MAX, |to| i64::try_from(to).unwrap_or(i64::MAX));
        let limit = i64::try_from(max.saturating_add(1)).unwrap_or(i64::MAX);
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin a resend")?;
        let mut requeued = 0u64;
        let next_from_seq;
        let gone;
        {
            let mut select = tx
                .prepare_cached(
                    "SELECT rowid, seq FROM archive WHERE stream = ?1 AND seq >= ?2 AND seq <= ?3
                     ORDER BY seq LIMIT ?4",
                )
                .map_err(err)?;
            let mut rows = select
                .query_map(params![stream, from_seq, to_seq, limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(err)?
                .collect::<Result<Vec<(i64, i64)>, _>>()
                .map_err(err)?;
            next_from_seq = if rows.len() as u64 > max {
                rows.pop().and_then(|(_, seq)| u64::try_from(seq).ok())
            } else {
                None
            };
            // The range this batch answers for: up to where the next one starts, and never
            // past the last seq handed out (later ones do not exist yet).
            let last_seq: i64 = tx
                .query_row(
                    "SELECT last_seq FROM sequences WHERE stream = ?1",
                    params![stream],
                    |row| row.get(0),
                )
                .optional()
                .map_err(err)?
                .unwrap_or(0);
            let covered_to = next_from_seq
                .map_or(to_seq, |next| i64::try_from(next).unwrap_or(i64::MAX) - 1)
                .min(last_seq);
            gone = gone_ranges(&tx, stream, from_seq, covered_to).map_err(err)?;
            let rowids = rows.into_iter().map(|(rowid, _)| rowid);
            // IGNORE: a record with that (stream, seq) still waiting is not duplicated; its
            // archive copy then stays where it is.
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO records (id, stream, seq, topic, payload, created)
                     SELECT id, stream, seq, topic, payload, created FROM archive WHERE rowid = ?1",
                )
                .map_err(err)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM archive WHERE rowid = ?1")
                .map_err(err)?;
            for rowid in rowids {
                if insert.execute(params![rowid]).map_err(err)? == 1 {
                    delete.execute(params![rowid]).map_err(err)?;
                    requeued += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(Resent {
            requeued,
            next_from_seq,
            gone,
        })
    }

    /// The bodies of the newest `limit` messages of `stream` still held locally (waiting or
    /// archived), oldest first: what the station said before a restart (e.g. hourly summaries
    /// HQ may ask for again).
    pub fn recent_bodies(
        &self,
        stream: &str,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read recent messages", e);
        let conn = lock(&self.inner.drain);
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, payload FROM records WHERE stream = ?1
                 UNION SELECT seq, payload FROM archive WHERE stream = ?1
                 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![stream, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut bodies = Vec::with_capacity(rows.len());
        for (seq, payload) in rows.into_iter().rev() {
            let mut envelope: serde_json::Value =
                serde_json::from_slice(&payload).map_err(|e| OutboxError::Malformed {
                    path: path.to_path_buf(),
                    rowid: seq,
                    why: format!("{stream} seq {seq} is not JSON: {e}"),
                })?;
            bodies.push(envelope["body"].take());
        }
        Ok(bodies)
    }

    /// Sizes of the queue and the archive (scans both: call it every few seconds, not per
    /// append).
    /// Per stream, the highest seq up to which every record has left the queue (acknowledged
    /// by the broker, or dropped over a cap, or dead-lettered): what HQ should hold by now.
    /// Records still waiting (or re-queued by a resend) hold it back.
    pub fn acked_through(&self) -> Result<std::collections::BTreeMap<String, u64>, OutboxError> {
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "read how far each stream was acknowledged", e);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT s.stream,
                        COALESCE((SELECT MIN(r.seq) - 1 FROM records r WHERE r.stream = s.stream),
                                 s.last_seq)
                 FROM sequences s",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(err)?;
        let mut through = std::collections::BTreeMap::new();
        for row in rows {
            let (stream, seq) = row.map_err(err)?;
            through.insert(stream, u64::try_from(seq).unwrap_or(0));
        }
        Ok(through)
    }

    pub fn usage(&self) -> Result<OutboxUsage, OutboxError> {
        let conn = self.lock();
        self.usage_in(&conn)
    }

    fn usage_in(&self, conn: &Connection) -> Result<OutboxUsage, OutboxError> {
        let err = |e| OutboxError::sqlite(self.path(), "measure the outbox", e);
        // length() of a BLOB reads its size from the row header, not the blob itself.
        let (records, bytes, oldest_created): (i64, i64, Option<i64>) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0), MIN(created) FROM records",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(err)?;
        let (archive_records, archive_bytes): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM archive",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(err)?;
        Ok(OutboxUsage {
            records: records as u64,
            bytes: bytes as u64,
            oldest_created,
            archive_records: archive_records as u64,
            archive_bytes: archive_bytes as u64,
        })
    }

    /// The cap state as of the last [`Outbox::enforce_limits`] (cheap: for health reports).
    pub fn cap_state(&self) -> CapState {
        CapState::from_u8(self.inner.cap_state.load(Ordering::Relaxed))
    }

    /// Low-value records dropped over the cap since the file was created (kept in it).
    pub fn dropped_total(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Applies the archive retention and the overflow policy (see [`OutboxLimits`]): prunes the
    /// archive by age and size, then drops the oldest low-value records while over a cap.
    /// The uplink calls this periodically, online or not.
    pub fn enforce_limits(&self) -> Result<LimitReport, OutboxError> {
        self.enforce_limits_at(now_millis())
    }

    /// [`Outbox::enforce_limits`] as if the time were `now` (tests).
    pub fn enforce_limits_at(&self, now: UnixMillis) -> Result<LimitReport, OutboxError> {
        let limits = &self.inner.limits;
        let path = self.path();
        let err = |e| OutboxError::sqlite(path, "enforce the outbox limits", e);
        let mut conn = self.lock();
        let tx = self.begin(&mut conn, "begin enforcing the outbox limits")?;
        let mut report = LimitReport::default();

        // The archive first: it is only a convenience for HQ.
        if limits.archive_enabled() {
            let max_age_ms =
                i64::try_from(limits.archive_max_age_s.saturating_mul(1000)).unwrap_or(i64::MAX);
            report.archive_pruned += tx
                .execute(
                    "DELETE FROM archive WHERE acked < ?1",
                    params![now.saturating_sub(max_age_ms)],
                )
                .map_err(err)? as u64;
        } else {
            report.archive_pruned += tx.execute("DELETE FROM archive", []).map_err(err)? as u64;
        }
        let mut usage = self.usage_in(&tx)?;
        if limits.archive_enabled() && usage.archive_bytes > limits.archive_max_bytes {
            let excess = usage.archive_bytes - limits.archive_max_bytes;
            // Oldest acknowledged first: rowid grows with the ack time.
            let cut = oldest_archived_covering(&tx, excess).map_err(err)?;
            for rowid in &cut {
                tx.execute("DELETE FROM archive WHERE rowid = ?1", params![rowid])
                    .map_err(err)?;
            }
            report.archive_pruned += cut.len() as u64;
        }

        // Then the queue.
        let mut state = CapState::Ok;
        if limits.over(usage.records, usage.bytes) {
            let excess_records = if limits.max_records > 0 {
                usage.records.saturating_sub(limits.max_records)
            } else {
                0
            };
            let excess_bytes = if limits.max_bytes > 0 {
                usage.bytes.saturating_sub(limits.max_bytes)
            } else {
                0
            };
            let cut = droppable_prefix(&tx, limits, excess_records, excess_bytes).map_err(err)?;
            for rowid in &cut {
                tx.execute(
                    "INSERT INTO dropped (stream, records)
                     SELECT stream, 1 FROM records WHERE pos = ?1
                     ON CONFLICT (stream) DO UPDATE SET records = records + 1",
                    params![rowid],
                )
                .map_err(err)?;
                tx.execute("DELETE FROM records WHERE pos = ?1", params![rowid])
                    .map_err(err)?;
            }
            report.dropped = cut.len() as u64;
            usage = self.usage_in(&tx)?;
            state = if limits.over(usage.records, usage.bytes) {
                CapState::OverCapProtected
            } else {
                CapState::Dropping
            };
        } else if limits.near(usage.records, usage.bytes) {
            state = CapState::NearFull;
        }
        usage = self.usage_in(&tx)?;
        tx.commit().map_err(err)?;

        match state {
            CapState::Ok => {}
            CapState::NearFull => tracing::warn!(
                records = usage.records,
                bytes = usage.bytes,
                "outbox near its cap: HQ has not taken records for a while"
            ),
            CapState::Dropping => tracing::warn!(
                dropped = report.dropped,
                records = usage.records,
                bytes = usage.bytes,
                "outbox over its cap: dropped the oldest low-value records (HQ sees seq gaps)"
            ),
            CapState::OverCapProtected => tracing::error!(
                dropped = report.dropped,
                records = usage.records,
                bytes = usage.bytes,
                "outbox over its cap with only protected records (sales) left: keeping them all; \
                 the disk is the limit now"
            ),
        }
        self.inner.cap_state.store(state.to_u8(), Ordering::Relaxed);
        self.inner
            .dropped
            .fetch_add(report.dropped, Ordering::Relaxed);
        report.state = state;
        report.usage = usage;
        Ok(report)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.conn)
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-done write: an open transaction
    // rolls back when dropped. So a poisoned lock is safe to keep using.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The oldest records of unprotected streams whose removal takes away at least
/// `excess_records` records and `excess_bytes` bytes (fewer if there are not enough).
fn droppable_prefix(
    conn: &Connection,
    limits: &OutboxLimits,
    excess_records: u64,
    excess_bytes: u64,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT pos, length(payload), stream FROM records ORDER BY pos")?;
    let mut rows = stmt.query([])?;
    let mut cut = Vec::new();
    let mut freed = 0u64;
    while (cut.len() as u64) < excess_records || freed < excess_bytes {
        let Some(row) = rows.next()? else { break };
        let stream: String = row.get(2)?;
        if limits.is_protected(&stream) {
            continue;
        }
        cut.push(row.get::<_, i64>(0)?);
        freed += row.get::<_, i64>(1)? as u64;
    }
    Ok(cut)
}

/// The oldest-acknowledged archive rows whose payloads add up to at least `bytes`.
fn oldest_archived_covering(conn: &Connection, bytes: u64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT rowid, length(payload) FROM archive ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    let mut cut = Vec::new();
    let mut freed = 0u64;
    while freed < bytes {
        let Some(row) = rows.next()? else { break };
        cut.push(row.get::<_, i64>(0)?);
        freed += row.get::<_, i64>(1)? as u64;
    }
    Ok(cut)
}

/// Sorted, de-duplicated `positions` as inclusive runs of consecutive values.
fn consecutive_runs(positions: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == p => *last = p,
            _ => runs.push((p, p)),
        }
    }
    runs
}

/// When a commit on a connection is on disk.
#[derive(Clone, Copy)]
enum Durability {
    /// When the commit returns (appends: a record must survive a power cut).
    EveryCommit,
    /// With the next sync of the WAL by any connection (deletes of acknowledged records).
    NextSync,
}

/// Opens a connection to the outbox file with [`configure`]'s settings.
fn connect(path: &Path, durability: Durability) -> Result<Connection, OutboxError> {
    let conn = Connection::open(path).map_err(|source| OutboxError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    configure(&conn, path, durability)?;
    Ok(conn)
}

/// Connection settings; with [`Durability::EveryCommit`] an append survives power loss.
fn configure(conn: &Connection, path: &Path, durability: Durability) -> Result<(), OutboxError> {
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
    // FULL: in WAL mode, NORMAL may lose the last commits on power loss (never corrupts);
    // FULL syncs each commit.
    let synchronous = match durability {
        Durability::EveryCommit => "FULL",
        Durability::NextSync => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| err("set the synchronous mode", e))?;
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
    /// The columns of a `records` row; a column of the wrong type is what is wrong with it.
    fn from_row(row: &rusqlite::Row<'_>) -> Result<RawRecord, String> {
        let column = |e: rusqlite::Error| format!("unreadable column: {e}");
        Ok(RawRecord {
            rowid: row.get(0).map_err(column)?,
            id: row.get(1).map_err(column)?,
            stream: row.get(2).map_err(column)?,
            seq: row.get(3).map_err(column)?,
            topic: row.get(4).map_err(column)?,
            payload: row.get(5).map_err(column)?,
            created: row.get(6).map_err(column)?,
        })
    }

    fn into_record(self) -> Result<Record, String> {
        let id = Uuid::parse_str(&self.id)
            .map_err(|e| format!("id {:?} is not a UUID: {e}", self.id))?;
        let seq = u64::try_from(self.seq)
            .map_err(|_| format!("sequence number {} is negative", self.seq))?;
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

/// Seqs of `stream` in `from..=to` held neither in the queue nor in the archive, as ascending
/// inclusive ranges (at most [`RESEND_MAX_GONE_RANGES`]).
fn gone_ranges(
    conn: &Connection,
    stream: &str,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(u64, u64)>> {
    let mut gone = Vec::new();
    if to < from {
        return Ok(gone);
    }
    let mut held = conn.prepare_cached(
        "SELECT seq FROM archive WHERE stream = ?1 AND seq BETWEEN ?2 AND ?3
         UNION SELECT seq FROM records WHERE stream = ?1 AND seq BETWEEN ?2 AND ?3
         ORDER BY 1",
    )?;
    let mut rows = held.query(params![stream, from, to])?;
    let mut expected = from;
    let push = |a: i64, b: i64, gone: &mut Vec<(u64, u64)>| {
        if let (Ok(a), Ok(b)) = (u64::try_from(a), u64::try_from(b)) {
            gone.push((a, b));
        }
    };
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        if seq > expected {
            push(expected, seq - 1, &mut gone);
            if gone.len() >= RESEND_MAX_GONE_RANGES {
                return Ok(gone);
            }
        }
        expected = seq.saturating_add(1);
    }
    if expected <= to {
        push(expected, to, &mut gone);
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::consecutive_runs;

    #[test]
    fn runs_cover_exactly_the_positions() {
        assert_eq!(consecutive_runs(&[]), vec![]);
        assert_eq!(
            consecutive_runs(&[5, 3, 4, 4, 9, 10, 7]),
            vec![(3, 5), (7, 7), (9, 10)]
        );
        assert_eq!(
            consecutive_runs(&[i64::MAX - 1, i64::MAX]),
            vec![(i64::MAX - 1, i64::MAX)]
        );
    }
}
