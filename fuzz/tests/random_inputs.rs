//! The fuzz targets' checks on stable Rust, with random and mutated inputs (no coverage
//! guidance). `FUZZ_ITERS=N` sets the number of inputs per target (default 200000);
//! `FUZZ_SEED` the seed. Also replays any files in `corpus/<target>/` and `artifacts/<target>/`.

use std::path::Path;

use seeded_rng::Rng;

fn iters() -> u64 {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED)
        | 1
}

fn replay(dir: &str, target: fn(&[u8])) {
    for sub in ["corpus", "artifacts"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(sub).join(dir);
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    target(&bytes);
                }
            }
        }
    }
}

/// Mutates one of `seeds` (bit flips, byte changes, splices, truncation) or makes random bytes.
fn input(rng: &mut Rng, seeds: &[Vec<u8>], buf: &mut Vec<u8>) {
    buf.clear();
    if rng.next_u64().is_multiple_of(4) || seeds.is_empty() {
        let n = (rng.next_u64() % 300) as usize;
        buf.extend((0..n).map(|_| rng.next_u64() as u8));
        return;
    }
    buf.extend_from_slice(&seeds[(rng.next_u64() as usize) % seeds.len()]);
    for _ in 0..=(rng.next_u64() % 6) {
        let len = buf.len().max(1);
        match rng.next_u64() % 5 {
            0 if !buf.is_empty() => {
                let i = rng.next_u64() as usize % len;
                buf[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 if !buf.is_empty() => {
                let i = rng.next_u64() as usize % len;
                buf[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.next_u64() as usize % (buf.len() + 1);
                buf.insert(i, rng.next_u64() as u8);
            }
            3 if !buf.is_empty() => {
                buf.truncate(rng.next_u64() as usize % len);
            }
            _ => {
                let other = &seeds[(rng.next_u64() as usize) % seeds.len()];
                buf.extend_from_slice(other);
            }
        }
    }
}

fn dart_seeds() -> Vec<Vec<u8>> {
    use dart_protocol::*;
    let frames = [
        Frame::new(0x50, FrameKind::Poll),
        Frame::new(0x51, FrameKind::Eot { tx: 3 }),
        Frame::new(0x52, FrameKind::Ack { tx: 1 }),
        Frame::new(
            0x50,
            FrameKind::Data {
                tx: 2,
                payload: encode_pump_transactions(&[
                    PumpTransaction::Status(PumpStatus::Filling),
                    PumpTransaction::FillingInfo {
                        volume: 1234,
                        amount: 9876,
                    },
                    PumpTransaction::PriceNozzle {
                        price: 1539,
                        nozzle: 1,
                        nozzle_out: true,
                    },
                    PumpTransaction::VolumeTotals {
                        nozzle: 1,
                        total: 5,
                        total1: 5,
                        total2: 0,
                    },
                ]),
            },
        ),
        Frame::new(
            0x53,
            FrameKind::Data {
                tx: 4,
                payload: encode_master_transactions(&[
                    MasterTransaction::Command(Command::Authorize),
                    MasterTransaction::RequestTotals { nozzle: 2 },
                    MasterTransaction::Prices(vec![785, 832]),
                ]),
            },
        ),
    ];
    frames
        .iter()
        .map(|f| {
            let mut v = vec![7u8];
            v.extend(encode(f));
            v
        })
        .collect()
}

fn command_seeds() -> Vec<Vec<u8>> {
    [
        "\0{\"id\":\"p1\"}",
        "\x03{\"id\":\"r1\",\"stream\":\"sale\",\"from_seq\":1800}",
        "\x02{\"id\":\"c1\",\"sale_id\":\"0b6f3c1e-8d2a-4f57-9a51-3f0c2e7d9b10\",\"plate\":\"京A12345\",\"by\":\"ops\"}",
        "\x04{\"id\":\"t\",\"minutes\":5}",
        "\x01{\"id\":\"x\"}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn ifsf_seeds() -> Vec<Vec<u8>> {
    use ifsf_protocol::*;
    let record = TransactionRecord {
        seq: Some(358),
        amount: Some(forecourt_events::Decimal::new(27_640, 2)),
        volume: Some(forecourt_events::Decimal::new(3_521, 2)),
        unit_price: Some(forecourt_events::Decimal::new(785, 2)),
        logical_nozzle: Some(2),
        product: Some(92),
        state: Some(TransactionState::Payable),
    };
    let items = record.to_items().unwrap();
    let items: Vec<DataItem<'_>> = items
        .iter()
        .map(|(id, value)| DataItem { id: *id, value })
        .collect();
    let address = TransactionAddress { fp: 1, seq: 358 }
        .to_db_address()
        .unwrap();
    let sale = Message::with_items(
        NodeAddress::new(2, 9),
        NodeAddress::new(1, 1),
        MessageKind::UnsolicitedWithAck,
        3,
        &address,
        &items,
    )
    .unwrap();
    let mut stream = vec![5u8];
    stream.extend(sale.encode().unwrap());
    stream.extend(
        sale.acknowledge(NodeAddress::new(2, 9))
            .unwrap()
            .encode()
            .unwrap(),
    );
    vec![stream]
}

fn fdc_seeds() -> Vec<Vec<u8>> {
    use ifsf_fdc::{encode_frame, HeaderVariant};
    let sale = br#"<FDCMessage MessageType="FuelSaleTrx" ApplicationSender="POS024"><FDCdata><DeviceClass Type="FP" DeviceID="4" PumpNo="4" NozzleNo="2" TransactionSeqNo="3258"><State>Locked</State><ProductNo>2</ProductNo><Amount>1.04</Amount><Volume>0.345</Volume><UnitPrice>3</UnitPrice></DeviceClass></FDCdata></FDCMessage>"#;
    let response = br#"<ServiceResponse RequestType="GetAvailableFuelSaleTrxs" RequestID="3" OverallResult="Success"/>"#;
    [
        (0u8, HeaderVariant::LengthHashMd5),
        (1, HeaderVariant::LengthZero),
        (2, HeaderVariant::LengthMd5),
    ]
    .iter()
    .map(|&(pick, variant)| {
        let mut v = vec![pick];
        v.extend(encode_frame(variant, sale, b"pw").unwrap());
        v.extend(encode_frame(variant, response, b"pw").unwrap());
        v
    })
    .collect()
}

fn run(name: &str, target: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    replay(name, target);
    let mut rng = Rng::new(seed());
    let mut buf = Vec::new();
    let n = iters();
    for i in 0..n {
        input(&mut rng, &seeds, &mut buf);
        let r = std::panic::catch_unwind(|| target(&buf));
        if r.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("artifacts")
                .join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("crash-stable-{i}"));
            std::fs::write(&path, &buf).unwrap();
            panic!("{name}: input {i} failed; saved to {}", path.display());
        }
    }
    println!("{name}: {n} inputs ok");
}

#[test]
fn dart_decoder_random_inputs() {
    run("dart_decoder", forecourt_fuzz::dart_decoder, dart_seeds());
}

#[test]
fn mqtt_command_random_inputs() {
    run(
        "mqtt_command",
        forecourt_fuzz::mqtt_command,
        command_seeds(),
    );
}

#[test]
fn ifsf_stream_random_inputs() {
    run("ifsf_stream", forecourt_fuzz::ifsf_stream, ifsf_seeds());
}

#[test]
fn ifsf_capture_random_inputs() {
    run(
        "ifsf_capture",
        forecourt_fuzz::ifsf_capture,
        capture_seeds(),
    );
}

fn capture_seeds() -> Vec<Vec<u8>> {
    use ifsf_protocol::capture::{write_pcap, Flow};
    let flow = Flow {
        from: "192.168.1.21:3486".parse().unwrap(),
        to: "192.168.1.5:50123".parse().unwrap(),
    };
    let back = Flow {
        from: flow.to,
        to: flow.from,
    };
    let stream = &ifsf_seeds()[0][1..];
    let (a, b) = stream.split_at(stream.len() / 2);
    vec![write_pcap(&[
        (flow, 1, true, b""),
        (back, 50, true, b""),
        (flow, 2, false, a),
        (back, 51, false, b"\x01\x01\x02\x09"),
        (flow, 2 + a.len() as u32, false, b),
    ])]
}

#[test]
fn ifsf_fdc_random_inputs() {
    run("ifsf_fdc", forecourt_fuzz::ifsf_fdc, fdc_seeds());
}
