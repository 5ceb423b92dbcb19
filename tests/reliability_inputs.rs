//! Reliability, bad input at start-up: configs with wrong types and model files that are not
//! ONNX. The agent must exit with a clear error (non-zero status, "error:" line naming the
//! problem), never panic, and never hang.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

fn base_config(dir: &Path, models: &Path, pty: &Path, port: u16) -> String {
    format!(
        r#"
station_id = "inputs"
data_dir = "{data}"
[plates]
models_dir = "{models}"
[[camera]]
name = "cam1"
url = "{video}"
[[dispenser]]
protocol = "dart"
port = "{pty}"
fps = [ {{ fp = 1, address = 0x50, grades = ["95"] }} ]
[[fp]]
fp = 1
zones = [{{ camera = "cam1", polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]] }}]
[uplink]
host = "127.0.0.1"
port = {port}
"#,
        data = dir.join("data").display(),
        models = models.display(),
        video = {
            // A real file, so the only problem is the one each case puts in.
            let v = dir.join("video.mp4");
            if !v.exists() {
                std::fs::write(&v, b"placeholder").unwrap();
            }
            v
        }
        .display(),
        pty = pty.display(),
    )
}

/// Runs the agent (`run` or `check-config`) and waits up to 60 s; returns (exit code, stderr).
fn run_agent(args: &[&str], config: &Path, dir: &Path) -> (Option<i32>, String) {
    let log = dir.join(format!("agent-{}.log", args[0]));
    let mut p = Proc::spawn(
        "forecourt-agent",
        Command::new(binary("forecourt-agent"))
            .args(args)
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let status = p.wait_for_exit(Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some(),
        "agent {args:?} still running after 60 s:\n{text}"
    );
    (status.unwrap().code(), text)
}

fn assert_clear_failure(what: &str, code: Option<i32>, text: &str, needles: &[&str]) {
    println!("--- {what}: exit {code:?}\n{text}");
    assert!(
        !text.contains("panicked"),
        "{what}: the agent panicked:\n{text}"
    );
    assert_eq!(
        code,
        Some(1),
        "{what}: want exit status 1, got {code:?}:\n{text}"
    );
    assert!(text.contains("error"), "{what}: no error line:\n{text}");
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: the error does not mention {n:?}:\n{text}"
        );
    }
}

#[test]
fn config_with_wrong_types_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let models = repo_root().join("models");
    let pty = dir.path().join("pty");
    let good = base_config(dir.path(), &models, &pty, 1883);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "port as a string",
            good.replace("port = 1883", "port = \"1883\""),
            vec!["port"],
        ),
        (
            "station_id as a number",
            good.replace("station_id = \"inputs\"", "station_id = 42"),
            // Named by position: file:line:column.
            vec!["bad.toml:2:"],
        ),
        (
            "fps as a table",
            good.replace(
                "fps = [ { fp = 1, address = 0x50, grades = [\"95\"] } ]",
                "fps = { fp = 1 }",
            ),
            vec!["bad.toml:"],
        ),
        (
            "address out of range",
            good.replace("address = 0x50", "address = 99999"),
            vec!["bad.toml:"],
        ),
        (
            "grace_s negative string",
            format!("{good}\n[matcher]\ngrace_s = \"soon\"\n"),
            vec!["bad.toml:"],
        ),
        ("not TOML at all", "\u{0}\u{1}garbage = = [".into(), vec![]),
        ("empty file", String::new(), vec![]),
    ];
    for (what, text, needles) in cases {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, &text).unwrap();
        let (code, out) = run_agent(&["check-config"], &config, dir.path());
        assert_clear_failure(&format!("check-config: {what}"), code, &out, &needles);
        let (code, out) = run_agent(&["run", "--config"], &config, dir.path());
        assert_clear_failure(&format!("run: {what}"), code, &out, &needles);
    }
}

/// A file written into the test's model folder: name and contents.
type ModelFile = (&'static str, Vec<u8>);

#[test]
fn model_files_that_are_not_onnx_stop_the_agent_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path());
    let (_socat, _sim_end, agent_end) = pty_pair(dir.path());
    let real = repo_root().join("models");
    let cases: Vec<(&str, Vec<ModelFile>)> = vec![
        (
            "garbage .onnx files",
            vec![
                ("clp_det.onnx", b"this is not an onnx model\n".repeat(100)),
                (
                    "clp_v2_c_rec.onnx",
                    (0..20_000u32).map(|i| (i * 7919) as u8).collect(),
                ),
            ],
        ),
        (
            "zero-size .onnx files",
            vec![("clp_det.onnx", vec![]), ("clp_v2_c_rec.onnx", vec![])],
        ),
        (
            "truncated detector",
            vec![(
                "clp_det.onnx",
                std::fs::read(real.join("clp_det.onnx")).unwrap()[..4096].to_vec(),
            )],
        ),
    ];
    for (what, files) in cases {
        let models = dir
            .path()
            .join(format!("models-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&models).unwrap();
        // Start from the real set, then spoil some.
        for entry in std::fs::read_dir(&real).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), models.join(entry.file_name())).unwrap();
        }
        for (name, bytes) in &files {
            std::fs::write(models.join(name), bytes).unwrap();
        }
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, base_config(dir.path(), &models, &agent_end, port)).unwrap();
        let (code, out) = run_agent(&["run", "--config"], &config, dir.path());
        assert_clear_failure(what, code, &out, &[".onnx"]);
    }
}
