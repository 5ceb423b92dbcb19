//! What a parsed config must also satisfy, one check per section; every problem is listed with
//! where it is, not only the first.

use std::collections::HashSet;

use matcher::Layout;

use crate::problems::{key, Problem, Seg};
use crate::{AgentConfig, DispenserSection};

/// The most plate-reader threads a config may ask for.
pub(crate) const MAX_PLATE_READERS: usize = 8;

impl AgentConfig {
    /// Everything wrong with a parsed config, with where it is.
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.check_station_id(&mut out);
        self.check_runtime_and_models(&mut out);
        self.check_plate_readers(&mut out);
        let cameras = self.check_cameras(&mut out);
        self.check_dispensers(&mut out);
        self.check_fps(&cameras, &mut out);
        self.check_watchdog(&mut out);
        self.check_matcher(&mut out);
        self.check_uplink(&mut out);
        self.check_console(&mut out);
        out
    }

    /// `[console]`: its address, users and API tokens, and its certificate and key (read).
    fn check_console(&self, out: &mut Vec<Problem>) {
        let Some(console) = &self.console else {
            return;
        };
        for problem in console.problems() {
            let path = std::iter::once("console".to_string())
                .chain(problem.path())
                .map(|k| match k.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(k),
                })
                .collect();
            out.push(Problem::new(path, problem.to_string()));
        }
        if let Some((cert_file, key_file)) = console.tls_files() {
            if let Err(e) = console::tls::server_config(cert_file, key_file) {
                let at = match e {
                    console::tls::TlsError::Key { .. } => "tls_key",
                    _ => "tls_cert",
                };
                out.push(Problem::new(vec![key("console"), key(at)], e.to_string()));
            }
        }
    }

    /// The station id is an MQTT topic level.
    fn check_station_id(&self, out: &mut Vec<Problem>) {
        if self.station_id.is_empty()
            || !self
                .station_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            out.push(
                Problem::new(
                    vec![key("station_id")],
                    format!("station_id {:?} is not usable", self.station_id),
                )
                .hint("letters, digits, '-' or '_' only: it is an MQTT topic level"),
            );
        }
    }

    /// ONNX Runtime and the plate models are where the config says.
    fn check_runtime_and_models(&self, out: &mut Vec<Problem>) {
        match self.find_onnxruntime() {
            Ok(lib) if lib.is_file() => {}
            Ok(lib) => out.push(
                Problem::new(
                    vec![key("onnxruntime_lib")],
                    format!("{} not found", lib.display()),
                )
                .hint(format!(
                    "{}, or remove the key to use the library beside the binary",
                    crate::restore_hint()
                )),
            ),
            Err(e) => out.push(Problem::new(vec![], format!("{e:#}"))),
        }
        let pipeline = self.pipeline_config();
        for model in [
            &pipeline.detector,
            &pipeline.recogniser,
            &pipeline.dictionary,
        ] {
            if !model.is_file() {
                out.push(
                    Problem::new(
                        vec![key("plates"), key("models_dir")],
                        format!("model file {} not found", model.display()),
                    )
                    .hint(crate::restore_hint()),
                );
            }
        }
    }

    /// A reader thread costs a copy of the models; more than a few only cost memory on the
    /// small PCs the agent runs on.
    fn check_plate_readers(&self, out: &mut Vec<Problem>) {
        match self.plates.readers {
            Some(n) if !(1..=MAX_PLATE_READERS).contains(&n) => out.push(Problem::new(
                vec![key("plates"), key("readers")],
                format!("{n} plate-reader threads: give 1 to {MAX_PLATE_READERS}"),
            )),
            _ => {}
        }
    }

    /// Each camera: a unique name, a usable rate and backoff, a source that exists. Returns the
    /// camera names, for the zones.
    fn check_cameras(&self, out: &mut Vec<Problem>) -> HashSet<&str> {
        let mut names = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let at = |k: &str| vec![key("camera"), Seg::Index(i), key(k)];
            if !names.insert(c.name.as_str()) {
                out.push(Problem::new(
                    at("name"),
                    format!("camera {:?} is listed twice", c.name),
                ));
            }
            if !(c.max_fps > 0.0 && c.max_fps <= 60.0) {
                out.push(Problem::new(
                    at("max_fps"),
                    format!("max_fps must be in (0, 60], got {}", c.max_fps),
                ));
            }
            if !(c.reconnect_max_s >= 0.25 && c.reconnect_max_s <= 300.0) {
                out.push(Problem::new(
                    at("reconnect_max_s"),
                    format!(
                        "reconnect_max_s must be in [0.25, 300], got {}",
                        c.reconnect_max_s
                    ),
                ));
            }
            match camera::SourceKind::parse(&c.url) {
                Err(e) => {
                    out.push(Problem::new(at("url"), e).hint("rtsp://..., a video file, or usb:N"))
                }
                Ok(camera::SourceKind::File(f)) if !self.resolve(&f).exists() => out.push(
                    Problem::new(
                        at("url"),
                        format!("video file {} not found", self.resolve(&f).display()),
                    )
                    .hint("a camera URL needs a scheme such as rtsp://; anything else is a file"),
                ),
                Ok(_) => {}
            }
        }
        names
    }

    /// Each dispenser line checks itself.
    fn check_dispensers(&self, out: &mut Vec<Problem>) {
        for (i, d) in self.dispensers.iter().enumerate() {
            match d {
                DispenserSection::Dart(dart) => {
                    if let Err(e) = dart.validate() {
                        out.push(Problem::new(
                            vec![key("dispenser"), Seg::Index(i)],
                            e.to_string(),
                        ));
                    }
                }
                DispenserSection::IfsfFdc(fdc) => {
                    if let Err(e) = fdc.validate() {
                        out.push(Problem::new(
                            vec![key("dispenser"), Seg::Index(i)],
                            e.to_string(),
                        ));
                    }
                }
                DispenserSection::IfsfTcp(ifsf) => {
                    if let Err(e) = ifsf.validate() {
                        out.push(Problem::new(
                            vec![key("dispenser"), Seg::Index(i)],
                            e.to_string(),
                        ));
                    }
                }
            }
        }
    }

    /// Each fuelling point: listed once, valid zones, on configured cameras.
    fn check_fps(&self, cameras: &HashSet<&str>, out: &mut Vec<Problem>) {
        let mut fp_numbers = HashSet::new();
        for (i, fp) in self.fps.iter().enumerate() {
            if !fp_numbers.insert(fp.fp) {
                out.push(Problem::new(
                    vec![key("fp"), Seg::Index(i), key("fp")],
                    format!("fuelling point {} is listed twice", fp.fp),
                ));
            }
            if let Err(e) = (Layout {
                fps: vec![fp.clone()],
            })
            .validate()
            {
                out.push(
                    Problem::new(vec![key("fp"), Seg::Index(i), key("zones")], e.to_string())
                        .hint("polygons are [x, y] points in 0..1, at least 3 of them"),
                );
            }
            for (j, z) in fp.zones.iter().enumerate() {
                if !cameras.contains(z.camera.as_str()) {
                    out.push(
                        Problem::new(
                            vec![
                                key("fp"),
                                Seg::Index(i),
                                key("zones"),
                                Seg::Index(j),
                                key("camera"),
                            ],
                            format!(
                                "fp {}: zone names camera {:?}, which is not configured",
                                fp.fp, z.camera
                            ),
                        )
                        .hint("every zone's camera must be a [[camera]] name"),
                    );
                }
            }
        }
    }

    /// The stall limit of the systemd watchdog.
    fn check_watchdog(&self, out: &mut Vec<Problem>) {
        if !(self.watchdog_stall_s >= 1.0 && self.watchdog_stall_s <= 3600.0) {
            out.push(Problem::new(
                vec![key("watchdog_stall_s")],
                "watchdog_stall_s must be in 1..3600 seconds",
            ));
        }
    }

    /// The matcher's confidence floor, grace period and second look.
    fn check_matcher(&self, out: &mut Vec<Problem>) {
        if !(0.0..=1.0).contains(&self.matcher.min_confidence) {
            out.push(Problem::new(
                vec![key("matcher"), key("min_confidence")],
                "min_confidence must be in 0..1",
            ));
        }
        if !(self.matcher.grace_s >= 0.0 && self.matcher.grace_s < 3600.0) {
            out.push(Problem::new(
                vec![key("matcher"), key("grace_s")],
                "grace_s must be in 0..3600 seconds",
            ));
        }
        let revisit = self.matcher.revisit_s;
        if !(revisit == 0.0 || (revisit > self.matcher.grace_s && revisit <= 3600.0)) {
            out.push(Problem::new(
                vec![key("matcher"), key("revisit_s")],
                "revisit_s must be 0 (never) or above grace_s and at most 3600 seconds",
            ));
        }
    }

    /// The uplink section, and the TLS files it names.
    fn check_uplink(&self, out: &mut Vec<Problem>) {
        match self.uplink_config() {
            Err(e) => {
                let message = format!("{e:#}");
                // Point at the offending key when serde names it.
                let mut path = vec![key("uplink")];
                if let Some(field) = message
                    .split_once("unknown field `")
                    .and_then(|(_, rest)| rest.split_once('`'))
                    .map(|(field, _)| field)
                {
                    path.push(key(field));
                }
                out.push(Problem::new(path, message))
            }
            Ok(u) => {
                if let Some(tls) = &u.tls {
                    let files = [
                        Some(("ca_file", &tls.ca_file)),
                        tls.client_cert_file
                            .as_ref()
                            .map(|f| ("client_cert_file", f)),
                        tls.client_key_file.as_ref().map(|f| ("client_key_file", f)),
                    ];
                    for (name, file) in files.into_iter().flatten() {
                        if let Err(e) = std::fs::File::open(file) {
                            out.push(Problem::new(
                                vec![key("uplink"), key("tls"), key(name)],
                                format!("cannot read {}: {e}", file.display()),
                            ));
                        }
                    }
                }
            }
        }
    }
}
