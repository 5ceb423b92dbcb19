//! The crops behind each sale's verdict, on local disk for the console: the plate the matcher
//! gave (or, when it was unsure, the plate it thought best) and the runner-up, one JPEG each,
//! named by the sale's record id. Bounded twice: by total size (the oldest go first) and by age.
//! Best effort by design: a disk that refuses a crop costs that crop and a log line, never a
//! sale (the sale went to the outbox before its crops are written).

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use forecourt_events::UnixMillis;
use uuid::Uuid;

/// Which of a sale's crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CropRole {
    /// The plate the verdict gave, or the best-supported one when it gave none.
    Plate,
    /// The second best-supported car at the pump.
    RunnerUp,
}

impl CropRole {
    pub const ALL: [CropRole; 2] = [CropRole::Plate, CropRole::RunnerUp];

    /// As it appears in file names and URLs.
    pub fn name(self) -> &'static str {
        match self {
            CropRole::Plate => "plate",
            CropRole::RunnerUp => "runner-up",
        }
    }

    pub fn parse(name: &str) -> Option<CropRole> {
        CropRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceLimits {
    /// All crops together at most this many bytes.
    pub max_bytes: u64,
    /// Crops older than this are deleted.
    pub max_age_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One crop file as the store knows it.
#[derive(Debug, Clone)]
struct Kept {
    written: UnixMillis,
    name: String,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Index {
    /// Oldest first.
    files: VecDeque<Kept>,
    names: HashSet<String>,
    bytes: u64,
}

/// The evidence folder. Cheap to clone (one index shared).
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    dir: PathBuf,
    limits: EvidenceLimits,
    index: Arc<Mutex<Index>>,
}

fn file_name(sale_id: Uuid, role: CropRole) -> String {
    format!("{sale_id}-{}.jpg", role.name())
}

fn millis(t: SystemTime) -> UnixMillis {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

impl EvidenceStore {
    /// Opens (creating) `dir`, taking over the crops an earlier run left there; leftovers of an
    /// interrupted write are removed.
    pub fn open(dir: &Path, limits: EvidenceLimits) -> Result<EvidenceStore, EvidenceError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            if !name.ends_with(".jpg") {
                continue;
            }
            let meta = entry.metadata().map_err(io(&path))?;
            let written = meta.modified().map(millis).unwrap_or(0);
            files.push(Kept {
                written,
                name,
                bytes: meta.len(),
            });
        }
        files.sort_by(|a, b| a.written.cmp(&b.written).then(a.name.cmp(&b.name)));
        let index = Index {
            bytes: files.iter().map(|f| f.bytes).sum(),
            names: files.iter().map(|f| f.name.clone()).collect(),
            files: files.into(),
        };
        Ok(EvidenceStore {
            dir: dir.to_path_buf(),
            limits,
            index: Arc::new(Mutex::new(index)),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // Every field is whole between statements.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `jpeg` as `sale_id`'s `role` crop (whole or not at all: a temporary file renamed),
    /// then deletes what is over the limits.
    pub fn keep(
        &self,
        sale_id: Uuid,
        role: CropRole,
        jpeg: &[u8],
        now: UnixMillis,
    ) -> Result<(), EvidenceError> {
        let name = file_name(sale_id, role);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        if let Err(e) = std::fs::write(&tmp, jpeg).map_err(io(&tmp)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        {
            let mut index = self.index();
            if index.names.insert(name.clone()) {
                index.bytes += jpeg.len() as u64;
                index.files.push_back(Kept {
                    written: now,
                    name,
                    bytes: jpeg.len() as u64,
                });
            } else if let Some(kept) = index.files.iter_mut().find(|f| f.name == name) {
                // Written again (a later verdict): same place in line, new size.
                let old = std::mem::replace(&mut kept.bytes, jpeg.len() as u64);
                index.bytes = index.bytes - old + jpeg.len() as u64;
            }
        }
        self.prune(now)
    }

    /// Deletes crops older than the age limit, then the oldest until the rest fit the size
    /// limit.
    pub fn prune(&self, now: UnixMillis) -> Result<(), EvidenceError> {
        let mut index = self.index();
        loop {
            let Some(oldest) = index.files.front() else {
                return Ok(());
            };
            let too_old = now - oldest.written > self.limits.max_age_ms;
            if !too_old && index.bytes <= self.limits.max_bytes {
                return Ok(());
            }
            let path = self.dir.join(&oldest.name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            if let Some(gone) = index.files.pop_front() {
                index.bytes -= gone.bytes;
                index.names.remove(&gone.name);
            }
        }
    }

    pub fn has(&self, sale_id: Uuid, role: CropRole) -> bool {
        self.index().names.contains(&file_name(sale_id, role))
    }

    /// `sale_id`'s `role` crop, `None` when there is none (never made, or deleted by the limits).
    pub fn get(&self, sale_id: Uuid, role: CropRole) -> Result<Option<Vec<u8>>, EvidenceError> {
        let path = self.dir.join(file_name(sale_id, role));
        match std::fs::read(&path) {
            Ok(jpeg) => Ok(Some(jpeg)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Bytes the crops take.
    pub fn bytes(&self) -> u64 {
        self.index().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn limits(max_bytes: u64) -> EvidenceLimits {
        EvidenceLimits {
            max_bytes,
            max_age_ms: 7 * DAY,
        }
    }

    #[test]
    fn keeps_and_gives_back_each_sales_crops() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(dir.path(), limits(1 << 20)).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        store.keep(a, CropRole::Plate, b"plate a", 1_000).unwrap();
        store
            .keep(a, CropRole::RunnerUp, b"runner a", 1_000)
            .unwrap();
        assert_eq!(store.get(a, CropRole::Plate).unwrap().unwrap(), b"plate a");
        assert!(store.has(a, CropRole::RunnerUp));
        assert!(!store.has(b, CropRole::Plate));
        assert_eq!(store.get(b, CropRole::Plate).unwrap(), None);
        // Written again: replaced, counted once.
        store
            .keep(a, CropRole::Plate, b"plate a, later", 2_000)
            .unwrap();
        assert_eq!(store.bytes(), 14 + 8);
        // A restart takes over what is there.
        let again = EvidenceStore::open(dir.path(), limits(1 << 20)).unwrap();
        assert!(again.has(a, CropRole::Plate) && again.has(a, CropRole::RunnerUp));
        assert_eq!(again.bytes(), 22);
        assert_eq!(CropRole::parse("runner-up"), Some(CropRole::RunnerUp));
        assert_eq!(CropRole::parse("../x"), None);
    }

    #[test]
    fn deletes_the_oldest_over_the_size_limit_and_anything_over_the_age_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(dir.path(), limits(25)).unwrap();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            store
                .keep(*id, CropRole::Plate, &[7; 10], i as i64)
                .unwrap();
        }
        // 40 bytes written, 25 allowed: the two oldest went.
        assert_eq!(store.bytes(), 20);
        assert!(!store.has(ids[0], CropRole::Plate) && !store.has(ids[1], CropRole::Plate));
        assert_eq!(store.get(ids[1], CropRole::Plate).unwrap(), None);
        assert!(store.has(ids[3], CropRole::Plate));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        store.prune(3 + 7 * DAY).unwrap();
        assert!(store.has(ids[3], CropRole::Plate));
        store.prune(3 + 7 * DAY + 1).unwrap();
        assert_eq!(store.bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_refused_write_is_an_error_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(dir.path(), limits(1 << 20)).unwrap();
        let id = Uuid::new_v4();
        // The folder gone (a disk pulled, a folder deleted by hand): an error, not a panic.
        std::fs::remove_dir(dir.path()).unwrap();
        let err = store.keep(id, CropRole::Plate, b"x", 0).unwrap_err();
        assert!(matches!(err, EvidenceError::Io { .. }));
        assert!(!store.has(id, CropRole::Plate));
        assert_eq!(store.get(id, CropRole::Plate).unwrap(), None);
        // Leftovers of an interrupted write are cleared at open.
        std::fs::create_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("x.jpg.tmp"), b"half").unwrap();
        let store = EvidenceStore::open(dir.path(), limits(1 << 20)).unwrap();
        assert_eq!(store.bytes(), 0);
        assert!(!dir.path().join("x.jpg.tmp").exists());
    }
}
