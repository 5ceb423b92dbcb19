//! `record_trace`: records everything the matcher sees for a few minutes, into a file HQ can
//! fetch and replay.

use forecourt_events::now_millis;
use uplink::commands::fields;
use uplink::CommandError;
use wire::RecordTraceResult;

use super::{Apply, Applying};
use crate::Station;

/// Minutes a recording may last, inclusive.
const MINUTES: std::ops::RangeInclusive<u16> = 1..=120;

uplink::command_fields! {
    struct Fields {
        minutes: u16,
    }
}

struct RecordTrace {
    minutes: u16,
}

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    let f = fields::<Fields>(payload)?;
    if !MINUTES.contains(&f.minutes) {
        return Err(CommandError::BadValue {
            field: "minutes",
            why: format!("must be {} to {}", MINUTES.start(), MINUTES.end()),
        });
    }
    Ok(Box::new(RecordTrace { minutes: f.minutes }))
}

impl Apply for RecordTrace {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move {
            let file = station.recording.start(self.minutes, now_millis())?;
            let result = RecordTraceResult {
                file,
                minutes: self.minutes,
            };
            Ok(serde_json::to_value(result)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use uplink::CommandError::*;

    use crate::cmd::tests::check;

    #[test]
    fn minutes_from_1_to_120() {
        for minutes in [1u16, 120] {
            let payload = format!(r#"{{"id":"t","minutes":{minutes}}}"#);
            assert!(check("record_trace", &payload).is_ok());
        }
        for bad in [r#"{"id":"a","minutes":0}"#, r#"{"id":"a","minutes":121}"#] {
            assert!(
                matches!(
                    check("record_trace", bad),
                    Err(BadValue {
                        field: "minutes",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        for bad in [
            r#"{"id":"a","minutes":70000}"#,
            r#"{"id":"a","minutes":null}"#,
            r#"{"id":"a"}"#,
        ] {
            assert!(
                matches!(check("record_trace", bad), Err(BadFields(_))),
                "{bad}"
            );
        }
    }
}
