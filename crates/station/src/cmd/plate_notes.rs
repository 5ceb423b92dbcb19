//! `plate_notes`: HQ's notes on plates ("member, prefers 95#"), shown at the station when the
//! car arrives (console and local API). Sets notes, removes some, or replaces the whole list;
//! kept in the outbox's state across restarts. All or nothing: a bad entry refuses the command.

use forecourt_events::{now_millis, UnixMillis};
use serde::Deserialize;
use uplink::commands::fields;
use uplink::CommandError;

use super::plate_correction::plate_field;
use super::{Apply, Applying};
use crate::plate_notes::{NotesChange, PlateNote, MAX_NOTES, MAX_NOTE_AGE_MS, MAX_NOTE_CHARS};
use crate::Station;

uplink::command_fields! {
    struct Fields {
        notes: Option<Vec<NoteFields>>,
        remove: Option<Vec<String>>,
        replace: Option<bool>,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteFields {
    plate: String,
    note: String,
    /// Unix ms: the note is shown until then.
    until: i64,
}

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    Ok(Box::new(read(payload, now_millis())?))
}

fn bad(field: &'static str, why: String) -> CommandError {
    CommandError::BadValue { field, why }
}

fn read(payload: &str, now: UnixMillis) -> Result<NotesChange, CommandError> {
    let f = fields::<Fields>(payload)?;
    let (notes, remove) = (f.notes.unwrap_or_default(), f.remove.unwrap_or_default());
    let replace = f.replace.unwrap_or(false);
    if notes.is_empty() && remove.is_empty() && !replace {
        return Err(bad(
            "notes",
            "nothing to change: give notes, remove or replace".into(),
        ));
    }
    if notes.len() > MAX_NOTES || remove.len() > MAX_NOTES {
        return Err(bad(
            "notes",
            format!("at most {MAX_NOTES} plates per command"),
        ));
    }
    let mut change = NotesChange {
        replace,
        ..NotesChange::default()
    };
    let mut named = std::collections::BTreeSet::new();
    for n in notes {
        let plate = plate_field(n.plate)?;
        let chars = n.note.chars().count();
        if chars == 0 || chars > MAX_NOTE_CHARS || n.note.chars().any(char::is_control) {
            return Err(bad(
                "note",
                format!("must be 1 to {MAX_NOTE_CHARS} characters, no control characters"),
            ));
        }
        if n.until <= now || n.until > now + MAX_NOTE_AGE_MS {
            return Err(bad(
                "until",
                format!(
                    "must be a Unix time in ms after now and at most {} days ahead",
                    MAX_NOTE_AGE_MS / 86_400_000
                ),
            ));
        }
        if !named.insert(plate.clone()) {
            return Err(bad("plate", format!("{plate} is named twice")));
        }
        change.set.push((
            plate,
            PlateNote {
                note: n.note,
                until: n.until,
            },
        ));
    }
    for plate in remove {
        let plate = plate_field(plate)?;
        if !named.insert(plate.clone()) {
            return Err(bad("remove", format!("{plate} is named twice")));
        }
        change.remove.push(plate);
    }
    Ok(change)
}

impl Apply for NotesChange {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move {
            let applied = station.change_plate_notes(*self, now_millis()).await?;
            Ok(serde_json::to_value(wire::PlateNotesResult {
                set: applied.set,
                removed: applied.removed,
                held: applied.held,
            })?)
        })
    }
}

#[cfg(test)]
mod tests {
    use uplink::CommandError::*;

    use super::*;
    use crate::cmd::tests::check;

    const NOW: i64 = 1_765_000_000_000;

    #[test]
    fn notes_set_and_remove_plates() {
        let payload = format!(
            r#"{{"id":"n","notes":[{{"plate":"苏E05EV8","note":"member, prefers 95#","until":{}}}],"remove":["京A12345"]}}"#,
            NOW + 86_400_000
        );
        let change = read(&payload, NOW).unwrap();
        assert_eq!(change.set.len(), 1);
        assert_eq!(change.set[0].0, "苏E05EV8");
        assert_eq!(change.set[0].1.note, "member, prefers 95#");
        assert_eq!(change.remove, vec!["京A12345".to_string()]);
        assert!(!change.replace);
        // Replacing with nothing clears the list.
        assert!(read(r#"{"id":"n","replace":true}"#, NOW).unwrap().replace);
        // The uplink's check knows the command.
        assert!(check("plate_notes", r#"{"id":"n","remove":["京A12345"]}"#).is_ok());
    }

    #[test]
    fn bad_entries_refuse_the_whole_command() {
        let until = NOW + 1000;
        let note = |plate: &str, text: &str, until: i64| {
            format!(
                r#"{{"id":"n","notes":[{{"plate":"{plate}","note":"{text}","until":{until}}}]}}"#
            )
        };
        for (payload, field) in [
            (r#"{"id":"n"}"#.to_string(), "notes"),
            (note("NOTAPLATE", "x", until), "plate"),
            (note("苏E05EV8", "", until), "note"),
            (
                note("苏E05EV8", &"x".repeat(MAX_NOTE_CHARS + 1), until),
                "note",
            ),
            (note("苏E05EV8", "a\\u0007b", until), "note"),
            (note("苏E05EV8", "x", NOW), "until"),
            (note("苏E05EV8", "x", NOW + MAX_NOTE_AGE_MS + 1), "until"),
            (
                format!(
                    r#"{{"id":"n","notes":[{{"plate":"苏E05EV8","note":"x","until":{until}}}],"remove":["苏E05EV8"]}}"#
                ),
                "remove",
            ),
        ] {
            match read(&payload, NOW) {
                Err(BadValue { field: f, .. }) => assert_eq!(f, field, "{payload}"),
                other => panic!("{payload}: {other:?}"),
            }
        }
        for payload in [
            r#"{"id":"n","notes":[{"plate":"苏E05EV8","note":"x"}]}"#,
            r#"{"id":"n","notes":[{"plate":"苏E05EV8","note":"x","until":1,"extra":1}]}"#,
            r#"{"id":"n","notes":{}}"#,
            r#"{"id":"n","replace":"yes"}"#,
        ] {
            assert!(matches!(read(payload, NOW), Err(BadFields(_))), "{payload}");
        }
    }
}
