//! The trace files HQ's `record_trace` leaves in the data directory hold plate numbers: they are
//! kept a bounded time and a bounded total size, oldest deleted first. Only files this agent
//! names (`trace-<ms>.jsonl`) are ever deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long HQ-requested trace files are kept: long enough for HQ to fetch one.
pub const MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);
/// Most bytes all of them may take together.
pub const MAX_TOTAL_BYTES: u64 = 512 * 1024 * 1024;
/// A recording stops once its file reaches this size.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Whether `name` is a trace file this agent wrote.
fn is_trace_file(name: &str) -> bool {
    name.strip_prefix("trace-")
        .and_then(|rest| rest.strip_suffix(".jsonl"))
        .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes trace files in `dir` older than `max_age` at `now`, then the oldest until the rest
/// take at most `max_total_bytes`. `keep` (the file being written) is never deleted. Returns
/// what was deleted; a missing directory is nothing to do.
pub fn prune(
    dir: &Path,
    now: SystemTime,
    max_age: Duration,
    max_total_bytes: u64,
    keep: Option<&Path>,
) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let named = entry.file_name().to_str().is_some_and(is_trace_file);
        if !named || Some(path.as_path()) == keep {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_file() {
            files.push((meta.modified()?, meta.len(), path));
        }
    }
    files.sort();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    if let Some(kept) = keep.and_then(|k| std::fs::metadata(k).ok()) {
        total += kept.len();
    }
    let mut deleted = Vec::new();
    for (modified, len, path) in files {
        let too_old = now.duration_since(modified).unwrap_or_default() > max_age;
        if !too_old && total <= max_total_bytes {
            continue;
        }
        std::fs::remove_file(&path)?;
        total -= len;
        deleted.push(path);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: usize, age: Duration, now: SystemTime) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![b'x'; bytes]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - age).unwrap();
        path
    }

    #[test]
    fn old_files_go_then_the_oldest_until_under_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let old = file(dir.path(), "trace-1.jsonl", 10, 4 * day, now);
        let older_big = file(dir.path(), "trace-2.jsonl", 600, 2 * day, now);
        let recent = file(dir.path(), "trace-3.jsonl", 500, day, now);
        let writing = file(dir.path(), "trace-4.jsonl", 300, Duration::ZERO, now);
        let foreign = file(dir.path(), "notes.txt", 10, 30 * day, now);
        let look_alike = file(dir.path(), "trace-x.jsonl", 10, 30 * day, now);

        let deleted = prune(dir.path(), now, 3 * day, 1_000, Some(&writing)).unwrap();
        // Too old: trace-1. Then 600 + 500 + 300 > 1000: the oldest left, trace-2.
        assert_eq!(deleted, vec![old.clone(), older_big.clone()]);
        for (path, exists) in [
            (&old, false),
            (&older_big, false),
            (&recent, true),
            (&writing, true),
            (&foreign, true),
            (&look_alike, true),
        ] {
            assert_eq!(path.exists(), exists, "{}", path.display());
        }
        assert!(prune(&dir.path().join("none"), now, day, 0, None)
            .unwrap()
            .is_empty());
    }
}
