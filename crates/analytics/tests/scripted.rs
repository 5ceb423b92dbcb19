//! Scripted event streams with hand-computed expected values for every metric.

use analytics::{Analytics, AnalyticsConfig, AnalyticsEvent, FillEnd, HourSummary, HOUR_MS};
use forecourt_events::{Decimal, DispenserEvent, FramePlates, PlateRead, Sale, SaleMatch};
use matcher::{FpLayout, Layout, MatchedSale, Zone};
use serde_json::json;

/// An hour boundary.
const H: i64 = 1_699_999_200_000;
const A: &str = "苏E05EV8";
const B: &str = "京A12345";

fn layout() -> Layout {
    let zone = |x0: f32, x1: f32| Zone {
        camera: "cam1".into(),
        polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
    };
    Layout {
        fps: vec![
            FpLayout {
                fp: 1,
                zones: vec![zone(0.0, 0.5)],
            },
            FpLayout {
                fp: 2,
                zones: vec![zone(0.5, 1.0)],
            },
        ],
    }
}

fn plate_ok(t: &str) -> bool {
    t.chars().count() == 7
}

fn frame(camera: &str, t: i64, plates: &[(&str, f32, f32)]) -> FramePlates {
    FramePlates {
        t,
        camera: camera.into(),
        plates: plates
            .iter()
            .map(|(text, x, conf)| PlateRead {
                text: text.to_string(),
                confidence: *conf,
                bbox: [x - 0.05, 0.5, x + 0.05, 0.55],
            })
            .collect(),
    }
}

fn sale(t: i64, fp: u8, nozzle: u8, volume: i64, amount: i64) -> Sale {
    Sale {
        t,
        fp,
        nozzle,
        nozzle_out_t: None,
        grade: None,
        volume: Decimal::new(volume, 2),
        amount: Decimal::new(amount, 2),
        price: Decimal::new(785, 2),
        end: None,
        recovered: false,
        totalizer: None,
        source_key: None,
    }
}

fn matched(sale: &Sale, out: i64, inn: i64, plate: Option<&str>) -> MatchedSale {
    MatchedSale {
        sale: sale.clone(),
        fill_start: Some(out),
        fill_end: inn,
        verdict: SaleMatch {
            plate: plate.map(str::to_string),
            confidence: if plate.is_some() { 0.99 } else { 0.0 },
            reason: String::new(),
        },
        candidate: None,
        runner_up: None,
        correction: false,
    }
}

fn nozzle(out: bool, t: i64, fp: u8, nozzle: u8) -> DispenserEvent {
    if out {
        DispenserEvent::NozzleOut { t, fp, nozzle }
    } else {
        DispenserEvent::NozzleIn { t, fp, nozzle }
    }
}

fn hourly(events: &[AnalyticsEvent]) -> Vec<&HourSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            AnalyticsEvent::Hourly(h) => Some(h),
            _ => None,
        })
        .collect()
}

/// An arrival HQ counts: not a provisional one, nor one taken back.
fn is_confirmed_arrival(e: &AnalyticsEvent) -> bool {
    e.stream() == "arrival" && e.body().get("state").is_none()
}

/// Two hours at a two-FP station; every number below is worked out by hand in the comments.
#[test]
fn scripted_two_hours() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut events = Vec::new();
    // Car A at FP1: a hesitant read (ignored), then three confident ones: arrival at the third.
    a.observe_frame(&frame("cam1", H + 9_000, &[(A, 0.25, 0.5)]));
    events.extend(a.poll(H + 9_000));
    a.observe_frame(&frame("cam1", H + 10_000, &[(A, 0.25, 0.95)]));
    assert!(a.poll(H + 10_000).is_empty());
    // The second read agrees exactly: said at once as a provisional arrival...
    a.observe_frame(&frame("cam1", H + 10_500, &[(A, 0.25, 0.95)]));
    let provisional = a.poll(H + 10_500);
    assert_eq!(provisional.len(), 1);
    let said = provisional[0].body();
    assert_eq!(said["state"], json!("provisional"));
    assert_eq!(said["visit"], json!(format!("{}:{A}", H + 10_000)));
    assert_eq!(said["t"], json!(H + 10_500));
    assert_eq!(said["reads"], json!(2));
    // ...and confirmed at the third, under the same visit key.
    a.observe_frame(&frame("cam1", H + 11_000, &[(A, 0.25, 0.95)]));
    let arrival = a.poll(H + 11_000);
    assert_eq!(arrival.len(), 1);
    assert_eq!(arrival[0].body().get("state"), None);
    assert_eq!(arrival[0].stream(), "arrival");
    let body = arrival[0].body();
    assert_eq!(body["visit"], json!(format!("{}:{A}", H + 10_000)));
    assert_eq!(body["t"], json!(H + 11_000));
    assert_eq!(body["plate"], json!(A));
    assert_eq!(body["camera"], json!("cam1"));
    assert_eq!(body["fp"], json!(1));
    assert_eq!(body["first_seen_t"], json!(H + 10_000));
    assert_eq!(body["reads"], json!(3));
    assert!(body["confidence"].as_f64().unwrap() >= 0.9);
    // More reads, one of them a misread: still the same visit, no second arrival.
    for (t, text) in [(20_000, A), (20_500, "苏E05FV8"), (60_000, A), (110_000, A)] {
        a.observe_frame(&frame("cam1", H + t, &[(text, 0.25, 0.95)]));
        assert!(a.poll(H + t).is_empty());
    }
    // FP1 nozzle 1: out 40 s, in 100 s, 35.21 l / 276.40, stopped by itself.
    a.observe_dispenser(&nozzle(true, H + 40_000, 1, 1));
    a.observe_dispenser(&nozzle(false, H + 100_000, 1, 1));
    let s1 = sale(H + 101_000, 1, 1, 3521, 27640);
    a.observe_sale_end(&s1, Some(FillEnd::Auto));
    a.observe_matched(&matched(&s1, H + 40_000, H + 100_000, Some(A)));
    a.observe_dispenser(&DispenserEvent::SaleGap {
        t: H + 200_000,
        fp: 1,
        nozzle: 1,
        missing_volume: Decimal::new(150, 2),
        totalizer: 0,
    });
    // Visit A ends 180 s after its last read (110 s).
    assert!(a.poll(H + 289_999).is_empty());
    let visit = a.poll(H + 290_000);
    assert_eq!(visit.len(), 1);
    assert_eq!(
        visit[0].body(),
        json!({"visit": format!("{}:{A}", H + 10_000), "plate": A, "fp": 1,
               "arrival_t": H + 10_000, "nozzle_out_t": H + 40_000, "nozzle_in_t": H + 100_000,
               "departure_t": H + 110_000, "waiting_ms": 30_000, "service_ms": 60_000,
               "sales": [{"fp": 1, "nozzle": 1, "volume": "35.21", "amount": "276.40",
                          "nozzle_out_t": H + 40_000, "nozzle_in_t": H + 100_000,
                          "completed_t": H + 101_000, "plate": A}]})
    );
    // FP2, a plate-less customer at two nozzles: n2 8.00 l (preset), 10 s later n1 60.00 l.
    a.observe_dispenser(&nozzle(true, H + 3_000_000, 2, 2));
    a.observe_dispenser(&nozzle(false, H + 3_090_000, 2, 2));
    let s2 = sale(H + 3_091_000, 2, 2, 800, 6280);
    a.observe_sale_end(&s2, Some(FillEnd::Preset));
    a.observe_matched(&matched(&s2, H + 3_000_000, H + 3_090_000, None));
    a.observe_dispenser(&nozzle(true, H + 3_100_000, 2, 1));
    a.observe_dispenser(&nozzle(false, H + 3_130_000, 2, 1));
    let s3 = sale(H + 3_131_000, 2, 1, 6000, 47100);
    a.observe_sale_end(&s3, Some(FillEnd::Auto));
    a.observe_matched(&matched(&s3, H + 3_100_000, H + 3_130_000, None));
    let visit = a.poll(H + 3_311_000);
    assert_eq!(visit.len(), 1, "one vehicle for both nozzles");
    let v = visit[0].body();
    assert_eq!(v["visit"], json!(format!("{}:fp2", H + 3_000_000)));
    assert_eq!(v["plate"], json!(null));
    assert_eq!(v["arrival_t"], json!(null));
    assert_eq!(v["waiting_ms"], json!(null));
    assert_eq!(v["service_ms"], json!(130_000));
    assert_eq!(v["departure_t"], json!(H + 3_130_000));
    assert_eq!(v["sales"].as_array().unwrap().len(), 2);
    // FP1 nozzle 2 across the hour: out 3,580 s, in 3,640 s; car B never read well enough.
    a.observe_dispenser(&nozzle(true, H + 3_580_000, 1, 2));
    assert!(a.poll(H + 3_659_999).iter().all(|e| e.stream() != "hourly"));
    a.observe_dispenser(&nozzle(false, H + 3_640_000, 1, 2));
    let s4 = sale(H + 3_641_000, 1, 2, 1000, 7850);
    a.observe_dispenser(&DispenserEvent::SaleCompleted(s4.clone()));
    a.observe_matched(&matched(&s4, H + 3_580_000, H + 3_640_000, Some(B)));
    events.extend(a.poll(H + 3_660_000)); // hour 0 closes
                                          // Too late for hour 0.
    a.observe_dispenser(&DispenserEvent::SaleGap {
        t: H + 3_500_000,
        fp: 2,
        nozzle: 1,
        missing_volume: Decimal::new(1, 2),
        totalizer: 0,
    });
    events.extend(a.poll(H + 2 * HOUR_MS + 60_000)); // visit B ends, hour 1 closes
    let hours = hourly(&events);
    assert_eq!(hours.len(), 2);

    let h0 = serde_json::to_value(hours[0]).unwrap();
    let zeros_hist = json!({"0-10": 0, "10-20": 0, "20-30": 0, "30-40": 0, "40-60": 0, "60+": 0});
    let hist = |bins: &[(&str, u32)]| {
        let mut h = zeros_hist.clone();
        for (k, v) in bins {
            h[*k] = json!(v);
        }
        h
    };
    assert_eq!(h0["hour"], json!(H));
    assert_eq!(h0["entrance_arrivals"], json!(0));
    assert_eq!(h0["late_events"], json!(0));
    let fp1 = &h0["fps"][0];
    assert_eq!(
        *fp1,
        json!({"fp": 1, "arrivals": 1, "lifts": 2, "sales": 1, "volume": "35.21",
               "amount": "276.40", "vehicles": 1, "waiting_n": 1, "waiting_mean_ms": 30_000,
               "waiting_p90_ms": 30_000,
               // n1 60 s + n2 the last 20 s of the hour
               "nozzle_out_ms": 80_000, "utilisation": 0.0222,
               "volume_histogram": hist(&[("30-40", 1)]),
               "fill_auto": 1, "fill_preset": 0, "fill_unknown": 0, "fill_up_rate": 1.0,
               "sale_gaps": 1, "missing_volume": "1.50",
               "nozzles": [
                 {"nozzle": 1, "lifts": 1, "sales": 1, "volume": "35.21", "amount": "276.40",
                  "vehicles": 1, "waiting_n": 1, "waiting_mean_ms": 30_000, "waiting_p90_ms": 30_000,
                  "nozzle_out_ms": 60_000, "utilisation": 0.0167,
                  "volume_histogram": hist(&[("30-40", 1)]),
                  "fill_auto": 1, "fill_preset": 0, "fill_unknown": 0, "fill_up_rate": 1.0,
                  "sale_gaps": 1, "missing_volume": "1.50"},
                 {"nozzle": 2, "lifts": 1, "sales": 0, "volume": "0", "amount": "0",
                  "vehicles": 0, "waiting_n": 0, "waiting_mean_ms": null, "waiting_p90_ms": null,
                  "nozzle_out_ms": 20_000, "utilisation": 0.0056,
                  "volume_histogram": zeros_hist,
                  "fill_auto": 0, "fill_preset": 0, "fill_unknown": 0, "fill_up_rate": null,
                  "sale_gaps": 0, "missing_volume": "0"}],
               // A's 7 confident reads in FP1's zone (10 s to 110 s); its fill (40 s to 100 s)
               // judged, plated; A stood through it, nothing else was read.
               "zones": {"reads": 7, "sales_judged": 1, "plated": 1, "mean_confidence": 0.99,
                         "other_zone": 0, "unseen": 0}})
    );
    let fp2 = &h0["fps"][1];
    assert_eq!(fp2["fp"], json!(2));
    assert_eq!(fp2["arrivals"], json!(0));
    assert_eq!(fp2["lifts"], json!(2));
    assert_eq!(fp2["sales"], json!(2));
    assert_eq!(fp2["volume"], json!("68.00"));
    assert_eq!(fp2["amount"], json!("533.80"));
    assert_eq!(fp2["vehicles"], json!(1));
    assert_eq!(fp2["waiting_n"], json!(0));
    assert_eq!(fp2["waiting_mean_ms"], json!(null));
    assert_eq!(fp2["nozzle_out_ms"], json!(120_000));
    assert_eq!(fp2["utilisation"], json!(0.0333));
    assert_eq!(fp2["volume_histogram"], hist(&[("0-10", 1), ("60+", 1)]));
    assert_eq!(fp2["fill_auto"], json!(1));
    assert_eq!(fp2["fill_preset"], json!(1));
    assert_eq!(fp2["fill_up_rate"], json!(0.5));
    // Two plate-less sales; nothing was ever read in FP2's zone.
    assert_eq!(
        fp2["zones"],
        json!({"reads": 0, "sales_judged": 2, "plated": 0, "mean_confidence": null,
               "other_zone": 0, "unseen": 2})
    );
    // Per nozzle: the vehicle counts where its first sale was (n2).
    let n = &fp2["nozzles"];
    assert_eq!(n[0]["nozzle"], json!(1));
    assert_eq!(n[0]["vehicles"], json!(0));
    assert_eq!(n[0]["nozzle_out_ms"], json!(30_000));
    assert_eq!(n[0]["fill_up_rate"], json!(1.0));
    assert_eq!(n[1]["nozzle"], json!(2));
    assert_eq!(n[1]["vehicles"], json!(1));
    assert_eq!(n[1]["nozzle_out_ms"], json!(90_000));
    assert_eq!(n[1]["fill_up_rate"], json!(0.0));
    assert_eq!(n[1]["volume"], json!("8.00"));

    let h1 = serde_json::to_value(hours[1]).unwrap();
    assert_eq!(h1["hour"], json!(H + HOUR_MS));
    assert_eq!(h1["late_events"], json!(1));
    let fp1 = &h1["fps"][0];
    assert_eq!(fp1["lifts"], json!(0));
    assert_eq!(fp1["sales"], json!(1));
    assert_eq!(fp1["volume"], json!("10.00"));
    assert_eq!(fp1["volume_histogram"], hist(&[("10-20", 1)]));
    assert_eq!(fp1["fill_unknown"], json!(1));
    assert_eq!(fp1["fill_up_rate"], json!(null));
    assert_eq!(fp1["nozzle_out_ms"], json!(40_000));
    assert_eq!(fp1["nozzles"][1]["nozzle_out_ms"], json!(40_000));
    assert_eq!(fp1["vehicles"], json!(1));
    assert_eq!(fp1["waiting_n"], json!(0));
    // B's sale: plated by the matcher, but B was never read here.
    assert_eq!(fp1["zones"]["sales_judged"], json!(1));
    assert_eq!(fp1["zones"]["plated"], json!(1));
    assert_eq!(fp1["zones"]["unseen"], json!(1));
    assert_eq!(h1["fps"][1]["sales"], json!(0));
    // The on-demand JSON is what was published.
    assert_eq!(a.hour_json(H + 1_234), Some(h0.clone()));
    assert_eq!(a.hour_json(H + HOUR_MS), Some(h1.clone()));
    assert_eq!(a.hour_json(H + 2 * HOUR_MS), None);

    // After a restart the agent puts the published bodies back: the same answers on demand.
    let mut restarted = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    for published in [h1.clone(), h0.clone()] {
        restarted.restore_hour(serde_json::from_value(published).unwrap());
    }
    assert_eq!(restarted.hour_json(H + 1_234), Some(h0));
    assert_eq!(restarted.hour_json(H + HOUR_MS), Some(h1));
}

#[test]
fn waiting_mean_and_p90_over_ten_vehicles() {
    // Ten cars at FP1 in one hour, waiting 10, 20, ... 100 s: mean 55 s, p90 (nearest rank) 90 s.
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let plates = [
        "京A00000",
        "京B11111",
        "京C22222",
        "京D33333",
        "京E44444",
        "京F55555",
        "京G66666",
        "京H77777",
        "京J88888",
        "京K99999",
    ];
    let mut out = Vec::new();
    for (i, plate) in plates.iter().enumerate() {
        let t0 = H + i as i64 * 300_000;
        for k in 0..3 {
            a.observe_frame(&frame("cam1", t0 + k * 500, &[(plate, 0.25, 0.97)]));
        }
        let wait = (i as i64 + 1) * 10_000;
        a.observe_dispenser(&nozzle(true, t0 + wait, 1, 1));
        a.observe_dispenser(&nozzle(false, t0 + wait + 30_000, 1, 1));
        let s = sale(t0 + wait + 31_000, 1, 1, 2000, 15700);
        a.observe_dispenser(&DispenserEvent::SaleCompleted(s.clone()));
        a.observe_matched(&matched(&s, t0 + wait, t0 + wait + 30_000, Some(plate)));
        out.extend(a.poll(t0 + wait + 31_000));
    }
    out.extend(a.poll(H + HOUR_MS + 60_000));
    let h = hourly(&out);
    assert_eq!(h.len(), 1);
    let fp1 = &h[0].fps[0].metrics;
    assert_eq!(fp1.vehicles, 10);
    assert_eq!(fp1.waiting_n, 10);
    assert_eq!(fp1.waiting_mean_ms, Some(55_000));
    assert_eq!(fp1.waiting_p90_ms, Some(90_000));
    assert_eq!(fp1.nozzle_out_ms, 300_000);
    assert_eq!(fp1.utilisation, 0.0833);
    assert_eq!(fp1.volume.to_string(), "200.00");
    assert_eq!(out.iter().filter(|e| is_confirmed_arrival(e)).count(), 10);
    assert_eq!(out.iter().filter(|e| e.stream() == "visit").count(), 10);
}

#[test]
fn arrivals_once_per_visit_across_cameras_and_entrance() {
    let mut layout = layout();
    layout.fps[0].zones.push(Zone {
        camera: "cam2".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
    });
    let config = AnalyticsConfig {
        entrance_cameras: vec!["gate".into()],
        ..AnalyticsConfig::default()
    };
    let mut a = Analytics::new(layout, config, plate_ok);
    let mut out = Vec::new();
    // Read at the gate first: arrival with no FP. Then at FP1 by two cameras: no second event.
    for k in 0..40 {
        let t = H + k * 500;
        let camera = ["gate", "cam1", "cam2"][(k / 10).min(2) as usize];
        a.observe_frame(&frame(camera, t, &[(A, 0.25, 0.93)]));
        out.extend(a.poll(t));
    }
    // Low-confidence reads and reads outside every zone never make an arrival.
    for k in 0..20 {
        let t = H + 30_000 + k * 500;
        a.observe_frame(&frame(
            "cam1",
            t,
            &[(B, 0.25, 0.6), ("沪C99999", 0.75, 0.99)],
        ));
        a.observe_frame(&frame("elsewhere", t, &[("粤D11111", 0.5, 0.99)]));
        out.extend(a.poll(t));
    }
    let arrivals: Vec<_> = out.iter().filter(|e| is_confirmed_arrival(e)).collect();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(arrivals[0].body()["fp"], json!(null));
    assert_eq!(arrivals[0].body()["camera"], json!("gate"));
    assert_eq!(arrivals[1].body()["plate"], json!("沪C99999"));
    assert_eq!(arrivals[1].body()["fp"], json!(2));
    out.extend(a.poll(H + HOUR_MS + 60_000));
    let h = hourly(&out);
    assert_eq!(h[0].entrance_arrivals, 1);
    assert_eq!(h[0].fps[0].arrivals, 0);
    assert_eq!(h[0].fps[1].arrivals, 1);
    // The gate car's visit took in its FP1 reads.
    let visit = out
        .iter()
        .find(|e| e.stream() == "visit" && e.body()["plate"] == json!(A))
        .unwrap();
    assert_eq!(visit.body()["fp"], json!(1));
    assert_eq!(visit.body()["departure_t"], json!(H + 39 * 500));
    assert_eq!(a.open_visits(), 0);
}

#[test]
fn history_is_bounded_and_long_silences_are_skipped() {
    let config = AnalyticsConfig {
        keep_hours: 3,
        ..AnalyticsConfig::default()
    };
    let mut a = Analytics::new(layout(), config, plate_ok);
    let mut published = 0;
    for h in 0..5 {
        a.observe_dispenser(&nozzle(true, H + h * HOUR_MS + 1_000, 1, 1));
        a.observe_dispenser(&nozzle(false, H + h * HOUR_MS + 2_000, 1, 1));
        published += hourly(&a.poll(H + h * HOUR_MS + 2_000)).len();
    }
    published += hourly(&a.poll(H + 5 * HOUR_MS + 60_000)).len();
    assert_eq!(published, 5);
    assert_eq!(
        a.hours_held().collect::<Vec<_>>(),
        vec![H + 2 * HOUR_MS, H + 3 * HOUR_MS, H + 4 * HOUR_MS]
    );
    assert!(a.hour_json(H + HOUR_MS).is_none());
    assert_eq!(
        a.hour_json(H + 4 * HOUR_MS).unwrap()["fps"][0]["lifts"],
        json!(1)
    );
    // A month later: at most `keep_hours` empty hours are published, not 720.
    let later = H + 30 * 24 * HOUR_MS;
    a.observe_dispenser(&nozzle(true, later, 1, 1));
    let n = hourly(&a.poll(later + HOUR_MS + 60_000)).len();
    assert!(n <= 4, "{n}");
}

/// Reads of `plate` at `x` (FP1 at 0.25, FP2 at 0.75) every 500 ms over `from..to`.
fn reads(
    a: &mut Analytics,
    out: &mut Vec<AnalyticsEvent>,
    plate: &str,
    x: f32,
    from: i64,
    to: i64,
) {
    for t in (from..to).step_by(500) {
        a.observe_frame(&frame("cam1", t, &[(plate, x, 0.93)]));
        out.extend(a.poll(t));
    }
}

fn visits(events: &[AnalyticsEvent]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e.stream() == "visit")
        .map(AnalyticsEvent::body)
        .collect()
}

#[test]
fn similar_plates_elsewhere_or_later_are_other_cars() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut out = Vec::new();
    // A at FP1 (last read H+4.5 s); one character off, at FP2 while A is still there: another
    // car; one character off at FP1 a minute after A was last read: the next car.
    reads(&mut a, &mut out, A, 0.25, H, H + 5_000);
    reads(&mut a, &mut out, "苏E05EV9", 0.75, H + 3_000, H + 5_000);
    reads(&mut a, &mut out, "苏E05EV6", 0.25, H + 60_000, H + 62_000);
    // A misread of A while it is being read, where it is: still A (no arrival).
    reads(&mut a, &mut out, A, 0.25, H + 70_000, H + 71_000);
    reads(&mut a, &mut out, "苏E05EV0", 0.25, H + 71_000, H + 73_000);
    let arrivals: Vec<(serde_json::Value, serde_json::Value)> = out
        .iter()
        .filter(|e| is_confirmed_arrival(e))
        .map(|e| (e.body()["plate"].clone(), e.body()["fp"].clone()))
        .collect();
    assert_eq!(
        arrivals,
        vec![
            (json!(A), json!(1)),
            (json!("苏E05EV9"), json!(2)),
            (json!("苏E05EV6"), json!(1)),
        ]
    );
}

#[test]
fn a_plateless_fill_over_before_the_car_came_is_another_customer() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut out = Vec::new();
    // A customer without a plate fills at FP1 (out +100 s, in +130 s); car B is first read at
    // +140 s and lifts at +145 s, 15 s after that hang-up (within the 20 s same-vehicle gap).
    a.observe_dispenser(&nozzle(true, H + 100_000, 1, 1));
    a.observe_dispenser(&nozzle(false, H + 130_000, 1, 1));
    let s1 = sale(H + 131_000, 1, 1, 2000, 15700);
    a.observe_dispenser(&DispenserEvent::SaleCompleted(s1.clone()));
    a.observe_matched(&matched(&s1, H + 100_000, H + 130_000, None));
    reads(&mut a, &mut out, B, 0.25, H + 140_000, H + 210_000);
    let s2 = sale(H + 201_000, 1, 2, 3000, 23550);
    a.observe_dispenser(&nozzle(true, H + 145_000, 1, 2));
    a.observe_dispenser(&nozzle(false, H + 200_000, 1, 2));
    a.observe_dispenser(&DispenserEvent::SaleCompleted(s2.clone()));
    a.observe_matched(&matched(&s2, H + 145_000, H + 200_000, Some(B)));
    out.extend(a.poll(H + HOUR_MS + 60_000));
    let v = visits(&out);
    assert_eq!(v.len(), 2, "{v:?}");
    let anon = v.iter().find(|v| v["plate"].is_null()).unwrap();
    assert_eq!(anon["sales"].as_array().unwrap().len(), 1);
    assert_eq!(anon["nozzle_out_t"], json!(H + 100_000));
    let car = v.iter().find(|v| v["plate"] == json!(B)).unwrap();
    assert_eq!(car["sales"].as_array().unwrap().len(), 1);
    assert_eq!(car["arrival_t"], json!(H + 140_000));
    assert_eq!(car["waiting_ms"], json!(5_000));
    let fp1 = &hourly(&out)[0].fps[0].metrics;
    assert_eq!(
        (fp1.vehicles, fp1.waiting_n, fp1.waiting_mean_ms),
        (2, 1, Some(5_000))
    );
}

#[test]
fn a_car_pulling_out_is_not_the_next_customer() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut out = Vec::new();
    // FP1: A fills +10..+60 s and is last read at +75 s, pulling out; a customer without a
    // plate lifts at +70 s. FP2: B fills +10..+60 s and stays (read until +130 s) for a second
    // nozzle +70..+100 s that the matcher gave no plate: B's second sale.
    let (sa, sb) = (
        sale(H + 61_000, 1, 1, 4000, 31400),
        sale(H + 61_000, 2, 1, 4000, 31400),
    );
    let (sc, sd) = (
        sale(H + 101_000, 1, 2, 1000, 7850),
        sale(H + 101_000, 2, 2, 1000, 7850),
    );
    for k in 0..260 {
        let t = H + k * 500;
        let mut plates = vec![(B, 0.75, 0.93)];
        if t < H + 75_500 {
            plates.push((A, 0.25, 0.93));
        }
        a.observe_frame(&frame("cam1", t, &plates));
        out.extend(a.poll(t));
        match t - H {
            66_000 => {
                a.observe_matched(&matched(&sa, H + 10_000, H + 60_000, Some(A)));
                a.observe_matched(&matched(&sb, H + 10_000, H + 60_000, Some(B)));
            }
            106_000 => {
                a.observe_matched(&matched(&sc, H + 70_000, H + 100_000, None));
                a.observe_matched(&matched(&sd, H + 70_000, H + 100_000, None));
            }
            _ => {}
        }
    }
    for s in [&sa, &sb, &sc, &sd] {
        a.observe_dispenser(&DispenserEvent::SaleCompleted(s.clone()));
    }
    out.extend(a.poll(H + HOUR_MS + 60_000));
    let v = visits(&out);
    let sales_of = |plate: serde_json::Value, fp: u8| {
        v.iter()
            .filter(|v| v["plate"] == plate && v["fp"] == json!(fp))
            .map(|v| v["sales"].as_array().unwrap().len())
            .collect::<Vec<_>>()
    };
    assert_eq!(sales_of(json!(A), 1), vec![1]);
    assert_eq!(sales_of(json!(null), 1), vec![1]);
    assert_eq!(sales_of(json!(B), 2), vec![2]);
    assert_eq!(sales_of(json!(null), 2), Vec::<usize>::new());
    let h = hourly(&out);
    assert_eq!(
        (h[0].fps[0].metrics.vehicles, h[0].fps[1].metrics.vehicles),
        (2, 1)
    );
}

#[test]
fn an_hour_counted_from_a_restart_says_so() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    // Started 25 minutes into the hour: that hour's figures cover only the rest of it.
    a.counting_since(H + 1_500_000);
    let s = sale(H + 1_600_000, 1, 1, 1000, 7850);
    a.observe_dispenser(&DispenserEvent::SaleCompleted(s.clone()));
    a.observe_dispenser(&DispenserEvent::SaleCompleted(sale(
        H + HOUR_MS + 5,
        1,
        1,
        1000,
        7850,
    )));
    let out = a.poll(H + 2 * HOUR_MS + 60_000);
    let h = hourly(&out);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].counted_from, Some(H + 1_500_000));
    assert_eq!(
        AnalyticsEvent::Hourly(h[0].clone()).body()["counted_from"],
        json!(H + 1_500_000)
    );
    assert_eq!(h[0].fps[0].metrics.sales, 1);
    assert_eq!(h[1].counted_from, None);
    assert_eq!(
        AnalyticsEvent::Hourly(h[1].clone()).body()["counted_from"],
        json!(null)
    );
    // Started on the hour: a whole hour.
    let mut b = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    b.counting_since(H);
    b.observe_dispenser(&DispenserEvent::SaleCompleted(s));
    assert_eq!(hourly(&b.poll(H + HOUR_MS + 60_000))[0].counted_from, None);
    // Summaries archived before this field existed still load.
    let old: HourSummary = serde_json::from_value(
        json!({"hour": H, "entrance_arrivals": 0, "late_events": 0, "fps": []}),
    )
    .unwrap();
    assert_eq!(old.counted_from, None);
}

#[test]
fn a_correction_is_not_another_sale() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut out = Vec::new();
    reads(&mut a, &mut out, B, 0.25, H + 90_000, H + 140_000);
    a.observe_dispenser(&nozzle(true, H + 100_000, 1, 1));
    a.observe_dispenser(&nozzle(false, H + 130_000, 1, 1));
    let s = sale(H + 131_000, 1, 1, 2000, 15700);
    a.observe_dispenser(&DispenserEvent::SaleCompleted(s.clone()));
    a.observe_matched(&matched(&s, H + 100_000, H + 130_000, Some(B)));
    // The matcher's second look withdrew the plate: still one sale, in the visit it joined.
    let mut withdrawn = matched(&s, H + 100_000, H + 130_000, None);
    withdrawn.correction = true;
    a.observe_matched(&withdrawn);
    out.extend(a.poll(H + HOUR_MS + 60_000));
    let v = visits(&out);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["sales"].as_array().unwrap().len(), 1, "{v:?}");
    assert_eq!(v[0]["plate"], json!(B));
}

/// FP1 sells 35.21 l in hour 0, a nozzle still out over the hour's end.
fn hour_with_a_sale(a: &mut Analytics) {
    a.counting_since(H - 10_000);
    a.observe_dispenser(&nozzle(true, H + 40_000, 1, 1));
    a.observe_dispenser(&nozzle(false, H + 100_000, 1, 1));
    let s1 = sale(H + 101_000, 1, 1, 3521, 27640);
    a.observe_sale_end(&s1, Some(FillEnd::Auto));
    a.observe_matched(&matched(&s1, H + 40_000, H + 100_000, None));
    // Nozzle 2 out for the last 20 s of the hour and beyond.
    a.observe_dispenser(&nozzle(true, H + HOUR_MS - 20_000, 1, 2));
}

/// The agent stops 30 s into hour 1, inside the 60 s before hour 0 is published, and starts
/// again 20 s later: hour 0's summary is published by the new run, with the figures the old one
/// counted (taken over through JSON, as the station keeps them in the outbox).
#[test]
fn an_hour_ends_while_the_agent_restarts_and_its_summary_is_still_published() {
    let mut old = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    hour_with_a_sale(&mut old);
    old.observe_frame(&frame("cam1", H + HOUR_MS + 30_000, &[]));
    assert!(
        hourly(&old.poll(H + HOUR_MS + 30_000)).is_empty(),
        "not yet: 60 s delay"
    );
    let kept = serde_json::to_string(&old.running_hours()).unwrap();
    drop(old);

    let mut new = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    new.counting_since(H + HOUR_MS + 50_000);
    new.restore_running_hours(serde_json::from_str(&kept).unwrap());
    // The pump still shows nozzle 2 out; the new run hears of it again.
    new.observe_dispenser(&nozzle(true, H + HOUR_MS + 50_500, 1, 2));
    let events = new.poll(H + HOUR_MS + 60_000);
    let hours = hourly(&events);
    assert_eq!(hours.len(), 1, "{events:?}");
    let h0 = hours[0];
    assert_eq!(h0.hour, H);
    // Counting began before hour 0: a whole hour.
    assert_eq!(h0.counted_from, None);
    let fp1 = &h0.fps[0];
    assert_eq!(fp1.metrics.sales, 1);
    assert_eq!(fp1.metrics.volume, Decimal::new(3521, 2));
    assert_eq!(fp1.metrics.lifts, 2);
    // Nozzle 1's 60 s and nozzle 2's last 20 s of the hour.
    assert_eq!(fp1.metrics.nozzle_out_ms, 80_000);
    assert_eq!(fp1.zones.sales_judged, 1);
    // Without the running hours taken over, that summary is never published.
    let mut forgetful = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    forgetful.counting_since(H + HOUR_MS + 50_000);
    forgetful.observe_dispenser(&nozzle(true, H + HOUR_MS + 50_500, 1, 2));
    assert!(hourly(&forgetful.poll(H + 2 * HOUR_MS + 60_000))
        .iter()
        .all(|h| h.hour != H));
}

#[test]
fn the_hour_still_being_counted_is_there_on_demand_as_it_stands() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    hour_with_a_sale(&mut a);
    let now = H + HOUR_MS - 5_000;
    assert!(hourly(&a.poll(now)).is_empty());
    let so_far = a.hour_or_so_far(H + 1, now).expect("the current hour");
    assert_eq!(so_far.counted_until, Some(now));
    assert_eq!(so_far.fps[0].metrics.sales, 1);
    // Nozzle 2 has been out 15 s so far.
    assert_eq!(so_far.fps[0].metrics.nozzle_out_ms, 75_000);
    // Asking changes nothing: the published summary is the whole hour's.
    let h0 = hourly(&a.poll(H + HOUR_MS + 60_000))[0].clone();
    assert_eq!(h0.counted_until, None);
    assert_eq!(h0.fps[0].metrics.nozzle_out_ms, 80_000);
    assert_eq!(a.hour_or_so_far(H, H + HOUR_MS + 60_000), Some(h0));
    // An hour before counting began, or one in the future, is not there.
    assert_eq!(a.hour_or_so_far(H - HOUR_MS, now), None);
    assert_eq!(a.hour_or_so_far(H + 3 * HOUR_MS, now), None);
}

/// A provisional arrival whose reads vote another plate is taken back, and one whose car is
/// never read again is taken back when its reads grow too old; a single read says nothing.
#[test]
fn provisional_arrivals_not_confirmed_are_taken_back() {
    let mut a = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    let mut out = Vec::new();
    // Two exact misreads of A first (a smudge), then A read right four times: the vote says A.
    for (t, text) in [(0, "苏E05EV9"), (300, "苏E05EV9")] {
        a.observe_frame(&frame("cam1", H + t, &[(text, 0.25, 0.96)]));
        out.extend(a.poll(H + t));
    }
    for t in [600, 900, 1_200, 1_500, 1_800] {
        a.observe_frame(&frame("cam1", H + t, &[(A, 0.25, 0.99)]));
        out.extend(a.poll(H + t));
    }
    let states: Vec<(serde_json::Value, serde_json::Value)> = out
        .iter()
        .filter(|e| e.stream() == "arrival")
        .map(|e| (e.body()["plate"].clone(), e.body()["state"].clone()))
        .collect();
    assert_eq!(
        states,
        [
            (json!("苏E05EV9"), json!("provisional")),
            (json!("苏E05EV9"), json!("retracted")),
            (json!(A), serde_json::Value::Null),
        ]
    );
    // A car at FP2 read twice and never again: said, still said once its reads are too old for
    // a vote (a car at the pump may be hidden a while), taken back after the hold.
    let config = AnalyticsConfig::default();
    let mut b = Analytics::new(layout(), config.clone(), plate_ok);
    let mut out = Vec::new();
    for t in [0, 400] {
        b.observe_frame(&frame("cam1", H + t, &[("京A12345", 0.75, 0.97)]));
        out.extend(b.poll(H + t));
    }
    out.extend(b.poll(H + 400 + config.window_ms + 1));
    let states = |out: &[AnalyticsEvent]| -> Vec<serde_json::Value> {
        out.iter()
            .filter(|e| e.stream() == "arrival")
            .map(|e| e.body()["state"].clone())
            .collect()
    };
    assert_eq!(states(&out), [json!("provisional")]);
    out.extend(b.poll(H + 400 + config.provisional_hold_ms + 1));
    assert_eq!(states(&out), [json!("provisional"), json!("retracted")]);
    assert_eq!(b.provisional_counts(), (1, 1));
    // The same car read again, sparsely, within the hold: its reads are voted however far
    // apart, and the arrival said is confirmed under its own key.
    let mut d = Analytics::new(layout(), config.clone(), plate_ok);
    let mut out = Vec::new();
    for t in [0, 400, 20_000, 40_000] {
        d.observe_frame(&frame("cam1", H + t, &[("京A12345", 0.75, 0.97)]));
        out.extend(d.poll(H + t));
    }
    assert_eq!(
        states(&out),
        [json!("provisional"), serde_json::Value::Null]
    );
    let arrivals: Vec<_> = out.iter().filter(|e| e.stream() == "arrival").collect();
    assert_eq!(arrivals[0].body()["visit"], arrivals[1].body()["visit"]);
    assert_eq!(arrivals[1].body()["first_seen_t"], json!(H));
    assert_eq!(d.provisional_counts(), (1, 0));
    // Two sure reads of a text that most of the car's reads contradict: nothing said yet.
    let mut e = Analytics::new(layout(), config, plate_ok);
    for (t, text) in [
        (0, "京A12346"),
        (100, "京A12346"),
        (200, "京A12345"),
        (300, "京A12345"),
    ] {
        e.observe_frame(&frame(
            "cam1",
            H + t,
            &[(text, 0.75, if t < 200 { 0.88 } else { 0.97 })],
        ));
        assert!(e.poll(H + t).is_empty(), "said at {t}");
    }
    // One read only: nothing said.
    let mut c = Analytics::new(layout(), AnalyticsConfig::default(), plate_ok);
    c.observe_frame(&frame("cam1", H, &[("京A12345", 0.25, 0.99)]));
    assert!(c.poll(H).is_empty());
}
