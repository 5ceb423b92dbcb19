//! A generated trace replayed through the matcher and the analytics gives the analytics its
//! ground truth gives: the pump metrics exactly, the camera-derived ones (vehicles, waiting,
//! arrivals) within stated bounds.

use std::collections::BTreeMap;

use analytics::replay::replay_analytics;
use analytics::{hour_of, AnalyticsConfig, AnalyticsEvent, DecimalSum, HourSummary, HOUR_MS};
use matcher::MatcherConfig;
use trace_gen::{generate_with_visits, is_valid_plate, ScenarioConfig, TruthVisit};

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
        let events = replay_analytics(
            trace.as_slice(),
            &MatcherConfig::default(),
            AnalyticsConfig::default(),
            is_valid_plate,
        )
        .unwrap();
        // Deterministic: a second replay gives the same events.
        let again = replay_analytics(
            trace.as_slice(),
            &MatcherConfig::default(),
            AnalyticsConfig::default(),
            is_valid_plate,
        )
        .unwrap();
        assert_eq!(events, again);
        let hours: Vec<&HourSummary> = events
            .iter()
            .filter_map(|e| match e {
                AnalyticsEvent::Hourly(h) => Some(h),
                _ => None,
            })
            .collect();
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
        // Arrivals: one per plated visit, at its FP, while it was there.
        let arrivals: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                AnalyticsEvent::Arrival(a) => Some(a),
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
