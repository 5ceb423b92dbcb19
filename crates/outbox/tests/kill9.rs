//! A process killed with SIGKILL in the middle of appending leaves an outbox that opens and
//! holds a gap-free prefix of what was appended, including everything `append` returned for.
//!
//! The test re-runs its own binary as the child: with `OUTBOX_KILL9_CHILD=<path>` set, the
//! `child_appends_until_killed` test appends forever and reports each durable append on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outbox::Outbox;
use serde_json::json;

const CHILD_ENV: &str = "OUTBOX_KILL9_CHILD";
const STREAMS: [&str; 2] = ["sale", "plate"];

#[test]
fn child_appends_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only does something when started by the parent test below.
    };
    let outbox = Outbox::open(&path).unwrap();
    let mut out = std::io::stdout().lock();
    for n in 0u64.. {
        outbox
            .append(STREAMS[(n % 2) as usize], "t", &json!({"n": n}))
            .unwrap();
        use std::io::Write;
        writeln!(out, "appended {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_append_leaves_a_gap_free_prefix() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    for (round, kill_after) in [3u64, 40, 150].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_appends_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut confirmed: Option<u64> = None;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while confirmed.is_none_or(|c| c < kill_after) {
            assert!(Instant::now() < deadline, "round {round}: child too slow");
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(n) = line.strip_prefix("appended ") {
                confirmed = Some(n.parse().unwrap());
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix: no destructors, no close, no checkpoint.
        child.wait().unwrap();

        let outbox = Outbox::open(&path).unwrap();
        let recs = outbox.pending(None, usize::MAX).unwrap();
        let ns: Vec<u64> = recs
            .iter()
            .map(|r| {
                let p: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                p["body"]["n"].as_u64().unwrap()
            })
            .collect();
        let confirmed = confirmed.unwrap();
        assert!(
            ns.len() as u64 > confirmed,
            "round {round}: lost a confirmed append"
        );
        assert_eq!(
            ns,
            (0..ns.len() as u64).collect::<Vec<_>>(),
            "round {round}: not a prefix"
        );
        for stream in STREAMS {
            let seqs: Vec<u64> = recs
                .iter()
                .filter(|r| r.stream == stream)
                .map(|r| r.seq)
                .collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "round {round}"
            );
        }
        // And it keeps numbering where it stopped.
        let next = outbox.append("sale", "t", &json!(null)).unwrap();
        let sales = recs.iter().filter(|r| r.stream == "sale").count() as u64;
        assert_eq!(next.seq, sales + 1);
    }
}
