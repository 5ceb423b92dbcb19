//! The shim's undo log: reading it (pure) and undoing the writes a power cut loses.
//!
//! Record layout, as `faultfs.c` writes it (native endian, this machine only):
//! `u8 kind ('W' write, 'T' truncate, 'S' sync) | u32 path length | path | u64 offset |
//! u64 size before | u64 saved length | saved bytes`.

use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a logged call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A write at `offset`; `saved` is what the file held there before.
    Write,
    /// A truncate to `offset` bytes; `saved` is what the file held from there to its end.
    Truncate,
    /// A sync (or an unlink): every earlier write to the path is on disk.
    Sync,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoRecord {
    pub op: Op,
    pub path: PathBuf,
    pub offset: u64,
    /// The file's size before the call.
    pub size_before: u64,
    pub saved: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("undo log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("undo log: record {index} has unknown kind {kind:#04x}")]
    BadKind { index: usize, kind: u8 },
}

/// What [`power_cut`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CutReport {
    /// Writes and truncates in the log.
    pub writes: usize,
    /// Syncs (and unlinks) in the log.
    pub syncs: usize,
    /// Writes and truncates undone.
    pub undone: usize,
    /// Undone records whose file no longer exists (nothing to put back).
    pub missing_files: usize,
    /// The log ended inside a record: the process died before that write was made.
    pub torn_tail: bool,
}

/// Parses a log. A record cut short at the end is left out (its write never happened): the
/// second value says whether there was one.
pub fn read_log(bytes: &[u8]) -> Result<(Vec<UndoRecord>, bool), UndoError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    loop {
        let Some((record, next)) = read_record(bytes, at, records.len())? else {
            return Ok((records, at < bytes.len()));
        };
        records.push(record);
        at = next;
    }
}

fn read_record(
    bytes: &[u8],
    at: usize,
    index: usize,
) -> Result<Option<(UndoRecord, usize)>, UndoError> {
    let take = |from: usize, n: usize| bytes.get(from..from.checked_add(n)?);
    // `take` gives exactly the bytes asked for, so the conversions cannot fail.
    let u64_at = |from: usize| {
        take(from, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    let Some(&kind) = bytes.get(at) else {
        return Ok(None);
    };
    let op = match kind {
        b'W' => Op::Write,
        b'T' => Op::Truncate,
        b'S' => Op::Sync,
        kind => return Err(UndoError::BadKind { index, kind }),
    };
    let path_len = take(at + 1, 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes);
    let Some(path_len) = path_len else {
        return Ok(None);
    };
    let path_at = at + 5;
    let Some(path) = take(path_at, path_len as usize) else {
        return Ok(None);
    };
    let nums_at = path_at + path_len as usize;
    let (Some(offset), Some(size_before), Some(saved_len)) =
        (u64_at(nums_at), u64_at(nums_at + 8), u64_at(nums_at + 16))
    else {
        return Ok(None);
    };
    let saved_at = nums_at + 24;
    let Some(saved) = usize::try_from(saved_len)
        .ok()
        .and_then(|n| take(saved_at, n))
    else {
        return Ok(None);
    };
    let record = UndoRecord {
        op,
        path: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        offset,
        size_before,
        saved: saved.to_vec(),
    };
    Ok(Some((record, saved_at + saved.len())))
}

/// The indexes of the records a power cut at `cut` loses, newest first: every write or
/// truncate at or after `cut` that no later sync of its path covers. (Earlier unsynced writes
/// are taken as having reached the disk: a cut keeps some prefix of what was written.)
pub fn lost_at(records: &[UndoRecord], cut: usize) -> Vec<usize> {
    let mut synced_later: std::collections::HashSet<&Path> = std::collections::HashSet::new();
    let mut lost = Vec::new();
    for (i, record) in records.iter().enumerate().rev() {
        match record.op {
            Op::Sync => {
                synced_later.insert(&record.path);
            }
            Op::Write | Op::Truncate => {
                if i >= cut && !synced_later.contains(record.path.as_path()) {
                    lost.push(i);
                }
            }
        }
    }
    lost
}

/// Simulates a power cut (call it once the logging process is dead): reads the undo log at
/// `log`, asks `choose_cut` for the record to cut at given how many there are (0 ..= that
/// many), undoes, newest first, what [`lost_at`] names, then removes the log. No log means the
/// process wrote nothing there: nothing to undo.
pub fn power_cut(
    log: &Path,
    choose_cut: impl FnOnce(usize) -> usize,
) -> Result<CutReport, UndoError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UndoError::Io { path, source }
    };
    let bytes = match std::fs::read(log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CutReport::default()),
        Err(e) => return Err(io_err(log)(e)),
    };
    let (records, torn_tail) = read_log(&bytes)?;
    let cut = choose_cut(records.len());
    let mut report = CutReport {
        torn_tail,
        ..CutReport::default()
    };
    for record in &records {
        match record.op {
            Op::Sync => report.syncs += 1,
            Op::Write | Op::Truncate => report.writes += 1,
        }
    }
    for i in lost_at(&records, cut) {
        let record = &records[i];
        report.undone += 1;
        let file = match OpenOptions::new().write(true).open(&record.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.missing_files += 1;
                continue;
            }
            Err(e) => return Err(io_err(&record.path)(e)),
        };
        // The bytes it replaced, then the size it had: a write past the old end is cut off,
        // a truncate that shrank gets its tail back.
        file.write_all_at(&record.saved, record.offset)
            .and_then(|()| file.set_len(record.size_before))
            .map_err(io_err(&record.path))?;
    }
    std::fs::remove_file(log).map_err(io_err(log))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: Op, path: &str) -> UndoRecord {
        UndoRecord {
            op,
            path: PathBuf::from(path),
            offset: 0,
            size_before: 0,
            saved: Vec::new(),
        }
    }

    fn encode(r: &UndoRecord) -> Vec<u8> {
        let kind = match r.op {
            Op::Write => b'W',
            Op::Truncate => b'T',
            Op::Sync => b'S',
        };
        let path = r.path.as_os_str().as_bytes();
        let mut out = vec![kind];
        out.extend((path.len() as u32).to_ne_bytes());
        out.extend(path);
        for n in [r.offset, r.size_before, r.saved.len() as u64] {
            out.extend(n.to_ne_bytes());
        }
        out.extend(&r.saved);
        out
    }

    #[test]
    fn a_log_reads_back_and_a_cut_short_last_record_is_left_out() {
        let records = vec![
            UndoRecord {
                op: Op::Write,
                path: "/d/a".into(),
                offset: 4096,
                size_before: 8192,
                saved: b"old bytes".to_vec(),
            },
            record(Op::Sync, "/d/a"),
            UndoRecord {
                op: Op::Truncate,
                path: "/d/b-wal".into(),
                offset: 0,
                size_before: 3,
                saved: b"abc".to_vec(),
            },
        ];
        let bytes: Vec<u8> = records.iter().flat_map(encode).collect();
        assert_eq!(read_log(&bytes).unwrap(), (records.clone(), false));
        for cut in 1..encode(&records[2]).len() {
            let short = &bytes[..bytes.len() - cut];
            assert_eq!(read_log(short).unwrap(), (records[..2].to_vec(), true));
        }
        let mut bad = bytes.clone();
        bad.push(b'X');
        assert!(matches!(
            read_log(&bad),
            Err(UndoError::BadKind {
                index: 3,
                kind: b'X'
            })
        ));
    }

    #[test]
    fn a_cut_loses_the_unsynced_writes_after_it_and_nothing_a_sync_covered() {
        let log = vec![
            record(Op::Write, "/a"), // 0: synced by 2
            record(Op::Write, "/b"), // 1: never synced
            record(Op::Sync, "/a"),  // 2
            record(Op::Write, "/a"), // 3: synced by 5
            record(Op::Write, "/b"), // 4: never synced
            record(Op::Sync, "/a"),  // 5
            record(Op::Write, "/a"), // 6: never synced
        ];
        assert_eq!(lost_at(&log, 0), vec![6, 4, 1]);
        assert_eq!(lost_at(&log, 2), vec![6, 4]);
        assert_eq!(lost_at(&log, 5), vec![6]);
        assert_eq!(lost_at(&log, 7), Vec::<usize>::new());
    }
}
