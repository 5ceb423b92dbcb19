//! The checks behind the fuzz targets, as plain functions: libFuzzer calls them through
//! `fuzz_targets/*.rs`; `tests/random_inputs.rs` calls them on stable with random input.

use ifsf_protocol::{
    decode_number, encode_number, DataItem, Heartbeat, Message, MessageDecoder, NodeAddress,
    TransactionAddress, TransactionRecord,
};

use dispenser::{
    FdcFpConfig, FdcHeader, FdcWatch, IfsfFdcConfig, IfsfFpConfig, IfsfTcpConfig, IfsfWatch,
};

use dart_protocol::{
    encode, encode_master_transactions, encode_pump_transactions, parse_master_transactions,
    parse_pump_transactions, Decimals, FrameDecoder, FrameKind, FuellingPoint, FuellingPointConfig,
};

/// DART: arbitrary line bytes, pushed in chunks (sizes taken from the input), through the frame
/// decoder; every frame re-encodes to bytes that decode to the same frame; every DATA payload goes
/// through both transaction parsers (parse, encode, parse again gives the same) and the pump
/// transactions through a fuelling-point state machine. Nothing may panic, and the decoder's
/// buffer stays bounded by what was pushed.
pub fn dart_decoder(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;
    let mut decoder = FrameDecoder::new();
    let mut fp = FuellingPoint::new(FuellingPointConfig::new(
        1,
        Decimals {
            volume: 2,
            amount: 2,
            price: 3,
        },
        vec!["95".into(), "Diesel".into()],
    ));
    let mut now = 0i64;
    let mut pushed = 0usize;
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        pushed += piece.len();
        while let Some(result) = decoder.next_frame() {
            let Ok(frame) = result else { continue };
            let bytes = encode(&frame);
            let mut again = FrameDecoder::new();
            again.push(&bytes);
            let back = again.next_frame();
            assert_eq!(
                back,
                Some(Ok(frame.clone())),
                "frame does not survive encode/decode: {frame:?} -> {bytes:02X?}"
            );
            if let FrameKind::Data { payload, .. } = &frame.kind {
                if let Ok(txs) = parse_pump_transactions(payload) {
                    let re = parse_pump_transactions(&encode_pump_transactions(&txs));
                    assert_eq!(re.as_ref(), Ok(&txs), "pump transactions round trip");
                    for tx in &txs {
                        now += 7;
                        let _ = fp.apply(now, tx);
                        let _ = fp.wanted_command(now, true);
                        let _ = fp.wanted_totals_request(now);
                    }
                    let _ = fp.tick(now);
                }
                if let Ok(txs) = parse_master_transactions(payload) {
                    let re = parse_master_transactions(&encode_master_transactions(&txs));
                    assert_eq!(re.as_ref(), Ok(&txs), "master transactions round trip");
                }
            }
        }
        assert!(
            decoder.buffered() <= pushed,
            "decoder holds more than it was given"
        );
    }
}

/// MQTT commands: the command name (the last topic level) from the first bytes, the payload
/// from the rest. `parse_command`, with the station's command checks, must never panic, and what
/// it accepts must fit the documented limits (64 KiB payload, id 1..=128 characters).
pub fn mqtt_command(data: &[u8]) {
    const NAMES: [&str; 8] = [
        "ping",
        "reload_config",
        "plate_correction",
        "resend",
        "record_trace",
        "hourly",
        "unknown",
        "",
    ];
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    if let Ok(cmd) = uplink::commands::parse_command(name, payload, &station::StationCommands) {
        assert!(payload.len() <= uplink::commands::MAX_COMMAND_BYTES);
        let n = cmd.id.chars().count();
        assert!((1..=128).contains(&n), "accepted id of {n} characters");
    }
}

/// IFSF over TCP/IP: arbitrary stream bytes, pushed in chunks (size from the first byte),
/// through the message decoder. Every message re-encodes to bytes that decode to it; its data
/// items, database address and numbers go through the transaction-record readers, and what they
/// read writes back to the same values; an acknowledge is always something a watch-only source
/// may send. Nothing may panic, and the decoder holds no more than it was given.
pub fn ifsf_stream(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let _ = Heartbeat::decode(rest);
    let chunk = usize::from(split % 64) + 1;
    let mut decoder = MessageDecoder::new();
    let mut pushed = 0usize;
    let mut watch = IfsfWatch::new(&watch_config());
    let mut t = 0i64;
    assert_watch_only(&watch.connected().send);
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        pushed += piece.len();
        while let Some(result) = decoder.next_message() {
            let Ok(message) = result else { continue };
            t += 100;
            watch_message(&mut watch, &message, t);
            let _ = ifsf_protocol::decode_tool::describe(Ok(message.clone()));
            let bytes = message.encode().expect("a decoded message encodes");
            let back = Message::decode(&bytes).map(|(m, used)| (m, used == bytes.len()));
            assert_eq!(
                back,
                Some((Ok(message.clone()), true)),
                "message round trip"
            );
            if let Some(ack) = message.acknowledge(NodeAddress::new(2, 9)) {
                assert!(ack.is_watch_only(), "an acknowledge is watch-only");
            }
            if let Ok(address) = TransactionAddress::from_db_address(&message.db_address) {
                assert_eq!(
                    address.to_db_address().as_ref().map(|a| &a[..]),
                    Ok(&message.db_address[..])
                );
            }
            if let Ok(items) = message.items() {
                ifsf_items(&items);
            }
        }
        assert!(
            decoder.buffered() <= pushed,
            "decoder holds more than it was given"
        );
    }
}

/// The watch-only source's state, watching node 1.1 as 2.9 (points 1..=4).
fn watch_config() -> IfsfTcpConfig {
    let points = (1..=4)
        .map(|point| IfsfFpConfig {
            fp: point,
            point,
            grades: vec!["92#".into()],
        })
        .collect();
    IfsfTcpConfig::join("127.0.0.1:3486".into(), 1, 9, points)
}

/// `message` as it came, and as if the watched device had sent it to the watch: whatever it
/// holds, the watch asks to send only reads and acknowledges.
fn watch_message(watch: &mut IfsfWatch, message: &Message, t: i64) {
    assert_watch_only(&watch.on_message(message, t).send);
    let mut addressed = message.clone();
    addressed.originator = NodeAddress::new(1, 1);
    addressed.recipient = NodeAddress::new(2, 9);
    let step = watch.on_message(&addressed, t);
    assert_watch_only(&step.send);
    assert_watch_only(&watch.poll());
}

fn assert_watch_only(messages: &[Message]) {
    for m in messages {
        assert!(m.is_watch_only(), "the watch asked to send {m:?}");
        assert!(
            m.encode().is_ok(),
            "the watch built a message that cannot be sent"
        );
    }
}

/// IFSF capture: arbitrary bytes as a pcap file, through the capture reader and the field
/// decoder. Nothing may panic.
pub fn ifsf_capture(data: &[u8]) {
    let _ = ifsf_protocol::capture::read_pcap(data);
    let mut out = Vec::new();
    ifsf_protocol::decode_tool::decode_pcap(data, &mut out).expect("writing to memory");
}

fn ifsf_items(items: &[DataItem<'_>]) {
    for item in items {
        if let Ok(value) = decode_number(item.value) {
            let again =
                encode_number(value, item.value.len()).expect("a read number fits its length");
            assert_eq!(decode_number(&again), Ok(value), "number round trip");
        }
    }
    if let Ok(record) = TransactionRecord::from_items(items) {
        // Written in this crate's own lengths, which may not hold what another device sent.
        if let Ok(written) = record.to_items() {
            let again: Vec<DataItem<'_>> = written
                .iter()
                .map(|(id, value)| DataItem { id: *id, value })
                .collect();
            assert_eq!(
                TransactionRecord::from_items(&again),
                Ok(record),
                "record round trip"
            );
        }
    }
}

/// IFSF POS-FDC: the first byte picks the header variant and the chunk size, the rest is the
/// stream. The frame decoder never panics and holds no more than it was given; every XML it
/// yields, and the raw bytes as XML, go through the message reader, which never panics.
pub fn ifsf_fdc(data: &[u8]) {
    use ifsf_fdc::{FrameDecoder, HeaderVariant, Inbound};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let variant = match pick % 3 {
        0 => HeaderVariant::LengthHashMd5,
        1 => HeaderVariant::LengthZero,
        _ => HeaderVariant::LengthMd5,
    };
    let chunk = usize::from(pick / 3 % 64) + 1;
    let mut decoder = FrameDecoder::new(variant, b"pw");
    let mut pushed = 0usize;
    let mut watch = FdcWatch::new(&fdc_config());
    let mut t = 0;
    let mut sent = watch.connected(t).send;
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        pushed += piece.len();
        while let Some(result) = decoder.next_xml() {
            if let Ok(xml) = result {
                let _ = Inbound::from_bytes(&xml);
                t += 100;
                sent.extend(watch.on_xml(&xml, t).send);
            }
        }
        assert!(
            decoder.buffered() <= pushed,
            "decoder holds more than it was given"
        );
    }
    let _ = Inbound::from_bytes(rest);
    sent.extend(watch.on_xml(rest, t).send);
    sent.extend(watch.reconcile(t));
    for xml in &sent {
        assert!(
            !["Lock", "Unlock", "Clear"]
                .iter()
                .any(|verb| xml.contains(verb)),
            "the FDC watch asked to send {xml}"
        );
    }
}

/// The POS-FDC watch, for pumps 1..=4.
fn fdc_config() -> IfsfFdcConfig {
    IfsfFdcConfig {
        address: "127.0.0.1:4710".into(),
        header: FdcHeader::LengthZero,
        passphrase: String::new(),
        application_sender: "FCAGENT".into(),
        workstation_id: "FCAGENT".into(),
        fps: (1..=4)
            .map(|pump| FdcFpConfig {
                fp: pump as u8,
                pump,
                grades: vec!["92#".into()],
            })
            .collect(),
        heartbeat_interval_s: 12,
        reconcile_interval_s: 30,
        silence_timeout_s: 45,
    }
}
