//! Classic pcap: a 24-byte file header, then records of a 16-byte header and
//! the captured bytes. Microsecond (`a1b2c3d4`) and nanosecond (`a1b23c4d`)
//! magics, in either byte order.

use pcap_parser::parse_pcap_header;

use crate::error::{u64_of, CaptureError};
use crate::RawRecord;

/// Size of the pcap file header.
pub(crate) const FILE_HEADER_LEN: usize = 24;
/// Size of a pcap record header.
const RECORD_HEADER_LEN: usize = 16;
/// libpcap's `MAXIMUM_SNAPLEN`: as libpcap does, a record whose captured
/// length is larger is taken as a corrupt header (reading stops there).
const MAXIMUM_SNAPLEN: u32 = 262_144;

/// What the pcap file header says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcapHeader {
    /// Timestamps' fraction is in nanoseconds (else microseconds).
    pub(crate) nanos: bool,
    /// The file is big-endian.
    pub(crate) big_endian: bool,
    /// The link type (low 16 bits of the header's field; the upper bits
    /// carry FCS information).
    pub(crate) link_type: u32,
    /// The snapshot length as libpcap takes it (`MAXIMUM_SNAPLEN` when the
    /// header says 0 or more): a record captured longer than that (a writer
    /// bug) is cut to it, as libpcap does.
    pub(crate) snapshot: u32,
}

/// Parses and checks the 24-byte file header.
pub(crate) fn parse_header(file: &str, data: &[u8]) -> Result<PcapHeader, CaptureError> {
    if data.len() < FILE_HEADER_LEN {
        return Err(CaptureError::Truncated {
            file: file.to_owned(),
            what: "pcap file header",
            offset: 0,
            needed: u64_of(FILE_HEADER_LEN),
            remain: u64_of(data.len()),
        });
    }
    let corrupt = |detail: String| CaptureError::Corrupt {
        file: file.to_owned(),
        what: "pcap file header",
        offset: 0,
        detail,
    };
    // The modified (Kuznetzov) format has 24-byte record headers; pcap-parser
    // knows only its little-endian magic.
    if matches!(
        data.first_chunk::<4>(),
        Some([0xA1, 0xB2, 0xCD, 0x34] | [0x34, 0xCD, 0xB2, 0xA1])
    ) {
        return Err(CaptureError::Unsupported {
            file: file.to_owned(),
            detail: "modified (Kuznetzov) pcap, magic 0xa1b2cd34".to_owned(),
        });
    }
    let header = match parse_pcap_header(data) {
        Ok((_, h)) => h,
        Err(e) => return Err(corrupt(format!("pcap-parser rejected it: {e:?}"))),
    };
    // As libpcap: versions before 2 are refused, later ones are read.
    if header.version_major < 2 {
        return Err(corrupt(format!(
            "archaic pcap version {}.{}",
            header.version_major, header.version_minor
        )));
    }
    // The link type field: bits 0-15 the link type, 16-25 reserved, 26-31 FCS.
    let network = header.network.0 as u32;
    Ok(PcapHeader {
        nanos: header.is_nanosecond_precision(),
        big_endian: header.is_bigendian(),
        link_type: network & 0xFFFF,
        snapshot: if header.snaplen == 0 || header.snaplen > MAXIMUM_SNAPLEN {
            MAXIMUM_SNAPLEN
        } else {
            header.snaplen
        },
    })
}

/// Cursor over the records of a classic pcap file.
#[derive(Debug)]
pub(crate) struct PcapReader {
    /// From the file header.
    header: PcapHeader,
}

impl PcapReader {
    /// A reader for a file with this header.
    pub(crate) fn new(header: PcapHeader) -> PcapReader {
        PcapReader { header }
    }

    /// Reads the record at `*pos` and advances `*pos` past it. `None` at the
    /// clean end of the file. The error is boxed to keep the per-record
    /// result small: that makes the record loop about 30% faster.
    #[inline]
    pub(crate) fn next<'a>(
        &mut self,
        file: &str,
        data: &'a [u8],
        pos: &mut usize,
    ) -> Option<Result<RawRecord<'a>, Box<CaptureError>>> {
        let rest = data.get(*pos..)?;
        if rest.is_empty() {
            return None;
        }
        let h = &self.header;
        // The record header is read here rather than with pcap-parser's
        // `parse_pcap_frame`: inlined, this loop runs about 1.5 times faster.
        let Some((hdr, body)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
            return Some(Err(Box::new(self.record_error(file, rest, *pos))));
        };
        let field = |i: usize| {
            let b = [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
            if h.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (ts_sec, ts_frac, caplen, origlen) = (field(0), field(4), field(8), field(12));
        let frame = match body.get(..caplen as usize) {
            Some(frame) if caplen <= MAXIMUM_SNAPLEN => frame,
            _ => return Some(Err(Box::new(self.record_error(file, rest, *pos)))),
        };
        // The frame was taken from `rest`: no overflow.
        *pos += RECORD_HEADER_LEN + frame.len();
        let frame = if caplen > h.snapshot {
            frame.get(..h.snapshot as usize).unwrap_or(frame)
        } else {
            frame
        };
        let frac = u64::from(ts_frac);
        let frac_ns = if h.nanos { frac } else { frac * 1_000 };
        // u32::MAX * 1e9 + u32::MAX * 1e3 < u64::MAX: no overflow.
        let ts_ns = u64::from(ts_sec) * 1_000_000_000 + frac_ns;
        Some(Ok(RawRecord {
            ts_ns,
            interface: 0,
            link_type: h.link_type,
            orig_len: origlen,
            frame,
            big_endian: h.big_endian,
        }))
    }

    /// Builds the error for the record at `offset` whose header is `rest`
    /// (cold path: the header or the data is cut short, or the length is
    /// insane).
    #[cold]
    fn record_error(&self, file: &str, rest: &[u8], offset: usize) -> CaptureError {
        let offset = u64_of(offset);
        let Some(hdr) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
            return CaptureError::Truncated {
                file: file.to_owned(),
                what: "record header",
                offset,
                needed: u64_of(RECORD_HEADER_LEN),
                remain: u64_of(rest.len()),
            };
        };
        let b = [hdr[8], hdr[9], hdr[10], hdr[11]];
        let caplen = if self.header.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        if caplen > MAXIMUM_SNAPLEN {
            return CaptureError::Corrupt {
                file: file.to_owned(),
                what: "record header",
                offset,
                detail: format!(
                    "captured length {caplen} is larger than the maximum of \
                     {MAXIMUM_SNAPLEN} bytes"
                ),
            };
        }
        CaptureError::TruncatedRecord {
            file: file.to_owned(),
            what: "record",
            offset,
            needed: u64::from(caplen),
            remain: u64_of(rest.len().saturating_sub(RECORD_HEADER_LEN)),
        }
    }
}
