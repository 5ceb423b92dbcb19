//! The simulated stations: an outbox file and an uplink each, exactly as the daemon runs them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use forecourt_events::now_millis;
use outbox::{Outbox, OutboxLimits};
use tokio::sync::{watch, Notify};
use uplink::{Uplink, UplinkConfig, UplinkHealth};

use crate::Cli;

pub struct Station {
    pub id: String,
    pub outbox: Outbox,
    wake: Arc<Notify>,
    health: Option<Arc<UplinkHealth>>,
}

pub struct Fleet {
    stations: Arc<Vec<Station>>,
    /// Last seq handed out per (station, stream).
    last_seqs: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    capped: Vec<String>,
    stop: watch::Sender<bool>,
    uplinks: Vec<tokio::task::JoinHandle<()>>,
    /// Set to end the steady phase before its time.
    end_appends: Arc<std::sync::atomic::AtomicBool>,
}

/// Streams a station writes: a money stream the outbox never drops, and one it may.
const STREAMS: [&str; 2] = ["sale", "nozzle"];

impl Fleet {
    pub fn prefill(cli: &Cli) -> anyhow::Result<Fleet> {
        std::fs::create_dir_all(&cli.dir)
            .with_context(|| format!("create {}", cli.dir.display()))?;
        let mut rng = seeded_rng::Rng::new(cli.seed);
        let mut stations = Vec::with_capacity(cli.stations);
        let mut last_seqs = BTreeMap::new();
        let mut capped = Vec::new();
        for n in 0..cli.stations {
            let id = format!("S{n:05}");
            let is_capped = cli.capped_every > 0 && n % cli.capped_every == 0;
            let limits = if is_capped {
                capped.push(id.clone());
                OutboxLimits {
                    max_records: cli.cap,
                    ..OutboxLimits::default()
                }
            } else {
                OutboxLimits::default()
            };
            let outbox = Outbox::open_with_limits(cli.dir.join(format!("{id}.sqlite")), limits)
                .with_context(|| format!("open the outbox of {id}"))?;
            // The topic of each stream, once; every message borrows it.
            let topics = STREAMS.map(|stream| topic(&cli.prefix, &id, stream));
            let messages: Vec<(&str, &str, serde_json::Value)> = (0..cli.prefill)
                .map(|_| {
                    let stream = pick_stream(&mut rng);
                    let at = STREAMS.iter().position(|s| *s == stream).unwrap_or(0);
                    let topic = &topics[at];
                    Ok((stream, topic.as_str(), body(stream, &mut rng)?))
                })
                .collect::<anyhow::Result<_>>()?;
            for record in outbox.append_batch(&messages)? {
                last_seqs.insert((id.clone(), record.stream.clone()), record.seq);
            }
            if is_capped {
                // What a long outage does to a station with a small cap: the oldest droppable
                // records go before they were ever sent.
                outbox.enforce_limits()?;
            }
            stations.push(Station {
                id,
                outbox,
                wake: Arc::new(Notify::new()),
                health: None,
            });
        }
        let (stop, _) = watch::channel(false);
        Ok(Fleet {
            stations: Arc::new(stations),
            last_seqs: Arc::new(Mutex::new(last_seqs)),
            capped,
            stop,
            uplinks: Vec::new(),
            end_appends: Arc::default(),
        })
    }

    /// Starts every station's uplink at once.
    pub fn start_uplinks(&mut self, cli: &Cli) -> anyhow::Result<()> {
        let stations = Arc::get_mut(&mut self.stations).context("stations already shared")?;
        for station in stations.iter_mut() {
            let mut config = UplinkConfig::new(cli.host.clone(), station.id.clone());
            config.port = cli.port;
            config.prefix = cli.prefix.clone();
            config.backoff_min_ms = cli.backoff_min_ms;
            config.backoff_max_ms = cli.backoff_max_ms;
            config.health_interval_s = cli.health_s;
            let uplink = Uplink::new(config, station.outbox.clone(), station.wake.clone())?;
            station.health = Some(uplink.health());
            let stop = self.stop.subscribe();
            self.uplinks.push(tokio::spawn(async move {
                let _ = uplink.run(stop).await;
            }));
        }
        Ok(())
    }

    /// Appends `rate` records a second, to random stations, for `seconds`; returns how many.
    pub fn append_steadily(&self, cli: &Cli) -> tokio::task::JoinHandle<anyhow::Result<u64>> {
        let stations = self.stations.clone();
        let last_seqs = self.last_seqs.clone();
        let (rate, seconds, prefix, seed) = (cli.rate, cli.seconds, cli.prefix.clone(), cli.seed);
        let end = self.end_appends.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut rng = seeded_rng::Rng::new(seed ^ 0x5eed);
            let start = Instant::now();
            let planned = (rate * seconds as f64).round() as u64;
            let mut total = 0;
            for i in 0..planned {
                if end.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let station = &stations[rng.below(stations.len())];
                let stream = pick_stream(&mut rng);
                let record = station.outbox.append(
                    stream,
                    &topic(&prefix, &station.id, stream),
                    &body(stream, &mut rng)?,
                )?;
                station.wake.notify_one();
                if let Ok(mut seqs) = last_seqs.lock() {
                    seqs.insert((station.id.clone(), record.stream), record.seq);
                }
                total += 1;
            }
            Ok(total)
        })
    }

    /// `{"capped": [station...], "last_seq": {"<station>/<stream>": seq}}`, atomically.
    pub fn write_seqs(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let Some(path) = path else { return Ok(()) };
        let seqs = self
            .last_seqs
            .lock()
            .map_err(|_| anyhow::anyhow!("seq map poisoned"))?;
        let last_seq: BTreeMap<String, u64> = seqs
            .iter()
            .map(|((station, stream), seq)| (format!("{station}/{stream}"), *seq))
            .collect();
        let doc = serde_json::to_vec_pretty(&SeqsFile {
            capped: self.capped.clone(),
            last_seq,
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, doc)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    pub fn end_steady_phase(&self) {
        self.end_appends
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn depth(&self) -> u64 {
        self.stations
            .iter()
            .map(|s| s.outbox.depth().unwrap_or(0))
            .sum()
    }

    pub fn acked(&self) -> u64 {
        self.sum(|h| h.acked.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn reconnects(&self) -> u64 {
        self.sum(|h| h.reconnects.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn connected(&self) -> usize {
        self.stations
            .iter()
            .filter(|s| {
                s.health
                    .as_ref()
                    .is_some_and(|h| h.connected.load(std::sync::atomic::Ordering::Relaxed))
            })
            .count()
    }

    fn sum(&self, f: impl Fn(&UplinkHealth) -> u64) -> u64 {
        self.stations
            .iter()
            .filter_map(|s| s.health.as_deref().map(&f))
            .sum()
    }

    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for handle in self.uplinks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

#[derive(serde::Serialize)]
struct SeqsFile {
    capped: Vec<String>,
    last_seq: BTreeMap<String, u64>,
}

fn pick_stream(rng: &mut seeded_rng::Rng) -> &'static str {
    // Two nozzle records (out, in) per sale.
    if rng.below(3) == 0 {
        STREAMS[0]
    } else {
        STREAMS[1]
    }
}

fn topic(prefix: &str, station: &str, stream: &str) -> String {
    format!("{prefix}/{station}/events/{stream}")
}

fn body(stream: &str, rng: &mut seeded_rng::Rng) -> anyhow::Result<serde_json::Value> {
    let t = now_millis();
    let fp = u8::try_from(1 + rng.below(8)).unwrap_or(1);
    let value = match stream {
        "sale" => {
            let litres = 10.0 + rng.range(0.0, 50.0);
            let volume = format!("{litres:.2}");
            let amount = format!("{:.2}", litres * 7.99);
            serde_json::to_value(wire::SaleBody {
                fp,
                nozzle: 1,
                grade: Some("95".into()),
                volume: volume.parse()?,
                amount: amount.parse()?,
                price: "7.99".parse()?,
                nozzle_out_t: Some(t - 90_000),
                nozzle_in_t: t - 1_000,
                completed_t: t,
                plate: None,
                plate_confidence: 0.0,
                match_reason: "load generator".into(),
                source_key: None,
            })
        }
        _ => serde_json::to_value(wire::NozzleBody {
            t,
            fp,
            nozzle: 1,
            state: if rng.chance(0.5) {
                wire::NozzleState::Out
            } else {
                wire::NozzleState::In
            },
        }),
    };
    Ok(value?)
}
