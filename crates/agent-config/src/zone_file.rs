//! The zones in the config file, for the station console's installer page: read them, and write
//! new ones into the file without touching anything else in it (comments, order, other keys:
//! `toml_edit`), checked as `check-config` checks the whole file, the previous file kept beside
//! it as `<file>.bak-<ms since the epoch>` (the newest [`BACKUPS_KEPT`]), the new one renamed
//! into place so that a crash leaves the old file or the new one, never half of one.

use std::path::{Path, PathBuf};

use console::zone_file::{SavedZones, ZoneFile, ZoneFileError};
use matcher::Layout;
use toml_edit::{value, Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::AgentConfig;

/// Backups of the config file kept; older ones are removed after a save.
pub const BACKUPS_KEPT: usize = 10;

/// The zones of the config file at `path`.
#[derive(Debug, Clone)]
pub struct ConfigFileZones {
    path: PathBuf,
}

impl ConfigFileZones {
    pub fn new(path: PathBuf) -> ConfigFileZones {
        ConfigFileZones { path }
    }
}

impl ZoneFile for ConfigFileZones {
    fn layout(&self) -> Result<Layout, ZoneFileError> {
        AgentConfig::load(&self.path)
            .map(|c| c.layout())
            .map_err(|e| ZoneFileError::File(format!("{e:#}")))
    }

    fn save(&self, layout: &Layout) -> Result<SavedZones, ZoneFileError> {
        let file = |e: std::io::Error| ZoneFileError::File(format!("{}: {e}", self.path.display()));
        let text = std::fs::read_to_string(&self.path).map_err(file)?;
        let new_text = with_zones(&text, layout)?;
        AgentConfig::from_text(&self.path, &new_text).map_err(|e| {
            ZoneFileError::Invalid(format!("{e:#}").lines().map(str::to_string).collect())
        })?;
        let backup = backup_path(&self.path, forecourt_events::now_millis());
        std::fs::copy(&self.path, &backup).map_err(file)?;
        replace_file(&self.path, &new_text).map_err(file)?;
        remove_old_backups(&self.path);
        Ok(SavedZones { backup })
    }
}

/// `text` with every `[[fp]]`'s `zones` set from `layout`: a fuelling point the file lists but
/// `layout` does not gets no zones, one `layout` has that the file lacks gets a new `[[fp]]`.
pub fn with_zones(text: &str, layout: &Layout) -> Result<String, ZoneFileError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| ZoneFileError::File(format!("the config file does not parse: {e}")))?;
    let fps = doc
        .entry("fp")
        .or_insert(Item::ArrayOfTables(Default::default()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            ZoneFileError::File("`fp` in the config file is not a list of [[fp]]".into())
        })?;
    let mut placed = Vec::new();
    for table in fps.iter_mut() {
        let Some(fp) = table.get("fp").and_then(Item::as_integer) else {
            continue;
        };
        let zones = layout.fps.iter().find(|f| i64::from(f.fp) == fp);
        table.insert(
            "zones",
            value(zones_array(zones.map_or(&[][..], |f| &f.zones))),
        );
        placed.push(fp);
    }
    for fp in layout
        .fps
        .iter()
        .filter(|f| !placed.contains(&i64::from(f.fp)))
    {
        let mut table = Table::new();
        table.insert("fp", value(i64::from(fp.fp)));
        table.insert("zones", value(zones_array(&fp.zones)));
        fps.push(table);
    }
    Ok(doc.to_string())
}

/// `[{ camera = "cam1", polygon = [[x, y], ...] }, ...]`, coordinates to 4 decimals (a tenth
/// of a pixel on a 1080p frame).
fn zones_array(zones: &[matcher::Zone]) -> Array {
    let mut array = Array::new();
    for zone in zones {
        let mut inline = InlineTable::new();
        inline.insert("camera", zone.camera.as_str().into());
        let mut polygon = Array::new();
        for [x, y] in &zone.polygon {
            let mut point = Array::new();
            point.push(round4(*x));
            point.push(round4(*y));
            polygon.push(Value::Array(point));
        }
        inline.insert("polygon", Value::Array(polygon));
        array.push(Value::InlineTable(inline));
    }
    array
}

fn round4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}

fn backup_path(path: &Path, t: i64) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".bak-{t}"));
    path.with_file_name(name)
}

/// Writes `text` beside `path`, syncs it and renames it over `path`, then syncs the folder.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let new = path.with_file_name(name);
    let mut file = std::fs::File::create(&new)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&new, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes all but the newest [`BACKUPS_KEPT`] backups of `path`.
fn remove_old_backups(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.bak-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut backups: Vec<(i64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file_name = e.file_name().to_string_lossy().to_string();
            let t = file_name.strip_prefix(&prefix)?.parse().ok()?;
            Some((t, e.path()))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(BACKUPS_KEPT);
    for (_, old) in backups.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use matcher::{FpLayout, Zone};

    use super::*;

    fn zone(camera: &str, x: f32) -> Zone {
        Zone {
            camera: camera.into(),
            polygon: vec![[x, 0.25], [x + 0.4, 0.25], [x + 0.4, 1.0], [x, 1.0]],
        }
    }

    #[test]
    fn new_zones_replace_the_old_and_nothing_else_changes() {
        let text = "# the station\nstation_id = \"s1\"\n\n[[fp]]\nfp = 1 # left lane\n\
                    zones = [{ camera = \"cam1\", polygon = [[0, 0], [1, 0], [1, 1]] }]\n\n\
                    [[fp]]\nfp = 2\nzones = []\n\n[uplink]\nhost = \"h\" # HQ\n";
        let layout = Layout {
            fps: vec![
                FpLayout {
                    fp: 2,
                    zones: vec![zone("cam1", 0.5)],
                },
                FpLayout {
                    fp: 3,
                    zones: vec![zone("cam2", 0.123_456)],
                },
            ],
        };
        let out = with_zones(text, &layout).unwrap();
        assert!(
            out.starts_with("# the station\nstation_id = \"s1\"\n"),
            "{out}"
        );
        assert!(out.contains("fp = 1 # left lane\nzones = []"), "{out}");
        assert!(out.contains("[0.5, 0.25], [0.9, 0.25]"), "{out}");
        assert!(out.contains("host = \"h\" # HQ"), "{out}");
        // A fuelling point new to the file, its coordinates rounded.
        assert!(
            out.contains("fp = 3\nzones = [{ camera = \"cam2\", polygon = [[0.1235, 0.25]"),
            "{out}"
        );
        // The result reads back to the layout given.
        let table: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(table["fp"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_file_whose_fp_is_no_list_is_refused() {
        let err = with_zones("fp = 3\n", &Layout::default()).unwrap_err();
        assert!(matches!(err, ZoneFileError::File(_)));
    }

    #[test]
    fn only_the_newest_backups_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        for t in 0..BACKUPS_KEPT as i64 + 3 {
            std::fs::write(backup_path(&path, t), "x").unwrap();
        }
        std::fs::write(dir.path().join("agent.toml.bak-notatime"), "x").unwrap();
        remove_old_backups(&path);
        assert!(!backup_path(&path, 2).exists());
        assert!(backup_path(&path, 3).exists());
        assert!(dir.path().join("agent.toml.bak-notatime").exists());
    }
}
