//! The config file as loaded, and what a reload changed: the station's [`ConfigSource`].

use std::collections::BTreeSet;
use std::path::PathBuf;

use station::{ConfigSource, Reload, ReloadError};

use crate::{AgentConfig, ConfigError, ConfigProblems};

/// What a reload can apply without a restart: the matcher's settings and the fuelling points'
/// zones (`[[fp]]`).
const LIVE_SECTIONS: &[&str] = &["matcher", "fp"];

/// The config file as the running agent has it, to tell what a reload changed.
pub struct LoadedConfig {
    pub path: PathBuf,
    pub table: toml::Table,
}

impl LoadedConfig {
    /// Reads the file once: the checked config and the table a later reload compares with
    /// come from the same text.
    pub fn read(path: PathBuf) -> Result<(AgentConfig, Self), ConfigError> {
        let (config, text) = AgentConfig::read(&path)?;
        // The text parsed as a config just now, so it parses as a table too; a failure here is
        // still reported, not unwrapped.
        let table = text.parse().map_err(|e: toml::de::Error| {
            ConfigProblems::at_offset(
                &path,
                &text,
                e.span().map(|s| s.start),
                crate::problems::Problem::new(vec![], e.message().trim().to_string()),
            )
        })?;
        Ok((config, LoadedConfig { path, table }))
    }
}

impl ConfigSource for LoadedConfig {
    /// Re-reads the file; what needs a restart stays as the running agent has it, so it is
    /// reported again next time.
    fn reload(&mut self) -> Result<Reload, ReloadError> {
        let (config, fresh) = LoadedConfig::read(self.path.clone())?;
        let keys: BTreeSet<&String> = self.table.keys().chain(fresh.table.keys()).collect();
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|k| self.table.get(*k) != fresh.table.get(*k))
            .cloned()
            .collect();
        let (applied, needs_restart): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|k| LIVE_SECTIONS.contains(&k.as_str()));
        for k in &applied {
            match fresh.table.get(k) {
                Some(v) => self.table.insert(k.clone(), v.clone()),
                None => self.table.remove(k),
            };
        }
        let changed = |section: &str| applied.iter().any(|k| k == section);
        Ok(Reload {
            matcher: changed("matcher").then(|| config.matcher_config()),
            layout: changed("fp").then(|| config.layout()),
            applied,
            needs_restart,
        })
    }
}
