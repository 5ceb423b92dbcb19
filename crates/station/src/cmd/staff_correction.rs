//! `staff_correction`: a person at the station (a console user) says which car bought a sale this
//! station sent: its plate, or no plate. Local only (the station console makes it; HQ's own
//! word is `plate_correction`); sent to HQ as a `sale_correction` with `source: "staff"`.

use forecourt_events::now_millis;
use uplink::commands::fields;
use uplink::CommandError;
use uuid::Uuid;
use wire::{SaleCorrection, StaffCorrection};

use super::plate_correction::{append_correction, by_field, plate_field, sale_id_field};
use super::{Apply, Applying};
use crate::Station;

// `plate` absent or null: no plate.
uplink::command_fields! {
    struct Fields {
        sale_id: String,
        plate: Option<String>,
        by: String,
    }
}

#[derive(Debug, PartialEq)]
struct Correction {
    sale_id: Uuid,
    plate: Option<String>,
    by: String,
}

pub(super) fn check(payload: &str) -> Result<Box<dyn Apply>, CommandError> {
    Ok(Box::new(read(payload)?))
}

fn read(payload: &str) -> Result<Correction, CommandError> {
    let f = fields::<Fields>(payload)?;
    let by = by_field(f.by)?;
    if by.is_empty() {
        return Err(CommandError::BadValue {
            field: "by",
            why: "a staff correction names the user who made it".into(),
        });
    }
    Ok(Correction {
        sale_id: sale_id_field(&f.sale_id)?,
        plate: f.plate.map(plate_field).transpose()?,
        by,
    })
}

impl Apply for Correction {
    fn apply<'a>(self: Box<Self>, station: &'a mut Station) -> Applying<'a> {
        Box::pin(async move {
            let correction = SaleCorrection::Staff(StaffCorrection {
                t: now_millis(),
                sale_id: self.sale_id,
                plate: self.plate,
                by: self.by,
            });
            let result = append_correction(station, self.sale_id, correction).await?;
            Ok(serde_json::to_value(result)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALE: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

    #[test]
    fn a_staff_correction_names_a_sale_a_plate_or_none_and_who() {
        let payload = format!(r#"{{"id":"c","sale_id":"{SALE}","plate":"京A12345","by":"anna"}}"#);
        assert_eq!(
            read(&payload).unwrap(),
            Correction {
                sale_id: SALE.parse().unwrap(),
                plate: Some("京A12345".into()),
                by: "anna".into(),
            }
        );
        let none = format!(r#"{{"id":"c","sale_id":"{SALE}","plate":null,"by":"anna"}}"#);
        assert_eq!(read(&none).unwrap().plate, None);
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        for (payload, field) in [
            (
                format!(r#"{{"id":"c","sale_id":"{SALE}","plate":"A1","by":"anna"}}"#),
                "plate",
            ),
            (
                r#"{"id":"c","sale_id":"x","by":"anna"}"#.to_string(),
                "sale_id",
            ),
            (format!(r#"{{"id":"c","sale_id":"{SALE}","by":""}}"#), "by"),
            (
                format!(r#"{{"id":"c","sale_id":"{SALE}","by":"a\nb"}}"#),
                "by",
            ),
        ] {
            match read(&payload) {
                Err(CommandError::BadValue { field: f, .. }) => assert_eq!(f, field, "{payload}"),
                other => panic!("{payload}: {other:?}"),
            }
        }
        assert!(read(&format!(r#"{{"id":"c","sale_id":"{SALE}"}}"#)).is_err());
    }

    #[test]
    fn hq_cannot_send_it() {
        use uplink::CommandSet;
        let payload = format!(r#"{{"id":"c","sale_id":"{SALE}","by":"anna"}}"#);
        assert!(crate::StationCommands
            .check("staff_correction", &payload)
            .is_none());
        assert!(crate::StationCommands::local("staff_correction", &payload).is_ok());
    }
}
