//! What a fresh outbox takes over from a quarantined one: whatever SQLite can still read of it.
//! Corruption usually hits some pages, not all: the records still waiting for HQ, the held
//! sales and the kept totalizers are often readable, and so is how far each stream had
//! numbered. Taking them over keeps those sales (their pumps were already reset), keeps the
//! totalizer baseline that lets a later gap be seen, and keeps `seq` from being reused.
//!
//! Read from a scratch copy (SQLite may replay the `-wal` into it), so the quarantined file
//! stays byte for byte as it was. Each table is read on its own, row by row until the first
//! unreadable one: a damaged table costs its own rows, not the others.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, Row};

use crate::with_suffix;

/// What could be read back, ready to go into a fresh outbox.
#[derive(Debug, Default)]
pub(crate) struct Salvage {
    /// Per stream, the highest seq the old file shows (counter, waiting, archived or dead).
    last_seqs: BTreeMap<String, i64>,
    /// `records` rows in queue order: id, stream, seq, topic, payload, created.
    records: Vec<(String, String, i64, String, Vec<u8>, i64)>,
    /// `held` rows: key, body, created.
    held: Vec<(String, Vec<u8>, i64)>,
    /// `totalizers` rows: fp, nozzle, total, updated.
    totalizers: Vec<(i64, i64, i64, i64)>,
}

/// Counts of what a fresh outbox took over from a quarantined file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// Records that were still waiting for HQ, queued again with their id and seq.
    pub records: usize,
    /// Held items (sales waiting for their plate).
    pub held: usize,
    /// Kept nozzle totalizers.
    pub totalizers: usize,
    /// Streams whose numbering goes on after the old file's last seq (the others start at 1).
    pub streams: usize,
}

impl Salvage {
    pub(crate) fn counts(&self) -> Salvaged {
        Salvaged {
            records: self.records.len(),
            held: self.held.len(),
            totalizers: self.totalizers.len(),
            streams: self.last_seqs.len(),
        }
    }
}

/// Reads what it can of the quarantined outbox at `quarantined` (with its `-wal` beside it),
/// through a scratch copy next to it that is removed again. Never fails: what cannot be read
/// is left out.
pub(crate) fn read(quarantined: &Path) -> Salvage {
    let scratch = with_suffix(quarantined, ".salvage");
    let salvage = copy_for_reading(quarantined, &scratch)
        .and_then(|()| Connection::open(&scratch).ok())
        .map(|conn| read_from(&conn))
        .unwrap_or_default();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(&scratch, suffix));
    }
    salvage
}

fn copy_for_reading(from: &Path, to: &Path) -> Option<()> {
    std::fs::copy(from, to).ok()?;
    let wal = with_suffix(from, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, with_suffix(to, "-wal")).ok()?;
    }
    Some(())
}

fn read_from(conn: &Connection) -> Salvage {
    let mut last_seqs: BTreeMap<String, i64> = BTreeMap::new();
    for sql in [
        "SELECT stream, last_seq FROM sequences",
        "SELECT stream, MAX(seq) FROM records GROUP BY stream",
        "SELECT stream, MAX(seq) FROM archive GROUP BY stream",
        "SELECT stream, MAX(seq) FROM dead_letter WHERE typeof(seq) = 'integer' GROUP BY stream",
    ] {
        for (stream, seq) in rows(conn, sql, |r| Ok((r.get::<_, String>(0)?, r.get(1)?))) {
            let last = last_seqs.entry(stream).or_insert(0);
            *last = (*last).max(seq);
        }
    }
    last_seqs.retain(|_, seq| *seq > 0);
    Salvage {
        last_seqs,
        records: rows(
            conn,
            "SELECT id, stream, seq, topic, payload, created FROM records ORDER BY pos",
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        ),
        held: rows(conn, "SELECT key, body, created FROM held", |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        }),
        totalizers: rows(
            conn,
            "SELECT fp, nozzle, total, updated FROM totalizers",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        ),
    }
}

/// The rows of `sql` up to the first that cannot be read (none if the query cannot start).
fn rows<T>(conn: &Connection, sql: &str, row: impl FnMut(&Row) -> rusqlite::Result<T>) -> Vec<T> {
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    let Ok(found) = stmt.query_map([], row) else {
        return Vec::new();
    };
    found.map_while(Result::ok).collect()
}

/// Puts `salvage` into a fresh outbox, in one transaction: held items, totalizers, the waiting
/// records (same id and seq, in their old order), then each stream's counter past every seq
/// the old file showed.
pub(crate) fn restore(conn: &mut Connection, salvage: &Salvage) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (key, body, created) in &salvage.held {
        tx.execute(
            "INSERT OR IGNORE INTO held (key, body, created) VALUES (?1, ?2, ?3)",
            params![key, body, created],
        )?;
    }
    for (fp, nozzle, total, updated) in &salvage.totalizers {
        tx.execute(
            "INSERT OR REPLACE INTO totalizers (fp, nozzle, total, updated) VALUES (?1, ?2, ?3, ?4)",
            params![fp, nozzle, total, updated],
        )?;
    }
    let mut last_seqs = salvage.last_seqs.clone();
    for (id, stream, seq, topic, payload, created) in &salvage.records {
        tx.execute(
            "INSERT OR IGNORE INTO records (id, stream, seq, topic, payload, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, stream, seq, topic, payload, created],
        )?;
        let last = last_seqs.entry(stream.clone()).or_insert(0);
        *last = (*last).max(*seq);
    }
    for (stream, last_seq) in &last_seqs {
        tx.execute(
            "INSERT INTO sequences (stream, last_seq) VALUES (?1, ?2) \
             ON CONFLICT (stream) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
            params![stream, last_seq],
        )?;
    }
    tx.commit()
}
