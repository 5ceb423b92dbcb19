//! `forecourt-agent commission`: the agent runs as configured (sales are kept and sent as ever),
//! and for every fill at the fuelling points asked about it prints which car stood in which
//! fuelling point's zones during the fill, and whether the car that stood through it was in the
//! fill's own zones. When each of them has had its fills, a table of verdicts, then it stops.
//! Run it with the service stopped (it takes the serial lines and cameras): "lift a nozzle on
//! FP N now".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use agent_config::LoadedConfig;
use analytics::zone_check::{commissioned, Commissioned, FillEvidence, Fit};
use anyhow::{bail, Result};
use forecourt_events::FpNumber;
use tokio::sync::{mpsc, oneshot};

/// What to watch.
pub struct CommissionArgs {
    /// The fuelling points to watch; empty: every one with zones.
    pub fps: Vec<FpNumber>,
    /// Fills to see per fuelling point before its verdict.
    pub fills: usize,
    /// Give up after this long (the table shows what was seen).
    pub seconds: Option<u64>,
}

/// Runs the agent until every fuelling point asked about had its fills (or time is up), printing
/// as it goes. Fails when a fuelling point's zones do not fit its fills, or one was not seen.
pub fn commission(config_path: &Path, args: CommissionArgs) -> Result<()> {
    let (config, loaded) = LoadedConfig::read(config_path.to_path_buf())?;
    let with_zones: BTreeSet<FpNumber> = config.layout().fps.iter().map(|f| f.fp).collect();
    let wanted: BTreeSet<FpNumber> = if args.fps.is_empty() {
        with_zones.clone()
    } else {
        args.fps.iter().copied().collect()
    };
    if let Some(fp) = wanted.iter().find(|fp| !with_zones.contains(fp)) {
        bail!(
            "FP {fp} has no zones in {}: nothing to commission",
            config_path.display()
        );
    }
    if wanted.is_empty() {
        bail!(
            "{} draws no zones: nothing to commission",
            config_path.display()
        );
    }
    let fps: Vec<String> = wanted.iter().map(|fp| format!("FP {fp}")).collect();
    println!(
        "Commissioning {}: lift a nozzle on each of them now and fill a car standing at that \
         pump ({} fill(s) each). Sales are kept and sent to HQ as ever.",
        fps.join(", "),
        args.fills
    );
    let (evidence_tx, evidence_rx) = mpsc::channel(64);
    let (done_tx, done_rx) = oneshot::channel();
    let tally = crate::run::runtime()?.block_on(async {
        let watcher = tokio::spawn(watch_fills(
            evidence_rx,
            wanted.clone(),
            args.fills,
            done_tx,
        ));
        let stop = Box::pin(async move {
            tokio::select! {
                _ = done_rx => "every fuelling point had its fills",
                _ = crate::run::after(args.seconds) => "--seconds elapsed",
            }
        });
        crate::run::run_agent(config, loaded, stop, Some(evidence_tx)).await?;
        anyhow::Ok(watcher.await?)
    })?;
    let (table, verdicts) = summary(&wanted, &tally);
    println!("{table}");
    let unfit: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| !matches!(v, Some(Commissioned::Fits)))
        .map(|(fp, _)| format!("FP {fp}"))
        .collect();
    if !unfit.is_empty() {
        bail!("not commissioned: {}", unfit.join(", "));
    }
    Ok(())
}

/// Prints each fill of a wanted fuelling point as it is judged; says `done` when each has had
/// `fills`. Returns what it saw, per fuelling point.
async fn watch_fills(
    mut evidence: mpsc::Receiver<FillEvidence>,
    wanted: BTreeSet<FpNumber>,
    fills: usize,
    done: oneshot::Sender<()>,
) -> BTreeMap<FpNumber, Vec<Fit>> {
    let mut tally: BTreeMap<FpNumber, Vec<Fit>> = BTreeMap::new();
    let mut done = Some(done);
    while let Some(e) = evidence.recv().await {
        if !wanted.contains(&e.fp) || tally.get(&e.fp).is_some_and(|f| f.len() >= fills) {
            continue;
        }
        println!("{}", describe(&e));
        tally.entry(e.fp).or_default().push(e.fit);
        let all_done = wanted
            .iter()
            .all(|fp| tally.get(fp).is_some_and(|f| f.len() >= fills));
        if all_done {
            if let Some(d) = done.take() {
                let _ = d.send(());
            }
        }
    }
    tally
}

/// One fill in words: what stood where, and what it says.
pub fn describe(e: &FillEvidence) -> String {
    let secs = |ms: i64| ms as f64 / 1000.0;
    let mut out = String::new();
    let plate = match &e.plate {
        Some(p) => format!("{p} at {:.3}", e.confidence),
        None => "no plate".into(),
    };
    let _ = writeln!(
        out,
        "FP {} nozzle {}: fill {} to {} UTC ({:.1} s); the matcher gave {plate}",
        e.fp,
        e.nozzle,
        clock(e.fill_start),
        clock(e.fill_end),
        secs(e.fill_end - e.fill_start)
    );
    for (fp, cars) in &e.zones {
        let whose = if *fp == e.fp { " (its own)" } else { "" };
        if cars.is_empty() {
            let _ = writeln!(out, "  FP {fp}'s zones{whose}: no plate read");
            continue;
        }
        let seen: Vec<String> = cars
            .iter()
            .take(3)
            .map(|c| {
                let arrived = match c.first_t - e.fill_start {
                    d if d <= 0 => format!("read {:.1} s before the nozzle-out", secs(-d)),
                    d => format!("first read {:.1} s after the nozzle-out", secs(d)),
                };
                let left = match c.last_t - e.fill_end {
                    d if d >= 0 => format!("{:.1} s after the hang-up", secs(d)),
                    d => format!("last read {:.1} s before the hang-up", secs(-d)),
                };
                let stood = if c.stood_through {
                    "stood through the fill"
                } else {
                    "came or went during the fill"
                };
                format!("{} ({arrived}, {left}: {stood})", c.text)
            })
            .collect();
        let _ = writeln!(out, "  FP {fp}'s zones{whose}: {}", seen.join("; "));
    }
    let said = match e.fit {
        Fit::Own => format!(
            "the car that stood through the fill was in FP {}'s own zones",
            e.fp
        ),
        Fit::OwnAndOther(o) => format!(
            "cars stood through the fill both in FP {}'s own zones and in FP {o}'s: not decisive",
            e.fp
        ),
        Fit::Other(o) => format!(
            "MISMATCH: the car that stood through the fill was in FP {o}'s zones, none in FP {}'s",
            e.fp
        ),
        Fit::NoneStood => "no car stood through the fill (hidden, or a motorbike or can?)".into(),
        Fit::Unseen => format!("nothing was read in FP {}'s zones around the fill", e.fp),
    };
    let _ = write!(out, "  -> {said}");
    out
}

/// `HH:MM:SS.s` of a Unix ms time.
fn clock(t: i64) -> String {
    let ms = t.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:04.1}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        (ms % 60_000) as f64 / 1000.0
    )
}

/// The verdict table, and each fuelling point's verdict (`None`: no fill seen).
fn summary(
    wanted: &BTreeSet<FpNumber>,
    tally: &BTreeMap<FpNumber, Vec<Fit>>,
) -> (String, Vec<(FpNumber, Option<Commissioned>)>) {
    let mut table = String::from("\nFP  fills  own  both  other  none  unseen  verdict\n");
    let mut verdicts = Vec::new();
    for &fp in wanted {
        let fits = tally.get(&fp).map(Vec::as_slice).unwrap_or_default();
        let count = |f: fn(&Fit) -> bool| fits.iter().filter(|x| f(x)).count();
        let verdict = (!fits.is_empty()).then(|| commissioned(fits));
        let words = match verdict {
            None => "NOT SEEN: no fill judged (no nozzle-out seen, or no sale)".to_owned(),
            Some(Commissioned::Fits) => "ok: its cars stood in its own zones".to_owned(),
            Some(Commissioned::Mismatch { other }) => format!(
                "MISMATCH: its cars stood in FP {other}'s zones (zones swapped, or on the wrong \
                 lane or camera?)"
            ),
            Some(Commissioned::Unclear) => {
                "unclear: fill again with one car at the pump, its plate in view".to_owned()
            }
        };
        let _ = writeln!(
            table,
            "{fp:>2}  {:>5}  {:>3}  {:>4}  {:>5}  {:>4}  {:>6}  {words}",
            fits.len(),
            count(|f| *f == Fit::Own),
            count(|f| matches!(f, Fit::OwnAndOther(_))),
            count(|f| matches!(f, Fit::Other(_))),
            count(|f| *f == Fit::NoneStood),
            count(|f| *f == Fit::Unseen),
        );
        verdicts.push((fp, verdict));
    }
    (table, verdicts)
}
