//! Property tests: frames round trip in every header variant whatever the chunking, and
//! nothing panics on arbitrary bytes or arbitrary (or damaged) XML. FORECOURT_LONG=1 runs many
//! more cases with a new seed each time.

use ifsf_fdc::{encode_frame, read_inbound, FrameDecoder, HeaderVariant};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    let long = std::env::var_os("FORECOURT_LONG").is_some();
    ProptestConfig {
        cases: if long { 20_000 } else { 256 },
        rng_seed: if long {
            RngSeed::Random
        } else {
            RngSeed::Fixed(0xFDC0_2026)
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn variant() -> impl Strategy<Value = HeaderVariant> {
    prop_oneof![
        Just(HeaderVariant::LengthHashMd5),
        Just(HeaderVariant::LengthZero),
        Just(HeaderVariant::LengthMd5),
    ]
}

const SALE: &str = r#"<FDCMessage MessageType="FuelSaleTrx" ApplicationSender="POS024"><FDCdata><DeviceClass Type="FP" DeviceID="4" PumpNo="4" NozzleNo="2" TransactionSeqNo="3258"><State>Locked</State><ProductNo>2</ProductNo><Amount>1.04</Amount><Volume>0.345</Volume><UnitPrice>3</UnitPrice></DeviceClass></FDCdata></FDCMessage>"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_round_trip_whatever_the_chunking(
        variant in variant(),
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..5),
        passphrase in proptest::collection::vec(any::<u8>(), 0..16),
        chunk in 1usize..50,
    ) {
        let stream: Vec<u8> = messages
            .iter()
            .flat_map(|m| encode_frame(variant, m, &passphrase).unwrap())
            .collect();
        let mut decoder = FrameDecoder::new(variant, &passphrase);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(xml) = decoder.next_xml() {
                got.push(xml.unwrap());
            }
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(variant in variant(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut decoder = FrameDecoder::new(variant, b"pw");
        decoder.push(&bytes);
        while let Some(xml) = decoder.next_xml() {
            if let Ok(xml) = xml {
                let _ = ifsf_fdc::Inbound::from_bytes(&xml);
            }
        }
        let _ = ifsf_fdc::Inbound::from_bytes(&bytes);
    }

    #[test]
    fn damaged_sale_notices_never_panic(cut in 0usize..SALE.len(), at in 0usize..SALE.len(), byte in any::<char>()) {
        let mut damaged: String = SALE.chars().take(cut).collect();
        let _ = read_inbound(&damaged);
        damaged = SALE.to_string();
        let at = (0..=at).rev().find(|&i| damaged.is_char_boundary(i)).unwrap_or(0);
        damaged.insert(at, byte);
        let _ = read_inbound(&damaged);
    }
}
