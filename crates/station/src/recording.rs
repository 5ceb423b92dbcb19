//! Trace recording: everything the matcher sees, as JSON Lines for `forecourt-agent replay`.
//! Either for the whole run (the config's `trace_file`) or for a while when HQ asks
//! (`record_trace`, files under `<data_dir>/traces/`, bounded in age and size: they hold plates).

use std::path::{Path, PathBuf};

use forecourt_events::UnixMillis;
use tracing::{info, warn};

use crate::trace_files;
use crate::RecordingError;

/// Plate reads arrive after the pump events of the same moment: 2 s puts a trace in time order.
pub const TRACE_REORDER_MS: i64 = 2_000;

type TraceFile = matcher::TraceWriter<std::io::BufWriter<std::fs::File>>;

/// How often old HQ trace files are looked for.
const PRUNE_EVERY_MS: i64 = 3_600_000;

pub(crate) struct Recording {
    trace: Option<TraceFile>,
    /// When a recording asked for by HQ ends.
    until: Option<UnixMillis>,
    /// Where HQ's recordings go.
    dir: PathBuf,
    /// The file of the recording HQ asked for, while it runs.
    path: Option<PathBuf>,
    /// When old trace files were last looked for.
    pruned_at: Option<UnixMillis>,
    layout: matcher::Layout,
}

/// Creates a trace file and writes its header (the layout).
fn open(path: &Path, layout: &matcher::Layout) -> Result<TraceFile, RecordingError> {
    let file = std::fs::File::create(path).map_err(|source| RecordingError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(matcher::TraceWriter::new(
        std::io::BufWriter::new(file),
        layout,
        TRACE_REORDER_MS,
    )?)
}

impl Recording {
    /// Records for the whole run into `configured`, if set; HQ's recordings go under `dir`.
    pub fn new(
        dir: PathBuf,
        layout: matcher::Layout,
        configured: Option<&Path>,
    ) -> Result<Recording, RecordingError> {
        let trace = match configured {
            Some(path) => {
                let trace = open(path, &layout)?;
                info!(trace = %path.display(), "recording a trace");
                Some(trace)
            }
            None => None,
        };
        Ok(Recording {
            trace,
            until: None,
            dir,
            path: None,
            pruned_at: None,
            layout,
        })
    }

    /// Starts recording for `minutes` (HQ's record_trace); returns the file.
    pub fn start(&mut self, minutes: u16, now: UnixMillis) -> Result<PathBuf, RecordingError> {
        if self.trace.is_some() && self.until.is_none() {
            return Err(RecordingError::AlreadyRecording);
        }
        self.stop();
        std::fs::create_dir_all(&self.dir).map_err(|source| RecordingError::Create {
            path: self.dir.clone(),
            source,
        })?;
        self.prune();
        let path = self.dir.join(format!("trace-{now}.jsonl"));
        self.trace = Some(open(&path, &self.layout)?);
        self.until = Some(now + i64::from(minutes) * 60_000);
        self.path = Some(path.clone());
        info!(file = %path.display(), minutes, "recording a trace for HQ");
        Ok(path)
    }

    /// Ends HQ's recording when its time is up or its file too big; prunes old files hourly.
    pub fn tick(&mut self, now: UnixMillis) {
        if self.until.is_some_and(|until| now >= until) {
            self.stop();
        }
        let too_big = self.path.as_ref().is_some_and(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.len() >= trace_files::MAX_FILE_BYTES)
        });
        if too_big {
            warn!(
                max_bytes = trace_files::MAX_FILE_BYTES,
                "trace recording stopped early: the file reached its size limit"
            );
            self.stop();
        }
        if self.pruned_at.is_none_or(|t| now - t >= PRUNE_EVERY_MS) {
            self.pruned_at = Some(now);
            self.prune();
        }
    }

    fn prune(&self) {
        match trace_files::prune(
            &self.dir,
            std::time::SystemTime::now(),
            trace_files::MAX_AGE,
            trace_files::MAX_TOTAL_BYTES,
            self.path.as_deref(),
        ) {
            Ok(deleted) if !deleted.is_empty() => {
                info!(
                    files = deleted.len(),
                    "old trace files deleted (they hold plate numbers)"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "cannot prune trace files")
            }
        }
    }

    pub fn stop(&mut self) {
        self.until = None;
        self.path = None;
        if let Some(trace) = self.trace.take() {
            if let Err(e) = trace.finish() {
                warn!(error = %e, "could not finish the trace file");
            }
        }
    }

    /// The zones drawn anew at `t` (a reload): written to the trace being recorded, and the
    /// header of any trace started later.
    pub fn record_layout(&mut self, t: UnixMillis, layout: &matcher::Layout) {
        self.layout = layout.clone();
        self.record(|trace| trace.write_layout(t, layout));
    }

    /// Writes to the trace when recording; a failing trace stops recording, never the station.
    pub fn record(
        &mut self,
        write: impl FnOnce(&mut TraceFile) -> Result<(), matcher::TraceError>,
    ) {
        if let Some(trace) = self.trace.as_mut() {
            if let Err(e) = write(trace) {
                warn!(error = %e, "trace recording failed; recording stopped");
                self.trace = None;
            }
        }
    }
}
