//! HQ commands the station itself carries out (the uplink answers ping and resend on its own),
//! and SIGHUP, which is a reload_config from the operator.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use forecourt_events::now_millis;
use serde_json::{json, Value};
use uplink::{CommandAction, CommandReply, CommandRequest};

use crate::config::AgentConfig;
use crate::station::Station;

/// What a reload can apply without a restart.
const LIVE_SECTIONS: &[&str] = &["matcher"];

/// The config file as loaded, to tell what a reload changed.
pub struct LoadedConfig {
    pub path: PathBuf,
    pub table: toml::Table,
}

impl LoadedConfig {
    /// Reads the file once: the checked config and the table a later reload compares with
    /// come from the same text.
    pub fn read(path: PathBuf) -> Result<(AgentConfig, Self)> {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config = AgentConfig::from_text(&path, &text)?;
        let table = text.parse().context("config file")?;
        Ok((config, LoadedConfig { path, table }))
    }
}

impl Station {
    pub async fn handle_command(&mut self, request: CommandRequest) {
        let reply = match self.carry_out(&request.command.action).await {
            Ok(result) => CommandReply::Done(result),
            Err(e) => CommandReply::Failed(format!("{e:#}")),
        };
        if let CommandReply::Failed(why) = &reply {
            tracing::warn!(command = %request.command.id, why, "command failed");
        }
        // HQ may have given up waiting; nothing to do then.
        let _ = request.reply.send(reply);
    }

    async fn carry_out(&mut self, action: &CommandAction) -> Result<Value> {
        match action {
            CommandAction::ReloadConfig => self.reload_config(),
            CommandAction::PlateCorrection { sale_id, plate, by } => {
                if !plates::is_valid_plate(plate) {
                    anyhow::bail!("{plate:?} is not a well-formed Chinese plate");
                }
                let outbox = self.outbox.clone();
                let id = *sale_id;
                let sent =
                    tokio::task::spawn_blocking(move || outbox.holds_record("sale", &id)).await??;
                if !sent {
                    anyhow::bail!(
                        "no sale {sale_id} from this station is held here (waiting, or archived \
                         within [outbox] archive_max_age_s): nothing corrected"
                    );
                }
                let record = self
                    .append_record(
                        "sale_correction",
                        json!({
                            "t": now_millis(),
                            "sale_id": sale_id,
                            "plate": plate,
                            "by": by,
                            "source": "hq",
                        }),
                    )
                    .await?;
                Ok(json!({"stream": "sale_correction", "seq": record.seq, "id": record.id}))
            }
            CommandAction::RecordTrace { minutes } => {
                let path = self.start_trace_recording(*minutes)?;
                Ok(json!({"file": path, "minutes": minutes}))
            }
            CommandAction::Hourly { hour } => self
                .analytics
                .hour_json(*hour)
                .ok_or_else(|| anyhow::anyhow!("no summary held for the hour of {hour}")),
            // The uplink answers these itself; they never reach the station.
            CommandAction::Ping | CommandAction::Resend { .. } => Ok(json!({})),
        }
    }

    /// Re-reads the config file, applies what can change live and lists what needs a restart.
    /// An invalid file changes nothing.
    fn reload_config(&mut self) -> Result<Value> {
        let Some(loaded) = self.config.as_mut() else {
            anyhow::bail!("no config file to reload");
        };
        let (config, fresh) = LoadedConfig::read(loaded.path.clone())?;
        let keys: BTreeSet<&String> = loaded.table.keys().chain(fresh.table.keys()).collect();
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|k| loaded.table.get(*k) != fresh.table.get(*k))
            .cloned()
            .collect();
        let (applied, needs_restart): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|k| LIVE_SECTIONS.contains(&k.as_str()));
        if !applied.is_empty() {
            self.matcher.set_config(config.matcher_config());
        }
        // What needs a restart stays as the running agent has it, so it is reported again next time.
        for k in &applied {
            match fresh.table.get(k) {
                Some(v) => loaded.table.insert(k.clone(), v.clone()),
                None => loaded.table.remove(k),
            };
        }
        tracing::info!(?applied, ?needs_restart, "config reloaded");
        Ok(json!({"applied": applied, "needs_restart": needs_restart}))
    }
}
