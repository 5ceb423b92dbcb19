//! The installer's zones live in the agent's config file. The console edits them through this
//! trait, which the config's own crate implements (it knows the file and checks it as
//! `check-config` does), so the console never writes a file it cannot check.

use std::path::PathBuf;

use matcher::Layout;

/// The config file's zones.
pub trait ZoneFile: Send + Sync {
    /// The fuelling points and zones the file holds now.
    fn layout(&self) -> Result<Layout, ZoneFileError>;

    /// Writes `layout` as the file's zones, everything else in the file untouched: checked as
    /// `check-config` checks the whole file, the previous file kept as a backup, the new one
    /// put in place at once. On an error the file is as it was.
    fn save(&self, layout: &Layout) -> Result<SavedZones, ZoneFileError>;
}

/// A save that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedZones {
    /// Where the previous file was kept.
    pub backup: PathBuf,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneFileError {
    /// The file with these zones would not pass `check-config`: each problem in words.
    #[error("the config would not pass check-config: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    File(String),
}
