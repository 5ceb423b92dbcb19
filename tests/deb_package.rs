//! The .deb: built from the release build by scripts/package-deb.sh, it lists the expected files,
//! and the packaged binary finds its packaged ONNX Runtime and models when unpacked.

mod support;

use std::process::Command;

use support::*;

/// Runs a packaging script; the .deb it built and `dpkg -c`'s listing of it.
fn build(script: &str) -> (String, String) {
    let out = Command::new(repo_root().join("scripts").join(script))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let listing = Command::new("dpkg").arg("-c").arg(&deb).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    (deb, listing)
}

fn assert_lists(listing: &str, files: &[&str]) {
    for file in files {
        assert!(
            listing.contains(file),
            "{file} not in the package:\n{listing}"
        );
    }
}

/// One control field of the package.
fn field(deb: &str, name: &str) -> String {
    let out = Command::new("dpkg-deb")
        .args(["-f", deb, name])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The package unpacked into a temp dir, as it would be installed.
fn unpack(deb: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(root.path())
        .status()
        .unwrap()
        .success());
    root
}

#[test]
fn deb_holds_the_agent_its_runtime_models_unit_and_config() {
    let (deb, listing) = build("package-deb.sh");
    assert_lists(
        &listing,
        &[
            "./usr/bin/forecourt-agent",
            "./usr/bin/dart-pump-sim",
            "./usr/lib/forecourt-agent/libonnxruntime.so.1.31.1",
            "./usr/lib/forecourt-agent/libonnxruntime.so -> libonnxruntime.so.1.31.1",
            "./lib/systemd/system/forecourt-agent.service",
            "./etc/forecourt-agent/agent.toml",
            "./usr/share/forecourt-agent/models/clp_det.onnx",
            "./usr/share/forecourt-agent/models/clp_v2_c_rec.onnx",
            "./usr/share/forecourt-agent/models/clp_dict.txt",
        ],
    );
    // Depends comes from dpkg-shlibdeps on the staged binaries (it adds libc6, which nobody would
    // write by hand), with adduser (postinst uses it) appended.
    let depends = field(&deb, "Depends");
    let names: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .collect();
    for package in [
        "libopencv-core406",
        "libopencv-imgproc406",
        "libopencv-imgcodecs406",
        "libopencv-videoio406",
        "libc6",
        "adduser",
    ] {
        assert!(
            names.contains(&package),
            "{package} not in Depends: {depends}"
        );
    }
    assert!(
        depends.contains("libc6 (>="),
        "libc6 without a shlibdeps version: {depends}"
    );
    assert!(!depends.contains("onnxruntime"), "{depends}");
    let conffiles = Command::new("dpkg-deb")
        .args(["-e", &deb])
        .arg(tempfile::tempdir().unwrap().path().join("ctl"))
        .status()
        .unwrap();
    assert!(conffiles.success());

    // Unpacked as it would be installed: the binary finds the packaged runtime and models.
    let root = unpack(&deb);
    let config = root.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"deb\"\ndata_dir = \"data\"\n[plates]\nmodels_dir = \"{}\"\n[uplink]\nhost = \"127.0.0.1\"\n",
            root.path().join("usr/share/forecourt-agent/models").display()
        ),
    )
    .unwrap();
    let check = Command::new(root.path().join("usr/bin/forecourt-agent"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A model gone from an installed station: the hint says what fixes an installed package,
    // not a source tree's set-up script.
    let models = root.path().join("usr/share/forecourt-agent/models");
    let model = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "onnx"))
        .unwrap();
    std::fs::remove_file(&model).unwrap();
    let check = Command::new(root.path().join("usr/bin/forecourt-agent"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{said}");
    assert!(
        said.contains("not found") && said.contains("reinstall the forecourt-agent package"),
        "{said}"
    );
    assert!(!said.contains("scripts/setup.sh"), "{said}");
}

/// HQ's ingester ships in a package of its own: the binary, the worker unit, worker 1's
/// config, the fleet documentation; nothing of the station's.
#[test]
fn hq_ingest_has_a_package_of_its_own() {
    let (deb, listing) = build("package-hq-ingest.sh");
    assert_lists(
        &listing,
        &[
            "./usr/bin/hq-ingest",
            "./lib/systemd/system/hq-ingest@.service",
            "./etc/hq-ingest/1.toml",
            "./usr/share/doc/hq-ingest/fleet.md",
        ],
    );
    assert!(!listing.contains("forecourt-agent"), "{listing}");
    assert_eq!(field(&deb, "Package"), "hq-ingest");
    let depends = field(&deb, "Depends");
    assert!(depends.contains("libc6 (>="), "{depends}");
    // The packaged file is a valid worker config.
    let root = unpack(&deb);
    let check = Command::new(root.path().join("usr/bin/hq-ingest"))
        .arg("--config")
        .arg(root.path().join("etc/hq-ingest/1.toml"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
