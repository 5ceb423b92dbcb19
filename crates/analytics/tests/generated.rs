//! A generated trace replayed through the matcher and the analytics gives the analytics its
//! ground truth gives. With an ideal camera, every metric exactly; with the realistic camera
//! (misreads, occlusions, dropped frames), the pump metrics exactly and the camera-derived ones
//! (vehicles, waiting, arrivals) within stated bounds.

use std::collections::BTreeMap;

use analytics::replay::replay_analytics;
use analytics::{hour_of, AnalyticsConfig, AnalyticsEvent, DecimalSum, HourSummary, HOUR_MS};
use matcher::MatcherConfig;
use trace_gen::{generate_with_visits, is_valid_plate, CameraModel, ScenarioConfig, TruthVisit};

#[derive(Debug, Default, PartialEq)]
struct Pump {
    lifts: u32,
    sales: u32,
    volume: String,
    amount: String,
    histogram: Vec<u32>,
    fill_unknown: u32,
    nozzle_out_ms: i64,
}

/// The analytics events of a trace, as the agent would produce them.
fn replay(trace: &[u8]) -> Vec<AnalyticsEvent> {
    replay_analytics(
        trace,
        &MatcherConfig::default(),
        AnalyticsConfig::default(),
        is_valid_plate,
    )
    .unwrap()
}

fn hours_of(events: &[AnalyticsEvent]) -> Vec<&HourSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            AnalyticsEvent::Hourly(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn union_by_hour(mut iv: Vec<(i64, i64)>, out: &mut BTreeMap<i64, i64>) {
    iv.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (s, e) in iv {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    for (s, e) in merged {
        let mut h = hour_of(s);
        while h < e {
            *out.entry(h).or_default() += e.min(h + HOUR_MS) - s.max(h);
            h += HOUR_MS;
        }
    }
}

/// Expected pump metrics per (hour, fp, nozzle), nozzle 0 standing for the whole FP.
fn expected(visits: &[TruthVisit]) -> BTreeMap<(i64, u8, u8), Pump> {
    let mut sums: BTreeMap<(i64, u8, u8), (Pump, DecimalSum, DecimalSum)> = BTreeMap::new();
    let mut intervals: BTreeMap<(u8, u8), Vec<(i64, i64)>> = BTreeMap::new();
    for v in visits {
        for f in &v.fills {
            for n in [0, f.nozzle] {
                let (p, _, _) = sums.entry((hour_of(f.nozzle_out_t), v.fp, n)).or_default();
                p.lifts += 1;
                let (p, vol, amt) = sums.entry((hour_of(f.sale_t), v.fp, n)).or_default();
                p.sales += 1;
                p.fill_unknown += 1;
                vol.add(f.volume);
                amt.add(f.amount);
                if p.histogram.is_empty() {
                    p.histogram = vec![0; 6];
                }
                let litres = f.volume.minor() / 100;
                let bin = [10, 20, 30, 40, 60]
                    .iter()
                    .position(|&b| litres < b)
                    .unwrap_or(5);
                p.histogram[bin] += 1;
                intervals
                    .entry((v.fp, n))
                    .or_default()
                    .push((f.nozzle_out_t, f.nozzle_in_t));
            }
        }
    }
    for ((fp, n), iv) in intervals {
        let mut by_hour = BTreeMap::new();
        union_by_hour(iv, &mut by_hour);
        for (h, ms) in by_hour {
            sums.entry((h, fp, n)).or_default().0.nozzle_out_ms = ms;
        }
    }
    sums.into_iter()
        .map(|(k, (mut p, vol, amt))| {
            p.volume = vol.value().to_string();
            p.amount = amt.value().to_string();
            if p.histogram.is_empty() {
                p.histogram = vec![0; 6];
            }
            (k, p)
        })
        .collect()
}

fn got(hours: &[&HourSummary]) -> BTreeMap<(i64, u8, u8), Pump> {
    let mut out = BTreeMap::new();
    for h in hours {
        for fp in &h.fps {
            let rows = std::iter::once((0u8, &fp.metrics))
                .chain(fp.nozzles.iter().map(|n| (n.nozzle, &n.metrics)));
            for (n, m) in rows {
                let p = Pump {
                    lifts: m.lifts,
                    sales: m.sales,
                    volume: m.volume.to_string(),
                    amount: m.amount.to_string(),
                    histogram: m.volume_histogram.values().copied().collect(),
                    fill_unknown: m.fill_unknown,
                    nozzle_out_ms: m.nozzle_out_ms,
                };
                if p.lifts + p.sales > 0 || p.nozzle_out_ms > 0 {
                    out.insert((h.hour, fp.fp, n), p);
                }
            }
        }
    }
    out
}

#[test]
fn replayed_trace_matches_ground_truth() {
    let mut total_visits = 0usize;
    let (mut truth_vehicles, mut got_vehicles) = (0u32, 0u32);
    let (mut plated, mut one_arrival, mut duplicates, mut stray) = (0, 0, 0, 0);
    let (mut truth_wait, mut got_wait) = (Vec::new(), Vec::new());
    let mut latency = Vec::new();
    for seed in [11u64, 12, 13] {
        let (mut trace, mut truth) = (Vec::new(), Vec::new());
        let (_, visits) =
            generate_with_visits(&ScenarioConfig::new(seed, 240), &mut trace, &mut truth).unwrap();
        let events = replay(&trace);
        // Deterministic: a second replay gives the same events.
        let again = replay(&trace);
        assert_eq!(events, again);
        let hours = hours_of(&events);
        assert!(hours.len() >= 2, "the scenario spans hours");
        // Pump metrics: exactly.
        let want = expected(&visits);
        let have = got(&hours);
        for (k, w) in &want {
            assert_eq!(have.get(k), Some(w), "seed {seed} hour/fp/nozzle {k:?}");
        }
        assert_eq!(have.len(), want.len(), "seed {seed}");
        // Vehicles served.
        total_visits += visits.len();
        truth_vehicles += visits.iter().filter(|v| !v.fills.is_empty()).count() as u32;
        got_vehicles += hours
            .iter()
            .flat_map(|h| &h.fps)
            .map(|f| f.metrics.vehicles)
            .sum::<u32>();
        // Arrivals: one per plated visit, at its FP, while it was there (confirmed ones: a
        // provisional one is said before, and taken back or confirmed).
        let arrivals: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                AnalyticsEvent::Arrival(a) if a.state == wire::ArrivalState::Confirmed => Some(a),
                _ => None,
            })
            .collect();
        let mut used = vec![false; arrivals.len()];
        for v in &visits {
            let Some(plate) = &v.plate else { continue };
            plated += 1;
            let mine: Vec<usize> = (0..arrivals.len())
                .filter(|&i| {
                    let a = arrivals[i];
                    &a.plate == plate && a.fp == Some(v.fp) && a.t >= v.queue_t && a.t <= v.gone_t
                })
                .collect();
            for &i in &mine {
                used[i] = true;
            }
            if !mine.is_empty() {
                one_arrival += 1;
                duplicates += mine.len() - 1;
                let a = arrivals[mine[0]];
                latency.push(a.t - v.stop_t);
                let first_out = v.fills[0].nozzle_out_t;
                truth_wait.push((first_out - v.stop_t).max(0));
                got_wait.push((first_out - a.first_seen_t).max(0));
            }
        }
        stray += used.iter().filter(|u| !**u).count();
    }
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
    latency.sort_unstable();
    let pct = |p: usize| latency[(latency.len() * p).div_ceil(100).max(1) - 1];
    println!(
        "visits {total_visits}, plated {plated}: arrivals for {one_arrival} ({:.2}%), duplicates {duplicates}, stray {stray}",
        100.0 * one_arrival as f64 / plated as f64
    );
    println!("vehicles served: truth {truth_vehicles}, analytics {got_vehicles}");
    println!(
        "waiting (visits with an arrival): truth mean {:.1} s, analytics mean {:.1} s",
        mean(&truth_wait) / 1000.0,
        mean(&got_wait) / 1000.0
    );
    println!(
        "arrival event time - car stopped: p50 {} ms, p90 {} ms, p99 {} ms",
        pct(50),
        pct(90),
        pct(99)
    );
    assert!(one_arrival as f64 >= 0.95 * plated as f64);
    assert!(duplicates as f64 <= 0.01 * plated as f64);
    assert!(stray as f64 <= 0.01 * plated as f64);
    let vehicles_err = (got_vehicles as f64 - truth_vehicles as f64).abs() / truth_vehicles as f64;
    assert!(vehicles_err <= 0.03, "{got_vehicles} vs {truth_vehicles}");
    assert!((mean(&got_wait) - mean(&truth_wait)).abs() <= 5_000.0);
}

/// What a visit record says, without its key.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct VisitView {
    fp: Option<u8>,
    nozzle_out_t: Option<i64>,
    plate: Option<String>,
    arrival_t: Option<i64>,
    nozzle_in_t: Option<i64>,
    departure_t: i64,
    waiting_ms: Option<i64>,
    service_ms: Option<i64>,
    sales: usize,
}

/// Per (hour, fp, nozzle; 0 for the whole FP): vehicles and their waiting times.
type Vehicles = BTreeMap<(i64, u8, u8), (u32, Vec<i64>)>;

/// Mean (rounded half up) and nearest-rank p90, as documented for the hourly body.
fn mean_p90(waits: &[i64]) -> (Option<i64>, Option<i64>) {
    if waits.is_empty() {
        return (None, None);
    }
    let mut w = waits.to_vec();
    w.sort_unstable();
    let n = w.len() as i64;
    let mean = (w.iter().sum::<i64>() + n / 2) / n;
    let rank = (9 * w.len()).div_ceil(10);
    (Some(mean), Some(w[rank - 1]))
}

/// Customers without a plate are seen by no camera: one who lifts a nozzle within
/// `same_vehicle_gap_ms` of the previous plate-less customer's hang-up at the same FP cannot be
/// told from that customer's second nozzle (a top-up after a preset, another grade). The
/// documented definition counts them as one visit and one vehicle; so does the truth here.
fn as_one_stream_tells_them(
    customers: Vec<TruthVisit>,
    config: AnalyticsConfig,
) -> Vec<TruthVisit> {
    let mut merged: Vec<TruthVisit> = Vec::with_capacity(customers.len());
    let mut last_plateless: BTreeMap<u8, usize> = BTreeMap::new();
    for c in customers {
        if c.plate.is_none() {
            let first_out = c.fills.iter().map(|f| f.nozzle_out_t).min().unwrap();
            if let Some(&i) = last_plateless.get(&c.fp) {
                let prev = &mut merged[i];
                let last_in = prev.fills.iter().map(|f| f.nozzle_in_t).max().unwrap();
                if first_out - last_in <= config.same_vehicle_gap_ms {
                    prev.fills.extend(c.fills);
                    prev.gone_t = prev.gone_t.max(c.gone_t);
                    continue;
                }
            }
            last_plateless.insert(c.fp, merged.len());
        }
        merged.push(c);
    }
    merged
}

/// With an ideal camera (every frame, every plate read right) the camera-derived analytics have
/// an exact ground truth too: each plated car arrives when it is first read in a zone, leaves
/// when it is last read there, and every visit, vehicle and waiting time follows from that and
/// the pump's events. The replay must give exactly that, and the pump metrics as above.
#[test]
fn ideal_camera_trace_gives_ground_truth_exactly() {
    let (mut checked_visits, mut checked_waits) = (0usize, 0usize);
    // FORECOURT_LONG=1: twenty scenarios instead of three. Seeds 41..=100 were run once as
    // well: all equal except seed 50, where the matcher gave a car that was pulling out of the
    // picture the next (plate-less) customer's sale, and the visits follow the matcher.
    let long = std::env::var_os("FORECOURT_LONG").is_some_and(|v| v == "1");
    let seeds = if long { 21..=40u64 } else { 21..=23 };
    for seed in seeds {
        let mut config = ScenarioConfig::new(seed, 240);
        config.camera = CameraModel::Ideal;
        let (mut trace, mut truth) = (Vec::new(), Vec::new());
        let (_, customers) = generate_with_visits(&config, &mut trace, &mut truth).unwrap();
        let visits = as_one_stream_tells_them(customers, AnalyticsConfig::default());
        let events = replay(&trace);

        // Arrivals: one per plated car, at its FP, first seen when it entered a zone.
        let mut want_arrivals: Vec<(String, Option<u8>, i64)> = visits
            .iter()
            .filter_map(|v| {
                let (first, _) = v.zone_reads?;
                Some((v.plate.clone()?, Some(v.fp), first))
            })
            .collect();
        let mut got_arrivals = Vec::new();
        let mut arrivals_by_hour: BTreeMap<(i64, u8), u32> = BTreeMap::new();
        for e in &events {
            if let AnalyticsEvent::Arrival(a) = e {
                if a.state != wire::ArrivalState::Confirmed {
                    continue;
                }
                got_arrivals.push((a.plate.clone(), a.fp, a.first_seen_t));
                assert!(
                    a.t >= a.first_seen_t && a.t - a.first_seen_t <= 2_000,
                    "{a:?}"
                );
                *arrivals_by_hour
                    .entry((hour_of(a.t), a.fp.unwrap()))
                    .or_default() += 1;
            }
        }
        want_arrivals.sort();
        got_arrivals.sort();
        let only_got: Vec<_> = got_arrivals
            .iter()
            .filter(|a| !want_arrivals.contains(a))
            .collect();
        let only_want: Vec<_> = want_arrivals
            .iter()
            .filter(|a| !got_arrivals.contains(a))
            .collect();
        assert!(
            only_got.is_empty()
                && only_want.is_empty()
                && got_arrivals.len() == want_arrivals.len(),
            "seed {seed}: arrivals not in the truth {only_got:?}, truth not arrived {only_want:?}"
        );

        // Visits: every field.
        let mut want_visits: Vec<VisitView> = visits
            .iter()
            .map(|v| {
                let out = v.fills.iter().map(|f| f.nozzle_out_t).min();
                let inn = v.fills.iter().map(|f| f.nozzle_in_t).max();
                let arrival = v.plate.as_ref().and(v.zone_reads.map(|z| z.0));
                VisitView {
                    fp: Some(v.fp),
                    nozzle_out_t: out,
                    plate: v.plate.clone(),
                    arrival_t: arrival,
                    nozzle_in_t: inn,
                    departure_t: match (&v.plate, v.zone_reads) {
                        (Some(_), Some((_, last))) => last,
                        _ => inn.unwrap(),
                    },
                    waiting_ms: arrival.zip(out).map(|(a, o)| (o - a).max(0)),
                    service_ms: out.zip(inn).map(|(o, i)| i - o),
                    sales: v.fills.len(),
                }
            })
            .collect();
        let mut got_visits: Vec<VisitView> = events
            .iter()
            .filter_map(|e| match e {
                AnalyticsEvent::Visit(v) => Some(VisitView {
                    fp: v.fp,
                    nozzle_out_t: v.nozzle_out_t,
                    plate: v.plate.clone(),
                    arrival_t: v.arrival_t,
                    nozzle_in_t: v.nozzle_in_t,
                    departure_t: v.departure_t,
                    waiting_ms: v.waiting_ms,
                    service_ms: v.service_ms,
                    sales: v.sales.len(),
                }),
                _ => None,
            })
            .collect();
        want_visits.sort();
        got_visits.sort();
        for (g, w) in got_visits.iter().zip(&want_visits) {
            assert_eq!(g, w, "seed {seed}: first visit that differs");
        }
        assert_eq!(got_visits.len(), want_visits.len(), "seed {seed}: visits");
        checked_visits += want_visits.len();

        // Hourly: vehicles (in the hour of their first sale, at its nozzle), waiting mean and
        // p90, arrivals, and the pump metrics.
        let mut want_vehicles: Vehicles = BTreeMap::new();
        for v in &visits {
            let Some(first) = v.fills.iter().min_by_key(|f| f.sale_t) else {
                continue;
            };
            let wait = v.plate.as_ref().and(v.zone_reads).map(|(a, _)| {
                let out = v.fills.iter().map(|f| f.nozzle_out_t).min().unwrap();
                (out - a).max(0)
            });
            for n in [0, first.nozzle] {
                let (count, waits) = want_vehicles
                    .entry((hour_of(first.sale_t), v.fp, n))
                    .or_default();
                *count += 1;
                waits.extend(wait);
            }
        }
        let hours = hours_of(&events);
        let mut got_vehicles: Vehicles = BTreeMap::new();
        for h in &hours {
            for fp in &h.fps {
                assert_eq!(
                    fp.arrivals,
                    arrivals_by_hour.get(&(h.hour, fp.fp)).copied().unwrap_or(0),
                    "seed {seed}: arrivals of hour {} fp {}",
                    h.hour,
                    fp.fp
                );
                let rows = std::iter::once((0u8, &fp.metrics))
                    .chain(fp.nozzles.iter().map(|n| (n.nozzle, &n.metrics)));
                for (n, m) in rows {
                    if m.vehicles == 0 {
                        assert_eq!((m.waiting_n, m.waiting_mean_ms), (0, None));
                        continue;
                    }
                    let key = (h.hour, fp.fp, n);
                    let want = want_vehicles.get(&key).cloned().unwrap_or_default();
                    assert_eq!(m.vehicles, want.0, "seed {seed}: vehicles {key:?}");
                    assert_eq!(m.waiting_n as usize, want.1.len(), "seed {seed}: {key:?}");
                    let (mean, p90) = mean_p90(&want.1);
                    assert_eq!(m.waiting_mean_ms, mean, "seed {seed}: mean wait {key:?}");
                    assert_eq!(m.waiting_p90_ms, p90, "seed {seed}: p90 wait {key:?}");
                    checked_waits += want.1.len();
                    got_vehicles.insert(key, want);
                }
            }
        }
        assert_eq!(got_vehicles, want_vehicles, "seed {seed}: vehicle rows");
        assert_eq!(got(&hours), expected(&visits), "seed {seed}: pump metrics");
    }
    println!("ideal camera: {checked_visits} visits and {checked_waits} waiting times equal to the ground truth");
}
