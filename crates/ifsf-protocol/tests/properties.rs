//! Property tests: nothing panics on arbitrary bytes, and what is encoded decodes to what went
//! in, whatever the chunking of the stream. Case counts are small by default; FORECOURT_LONG=1
//! runs many more, with a new seed each time.

use forecourt_events::Decimal;
use ifsf_protocol::{
    decode_number, encode_number, DataItem, Heartbeat, Message, MessageCode, MessageDecoder,
    MessageKind, NodeAddress, TransactionAddress, TransactionRecord, TransactionState,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn long() -> bool {
    std::env::var_os("FORECOURT_LONG").is_some()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if long() { 20_000 } else { 512 },
        rng_seed: if long() {
            RngSeed::Random
        } else {
            RngSeed::Fixed(0x1F5F_2026)
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn address() -> impl Strategy<Value = NodeAddress> {
    (any::<u8>(), any::<u8>()).prop_map(|(subnet, node)| NodeAddress::new(subnet, node))
}

fn kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Read),
        Just(MessageKind::Answer),
        Just(MessageKind::Write),
        Just(MessageKind::UnsolicitedWithAck),
        Just(MessageKind::UnsolicitedNoAck),
        Just(MessageKind::Ack),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        address(),
        address(),
        prop_oneof![Just(MessageCode::Application), Just(MessageCode::Heartbeat)],
        kind(),
        0u8..=31,
        proptest::collection::vec(any::<u8>(), 0..8),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(recipient, originator, code, kind, token, db_address, data)| Message {
                recipient,
                originator,
                code,
                kind,
                token,
                db_address,
                data,
            },
        )
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u8..=Decimal::MAX_SCALE)
        .prop_map(|(minor, scale)| Decimal::new(minor % 1_000_000_000_000_000, scale))
}

fn state() -> impl Strategy<Value = TransactionState> {
    any::<u8>().prop_map(TransactionState::from_byte)
}

fn record() -> impl Strategy<Value = TransactionRecord> {
    // What the simulator's lengths hold: eight digits for amounts and volumes, six for prices.
    let money = |below: i64| {
        (0i64..below, 0u8..=3)
            .prop_map(|(minor, scale)| Decimal::new(minor, scale))
            .prop_map(Some)
    };
    (
        proptest::option::of(0u16..=9999),
        prop_oneof![Just(None), money(100_000_000)],
        prop_oneof![Just(None), money(100_000_000)],
        prop_oneof![Just(None), money(1_000_000)],
        proptest::option::of(any::<u8>()),
        proptest::option::of(0u32..=99_999_999),
        proptest::option::of(state()),
    )
        .prop_map(
            |(seq, amount, volume, unit_price, logical_nozzle, product, state)| TransactionRecord {
                seq,
                amount,
                volume,
                unit_price,
                logical_nozzle,
                product,
                state,
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some((Ok(message), _)) = Message::decode(&bytes) {
            if let Ok(items) = message.items() {
                let _ = TransactionRecord::from_items(&items);
            }
            let _ = TransactionAddress::from_db_address(&message.db_address);
            let _ = message.acknowledge(NodeAddress::new(2, 9));
        }
        let _ = decode_number(&bytes);
        let _ = Heartbeat::decode(&bytes);
        let mut decoder = MessageDecoder::new();
        decoder.push(&bytes);
        while decoder.next_message().is_some() {}
        prop_assert!(decoder.buffered() <= bytes.len());
    }

    #[test]
    fn messages_round_trip(message in message()) {
        let bytes = message.encode().unwrap();
        prop_assert_eq!(Message::decode(&bytes), Some((Ok(message), bytes.len())));
    }

    #[test]
    fn a_stream_of_messages_decodes_in_order_whatever_the_chunking(
        messages in proptest::collection::vec(message(), 1..6),
        chunk in 1usize..40,
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| m.encode().unwrap()).collect();
        let mut decoder = MessageDecoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(result) = decoder.next_message() {
                got.push(result.unwrap());
            }
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn items_round_trip(
        items in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..8),
    ) {
        let borrowed: Vec<DataItem<'_>> =
            items.iter().map(|(id, value)| DataItem { id: *id, value }).collect();
        let message = Message::with_items(
            NodeAddress::new(2, 9),
            NodeAddress::new(1, 1),
            MessageKind::UnsolicitedNoAck,
            0,
            &[0x21],
            &borrowed,
        )
        .unwrap();
        prop_assert_eq!(message.items().unwrap(), borrowed);
    }

    #[test]
    fn numbers_round_trip_when_they_fit(value in decimal(), len in 1usize..=10) {
        match encode_number(value, len) {
            Ok(bytes) => {
                prop_assert_eq!(bytes.len(), len);
                prop_assert_eq!(decode_number(&bytes), Ok(value));
            }
            // Refused only when the digits or the scale do not fit the length.
            Err(_) => {
                let digits = (len - 1) * 2;
                let needed = value.minor().unsigned_abs().to_string().len();
                prop_assert!(
                    usize::from(value.scale()) > digits || needed > digits,
                    "{value} refused in {len} bytes"
                );
            }
        }
    }

    #[test]
    fn transaction_records_round_trip(record in record()) {
        let items = record.to_items().unwrap();
        let borrowed: Vec<DataItem<'_>> =
            items.iter().map(|(id, value)| DataItem { id: *id, value }).collect();
        prop_assert_eq!(TransactionRecord::from_items(&borrowed), Ok(record));
    }

    #[test]
    fn transaction_addresses_round_trip(fp in 1u8..=4, seq in 0u16..=9999) {
        let address = TransactionAddress { fp, seq };
        let bytes = address.to_db_address().unwrap();
        prop_assert_eq!(TransactionAddress::from_db_address(&bytes), Ok(address));
    }

    #[test]
    fn heartbeats_round_trip(bytes in any::<[u8; 10]>()) {
        let mut bytes = bytes;
        bytes[8] = 1;
        let beat = Heartbeat::decode(&bytes).unwrap();
        prop_assert_eq!(beat.encode(), bytes);
    }
}
