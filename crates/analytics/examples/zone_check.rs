//! The wrong-zone check on recorded traces: per trace, how each sale's fill fitted the zones, and
//! after how many sales (if ever) each fuelling point's alarm fired. With `--swap A,B` the zones of
//! fuelling points A and B are swapped first (what an installer's mistake looks like):
//! `cargo run --release -p analytics --example zone_check -- [--swap A,B] TRACE.jsonl...`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use analytics::zone_check::{Fit, ZoneCheck};
use analytics::AnalyticsConfig;
use forecourt_events::{is_valid_plate, UnixMillis};
use matcher::{Layout, Matcher, MatcherConfig, TraceReader, TraceRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut swap = None;
    if let Some(i) = args.iter().position(|a| a == "--swap") {
        let pair = args.get(i + 1).ok_or("--swap A,B")?.clone();
        let (a, b) = pair.split_once(',').ok_or("--swap A,B")?;
        swap = Some((a.parse::<u8>()?, b.parse::<u8>()?));
        args.drain(i..i + 2);
    }
    for path in &args {
        check(path, BufReader::new(std::fs::File::open(path)?), swap)?;
    }
    Ok(())
}

fn swapped(mut layout: Layout, swap: Option<(u8, u8)>) -> Layout {
    if let Some((a, b)) = swap {
        let zones = |fp| {
            layout
                .fps
                .iter()
                .find(|f| f.fp == fp)
                .map(|f| f.zones.clone())
        };
        if let (Some(za), Some(zb)) = (zones(a), zones(b)) {
            for f in &mut layout.fps {
                if f.fp == a {
                    f.zones = zb.clone();
                } else if f.fp == b {
                    f.zones = za.clone();
                }
            }
        }
    }
    layout
}

fn check(
    path: &str,
    trace: impl BufRead,
    swap: Option<(u8, u8)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (layout, mut reader) = TraceReader::open(trace)?;
    let layout = swapped(layout, swap);
    let mut matcher = Matcher::new(layout.clone(), MatcherConfig::default(), is_valid_plate);
    let mut zones = ZoneCheck::new(layout, AnalyticsConfig::default().min_read_confidence);
    let mut fits: BTreeMap<&str, u32> = BTreeMap::new();
    // Per fuelling point: its sales judged, and the sale count at the first alarm.
    let mut sales: BTreeMap<u8, u32> = BTreeMap::new();
    let mut first_alarm: BTreeMap<u8, (u32, u32, String)> = BTreeMap::new();
    let mut station_sales = 0u32;
    let mut clock = UnixMillis::MIN;
    let mut step = |now: UnixMillis, matcher: &mut Matcher, zones: &mut ZoneCheck| {
        for m in matcher.poll(now) {
            let Some(e) = zones.observe_matched(&m) else {
                continue;
            };
            station_sales += 1;
            *sales.entry(e.fp).or_default() += 1;
            let kind = match e.fit {
                Fit::Own => "own",
                Fit::OwnAndOther(_) => "own_and_other",
                Fit::Other(_) => "other",
                Fit::NoneStood => "none_stood",
                Fit::Unseen => "unseen",
            };
            *fits.entry(kind).or_default() += 1;
            if std::env::var_os("ZONE_CHECK_VERBOSE").is_some() {
                let spans: Vec<String> = e
                    .zones
                    .iter()
                    .flat_map(|(fp, cars)| {
                        cars.iter().map(move |c| {
                            format!(
                                "fp{fp}:{} {:+.1}..{:+.1}s{}",
                                c.text,
                                (c.first_t - e.fill_start) as f64 / 1000.0,
                                (c.last_t - e.fill_end) as f64 / 1000.0,
                                if c.stood_through { " stood" } else { "" }
                            )
                        })
                    })
                    .collect();
                println!(
                    "  sale fp{} {:?} {kind}: {}",
                    e.fp,
                    e.plate,
                    spans.join(", ")
                );
            }
            for (fp, report) in zones.report() {
                if let Some(alarm) = report.alarm {
                    first_alarm.entry(fp).or_insert((
                        sales.get(&fp).copied().unwrap_or(0),
                        station_sales,
                        alarm,
                    ));
                }
            }
        }
    };
    while let Some(record) = reader.next_record()? {
        let Some(t) = record.time() else { continue };
        if t > clock {
            clock = t;
            step(clock, &mut matcher, &mut zones);
        }
        if let Some(frame) = record.to_frame() {
            matcher.observe_frame(&frame);
            zones.observe_frame(&frame);
        } else if let TraceRecord::Layout { fps, .. } = record {
            let layout = swapped(Layout { fps }, swap);
            matcher.set_layout(layout.clone());
            zones.set_layout(layout);
        } else if let Some(event) = record.to_dispenser() {
            matcher.observe_dispenser(&event);
        }
    }
    step(UnixMillis::MAX, &mut matcher, &mut zones);
    println!("{path}: {station_sales} sales judged; fits {fits:?}");
    for (fp, report) in zones.report() {
        match first_alarm.get(&fp) {
            Some((n, at, alarm)) => println!(
                "  FP {fp}: alarm first at its sale {n} (station sale {at}): {alarm}; at the end: {}",
                report.alarm.as_deref().unwrap_or("none")
            ),
            None => println!(
                "  FP {fp}: no alarm ({} sales; last {}: {} no plate, {} other zone, {} unseen)",
                sales.get(&fp).copied().unwrap_or(0),
                report.sales,
                report.no_plate,
                report.other_zone,
                report.unseen
            ),
        }
    }
    Ok(())
}
