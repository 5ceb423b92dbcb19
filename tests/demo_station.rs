//! The README's demo command, run as a new user would (`scripts/demo.sh`), must show at least
//! three sales matched to the plates of the demo video within two minutes.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

#[test]
fn demo_shows_three_matched_sales_within_two_minutes() {
    let root = repo_root();
    let scenario: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("config/demo-scenario.toml")).unwrap())
            .unwrap();
    // (fp, plate) of every car in the demo video.
    let cars: HashSet<(i64, String)> = scenario["car"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["fp"].as_integer().unwrap(), c["plate"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(cars.len(), 4, "demo scenario cars: {cars:?}");

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut demo = Proc::spawn(
        "scripts/demo.sh",
        Command::new(root.join("scripts/demo.sh"))
            .args(["--seconds", "115"])
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap()),
    );
    let status = demo.wait_for_exit(Duration::from_secs(240));
    let stdout = std::io::read_to_string(demo.child.stdout.take().unwrap()).unwrap();
    let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "demo did not finish cleanly ({status:?});\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // mosquitto_sub -v prints "topic payload".
    let sales: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(topic, _)| topic.ends_with("/events/sale"))
        .map(|(_, payload)| serde_json::from_str(payload).expect("sale payload is JSON"))
        .collect();
    let matched: Vec<(i64, String)> = sales
        .iter()
        .filter_map(|s| {
            let plate = s["body"]["plate"].as_str()?;
            Some((s["body"]["fp"].as_i64()?, plate.to_string()))
        })
        .collect();
    assert!(
        matched.len() >= 3,
        "only {} matched sales of {} in the demo:\n{stdout}\nstderr:\n{stderr}",
        matched.len(),
        sales.len()
    );
    for sale in &matched {
        assert!(cars.contains(sale), "demo matched a car to the wrong pump: {sale:?}");
    }
}
