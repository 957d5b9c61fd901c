//! `ctrack replay --write OUT.pcap`: the packets as they leave the router (NAT applied,
//! dropped and locally delivered packets absent), as a nanosecond pcap of raw IP
//! (linktype 101), written with pcap-parser's serializer.

use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec};
use std::io::Write;

/// A pcap file being written.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header (nanosecond timestamps, raw IPv4/IPv6 records).
    pub fn new(mut out: W) -> std::io::Result<PcapWriter<W>> {
        let mut h = PcapHeader::new();
        h.magic_number = 0xa1b2_3c4d;
        h.snaplen = 262_144;
        h.network = Linktype::RAW;
        let bytes = h
            .to_vec()
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        out.write_all(&bytes)?;
        Ok(PcapWriter { out })
    }

    /// Append one IP packet captured at `ts_ns`.
    pub fn packet(&mut self, ts_ns: u64, l3: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(l3.len()).unwrap_or(u32::MAX);
        let b = LegacyPcapBlock {
            ts_sec: (ts_ns / 1_000_000_000) as u32,
            ts_usec: (ts_ns % 1_000_000_000) as u32,
            caplen: len,
            origlen: len,
            data: l3,
        };
        let bytes = b
            .to_vec_raw()
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        self.out.write_all(&bytes)
    }

    /// Flush and return the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let pkt = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        w.packet(1_500_000_001, &pkt).unwrap();
        let bytes = w.finish().unwrap();
        let cap = ctrack_capture::Capture::from_bytes("out.pcap", bytes).unwrap();
        let mut recs = cap.records();
        let r = recs.next_record().unwrap().unwrap();
        assert_eq!(r.ts_ns, 1_500_000_001);
        assert_eq!(r.payload.l3(), Some(&pkt[..]));
    }
}
