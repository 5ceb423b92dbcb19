//! Commands from HQ on `<prefix>/<station_id>/cmd/<name>`, and their replies on
//! `<prefix>/<station_id>/cmd/<name>/reply`.
//!
//! [`parse_command`] is pure: bytes in, a checked [`Command`] or a [`CommandError`] out. Anything
//! that is not exactly a known command with valid values is refused before it reaches the agent,
//! so a bad payload changes nothing on the station. The uplink knows the envelope (`id`, `t`,
//! `expires`) and its own commands (`ping`, `resend`); the station's commands and their fields
//! are checked by the station's [`CommandSet`], one file per command there.

use std::any::Any;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;

/// Largest command payload accepted; HQ's commands are a few hundred bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Longest correlation id accepted.
pub const MAX_ID_CHARS: usize = 128;
/// Longest stream name accepted in a resend.
pub const MAX_STREAM_CHARS: usize = 64;

/// A checked command from HQ.
#[derive(Debug)]
pub struct Command {
    /// HQ's correlation id, echoed in the reply. Unique per command: a command whose id was
    /// seen before is a redelivery and is not carried out again.
    pub id: String,
    pub action: CommandAction,
    /// When HQ issued it (optional field `t`, Unix ms): too old a command is refused.
    pub issued: Option<i64>,
    /// After when it must not run (optional field `expires`, Unix ms).
    pub expires: Option<i64>,
}

impl Command {
    /// A command HQ issued at no particular time, valid for ever (the agent's own, e.g. SIGHUP).
    pub fn local(id: impl Into<String>, action: CommandAction) -> Command {
        Command {
            id: id.into(),
            action,
            issued: None,
            expires: None,
        }
    }

    /// Why the command must not run at `now`, if it is stale: past its `expires`, or issued
    /// more than `max_age_ms` ago.
    pub fn stale(&self, now: i64, max_age_ms: i64) -> Option<String> {
        if let Some(expires) = self.expires.filter(|&e| now > e) {
            return Some(format!("expired at {expires} (now {now})"));
        }
        let issued = self.issued?;
        // Saturating: `t` is HQ's input, any i64.
        (now.saturating_sub(issued) > max_age_ms)
            .then(|| format!("issued at {issued}, more than {max_age_ms} ms ago (now {now})"))
    }
}

#[derive(Debug)]
pub enum CommandAction {
    /// Are you there? Answered by the uplink itself.
    Ping,
    /// Send archived records of `stream` again from `from_seq` on (to `to_seq`, if given).
    /// Handled by the uplink itself.
    Resend {
        stream: String,
        from_seq: u64,
        to_seq: Option<u64>,
    },
    /// One of the station's commands, checked by its [`CommandSet`].
    Station(StationCommand),
}

impl CommandAction {
    /// The command name: the last level of its topic.
    pub fn name(&self) -> &'static str {
        match self {
            CommandAction::Ping => "ping",
            CommandAction::Resend { .. } => "resend",
            CommandAction::Station(c) => c.name,
        }
    }
}

/// The commands the station carries out: it checks each payload's fields (the uplink has
/// checked the envelope) into a command only it can read.
pub trait CommandSet: Send + Sync {
    /// `None`: the station has no command `name`.
    fn check(&self, name: &str, payload: &str) -> Option<Result<StationCommand, CommandError>>;
}

/// No station commands (an uplink on its own answers `ping` and `resend` only).
pub struct NoStationCommands;

impl CommandSet for NoStationCommands {
    fn check(&self, _: &str, _: &str) -> Option<Result<StationCommand, CommandError>> {
        None
    }
}

/// A station command as its [`CommandSet`] checked it: opaque to the uplink, which only hands
/// it on.
pub struct StationCommand {
    pub name: &'static str,
    checked: Box<dyn Any + Send>,
}

impl StationCommand {
    pub fn new<T: Any + Send>(name: &'static str, checked: T) -> StationCommand {
        StationCommand {
            name,
            checked: Box::new(checked),
        }
    }

    /// The checked command, if it is a `T`.
    pub fn downcast<T: Any>(self) -> Result<T, StationCommand> {
        match self.checked.downcast::<T>() {
            Ok(checked) => Ok(*checked),
            Err(checked) => Err(StationCommand {
                name: self.name,
                checked,
            }),
        }
    }
}

impl std::fmt::Debug for StationCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StationCommand")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a command was refused. The text goes back to HQ in the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("payload is {size} bytes, more than the {max} accepted")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("\"id\" is missing or not a string")]
    MissingId,
    #[error("\"id\" must be 1 to {MAX_ID_CHARS} printable characters")]
    BadId,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// Unknown or duplicate fields, missing fields, wrong types.
    #[error("bad fields: {0}")]
    BadFields(String),
    #[error("{field}: {why}")]
    BadValue { field: &'static str, why: String },
}

/// What the agent answers to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandReply {
    /// Done; `result` (any JSON, often `{}`) goes back to HQ.
    Done(Value),
    /// Not done, and why.
    Failed(String),
}

impl CommandReply {
    /// Done, with `result` as the reply's `result`.
    pub fn done<T: serde::Serialize>(result: &T) -> CommandReply {
        match serde_json::to_value(result) {
            Ok(value) => CommandReply::Done(value),
            Err(e) => CommandReply::Failed(format!("cannot write the result: {e}")),
        }
    }
}

/// A checked command handed to the agent, with where to send its answer. Dropping `reply`
/// unanswered sends HQ an error reply.
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    pub reply: oneshot::Sender<CommandReply>,
}

/// The command name in `topic` if it is `<cmd_root>/<name>` (and not a reply topic).
pub fn command_name<'t>(cmd_root: &str, topic: &'t str) -> Option<&'t str> {
    let name = topic.strip_prefix(cmd_root)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Checks a command payload for the command `name` (the last topic level): the envelope and
/// the uplink's own commands here, the station's commands with `station`.
pub fn parse_command(
    name: &str,
    payload: &[u8],
    station: &dyn CommandSet,
) -> Result<Command, CommandError> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::TooLarge {
            size: payload.len(),
            max: MAX_COMMAND_BYTES,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|_| CommandError::NotUtf8)?;
    // First as a plain object, to give the id check its own clear error.
    let value: Value =
        serde_json::from_str(text).map_err(|e| CommandError::NotAnObject(e.to_string()))?;
    let Value::Object(object) = &value else {
        return Err(CommandError::NotAnObject(format!("got {}", kind(&value))));
    };
    let id = match object.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(CommandError::MissingId),
    };
    if !valid_id(&id) {
        return Err(CommandError::BadId);
    }
    // Then strictly into the command's own shape: unknown and duplicate fields are errors.
    // From the text, not the Value: a Value would already have merged duplicate keys.
    let action = match name {
        "ping" => {
            fields::<IdOnly>(text)?;
            CommandAction::Ping
        }
        "resend" => {
            let f = fields::<ResendFields>(text)?;
            let stream_ok = (1..=MAX_STREAM_CHARS).contains(&f.stream.len())
                && f.stream
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !stream_ok {
                return Err(CommandError::BadValue {
                    field: "stream",
                    why: format!("must be 1 to {MAX_STREAM_CHARS} of [A-Za-z0-9_-]"),
                });
            }
            // Sequence numbers are stored as SQLite integers (i64).
            if f.from_seq == 0 || f.from_seq > i64::MAX as u64 {
                return Err(CommandError::BadValue {
                    field: "from_seq",
                    why: "must be at least 1 (seq counts from 1)".into(),
                });
            }
            if f.to_seq
                .is_some_and(|to| to < f.from_seq || to > i64::MAX as u64)
            {
                return Err(CommandError::BadValue {
                    field: "to_seq",
                    why: "must be at least from_seq".into(),
                });
            }
            CommandAction::Resend {
                stream: f.stream,
                from_seq: f.from_seq,
                to_seq: f.to_seq,
            }
        }
        other => match station.check(other, text) {
            Some(checked) => CommandAction::Station(checked?),
            None => {
                let shown: String = other.chars().take(64).collect();
                return Err(CommandError::UnknownCommand(shown));
            }
        },
    };
    let time = |field: &str| object.get(field).and_then(Value::as_i64);
    Ok(Command {
        id,
        action,
        issued: time("t"),
        expires: time("expires"),
    })
}

/// The correlation id of a payload, if it has a usable one: for error replies to payloads
/// that failed other checks.
pub fn correlation_id(payload: &[u8]) -> Option<String> {
    if payload.len() > MAX_COMMAND_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(payload).ok()?;
    let id = value.get("id")?.as_str()?;
    valid_id(id).then(|| id.to_string())
}

/// The reply payload: `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error"}`.
pub fn reply_payload(id: Option<&str>, reply: &CommandReply) -> Vec<u8> {
    let id = id.map(str::to_owned);
    let msg = match reply {
        CommandReply::Done(result) => wire::Reply {
            id,
            ok: true,
            result: Some(result.clone()),
            error: None,
        },
        CommandReply::Failed(error) => wire::Reply {
            id,
            ok: false,
            result: None,
            error: Some(error.clone()),
        },
    };
    // A JSON value and strings: this cannot fail.
    serde_json::to_vec(&msg).unwrap_or_default()
}

fn valid_id(id: &str) -> bool {
    let chars = id.chars().count();
    (1..=MAX_ID_CHARS).contains(&chars) && !id.chars().any(char::is_control)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a command's fields strictly: unknown, duplicate and missing fields and wrong types are
/// [`CommandError::BadFields`]. Every shape has `id`, `t` and `expires` (see [`IdOnly`]).
pub fn fields<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, CommandError> {
    serde_json::from_str(text).map_err(|e| CommandError::BadFields(e.to_string()))
}

/// Declares the fields of a command for [`fields`]: the envelope's `id`, `t` and `expires`
/// (which [`parse_command`] has checked) are added, so that `deny_unknown_fields` accepts them.
/// The caller needs `serde` as a dependency.
#[macro_export]
macro_rules! command_fields {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(::serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        $vis struct $name {
            id: String,
            #[serde(default)]
            t: Option<i64>,
            #[serde(default)]
            expires: Option<i64>,
            $($field: $ty),*
        }
    };
}

command_fields! {
    /// A command with no fields of its own.
    pub struct IdOnly {}
}

command_fields! {
    struct ResendFields {
        stream: String,
        from_seq: u64,
        to_seq: Option<u64>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(name: &str, payload: &str) -> Command {
        parse_command(name, payload.as_bytes(), &NoStationCommands)
            .unwrap_or_else(|e| panic!("{name} {payload}: {e}"))
    }

    fn bad(name: &str, payload: &[u8]) -> CommandError {
        match parse_command(name, payload, &NoStationCommands) {
            Ok(c) => panic!(
                "{name} {:?} accepted as {c:?}",
                String::from_utf8_lossy(payload)
            ),
            Err(e) => e,
        }
    }

    #[test]
    fn issue_and_expiry_times_make_a_command_stale() {
        let c = ok("ping", r#"{"id":"a","t":1000,"expires":5000}"#);
        assert_eq!((c.issued, c.expires), (Some(1000), Some(5000)));
        assert_eq!(c.stale(2000, 10_000), None);
        assert!(c.stale(5001, 10_000).unwrap().contains("expired"));
        assert!(c.stale(3000, 1_000).unwrap().contains("issued at 1000"));
        assert_eq!(ok("ping", r#"{"id":"a"}"#).stale(i64::MAX, 0), None);
        // Extreme stamps are stale or not, never an overflow.
        let ancient = ok("ping", &format!(r#"{{"id":"a","t":{}}}"#, i64::MIN));
        assert!(ancient.stale(1000, i64::MAX - 1).is_some());
        assert!(matches!(
            bad("ping", br#"{"id":"a","t":"yesterday"}"#),
            CommandError::BadFields(_)
        ));
    }

    #[test]
    fn a_resend_may_be_bounded_by_to_seq() {
        match ok(
            "resend",
            r#"{"id":"r","stream":"sale","from_seq":17,"to_seq":17}"#,
        )
        .action
        {
            CommandAction::Resend {
                from_seq, to_seq, ..
            } => assert_eq!((from_seq, to_seq), (17, Some(17))),
            other => panic!("{other:?}"),
        }
        for bad_to in ["16", "0", "-1", "9223372036854775808", "\"20\""] {
            let text = format!(r#"{{"id":"r","stream":"sale","from_seq":17,"to_seq":{bad_to}}}"#);
            let e = bad("resend", text.as_bytes());
            assert!(
                matches!(
                    e,
                    CommandError::BadValue {
                        field: "to_seq",
                        ..
                    } | CommandError::BadFields(_)
                ),
                "{bad_to}: {e:?}"
            );
        }
    }

    #[test]
    fn the_uplinks_own_commands_parse() {
        assert!(matches!(
            ok("ping", r#"{"id":"a"}"#).action,
            CommandAction::Ping
        ));
        match ok("resend", r#"{"id":"r","stream":"sale","from_seq":17}"#).action {
            CommandAction::Resend {
                stream,
                from_seq,
                to_seq,
            } => assert_eq!((stream.as_str(), from_seq, to_seq), ("sale", 17, None)),
            other => panic!("{other:?}"),
        }
    }

    /// The station's commands are checked by its command set; an uplink without one knows none.
    #[test]
    fn station_commands_go_to_the_command_set() {
        struct OneCommand;
        impl CommandSet for OneCommand {
            fn check(
                &self,
                name: &str,
                payload: &str,
            ) -> Option<Result<StationCommand, CommandError>> {
                (name == "shout").then(|| {
                    fields::<IdOnly>(payload)?;
                    Ok(StationCommand::new("shout", 7u8))
                })
            }
        }
        let command = parse_command("shout", br#"{"id":"s","t":5}"#, &OneCommand).unwrap();
        assert_eq!((command.id.as_str(), command.issued), ("s", Some(5)));
        let CommandAction::Station(checked) = command.action else {
            panic!("not a station command");
        };
        assert_eq!(checked.name, "shout");
        assert_eq!(checked.downcast::<u8>().unwrap(), 7);
        assert!(matches!(
            parse_command("shout", br#"{"id":"s","x":1}"#, &OneCommand),
            Err(CommandError::BadFields(_))
        ));
        assert!(matches!(
            parse_command("shout", br#"{"id":""}"#, &OneCommand),
            Err(CommandError::BadId)
        ));
        assert!(matches!(
            parse_command("shout", br#"{"id":"s"}"#, &NoStationCommands),
            Err(CommandError::UnknownCommand(_))
        ));
    }

    #[test]
    fn bad_payloads_are_refused_with_the_reason() {
        use CommandError::*;
        type Case = (&'static str, Vec<u8>, fn(&CommandError) -> bool);
        let cases: Vec<Case> = vec![
            ("ping", vec![b' '; MAX_COMMAND_BYTES + 1], |e| {
                matches!(e, TooLarge { .. })
            }),
            ("ping", vec![0xff, 0xfe, b'{'], |e| *e == NotUtf8),
            ("ping", b"".to_vec(), |e| matches!(e, NotAnObject(_))),
            ("ping", b"{".to_vec(), |e| matches!(e, NotAnObject(_))),
            ("ping", b"[]".to_vec(), |e| matches!(e, NotAnObject(_))),
            ("ping", b"null".to_vec(), |e| matches!(e, NotAnObject(_))),
            ("ping", b"\"id\"".to_vec(), |e| matches!(e, NotAnObject(_))),
            ("ping", br#"{"id":"a"} trailing"#.to_vec(), |e| {
                matches!(e, NotAnObject(_))
            }),
            ("ping", b"{}".to_vec(), |e| *e == MissingId),
            ("ping", br#"{"id":7}"#.to_vec(), |e| *e == MissingId),
            ("ping", br#"{"id":null}"#.to_vec(), |e| *e == MissingId),
            ("ping", br#"{"id":""}"#.to_vec(), |e| *e == BadId),
            ("ping", br#"{"id":"a\u0000b"}"#.to_vec(), |e| *e == BadId),
            (
                "ping",
                format!(r#"{{"id":"{}"}}"#, "x".repeat(129)).into_bytes(),
                |e| *e == BadId,
            ),
            ("ping", br#"{"id":"a","extra":1}"#.to_vec(), |e| {
                matches!(e, BadFields(_))
            }),
            ("ping", br#"{"id":"a","id":"b"}"#.to_vec(), |e| {
                matches!(e, BadFields(_))
            }),
            ("reboot", br#"{"id":"a"}"#.to_vec(), |e| {
                matches!(e, UnknownCommand(_))
            }),
            ("", br#"{"id":"a"}"#.to_vec(), |e| {
                matches!(e, UnknownCommand(_))
            }),
            ("PING", br#"{"id":"a"}"#.to_vec(), |e| {
                matches!(e, UnknownCommand(_))
            }),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":0}"#.to_vec(),
                |e| {
                    matches!(
                        e,
                        BadValue {
                            field: "from_seq",
                            ..
                        }
                    )
                },
            ),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":-1}"#.to_vec(),
                |e| matches!(e, BadFields(_)),
            ),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":1.5}"#.to_vec(),
                |e| matches!(e, BadFields(_)),
            ),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":"1"}"#.to_vec(),
                |e| matches!(e, BadFields(_)),
            ),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":18446744073709551615}"#.to_vec(),
                |e| {
                    matches!(
                        e,
                        BadValue {
                            field: "from_seq",
                            ..
                        }
                    )
                },
            ),
            (
                "resend",
                br#"{"id":"a","stream":"sale","from_seq":18446744073709551616}"#.to_vec(),
                |e| matches!(e, BadFields(_)),
            ),
            (
                "resend",
                br#"{"id":"a","stream":"","from_seq":1}"#.to_vec(),
                |e| {
                    matches!(
                        e,
                        BadValue {
                            field: "stream",
                            ..
                        }
                    )
                },
            ),
            (
                "resend",
                br#"{"id":"a","stream":"a/b","from_seq":1}"#.to_vec(),
                |e| {
                    matches!(
                        e,
                        BadValue {
                            field: "stream",
                            ..
                        }
                    )
                },
            ),
            ("resend", br#"{"id":"a","stream":"sale"}"#.to_vec(), |e| {
                matches!(e, BadFields(_))
            }),
        ];
        for (name, payload, expected) in cases {
            let err = bad(name, &payload);
            assert!(
                expected(&err),
                "{name} {:?}: got {err:?}",
                String::from_utf8_lossy(&payload[..payload.len().min(80)])
            );
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn deep_nesting_and_random_bytes_never_panic() {
        let deep = format!(
            r#"{{"id":"a","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_command("ping", deep.as_bytes(), &NoStationCommands).is_err());
        // A seeded spray of short byte strings, some JSON-looking.
        let mut rng = seeded_rng::Rng::new(0x9E37_79B9_7F4A_7C15);
        let alphabet = br#"{}[]":,0123456789.-eE tfnulrsaid\u"#;
        for round in 0..20_000 {
            let mut payload = Vec::new();
            let len = (round % 48) + 1;
            for _ in 0..len {
                let b = if round % 3 == 0 {
                    rng.next_u64() as u8
                } else {
                    *rng.pick(alphabet)
                };
                payload.push(b);
            }
            for name in ["ping", "plate_correction", "resend", "record_trace", "x"] {
                let _ = parse_command(name, &payload, &NoStationCommands);
                let _ = correlation_id(&payload);
            }
        }
    }

    #[test]
    fn topics_and_replies() {
        assert_eq!(command_name("f/S1/cmd", "f/S1/cmd/ping"), Some("ping"));
        assert_eq!(command_name("f/S1/cmd", "f/S1/cmd/ping/reply"), None);
        assert_eq!(command_name("f/S1/cmd", "f/S1/cmd/"), None);
        assert_eq!(command_name("f/S1/cmd", "f/S2/cmd/ping"), None);
        assert_eq!(command_name("f/S1/cmd", "f/S1/cmdx/ping"), None);
        assert_eq!(correlation_id(br#"{"id":"x","bad":1}"#), Some("x".into()));
        assert_eq!(correlation_id(br#"{"id":""}"#), None);
        let done: Value =
            serde_json::from_slice(&reply_payload(Some("x"), &CommandReply::Done(json!({}))))
                .unwrap();
        assert_eq!(done, json!({"id": "x", "ok": true, "result": {}}));
        let failed: Value =
            serde_json::from_slice(&reply_payload(None, &CommandReply::Failed("no".into())))
                .unwrap();
        assert_eq!(failed, json!({"id": null, "ok": false, "error": "no"}));
    }
}
