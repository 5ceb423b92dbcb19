//! The shipped systemd unit passes `systemd-analyze verify` and keeps an exposure score below 3
//! in `systemd-analyze security` (both offline: no running systemd needed).

mod support;

use std::process::Command;

fn unit_for_this_build(dir: &std::path::Path) -> std::path::PathBuf {
    // verify checks that ExecStart= exists: point it at the binary we built.
    let unit =
        std::fs::read_to_string(support::repo_root().join("systemd/forecourt-agent.service"))
            .unwrap()
            .replace(
                "/usr/bin/forecourt-agent",
                &support::binary("forecourt-agent").display().to_string(),
            );
    let path = dir.join("forecourt-agent.service");
    std::fs::write(&path, unit).unwrap();
    path
}

/// `systemd-analyze verify` passes without a word.
fn assert_verifies(unit: &std::path::Path) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (package systemd) is installed by scripts/setup.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "verify {}: {stderr}",
        unit.display()
    );
}

#[test]
fn unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    assert_verifies(&unit_for_this_build(dir.path()));
}

#[test]
fn unit_exposure_is_below_3() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for forecourt-agent.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level < 3.0, "exposure {level} >= 3:\n{text}");
}

/// HQ's ingester unit (a template: one instance per worker) verifies too.
#[test]
fn hq_ingest_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(support::repo_root().join("systemd/hq-ingest@.service"))
        .unwrap()
        .replace(
            "/usr/bin/hq-ingest",
            &support::binary("hq-ingest").display().to_string(),
        );
    let path = dir.path().join("hq-ingest@1.service");
    std::fs::write(&path, unit).unwrap();
    assert_verifies(&path);
}
