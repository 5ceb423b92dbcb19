//! Property tests: the decoder and the transaction parsers never panic on arbitrary bytes, and
//! encoding then decoding gives back what went in. Case counts are small by default;
//! FORECOURT_LONG=1 runs many more.

use dart_protocol::{
    bcd_decode, bcd_encode, decode_tool, encode, encode_master_transactions,
    encode_pump_transactions, parse_master_transactions, parse_pump_transactions, Command, Frame,
    FrameDecoder, FrameKind, MasterTransaction, PumpStatus, PumpTransaction,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn long() -> bool {
    std::env::var_os("FORECOURT_LONG").is_some()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if long() { 20_000 } else { 512 },
        // The default profile is reproducible (fixed seed, same cases every CI run); the long
        // one explores new cases each time.
        rng_seed: if long() {
            RngSeed::Random
        } else {
            RngSeed::Fixed(0x0DA7_2024)
        },
        // No failure files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn address() -> impl Strategy<Value = u8> {
    0x50u8..=0x6F
}

fn frame() -> impl Strategy<Value = Frame> {
    let tx = 0u8..16;
    let kind = prop_oneof![
        Just(FrameKind::Poll),
        tx.clone().prop_map(|tx| FrameKind::Ack { tx }),
        tx.clone().prop_map(|tx| FrameKind::Nak { tx }),
        tx.clone().prop_map(|tx| FrameKind::Eot { tx }),
        tx.clone().prop_map(|tx| FrameKind::AckPoll { tx }),
        data_frame().prop_map(|f| f.kind),
    ];
    (address(), kind).prop_map(|(addr, kind)| Frame::new(addr, kind))
}

fn data_frame() -> impl Strategy<Value = Frame> {
    // Payloads rich in 0xFA, 0x10 and 0x03 exercise stuffing.
    let payload = prop::collection::vec(
        prop_oneof![Just(0xFAu8), Just(0x10), Just(0x03), any::<u8>()],
        1..64,
    );
    (address(), 0u8..16, payload)
        .prop_map(|(addr, tx, payload)| Frame::new(addr, FrameKind::Data { tx, payload }))
}

fn bcd_value(digits: u32) -> impl Strategy<Value = u64> {
    0..10u64.pow(digits)
}

fn pump_transaction() -> impl Strategy<Value = PumpTransaction> {
    prop_oneof![
        any::<u8>().prop_map(|c| PumpTransaction::Status(PumpStatus::from_code(c))),
        (bcd_value(8), bcd_value(8))
            .prop_map(|(volume, amount)| PumpTransaction::FillingInfo { volume, amount }),
        (bcd_value(6), 0u8..16, any::<bool>()).prop_map(|(price, nozzle, nozzle_out)| {
            PumpTransaction::PriceNozzle {
                price,
                nozzle,
                nozzle_out,
            }
        }),
        any::<u8>().prop_map(PumpTransaction::Alarm),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(PumpTransaction::Parameters),
        bcd_value(10).prop_map(PumpTransaction::Identity),
        (any::<u8>(), bcd_value(10), bcd_value(10), bcd_value(10)).prop_map(
            |(nozzle, total, total1, total2)| PumpTransaction::VolumeTotals {
                nozzle,
                total,
                total1,
                total2,
            }
        ),
        (0x66u8..0xF0, prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(code, bytes)| PumpTransaction::Unknown { code, bytes }),
    ]
}

fn master_transaction() -> impl Strategy<Value = MasterTransaction> {
    prop_oneof![
        any::<u8>().prop_map(|c| MasterTransaction::Command(Command::from_code(c))),
        prop::collection::vec(0u8..16, 0..8).prop_map(MasterTransaction::AllowedNozzles),
        bcd_value(8).prop_map(MasterTransaction::PresetVolume),
        bcd_value(8).prop_map(MasterTransaction::PresetAmount),
        prop::collection::vec(bcd_value(6), 0..8).prop_map(MasterTransaction::Prices),
        any::<u8>().prop_map(|nozzle| MasterTransaction::RequestTotals { nozzle }),
        (0x06u8..0x60, prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(code, bytes)| MasterTransaction::Unknown { code, bytes }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoder_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut d = FrameDecoder::new();
        for c in &chunks {
            d.push(c);
            for r in d.by_ref() {
                if let Ok(FrameKind::Data { payload, .. }) = r.map(|f| f.kind) {
                    let _ = parse_pump_transactions(&payload);
                    let _ = parse_master_transactions(&payload);
                }
            }
        }
    }

    #[test]
    fn parsers_never_panic(block in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_pump_transactions(&block);
        let _ = parse_master_transactions(&block);
        let _ = bcd_decode(&block);
        let _ = decode_tool::decode_frame(&block, decode_tool::Direction::Pump);
        let _ = decode_tool::decode_frame(&block, decode_tool::Direction::Master);
    }

    #[test]
    fn decode_tool_never_panics(text in "[0-9a-fA-Fx ,#\\n]{0,200}") {
        let mut out = Vec::new();
        decode_tool::decode_lines(text.as_bytes(), decode_tool::Direction::Pump, &mut out).unwrap();
    }

    #[test]
    fn frames_round_trip_in_any_chunking(
        frames in prop::collection::vec(frame(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        noise in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        // Noise up front (ending in a stop flag so it cannot merge with the first frame).
        let mut wire = noise;
        wire.push(0xFA);
        for f in &frames {
            wire.extend(encode(f));
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([wire.len()]) {
            d.push(&wire[last..p]);
            last = p;
            got.extend(d.by_ref().filter_map(Result::ok));
        }
        // Noise may decode as stray frames of its own; ours come last and in order.
        prop_assert!(got.len() >= frames.len());
        prop_assert_eq!(&got[got.len() - frames.len()..], &frames[..]);
    }

    #[test]
    fn pump_transactions_round_trip(txs in prop::collection::vec(pump_transaction(), 0..6)) {
        let block = encode_pump_transactions(&txs);
        prop_assert_eq!(parse_pump_transactions(&block).unwrap(), txs);
    }

    #[test]
    fn master_transactions_round_trip(txs in prop::collection::vec(master_transaction(), 0..6)) {
        let block = encode_master_transactions(&txs);
        prop_assert_eq!(parse_master_transactions(&block).unwrap(), txs);
    }

    #[test]
    fn bcd_round_trips(v in bcd_value(16), extra in 0usize..3) {
        prop_assert_eq!(bcd_decode(&bcd_encode(v, 8 + extra)).unwrap(), v);
    }

    #[test]
    fn single_byte_corruption_never_yields_a_different_data_frame(
        f in data_frame(), pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        // CRC-16 detects every single-byte error: a corrupted DATA frame never decodes into
        // different DATA (it may decode as noise or a control frame, which carry no values).
        let mut wire = encode(&f);
        let i = pos.index(wire.len());
        wire[i] ^= flip;
        let mut d = FrameDecoder::new();
        d.push(&wire);
        d.push(&[0xFA]);
        for got in d.by_ref().filter_map(Result::ok) {
            if matches!(got.kind, FrameKind::Data { .. }) {
                prop_assert_eq!(&got, &f);
            }
        }
    }
}
