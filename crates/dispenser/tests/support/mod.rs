//! Shared by the pty tests: socat pty pairs and event helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forecourt_events::{DispenserEvent, Sale};

/// A socat-made pty pair; socat is killed when this drops.
pub struct PtyPair {
    socat: Child,
    _dir: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        let pair = PtyPair {
            socat,
            _dir: dir,
            a,
            b,
        };
        for _ in 0..100 {
            if exists(&pair.a) && exists(&pair.b) {
                return pair;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("socat did not create the pty links");
    }
}

fn exists(p: &Path) -> bool {
    std::fs::metadata(p).is_ok()
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

pub fn sales(events: &[DispenserEvent]) -> Vec<&Sale> {
    events
        .iter()
        .filter_map(|e| match e {
            DispenserEvent::SaleCompleted(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// FORECOURT_LONG=1 selects the long profile of the heavy tests.
pub fn long_profile() -> bool {
    std::env::var_os("FORECOURT_LONG").is_some()
}
