//! Reading a capture of the station LAN (a classic libpcap file, as `tcpdump -w` and Wireshark
//! write it, or frames read live from a mirror port): the TCP payload of each direction of each
//! connection, in stream order, for the message decoder. Pure: bytes in, stream pieces out.
//!
//! Link types: Ethernet (1) and Linux cooked capture (113); IPv4 only. A segment seen twice
//! (a retransmission) is taken once; a hole in a stream (a segment the capture missed) is
//! reported, and the stream is read on from the next segment with a new decoder, as the
//! messages cannot be framed across it.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IP_PROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("not a pcap file (magic {0:08X}); save the capture as pcap, not pcapng")]
    NotPcap(u32),
    #[error("capture file shorter than its header")]
    Truncated,
    #[error("link type {0} is not read (Ethernet and Linux cooked captures are)")]
    LinkType(u32),
}

/// One direction of one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// What the capture holds, in capture order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEvent {
    /// New bytes of `flow`'s stream, captured at `t_ms` (Unix milliseconds).
    Bytes {
        flow: Flow,
        t_ms: i64,
        bytes: Vec<u8>,
    },
    /// `missing` bytes of `flow`'s stream were not captured: read on with a new decoder.
    Hole { flow: Flow, t_ms: i64, missing: u64 },
    /// A packet that is not IPv4 TCP, or is cut short: passed over.
    Skipped { t_ms: i64, why: &'static str },
}

/// Every event of the pcap file `file`.
pub fn read_pcap(file: &[u8]) -> Result<Vec<CaptureEvent>, CaptureError> {
    let header = file
        .get(..GLOBAL_HEADER_LEN)
        .ok_or(CaptureError::Truncated)?;
    let magic_le = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let (little, nanos) = match magic_le {
        MAGIC_MICROS => (true, false),
        MAGIC_NANOS => (true, true),
        m if m.swap_bytes() == MAGIC_MICROS => (false, false),
        m if m.swap_bytes() == MAGIC_NANOS => (false, true),
        m => return Err(CaptureError::NotPcap(m)),
    };
    let u32_at = |bytes: &[u8], at: usize| {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let link = u32_at(header, 20);
    if link != LINKTYPE_ETHERNET && link != LINKTYPE_LINUX_SLL {
        return Err(CaptureError::LinkType(link));
    }
    let link = if link == LINKTYPE_ETHERNET {
        LinkType::Ethernet
    } else {
        LinkType::LinuxCooked
    };
    let mut streams = StreamAssembler::default();
    let mut events = Vec::new();
    let mut at = GLOBAL_HEADER_LEN;
    while let Some(record) = file.get(at..at + RECORD_HEADER_LEN) {
        let seconds = i64::from(u32_at(record, 0));
        let fraction = i64::from(u32_at(record, 4));
        let t_ms = seconds * 1000
            + if nanos {
                fraction / 1_000_000
            } else {
                fraction / 1000
            };
        let included = u32_at(record, 8) as usize;
        let start = at + RECORD_HEADER_LEN;
        let Some(packet) = file.get(start..start + included) else {
            events.push(CaptureEvent::Skipped {
                t_ms,
                why: "the last packet is cut short",
            });
            break;
        };
        at = start + included;
        match tcp_segment(packet, link) {
            Ok(segment) => events.extend(streams.take(&segment, t_ms)),
            Err(why) => events.push(CaptureEvent::Skipped { t_ms, why }),
        }
    }
    Ok(events)
}

/// How a captured frame begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// An Ethernet header (also what Linux gives for its loopback device).
    Ethernet,
    /// Linux cooked capture (SLL).
    LinuxCooked,
}

/// One TCP segment of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub flow: Flow,
    pub seq: u32,
    pub syn: bool,
    pub payload: &'a [u8],
}

/// The TCP segment a captured frame carries, or why it carries none (not IPv4, not TCP, cut
/// short).
pub fn tcp_segment(packet: &[u8], link: LinkType) -> Result<TcpSegment<'_>, &'static str> {
    let short = "cut short";
    let (mut ethertype, mut rest) = match link {
        LinkType::Ethernet => {
            let t = packet.get(12..14).ok_or(short)?;
            (u16::from_be_bytes([t[0], t[1]]), &packet[14..])
        }
        _ => {
            let t = packet.get(14..16).ok_or(short)?;
            (u16::from_be_bytes([t[0], t[1]]), &packet[16..])
        }
    };
    if ethertype == ETHERTYPE_VLAN {
        let t = rest.get(2..4).ok_or(short)?;
        ethertype = u16::from_be_bytes([t[0], t[1]]);
        rest = &rest[4..];
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Err("not IPv4");
    }
    let ip = rest;
    let ihl = usize::from(ip.first().ok_or(short)? & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([
        *ip.get(2).ok_or(short)?,
        *ip.get(3).ok_or(short)?,
    ]));
    if ip.get(9) != Some(&IP_PROTO_TCP) {
        return Err("not TCP");
    }
    let addresses = ip.get(12..20).ok_or(short)?;
    let src = Ipv4Addr::new(addresses[0], addresses[1], addresses[2], addresses[3]);
    let dst = Ipv4Addr::new(addresses[4], addresses[5], addresses[6], addresses[7]);
    // Ethernet pads short frames: the IP length says where the packet ends.
    let tcp = ip.get(ihl..total.min(ip.len())).ok_or(short)?;
    let header = tcp.get(..20).ok_or(short)?;
    let offset = usize::from(header[12] >> 4) * 4;
    let payload = tcp.get(offset..).ok_or(short)?;
    Ok(TcpSegment {
        flow: Flow {
            from: SocketAddrV4::new(src, u16::from_be_bytes([header[0], header[1]])),
            to: SocketAddrV4::new(dst, u16::from_be_bytes([header[2], header[3]])),
        },
        seq: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        syn: header[13] & TCP_SYN != 0,
        payload,
    })
}

/// Puts each flow's stream together from its segments: a segment seen twice (a retransmission,
/// or a frame a capture sees both leaving and arriving) is taken once; a hole is reported.
#[derive(Debug, Default)]
pub struct StreamAssembler(HashMap<Flow, u32>);

impl StreamAssembler {
    /// What `segment`, captured at `t_ms`, adds to its flow's stream.
    pub fn take(&mut self, segment: &TcpSegment<'_>, t_ms: i64) -> Vec<CaptureEvent> {
        let mut events = Vec::new();
        self.add(segment, t_ms, &mut events);
        events
    }

    fn add(&mut self, segment: &TcpSegment<'_>, t_ms: i64, events: &mut Vec<CaptureEvent>) {
        let flow = segment.flow;
        let len = segment.payload.len() as u32;
        if segment.syn {
            // The SYN takes one sequence number.
            self.0
                .insert(flow, segment.seq.wrapping_add(1).wrapping_add(len));
            return;
        }
        // Bytes of this segment the stream already has: none for a flow joined mid-connection
        // (the stream starts here) or after a hole; a retransmission or overlap repeats some.
        let skip = match self.0.get(&flow) {
            None => 0,
            Some(&next) => {
                let ahead = segment.seq.wrapping_sub(next) as i32;
                if ahead > 0 {
                    events.push(CaptureEvent::Hole {
                        flow,
                        t_ms,
                        missing: u64::from(ahead as u32),
                    });
                    0
                } else {
                    ahead.unsigned_abs()
                }
            }
        };
        if skip < len {
            events.push(CaptureEvent::Bytes {
                flow,
                t_ms,
                bytes: segment.payload[skip as usize..].to_vec(),
            });
        }
        if skip < len || skip == 0 {
            self.0.insert(flow, segment.seq.wrapping_add(len));
        }
    }
}

/// A pcap file of `packets` (flow, sequence number, SYN, payload), Ethernet, for tests and the
/// simulator's captures.
pub fn write_pcap(packets: &[(Flow, u32, bool, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(MAGIC_MICROS.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(65_535u32.to_le_bytes());
    out.extend(LINKTYPE_ETHERNET.to_le_bytes());
    for (i, (flow, seq, syn, payload)) in packets.iter().enumerate() {
        let mut packet = vec![0u8; 12];
        packet.extend(ETHERTYPE_IPV4.to_be_bytes());
        let total = (20 + 20 + payload.len()) as u16;
        packet.extend([0x45, 0]);
        packet.extend(total.to_be_bytes());
        packet.extend([0, 0, 0x40, 0, 64, IP_PROTO_TCP, 0, 0]);
        packet.extend(flow.from.ip().octets());
        packet.extend(flow.to.ip().octets());
        packet.extend(flow.from.port().to_be_bytes());
        packet.extend(flow.to.port().to_be_bytes());
        packet.extend(seq.to_be_bytes());
        packet.extend([0u8; 4]);
        packet.extend([
            0x50,
            if *syn { TCP_SYN } else { 0x18 },
            0xFF,
            0xFF,
            0,
            0,
            0,
            0,
        ]);
        packet.extend_from_slice(payload);
        out.extend((i as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((packet.len() as u32).to_le_bytes());
        out.extend((packet.len() as u32).to_le_bytes());
        out.extend(packet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            from: "192.168.1.21:3486".parse().unwrap(),
            to: "192.168.1.5:50123".parse().unwrap(),
        }
    }

    fn bytes(events: &[CaptureEvent]) -> Vec<u8> {
        events
            .iter()
            .flat_map(|e| match e {
                CaptureEvent::Bytes { bytes, .. } => bytes.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_stream_is_put_together_once_in_order() {
        let f = flow();
        let file = write_pcap(&[
            (f, 100, true, b""),
            (f, 101, false, b"abc"),
            (f, 101, false, b"abc"),   // retransmitted
            (f, 102, false, b"bcdef"), // overlaps
            (f, 107, false, b"gh"),
        ]);
        let events = read_pcap(&file).unwrap();
        assert_eq!(bytes(&events), b"abcdefgh");
        assert!(events
            .iter()
            .all(|e| matches!(e, CaptureEvent::Bytes { flow, .. } if *flow == f)));
    }

    #[test]
    fn a_hole_is_reported_and_the_stream_read_on() {
        let f = flow();
        let file = write_pcap(&[
            (f, 1, true, b""),
            (f, 2, false, b"ab"),
            (f, 10, false, b"xy"),
        ]);
        let events = read_pcap(&file).unwrap();
        assert!(events.contains(&CaptureEvent::Hole {
            flow: f,
            t_ms: 2000,
            missing: 6
        }));
        assert_eq!(bytes(&events), b"abxy");
    }

    #[test]
    fn other_files_are_refused_and_garbage_does_not_panic() {
        assert_eq!(
            read_pcap(&[0x0A, 0x0D, 0x0D, 0x0A]),
            Err(CaptureError::Truncated)
        );
        let mut pcapng = vec![0x0A, 0x0D, 0x0D, 0x0A];
        pcapng.resize(40, 0);
        assert!(matches!(read_pcap(&pcapng), Err(CaptureError::NotPcap(_))));
        let mut file = write_pcap(&[(flow(), 1, false, b"abc")]);
        for cut in 0..file.len() {
            let _ = read_pcap(&file[..cut]);
        }
        for i in GLOBAL_HEADER_LEN..file.len() {
            file[i] ^= 0xA5;
            let _ = read_pcap(&file);
        }
    }
}
