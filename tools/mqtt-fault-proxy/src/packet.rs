//! MQTT 3.1.1 framing as far as the proxy needs it: whole packets off a byte stream, the ids of a
//! QoS 1 PUBLISH, the packet id of a PUBACK. Pure: bytes in, values out.

/// A byte stream that is not MQTT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("remaining length longer than 4 bytes")]
    RemainingLength,
}

/// Takes one whole packet off the front of `buf`; `Ok(None)` while it holds only part of one.
pub fn take_packet(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, FramingError> {
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        if at > 4 {
            return Err(FramingError::RemainingLength);
        }
        let Some(&byte) = buf.get(at) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * (at - 1));
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let total = at + remaining;
    Ok((buf.len() >= total).then(|| buf.drain(..total).collect()))
}

/// The packet id of a PUBACK.
pub fn is_puback(packet: &[u8]) -> Option<u16> {
    match packet {
        [0x40, 2, hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// The packet id of a QoS 1 or 2 PUBLISH and the `id` field of the JSON envelope it carries.
pub fn publish_ids(packet: &[u8]) -> Option<(u16, String)> {
    let first = *packet.first()?;
    if first >> 4 != 3 || (first >> 1) & 3 == 0 {
        return None;
    }
    // Past the fixed header's remaining length.
    let mut at = 1 + packet[1..].iter().position(|b| b & 0x80 == 0)? + 1;
    let topic_len = usize::from(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]));
    at += 2 + topic_len;
    let pkid = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    let envelope: serde_json::Value = serde_json::from_slice(packet.get(at + 2..)?).ok()?;
    Some((pkid, envelope["id"].as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&pkid.to_be_bytes());
        body.extend_from_slice(payload);
        let mut packet = vec![0x32]; // PUBLISH, QoS 1
        let mut len = body.len();
        loop {
            let byte = (len % 128) as u8;
            len /= 128;
            packet.push(if len > 0 { byte | 0x80 } else { byte });
            if len == 0 {
                break;
            }
        }
        packet.extend(body);
        packet
    }

    #[test]
    fn packets_come_whole_across_any_split() {
        let big = format!(r#"{{"id":"a","pad":"{}"}}"#, "x".repeat(300));
        let stream = [
            publish("t/1", 7, big.as_bytes()),
            vec![0x40, 2, 0, 7],
            vec![0xd0, 0], // PINGRESP
        ]
        .concat();
        for split in 0..stream.len() {
            let mut buf = stream[..split].to_vec();
            let mut packets = Vec::new();
            while let Some(p) = take_packet(&mut buf).unwrap() {
                packets.push(p);
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(p) = take_packet(&mut buf).unwrap() {
                packets.push(p);
            }
            assert!(buf.is_empty());
            assert_eq!(packets.concat(), stream, "split at {split}");
            assert_eq!(packets.len(), 3);
            assert_eq!(publish_ids(&packets[0]), Some((7, "a".to_string())));
            assert_eq!(is_puback(&packets[1]), Some(7));
            assert_eq!(
                (is_puback(&packets[2]), publish_ids(&packets[2])),
                (None, None)
            );
        }
    }

    #[test]
    fn a_five_byte_remaining_length_is_refused() {
        let mut buf = vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(take_packet(&mut buf), Err(FramingError::RemainingLength));
    }

    #[test]
    fn qos_0_and_foreign_payloads_have_no_ids() {
        let mut qos0 = publish("t", 1, br#"{"id":"a"}"#);
        qos0[0] = 0x30;
        assert_eq!(publish_ids(&qos0), None);
        assert_eq!(publish_ids(&publish("t", 1, b"not json")), None);
        assert_eq!(publish_ids(&[0x32]), None);
        assert_eq!(publish_ids(&[0x32, 3, 0, 9, b't']), None);
    }
}
