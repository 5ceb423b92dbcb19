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
