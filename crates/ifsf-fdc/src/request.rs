//! What a watch-only client sends: `ServiceRequest`s to log on and to ask for the sales the
//! controller holds, and the `POS_Ready` heartbeat (every 12-15 s; controllers drop a client
//! after 30-45 s of silence). Written with quick-xml's serializer, so every value is escaped.
//!
//! Only requests that change nothing at the controller exist here: there is no way to build a
//! `LockFuelSaleTrx`, `UnlockFuelSaleTrx` or `ClearFuelSaleTrx`.
//!
//! *Unverified:* whether a controller needs `POSTimeStamp` in every request (sent here, in the
//! form the caller gives) and accepts `InterfaceVersion` 01.00 from a client it has not seen.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("could not write the XML: {0}")]
    Xml(String),
}

/// Who the client says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub application_sender: String,
    pub workstation_id: String,
}

/// The requests a watch-only client may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    LogOn,
    /// Which sales the controller holds (reconcile after a reconnect).
    GetAvailableFuelSaleTrxs,
    /// The details of sales: `None` asks for every pump / every sequence number (`*`).
    GetFuelSaleTrxDetails {
        pump: Option<u32>,
        seq: Option<u32>,
    },
    GetFPState,
}

impl RequestKind {
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::LogOn => "LogOn",
            RequestKind::GetAvailableFuelSaleTrxs => "GetAvailableFuelSaleTrxs",
            RequestKind::GetFuelSaleTrxDetails { .. } => "GetFuelSaleTrxDetails",
            RequestKind::GetFPState => "GetFPState",
        }
    }
}

/// The interface version a client logs on with.
const INTERFACE_VERSION: &str = "01.00";

/// A request's XML. `request_id` pairs it with its response; `pos_time` is the client's clock as
/// the controller expects it (e.g. `2026-12-06T08:00:00`).
pub fn service_request(
    client: &Client,
    kind: RequestKind,
    request_id: u32,
    pos_time: &str,
) -> Result<String, RequestError> {
    let all = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let device = match kind {
        RequestKind::LogOn => None,
        RequestKind::GetAvailableFuelSaleTrxs | RequestKind::GetFPState => Some(DeviceXml {
            kind: "FP",
            device_id: "*".into(),
            seq: None,
        }),
        RequestKind::GetFuelSaleTrxDetails { pump, seq } => Some(DeviceXml {
            kind: "FP",
            device_id: all(pump),
            seq: Some(all(seq)),
        }),
    };
    let request = ServiceRequestXml {
        request_type: kind.name(),
        sender: &client.application_sender,
        workstation: &client.workstation_id,
        request_id,
        data: PosDataXml {
            time: pos_time,
            interface_version: (kind == RequestKind::LogOn).then_some(INTERFACE_VERSION),
            device,
        },
    };
    quick_xml::se::to_string(&request).map_err(|e| RequestError::Xml(e.to_string()))
}

/// The client's heartbeat.
pub fn pos_ready(client: &Client) -> Result<String, RequestError> {
    let message = PosMessageXml {
        message_type: "POS_Ready",
        sender: &client.application_sender,
        workstation: &client.workstation_id,
    };
    quick_xml::se::to_string(&message).map_err(|e| RequestError::Xml(e.to_string()))
}

#[derive(Serialize)]
#[serde(rename = "ServiceRequest")]
struct ServiceRequestXml<'a> {
    #[serde(rename = "@RequestType")]
    request_type: &'a str,
    #[serde(rename = "@ApplicationSender")]
    sender: &'a str,
    #[serde(rename = "@WorkstationID")]
    workstation: &'a str,
    #[serde(rename = "@RequestID")]
    request_id: u32,
    #[serde(rename = "POSdata")]
    data: PosDataXml<'a>,
}

#[derive(Serialize)]
struct PosDataXml<'a> {
    #[serde(rename = "POSTimeStamp")]
    time: &'a str,
    #[serde(rename = "InterfaceVersion", skip_serializing_if = "Option::is_none")]
    interface_version: Option<&'a str>,
    #[serde(rename = "DeviceClass", skip_serializing_if = "Option::is_none")]
    device: Option<DeviceXml>,
}

#[derive(Serialize)]
struct DeviceXml {
    #[serde(rename = "@Type")]
    kind: &'static str,
    #[serde(rename = "@DeviceID")]
    device_id: String,
    #[serde(rename = "@TransactionSeqNo", skip_serializing_if = "Option::is_none")]
    seq: Option<String>,
}

#[derive(Serialize)]
#[serde(rename = "POSMessage")]
struct PosMessageXml<'a> {
    #[serde(rename = "@MessageType")]
    message_type: &'a str,
    #[serde(rename = "@ApplicationSender")]
    sender: &'a str,
    #[serde(rename = "@WorkstationID")]
    workstation: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            application_sender: "FCAGENT".into(),
            workstation_id: "AGENT1".into(),
        }
    }

    #[test]
    fn log_on_carries_the_interface_version() {
        assert_eq!(
            service_request(&client(), RequestKind::LogOn, 1, "2026-12-06T08:00:00").unwrap(),
            "<ServiceRequest RequestType=\"LogOn\" ApplicationSender=\"FCAGENT\" \
             WorkstationID=\"AGENT1\" RequestID=\"1\"><POSdata><POSTimeStamp>2026-12-06T08:00:00\
             </POSTimeStamp><InterfaceVersion>01.00</InterfaceVersion></POSdata></ServiceRequest>"
        );
    }

    #[test]
    fn sale_details_ask_for_every_pump_and_sale_or_one() {
        let every = service_request(
            &client(),
            RequestKind::GetFuelSaleTrxDetails {
                pump: None,
                seq: None,
            },
            7,
            "t",
        )
        .unwrap();
        assert!(
            every.contains(r#"<DeviceClass Type="FP" DeviceID="*" TransactionSeqNo="*"/>"#),
            "{every}"
        );
        let one = service_request(
            &client(),
            RequestKind::GetFuelSaleTrxDetails {
                pump: Some(4),
                seq: Some(3258),
            },
            8,
            "t",
        )
        .unwrap();
        assert!(
            one.contains(r#"DeviceID="4" TransactionSeqNo="3258""#),
            "{one}"
        );
    }

    #[test]
    fn names_from_the_configuration_are_escaped() {
        let odd = Client {
            application_sender: "A\"<&>".into(),
            workstation_id: "W".into(),
        };
        let xml = pos_ready(&odd).unwrap();
        assert!(
            xml.contains("ApplicationSender=\"A&quot;&lt;&amp;&gt;\""),
            "{xml}"
        );
    }

    #[test]
    fn no_request_a_watch_only_client_can_make_changes_a_sale() {
        for kind in [
            RequestKind::LogOn,
            RequestKind::GetAvailableFuelSaleTrxs,
            RequestKind::GetFuelSaleTrxDetails {
                pump: None,
                seq: None,
            },
            RequestKind::GetFPState,
        ] {
            let xml = service_request(&client(), kind, 1, "t").unwrap();
            for forbidden in ["Lock", "Clear", "Authori", "Release"] {
                assert!(
                    !xml.contains(forbidden),
                    "{kind:?} mentions {forbidden}: {xml}"
                );
            }
        }
    }
}
