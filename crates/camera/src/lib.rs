//! Camera sources through OpenCV videoio (RTSP, file or USB). Each camera runs on its own thread,
//! stamps every frame with its capture time at grab (a file's frames with the time each is due:
//! `file_clock`), and hands over only the latest frame so a slow
//! consumer drops frames instead of falling behind. Failures reconnect with exponential backoff,
//! and a watchdog replaces a capture thread that hangs inside OpenCV. FFmpeg's own messages go
//! through `tracing` (target `ffmpeg`) instead of straight to stderr.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod ffmpeg_log;
mod file_clock;
mod rate;
mod redact;
mod slot;
mod snapshot;
mod source;

pub use rate::RateCap;
pub use redact::redact_credentials;
pub use slot::{CameraStats, FrameSlot};
pub use snapshot::{write_snapshot, Marked, Shape, SnapshotError};
pub use source::{
    spawn_camera, spawn_camera_watched, CameraConfig, CameraHandle, SourceKind, WatchdogConfig,
};

use forecourt_events::UnixMillis;

/// One decoded frame, BGR.
pub struct Frame {
    pub camera: String,
    /// Wall-clock time at grab (a file: the time the frame is due).
    pub t: UnixMillis,
    /// Counts frames grabbed by this camera since start (gaps mean drops).
    pub seq: u64,
    pub image: opencv::core::Mat,
}

impl Frame {
    /// Width and height in pixels.
    pub fn size(&self) -> (i32, i32) {
        use opencv::prelude::MatTraitConst;
        (self.image.cols(), self.image.rows())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("camera {camera}: cannot open {url}")]
    Open { camera: String, url: String },
    #[error("camera {camera}: {source}")]
    OpenCv {
        camera: String,
        #[source]
        source: opencv::Error,
    },
    #[error("camera {camera}: bad source {url:?}: {reason}")]
    BadSource {
        camera: String,
        url: String,
        reason: String,
    },
}
