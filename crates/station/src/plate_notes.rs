//! HQ's notes on plates ("member, prefers 95#"), shown to the staff when the car arrives: a
//! bounded list, each note with its own expiry, set by HQ's `plate_notes` command and kept in
//! the outbox's state (SQLite) across restarts. Pure: time is passed in.

use std::collections::BTreeMap;

use forecourt_events::UnixMillis;
use serde::{Deserialize, Serialize};

/// Notes held at most (a station's regulars, with room to spare).
pub const MAX_NOTES: usize = 10_000;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 200;
/// Furthest a note's expiry may lie ahead: HQ refreshes what it still means.
pub const MAX_NOTE_AGE_MS: i64 = 90 * 86_400_000;

/// One plate's note and when it stops being shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateNote {
    pub note: String,
    /// Unix ms.
    pub until: UnixMillis,
}

/// The notes held, by plate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateNotes {
    notes: BTreeMap<String, PlateNote>,
}

/// One `plate_notes` command, checked: notes to set, plates whose note goes, and whether the
/// notes set replace every other one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotesChange {
    pub replace: bool,
    pub set: Vec<(String, PlateNote)>,
    pub remove: Vec<String>,
}

/// What a change did, as the command's reply says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotesApplied {
    /// Notes set or replaced.
    pub set: usize,
    /// Notes taken away (removed, replaced away, or expired).
    pub removed: usize,
    /// Notes held after the change.
    pub held: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotesError {
    #[error("{would_hold} notes would be held, at most {MAX_NOTES}: nothing changed")]
    TooMany { would_hold: usize },
}

impl PlateNotes {
    /// The note on `plate`, while it has not expired.
    pub fn note(&self, plate: &str, now: UnixMillis) -> Option<&str> {
        self.notes
            .get(plate)
            .filter(|n| n.until > now)
            .map(|n| n.note.as_str())
    }

    pub fn len(&self) -> usize {
        self.notes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// Applies `change` whole, or nothing when the list would grow past [`MAX_NOTES`]. Expired
    /// notes go first.
    pub fn apply(
        &mut self,
        change: NotesChange,
        now: UnixMillis,
    ) -> Result<NotesApplied, NotesError> {
        let mut next = if change.replace {
            BTreeMap::new()
        } else {
            self.notes.clone()
        };
        next.retain(|_, n| n.until > now);
        let mut removed = self.notes.len() - next.len();
        for plate in &change.remove {
            removed += usize::from(next.remove(plate).is_some());
        }
        let set = change.set.len();
        for (plate, note) in change.set {
            next.insert(plate, note);
        }
        if next.len() > MAX_NOTES {
            return Err(NotesError::TooMany {
                would_hold: next.len(),
            });
        }
        if change.replace {
            // Replaced away: held before, and not set again.
            removed = self.notes.keys().filter(|p| !next.contains_key(*p)).count();
        }
        self.notes = next;
        Ok(NotesApplied {
            set,
            removed,
            held: self.notes.len(),
        })
    }

    /// Forgets expired notes; how many went.
    pub fn prune(&mut self, now: UnixMillis) -> usize {
        let before = self.notes.len();
        self.notes.retain(|_, n| n.until > now);
        before - self.notes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(text: &str, until: i64) -> PlateNote {
        PlateNote {
            note: text.into(),
            until,
        }
    }

    fn set(plates: &[(&str, &str, i64)]) -> NotesChange {
        NotesChange {
            set: plates
                .iter()
                .map(|(p, n, u)| (p.to_string(), note(n, *u)))
                .collect(),
            ..NotesChange::default()
        }
    }

    #[test]
    fn a_note_shows_until_it_expires() {
        let mut notes = PlateNotes::default();
        let applied = notes.apply(set(&[("苏E05EV8", "member", 2_000)]), 1_000);
        assert_eq!(
            applied,
            Ok(NotesApplied {
                set: 1,
                removed: 0,
                held: 1
            })
        );
        assert_eq!(notes.note("苏E05EV8", 1_999), Some("member"));
        assert_eq!(notes.note("苏E05EV8", 2_000), None);
        assert_eq!(notes.note("京A12345", 1_000), None);
        assert_eq!(notes.prune(2_000), 1);
        assert!(notes.is_empty());
    }

    #[test]
    fn changes_merge_remove_or_replace() {
        let mut notes = PlateNotes::default();
        notes
            .apply(
                set(&[("苏E05EV8", "a", 9_000), ("京A12345", "b", 9_000)]),
                0,
            )
            .unwrap();
        // Merge: one overwritten, one kept.
        notes.apply(set(&[("苏E05EV8", "a2", 9_000)]), 0).unwrap();
        assert_eq!(notes.note("苏E05EV8", 0), Some("a2"));
        assert_eq!(notes.note("京A12345", 0), Some("b"));
        // Remove: a plate without a note is not an error.
        let removed = notes.apply(
            NotesChange {
                remove: vec!["京A12345".into(), "沪B00001".into()],
                ..NotesChange::default()
            },
            0,
        );
        assert_eq!(removed.unwrap().removed, 1);
        assert_eq!(notes.note("京A12345", 0), None);
        // Replace: only what it sets is left.
        let replaced = notes
            .apply(
                NotesChange {
                    replace: true,
                    ..set(&[("沪B00001", "c", 9_000)])
                },
                0,
            )
            .unwrap();
        assert_eq!(
            replaced,
            NotesApplied {
                set: 1,
                removed: 1,
                held: 1
            }
        );
        assert_eq!(notes.note("苏E05EV8", 0), None);
    }

    #[test]
    fn a_change_past_the_bound_changes_nothing() {
        let mut notes = PlateNotes::default();
        let many: Vec<(String, PlateNote)> = (0..MAX_NOTES)
            .map(|i| (format!("京A{i:05}"), note("n", 9_000)))
            .collect();
        notes
            .apply(
                NotesChange {
                    set: many,
                    ..NotesChange::default()
                },
                0,
            )
            .unwrap();
        let before = notes.clone();
        assert_eq!(
            notes.apply(set(&[("苏E05EV8", "one more", 9_000)]), 0),
            Err(NotesError::TooMany {
                would_hold: MAX_NOTES + 1
            })
        );
        assert_eq!(notes, before);
        // Once some expired, there is room again.
        assert!(notes
            .apply(set(&[("苏E05EV8", "one more", 99_000)]), 9_000)
            .is_ok());
        assert_eq!(notes.len(), 1);
    }
}
