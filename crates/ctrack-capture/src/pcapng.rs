//! pcapng: sections (each opened by a Section Header Block that sets the
//! byte order), interfaces (Interface Description Blocks: link type,
//! `if_tsresol`, `if_tsoffset`), and packets (Enhanced, Simple and obsolete
//! Packet Blocks). Every other block is skipped.
//!
//! The block framing (lengths, trailer) is checked here, so that errors can
//! name the block's offset. Section and interface headers, with their
//! options, are parsed by `pcap-parser`; the three packet blocks are read
//! directly, because `pcap-parser` collects a packet block's options into a
//! `Vec` and this reader must not allocate per record.

use pcap_parser::{
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock, OptionCode,
};

use crate::error::{u64_of, CaptureError};
use crate::RawRecord;

/// The first four bytes of a pcapng file (the SHB type, a palindrome).
pub(crate) const SHB_MAGIC_BYTES: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
/// Section Header Block type.
const SHB_TYPE: u32 = 0x0A0D_0D0A;
/// Interface Description Block type.
const IDB_TYPE: u32 = 0x0000_0001;
/// Obsolete Packet Block type.
const OPB_TYPE: u32 = 0x0000_0002;
/// Simple Packet Block type.
const SPB_TYPE: u32 = 0x0000_0003;
/// Enhanced Packet Block type.
const EPB_TYPE: u32 = 0x0000_0006;
/// Byte-order magic as it appears in a little-endian section.
const BOM_LE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];
/// Byte-order magic as it appears in a big-endian section.
const BOM_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
/// Block type + length at the start, length again at the end.
const BLOCK_OVERHEAD: usize = 12;
/// Minimum Section Header Block length.
const SHB_MIN_LEN: usize = 28;
/// Minimum Interface Description Block length.
const IDB_MIN_LEN: usize = 20;

/// Reads a `u32` at `off` in the given byte order, if in bounds.
#[inline]
fn u32_at(b: &[u8], off: usize, big_endian: bool) -> Option<u32> {
    let v = u32::from_le_bytes(*b.get(off..)?.first_chunk::<4>()?);
    Some(if big_endian { v.swap_bytes() } else { v })
}

/// Converts an interface's timestamp ticks to nanoseconds.
#[derive(Clone, Copy, Debug)]
struct TsConv {
    /// How ticks become nanoseconds.
    scale: TsScale,
    /// `if_tsoffset`, in nanoseconds.
    offset_ns: i128,
}

/// The tick-to-nanosecond rule of one `if_tsresol`.
#[derive(Clone, Copy, Debug)]
enum TsScale {
    /// A tick is this many nanoseconds (resolutions 10^0..10^9, 2^0..2^9... that divide 1e9).
    Mul(u64),
    /// This many ticks make a nanosecond (10^10 and finer).
    Div(u64),
    /// Ticks per second that neither divides nor is a multiple of 1e9 (most powers of 2).
    PerSecond(u64),
}

impl TsConv {
    /// The converter for a raw `if_tsresol` byte and `if_tsoffset`, or
    /// `None` for a resolution that does not fit in 64 bits.
    fn new(tsresol: u8, tsoffset_s: i64) -> Option<TsConv> {
        let units: u64 = if tsresol & 0x80 == 0 {
            10u64.checked_pow(u32::from(tsresol))?
        } else {
            1u64.checked_shl(u32::from(tsresol & 0x7F))?
        };
        const NS: u64 = 1_000_000_000;
        let scale = if NS.is_multiple_of(units) {
            TsScale::Mul(NS / units)
        } else if units.is_multiple_of(NS) {
            TsScale::Div(units / NS)
        } else {
            TsScale::PerSecond(units)
        };
        Some(TsConv {
            scale,
            offset_ns: i128::from(tsoffset_s) * i128::from(NS),
        })
    }

    /// Nanoseconds since the epoch for a 64-bit tick count (saturating at
    /// 0 and `u64::MAX`).
    #[inline]
    fn to_ns(self, ticks: u64) -> u64 {
        let ns = match self.scale {
            TsScale::Mul(m) => ticks.saturating_mul(m),
            TsScale::Div(d) => ticks / d,
            TsScale::PerSecond(units) => {
                let ns = u128::from(ticks) * 1_000_000_000 / u128::from(units);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        };
        if self.offset_ns == 0 {
            ns
        } else {
            let shifted = (i128::from(ns) + self.offset_ns).clamp(0, i128::from(u64::MAX));
            u64::try_from(shifted).unwrap_or(u64::MAX)
        }
    }
}

/// One interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    /// Its link type.
    link_type: u32,
    /// Its snapshot length (0 = none): packets are cut to it.
    snaplen: u32,
    /// Its timestamp rule.
    ts: TsConv,
}

/// Cursor state over the blocks of a pcapng file.
#[derive(Debug, Default)]
pub(crate) struct PcapNgReader {
    /// Byte order of the current section.
    big_endian: bool,
    /// Interfaces of the current section, by id.
    interfaces: Vec<Interface>,
}

/// A block whose framing has been checked.
struct Block<'a> {
    /// Block type, in the section's byte order.
    block_type: u32,
    /// The whole block, header and trailer included.
    bytes: &'a [u8],
}

impl<'a> Block<'a> {
    /// The block body, between the 8-byte header and the 4-byte trailer.
    fn body(&self) -> &'a [u8] {
        self.bytes
            .get(8..self.bytes.len().saturating_sub(4))
            .unwrap_or(&[])
    }
}

impl PcapNgReader {
    /// A reader at the start of the file.
    pub(crate) fn new() -> PcapNgReader {
        PcapNgReader::default()
    }

    /// Checks the first Section Header Block (for `Capture::open`, so that a
    /// file with a broken first header fails to open).
    pub(crate) fn check_first_section(file: &str, data: &[u8]) -> Result<(), CaptureError> {
        let mut reader = PcapNgReader::new();
        let block = reader.frame_block(file, data, 0)?;
        reader.section(file, &block, 0)
    }

    /// Reads blocks from `*pos` until a packet block, which it returns;
    /// `*pos` ends past it. `None` at the clean end of the file. The error
    /// is boxed to keep the per-record result small.
    #[inline]
    pub(crate) fn next<'a>(
        &mut self,
        file: &str,
        data: &'a [u8],
        pos: &mut usize,
    ) -> Option<Result<RawRecord<'a>, Box<CaptureError>>> {
        loop {
            let offset = *pos;
            if offset >= data.len() {
                return None;
            }
            let block = match self.frame_block(file, data, offset) {
                Ok(b) => b,
                Err(e) => return Some(Err(Box::new(e))),
            };
            *pos = offset + block.bytes.len();
            let result = match block.block_type {
                EPB_TYPE => self.enhanced_packet(file, &block, offset),
                SPB_TYPE => self.simple_packet(file, &block, offset),
                OPB_TYPE => self.obsolete_packet(file, &block, offset),
                SHB_TYPE => match self.section(file, &block, offset) {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
                IDB_TYPE => match self.interface(file, &block, offset) {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
                _ => continue,
            };
            return Some(result.map_err(Box::new));
        }
    }

    /// Checks the framing of the block at `offset`: header present, length
    /// sane and within the file, trailer equal to the header's length. For
    /// a Section Header Block, first takes its byte order.
    #[inline]
    fn frame_block<'a>(
        &mut self,
        file: &str,
        data: &'a [u8],
        offset: usize,
    ) -> Result<Block<'a>, CaptureError> {
        let rest = data.get(offset..).unwrap_or(&[]);
        let Some(head) = rest.first_chunk::<BLOCK_OVERHEAD>() else {
            return Err(CaptureError::Truncated {
                file: file.to_owned(),
                what: "block header",
                offset: u64_of(offset),
                needed: u64_of(BLOCK_OVERHEAD),
                remain: u64_of(rest.len()),
            });
        };
        let corrupt = |what: &'static str, detail: String| CaptureError::Corrupt {
            file: file.to_owned(),
            what,
            offset: u64_of(offset),
            detail,
        };
        if head[..4] == SHB_MAGIC_BYTES {
            let bom = [head[8], head[9], head[10], head[11]];
            self.big_endian = match bom {
                BOM_LE => false,
                BOM_BE => true,
                _ => {
                    return Err(corrupt(
                        "section header block",
                        format!("unknown byte-order magic 0x{:08x}", u32::from_be_bytes(bom)),
                    ))
                }
            };
        }
        let be = self.big_endian;
        let block_type = u32_at(head, 0, be).unwrap_or(0);
        let block_len = u32_at(head, 4, be).unwrap_or(0);
        if !block_len.is_multiple_of(4) || (block_len as usize) < BLOCK_OVERHEAD {
            return Err(corrupt(
                "block header",
                format!("block length {block_len} is not a multiple of 4 of at least 12"),
            ));
        }
        let len = block_len as usize;
        let Some(bytes) = rest.get(..len) else {
            return Err(CaptureError::TruncatedRecord {
                file: file.to_owned(),
                what: "block",
                offset: u64_of(offset),
                needed: u64::from(block_len),
                remain: u64_of(rest.len()),
            });
        };
        let trailer = u32_at(bytes, len - 4, be).unwrap_or(0);
        if trailer != block_len {
            return Err(corrupt(
                "block",
                format!(
                    "block of type 0x{block_type:08x}: trailing length {trailer} differs from \
                     leading length {block_len}"
                ),
            ));
        }
        Ok(Block { block_type, bytes })
    }

    /// A Section Header Block: new byte order (already taken by
    /// `frame_block`), forget the interfaces.
    fn section(
        &mut self,
        file: &str,
        block: &Block<'_>,
        offset: usize,
    ) -> Result<(), CaptureError> {
        let corrupt = |detail: String| CaptureError::Corrupt {
            file: file.to_owned(),
            what: "section header block",
            offset: u64_of(offset),
            detail,
        };
        if block.bytes.len() < SHB_MIN_LEN {
            return Err(corrupt(format!(
                "length {} is below the minimum of {SHB_MIN_LEN}",
                block.bytes.len()
            )));
        }
        let shb = match parse_sectionheaderblock(block.bytes) {
            Ok((_, shb)) => shb,
            Err(e) => return Err(corrupt(format!("pcap-parser rejected it: {e:?}"))),
        };
        if shb.major_version != 1 {
            return Err(corrupt(format!(
                "unsupported pcapng version {}.{}",
                shb.major_version, shb.minor_version
            )));
        }
        self.interfaces.clear();
        Ok(())
    }

    /// An Interface Description Block: a new interface for this section.
    fn interface(
        &mut self,
        file: &str,
        block: &Block<'_>,
        offset: usize,
    ) -> Result<(), CaptureError> {
        let corrupt = |detail: String| CaptureError::Corrupt {
            file: file.to_owned(),
            what: "interface description block",
            offset: u64_of(offset),
            detail,
        };
        if block.bytes.len() < IDB_MIN_LEN {
            return Err(corrupt(format!(
                "length {} is below the minimum of {IDB_MIN_LEN}",
                block.bytes.len()
            )));
        }
        let be = self.big_endian;
        let parsed = if be {
            parse_interfacedescriptionblock_be(block.bytes)
        } else {
            parse_interfacedescriptionblock_le(block.bytes)
        };
        let idb = match parsed {
            Ok((_, idb)) => idb,
            Err(e) => return Err(corrupt(format!("pcap-parser rejected it: {e:?}"))),
        };
        // pcap-parser keeps the raw if_tsresol byte (default 6) but reads
        // if_tsoffset as little-endian whatever the section's order, so read
        // that one here.
        let mut tsoffset: i64 = 0;
        for opt in &idb.options {
            if opt.code == OptionCode::IfTsoffset {
                if let Some(b) = opt.as_bytes().ok().and_then(|b| b.first_chunk::<8>()) {
                    tsoffset = if be {
                        i64::from_be_bytes(*b)
                    } else {
                        i64::from_le_bytes(*b)
                    };
                }
            }
        }
        let ts = TsConv::new(idb.if_tsresol, tsoffset).ok_or_else(|| {
            corrupt(format!(
                "if_tsresol 0x{:02x} gives a resolution finer than 64 bits can count",
                idb.if_tsresol
            ))
        })?;
        self.interfaces.push(Interface {
            link_type: (idb.linktype.0 as u32) & 0xFFFF,
            snaplen: idb.snaplen,
            ts,
        });
        Ok(())
    }

    /// The interface a packet block names, or the error.
    #[inline]
    fn lookup(
        &self,
        file: &str,
        what: &'static str,
        if_id: u32,
        offset: usize,
    ) -> Result<Interface, CaptureError> {
        usize::try_from(if_id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .copied()
            .ok_or_else(|| CaptureError::Corrupt {
                file: file.to_owned(),
                what,
                offset: u64_of(offset),
                detail: format!(
                    "packet of interface {if_id}, but the section has {} interface(s)",
                    self.interfaces.len()
                ),
            })
    }

    /// Builds the record of an Enhanced or obsolete Packet Block from its
    /// fixed fields (`data` follows them in the body).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn packet<'a>(
        &self,
        file: &str,
        what: &'static str,
        offset: usize,
        if_id: u32,
        ticks: u64,
        caplen: u32,
        orig_len: u32,
        data: &'a [u8],
    ) -> Result<RawRecord<'a>, CaptureError> {
        let iface = self.lookup(file, what, if_id, offset)?;
        let Some(frame) = data.get(..caplen as usize) else {
            return Err(CaptureError::Corrupt {
                file: file.to_owned(),
                what,
                offset: u64_of(offset),
                detail: format!(
                    "captured length {caplen} is larger than the block's {} bytes of packet data",
                    data.len()
                ),
            });
        };
        // As libpcap: a packet captured longer than its interface's snapshot
        // length (a writer bug) is cut to it.
        let frame = if iface.snaplen != 0 && caplen > iface.snaplen {
            frame.get(..iface.snaplen as usize).unwrap_or(frame)
        } else {
            frame
        };
        Ok(RawRecord {
            ts_ns: iface.ts.to_ns(ticks),
            interface: if_id,
            link_type: iface.link_type,
            orig_len,
            frame,
            big_endian: self.big_endian,
        })
    }

    /// An Enhanced Packet Block: interface id, 64-bit timestamp, captured
    /// and original lengths, data, options (ignored).
    #[inline]
    fn enhanced_packet<'a>(
        &self,
        file: &str,
        block: &Block<'a>,
        offset: usize,
    ) -> Result<RawRecord<'a>, CaptureError> {
        const WHAT: &str = "enhanced packet block";
        let body = block.body();
        let be = self.big_endian;
        let (Some(if_id), Some(hi), Some(lo), Some(caplen), Some(orig_len), Some(data)) = (
            u32_at(body, 0, be),
            u32_at(body, 4, be),
            u32_at(body, 8, be),
            u32_at(body, 12, be),
            u32_at(body, 16, be),
            body.get(20..),
        ) else {
            return Err(short_block(file, WHAT, offset, block));
        };
        let ticks = (u64::from(hi) << 32) | u64::from(lo);
        self.packet(file, WHAT, offset, if_id, ticks, caplen, orig_len, data)
    }

    /// An obsolete Packet Block: 16-bit interface id, 16-bit drop count,
    /// then as an Enhanced Packet Block.
    fn obsolete_packet<'a>(
        &self,
        file: &str,
        block: &Block<'a>,
        offset: usize,
    ) -> Result<RawRecord<'a>, CaptureError> {
        const WHAT: &str = "packet block";
        let body = block.body();
        let be = self.big_endian;
        let (Some(id_drops), Some(hi), Some(lo), Some(caplen), Some(orig_len), Some(data)) = (
            u32_at(body, 0, be),
            u32_at(body, 4, be),
            u32_at(body, 8, be),
            u32_at(body, 12, be),
            u32_at(body, 16, be),
            body.get(20..),
        ) else {
            return Err(short_block(file, WHAT, offset, block));
        };
        // interface_id (u16) comes first, then drops_count (u16).
        let if_id = if be {
            id_drops >> 16
        } else {
            id_drops & 0xFFFF
        };
        let ticks = (u64::from(hi) << 32) | u64::from(lo);
        self.packet(file, WHAT, offset, if_id, ticks, caplen, orig_len, data)
    }

    /// A Simple Packet Block: original length, data; interface 0, no
    /// timestamp (0). The captured length is the smallest of the original
    /// length, the interface's snapshot length and the data present.
    fn simple_packet<'a>(
        &self,
        file: &str,
        block: &Block<'a>,
        offset: usize,
    ) -> Result<RawRecord<'a>, CaptureError> {
        const WHAT: &str = "simple packet block";
        let body = block.body();
        let (Some(orig_len), Some(data)) = (u32_at(body, 0, self.big_endian), body.get(4..)) else {
            return Err(short_block(file, WHAT, offset, block));
        };
        let iface = self.lookup(file, WHAT, 0, offset)?;
        let mut caplen = data.len().min(orig_len as usize);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        Ok(RawRecord {
            ts_ns: 0,
            interface: 0,
            link_type: iface.link_type,
            orig_len,
            frame: data.get(..caplen).unwrap_or(data),
            big_endian: self.big_endian,
        })
    }
}

/// The error for a packet block too short for its fixed fields.
#[cold]
fn short_block(file: &str, what: &'static str, offset: usize, block: &Block<'_>) -> CaptureError {
    CaptureError::Corrupt {
        file: file.to_owned(),
        what,
        offset: u64_of(offset),
        detail: format!(
            "block length {} is too short for its fixed fields",
            block.bytes.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::TsConv;

    #[test]
    fn ts_conversions() {
        // microseconds, nanoseconds, 10^-10 s, 2^-20 s, 2^-30 s, whole seconds
        assert_eq!(
            TsConv::new(6, 0).map(|c| c.to_ns(1_500_000)),
            Some(1_500_000_000)
        );
        assert_eq!(TsConv::new(9, 0).map(|c| c.to_ns(7)), Some(7));
        assert_eq!(TsConv::new(10, 0).map(|c| c.to_ns(25)), Some(2));
        assert_eq!(
            TsConv::new(0x80 | 20, 0).map(|c| c.to_ns(3 << 19)),
            Some(1_500_000_000)
        );
        assert_eq!(
            TsConv::new(0x80 | 30, 0).map(|c| c.to_ns(1 << 29)),
            Some(500_000_000)
        );
        assert_eq!(TsConv::new(0, 0).map(|c| c.to_ns(2)), Some(2_000_000_000));
        assert_eq!(
            TsConv::new(0x80, 0).map(|c| c.to_ns(2)),
            Some(2_000_000_000)
        );
        // 2^-3: 1 tick = 125 ms, an exact multiple.
        assert_eq!(
            TsConv::new(0x83, 0).map(|c| c.to_ns(9)),
            Some(1_125_000_000)
        );
        // offsets, both signs, saturating
        assert_eq!(
            TsConv::new(6, 100).map(|c| c.to_ns(1)),
            Some(100_000_001_000)
        );
        assert_eq!(TsConv::new(6, -100).map(|c| c.to_ns(1)), Some(0));
        assert_eq!(TsConv::new(9, i64::MAX).map(|c| c.to_ns(1)), Some(u64::MAX));
        assert_eq!(TsConv::new(6, 0).map(|c| c.to_ns(u64::MAX)), Some(u64::MAX));
        // resolutions that do not fit
        assert!(TsConv::new(20, 0).is_none());
        assert!(TsConv::new(0x80 | 64, 0).is_none());
        assert!(TsConv::new(19, 0).is_some());
        assert!(TsConv::new(0x80 | 63, 0).is_some());
    }
}
