//! `hourly`: the hourly summary of the hour holding `hour`, while the station still has it; for
//! the hour still being counted, its figures so far (`counted_until`).

use uplink::commands::fields;
use uplink::CommandError;

use super::{Apply, Applying};
use crate::CommandFailed;
use crate::Station;

uplink::command_fields! {
    struct Fields {
        hour: i64,
    }
}

struct Hourly {
    /// Any time in the hour, Unix ms.
    hour: i64,
}

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    let f = fields::<Fields>(payload)?;
    if f.hour < 0 {
        return Err(CommandError::BadValue {
            field: "hour",
            why: "must be a Unix time in milliseconds".into(),
        });
    }
    Ok(Box::new(Hourly { hour: f.hour }))
}

impl Apply for Hourly {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move {
            let summary = station
                .analytics
                .hour_or_so_far(self.hour, forecourt_events::now_millis())
                .ok_or(CommandFailed::NoSuchHour(self.hour))?;
            Ok(serde_json::to_value(summary)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use uplink::CommandError::*;

    use crate::cmd::tests::check;

    #[test]
    fn an_hour_is_a_unix_time() {
        assert!(check("hourly", r#"{"id":"h","hour":1718000000000}"#).is_ok());
        assert!(matches!(
            check("hourly", r#"{"id":"h","hour":-1}"#),
            Err(BadValue { field: "hour", .. })
        ));
        assert!(matches!(
            check("hourly", r#"{"id":"h","hour":"x"}"#),
            Err(BadFields(_))
        ));
    }
}
