//! The shim on real processes (python3 calls libc's write, pwrite, fsync and ftruncate).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultfs::{power_cut, Faults};

/// Linux's errno for "no space left on device".
const ENOSPC: i32 = 28;

fn python(faults: &Faults, script: &str) -> Command {
    let mut command = Command::new("python3");
    command.args(["-c", script]);
    faults.apply(&mut command);
    command
}

#[test]
fn a_full_disk_refuses_writes_in_the_watched_directory_only() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new(dir.path().join("data"), dir.path().join("ctl")).unwrap();
    let inside = faults.watched().join("f");
    let outside = dir.path().join("g");
    let script = format!(
        "import sys\nfor p in ['{}', '{}']:\n    try:\n        open(p, 'wb').write(b'x' * 10000)\n        print('ok')\n    except OSError as e:\n        print(e.errno)\n",
        inside.display(),
        outside.display()
    );
    faults.set_disk_full(true).unwrap();
    let out = python(&faults, &script).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nok\n", ENOSPC)
    );
    faults.set_disk_full(false).unwrap();
    let out = python(&faults, &script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\nok\n");
    assert_eq!(std::fs::read(&inside).unwrap().len(), 10000);
}

#[test]
fn a_power_cut_loses_exactly_the_unsynced_writes_after_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("undo.log");
    let faults = Faults::new(dir.path().join("data"), dir.path().join("ctl"))
        .unwrap()
        .with_undo_log(&log);
    let file = faults.watched().join("f");
    // Records: 0 write AAAA, 1 sync, 2 pwrite BB at 0, 3 write CCCC at 4, 4 truncate to 6.
    let script = format!(
        "import os\nfd = os.open('{}', os.O_CREAT | os.O_RDWR)\nos.write(fd, b'AAAA')\nos.fsync(fd)\nos.pwrite(fd, b'BB', 0)\nos.lseek(fd, 4, 0)\nos.write(fd, b'CCCC')\nos.ftruncate(fd, 6)\n",
        file.display()
    );
    for (cut, want) in [
        (0, &b"AAAA"[..]),
        (3, b"BBAA"),
        (4, b"BBAACCCC"),
        (5, b"BBAACC"),
    ] {
        let _ = std::fs::remove_file(&file);
        let status = python(&faults, &script).status().unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(&file).unwrap(), b"BBAACC");
        let report = power_cut(&log, |_| cut).unwrap();
        assert_eq!(
            (report.writes, report.syncs),
            (4, 1),
            "cut {cut}: {report:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&file).unwrap()),
            String::from_utf8_lossy(want),
            "cut at record {cut}"
        );
        assert!(!log.exists(), "the log is used up by a cut");
    }
}

#[test]
fn a_stalled_sync_waits_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new(dir.path().join("data"), dir.path().join("ctl")).unwrap();
    let script = format!(
        "import os\nfd = os.open('{}', os.O_CREAT | os.O_RDWR)\nos.write(fd, b'x')\nos.fsync(fd)\n",
        faults.watched().join("f").display()
    );
    faults.set_sync_stall(true).unwrap();
    let mut child = python(&faults, &script)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !faults.sync_stalled() {
        assert!(Instant::now() < deadline, "the sync never stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited during the stall"
    );
    faults.set_sync_stall(false).unwrap();
    assert!(child.wait().unwrap().success());
}
