//! Helpers shared by the camera's source tests.

use std::time::{Duration, Instant};

use camera::CameraHandle;

/// Calls `done` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Stops the camera and checks that stopping does not hang on its capture thread.
pub fn stop_quickly(camera: CameraHandle) {
    let started = Instant::now();
    camera.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        started.elapsed()
    );
}
