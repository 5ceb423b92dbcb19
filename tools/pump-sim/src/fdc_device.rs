//! A simulated forecourt controller with the IFSF POS-FDC interface, without I/O: the wire face
//! of a simulated [`Forecourt`] (pumps numbered as the scenario's fuelling points). It answers
//! `LogOn`, `GetFuelSaleTrxDetails` / `GetAvailableFuelSaleTrxs` (every sale it holds) and
//! `GetFPState`, and notifies each sale (`FuelSaleTrx`, again when the POS clears it) and each
//! fuelling point's state change to a client that logged on. Any request that would change a
//! sale (`LockFuelSaleTrx`, `UnlockFuelSaleTrx`, `ClearFuelSaleTrx`, or one it does not know) is
//! kept in [`FdcDevice::forbidden`]: a watch-only client must never send one.

use ifsf_fdc::{encode_frame, FrameDecoder, HeaderVariant};
use ifsf_protocol::TransactionState;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::forecourt::{Change, Forecourt, Transaction};
use crate::pump::SimRecord;
use crate::schedule::CustomerProfile;
use crate::Scenario;

#[derive(Debug, Clone)]
pub struct FdcDeviceOptions {
    pub header: HeaderVariant,
    pub passphrase: String,
    /// The simulated POS clears a payable sale this long after it completed.
    pub clear_after_s: f64,
    /// Notifies nothing (a controller that tells only the POS that owns a sale): a client
    /// learns of sales by asking.
    pub quiet: bool,
}

impl Default for FdcDeviceOptions {
    fn default() -> Self {
        FdcDeviceOptions {
            header: HeaderVariant::LengthHashMd5,
            passphrase: "forecourt".into(),
            clear_after_s: 20.0,
            quiet: false,
        }
    }
}

/// The requests a watch-only client may make; anything else is forbidden.
const ALLOWED: [&str; 4] = [
    "LogOn",
    "GetFuelSaleTrxDetails",
    "GetAvailableFuelSaleTrxs",
    "GetFPState",
];

#[derive(Debug)]
pub struct FdcDevice {
    options: FdcDeviceOptions,
    forecourt: Forecourt,
    decoder: FrameDecoder,
    logged_on: bool,
    output: Vec<String>,
    forbidden: Vec<String>,
}

impl FdcDevice {
    pub fn new(
        scenario: &Scenario,
        options: &FdcDeviceOptions,
        random: Option<(u64, CustomerProfile)>,
    ) -> Self {
        FdcDevice {
            decoder: FrameDecoder::new(options.header, options.passphrase.as_bytes()),
            forecourt: Forecourt::new(scenario, u8::MAX, options.clear_after_s, random),
            options: options.clone(),
            logged_on: false,
            output: Vec::new(),
            forbidden: Vec::new(),
        }
    }

    pub fn points(&self) -> Vec<u8> {
        self.forecourt.points()
    }

    pub fn take_records(&mut self) -> Vec<SimRecord> {
        self.forecourt.take_records()
    }

    /// Every request received that a watch-only client must never make.
    pub fn forbidden(&self) -> &[String] {
        &self.forbidden
    }

    pub fn connected(&mut self) {
        self.disconnected();
    }

    pub fn disconnected(&mut self) {
        self.logged_on = false;
        self.output.clear();
        self.decoder = FrameDecoder::new(self.options.header, self.options.passphrase.as_bytes());
    }

    /// Framed messages to send since the last call.
    pub fn take_frames(&mut self) -> Vec<Vec<u8>> {
        let (header, passphrase) = (self.options.header, self.options.passphrase.as_bytes());
        std::mem::take(&mut self.output)
            .iter()
            .filter_map(|xml| encode_frame(header, xml.as_bytes(), passphrase).ok())
            .collect()
    }

    /// Bytes from the client; a bad frame (wrong header, wrong passphrase) is an error.
    pub fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.decoder.push(bytes);
        while let Some(frame) = self.decoder.next_xml() {
            let xml = frame.map_err(|e| e.to_string())?;
            self.on_xml(&String::from_utf8_lossy(&xml));
        }
        Ok(())
    }

    fn on_xml(&mut self, xml: &str) {
        let Some((root, attributes)) = root_element(xml) else {
            return;
        };
        if root != "ServiceRequest" {
            return; // POS_Ready and other POS messages want no answer.
        }
        let attribute = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let (kind, id) = (attribute("RequestType"), attribute("RequestID"));
        if !ALLOWED.contains(&kind) {
            self.forbidden.push(xml.to_owned());
            self.respond(kind, id, "NotAllowed", "");
            return;
        }
        if kind == "LogOn" {
            self.logged_on = true;
            self.respond(kind, id, "Success", "");
        } else if !self.logged_on {
            self.respond(kind, id, "AuthentificationError", "");
        } else if kind == "GetFPState" {
            self.respond(kind, id, "Success", "");
        } else {
            let sales: String = self
                .forecourt
                .transactions()
                .map(|(pump, t)| device_class(pump, t))
                .collect();
            self.respond(kind, id, "Success", &sales);
        }
    }

    fn respond(&mut self, kind: &str, id: &str, result: &str, devices: &str) {
        self.output.push(format!(
            r#"<ServiceResponse RequestType="{}" ApplicationSender="FDC" WorkstationID="FDC" RequestID="{}" OverallResult="{result}"><FDCdata>{devices}</FDCdata></ServiceResponse>"#,
            escape(kind),
            escape(id)
        ));
    }

    /// Moves the forecourt on and notifies what changed.
    pub fn tick(&mut self, now_s: f64) {
        for change in self.forecourt.tick(now_s) {
            if !self.logged_on || self.options.quiet {
                continue;
            }
            match change {
                Change::Transaction { point, seq } => {
                    if let Some(t) = self.forecourt.transaction(point, seq) {
                        let sale = device_class(point, t);
                        self.output.push(format!(
                            r#"<FDCMessage MessageType="FuelSaleTrx" ApplicationSender="FDC"><FDCdata>{sale}</FDCdata></FDCMessage>"#
                        ));
                    }
                }
                Change::State { point } => {
                    let (state, nozzle) = match self.forecourt.status(point) {
                        Some((Some(nozzle), _)) => {
                            ("FDC_FUELLING", format!(r#" NozzleNo="{nozzle}""#))
                        }
                        _ => ("FDC_READY", String::new()),
                    };
                    self.output.push(format!(
                        r#"<FDCMessage MessageType="FPStateChange" ApplicationSender="FDC"><FDCdata><DeviceClass Type="FP" DeviceID="{point}" PumpNo="{point}"{nozzle}><DeviceState>{state}</DeviceState></DeviceClass></FDCdata></FDCMessage>"#
                    ));
                }
                Change::Running { .. } => {}
            }
        }
    }
}

/// A held sale as the controller describes it.
fn device_class(pump: u8, t: &Transaction) -> String {
    let state = match t.state {
        TransactionState::Payable => "Payable",
        TransactionState::Locked => "Locked",
        TransactionState::Cleared => "Cleared",
        TransactionState::Other(_) => "Unknown",
    };
    format!(
        r#"<DeviceClass Type="FP" DeviceID="{pump}" PumpNo="{pump}" NozzleNo="{}" TransactionSeqNo="{}"><State>{state}</State><ProductNo>{}</ProductNo><Amount>{}</Amount><Volume>{}</Volume><UnitPrice>{}</UnitPrice></DeviceClass>"#,
        t.nozzle, t.seq, t.product, t.amount, t.volume, t.price
    )
}

/// The first element's name and attributes, if the XML has one.
fn root_element(xml: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let attributes = e
                    .attributes()
                    .flatten()
                    .map(|a| {
                        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                        let value = a
                            .unescape_value()
                            .map(|v| v.into_owned())
                            .unwrap_or_default();
                        (key, value)
                    })
                    .collect();
                return Some((name, attributes));
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ifsf_fdc::{read_inbound, service_request, Client, Inbound, RequestKind};

    fn device() -> FdcDevice {
        let scenario = Scenario::from_toml(
            "[[pump]]\nfp = 3\nprices = [\"7.99\"]\n[[car]]\nfp = 3\n[car.fill]\nnozzle = 1\nstart_s = 1.0\nend_s = 5.0\nvolume = \"20.00\"\n",
        )
        .unwrap();
        let options = FdcDeviceOptions {
            header: HeaderVariant::LengthZero,
            ..FdcDeviceOptions::default()
        };
        FdcDevice::new(&scenario, &options, None)
    }

    fn send(d: &mut FdcDevice, xml: &str) {
        let frame = encode_frame(HeaderVariant::LengthZero, xml.as_bytes(), b"").unwrap();
        d.on_bytes(&frame).unwrap();
    }

    fn replies(d: &mut FdcDevice) -> Vec<Inbound> {
        let mut decoder = FrameDecoder::new(HeaderVariant::LengthZero, b"");
        for frame in d.take_frames() {
            decoder.push(&frame);
        }
        std::iter::from_fn(|| decoder.next_xml())
            .map(|xml| read_inbound(&String::from_utf8(xml.unwrap()).unwrap()).unwrap())
            .collect()
    }

    fn request(kind: RequestKind, id: u32) -> String {
        let client = Client {
            application_sender: "FCAGENT".into(),
            workstation_id: "FCAGENT".into(),
        };
        service_request(&client, kind, id, "2026-12-06T08:00:00").unwrap()
    }

    #[test]
    fn after_logon_sales_are_notified_and_held_ones_answered() {
        let mut d = device();
        send(&mut d, &request(RequestKind::LogOn, 1));
        let Inbound::Response(logon) = &replies(&mut d)[0] else {
            panic!("no logon response")
        };
        assert!(logon.success);
        for s in 1..=6 {
            d.tick(f64::from(s));
        }
        let notified = replies(&mut d);
        let sale = notified
            .iter()
            .find_map(|m| match m {
                Inbound::FuelSale { sales, .. } => Some(sales[0].clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!((sale.pump, sale.seq), (3, 1));
        assert_eq!(sale.amount.to_string(), "159.80");
        let all = RequestKind::GetFuelSaleTrxDetails {
            pump: None,
            seq: None,
        };
        send(&mut d, &request(all, 2));
        let Inbound::Response(details) = &replies(&mut d)[0] else {
            panic!("no details")
        };
        assert_eq!(details.request_id, "2");
        assert_eq!(details.sales.len(), 1);
        assert!(d.forbidden().is_empty());
    }

    #[test]
    fn a_clear_is_kept_and_refused() {
        let mut d = device();
        let clear = r#"<ServiceRequest RequestType="ClearFuelSaleTrx" ApplicationSender="X" WorkstationID="X" RequestID="5"><POSdata/></ServiceRequest>"#;
        send(&mut d, clear);
        assert_eq!(d.forbidden().len(), 1);
        let Inbound::Response(answer) = &replies(&mut d)[0] else {
            panic!("no answer")
        };
        assert!(!answer.success);
    }
}
