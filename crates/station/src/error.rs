//! What can go wrong in the station, typed: the agent decides what to do with each.

use std::path::PathBuf;

impl StationError {
    /// An outbox error while `doing` something.
    pub(crate) fn outbox(doing: &'static str) -> impl FnOnce(outbox::OutboxError) -> StationError {
        move |source| StationError::Outbox {
            doing,
            source: Box::new(source),
        }
    }
}

/// The station loop cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("{doing}")]
    Outbox {
        doing: &'static str,
        #[source]
        source: Box<outbox::OutboxError>,
    },
    /// A blocking outbox task panicked or was cancelled.
    #[error("outbox task")]
    OutboxTask(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error("cannot write a held sale")]
    HeldSale(#[source] serde_json::Error),
    #[error("{writes} outbox writes waiting in memory and the outbox still refuses them")]
    OutboxRefusing { writes: usize },
    #[error(transparent)]
    Recording(#[from] RecordingError),
}

/// A trace file could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("already recording to the configured trace_file")]
    AlreadyRecording,
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the trace file")]
    Start(#[from] matcher::TraceError),
}

/// Why the station did not carry out a command; the text goes back to HQ.
#[derive(Debug, thiserror::Error)]
pub enum CommandFailed {
    #[error("{0} is answered by the uplink, not the station")]
    NotForTheStation(&'static str),
    #[error(
        "no sale {0} from this station is held here (waiting, or archived within [outbox] \
         archive_max_age_s): nothing corrected"
    )]
    NoSuchSale(uuid::Uuid),
    #[error("no summary held for the hour of {0}")]
    NoSuchHour(i64),
    #[error("no config file to reload")]
    NoConfigFile,
    #[error("the config file was not reloaded")]
    Reload(#[source] crate::config_source::ReloadError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    PlateNotes(#[from] crate::plate_notes::NotesError),
    #[error(transparent)]
    Station(#[from] StationError),
    #[error("cannot write the result")]
    Result(#[from] serde_json::Error),
}

/// `error: cause: cause...`, as HQ and the log read it.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
