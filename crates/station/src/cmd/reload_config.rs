//! `reload_config`: re-reads the config file, applies what can change live (the matcher's
//! settings, the fuelling points' zones) and lists what needs a restart. An invalid file changes
//! nothing.

use forecourt_events::now_millis;
use uplink::commands::{fields, IdOnly};
use uplink::CommandError;
use wire::ReloadResult;

use super::{Apply, Applying};
use crate::{CommandFailed, Station};

struct ReloadConfig;

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    fields::<IdOnly>(payload)?;
    Ok(Box::new(ReloadConfig))
}

impl Apply for ReloadConfig {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move { Ok(serde_json::to_value(reload(station)?)?) })
    }
}

fn reload(station: &mut Station) -> Result<ReloadResult, CommandFailed> {
    let config = station.config.as_mut().ok_or(CommandFailed::NoConfigFile)?;
    let reload = config.reload().map_err(CommandFailed::Reload)?;
    if let Some(matcher) = reload.matcher {
        station.matcher.set_config(matcher);
    }
    if let Some(layout) = reload.layout {
        // Sales judged from now on, those waiting for their verdict too, look at the new zones;
        // the trace says when they changed, so a replay judges alike.
        station.recording.record_layout(now_millis(), &layout);
        station.analytics.set_layout(layout.clone());
        station.focus.set_layout(&layout);
        station.matcher.set_layout(layout);
    }
    tracing::info!(applied = ?reload.applied, needs_restart = ?reload.needs_restart, "config reloaded");
    Ok(ReloadResult {
        applied: reload.applied,
        needs_restart: reload.needs_restart,
    })
}

#[cfg(test)]
mod tests {
    use uplink::CommandError::*;

    use crate::cmd::tests::check;

    #[test]
    fn only_the_envelope() {
        assert!(check("reload_config", r#"{"id":"a","t":1}"#).is_ok());
        assert!(matches!(
            check("reload_config", r#"{"id":"a","section":"matcher"}"#),
            Err(BadFields(_))
        ));
    }
}
