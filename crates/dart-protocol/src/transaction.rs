//! Application level (level 3): transactions inside a DATA block, TRANS LNG DATA(LNG).
//! Pump -> master transactions are `DC`, master -> pump are `CD`. Numbers are raw BCD integers;
//! decimal places are per-pump configuration and applied by [`crate::FuellingPoint`].

use crate::bcd::{bcd_decode, bcd_encode, BcdError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("transaction 0x{code:02X} runs past the end of the block")]
    Truncated { code: u8 },
    #[error("transaction 0x{code:02X} has length {len}, expected {expected}")]
    BadLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("transaction 0x{code:02X}: {source}")]
    Bcd { code: u8, source: BcdError },
}

/// DC1 status codes. Unlisted values are kept as `Other` (firmware variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PumpStatus {
    NotProgrammed,
    Reset,
    Authorized,
    Filling,
    FillingCompleted,
    MaxReached,
    SwitchedOff,
    Suspended,
    Other(u8),
}

impl PumpStatus {
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::NotProgrammed,
            1 => Self::Reset,
            2 => Self::Authorized,
            4 => Self::Filling,
            5 => Self::FillingCompleted,
            6 => Self::MaxReached,
            7 => Self::SwitchedOff,
            8 => Self::Suspended,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::NotProgrammed => 0,
            Self::Reset => 1,
            Self::Authorized => 2,
            Self::Filling => 4,
            Self::FillingCompleted => 5,
            Self::MaxReached => 6,
            Self::SwitchedOff => 7,
            Self::Suspended => 8,
            Self::Other(c) => c,
        }
    }

    /// The fill is over and the pump waits for a reset (5 or 6).
    pub fn is_completed(self) -> bool {
        matches!(self, Self::FillingCompleted | Self::MaxReached)
    }
}

/// CD1 command codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    ReturnStatus,
    ReturnParameters,
    ReturnIdentity,
    ReturnFillingInfo,
    Reset,
    Authorize,
    Stop,
    SwitchOff,
    Other(u8),
}

impl Command {
    pub fn from_code(code: u8) -> Self {
        match code {
            0x00 => Self::ReturnStatus,
            0x02 => Self::ReturnParameters,
            0x03 => Self::ReturnIdentity,
            0x04 => Self::ReturnFillingInfo,
            0x05 => Self::Reset,
            0x06 => Self::Authorize,
            0x08 => Self::Stop,
            0x0A => Self::SwitchOff,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::ReturnStatus => 0x00,
            Self::ReturnParameters => 0x02,
            Self::ReturnIdentity => 0x03,
            Self::ReturnFillingInfo => 0x04,
            Self::Reset => 0x05,
            Self::Authorize => 0x06,
            Self::Stop => 0x08,
            Self::SwitchOff => 0x0A,
            Self::Other(c) => c,
        }
    }
}

/// Pump -> master (DC) transactions. Volumes, amounts and prices are raw integers (BCD value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpTransaction {
    /// DC1.
    Status(PumpStatus),
    /// DC2: filled volume and amount so far (final after hang-up).
    FillingInfo { volume: u64, amount: u64 },
    /// DC3: price in use and nozzle state. `nozzle` is the logical nozzle (0..15).
    PriceNozzle {
        price: u64,
        nozzle: u8,
        nozzle_out: bool,
    },
    /// DC5.
    Alarm(u8),
    /// DC7: parameters, kept raw (layout varies by firmware).
    Parameters(Vec<u8>),
    /// DC9: pump identity, 10 BCD digits.
    Identity(u64),
    /// DC101: volume totalizers of one logical nozzle.
    VolumeTotals {
        nozzle: u8,
        total: u64,
        total1: u64,
        total2: u64,
    },
    /// A transaction code we do not know, skipped by its length.
    Unknown { code: u8, bytes: Vec<u8> },
}

/// Master -> pump (CD) transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterTransaction {
    /// CD1.
    Command(Command),
    /// CD2: allowed logical nozzles.
    AllowedNozzles(Vec<u8>),
    /// CD3: preset volume (raw).
    PresetVolume(u64),
    /// CD4: preset amount (raw).
    PresetAmount(u64),
    /// CD5: unit prices, index 0 = logical nozzle 1; must list all nozzles.
    Prices(Vec<u64>),
    /// CD101: request volume totals of a logical nozzle.
    RequestTotals {
        nozzle: u8,
    },
    Unknown {
        code: u8,
        bytes: Vec<u8>,
    },
}

const DC1: u8 = 0x01;
const DC2: u8 = 0x02;
const DC3: u8 = 0x03;
const DC5: u8 = 0x05;
const DC7: u8 = 0x07;
const DC9: u8 = 0x09;
const DC101: u8 = 0x65;
const CD1: u8 = 0x01;
const CD2: u8 = 0x02;
const CD3: u8 = 0x03;
const CD4: u8 = 0x04;
const CD5: u8 = 0x05;
const CD101: u8 = 0x65;

const NOZZLE_OUT_BIT: u8 = 0x10;

/// Splits a block into (code, data) pairs using LNG.
fn split_block(block: &[u8]) -> Result<Vec<(u8, &[u8])>, TransactionError> {
    let mut out = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let code = rest[0];
        let len = *rest.get(1).ok_or(TransactionError::Truncated { code })? as usize;
        let data = rest
            .get(2..2 + len)
            .ok_or(TransactionError::Truncated { code })?;
        out.push((code, data));
        rest = &rest[2 + len..];
    }
    Ok(out)
}

fn expect_len(
    code: u8,
    data: &[u8],
    len: usize,
    expected: &'static str,
) -> Result<(), TransactionError> {
    if data.len() == len {
        Ok(())
    } else {
        Err(TransactionError::BadLength {
            code,
            len: data.len(),
            expected,
        })
    }
}

fn bcd(code: u8, bytes: &[u8]) -> Result<u64, TransactionError> {
    bcd_decode(bytes).map_err(|source| TransactionError::Bcd { code, source })
}

fn push_transaction(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    out.push(code);
    out.push(data.len() as u8);
    out.extend_from_slice(data);
}

impl PumpTransaction {
    pub fn parse(code: u8, data: &[u8]) -> Result<Self, TransactionError> {
        Ok(match code {
            DC1 => {
                expect_len(code, data, 1, "1")?;
                Self::Status(PumpStatus::from_code(data[0]))
            }
            DC2 => {
                expect_len(code, data, 8, "8")?;
                Self::FillingInfo {
                    volume: bcd(code, &data[..4])?,
                    amount: bcd(code, &data[4..])?,
                }
            }
            DC3 => {
                expect_len(code, data, 4, "4")?;
                Self::PriceNozzle {
                    price: bcd(code, &data[..3])?,
                    nozzle: data[3] & 0x0F,
                    nozzle_out: data[3] & NOZZLE_OUT_BIT != 0,
                }
            }
            DC5 => {
                expect_len(code, data, 1, "1")?;
                Self::Alarm(data[0])
            }
            DC7 => Self::Parameters(data.to_vec()),
            DC9 => {
                expect_len(code, data, 5, "5")?;
                Self::Identity(bcd(code, data)?)
            }
            DC101 => {
                expect_len(code, data, 16, "16")?;
                Self::VolumeTotals {
                    nozzle: data[0],
                    total: bcd(code, &data[1..6])?,
                    total1: bcd(code, &data[6..11])?,
                    total2: bcd(code, &data[11..16])?,
                }
            }
            _ => Self::Unknown {
                code,
                bytes: data.to_vec(),
            },
        })
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Status(st) => push_transaction(out, DC1, &[st.code()]),
            Self::FillingInfo { volume, amount } => {
                let mut d = bcd_encode(*volume, 4);
                d.extend(bcd_encode(*amount, 4));
                push_transaction(out, DC2, &d);
            }
            Self::PriceNozzle {
                price,
                nozzle,
                nozzle_out,
            } => {
                let mut d = bcd_encode(*price, 3);
                d.push((nozzle & 0x0F) | if *nozzle_out { NOZZLE_OUT_BIT } else { 0 });
                push_transaction(out, DC3, &d);
            }
            Self::Alarm(a) => push_transaction(out, DC5, &[*a]),
            Self::Parameters(raw) => push_transaction(out, DC7, raw),
            Self::Identity(id) => push_transaction(out, DC9, &bcd_encode(*id, 5)),
            Self::VolumeTotals {
                nozzle,
                total,
                total1,
                total2,
            } => {
                let mut d = vec![*nozzle];
                for v in [total, total1, total2] {
                    d.extend(bcd_encode(*v, 5));
                }
                push_transaction(out, DC101, &d);
            }
            Self::Unknown { code, bytes } => push_transaction(out, *code, bytes),
        }
    }
}

impl MasterTransaction {
    pub fn parse(code: u8, data: &[u8]) -> Result<Self, TransactionError> {
        Ok(match code {
            CD1 => {
                expect_len(code, data, 1, "1")?;
                Self::Command(Command::from_code(data[0]))
            }
            CD2 => Self::AllowedNozzles(data.to_vec()),
            CD3 => {
                expect_len(code, data, 4, "4")?;
                Self::PresetVolume(bcd(code, data)?)
            }
            CD4 => {
                expect_len(code, data, 4, "4")?;
                Self::PresetAmount(bcd(code, data)?)
            }
            CD5 => {
                if !data.chunks_exact(3).remainder().is_empty() {
                    return Err(TransactionError::BadLength {
                        code,
                        len: data.len(),
                        expected: "a multiple of 3",
                    });
                }
                Self::Prices(
                    data.chunks(3)
                        .map(|c| bcd(code, c))
                        .collect::<Result<_, _>>()?,
                )
            }
            CD101 => {
                expect_len(code, data, 1, "1")?;
                Self::RequestTotals { nozzle: data[0] }
            }
            _ => Self::Unknown {
                code,
                bytes: data.to_vec(),
            },
        })
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Command(c) => push_transaction(out, CD1, &[c.code()]),
            Self::AllowedNozzles(n) => push_transaction(out, CD2, n),
            Self::PresetVolume(v) => push_transaction(out, CD3, &bcd_encode(*v, 4)),
            Self::PresetAmount(v) => push_transaction(out, CD4, &bcd_encode(*v, 4)),
            Self::Prices(prices) => {
                let d: Vec<u8> = prices.iter().flat_map(|p| bcd_encode(*p, 3)).collect();
                push_transaction(out, CD5, &d);
            }
            Self::RequestTotals { nozzle } => push_transaction(out, CD101, &[*nozzle]),
            Self::Unknown { code, bytes } => push_transaction(out, *code, bytes),
        }
    }
}

/// Parses a pump DATA block. Unknown codes come back as `Unknown` (skipped by LNG).
pub fn parse_pump_transactions(block: &[u8]) -> Result<Vec<PumpTransaction>, TransactionError> {
    split_block(block)?
        .into_iter()
        .map(|(code, data)| PumpTransaction::parse(code, data))
        .collect()
}

/// Parses a master DATA block.
pub fn parse_master_transactions(block: &[u8]) -> Result<Vec<MasterTransaction>, TransactionError> {
    split_block(block)?
        .into_iter()
        .map(|(code, data)| MasterTransaction::parse(code, data))
        .collect()
}

pub fn encode_pump_transactions(txs: &[PumpTransaction]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in txs {
        t.encode_into(&mut out);
    }
    out
}

pub fn encode_master_transactions(txs: &[MasterTransaction]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in txs {
        t.encode_into(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payload of the worked frame `53 30 ... AA CF 03 FA`.
    const WORKED_DC_PAYLOAD: [u8; 19] = [
        0x02, 0x08, 0x00, 0x00, 0x12, 0x11, 0x00, 0x00, 0x01, 0x86, 0x03, 0x04, 0x00, 0x15, 0x39,
        0x00, 0x01, 0x01, 0x05,
    ];

    fn worked_dc() -> Vec<PumpTransaction> {
        vec![
            PumpTransaction::FillingInfo {
                volume: 1211,
                amount: 186,
            },
            PumpTransaction::PriceNozzle {
                price: 1539,
                nozzle: 0,
                nozzle_out: false,
            },
            PumpTransaction::Status(PumpStatus::FillingCompleted),
        ]
    }

    #[test]
    fn worked_dc_block() {
        assert_eq!(
            parse_pump_transactions(&WORKED_DC_PAYLOAD).unwrap(),
            worked_dc()
        );
        assert_eq!(
            encode_pump_transactions(&worked_dc()),
            WORKED_DC_PAYLOAD.to_vec()
        );
    }

    #[test]
    fn worked_cd1_block() {
        let cd = vec![MasterTransaction::Command(Command::ReturnStatus)];
        assert_eq!(encode_master_transactions(&cd), vec![0x01, 0x01, 0x00]);
        assert_eq!(parse_master_transactions(&[0x01, 0x01, 0x00]).unwrap(), cd);
    }

    #[test]
    fn unknown_transactions_are_skipped_by_length() {
        let mut block = vec![0x44, 0x03, 0xAA, 0xBB, 0xCC];
        block.extend([0x01, 0x01, 0x04]);
        block.extend([0x66, 0x00]);
        assert_eq!(
            parse_pump_transactions(&block).unwrap(),
            vec![
                PumpTransaction::Unknown {
                    code: 0x44,
                    bytes: vec![0xAA, 0xBB, 0xCC]
                },
                PumpTransaction::Status(PumpStatus::Filling),
                PumpTransaction::Unknown {
                    code: 0x66,
                    bytes: vec![]
                },
            ]
        );
    }

    #[test]
    fn truncated_block_is_an_error() {
        assert_eq!(
            parse_pump_transactions(&[0x02, 0x08, 0x00]),
            Err(TransactionError::Truncated { code: 0x02 })
        );
        assert_eq!(
            parse_pump_transactions(&[0x01]),
            Err(TransactionError::Truncated { code: 0x01 })
        );
    }

    #[test]
    fn nozzle_io_bits() {
        let t = PumpTransaction::parse(0x03, &[0x00, 0x07, 0x85, 0x12]).unwrap();
        assert_eq!(
            t,
            PumpTransaction::PriceNozzle {
                price: 785,
                nozzle: 2,
                nozzle_out: true
            }
        );
    }

    #[test]
    fn all_pump_transactions_round_trip() {
        let txs = vec![
            PumpTransaction::Status(PumpStatus::Other(3)),
            PumpTransaction::FillingInfo {
                volume: 3000,
                amount: 23550,
            },
            PumpTransaction::PriceNozzle {
                price: 785,
                nozzle: 1,
                nozzle_out: true,
            },
            PumpTransaction::Alarm(9),
            PumpTransaction::Parameters(vec![1, 2, 3]),
            PumpTransaction::Identity(1234567890),
            PumpTransaction::VolumeTotals {
                nozzle: 2,
                total: 9_876_543_210,
                total1: 1,
                total2: 0,
            },
        ];
        let block = encode_pump_transactions(&txs);
        assert_eq!(parse_pump_transactions(&block).unwrap(), txs);
    }

    #[test]
    fn all_master_transactions_round_trip() {
        let txs = vec![
            MasterTransaction::Command(Command::Authorize),
            MasterTransaction::Command(Command::Reset),
            MasterTransaction::AllowedNozzles(vec![1, 2]),
            MasterTransaction::PresetVolume(5000),
            MasterTransaction::PresetAmount(10_000),
            MasterTransaction::Prices(vec![785, 832]),
            MasterTransaction::RequestTotals { nozzle: 1 },
        ];
        let block = encode_master_transactions(&txs);
        assert_eq!(parse_master_transactions(&block).unwrap(), txs);
        assert_eq!(&block[..3], &[0x01, 0x01, 0x06]);
    }
}
