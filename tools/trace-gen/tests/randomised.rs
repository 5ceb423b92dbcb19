//! The domain-randomised generator: deterministic, complete ground truth, every family's cases,
//! every FP with a zone, traces the matcher reads. Quality bars are not asserted here: the
//! figures are `cargo run --release -p trace-gen --example eval_families`.

use std::collections::{BTreeMap, BTreeSet};

use matcher::{eval_match, MatcherConfig, SaleRecord, TraceReader, TraceRecord, TruthLine};
use trace_gen::{generate_randomised, is_valid_plate, Family, RandomisedScenario, CASES, FAMILIES};

fn scenario(family: &Family, seed: u64, sales: usize) -> (Vec<u8>, Vec<u8>, RandomisedScenario) {
    let (mut trace, mut truth) = (Vec::new(), Vec::new());
    let out = generate_randomised(family, seed, sales, &mut trace, &mut truth).unwrap();
    (trace, truth, out)
}

#[test]
fn same_family_and_seed_same_bytes() {
    for family in [&FAMILIES[0], FAMILIES.iter().find(|f| f.held_out).unwrap()] {
        let (trace, truth, _) = scenario(family, 11, 60);
        let (again, again_truth, _) = scenario(family, 11, 60);
        assert!(trace == again && truth == again_truth, "{}", family.name);
        assert_ne!(trace, scenario(family, 12, 60).0, "{}", family.name);
    }
    // One seed, two families: two different stations.
    assert_ne!(
        scenario(&FAMILIES[0], 11, 30).0,
        scenario(&FAMILIES[1], 11, 30).0
    );
}

#[test]
fn families_are_named_once_and_some_are_held_out() {
    let names: BTreeSet<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), FAMILIES.len());
    let held_out = FAMILIES.iter().filter(|f| f.held_out).count();
    assert!(held_out * 3 >= FAMILIES.len(), "{held_out} held out");
    for family in &FAMILIES {
        for case in family.expected_cases {
            assert!(CASES.contains(case), "{}: {case}", family.name);
        }
    }
}

/// Reads a trace back: checks the layout and the order, returns the sale refs with their FPs.
fn read_trace(trace: &[u8], name: &str) -> BTreeMap<String, u32> {
    let (layout, mut reader) = TraceReader::open(trace).unwrap();
    assert!(!layout.fps.is_empty());
    for fp in &layout.fps {
        assert!(!fp.zones.is_empty(), "{name}: FP {} has no zone", fp.fp);
        for zone in &fp.zones {
            assert!((4..=6).contains(&zone.polygon.len()), "{name}: {zone:?}");
        }
    }
    let fps: BTreeSet<u32> = layout.fps.iter().map(|f| u32::from(f.fp)).collect();
    let mut last_t = i64::MIN;
    let mut sales = BTreeMap::new();
    while let Some(record) = reader.next_record().unwrap() {
        let t = record.time().unwrap();
        assert!(t >= last_t, "{name}: records out of order");
        last_t = t;
        if let TraceRecord::Sale(SaleRecord { sale_ref, fp, .. }) = record {
            assert!(
                fps.contains(&u32::from(fp)),
                "{name}: sale at unknown FP {fp}"
            );
            sales.insert(sale_ref.expect("every sale has a ref"), u32::from(fp));
        }
    }
    sales
}

#[test]
fn every_family_gives_complete_truth_and_its_cases() {
    let mut seen_anywhere: BTreeSet<&str> = BTreeSet::new();
    for family in &FAMILIES {
        let mut cases: BTreeMap<&str, usize> = BTreeMap::new();
        for seed in [1, 2] {
            let (trace, truth, out) = scenario(family, seed, 150);
            let name = format!("{}-{seed}", family.name);
            let sales = read_trace(&trace, &name);
            let lines: Vec<TruthLine> = std::str::from_utf8(&truth)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert!(lines.len() >= 150, "{name}: {} sales", lines.len());
            assert_eq!(lines.len(), sales.len(), "{name}");
            assert_eq!(lines.len(), out.sales.len(), "{name}");
            for (line, sale) in lines.iter().zip(&out.sales) {
                assert_eq!(
                    sales.get(&line.sale_ref),
                    Some(&u32::from(sale.fp)),
                    "{name}"
                );
                assert_eq!(*line, sale.truth_line());
                assert!(!line.cases.is_empty());
                let no_car = line.cases.iter().any(|c| c == "no_car");
                assert_eq!(no_car, line.plate.is_none(), "{name}: {line:?}");
                assert!(!(no_car && line.readable), "{name}: {line:?}");
                if let Some(plate) = &line.plate {
                    assert!(is_valid_plate(plate), "{name}: {plate}");
                    assert_eq!(
                        line.cases.iter().any(|c| c == "unreadable"),
                        !line.readable,
                        "{name}: {line:?}"
                    );
                }
                // Tags come in CASES order, so the first is the primary case.
                let order: Vec<usize> = line
                    .cases
                    .iter()
                    .map(|c| CASES.iter().position(|k| k == c).expect("a known case"))
                    .collect();
                assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}: {line:?}");
                assert_eq!(sale.primary_case(), line.cases[0]);
                for case in &sale.cases {
                    *cases.entry(case).or_default() += 1;
                }
            }
        }
        for expected in family.expected_cases {
            assert!(
                cases.contains_key(expected),
                "{}: no {expected} in {cases:?}",
                family.name
            );
        }
        seen_anywhere.extend(cases.keys());
    }
    for case in CASES {
        assert!(seen_anywhere.contains(case), "no family gave {case}");
    }
}

#[test]
fn the_matcher_replays_a_randomised_trace() {
    let (trace, truth, _) = scenario(&FAMILIES[0], 3, 80);
    let report = eval_match(
        trace.as_slice(),
        truth.as_slice(),
        &MatcherConfig::default(),
        is_valid_plate,
    )
    .unwrap();
    assert!(report.all.sales >= 80);
    assert_eq!(report.without_truth + report.without_verdict, 0);
}
