//! Builders for small captures made by hand in memory: pcap and pcapng files
//! in either byte order, and link-layer frames around IP packets.

#![allow(dead_code, unreachable_pub)]

use ctrack_capture::{Capture, CaptureError, Record};

/// A minimal IPv4 header (20 bytes, total length = 20 + payload) + payload.
pub fn ipv4(payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("small packet");
    let mut v = vec![0x45, 0x00];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 6, 0, 0]);
    v.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    v.extend_from_slice(payload);
    v
}

/// A minimal IPv6 header (40 bytes) + payload.
pub fn ipv6(payload: &[u8]) -> Vec<u8> {
    let plen = u16::try_from(payload.len()).expect("small packet");
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&plen.to_be_bytes());
    v.extend_from_slice(&[17, 64]);
    v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    v.extend_from_slice(&[0; 11]);
    v.push(1);
    v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    v.extend_from_slice(&[0; 11]);
    v.push(2);
    v.extend_from_slice(payload);
    v
}

/// An Ethernet frame: MACs, then each (tpid, tci) tag, then the ethertype and payload.
pub fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for &(tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A Linux cooked v1 frame (16-byte header) with this protocol.
pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0];
    v.extend_from_slice(&protocol.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A Linux cooked v2 frame (20-byte header) with this protocol.
pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = protocol.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0, 1, 0, 6]);
    v.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(payload);
    v
}

/// A BSD NULL / LOOP frame: the family as 4 bytes in the given order.
pub fn null(family: u32, big_endian: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = if big_endian {
        family.to_be_bytes().to_vec()
    } else {
        family.to_le_bytes().to_vec()
    };
    v.extend_from_slice(payload);
    v
}

/// An NFLOG frame: header (family, version 0, resource id 42) then TLVs
/// (type, value) with host-order lengths, each padded to 4.
pub fn nflog(family: u8, big_endian: bool, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = vec![family, 0, 0, 42];
    for &(t, value) in tlvs {
        let len = u16::try_from(4 + value.len()).expect("small TLV");
        v.extend_from_slice(&u16b(len, big_endian));
        v.extend_from_slice(&u16b(t, big_endian));
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }
    v
}

/// A u16 in the given order.
pub fn u16b(x: u16, be: bool) -> [u8; 2] {
    if be {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    }
}

/// A u32 in the given order.
pub fn u32b(x: u32, be: bool) -> [u8; 4] {
    if be {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    }
}

/// A classic pcap file being built.
pub struct Pcap {
    /// The bytes so far.
    pub bytes: Vec<u8>,
    /// Byte order.
    pub be: bool,
}

impl Pcap {
    /// File header: magic (µs or ns) in the given order, version 2.4, snaplen, link type field.
    pub fn new(nanos: bool, be: bool, snaplen: u32, network: u32) -> Pcap {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32b(magic, be));
        bytes.extend_from_slice(&u16b(2, be));
        bytes.extend_from_slice(&u16b(4, be));
        bytes.extend_from_slice(&u32b(0, be));
        bytes.extend_from_slice(&u32b(0, be));
        bytes.extend_from_slice(&u32b(snaplen, be));
        bytes.extend_from_slice(&u32b(network, be));
        Pcap { bytes, be }
    }

    /// Appends a record (orig_len = frame length).
    pub fn record(mut self, sec: u32, frac: u32, frame: &[u8]) -> Pcap {
        let len = u32::try_from(frame.len()).expect("small frame");
        self.raw_record(sec, frac, len, len, frame);
        self
    }

    /// Appends a record with explicit header lengths.
    pub fn raw_record(&mut self, sec: u32, frac: u32, caplen: u32, orig: u32, data: &[u8]) {
        let be = self.be;
        self.bytes.extend_from_slice(&u32b(sec, be));
        self.bytes.extend_from_slice(&u32b(frac, be));
        self.bytes.extend_from_slice(&u32b(caplen, be));
        self.bytes.extend_from_slice(&u32b(orig, be));
        self.bytes.extend_from_slice(data);
    }
}

/// A pcapng file being built.
#[derive(Default)]
pub struct Ng {
    /// The bytes so far.
    pub bytes: Vec<u8>,
    /// Byte order of the current section.
    pub be: bool,
}

/// pcapng option: `if_tsresol`.
pub const IF_TSRESOL: u16 = 9;
/// pcapng option: `if_tsoffset`.
pub const IF_TSOFFSET: u16 = 14;

impl Ng {
    /// An empty file.
    pub fn new() -> Ng {
        Ng::default()
    }

    /// Appends a block of this type and body (padded to 4), lengths in the
    /// section's order.
    pub fn block(mut self, block_type: u32, body: &[u8]) -> Ng {
        let be = self.be;
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = u32::try_from(12 + body.len()).expect("small block");
        self.bytes.extend_from_slice(&u32b(block_type, be));
        self.bytes.extend_from_slice(&u32b(len, be));
        self.bytes.extend_from_slice(&body);
        self.bytes.extend_from_slice(&u32b(len, be));
        self
    }

    /// Encodes options (code, value) followed by opt_endofopt.
    pub fn options(be: bool, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        if opts.is_empty() {
            return v;
        }
        for &(code, value) in opts {
            v.extend_from_slice(&u16b(code, be));
            v.extend_from_slice(&u16b(u16::try_from(value.len()).expect("small"), be));
            v.extend_from_slice(value);
            while v.len() % 4 != 0 {
                v.push(0);
            }
        }
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    /// A Section Header Block in this byte order (version 1.0, unknown section length).
    pub fn shb(mut self, be: bool) -> Ng {
        self.be = be;
        let mut body = Vec::new();
        body.extend_from_slice(&u32b(0x1A2B_3C4D, be));
        body.extend_from_slice(&u16b(1, be));
        body.extend_from_slice(&u16b(0, be));
        body.extend_from_slice(&[0xFF; 8]);
        body.extend_from_slice(&Ng::options(be, &[(4, b"ctrack test")]));
        self.block(0x0A0D_0D0A, &body)
    }

    /// An Interface Description Block.
    pub fn idb(self, link_type: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> Ng {
        let be = self.be;
        let mut body = Vec::new();
        body.extend_from_slice(&u16b(link_type, be));
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&u32b(snaplen, be));
        body.extend_from_slice(&Ng::options(be, opts));
        self.block(1, &body)
    }

    /// An Enhanced Packet Block (orig_len = frame length).
    pub fn epb(self, if_id: u32, ts: u64, frame: &[u8]) -> Ng {
        let len = u32::try_from(frame.len()).expect("small");
        self.epb_full(if_id, ts, len, len, frame, &[])
    }

    /// An Enhanced Packet Block with every field given.
    pub fn epb_full(
        self,
        if_id: u32,
        ts: u64,
        caplen: u32,
        orig: u32,
        data: &[u8],
        opts: &[(u16, &[u8])],
    ) -> Ng {
        let be = self.be;
        let mut body = Vec::new();
        body.extend_from_slice(&u32b(if_id, be));
        body.extend_from_slice(&u32b((ts >> 32) as u32, be));
        body.extend_from_slice(&u32b(ts as u32, be));
        body.extend_from_slice(&u32b(caplen, be));
        body.extend_from_slice(&u32b(orig, be));
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        body.extend_from_slice(&Ng::options(be, opts));
        self.block(6, &body)
    }

    /// A Simple Packet Block.
    pub fn spb(self, orig: u32, data: &[u8]) -> Ng {
        let be = self.be;
        let mut body = u32b(orig, be).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }

    /// An obsolete Packet Block.
    pub fn opb(self, if_id: u16, drops: u16, ts: u64, frame: &[u8]) -> Ng {
        let be = self.be;
        let len = u32::try_from(frame.len()).expect("small");
        let mut body = Vec::new();
        body.extend_from_slice(&u16b(if_id, be));
        body.extend_from_slice(&u16b(drops, be));
        body.extend_from_slice(&u32b((ts >> 32) as u32, be));
        body.extend_from_slice(&u32b(ts as u32, be));
        body.extend_from_slice(&u32b(len, be));
        body.extend_from_slice(&u32b(len, be));
        body.extend_from_slice(frame);
        self.block(2, &body)
    }
}

/// Every record of a capture built from bytes, panicking on any error.
pub fn all_records(cap: &Capture) -> Vec<Record<'_>> {
    cap.records()
        .collect::<Result<Vec<_>, CaptureError>>()
        .expect("no error")
}

/// Opens bytes as a capture named `test.pcap`, panicking on error.
pub fn cap(bytes: Vec<u8>) -> Capture {
    Capture::from_bytes("test.pcap", bytes).expect("opens")
}

/// Splits a record stream into the good records and the (single, final) error.
pub fn until_error(cap: &Capture) -> (Vec<Record<'_>>, Option<CaptureError>) {
    let mut good = Vec::new();
    let mut recs = cap.records();
    let mut err = None;
    while let Some(r) = recs.next_record() {
        match r {
            Ok(r) => good.push(r),
            Err(e) => {
                assert!(err.is_none(), "a second error after {e}");
                err = Some(e);
            }
        }
    }
    // The cursor stays finished.
    assert!(recs.next_record().is_none());
    (good, err)
}
