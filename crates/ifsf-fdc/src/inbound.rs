//! What the controller sends: unsolicited `FDCMessage`s (a sale, a fuelling point's state, a
//! heartbeat...) and `ServiceResponse`s to the client's requests, read with quick-xml into
//! serde types and then checked into [`FuelSaleTrx`]. Elements and attributes this crate does not
//! use are passed over: controllers add their own.

use forecourt_events::Decimal;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Deserialize;

/// `FDCMessage` types this crate reads.
pub const FUEL_SALE_TRX: &str = "FuelSaleTrx";
pub const FP_STATE_CHANGE: &str = "FPStateChange";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("no root element")]
    Empty,
    #[error("root element <{0}> is not an FDC message or a service response")]
    UnknownRoot(String),
    #[error("{message}: no <DeviceClass Type=\"FP\"> with a sale")]
    NoSale { message: String },
    #[error("{field} {value:?} is not a {wanted}")]
    BadField {
        field: &'static str,
        value: String,
        wanted: &'static str,
    },
    #[error("{0} missing")]
    Missing(&'static str),
}

/// One message from the controller.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `FDCMessage MessageType="FuelSaleTrx"`: a sale as the controller holds it.
    FuelSale {
        sender: String,
        sales: Vec<FuelSaleTrx>,
    },
    /// `FDCMessage MessageType="FPStateChange"`: fuelling points' new states.
    FpState {
        sender: String,
        points: Vec<FpStateChange>,
    },
    /// Any other `FDCMessage` (heartbeats, price changes...), by its type.
    Notice {
        message_type: String,
        sender: String,
    },
    /// The answer to a request: its type, id, whether it succeeded, and the sales it carries
    /// (`GetFuelSaleTrxDetails`).
    Response(ServiceResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceResponse {
    pub request_type: String,
    pub request_id: String,
    /// `OverallResult="Success"`.
    pub success: bool,
    pub overall_result: String,
    pub sales: Vec<FuelSaleTrx>,
}

/// A fuelling point's new state (`DeviceClass Type="FP"` with a `DeviceState`).
///
/// *Unverified* (not in the spec file's facts): the state names (`FDC_READY`, `FDC_CALLING`,
/// `FDC_AUTHORISED`, `FDC_STARTED`, `FDC_FUELLING`, `FDC_SUSPENDED_STARTED`,
/// `FDC_SUSPENDED_FUELLING`, ...) and where the lifted nozzle is named (taken: a `NozzleNo`
/// attribute, as on a sale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpStateChange {
    pub device_id: u32,
    pub pump: u32,
    pub state: String,
    pub nozzle: Option<u32>,
}

impl FpStateChange {
    /// Whether a customer is at the point with a nozzle out (from calling to the end of a fill).
    pub fn nozzle_out(&self) -> bool {
        matches!(
            self.state.as_str(),
            "FDC_CALLING"
                | "FDC_AUTHORISED"
                | "FDC_STARTED"
                | "FDC_FUELLING"
                | "FDC_SUSPENDED_STARTED"
                | "FDC_SUSPENDED_FUELLING"
        )
    }
}

/// A sale's state at the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrxState {
    Payable,
    Locked,
    Cleared,
    Other(String),
}

impl TrxState {
    fn from_text(text: &str) -> Self {
        match text {
            "Payable" => TrxState::Payable,
            "Locked" => TrxState::Locked,
            "Cleared" => TrxState::Cleared,
            other => TrxState::Other(other.to_string()),
        }
    }
}

/// A sale (`DeviceClass Type="FP"` with a transaction): the controller's key for it is the pump
/// and `TransactionSeqNo` (with the end time, where the sequence wraps).
#[derive(Debug, Clone, PartialEq)]
pub struct FuelSaleTrx {
    pub device_id: u32,
    pub pump: u32,
    pub nozzle: u32,
    pub seq: u32,
    pub state: TrxState,
    pub product: Option<u32>,
    pub amount: Decimal,
    pub volume: Decimal,
    pub unit_price: Decimal,
    /// The controlling application that locked it, if one did.
    pub locked_by: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub error_code: Option<String>,
}

/// Reads one message's XML.
pub fn read(xml: &str) -> Result<Inbound, InboundError> {
    match root_name(xml)?.as_str() {
        "FDCMessage" => {
            let message: FdcMessageXml = from_xml(xml)?;
            if message.message_type == FUEL_SALE_TRX {
                let sales = sales_of(message.data.iter().flat_map(|d| &d.devices))?;
                if sales.is_empty() {
                    return Err(InboundError::NoSale {
                        message: message.message_type,
                    });
                }
                Ok(Inbound::FuelSale {
                    sender: message.sender,
                    sales,
                })
            } else if message.message_type == FP_STATE_CHANGE {
                let points = message
                    .data
                    .iter()
                    .flat_map(|d| &d.devices)
                    .filter(|d| d.kind == "FP" && d.device_state.is_some())
                    .map(FpStateChange::from_xml)
                    .collect::<Result<_, _>>()?;
                Ok(Inbound::FpState {
                    sender: message.sender,
                    points,
                })
            } else {
                Ok(Inbound::Notice {
                    message_type: message.message_type,
                    sender: message.sender,
                })
            }
        }
        "ServiceResponse" => {
            let response: ServiceResponseXml = from_xml(xml)?;
            let sales = sales_of(response.data.iter().flat_map(|d| &d.devices))?;
            Ok(Inbound::Response(ServiceResponse {
                success: response.overall_result == "Success",
                request_type: response.request_type,
                request_id: response.request_id,
                overall_result: response.overall_result,
                sales,
            }))
        }
        other => Err(InboundError::UnknownRoot(other.to_string())),
    }
}

impl Inbound {
    /// [`read`] on bytes (the XML is UTF-8).
    pub fn from_bytes(xml: &[u8]) -> Result<Inbound, InboundError> {
        let text = std::str::from_utf8(xml).map_err(|e| InboundError::Xml(e.to_string()))?;
        read(text)
    }
}

/// The name of the first element, found by the parser.
fn root_name(xml: &str) -> Result<String, InboundError> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return Ok(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(Event::Eof) => return Err(InboundError::Empty),
            Ok(_) => {}
            Err(e) => return Err(InboundError::Xml(e.to_string())),
        }
    }
}

fn from_xml<'de, T: Deserialize<'de>>(xml: &'de str) -> Result<T, InboundError> {
    quick_xml::de::from_str(xml).map_err(|e| InboundError::Xml(e.to_string()))
}

fn sales_of<'a>(
    devices: impl Iterator<Item = &'a DeviceClassXml>,
) -> Result<Vec<FuelSaleTrx>, InboundError> {
    devices
        .filter(|d| d.kind == "FP" && d.seq.is_some())
        .map(FuelSaleTrx::from_xml)
        .collect()
}

impl FpStateChange {
    fn from_xml(d: &DeviceClassXml) -> Result<Self, InboundError> {
        Ok(FpStateChange {
            device_id: number("DeviceID", d.device_id.as_deref())?,
            pump: number("PumpNo", d.pump.as_deref().or(d.device_id.as_deref()))?,
            state: text(&d.device_state).ok_or(InboundError::Missing("DeviceState"))?,
            nozzle: d
                .nozzle
                .as_deref()
                .map(|n| number("NozzleNo", Some(n)))
                .transpose()?,
        })
    }
}

impl FuelSaleTrx {
    fn from_xml(d: &DeviceClassXml) -> Result<Self, InboundError> {
        Ok(FuelSaleTrx {
            device_id: number("DeviceID", d.device_id.as_deref())?,
            pump: number("PumpNo", d.pump.as_deref())?,
            nozzle: number("NozzleNo", d.nozzle.as_deref())?,
            seq: number("TransactionSeqNo", d.seq.as_deref())?,
            state: TrxState::from_text(
                d.state
                    .as_deref()
                    .map(str::trim)
                    .ok_or(InboundError::Missing("State"))?,
            ),
            product: d
                .product
                .as_deref()
                .map(|p| number("ProductNo", Some(p)))
                .transpose()?,
            amount: decimal("Amount", d.amount.as_deref())?,
            volume: decimal("Volume", d.volume.as_deref())?,
            unit_price: decimal("UnitPrice", d.unit_price.as_deref())?,
            locked_by: text(&d.locking_sender),
            start: text(&d.start),
            end: text(&d.end),
            error_code: text(&d.error_code),
        })
    }
}

fn number(field: &'static str, value: Option<&str>) -> Result<u32, InboundError> {
    let value = value.ok_or(InboundError::Missing(field))?.trim();
    value.parse().map_err(|_| InboundError::BadField {
        field,
        value: value.to_string(),
        wanted: "whole number",
    })
}

fn decimal(field: &'static str, value: Option<&str>) -> Result<Decimal, InboundError> {
    let value = value.ok_or(InboundError::Missing(field))?.trim();
    value.parse().map_err(|_| InboundError::BadField {
        field,
        value: value.to_string(),
        wanted: "decimal number",
    })
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[derive(Debug, Deserialize)]
struct FdcMessageXml {
    #[serde(rename = "@MessageType")]
    message_type: String,
    #[serde(rename = "@ApplicationSender", default)]
    sender: String,
    #[serde(rename = "FDCdata", default)]
    data: Vec<FdcDataXml>,
}

#[derive(Debug, Deserialize)]
struct ServiceResponseXml {
    #[serde(rename = "@RequestType", default)]
    request_type: String,
    #[serde(rename = "@RequestID", default)]
    request_id: String,
    #[serde(rename = "@OverallResult", default)]
    overall_result: String,
    #[serde(rename = "FDCdata", default)]
    data: Vec<FdcDataXml>,
}

#[derive(Debug, Deserialize)]
struct FdcDataXml {
    #[serde(rename = "DeviceClass", default)]
    devices: Vec<DeviceClassXml>,
}

#[derive(Debug, Deserialize)]
struct DeviceClassXml {
    #[serde(rename = "@Type", default)]
    kind: String,
    #[serde(rename = "@DeviceID")]
    device_id: Option<String>,
    #[serde(rename = "@PumpNo")]
    pump: Option<String>,
    #[serde(rename = "@NozzleNo")]
    nozzle: Option<String>,
    #[serde(rename = "@TransactionSeqNo")]
    seq: Option<String>,
    #[serde(rename = "State")]
    state: Option<String>,
    #[serde(rename = "ProductNo")]
    product: Option<String>,
    #[serde(rename = "Amount")]
    amount: Option<String>,
    #[serde(rename = "Volume")]
    volume: Option<String>,
    #[serde(rename = "UnitPrice")]
    unit_price: Option<String>,
    #[serde(rename = "LockingApplicationSender")]
    locking_sender: Option<String>,
    #[serde(rename = "StartTimeStamp")]
    start: Option<String>,
    #[serde(rename = "EndTimeStamp")]
    end: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
    #[serde(rename = "DeviceState")]
    device_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_change_names_the_point_its_state_and_nozzle() {
        let xml = r#"<FDCMessage MessageType="FPStateChange" ApplicationSender="FDC"><FDCdata><DeviceClass Type="FP" DeviceID="3" PumpNo="3" NozzleNo="2"><DeviceState>FDC_CALLING</DeviceState></DeviceClass></FDCdata></FDCMessage>"#;
        let Inbound::FpState { points, .. } = read(xml).unwrap() else {
            panic!("not a state change")
        };
        assert_eq!(
            points,
            [FpStateChange {
                device_id: 3,
                pump: 3,
                state: "FDC_CALLING".into(),
                nozzle: Some(2)
            }]
        );
        assert!(points[0].nozzle_out());
    }

    /// The notification quoted in the spec file, its elided tail closed.
    const REAL_NOTIFICATION: &str = r#"<FDCMessage MessageType="FuelSaleTrx" ApplicationSender="POS024"><FDCdata><DeviceClass Type="FP"
  DeviceID="4" PumpNo="4" NozzleNo="2" TransactionSeqNo="3258"><State>Locked</State>
  <ProductNo>2</ProductNo><Amount>1.04</Amount><Volume>0.345</Volume><UnitPrice>3</UnitPrice>
  <LockingApplicationSender>POS023</LockingApplicationSender></DeviceClass></FDCdata></FDCMessage>"#;

    #[test]
    fn the_real_notification_reads_as_its_sale() {
        let Inbound::FuelSale { sender, sales } = read(REAL_NOTIFICATION).unwrap() else {
            panic!("not a sale");
        };
        assert_eq!(sender, "POS024");
        assert_eq!(
            sales,
            [FuelSaleTrx {
                device_id: 4,
                pump: 4,
                nozzle: 2,
                seq: 3258,
                state: TrxState::Locked,
                product: Some(2),
                amount: Decimal::new(104, 2),
                volume: Decimal::new(345, 3),
                unit_price: Decimal::new(3, 0),
                locked_by: Some("POS023".into()),
                start: None,
                end: None,
                error_code: None,
            }]
        );
    }

    #[test]
    fn other_notices_and_responses_are_told_apart() {
        let state = r#"<?xml version="1.0" encoding="utf-8"?>
<FDCMessage MessageType="FPStateChange" ApplicationSender="FDC1" MessageID="7"><FDCdata>
<DeviceClass Type="FP" DeviceID="1" PumpNo="1"><DeviceState>FDC_FUELLING</DeviceState></DeviceClass>
</FDCdata></FDCMessage>"#;
        assert_eq!(
            read(state).unwrap(),
            Inbound::FpState {
                sender: "FDC1".into(),
                points: vec![FpStateChange {
                    device_id: 1,
                    pump: 1,
                    state: "FDC_FUELLING".into(),
                    nozzle: None
                }]
            }
        );
        let heartbeat = r#"<FDCMessage MessageType="FDC_Ready" ApplicationSender="FDC1"/>"#;
        assert_eq!(
            read(heartbeat).unwrap(),
            Inbound::Notice {
                message_type: "FDC_Ready".into(),
                sender: "FDC1".into()
            }
        );
        let response = r#"<ServiceResponse RequestType="GetFuelSaleTrxDetails" ApplicationSender="FCAGENT"
 WorkstationID="FCAGENT" RequestID="12" OverallResult="Success"><FDCdata><DeviceClass Type="FP"
 DeviceID="1" PumpNo="1" NozzleNo="1" TransactionSeqNo="41"><State>Payable</State>
<Amount>276.40</Amount><Volume>35.21</Volume><UnitPrice>7.85</UnitPrice>
<EndTimeStamp>2026-12-06T08:00:00</EndTimeStamp><VolumeProduct1>35.21</VolumeProduct1>
</DeviceClass></FDCdata></ServiceResponse>"#;
        let Inbound::Response(response) = read(response).unwrap() else {
            panic!("not a response");
        };
        assert!(response.success);
        assert_eq!(
            (response.request_type.as_str(), response.request_id.as_str()),
            ("GetFuelSaleTrxDetails", "12")
        );
        assert_eq!(response.sales.len(), 1);
        assert_eq!(response.sales[0].state, TrxState::Payable);
        assert_eq!(response.sales[0].amount, Decimal::new(27_640, 2));
        assert_eq!(
            response.sales[0].end.as_deref(),
            Some("2026-12-06T08:00:00")
        );
    }

    #[test]
    fn broken_messages_say_what_is_wrong() {
        assert!(matches!(read("<FDCMessage"), Err(InboundError::Xml(_))));
        assert_eq!(read(""), Err(InboundError::Empty));
        assert_eq!(
            read("<Other/>"),
            Err(InboundError::UnknownRoot("Other".into()))
        );
        assert_eq!(
            read(r#"<FDCMessage MessageType="FuelSaleTrx"><FDCdata/></FDCMessage>"#),
            Err(InboundError::NoSale {
                message: FUEL_SALE_TRX.into()
            })
        );
        let bad_amount = REAL_NOTIFICATION.replace("1.04", "1,04");
        assert_eq!(
            read(&bad_amount),
            Err(InboundError::BadField {
                field: "Amount",
                value: "1,04".into(),
                wanted: "decimal number"
            })
        );
        let no_volume = REAL_NOTIFICATION.replace("<Volume>0.345</Volume>", "");
        assert_eq!(read(&no_volume), Err(InboundError::Missing("Volume")));
    }
}
