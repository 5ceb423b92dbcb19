//! The station's rules, driven through its channels against a real (temporary) outbox: a sale
//! leaves exactly once, a sale held at a crash is sent after the restart, a pump reporting a
//! sale again after a restart does not make a second one, and HQ's commands reach their files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use forecourt_events::{DispenserEvent, FramePlates, KeptSales, Sale};
use outbox::Outbox;
use station::{Restored, Station, StationCommands, StationError, StationParts};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use uplink::{Command, CommandAction, CommandError, CommandReply, CommandRequest};

struct Running {
    frames: mpsc::Sender<FramePlates>,
    pumps: mpsc::Sender<DispenserEvent>,
    commands: mpsc::Sender<CommandRequest>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), StationError>>,
    kept_sales: Arc<KeptSales>,
    plate_notes: watch::Receiver<Arc<station::plate_notes::PlateNotes>>,
}

fn layout() -> matcher::Layout {
    serde_json::from_value(serde_json::json!({"fps": [{"fp": 1, "zones": [
        {"camera": "cam1", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
    ]}]}))
    .unwrap()
}

/// Builds a station on `outbox` as the agent does at start, restores, and runs it.
async fn start(outbox: &Outbox, dir: &std::path::Path) -> (Running, Restored) {
    start_with(outbox, dir, layout(), None).await
}

/// [`start`] with these zones, and a config file that reloads as `config` says.
async fn start_with(
    outbox: &Outbox,
    dir: &std::path::Path,
    layout: matcher::Layout,
    config: Option<Box<dyn station::ConfigSource>>,
) -> (Running, Restored) {
    let kept_sales = Arc::new(KeptSales::new());
    let mut station = Station::new(StationParts {
        layout,
        // Nothing is decided before the stop, however slow the machine: the test says when.
        matcher: matcher::MatcherConfig {
            grace_ms: 3_600_000,
            revisit_ms: 7_200_000,
            ..Default::default()
        },
        outbox: outbox.clone(),
        wake_uplink: Arc::new(Notify::new()),
        topic_root: "forecourt/T1".into(),
        kept_sales: kept_sales.clone(),
        kept_totalizers: outbox.totalizers().unwrap(),
        trace_dir: dir.join("traces"),
        trace_file: None,
        config,
        fill_evidence: None,
        live: None,
        live_reads: None,
        crops: Default::default(),
        evidence: None,
    })
    .unwrap();
    let restored = station.restore().await.unwrap();
    let plate_notes = station.plate_notes();
    let (frames, frames_rx) = mpsc::channel(16);
    let (pumps, pumps_rx) = mpsc::channel(16);
    let (commands, commands_rx) = mpsc::channel(16);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(station.run(frames_rx, pumps_rx, commands_rx, shutdown_rx, || {}));
    let running = Running {
        frames,
        pumps,
        commands,
        shutdown,
        task,
        kept_sales,
        plate_notes,
    };
    (running, restored)
}

impl Running {
    async fn pump(&self, e: DispenserEvent) {
        self.pumps.send(e).await.unwrap();
    }

    /// A whole fill at FP 1: nozzle out, nozzle in, sale completed.
    async fn fill(&self, sale: &Sale) {
        let (fp, nozzle) = (sale.fp, sale.nozzle);
        let t = sale.t - 60_000;
        self.pump(DispenserEvent::NozzleOut { t, fp, nozzle }).await;
        let t = sale.t - 1_000;
        self.pump(DispenserEvent::NozzleIn { t, fp, nozzle }).await;
        self.pump(DispenserEvent::SaleCompleted(sale.clone())).await;
    }

    async fn command(&self, action: CommandAction) -> CommandReply {
        let (reply, answer) = oneshot::channel();
        let command = Command::local("test", action);
        self.commands
            .send(CommandRequest { command, reply })
            .await
            .unwrap();
        answer.await.unwrap()
    }

    /// A clean stop: the station decides what is pending and flushes it.
    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        self.task.await.unwrap().unwrap();
        drop((self.frames, self.pumps, self.commands));
    }

    /// A crash: the station is gone without deciding anything.
    async fn crash(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

fn sale(t: i64, volume: &str, recovered: bool) -> Sale {
    Sale {
        t,
        fp: 1,
        nozzle: 1,
        nozzle_out_t: None,
        grade: Some("92".into()),
        volume: volume.parse().unwrap(),
        amount: "80.00".parse().unwrap(),
        price: "8.00".parse().unwrap(),
        end: None,
        recovered,
        totalizer: None,
        source_key: None,
    }
}

/// The `sale` records waiting for HQ, as HQ will read them.
fn sales_sent(outbox: &Outbox) -> Vec<(uuid::Uuid, wire::SaleBody)> {
    outbox
        .pending(None, 1_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.stream == "sale")
        .map(|r| {
            let envelope: wire::Envelope<wire::SaleBody> =
                serde_json::from_slice(&r.payload).unwrap();
            (envelope.id, envelope.body)
        })
        .collect()
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fp 1's zone on cam1: the image's left or right half.
fn half(right: bool) -> matcher::Layout {
    let (x0, x1) = if right { (0.5, 1.0) } else { (0.0, 0.5) };
    serde_json::from_value(serde_json::json!({"fps": [{"fp": 1, "zones": [
        {"camera": "cam1", "polygon": [[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]]}
    ]}]}))
    .unwrap()
}

/// A config file whose next reload brings new zones.
struct NewZones(Option<matcher::Layout>);

impl station::ConfigSource for NewZones {
    fn reload(&mut self) -> Result<station::Reload, station::ReloadError> {
        Ok(station::Reload {
            applied: vec!["fp".into()],
            needs_restart: vec![],
            matcher: None,
            layout: self.0.take(),
        })
    }
}

fn open(dir: &std::path::Path) -> Outbox {
    Outbox::open(dir.join("outbox.sqlite")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_held_until_matched_then_leaves_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let t0 = forecourt_events::now_millis();
    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored, Restored::default());
    station.fill(&sale(t0, "41.27", false)).await;
    until("the sale to be held", || outbox.held().unwrap().len() == 1).await;
    // Durable: the pump may be reset now.
    until("the pump reset to be allowed", || {
        station.kept_sales.count(1) == 1
    })
    .await;
    assert!(sales_sent(&outbox).is_empty(), "sent before its match");
    station.stop().await;
    let sent = sales_sent(&outbox);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1.volume.to_string(), "41.27");
    assert_eq!(sent[0].1.completed_t, t0);
    assert!(outbox.held().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_held_at_a_crash_is_sent_after_the_restart_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let t0 = forecourt_events::now_millis();
    let (station, _) = start(&outbox, dir.path()).await;
    station.fill(&sale(t0, "30.00", false)).await;
    until("the sale to be held", || outbox.held().unwrap().len() == 1).await;
    station.crash().await;
    assert!(sales_sent(&outbox).is_empty());

    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored.held, 1);
    // The crash came before the pump's reset: it reports the same fill again.
    station
        .pump(DispenserEvent::SaleCompleted(sale(
            t0 + 5_000,
            "30.00",
            true,
        )))
        .await;
    until("the recovered sale to be counted as kept", || {
        station.kept_sales.count(1) == 1
    })
    .await;
    station.stop().await;
    let sent = sales_sent(&outbox);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1.completed_t, t0, "the sale held, not the report");
    assert!(outbox.held().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_sent_before_a_restart_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let t0 = forecourt_events::now_millis();
    let (station, _) = start(&outbox, dir.path()).await;
    station.fill(&sale(t0, "25.50", false)).await;
    until("the sale to be held", || outbox.held().unwrap().len() == 1).await;
    station.stop().await;
    assert_eq!(sales_sent(&outbox).len(), 1);

    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!((restored.released, restored.held), (1, 0));
    // The pump still shows that fill at start; a different fill is a new sale.
    station
        .pump(DispenserEvent::SaleCompleted(sale(
            t0 + 5_000,
            "25.50",
            true,
        )))
        .await;
    station
        .pump(DispenserEvent::SaleCompleted(sale(
            t0 + 9_000,
            "12.00",
            true,
        )))
        .await;
    until("the new sale to be held", || {
        outbox.held().unwrap().len() == 1
    })
    .await;
    station.stop().await;
    let volumes: Vec<String> = sales_sent(&outbox)
        .iter()
        .map(|(_, s)| s.volume.to_string())
        .collect();
    assert_eq!(volumes, ["25.50", "12.00"]);
}

fn keyed(t: i64, volume: &str, key: &str) -> Sale {
    Sale {
        source_key: Some(key.to_owned()),
        ..sale(t, volume, false)
    }
}

/// A source that keys its sales (IFSF) reports every transaction still in the device's buffer
/// after a restart, held or sent before it, and older ones: each key leaves the station once,
/// and the same key with another volume (the device numbering again) is a new sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_sale_leaves_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let t0 = forecourt_events::now_millis();
    let (station, _) = start(&outbox, dir.path()).await;
    station
        .fill(&keyed(t0, "20.00", "ifsf-tcp:1.1:1:0007"))
        .await;
    until("the first sale to be held", || {
        outbox.held().unwrap().len() == 1
    })
    .await;
    station.stop().await;
    let (station, _) = start(&outbox, dir.path()).await;
    station
        .fill(&keyed(t0 + 60_000, "30.00", "ifsf-tcp:1.1:1:0008"))
        .await;
    until("the second sale to be held", || {
        outbox.held().unwrap().len() == 1
    })
    .await;
    station.crash().await;

    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored.held, 1);
    // The buffer read after the restart: 0007 (sent two runs ago), 0008 (held at the crash),
    // 0009 (sold while no agent ran), and 0007 again with another volume (a new sale).
    for (dt, volume, key) in [
        (1_000, "20.00", "ifsf-tcp:1.1:1:0007"),
        (1_100, "30.00", "ifsf-tcp:1.1:1:0008"),
        (1_200, "15.00", "ifsf-tcp:1.1:1:0009"),
        (1_300, "44.00", "ifsf-tcp:1.1:1:0007"),
    ] {
        let mut sale = keyed(t0 + 120_000 + dt, volume, key);
        sale.recovered = true;
        station.pump(DispenserEvent::SaleCompleted(sale)).await;
    }
    until("the new sales to be held", || {
        outbox.held().unwrap().len() == 3
    })
    .await;
    station.stop().await;
    let mut sent: Vec<(String, String)> = sales_sent(&outbox)
        .into_iter()
        .map(|(_, s)| (s.source_key.unwrap(), s.volume.to_string()))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("ifsf-tcp:1.1:1:0007".to_owned(), "20.00".to_owned()),
            ("ifsf-tcp:1.1:1:0007".to_owned(), "44.00".to_owned()),
            ("ifsf-tcp:1.1:1:0008".to_owned(), "30.00".to_owned()),
            ("ifsf-tcp:1.1:1:0009".to_owned(), "15.00".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_commands_are_carried_out_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let t0 = forecourt_events::now_millis();
    let (station, _) = start(&outbox, dir.path()).await;
    station.fill(&sale(t0, "20.00", false)).await;
    until("the sale to be held", || outbox.held().unwrap().len() == 1).await;
    station.stop().await;
    let (sale_id, _) = sales_sent(&outbox)[0].clone();

    let (station, _) = start(&outbox, dir.path()).await;
    let correct = |sale_id: uuid::Uuid, plate: &str| {
        let payload = format!(r#"{{"id":"c","sale_id":"{sale_id}","plate":"{plate}","by":"ops"}}"#);
        StationCommands::local("plate_correction", &payload)
    };
    match station.command(correct(sale_id, "京A12345").unwrap()).await {
        CommandReply::Done(result) => {
            let result: wire::PlateCorrectionResult = serde_json::from_value(result).unwrap();
            assert_eq!(
                (result.stream, result.seq),
                (wire::Stream::SaleCorrection, 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // Refused before it reaches the station: not a plate.
    assert!(matches!(
        correct(sale_id, "A1"),
        Err(CommandError::BadValue { field: "plate", .. })
    ));
    // The hour still being counted: its figures so far.
    let hourly =
        |t: i64| StationCommands::local("hourly", &format!(r#"{{"id":"h","hour":{t}}}"#)).unwrap();
    match station.command(hourly(t0)).await {
        CommandReply::Done(result) => {
            let hour: wire::HourSummary = serde_json::from_value(result).unwrap();
            assert!(hour.counted_until.is_some(), "{hour:?}");
            assert_eq!(hour.fps[0].metrics.sales, 1, "{hour:?}");
        }
        other => panic!("{other:?}"),
    }
    // Checked, but the station cannot carry them out.
    let refused = [
        correct(uuid::Uuid::new_v4(), "京A12345").unwrap(),
        // Two hours before anything was counted.
        hourly(t0 - 7_200_000),
        StationCommands::local("reload_config", r#"{"id":"r"}"#).unwrap(),
    ];
    for action in refused {
        let name = action.name();
        let reply = station.command(action).await;
        assert!(
            matches!(&reply, CommandReply::Failed(why) if !why.is_empty()),
            "{name}: {reply:?}"
        );
    }
    let trace = StationCommands::local("record_trace", r#"{"id":"t","minutes":1}"#).unwrap();
    match station.command(trace).await {
        CommandReply::Done(result) => {
            let result: wire::RecordTraceResult = serde_json::from_value(result).unwrap();
            assert!(result.file.starts_with(dir.path().join("traces")));
            assert!(result.file.is_file());
        }
        other => panic!("{other:?}"),
    }
    station.stop().await;
    let corrections: Vec<wire::Envelope<wire::SaleCorrection>> = outbox
        .pending(None, 1_000)
        .unwrap()
        .iter()
        .filter(|r| r.stream == "sale_correction")
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(corrections.len(), 1, "only the valid correction is written");
    match &corrections[0].body {
        wire::SaleCorrection::Hq(c) => {
            assert_eq!((c.sale_id, c.plate.as_str()), (sale_id, "京A12345"))
        }
        other => panic!("{other:?}"),
    }
}

/// Zones drawn anew and reloaded (SIGHUP or HQ's `reload_config`) judge the sales from then on,
/// without a restart: a car standing on the right half of the image is fp 1's customer only once
/// fp 1's zone is redrawn there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_drawn_anew_by_a_reload_judge_the_next_sale() {
    for reload in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path());
        let t0 = forecourt_events::now_millis();
        let zones = Box::new(NewZones(Some(half(true))));
        let (station, _) = start_with(&outbox, dir.path(), half(false), Some(zones)).await;
        if reload {
            let action = StationCommands::local("reload_config", r#"{"id":"r1"}"#).unwrap();
            let CommandReply::Done(result) = station.command(action).await else {
                panic!("reload refused");
            };
            assert_eq!(result["applied"], serde_json::json!(["fp"]), "{result}");
        }
        for k in 0..150 {
            let frame = FramePlates {
                t: t0 - 70_000 + k * 500,
                camera: "cam1".into(),
                plates: vec![forecourt_events::PlateRead {
                    text: "苏E05EV8".into(),
                    confidence: 0.95,
                    bbox: [0.7, 0.5, 0.8, 0.55],
                }],
            };
            station.frames.send(frame).await.unwrap();
        }
        station.fill(&sale(t0, "30.00", false)).await;
        until("the sale to be held", || outbox.held().unwrap().len() == 1).await;
        station.stop().await;
        let sent = sales_sent(&outbox);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let want = reload.then_some("苏E05EV8");
        assert_eq!(sent[0].1.plate.as_deref(), want, "reload: {reload}");
    }
}

/// The hour a station was counting survives its restart: the run after it counts on from what
/// the last one saved at its stop (through the outbox), so the hour's summary, published 60 s
/// after the hour or asked for with `hourly`, still has the sales sold before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hour_being_counted_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let started = forecourt_events::now_millis();
    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored.running_hours, 0);
    let t0 = forecourt_events::now_millis();
    station.fill(&sale(t0, "33.00", false)).await;
    until("the sale held", || outbox.held().unwrap().len() == 1).await;
    station.stop().await;
    let stopped = forecourt_events::now_millis();

    // The run counts every wall-clock hour it was up in: one, or two when an hour ended during
    // it (this raced in CI when the test ran across a full hour).
    let hours_up = ((analytics::hour_of(stopped) - analytics::hour_of(started))
        / analytics::HOUR_MS) as usize
        + 1;
    let (station, restored) = start(&outbox, dir.path()).await;
    assert!(
        (1..=hours_up).contains(&restored.running_hours),
        "{restored:?}, {hours_up} hour(s) up"
    );
    let ask = StationCommands::local("hourly", &format!(r#"{{"id":"h","hour":{t0}}}"#)).unwrap();
    match station.command(ask).await {
        CommandReply::Done(result) => {
            let hour: wire::HourSummary = serde_json::from_value(result).unwrap();
            let fp1 = &hour.fps[0];
            assert_eq!(fp1.metrics.sales, 1, "{hour:?}");
            assert_eq!(fp1.metrics.volume, "33.00".parse().unwrap(), "{hour:?}");
        }
        other => panic!("{other:?}"),
    }
    station.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hq_plate_notes_show_at_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(dir.path());
    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored.plate_notes, 0);
    let now = forecourt_events::now_millis();
    let (soon, later) = (now + 3_600_000, now + 86_400_000);
    let set = format!(
        r#"{{"id":"n1","notes":[{{"plate":"苏E05EV8","note":"member, prefers 95#","until":{later}}},{{"plate":"京A12345","note":"fleet card","until":{soon}}}]}}"#
    );
    match station
        .command(StationCommands::local("plate_notes", &set).unwrap())
        .await
    {
        CommandReply::Done(result) => {
            let result: wire::PlateNotesResult = serde_json::from_value(result).unwrap();
            assert_eq!((result.set, result.removed, result.held), (2, 0, 2));
        }
        other => panic!("{other:?}"),
    }
    let shown = station.plate_notes.borrow().clone();
    assert_eq!(shown.note("苏E05EV8", now), Some("member, prefers 95#"));
    assert_eq!(shown.note("京A12345", soon), None, "expired");

    // Past the bound: refused, and nothing changed.
    let many: Vec<String> = (0..station::plate_notes::MAX_NOTES)
        .map(|i| format!(r#"{{"plate":"沪B{i:05}","note":"x","until":{later}}}"#))
        .collect();
    let too_many = format!(r#"{{"id":"n2","notes":[{}]}}"#, many.join(","));
    match station
        .command(StationCommands::local("plate_notes", &too_many).unwrap())
        .await
    {
        CommandReply::Failed(why) => assert!(why.contains("at most"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(station.plate_notes.borrow().len(), 2);
    station.stop().await;

    let (station, restored) = start(&outbox, dir.path()).await;
    assert_eq!(restored.plate_notes, 2);
    assert_eq!(
        station.plate_notes.borrow().note("苏E05EV8", now),
        Some("member, prefers 95#")
    );
    let remove = r#"{"id":"n3","remove":["苏E05EV8"]}"#;
    assert!(matches!(
        station
            .command(StationCommands::local("plate_notes", remove).unwrap())
            .await,
        CommandReply::Done(_)
    ));
    assert_eq!(station.plate_notes.borrow().note("苏E05EV8", now), None);
    station.stop().await;
}
