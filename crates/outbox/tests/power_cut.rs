//! 200 simulated power cuts: a process appends sales (with their totalizer), plate records and
//! acknowledgements under the `faultfs` shim, is killed at a random moment, and every write no
//! sync covered is then undone from a random point on (what a disk that lost power there could
//! hold). Each time the outbox must open sound and hold every record `append` returned for
//! (unless it was acknowledged), the last totalizer kept with a returned sale, and number on
//! without reusing a seq it handed out.
//!
//! The test re-runs its own binary as the child: with `OUTBOX_POWER_CUT_CHILD=<path>` set,
//! `child_appends_until_the_power_goes` appends forever and reports on stdout what returned.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultfs::{power_cut, Faults};
use outbox::{Outbox, Totalizer};
use serde_json::json;

const CHILD_ENV: &str = "OUTBOX_POWER_CUT_CHILD";
const CUTS: usize = 200;

#[test]
fn child_appends_until_the_power_goes() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only does something when started by the parent test below.
    };
    let start: u64 = std::env::var("OUTBOX_POWER_CUT_FROM")
        .unwrap()
        .parse()
        .unwrap();
    let outbox = Outbox::open(&path).unwrap();
    let mut out = std::io::stdout().lock();
    for n in start.. {
        let record = if n % 3 == 2 {
            outbox.append("plate", "t", &json!({ "n": n })).unwrap()
        } else {
            let total = Totalizer {
                fp: 1,
                nozzle: 1,
                total: n,
            };
            outbox
                .append_counted("sale", "t", &json!({ "n": n }), Some(&total))
                .unwrap()
        };
        writeln!(
            out,
            "committed {} {} {} {n}",
            record.stream, record.seq, record.id
        )
        .unwrap();
        if n % 4 == 3 {
            // As the uplink does after PUBACKs: the oldest records go.
            for old in outbox.pending(None, 2).unwrap() {
                outbox.ack(old.rowid).unwrap();
                writeln!(out, "acked {}", old.id).unwrap();
            }
        }
        out.flush().unwrap();
    }
}

/// What the children reported, over all rounds.
#[derive(Default)]
struct Reported {
    /// id -> (stream, seq) of every append that returned.
    committed: BTreeMap<String, (String, u64)>,
    acked: BTreeSet<String>,
    /// The highest seq each stream handed out.
    last_seq: BTreeMap<String, u64>,
    /// The highest sale `n` (= its totalizer) that returned.
    last_sale_total: Option<u64>,
    /// The next `n` a child should start from.
    next_n: u64,
}

impl Reported {
    fn take(&mut self, line: &str, round: usize) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["committed", stream, seq, id, n] => {
                let (seq, n): (u64, u64) = (seq.parse().unwrap(), n.parse().unwrap());
                let last = self.last_seq.entry(stream.to_string()).or_insert(0);
                assert!(
                    seq > *last,
                    "round {round}: {stream} seq {seq} handed out again (had reached {last})"
                );
                *last = seq;
                self.committed
                    .insert(id.to_string(), (stream.to_string(), seq));
                if *stream == "sale" {
                    self.last_sale_total = Some(n);
                }
                self.next_n = n + 1;
            }
            ["acked", id] => {
                self.acked.insert(id.to_string());
            }
            // The test harness's own lines ("running 1 test", ...).
            _ => {}
        }
    }
}

#[test]
fn no_returned_append_is_lost_in_200_power_cuts() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("undo.log");
    let faults = Faults::new(dir.path().join("data"), dir.path().join("ctl"))
        .unwrap()
        .with_undo_log(&log);
    let path = faults.watched().join("outbox.sqlite");
    let seed = 0x005e_ed0f_c075;
    eprintln!("power cuts: seed {seed:#x}");
    // The cut points and kill moments, reproducible from the seed printed.
    let mut rng = seeded_rng::Rng::new(seed);
    let mut reported = Reported::default();
    let (mut undone, mut unsynced_cuts, mut torn) = (0, 0, 0);
    let mut acked_unreported = 0;
    for round in 0..CUTS {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "child_appends_until_the_power_goes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env("OUTBOX_POWER_CUT_FROM", reported.next_n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        faults.apply(&mut command);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it commit 0..30 appends, then cut within the next few milliseconds: mid-write,
        // mid-sync or between calls.
        let wait_for = rng.below(30) as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < wait_for {
            assert!(Instant::now() < deadline, "round {round}: child too slow");
            let line = lines.next().expect("child exited early").unwrap();
            seen += u64::from(line.starts_with("committed"));
            reported.take(&line, round);
        }
        std::thread::sleep(Duration::from_micros(rng.below(4000) as u64));
        child.kill().unwrap(); // SIGKILL: no destructors, no checkpoint
        child.wait().unwrap();
        for line in lines {
            reported.take(&line.unwrap(), round); // printed before the kill: returned too
        }

        let (mut cut, mut records) = (0, 0);
        let report = power_cut(&log, |n| {
            records = n;
            cut = rng.below(n + 1);
            cut
        })
        .unwrap();
        undone += report.undone;
        unsynced_cuts += usize::from(report.undone > 0);
        torn += usize::from(report.torn_tail);

        let outbox = Outbox::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: does not open after the cut: {e}"));
        outbox
            .quick_check()
            .unwrap_or_else(|e| panic!("round {round}: damaged by the cut at {cut}: {e}"));
        let present: BTreeMap<String, (String, u64)> = outbox
            .pending(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| (r.id.to_string(), (r.stream, r.seq)))
            .collect();
        for (id, (stream, seq)) in &reported.committed {
            if reported.acked.contains(id) || present.get(id) == Some(&(stream.clone(), *seq)) {
                continue;
            }
            // The child may have been killed between an acknowledgement and printing it: such a
            // record left the waiting ones for the archive, which only an acknowledgement does.
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert!(
                !present.contains_key(id) && outbox.holds_record(stream, &uuid).unwrap(),
                "round {round}: {stream} seq {seq} returned by append, lost by a power \
                 cut at record {cut} of {records} ({report:?})"
            );
            acked_unreported += 1;
        }
        let total = outbox
            .totalizers()
            .unwrap()
            .into_iter()
            .find(|t| (t.fp, t.nozzle) == (1, 1))
            .map(|t| t.total);
        assert!(
            total >= reported.last_sale_total,
            "round {round}: totalizer {total:?} behind the last returned sale's {:?}",
            reported.last_sale_total
        );
    }
    eprintln!(
        "power cuts: {CUTS} cuts, {} appends returned, {undone} unsynced writes undone in \
         {unsynced_cuts} cuts, {torn} cuts mid-log-record, {acked_unreported} records \
         acknowledged by a child killed before it said so",
        reported.committed.len()
    );
    assert!(
        unsynced_cuts > CUTS / 4,
        "only {unsynced_cuts} of {CUTS} cuts lost any write: the shim is not in the way"
    );
}
