//! Line-by-line decoder for captured DART frames, for engineers in the field: one hex frame per
//! line in, one JSON object per line out. Never panics on bad input: a line that is not a frame
//! becomes `{"line":N,"error":"..."}`. Numbers are raw wire integers (decimal places are pump
//! configuration, not on the wire); BCD fields are also given as their digit strings.
//!
//! Input: bytes as hex, separated by spaces, commas or nothing (`50 20 FA`, `5020FA`); a `0x`
//! prefix per byte is allowed. Empty lines and lines starting with `#` are skipped.

use std::io::{self, BufRead, Write};

pub use forecourt_events::hex_capture::parse_hex;
use forecourt_events::hex_capture::{capture_lines, to_hex, CaptureLine};
use serde_json::{json, Map, Value};

use crate::crc::crc16_arc;
use crate::line::{control_kind, is_data_control, is_valid_address, FrameKind, DLE, ETX, SF};
use crate::transaction::{
    parse_master_transactions, parse_pump_transactions, Command, MasterTransaction, PumpStatus,
    PumpTransaction,
};

/// Who sent the frames: decides whether DATA blocks hold DC (pump) or CD (master) transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pump,
    Master,
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pump" | "dc" => Ok(Direction::Pump),
            "master" | "cd" => Ok(Direction::Master),
            other => Err(format!("unknown direction {other:?}: pump or master")),
        }
    }
}

/// Reads hex frames from `input`, writes one JSON object per line to `out`. Only I/O errors of
/// `input`/`out` are returned; bad frames are reported in the output.
pub fn decode_lines(input: impl BufRead, from: Direction, out: &mut impl Write) -> io::Result<()> {
    for line in capture_lines(input) {
        let (line_no, line) = line?;
        let value = match line {
            CaptureLine::Bytes(bytes) => decode_frame(&bytes, from),
            CaptureLine::Unreadable(why) => Err(why),
        };
        let mut obj = match value {
            Ok(Value::Object(m)) => m,
            Ok(other) => Map::from_iter([("frame".to_string(), other)]),
            Err(e) => Map::from_iter([("error".to_string(), Value::from(e))]),
        };
        obj.insert("line".into(), Value::from(line_no));
        writeln!(out, "{}", Value::Object(obj))?;
    }
    Ok(())
}

/// One raw frame (exactly one, stop flag included) to its JSON description.
pub fn decode_frame(raw: &[u8], from: Direction) -> Result<Value, String> {
    if raw.len() < 3 {
        return Err(format!("{} bytes: a frame has at least 3", raw.len()));
    }
    if raw[raw.len() - 1] != SF {
        return Err("does not end with the stop flag FA".into());
    }
    let (addr, ctrl) = (raw[0], raw[1]);
    let mut obj = Map::new();
    obj.insert("address".into(), Value::from(format!("0x{addr:02X}")));
    obj.insert("address_valid".into(), Value::from(is_valid_address(addr)));
    obj.insert("tx".into(), Value::from(ctrl & 0x0F));
    if !is_data_control(ctrl) {
        let kind =
            control_kind(ctrl).ok_or_else(|| format!("unknown control byte 0x{ctrl:02X}"))?;
        if raw.len() != 3 {
            return Err(format!(
                "control frame of {} bytes: expected ADR CTL FA",
                raw.len()
            ));
        }
        let name = match kind {
            FrameKind::Poll => "poll",
            FrameKind::Ack { .. } => "ack",
            FrameKind::Nak { .. } => "nak",
            FrameKind::Eot { .. } => "eot",
            FrameKind::AckPoll { .. } => "ackpoll",
            FrameKind::Data { .. } => "data",
        };
        obj.insert("frame".into(), Value::from(name));
        return Ok(Value::Object(obj));
    }
    obj.insert("frame".into(), Value::from("data"));
    let n = raw.len();
    if n < 6 || raw[n - 2] != ETX {
        return Err("DATA frame must end with ETX 03 FA and hold a CRC".into());
    }
    let mut body = vec![addr, ctrl];
    let stuffed = &raw[2..n - 2];
    let mut i = 0;
    while i < stuffed.len() {
        if stuffed[i] == DLE && stuffed.get(i + 1) == Some(&SF) {
            i += 1;
        } else if stuffed[i] == SF {
            return Err(format!("unstuffed FA inside the frame at byte {}", i + 2));
        }
        body.push(stuffed[i]);
        i += 1;
    }
    if body.len() < 4 {
        return Err("DATA frame too short for a CRC".into());
    }
    let (covered, crc) = body.split_at(body.len() - 2);
    let got = u16::from_le_bytes([crc[0], crc[1]]);
    let want = crc16_arc(covered);
    obj.insert("crc_ok".into(), Value::from(got == want));
    if got != want {
        obj.insert("crc_expected".into(), Value::from(format!("{want:04X}")));
        obj.insert("crc_found".into(), Value::from(format!("{got:04X}")));
    }
    let payload = &covered[2..];
    let transactions = match from {
        Direction::Pump => parse_pump_transactions(payload)
            .map(|txs| txs.iter().map(pump_json).collect::<Vec<_>>()),
        Direction::Master => parse_master_transactions(payload)
            .map(|txs| txs.iter().map(master_json).collect::<Vec<_>>()),
    };
    match transactions {
        Ok(t) => {
            obj.insert("transactions".into(), Value::from(t));
        }
        Err(e) => {
            obj.insert("transaction_error".into(), Value::from(e.to_string()));
        }
    }
    Ok(Value::Object(obj))
}

/// A raw BCD value as the digits on the wire (leading zeros kept) and as an integer.
fn bcd_json(value: u64, digits: usize) -> Value {
    json!({"raw": value, "digits": format!("{value:0digits$}")})
}

fn status_name(st: PumpStatus) -> &'static str {
    match st {
        PumpStatus::NotProgrammed => "not_programmed",
        PumpStatus::Reset => "reset",
        PumpStatus::Authorized => "authorized",
        PumpStatus::Filling => "filling",
        PumpStatus::FillingCompleted => "filling_completed",
        PumpStatus::MaxReached => "max_amount_volume_reached",
        PumpStatus::SwitchedOff => "switched_off",
        PumpStatus::Suspended => "suspended",
        PumpStatus::Other(_) => "unknown",
    }
}

fn command_name(c: Command) -> &'static str {
    match c {
        Command::ReturnStatus => "return_status",
        Command::ReturnParameters => "return_parameters",
        Command::ReturnIdentity => "return_identity",
        Command::ReturnFillingInfo => "return_filling_info",
        Command::Reset => "reset",
        Command::Authorize => "authorize",
        Command::Stop => "stop",
        Command::SwitchOff => "switch_off",
        Command::Other(_) => "unknown",
    }
}

fn pump_json(t: &PumpTransaction) -> Value {
    match t {
        PumpTransaction::Status(st) => json!({
            "trans": "DC1", "name": "status",
            "status": {"code": st.code(), "name": status_name(*st)},
        }),
        PumpTransaction::FillingInfo { volume, amount } => json!({
            "trans": "DC2", "name": "filling_info",
            "volume": bcd_json(*volume, 8), "amount": bcd_json(*amount, 8),
        }),
        PumpTransaction::PriceNozzle {
            price,
            nozzle,
            nozzle_out,
        } => json!({
            "trans": "DC3", "name": "price_nozzle",
            "price": bcd_json(*price, 6), "nozzle": nozzle, "nozzle_out": nozzle_out,
        }),
        PumpTransaction::Alarm(a) => json!({"trans": "DC5", "name": "alarm", "alarm": a}),
        PumpTransaction::Parameters(raw) => {
            json!({"trans": "DC7", "name": "parameters", "bytes": to_hex(raw)})
        }
        PumpTransaction::Identity(id) => {
            json!({"trans": "DC9", "name": "identity", "identity": format!("{id:010}")})
        }
        PumpTransaction::VolumeTotals {
            nozzle,
            total,
            total1,
            total2,
        } => json!({
            "trans": "DC101", "name": "volume_totals", "nozzle": nozzle,
            "totals": {
                "total": bcd_json(*total, 10),
                "total1": bcd_json(*total1, 10),
                "total2": bcd_json(*total2, 10),
            },
        }),
        PumpTransaction::Unknown { code, bytes } => json!({
            "trans": format!("0x{code:02X}"), "name": "unknown", "bytes": to_hex(bytes),
        }),
    }
}

fn master_json(t: &MasterTransaction) -> Value {
    match t {
        MasterTransaction::Command(c) => json!({
            "trans": "CD1", "name": "command",
            "command": {"code": c.code(), "name": command_name(*c)},
        }),
        MasterTransaction::AllowedNozzles(n) => {
            json!({"trans": "CD2", "name": "allowed_nozzles", "nozzles": n})
        }
        MasterTransaction::PresetVolume(v) => {
            json!({"trans": "CD3", "name": "preset_volume", "volume": bcd_json(*v, 8)})
        }
        MasterTransaction::PresetAmount(v) => {
            json!({"trans": "CD4", "name": "preset_amount", "amount": bcd_json(*v, 8)})
        }
        MasterTransaction::Prices(p) => json!({
            "trans": "CD5", "name": "prices",
            "prices": p.iter().map(|v| bcd_json(*v, 6)).collect::<Vec<_>>(),
        }),
        MasterTransaction::RequestTotals { nozzle } => {
            json!({"trans": "CD101", "name": "request_totals", "nozzle": nozzle})
        }
        MasterTransaction::Unknown { code, bytes } => json!({
            "trans": format!("0x{code:02X}"), "name": "unknown", "bytes": to_hex(bytes),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, from: Direction) -> Vec<Value> {
        let mut out = Vec::new();
        decode_lines(input.as_bytes(), from, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn worked_pump_frame() {
        let v = run(
            "53 30 02 08 00 00 12 11 00 00 01 86 03 04 00 15 39 00 01 01 05 AA CF 03 FA\n",
            Direction::Pump,
        );
        assert_eq!(v.len(), 1);
        let f = &v[0];
        assert_eq!(f["address"], "0x53");
        assert_eq!(f["frame"], "data");
        assert_eq!(f["tx"], 0);
        assert_eq!(f["crc_ok"], true);
        let t = &f["transactions"];
        assert_eq!(t[0]["trans"], "DC2");
        assert_eq!(t[0]["volume"]["raw"], 1211);
        assert_eq!(t[0]["volume"]["digits"], "00001211");
        assert_eq!(t[0]["amount"]["raw"], 186);
        assert_eq!(t[1]["trans"], "DC3");
        assert_eq!(t[1]["price"]["raw"], 1539);
        assert_eq!(t[1]["nozzle"], 0);
        assert_eq!(t[1]["nozzle_out"], false);
        assert_eq!(t[2]["status"]["code"], 5);
        assert_eq!(t[2]["status"]["name"], "filling_completed");
        assert_eq!(f["line"], 1);
    }

    #[test]
    fn worked_master_and_control_frames() {
        let v = run(
            "# capture\n50 30 01 01 00 9F 5C 03 FA\n\n50 20 FA\n5070FA\n0x50,0xC0,0xFA\n51 E3 FA\n",
            Direction::Master,
        );
        let frames: Vec<&str> = v.iter().map(|f| f["frame"].as_str().unwrap()).collect();
        assert_eq!(frames, ["data", "poll", "eot", "ack", "ackpoll"]);
        assert_eq!(v[0]["crc_ok"], true);
        assert_eq!(v[0]["transactions"][0]["trans"], "CD1");
        assert_eq!(v[0]["transactions"][0]["command"]["name"], "return_status");
        assert_eq!(v[0]["line"], 2);
        assert_eq!(v[4]["tx"], 3);
        assert_eq!(v[4]["address"], "0x51");
    }

    #[test]
    fn bad_crc_still_decodes_payload() {
        let v = run("50 30 01 01 00 9F 5D 03 FA", Direction::Master);
        assert_eq!(v[0]["crc_ok"], false);
        assert_eq!(v[0]["crc_expected"], "5C9F");
        assert_eq!(v[0]["crc_found"], "5D9F");
        assert_eq!(v[0]["transactions"][0]["command"]["code"], 0);
    }

    #[test]
    fn totals_and_stuffing() {
        let payload =
            crate::transaction::encode_pump_transactions(&[PumpTransaction::VolumeTotals {
                nozzle: 1,
                total: 1_234_567_890,
                total1: 0xFA,
                total2: 0,
            }]);
        let wire = crate::line::encode(&crate::line::Frame::new(
            0x50,
            FrameKind::Data { tx: 2, payload },
        ));
        let text = wire.iter().map(|b| format!("{b:02x} ")).collect::<String>();
        let v = run(&text, Direction::Pump);
        assert_eq!(v[0]["crc_ok"], true, "{v:?}");
        let t = &v[0]["transactions"][0];
        assert_eq!(t["name"], "volume_totals");
        assert_eq!(t["totals"]["total"]["digits"], "1234567890");
        assert_eq!(t["totals"]["total1"]["raw"], 250);
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        let input = "zz\n5\n50 20\n50 99 FA\n50 30 01 FA\n50 30 FA 01 03 FA\n50 20 00 FA\n\
                     53 30 02 08 00 00 12 03 FA\n50 30 01 01 0A 00 00 03 FA\n";
        let v = run(input, Direction::Pump);
        assert_eq!(v.len(), 9, "{v:#?}");
        for f in &v[..7] {
            assert!(f["error"].is_string(), "{f}");
        }
        // CRC bad and a transaction that runs past the block: both reported.
        assert_eq!(v[7]["crc_ok"], false);
        assert!(v[7]["transaction_error"].is_string(), "{}", v[7]);
        assert_eq!(v[8]["crc_ok"], false);
        assert_eq!(v[8]["transactions"][0]["status"]["code"], 10);
    }

    #[test]
    fn invalid_utf8_line_is_reported() {
        let mut out = Vec::new();
        decode_lines(&b"\xff\xfe\n50 20 FA\n"[..], Direction::Master, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("not UTF-8"));
    }

    #[test]
    fn direction_parses() {
        assert_eq!("pump".parse::<Direction>(), Ok(Direction::Pump));
        assert_eq!("Master".parse::<Direction>(), Ok(Direction::Master));
        assert!("x".parse::<Direction>().is_err());
    }
}
