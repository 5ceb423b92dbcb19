//! The latest picture of each camera, for the station console's installer page: every few
//! seconds per camera the plate reader (which has the frame anyway) scales the frame it read
//! down and encodes it as a JPEG. Off unless asked for ([`Snapshots::enabled`]): a station
//! without a console spends nothing on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use forecourt_events::UnixMillis;

/// How often a camera's picture is renewed, at most.
pub const SNAPSHOT_EVERY_MS: i64 = 2_000;
/// Width of the pictures (height keeps the frame's aspect).
pub const SNAPSHOT_WIDTH: i32 = 960;

/// One camera's latest picture.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSnapshot {
    /// Capture time of the frame.
    pub t: UnixMillis,
    pub jpeg: Arc<Vec<u8>>,
}

/// Every camera's latest picture, shared by the reader threads and the console.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    /// `None`: off.
    by_camera: Option<Arc<Mutex<BTreeMap<String, CameraSnapshot>>>>,
}

impl Snapshots {
    /// Kept from now on.
    pub fn enabled() -> Snapshots {
        Snapshots {
            by_camera: Some(Arc::default()),
        }
    }

    /// Whether `camera`'s picture taken at `t` would replace the one kept.
    pub fn due(&self, camera: &str, t: UnixMillis) -> bool {
        self.by_camera.as_ref().is_some_and(|m| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(camera)
                .is_none_or(|s| t - s.t >= SNAPSHOT_EVERY_MS)
        })
    }

    pub fn put(&self, camera: &str, snapshot: CameraSnapshot) {
        if let Some(m) = &self.by_camera {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(camera.to_string(), snapshot);
        }
    }

    pub fn get(&self, camera: &str) -> Option<CameraSnapshot> {
        self.by_camera
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(t: UnixMillis) -> CameraSnapshot {
        CameraSnapshot {
            t,
            jpeg: Arc::new(vec![0xff, 0xd8]),
        }
    }

    #[test]
    fn off_by_default_and_renewed_every_few_seconds_when_on() {
        let off = Snapshots::default();
        assert!(!off.due("cam1", 0));
        off.put("cam1", shot(0));
        assert!(off.get("cam1").is_none());

        let on = Snapshots::enabled();
        assert!(on.due("cam1", 0));
        on.put("cam1", shot(10_000));
        assert!(!on.due("cam1", 10_000 + SNAPSHOT_EVERY_MS - 1));
        assert!(on.due("cam1", 10_000 + SNAPSHOT_EVERY_MS));
        assert!(on.due("cam2", 0));
        assert_eq!(on.clone().get("cam1").unwrap().t, 10_000);
    }
}
