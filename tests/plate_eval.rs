//! The real models on the 601 unflagged real labelled images of ../shared/plates/dev, through the
//! agent's own `eval` command: the accuracy bars of the Vision issue hold.

mod support;

use std::process::Command;

use support::*;

#[test]
fn eval_on_the_dev_set_meets_the_bars() {
    let manifest = repo_root().join("../shared/plates/dev/manifest.csv");
    assert!(
        manifest.is_file(),
        "{} is missing: the dev set lives in ../shared beside the repository",
        manifest.display()
    );
    let out = Command::new(binary("forecourt-agent"))
        .arg("eval")
        .arg(&manifest)
        .arg("--models")
        .arg(repo_root().join("models"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let figure = |name: &str| -> f64 {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the last line {last:?}"))
    };
    assert!(figure("scene_exact") >= 97.0, "{last}");
    assert!(figure("crop_exact") >= 98.0, "{last}");
    assert!(
        figure("scene_char") >= 99.0 && figure("crop_char") >= 99.0,
        "{last}"
    );
    assert!(figure("ms") > 0.0, "{last}");
}

/// `device = "cuda"` with the ONNX Runtime the set-up installs (the CPU build from PyPI): each
/// model says once that CUDA is not usable and runs on the CPU, reading as well as ever.
#[test]
fn cuda_asked_without_a_gpu_falls_back_to_the_cpu_with_a_warning() {
    let dev = repo_root().join("../shared/plates/dev");
    let text = std::fs::read_to_string(dev.join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let crops: Vec<&str> = lines
        .filter(|l| l.split(',').nth(1) == Some("crop") && l.ends_with(','))
        .take(20)
        .collect();
    assert_eq!(crops.len(), 20);
    let dir = tempfile::tempdir().unwrap();
    // The manifest's file paths are relative to its folder: point them back at the dev set.
    let rows: Vec<String> = crops
        .iter()
        .map(|l| format!("{}/{l}", dev.display()))
        .collect();
    let manifest = dir.path().join("m.csv");
    std::fs::write(&manifest, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"gpu\"\ndata_dir = \"{}\"\n[plates]\nmodels_dir = \"{}\"\ndevice = \"cuda\"\n[uplink]\nhost = \"127.0.0.1\"\n",
            dir.path().join("data").display(),
            repo_root().join("models").display()
        ),
    )
    .unwrap();
    let out = Command::new(binary("forecourt-agent"))
        .arg("eval")
        .arg(&manifest)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("CUDA execution provider not usable"))
        .count();
    assert_eq!(warnings, 2, "one per model:\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("crop_exact="), "{stdout}");
    let exact: f64 = last
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("crop_exact="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(exact >= 90.0, "{last}");
}
