//! What can go wrong with the outbox file. Every variant names the file, so an operator reading
//! the agent's log knows which file to look at.

use std::path::PathBuf;

use rusqlite::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: cannot create its directory: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("outbox {path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("outbox {path}: not a usable SQLite database (corrupt, or not an outbox file) while trying to {op}: {source}")]
    Corrupt {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },

    #[error("outbox {path}: cannot write (read-only file or directory, or no permission) while trying to {op}: {source}")]
    NotWritable {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },

    #[error("outbox {path}: disk full while trying to {op}: {source}")]
    DiskFull {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },

    #[error("outbox {path}: schema version {found} is newer than this agent knows ({supported}); refusing to touch it (was the agent downgraded?)")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("outbox {path}: journal mode is {got:?}, wanted \"wal\" (is the file on a filesystem without shared-memory support?)")]
    NoWal { path: PathBuf, got: String },

    #[error("outbox {path}: failed to {op}: {source}")]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        source: rusqlite::Error,
    },

    #[error("outbox {path}: record at row {rowid} is malformed: {why}")]
    Malformed {
        path: PathBuf,
        rowid: i64,
        why: String,
    },

    #[error("outbox {path}: held item {key} is malformed: {why}")]
    MalformedHeld {
        path: PathBuf,
        key: String,
        why: String,
    },

    #[error("outbox {path}: kept state {key} is malformed: {why}")]
    MalformedState {
        path: PathBuf,
        key: String,
        why: String,
    },

    /// `PRAGMA quick_check` found damage the file's header did not show.
    #[error("outbox {path}: integrity check failed: {report}")]
    Damaged { path: PathBuf, report: String },

    #[error("outbox {path}: cannot move the unusable file aside to {to}: {source}")]
    Quarantine {
        path: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },

    /// DC101 totalizers have 10 digits; a larger value is a driver bug, never stored.
    #[error("totalizer of FP {fp} nozzle {nozzle} out of range: {total}")]
    TotalizerOutOfRange { fp: u8, nozzle: u8, total: u64 },

    #[error("outbox {path}: cannot encode the message: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl OutboxError {
    /// The file itself is unusable (not SQLite, or damaged): moving it aside and starting a
    /// fresh one helps. Other errors (disk full, permissions) would hit a fresh file too.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            OutboxError::Corrupt { .. } | OutboxError::Damaged { .. }
        )
    }

    /// Sorts a SQLite error into the variant that tells the operator what to do about it.
    pub(crate) fn sqlite(
        path: &std::path::Path,
        op: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                OutboxError::Corrupt { path, op, source }
            }
            Some(ErrorCode::ReadOnly)
            | Some(ErrorCode::PermissionDenied)
            | Some(ErrorCode::CannotOpen) => OutboxError::NotWritable { path, op, source },
            Some(ErrorCode::DiskFull) => OutboxError::DiskFull { path, op, source },
            _ => OutboxError::Sqlite { path, op, source },
        }
    }
}
