//! `check-config --probe`: what an installer needs proved beyond the file's own checks, each
//! finding at its place in the file. The layout's consistency (pure: [`AgentConfig::layout_findings`])
//! and what only the station itself can answer: the serial ports open, `data_dir` takes a file,
//! each camera sends a frame, the broker answers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::problems::{key, position, write_located, Problem, Seg};
use crate::{AgentConfig, DispenserSection};

/// Where the shipped systemd unit lets the service write (`StateDirectory=`, under
/// `ProtectSystem=strict`).
pub const SERVICE_STATE_DIR: &str = "/var/lib/forecourt-agent";

/// How bad a finding is: an error means the station cannot work as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub problem: Problem,
}

impl Finding {
    fn error(path: Vec<Seg>, message: impl Into<String>, hint: &str) -> Self {
        Finding {
            severity: Severity::Error,
            problem: Problem::new(path, message).hint(hint),
        }
    }

    fn warning(path: Vec<Seg>, message: impl Into<String>, hint: &str) -> Self {
        Finding {
            severity: Severity::Warning,
            problem: Problem::new(path, message).hint(hint),
        }
    }
}

/// How long the probes wait.
#[derive(Debug, Clone, Copy)]
pub struct ProbeLimits {
    /// For a camera's first frame.
    pub camera: Duration,
    /// For the broker to accept a connection.
    pub broker: Duration,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            camera: Duration::from_secs(10),
            broker: Duration::from_secs(5),
        }
    }
}

/// Everything the probe found, located in the file, and a one-line summary of the station.
#[derive(Debug)]
pub struct ProbeReport {
    pub file: PathBuf,
    /// (line, column, finding); (0, 0) where the spot is unknown.
    pub findings: Vec<(usize, usize, Finding)>,
    pub summary: String,
}

impl ProbeReport {
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|(_, _, f)| f.severity == Severity::Error)
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (line, col, finding) in &self.findings {
            let level = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, "{level}: ")?;
            write_located(f, &self.file, (*line, *col), &finding.problem)?;
            writeln!(f)?;
        }
        write!(f, "{}", self.summary)
    }
}

impl AgentConfig {
    /// Fuelling points, zones and sale sources that do not fit together: a fuelling point a
    /// source reports with no zone (its sales can never get a plate), zones of a fuelling point no
    /// source reports (no sale will ever use them), and a DART bus master that authorises no
    /// pump.
    pub fn layout_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let zoned: Vec<u8> = self
            .fps
            .iter()
            .filter(|f| !f.zones.is_empty())
            .map(|f| f.fp)
            .collect();
        let mut on_a_source = Vec::new();
        for (d, (section, fps)) in self.dispensers.iter().zip(self.source_fps()).enumerate() {
            for (i, fp) in fps.iter().enumerate() {
                if !zoned.contains(fp) {
                    out.push(Finding::warning(
                        vec![key("dispenser"), Seg::Index(d), key("fps"), Seg::Index(i)],
                        format!("fuelling point {fp} has no zone: its sales can never get a plate"),
                        "add an [[fp]] with its zones on a camera that sees its cars",
                    ));
                }
            }
            if let DispenserSection::Dart(dart) = section {
                if dart.mode == dispenser::DartMode::Master && !dart.auto_authorize {
                    out.push(Finding::warning(
                        vec![key("dispenser"), Seg::Index(d), key("mode")],
                        "bus master without auto_authorize: as the master the agent is the only \
                         one who may authorise the pumps, and it does not, so a lifted nozzle \
                         sells nothing",
                        "set auto_authorize = true, or mode = \"listen\" beside the station's own \
                         controller",
                    ));
                }
            }
            on_a_source.extend(fps);
        }
        for (i, f) in self.fps.iter().enumerate() {
            if !on_a_source.contains(&f.fp) {
                out.push(Finding::warning(
                    vec![key("fp"), Seg::Index(i), key("fp")],
                    format!(
                        "fuelling point {} has zones but no [[dispenser]] reports it: no sale \
                         will ever use them",
                        f.fp
                    ),
                    "check the number against the dispensers' fps lists",
                ));
            }
        }
        out
    }
}

/// Runs every probe on `config` (read from `path`, whose text is `text`).
pub fn probe(config: &AgentConfig, path: &Path, text: &str, limits: ProbeLimits) -> ProbeReport {
    let mut found = config.layout_findings();
    found.extend(probe_serial_ports(config));
    found.extend(probe_data_dir(config));
    let (cameras_ok, camera_findings) = probe_cameras(config, limits.camera);
    found.extend(camera_findings);
    let broker = probe_broker(config, limits.broker);
    let broker_ok = broker.is_none();
    found.extend(broker);
    let findings = found
        .into_iter()
        .map(|f| {
            let (line, col) = position(text, &f.problem.path);
            (line, col, f)
        })
        .collect();
    let fps_on_sources: usize = config.source_fps().iter().map(Vec::len).sum();
    let summary =
        format!(
        "found: {} camera(s), {} sent a frame; {} sale source(s) with {} fuelling point(s); {} \
         fuelling point(s) with {} zone(s); broker {}",
        config.cameras.len(),
        cameras_ok,
        config.dispensers.len(),
        fps_on_sources,
        config.fps.len(),
        config.fps.iter().map(|f| f.zones.len()).sum::<usize>(),
        if broker_ok { "reachable" } else { "not reachable" },
    );
    ProbeReport {
        file: path.to_path_buf(),
        findings,
        summary,
    }
}

/// Each DART line's serial port opens as the driver would open it.
fn probe_serial_ports(config: &AgentConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, section) in config.dispensers.iter().enumerate() {
        let DispenserSection::Dart(dart) = section else {
            continue;
        };
        let port = config.resolve(&dart.port);
        if let Err(e) = dispenser::DartConfig::probe_port(&port, dart.baud) {
            out.push(Finding::error(
                vec![key("dispenser"), Seg::Index(d), key("port")],
                format!("serial port {} cannot be opened: {e}", port.display()),
                "check the device (ls -l /dev/serial/by-id/), that the service user is in group \
                 dialout, and that nothing else holds the port",
            ));
        }
    }
    out
}

/// `data_dir` takes a file, and lies where the shipped service may write.
fn probe_data_dir(config: &AgentConfig) -> Vec<Finding> {
    let dir = config.resolve(&config.data_dir);
    let mut out = Vec::new();
    if !dir.starts_with(SERVICE_STATE_DIR) {
        out.push(Finding::warning(
            vec![key("data_dir")],
            format!(
                "data_dir {} is outside {SERVICE_STATE_DIR}: the systemd unit (ProtectSystem=strict) \
                 lets the service write only there",
                dir.display()
            ),
            "use data_dir = \"/var/lib/forecourt-agent\" for the installed service",
        ));
    }
    // systemd creates the state directory, owned by the service user, when the unit starts.
    if dir.starts_with(SERVICE_STATE_DIR) && !Path::new(SERVICE_STATE_DIR).is_dir() {
        return out;
    }
    // The nearest folder that exists must take a file (the agent creates the rest).
    let existing = dir.ancestors().find(|a| a.is_dir()).unwrap_or(&dir);
    let scratch = existing.join(format!(".forecourt-probe-{}", std::process::id()));
    match std::fs::write(&scratch, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&scratch);
        }
        Err(e) => out.push(Finding::error(
            vec![key("data_dir")],
            format!("data_dir {} is not writable here: {e}", dir.display()),
            "run the probe as the service user (sudo -u forecourt ...) and give it the folder",
        )),
    }
    out
}

/// Each camera sends a frame within `limit`: how many did, and a finding per camera that did not.
fn probe_cameras(config: &AgentConfig, limit: Duration) -> (usize, Vec<Finding>) {
    let cameras = match config.cameras() {
        Ok(cameras) => cameras,
        Err(e) => {
            let hint = "a camera url is rtsp://..., a video file, or usb:N";
            return (
                0,
                vec![Finding::error(vec![key("camera")], e.to_string(), hint)],
            );
        }
    };
    // All at once: unreachable cameras wait out their limit side by side.
    let started: Vec<_> = cameras.into_iter().map(camera::spawn_camera).collect();
    let deadline = Instant::now() + limit;
    let framed = |handle: &camera::CameraHandle| {
        handle
            .slot
            .stats
            .frames
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    };
    while Instant::now() < deadline && !started.iter().flatten().all(framed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ok = 0;
    let mut out = Vec::new();
    for (i, handle) in started.into_iter().enumerate() {
        let url = vec![key("camera"), Seg::Index(i), key("url")];
        let hint = "check the URL, the camera's address and port, and its user and password; \
                    ffprobe URL shows what the camera says";
        match handle {
            Ok(handle) if framed(&handle) => {
                ok += 1;
                handle.stop();
            }
            Ok(handle) => {
                let failures = handle
                    .slot
                    .stats
                    .open_failures
                    .load(std::sync::atomic::Ordering::Relaxed);
                out.push(Finding::error(
                    url,
                    format!(
                        "camera {} sent no frame within {} s ({failures} failed opens)",
                        handle.name,
                        limit.as_secs()
                    ),
                    hint,
                ));
                handle.stop();
            }
            Err(e) => out.push(Finding::error(
                url,
                format!("camera cannot start: {e}"),
                hint,
            )),
        }
    }
    (ok, out)
}

/// The broker accepts a TCP connection within `limit`.
fn probe_broker(config: &AgentConfig, limit: Duration) -> Option<Finding> {
    let uplink = config.uplink_config().ok()?;
    let path = vec![key("uplink"), key("host")];
    let hint = "check [uplink] host and port, the network, and that the broker listens there";
    let addresses =
        match std::net::ToSocketAddrs::to_socket_addrs(&(uplink.host.as_str(), uplink.port)) {
            Ok(addresses) => addresses.collect::<Vec<_>>(),
            Err(e) => {
                return Some(Finding::error(
                    path,
                    format!("broker {}: {e}", uplink.host),
                    hint,
                ))
            }
        };
    let mut last = None;
    for address in &addresses {
        match std::net::TcpStream::connect_timeout(address, limit) {
            Ok(_) => return None,
            Err(e) => last = Some(e),
        }
    }
    Some(Finding::error(
        path,
        format!(
            "broker {}:{} does not accept a connection: {}",
            uplink.host,
            uplink.port,
            last.map_or_else(|| "no address".to_string(), |e| e.to_string())
        ),
        hint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_data_dir(data_dir: &str) -> AgentConfig {
        let text =
            format!("station_id = \"s\"\ndata_dir = \"{data_dir}\"\n[uplink]\nhost = \"h\"\n");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn data_dir_findings_say_where_the_service_may_write() {
        // Under the state directory: nothing to say (systemd creates it if it is missing).
        assert_eq!(
            probe_data_dir(&config_with_data_dir("/var/lib/forecourt-agent/data")),
            vec![]
        );
        // Elsewhere but writable: a warning about the unit's sandbox only.
        let dir = tempfile::tempdir().unwrap();
        let found = probe_data_dir(&config_with_data_dir(&dir.path().display().to_string()));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        // Nothing can write under /proc: an error too.
        let found = probe_data_dir(&config_with_data_dir("/proc/forecourt/data"));
        assert!(
            found.iter().any(|f| f.severity == Severity::Error),
            "{found:?}"
        );
    }
}
