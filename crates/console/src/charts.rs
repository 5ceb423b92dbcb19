//! The analytics page's figures, from the station's own hourly summaries (the `hourly` bodies HQ
//! gets): today hour by hour and the last 7 days, as server-side SVG, each chart saying what it
//! shows and in which unit. Pure: summaries, the time and the station's UTC offset in, HTML out.

use std::collections::BTreeMap;
use std::fmt::Write;

use forecourt_events::{FpNumber, UnixMillis};
use wire::{FpHourJson, HourSummary};

use crate::pages::escape;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Series colours, as the installer's zones use them.
const COLOURS: [&str; 8] = [
    "#e53935", "#1e88e5", "#43a047", "#fdd835", "#d81b60", "#00acc1", "#fb8c00", "#8e6cc0",
];

/// One series of a bar chart: its name and one value per label (`None`: no figure).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart as an SVG figure: a bar per series at each label, the value axis from 0
/// to the largest value, with the unit on it, and a legend.
pub fn bar_chart(title: &str, unit: &str, labels: &[String], series: &[Series]) -> String {
    let (width, height, left, bottom, top) = (960.0, 260.0, 56.0, 28.0, 12.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let scale_max = if max > 0.0 { nice_ceiling(max) } else { 1.0 };
    let plot_h = height - bottom - top;
    let slot = (width - left) / labels.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    for tick in 0..=4 {
        let v = scale_max * f64::from(tick) / 4.0;
        let y = top + plot_h - plot_h * v / scale_max;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{width}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            number(v)
        );
    }
    let _ = write!(
        svg,
        "<text class=\"unit\" x=\"4\" y=\"{:.1}\">{}</text>",
        top + 10.0,
        escape(unit)
    );
    for (i, label) in labels.iter().enumerate() {
        let x0 = left + slot * i as f64 + slot * 0.1;
        for (k, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten() else {
                continue;
            };
            let h = plot_h * v / scale_max;
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{}: {} {}</title></rect>",
                x0 + bar * k as f64,
                top + plot_h - h,
                bar.max(1.0),
                COLOURS[k % COLOURS.len()],
                escape(&format!("{} {label}", s.name)),
                number(v),
                escape(unit)
            );
        }
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            left + slot * (i as f64 + 0.5),
            height - 8.0,
            escape(label)
        );
    }
    svg.push_str("</svg><p class=\"legend\">");
    for (k, s) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{}</span> ",
            COLOURS[k % COLOURS.len()],
            escape(&s.name)
        );
    }
    svg.push_str("</p></figure>");
    svg
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`: an axis end.
fn nice_ceiling(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The summaries of the analytics page: the closed hours and the one being counted.
pub struct Figures<'a> {
    pub hours: &'a [HourSummary],
    pub so_far: Option<&'a HourSummary>,
    pub now: UnixMillis,
    /// The station's offset from UTC: where its days and hours begin.
    pub utc_offset_ms: i64,
}

impl Figures<'_> {
    fn local_day(&self, t: UnixMillis) -> i64 {
        (t + self.utc_offset_ms).div_euclid(DAY_MS)
    }

    /// Every summary, the hour being counted last (it replaces a closed one of the same hour).
    fn all(&self) -> impl Iterator<Item = &HourSummary> {
        let current = self.so_far.map(|h| h.hour);
        self.hours
            .iter()
            .filter(move |h| Some(h.hour) != current)
            .chain(self.so_far)
    }

    /// Today's summaries by local hour of day.
    fn today(&self) -> BTreeMap<usize, &HourSummary> {
        let today = self.local_day(self.now);
        self.all()
            .filter(|h| self.local_day(h.hour) == today)
            .map(|h| {
                let hour = (h.hour + self.utc_offset_ms).rem_euclid(DAY_MS) / HOUR_MS;
                (hour as usize, h)
            })
            .collect()
    }

    /// The last 7 local days, oldest first, with their summaries.
    fn week(&self) -> Vec<(i64, Vec<&HourSummary>)> {
        let today = self.local_day(self.now);
        (today - 6..=today)
            .map(|day| {
                let hours = self
                    .all()
                    .filter(|h| self.local_day(h.hour) == day)
                    .collect();
                (day, hours)
            })
            .collect()
    }

    fn fps(&self) -> Vec<FpNumber> {
        let mut fps: Vec<FpNumber> = self
            .all()
            .flat_map(|h| h.fps.iter().map(|f| f.fp))
            .collect();
        fps.sort_unstable();
        fps.dedup();
        fps
    }

    fn day_label(&self, day: i64) -> String {
        let (_, month, date) = civil_from_days(day);
        format!("{month:02}-{date:02}")
    }
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn sum_fps(h: &HourSummary, f: impl Fn(&FpHourJson) -> f64) -> f64 {
    h.fps.iter().map(f).sum()
}

/// The analytics page's figures: today by hour, the last 7 days by day, and the queue now.
pub fn analytics(figures: &Figures<'_>, queues: &[(FpNumber, usize)]) -> String {
    let mut out = String::new();
    let today = figures.today();
    let hours: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    let by_hour = |f: &dyn Fn(&HourSummary) -> Option<f64>| -> Vec<Option<f64>> {
        (0..24).map(|h| today.get(&h).and_then(|s| f(s))).collect()
    };
    out.push_str("<h2>Now</h2>");
    out.push_str(&queue_table(queues));
    out.push_str("<h2>Today, hour by hour (station time)</h2>");
    if let Some(so_far) = figures.so_far {
        let _ = write!(
            out,
            "<p>The current hour is counted so far (until {} UTC ms).</p>",
            so_far.counted_until.unwrap_or(figures.now)
        );
    }
    out.push_str(&bar_chart(
        "Vehicles and nozzle lifts per hour, all pumps",
        "count",
        &hours,
        &[
            Series {
                name: "vehicles".into(),
                values: by_hour(&|h| Some(sum_fps(h, |f| f64::from(f.metrics.vehicles)))),
            },
            Series {
                name: "nozzle lifts".into(),
                values: by_hour(&|h| Some(sum_fps(h, |f| f64::from(f.metrics.lifts)))),
            },
        ],
    ));
    out.push_str(&lifts_table(&today));
    out.push_str(&bar_chart(
        "Waiting time (car read to nozzle out) per hour: mean over all pumps, and the highest \
         pump's 90th percentile",
        "minutes",
        &hours,
        &[
            Series {
                name: "mean".into(),
                values: by_hour(&|h| {
                    let (n, total) = h.fps.iter().fold((0i64, 0i64), |(n, t), f| {
                        let m = &f.metrics;
                        let k = i64::from(m.waiting_n);
                        (n + k, t + m.waiting_mean_ms.map_or(0, |ms| ms * k))
                    });
                    (n > 0).then(|| total as f64 / n as f64 / 60_000.0)
                }),
            },
            Series {
                name: "90th percentile (highest pump)".into(),
                values: by_hour(&|h| {
                    h.fps
                        .iter()
                        .filter_map(|f| f.metrics.waiting_p90_ms)
                        .max()
                        .map(|ms| ms as f64 / 60_000.0)
                }),
            },
        ],
    ));
    let fps = figures.fps();
    out.push_str(&bar_chart(
        "Utilisation per hour: share of the hour with a nozzle out, by pump",
        "%",
        &hours,
        &fps.iter()
            .map(|&fp| Series {
                name: format!("pump {fp}"),
                values: by_hour(&|h| {
                    h.fps
                        .iter()
                        .find(|f| f.fp == fp)
                        .map(|f| f.metrics.utilisation * 100.0)
                }),
            })
            .collect::<Vec<_>>(),
    ));

    out.push_str("<h2>The last 7 days</h2>");
    let week = figures.week();
    let days: Vec<String> = week.iter().map(|(d, _)| figures.day_label(*d)).collect();
    let by_day = |f: &dyn Fn(&[&HourSummary]) -> Option<f64>| -> Vec<Option<f64>> {
        week.iter()
            .map(|(_, hours)| if hours.is_empty() { None } else { f(hours) })
            .collect()
    };
    out.push_str(&bar_chart(
        "Vehicles per day, all pumps",
        "vehicles",
        &days,
        &[Series {
            name: "vehicles".into(),
            values: by_day(&|hs| {
                Some(
                    hs.iter()
                        .map(|h| sum_fps(h, |f| f64::from(f.metrics.vehicles)))
                        .sum(),
                )
            }),
        }],
    ));
    out.push_str(&bar_chart(
        "Fill-up rate per day: fills to a full tank (pump stopped by itself) among fills whose \
         end the pump reported",
        "%",
        &days,
        &[Series {
            name: "fill-up rate".into(),
            values: by_day(&|hs| {
                let (auto, preset) = hs
                    .iter()
                    .flat_map(|h| &h.fps)
                    .fold((0u32, 0u32), |(a, p), f| {
                        (a + f.metrics.fill_auto, p + f.metrics.fill_preset)
                    });
                (auto + preset > 0).then(|| 100.0 * f64::from(auto) / f64::from(auto + preset))
            }),
        }],
    ));
    let mut bands: BTreeMap<String, u32> = BTreeMap::new();
    for (_, hours) in &week {
        for f in hours.iter().flat_map(|h| &h.fps) {
            for (band, n) in &f.metrics.volume_histogram {
                *bands.entry(band.clone()).or_default() += n;
            }
        }
    }
    // "0-10", "10-20", ... in litre order, not text order.
    let mut band_names: Vec<String> = bands.keys().cloned().collect();
    band_names.sort_by_key(|b| {
        b.split(['-', '+'])
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    out.push_str(&bar_chart(
        "Single-fill volumes over the last 7 days: sales by litres sold",
        "sales",
        &band_names
            .iter()
            .map(|b| format!("{b} L"))
            .collect::<Vec<_>>(),
        &[Series {
            name: "sales".into(),
            values: band_names
                .iter()
                .map(|b| bands.get(b).map(|n| f64::from(*n)))
                .collect(),
        }],
    ));
    out
}

/// Lifts per nozzle per hour today: a row per pump and nozzle.
fn lifts_table(today: &BTreeMap<usize, &HourSummary>) -> String {
    let mut nozzles: Vec<(FpNumber, u8)> = today
        .values()
        .flat_map(|h| h.fps.iter())
        .flat_map(|f| f.nozzles.iter().map(move |n| (f.fp, n.nozzle)))
        .collect();
    nozzles.sort_unstable();
    nozzles.dedup();
    let mut out = String::from(
        "<table class=\"lifts\"><caption>Nozzle lifts per nozzle per hour (count)</caption><tr><th>pump</th><th>nozzle</th>",
    );
    for h in 0..24 {
        let _ = write!(out, "<th>{h:02}</th>");
    }
    out.push_str("</tr>");
    for (fp, nozzle) in nozzles {
        let _ = write!(out, "<tr><td>{fp}</td><td>{nozzle}</td>");
        for h in 0..24 {
            let lifts = today
                .get(&h)
                .and_then(|s| s.fps.iter().find(|f| f.fp == fp))
                .and_then(|f| f.nozzles.iter().find(|n| n.nozzle == nozzle))
                .map(|n| n.metrics.lifts.to_string())
                .unwrap_or_default();
            let _ = write!(out, "<td>{lifts}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// The cars at each pump now: the one at the pump and those waiting behind it.
fn queue_table(queues: &[(FpNumber, usize)]) -> String {
    let mut out = String::from(
        "<table class=\"queue\"><caption>Cars at each pump now (read in its zones, visit not ended)</caption>\
         <tr><th>pump</th><th>cars</th><th>waiting behind the one at the pump</th></tr>",
    );
    for (fp, cars) in queues {
        let _ = write!(
            out,
            "<tr><td>{fp}</td><td>{cars}</td><td>{}</td></tr>",
            cars.saturating_sub(1)
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(t: UnixMillis, fp: FpNumber, vehicles: u32, lifts: u32) -> HourSummary {
        let metrics: wire::MetricsJson = serde_json::from_value(serde_json::json!({
            "lifts": lifts, "sales": lifts, "volume": "100.00", "amount": "800.00",
            "vehicles": vehicles, "waiting_n": vehicles, "waiting_mean_ms": 120000,
            "waiting_p90_ms": 300000, "nozzle_out_ms": 900000, "utilisation": 0.25,
            "volume_histogram": {"0-10": 1, "30-40": 2, "10-20": 3},
            "fill_auto": 3, "fill_preset": 1, "fill_unknown": 0, "fill_up_rate": 0.75,
            "sale_gaps": 0, "missing_volume": "0.00"
        }))
        .unwrap();
        HourSummary {
            hour: t,
            entrance_arrivals: 0,
            late_events: 0,
            counted_from: None,
            counted_until: None,
            fps: vec![FpHourJson {
                fp,
                arrivals: vehicles,
                metrics: metrics.clone(),
                nozzles: vec![wire::NozzleHourJson { nozzle: 1, metrics }],
                zones: wire::ZoneHourJson::default(),
            }],
        }
    }

    #[test]
    fn bars_are_scaled_to_a_round_axis_and_labelled() {
        let chart = bar_chart(
            "Test <chart>",
            "count",
            &["a".into(), "b".into()],
            &[Series {
                name: "x".into(),
                values: vec![Some(3.0), None],
            }],
        );
        assert!(chart.contains("<figcaption>Test &lt;chart&gt;</figcaption>"));
        assert_eq!(
            chart.matches("<rect class=\"bar\"").count(),
            1,
            "no bar for no figure"
        );
        // Axis 0..5 for a largest value of 3: the bar is 3/5 of the plot's height (220).
        assert!(chart.contains("height=\"132.0\""), "{chart}");
        assert!(chart.contains(">count<"));
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(0.8), 1.0);
        assert_eq!(nice_ceiling(23.0), 25.0);
    }

    #[test]
    fn today_is_the_stations_day_and_the_week_its_last_seven() {
        // 2026-12-07 10:00 UTC is 18:00 at UTC+8.
        let now = 20_794 * DAY_MS + 10 * HOUR_MS;
        let offset = 8 * HOUR_MS;
        let hours = [
            hour(now - 2 * HOUR_MS, 1, 4, 5),  // 16:00 today
            hour(now - 20 * HOUR_MS, 1, 7, 9), // 22:00 yesterday
            hour(now - 9 * DAY_MS, 1, 50, 60), // too old for the week
        ];
        let so_far = hour(now, 2, 1, 1);
        let figures = Figures {
            hours: &hours,
            so_far: Some(&so_far),
            now,
            utc_offset_ms: offset,
        };
        let today = figures.today();
        assert_eq!(today.keys().copied().collect::<Vec<_>>(), [16, 18]);
        let week = figures.week();
        assert_eq!(week.len(), 7);
        assert_eq!(week[6].1.len(), 2, "today: two hours");
        assert_eq!(week[5].1.len(), 1, "yesterday: one");
        assert_eq!(figures.day_label(week[6].0), "12-07");
        assert_eq!(figures.fps(), [1, 2]);
        let page = analytics(&figures, &[(1, 3), (2, 0)]);
        for title in [
            "Vehicles and nozzle lifts per hour",
            "Waiting time",
            "Utilisation per hour",
            "Vehicles per day",
            "Fill-up rate per day",
            "Single-fill volumes",
            "Nozzle lifts per nozzle per hour",
        ] {
            assert!(page.contains(title), "{title}");
        }
        // The bands in litre order.
        let (b0, b10, b30) = (
            page.find(">0-10 L<").unwrap(),
            page.find(">10-20 L<").unwrap(),
            page.find(">30-40 L<").unwrap(),
        );
        assert!(b0 < b10 && b10 < b30);
        assert!(
            page.contains("<td>1</td><td>3</td><td>2</td>"),
            "pump 1: 3 cars, 2 waiting"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
    }
}
