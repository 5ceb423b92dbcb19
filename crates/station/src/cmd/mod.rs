//! HQ's commands the station carries out, one file each (the uplink answers `ping` and `resend`
//! itself), and SIGHUP, which is a `reload_config` from the operator. Each file reads and checks
//! its command's fields (`check`: a bad payload is refused by the uplink and changes nothing)
//! and applies it to the station (`apply`), returning the reply's `result`.
//!
//! Adding a command: a new file here and its line in [`COMMANDS`].

mod hourly;
mod plate_correction;
mod plate_notes;
mod record_trace;
mod reload_config;
mod staff_correction;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use uplink::{CommandAction, CommandError, CommandReply, CommandRequest, StationCommand};

use crate::error::with_causes;
use crate::{CommandFailed, Station};

/// A command checked and ready to apply.
pub(crate) trait Apply: Send {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a>;
}

/// The work of [`Apply::apply`]: the reply's `result`.
pub(crate) type Applying<'a> =
    Pin<Box<dyn Future<Output = Result<Value, CommandFailed>> + Send + 'a>>;

type Check = fn(&str) -> Result<Box<dyn Apply>, CommandError>;

/// Every command the station carries out: its name (the last topic level) and its check.
const COMMANDS: &[(&str, Check)] = &[
    ("reload_config", reload_config::check),
    ("plate_correction", plate_correction::check),
    ("record_trace", record_trace::check),
    ("hourly", hourly::check),
    ("plate_notes", plate_notes::check),
];

/// Commands only the station itself makes (its console): never taken from HQ.
const LOCAL_COMMANDS: &[(&str, Check)] = &[("staff_correction", staff_correction::check)];

/// The station's commands, for the uplink to check HQ's payloads with.
pub struct StationCommands;

impl uplink::CommandSet for StationCommands {
    fn check(&self, name: &str, payload: &str) -> Option<Result<StationCommand, CommandError>> {
        let (name, check) = COMMANDS.iter().find(|(known, _)| *known == name)?;
        Some(check(payload).map(|command| StationCommand::new(name, command)))
    }
}

impl StationCommands {
    /// A command of the station's own making (the operator's SIGHUP is a `reload_config`, the
    /// console's corrections a `staff_correction`).
    pub fn local(name: &str, payload: &str) -> Result<CommandAction, CommandError> {
        use uplink::CommandSet;
        let checked = StationCommands.check(name, payload).or_else(|| {
            let (name, check) = LOCAL_COMMANDS.iter().find(|(known, _)| *known == name)?;
            Some(check(payload).map(|command| StationCommand::new(name, command)))
        });
        match checked {
            Some(checked) => Ok(CommandAction::Station(checked?)),
            None => Err(CommandError::UnknownCommand(name.to_owned())),
        }
    }
}

impl Station {
    pub(crate) async fn handle_command(&mut self, request: CommandRequest) {
        let reply = match self.carry_out(request.command.action).await {
            Ok(result) => CommandReply::Done(result),
            Err(e) => CommandReply::Failed(with_causes(&e)),
        };
        if let CommandReply::Failed(why) = &reply {
            tracing::warn!(command = %request.command.id, why, "command failed");
        }
        // HQ may have given up waiting; nothing to do then.
        let _ = request.reply.send(reply);
    }

    async fn carry_out(&mut self, action: CommandAction) -> Result<Value, CommandFailed> {
        let name = action.name();
        let CommandAction::Station(command) = action else {
            // The uplink answers ping and resend itself; they never reach the station.
            return Err(CommandFailed::NotForTheStation(name));
        };
        let command = command
            .downcast::<Box<dyn Apply>>()
            .map_err(|_| CommandFailed::NotForTheStation(name))?;
        command.apply(self).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use uplink::{CommandError, CommandSet};

    use super::StationCommands;

    /// Checks `payload` as HQ's command `name`: its error, or `Ok` when accepted.
    pub fn check(name: &str, payload: &str) -> Result<(), CommandError> {
        let checked = uplink::commands::parse_command(name, payload.as_bytes(), &StationCommands)?;
        assert_eq!(checked.action.name(), name);
        Ok(())
    }

    #[test]
    fn every_command_is_known_by_its_name_only() {
        for (name, _) in super::COMMANDS {
            assert!(StationCommands.check(name, r#"{"id":"a"}"#).is_some());
        }
        for name in ["", "PING", "ping", "resend", "reboot", "hourly/x"] {
            assert!(
                StationCommands.check(name, r#"{"id":"a"}"#).is_none(),
                "{name}"
            );
        }
    }
}
