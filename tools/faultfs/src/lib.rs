//! File-system faults for tests that run real processes, without root: an `LD_PRELOAD` shim
//! (`faultfs.c`, built by `build.rs`) that acts on the files under one directory.
//!
//! - **Full disk:** while [`Faults::set_disk_full`] is on, every write, `pwrite`, growing
//!   `ftruncate` and `fallocate` there fails with `ENOSPC`, so SQLite sees the same
//!   `SQLITE_FULL` a full file system gives it.
//! - **Stalled sync:** while [`Faults::set_sync_stall`] is on, `fsync`/`fdatasync` there wait: a
//!   process killed then dies between handing data to the kernel and having it on disk.
//! - **Power cut:** with an undo log, the shim saves what each write replaces and marks each
//!   sync. After the process is killed, [`power_cut`] puts back what the writes that no sync
//!   covered replaced, from a chosen point of the log on: the file as a disk that lost power at
//!   that point could hold it.
//!
//! The shim only interposes libc calls, so it sees what a dynamically linked process does
//! through libc (SQLite, Rust's `std::fs`); `mmap` writes and directory entries are not
//! modelled (SQLite's `-shm` is rebuilt after a crash and is never logged).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod undo;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use undo::{lost_at, power_cut, read_log, CutReport, Op, UndoError, UndoRecord};

/// The shim's shared library, built with this crate.
pub fn shim() -> &'static Path {
    Path::new(env!("FAULTFS_SO"))
}

/// The faults of one watched directory, switched by flag files in a control directory that
/// the shim reads at every call.
#[derive(Debug, Clone)]
pub struct Faults {
    watched: PathBuf,
    control: PathBuf,
    undo: Option<PathBuf>,
}

const DISK_FULL: &str = "enospc";
const SYNC_STALL: &str = "stall_sync";
const STALLED: &str = "stalled";

impl Faults {
    /// Faults for the files under `watched`, switched through `control`. Both are created if
    /// missing; `watched` is resolved to the path the kernel reports for open files.
    pub fn new(watched: impl AsRef<Path>, control: impl AsRef<Path>) -> io::Result<Faults> {
        std::fs::create_dir_all(watched.as_ref())?;
        std::fs::create_dir_all(control.as_ref())?;
        Ok(Faults {
            watched: watched.as_ref().canonicalize()?,
            control: control.as_ref().canonicalize()?,
            undo: None,
        })
    }

    /// Also keep an undo log at `log` (outside the watched directory) for [`power_cut`].
    pub fn with_undo_log(mut self, log: impl Into<PathBuf>) -> Faults {
        self.undo = Some(log.into());
        self
    }

    /// The undo log, when one was asked for.
    pub fn undo_log(&self) -> Option<&Path> {
        self.undo.as_deref()
    }

    /// The directory whose files get the faults.
    pub fn watched(&self) -> &Path {
        &self.watched
    }

    /// Makes `command` run under the shim with these faults (keeping any `LD_PRELOAD` it had).
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        let mut preload = OsString::from(shim());
        if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
            preload.push(":");
            preload.push(existing);
        }
        // The shim compares path prefixes: a trailing slash keeps `/x/data` from matching
        // `/x/data2`.
        let mut watched = self.watched.clone().into_os_string();
        watched.push("/");
        command
            .env("LD_PRELOAD", preload)
            .env("FAULTFS_DIR", watched)
            .env("FAULTFS_CTL", &self.control);
        match &self.undo {
            Some(log) => command.env("FAULTFS_UNDO", log),
            None => command.env_remove("FAULTFS_UNDO"),
        }
    }

    /// Turns the full disk on or off.
    pub fn set_disk_full(&self, full: bool) -> io::Result<()> {
        self.set_flag(DISK_FULL, full)
    }

    /// Turns the sync stall on or off. Turning it on forgets earlier stalls.
    pub fn set_sync_stall(&self, stall: bool) -> io::Result<()> {
        if stall {
            remove_if_there(&self.control.join(STALLED))?;
        }
        self.set_flag(SYNC_STALL, stall)
    }

    /// Whether a sync has waited since the stall was last turned on.
    pub fn sync_stalled(&self) -> bool {
        self.control.join(STALLED).exists()
    }

    fn set_flag(&self, name: &str, on: bool) -> io::Result<()> {
        let path = self.control.join(name);
        if on {
            std::fs::write(path, b"")
        } else {
            remove_if_there(&path)
        }
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
