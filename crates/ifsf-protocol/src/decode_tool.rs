//! The field decoder behind `forecourt-agent ifsf decode`: IFSF over TCP/IP messages as JSON
//! lines, from hex lines or from a pcap capture of the station LAN. Never panics on bad input:
//! what cannot be read becomes an object with an `error`.
//!
//! Hex input: each line holds whole messages (one TCP payload, as Wireshark copies it), bytes
//! as hex separated by spaces, commas or nothing, a `0x` prefix per byte allowed; empty lines
//! and lines starting with `#` are skipped.

use std::io::{self, BufRead, Write};

use forecourt_events::hex_capture::{capture_lines, to_hex, CaptureLine};
use serde_json::{json, Map, Value};

use crate::capture::{read_pcap, CaptureEvent, Flow};
use crate::fuelling_point::{fp_of_db_address, FpStatus};
use crate::message::{Message, MessageCode, MessageKind};
use crate::transaction::{TransactionAddress, TransactionRecord, TransactionState};
use crate::MessageDecoder;

/// Decodes hex lines from `input` into JSON lines on `out`.
pub fn decode_hex_lines(input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    for line in capture_lines(input) {
        let (line_no, line) = line?;
        let bytes = match line {
            CaptureLine::Bytes(bytes) => bytes,
            CaptureLine::Unreadable(why) => {
                writeln!(out, "{}", json!({"line": line_no, "error": why}))?;
                continue;
            }
        };
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let Some((decoded, used)) = Message::decode(rest) else {
                let error = format!("{} bytes left over: not a whole message", rest.len());
                writeln!(out, "{}", json!({"line": line_no, "error": error}))?;
                break;
            };
            let mut object = describe(decoded);
            object.insert("line".into(), json!(line_no));
            writeln!(out, "{}", Value::Object(object))?;
            rest = &rest[used..];
        }
    }
    Ok(())
}

/// Decodes the IFSF messages of every TCP stream in the pcap file `file` into JSON lines on
/// `out`, in capture order, each with its `flow` and capture time `t`.
pub fn decode_pcap(file: &[u8], out: &mut impl Write) -> io::Result<()> {
    let events = match read_pcap(file) {
        Ok(events) => events,
        Err(e) => return writeln!(out, "{}", json!({"error": e.to_string()})),
    };
    let mut decoders: std::collections::HashMap<Flow, MessageDecoder> = Default::default();
    for event in events {
        match event {
            CaptureEvent::Bytes { flow, t_ms, bytes } => {
                let decoder = decoders.entry(flow).or_default();
                decoder.push(&bytes);
                while let Some(decoded) = decoder.next_message() {
                    let mut object = describe(decoded);
                    object.insert("t".into(), json!(t_ms));
                    object.insert("flow".into(), json!(flow.to_string()));
                    writeln!(out, "{}", Value::Object(object))?;
                }
            }
            CaptureEvent::Hole {
                flow,
                t_ms,
                missing,
            } => {
                decoders.insert(flow, MessageDecoder::new());
                let error = format!("{missing} bytes not captured: messages around them are lost");
                writeln!(
                    out,
                    "{}",
                    json!({"t": t_ms, "flow": flow.to_string(), "error": error})
                )?;
            }
            CaptureEvent::Skipped { .. } => {}
        }
    }
    for (flow, decoder) in decoders {
        if decoder.buffered() > 0 {
            let error = format!(
                "{} bytes at the end: not a whole message",
                decoder.buffered()
            );
            writeln!(out, "{}", json!({"flow": flow.to_string(), "error": error}))?;
        }
    }
    Ok(())
}

/// One message as a JSON object: header fields, then what its data means where this crate
/// knows (a fuelling point's state, a transaction), else its data items or raw data.
pub fn describe(decoded: Result<Message, crate::MessageError>) -> Map<String, Value> {
    let message = match decoded {
        Ok(message) => message,
        Err(e) => {
            let mut object = Map::new();
            object.insert("error".into(), json!(e.to_string()));
            return object;
        }
    };
    let mut object = Map::new();
    object.insert("from".into(), json!(message.originator.to_string()));
    object.insert("to".into(), json!(message.recipient.to_string()));
    object.insert("kind".into(), json!(kind_name(&message)));
    object.insert("token".into(), json!(message.token));
    object.insert("db".into(), json!(to_hex(&message.db_address)));
    if message.kind == MessageKind::Write {
        object.insert(
            "warning".into(),
            json!("a write: how a device is told to lock, clear or authorise"),
        );
    }
    if !message.kind.carries_items() || message.code != MessageCode::Application {
        object.insert("data".into(), json!(to_hex(&message.data)));
        if message.kind == MessageKind::Read {
            object.insert("wanted_ids".into(), json!(message.data));
        }
        return object;
    }
    let items = match message.items() {
        Ok(items) => items,
        Err(e) => {
            object.insert("error".into(), json!(e.to_string()));
            object.insert("data".into(), json!(to_hex(&message.data)));
            return object;
        }
    };
    if let Some(fp) = fp_of_db_address(&message.db_address) {
        object.insert("fp".into(), json!(fp));
        match FpStatus::from_items(&items) {
            Ok(status) => describe_status(&status, &mut object),
            Err(e) => drop(object.insert("error".into(), json!(e.to_string()))),
        }
    } else if let Ok(address) = TransactionAddress::from_db_address(&message.db_address) {
        object.insert("fp".into(), json!(address.fp));
        object.insert("seq".into(), json!(address.seq));
        match TransactionRecord::from_items(&items) {
            Ok(record) => describe_transaction(&record, &mut object),
            Err(e) => drop(object.insert("error".into(), json!(e.to_string()))),
        }
    }
    let listed: Vec<Value> = items
        .iter()
        .map(|item| json!({"id": item.id, "value": to_hex(item.value)}))
        .collect();
    object.insert("items".into(), Value::Array(listed));
    object
}

fn describe_status(status: &FpStatus, object: &mut Map<String, Value>) {
    if let Some(state) = status.state {
        object.insert("state".into(), json!(format!("{state:?}").to_lowercase()));
    }
    if let Some(mask) = status.nozzles_out {
        object.insert("nozzles_out".into(), json!(mask));
    }
    if let Some(nozzle) = status.current_nozzle {
        object.insert("current_nozzle".into(), json!(nozzle));
    }
    if let Some(amount) = status.current_amount {
        object.insert("current_amount".into(), json!(amount.to_string()));
    }
    if let Some(volume) = status.current_volume {
        object.insert("current_volume".into(), json!(volume.to_string()));
    }
    if let Some(seq) = status.transaction_seq {
        object.insert("latest_seq".into(), json!(seq));
    }
}

fn describe_transaction(record: &TransactionRecord, object: &mut Map<String, Value>) {
    if let Some(amount) = record.amount {
        object.insert("amount".into(), json!(amount.to_string()));
    }
    if let Some(volume) = record.volume {
        object.insert("volume".into(), json!(volume.to_string()));
    }
    if let Some(price) = record.unit_price {
        object.insert("price".into(), json!(price.to_string()));
    }
    if let Some(nozzle) = record.logical_nozzle {
        object.insert("nozzle".into(), json!(nozzle));
    }
    if let Some(product) = record.product {
        object.insert("product".into(), json!(product));
    }
    if let Some(state) = record.state {
        let name = match state {
            TransactionState::Cleared => "cleared".to_owned(),
            TransactionState::Payable => "payable".to_owned(),
            TransactionState::Locked => "locked".to_owned(),
            TransactionState::Other(byte) => format!("other({byte})"),
        };
        object.insert("state".into(), json!(name));
    }
}

fn kind_name(message: &Message) -> &'static str {
    if message.code == MessageCode::Heartbeat {
        return "heartbeat";
    }
    match message.kind {
        MessageKind::Read => "read",
        MessageKind::Answer => "answer",
        MessageKind::Write => "write",
        MessageKind::UnsolicitedWithAck => "unsolicited_with_ack",
        MessageKind::UnsolicitedNoAck => "unsolicited",
        MessageKind::Ack => "ack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::write_pcap;
    use crate::{DataItem, NodeAddress};

    fn sale_message() -> Message {
        let record = TransactionRecord {
            seq: Some(42),
            amount: Some("329.75".parse().unwrap()),
            volume: Some("41.27".parse().unwrap()),
            unit_price: Some("7.99".parse().unwrap()),
            logical_nozzle: Some(2),
            product: Some(95),
            state: Some(TransactionState::Payable),
        };
        let pairs = record.to_items().unwrap();
        let items: Vec<DataItem<'_>> = pairs
            .iter()
            .map(|(id, value)| DataItem { id: *id, value })
            .collect();
        Message::with_items(
            NodeAddress::new(2, 9),
            NodeAddress::new(1, 1),
            MessageKind::UnsolicitedNoAck,
            3,
            &[0x21, 0x21, 0x00, 0x42],
            &items,
        )
        .unwrap()
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn hex_lines_give_the_sale_and_errors_per_line() {
        let sale = to_hex(&sale_message().encode().unwrap());
        // "aé0": four bytes of text, whose second pair cuts 'é' in two (it used to panic).
        let input = format!("# a capture\n{sale}\n\nzz\n01 01 02\naé0\n");
        let mut out = Vec::new();
        decode_hex_lines(input.as_bytes(), &mut out).unwrap();
        let got = lines(&out);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0]["line"], 2);
        assert_eq!(got[0]["from"], "1.1");
        assert_eq!(got[0]["kind"], "unsolicited");
        assert_eq!(
            (got[0]["fp"].clone(), got[0]["seq"].clone()),
            (json!(1), json!(42))
        );
        assert_eq!(got[0]["volume"], "41.27");
        assert_eq!(got[0]["amount"], "329.75");
        assert_eq!(got[0]["state"], "payable");
        assert!(got[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a hex digit"));
        assert!(got[2]["error"].as_str().unwrap().contains("left over"));
        assert_eq!(got[3]["line"], 6);
        assert!(got[3]["error"]
            .as_str()
            .unwrap()
            .contains("not a hex digit"));
    }

    #[test]
    fn a_capture_gives_the_messages_of_each_flow_across_segments() {
        let flow = Flow {
            from: "192.168.1.21:3486".parse().unwrap(),
            to: "192.168.1.5:50123".parse().unwrap(),
        };
        let bytes = sale_message().encode().unwrap();
        let (a, b) = bytes.split_at(5);
        let file = write_pcap(&[
            (flow, 7, true, b""),
            (flow, 8, false, a),
            (flow, 8 + a.len() as u32, false, b),
        ]);
        let mut out = Vec::new();
        decode_pcap(&file, &mut out).unwrap();
        let got = lines(&out);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["flow"], "192.168.1.21:3486 -> 192.168.1.5:50123");
        assert_eq!(got[0]["amount"], "329.75");
        let mut out = Vec::new();
        decode_pcap(b"not a capture at all, longer than a header", &mut out).unwrap();
        assert!(lines(&out)[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a pcap"));
    }

    #[test]
    fn a_write_is_flagged() {
        let write = Message::with_items(
            NodeAddress::new(1, 1),
            NodeAddress::new(2, 3),
            MessageKind::Write,
            1,
            &[0x21, 0x21, 0x00, 0x01],
            &[DataItem { id: 32, value: &[] }],
        )
        .unwrap();
        let object = describe(Ok(write));
        assert_eq!(object["kind"], "write");
        assert!(object.contains_key("warning"));
    }
}
