//! `plate_correction`: HQ (a person) says a sale this station sent was really `plate`; the
//! station sends that as a `sale_correction` naming the sale's record.

use forecourt_events::now_millis;
use uplink::commands::fields;
use uplink::CommandError;
use uuid::Uuid;
use wire::{Event, HqCorrection, PlateCorrectionResult, SaleCorrection, Stream};

use super::{Apply, Applying};
use crate::{CommandFailed, Station, StationError};

/// Longest plate accepted, in characters.
const MAX_PLATE_CHARS: usize = 16;
/// Longest `by` (who corrected the plate) accepted, in characters.
const MAX_BY_CHARS: usize = 128;

uplink::command_fields! {
    struct Fields {
        sale_id: String,
        plate: String,
        by: Option<String>,
    }
}

#[derive(Debug, PartialEq)]
struct PlateCorrection {
    /// The `id` of the sale record's envelope.
    sale_id: Uuid,
    plate: String,
    by: Option<String>,
}

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    Ok(Box::new(read(payload)?))
}

fn read(payload: &str) -> Result<PlateCorrection, CommandError> {
    let f = fields::<Fields>(payload)?;
    Ok(PlateCorrection {
        sale_id: sale_id_field(&f.sale_id)?,
        plate: plate_field(f.plate)?,
        by: f.by.map(by_field).transpose()?,
    })
}

/// A sale record's `id`: a hyphenated UUID, as HQ received it in the sale's envelope.
pub(super) fn sale_id_field(text: &str) -> Result<Uuid, CommandError> {
    Uuid::parse_str(text)
        .ok()
        .filter(|u| u.hyphenated().to_string() == text.to_ascii_lowercase())
        .ok_or_else(|| CommandError::BadValue {
            field: "sale_id",
            why: "must be a hyphenated UUID".into(),
        })
}

/// A corrected plate: short, no spaces, and a well-formed Chinese plate.
pub(super) fn plate_field(plate: String) -> Result<String, CommandError> {
    let plate_chars = plate.chars().count();
    if plate_chars == 0
        || plate_chars > MAX_PLATE_CHARS
        || plate.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CommandError::BadValue {
            field: "plate",
            why: format!("must be 1 to {MAX_PLATE_CHARS} characters, no spaces"),
        });
    }
    if !forecourt_events::is_valid_plate(&plate) {
        return Err(CommandError::BadValue {
            field: "plate",
            why: format!("{plate:?} is not a well-formed Chinese plate"),
        });
    }
    Ok(plate)
}

/// Who made a correction: short and printable.
pub(super) fn by_field(by: String) -> Result<String, CommandError> {
    if by.chars().count() > MAX_BY_CHARS || by.chars().any(char::is_control) {
        return Err(CommandError::BadValue {
            field: "by",
            why: format!("must be at most {MAX_BY_CHARS} printable characters"),
        });
    }
    Ok(by)
}

impl Apply for PlateCorrection {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move { Ok(serde_json::to_value(self.correct(station).await?)?) })
    }
}

impl PlateCorrection {
    async fn correct(self, station: &mut Station) -> Result<PlateCorrectionResult, CommandFailed> {
        let correction = SaleCorrection::Hq(HqCorrection {
            t: now_millis(),
            sale_id: self.sale_id,
            plate: self.plate,
            by: self.by,
        });
        append_correction(station, self.sale_id, correction).await
    }
}

/// Appends `correction` of the sale record `sale_id`, if this station sent that sale.
pub(super) async fn append_correction(
    station: &mut Station,
    sale_id: Uuid,
    correction: SaleCorrection,
) -> Result<PlateCorrectionResult, CommandFailed> {
    let outbox = station.writer.outbox().clone();
    let sent =
        tokio::task::spawn_blocking(move || outbox.holds_record(Stream::Sale.name(), &sale_id))
            .await
            .map_err(StationError::from)?
            .map_err(StationError::outbox("looking for the sale"))?;
    if !sent {
        return Err(CommandFailed::NoSuchSale(sale_id));
    }
    let topic = station.topic(Stream::SaleCorrection);
    let body = Event::SaleCorrection(correction)
        .to_body()
        .map_err(StationError::from)?;
    let record = station
        .writer
        .append_now(Stream::SaleCorrection, topic, body)
        .await?;
    Ok(PlateCorrectionResult {
        stream: Stream::SaleCorrection,
        seq: record.seq,
        id: record.id,
    })
}

#[cfg(test)]
mod tests {
    use uplink::CommandError::{self, *};

    use super::*;
    use crate::cmd::tests::check;

    const SALE: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

    #[test]
    fn a_correction_names_a_sale_and_a_plate() {
        let payload = format!(r#"{{"id":"c1","sale_id":"{SALE}","plate":"京A12345","by":"ops"}}"#);
        assert!(check("plate_correction", &payload).is_ok());
        assert_eq!(
            read(&payload).unwrap(),
            PlateCorrection {
                sale_id: SALE.parse().unwrap(),
                plate: "京A12345".into(),
                by: Some("ops".into()),
            }
        );
        let payload = format!(r#"{{"id":"c1","sale_id":"{SALE}","plate":"粤B12345D"}}"#);
        assert_eq!(read(&payload).unwrap().by, None);
    }

    #[test]
    fn bad_fields_and_values_are_refused_with_the_reason() {
        let field = |e: &CommandError| match e {
            BadValue { field, .. } => *field,
            _ => "",
        };
        let cases: Vec<(String, &str)> = vec![
            (r#"{"id":"a","plate":"A1"}"#.into(), ""),
            (format!(r#"{{"id":"a","sale_id":"{SALE}"}}"#), ""),
            (
                r#"{"id":"a","sale_id":"nope","plate":"京A12345"}"#.into(),
                "sale_id",
            ),
            (
                r#"{"id":"a","sale_id":"6f1c2d3e4a5b4c6d8e7f9a0b1c2d3e4f","plate":"京A12345"}"#
                    .into(),
                "sale_id",
            ),
            (
                format!(r#"{{"id":"a","sale_id":"{SALE}","plate":""}}"#),
                "plate",
            ),
            (
                format!(r#"{{"id":"a","sale_id":"{SALE}","plate":"A 1"}}"#),
                "plate",
            ),
            (
                format!(
                    r#"{{"id":"a","sale_id":"{SALE}","plate":"{}"}}"#,
                    "A".repeat(17)
                ),
                "plate",
            ),
            // Well-shaped, but not a Chinese plate.
            (
                format!(r#"{{"id":"a","sale_id":"{SALE}","plate":"A1"}}"#),
                "plate",
            ),
            (format!(r#"{{"id":"a","sale_id":"{SALE}","plate":7}}"#), ""),
            (
                format!(r#"{{"id":"a","sale_id":"{SALE}","plate":"京A12345","by":"x\ny"}}"#),
                "by",
            ),
            (
                format!(r#"{{"id":"a","sale_id":"{SALE}","plate":"京A12345","fp":1}}"#),
                "",
            ),
        ];
        for (payload, bad_value) in cases {
            let e = check("plate_correction", &payload).unwrap_err();
            assert_eq!(field(&e), bad_value, "{payload}: {e:?}");
            if bad_value.is_empty() {
                assert!(matches!(e, BadFields(_)), "{payload}: {e:?}");
            }
            assert!(!e.to_string().is_empty());
        }
    }
}
