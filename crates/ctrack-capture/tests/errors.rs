//! Bad magic, truncated and corrupt files: the error names the file and the
//! byte offset, every good record comes first, nothing comes after, and no
//! input makes the reader panic.

mod common;

use common::*;
use ctrack_capture::{Capture, CaptureError};

/// Opening must fail; returns the error's text.
#[track_caller]
fn open_err(name: &str, bytes: Vec<u8>) -> CaptureError {
    match Capture::from_bytes(name, bytes) {
        Ok(c) => panic!("{name} opened as {:?}", c.format()),
        Err(e) => e,
    }
}

#[test]
fn bad_magic_names_what_was_found() {
    let e = open_err("notes.pcap", b"hello world, this is text".to_vec());
    assert!(matches!(e, CaptureError::BadMagic { .. }));
    assert_eq!(
        e.to_string(),
        "notes.pcap: not a pcap or pcapng file: unknown magic 0x68656c6c at byte offset 0"
    );
    assert_eq!(e.offset(), Some(0));
    assert_eq!(e.file(), "notes.pcap");

    let e = open_err("x.pcap.gz", vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0]);
    assert_eq!(
        e.to_string(),
        "x.pcap.gz: not a pcap or pcapng file: unknown magic 0x1f8b0800 \
         (gzip-compressed? decompress it first) at byte offset 0"
    );

    let e = open_err("tiny", vec![0xd4, 0xc3]);
    assert_eq!(
        e.to_string(),
        "tiny: not a pcap or pcapng file: file is only 2 bytes long, no magic number at byte offset 0"
    );
}

#[test]
fn pcap_file_header_problems() {
    let full = Pcap::new(false, false, 65535, 1).bytes;
    let e = open_err("short.pcap", full[..10].to_vec());
    assert_eq!(
        e.to_string(),
        "short.pcap: truncated pcap file header at byte offset 0 (24 bytes needed, 10 remain)"
    );
    assert!(e.is_truncation());

    let mut v1 = full.clone();
    v1[4] = 1;
    let e = open_err("v1.pcap", v1);
    assert_eq!(
        e.to_string(),
        "v1.pcap: corrupt pcap file header at byte offset 0: archaic pcap version 1.4"
    );

    for magic in [0xa1b2_cd34u32.to_le_bytes(), 0xa1b2_cd34u32.to_be_bytes()] {
        let mut modified = full.clone();
        modified[..4].copy_from_slice(&magic);
        let e = open_err("kuz.pcap", modified);
        assert!(matches!(e, CaptureError::Unsupported { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "kuz.pcap: unsupported capture format at byte offset 0: modified (Kuznetzov) pcap, magic 0xa1b2cd34"
        );
    }
}

#[test]
fn pcap_truncated_record_yields_good_records_then_the_error() {
    for be in [false, true] {
        let frame = eth(&[], 0x0800, &ipv4(&[0; 40]));
        let mut p = Pcap::new(false, be, 65535, 1)
            .record(1, 0, &frame)
            .record(2, 0, &frame);
        let third = p.bytes.len();
        // The third record says 1514 bytes but only 60 follow.
        p.raw_record(3, 0, 1514, 1514, &[0; 60]);
        let c = Capture::from_bytes("zeek__x.pcap", p.bytes).expect("opens");
        let (good, err) = until_error(&c);
        assert_eq!(good.len(), 2);
        assert_eq!((good[0].index, good[1].index), (0, 1));
        let e = err.expect("an error");
        assert_eq!(
            e.to_string(),
            format!(
                "zeek__x.pcap: truncated record at byte offset {third} (header says 1514 bytes, 60 remain)"
            )
        );
        assert_eq!(e.offset(), Some(third as u64));
        assert!(e.is_truncation());
    }
}

#[test]
fn pcap_truncated_record_header() {
    let frame = eth(&[], 0x0800, &ipv4(b""));
    let mut bytes = Pcap::new(true, false, 65535, 1).record(1, 0, &frame).bytes;
    let at = bytes.len();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    let c = cap(bytes);
    let (good, err) = until_error(&c);
    assert_eq!(good.len(), 1);
    assert_eq!(
        err.expect("an error").to_string(),
        format!(
            "test.pcap: truncated record header at byte offset {at} (16 bytes needed, 7 remain)"
        )
    );
}

#[test]
fn pcap_insane_capture_length_is_corrupt_not_truncated() {
    let mut p = Pcap::new(false, false, 65535, 1);
    let at = p.bytes.len();
    p.raw_record(1, 0, 0xFFFF_FFF0, 60, &[0; 60]);
    let c = cap(p.bytes);
    let (good, err) = until_error(&c);
    assert!(good.is_empty());
    let e = err.expect("an error");
    assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
    assert!(!e.is_truncation());
    assert_eq!(
        e.to_string(),
        format!(
            "test.pcap: corrupt record header at byte offset {at}: captured length 4294967280 \
             is larger than the maximum of 262144 bytes"
        )
    );
    // As libpcap: just over the maximum, and present, is still corrupt...
    let mut p = Pcap::new(false, false, 0, 101);
    p.raw_record(1, 0, 262_145, 262_145, &vec![0x45; 262_145]);
    let c = cap(p.bytes);
    let (good, err) = until_error(&c);
    assert!(good.is_empty());
    assert!(matches!(err, Some(CaptureError::Corrupt { .. })));
    // ...and larger than the snapshot length but not insane is cut to the
    // snapshot length; the next record is found after the whole data.
    let big = vec![0x45; 70_000];
    let bytes = Pcap::new(false, false, 1500, 101)
        .record(1, 0, &big)
        .record(2, 0, &[0x60; 40])
        .bytes;
    let c = cap(bytes);
    let recs = all_records(&c);
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].frame.len(), recs[0].orig_len), (1500, 70_000));
    assert_eq!((recs[1].frame.len(), recs[1].ts_ns), (40, 2_000_000_000));
}

/// A valid little-endian pcapng prefix: SHB, IDB, one EPB. Returns the bytes.
fn ng_prefix(be: bool) -> Vec<u8> {
    Ng::new()
        .shb(be)
        .idb(1, 0, &[])
        .epb(0, 1, &eth(&[], 0x0800, &ipv4(b"ok")))
        .bytes
}

/// Reads bytes expected to give `good` records then an error; returns its text.
#[track_caller]
fn ng_error(bytes: Vec<u8>, good: usize) -> (String, u64) {
    let c = Capture::from_bytes("t.pcapng", bytes).expect("opens");
    let (recs, err) = until_error(&c);
    assert_eq!(recs.len(), good);
    let e = err.expect("an error");
    (e.to_string(), e.offset().expect("an offset"))
}

#[test]
fn pcapng_truncated_block_and_block_header() {
    for be in [false, true] {
        let mut bytes = ng_prefix(be);
        let at = bytes.len();
        // An EPB that says 1000 bytes; 100 bytes are there.
        bytes.extend_from_slice(&u32b(6, be));
        bytes.extend_from_slice(&u32b(1000, be));
        bytes.extend_from_slice(&[0; 92]);
        let (msg, off) = ng_error(bytes, 1);
        assert_eq!(off, at as u64);
        assert_eq!(
            msg,
            format!("t.pcapng: truncated block at byte offset {at} (header says 1000 bytes, 100 remain)")
        );

        let mut bytes = ng_prefix(be);
        let at = bytes.len();
        bytes.extend_from_slice(&[6, 0, 0]);
        let (msg, _) = ng_error(bytes, 1);
        assert_eq!(
            msg,
            format!(
                "t.pcapng: truncated block header at byte offset {at} (12 bytes needed, 3 remain)"
            )
        );
    }
}

#[test]
fn pcapng_corrupt_blocks() {
    let be = false;
    // Length not a multiple of 4, and below 12.
    for bad_len in [13u32, 8, 0] {
        let mut bytes = ng_prefix(be);
        let at = bytes.len();
        bytes.extend_from_slice(&u32b(6, be));
        bytes.extend_from_slice(&u32b(bad_len, be));
        bytes.extend_from_slice(&[0; 16]);
        let (msg, off) = ng_error(bytes, 1);
        assert_eq!(off, at as u64);
        assert_eq!(
            msg,
            format!(
                "t.pcapng: corrupt block header at byte offset {at}: block length {bad_len} \
                 is not a multiple of 4 of at least 12"
            )
        );
    }
    // Trailer differs from the header.
    let mut bytes = ng_prefix(be);
    let at = bytes.len();
    bytes.extend_from_slice(&u32b(0x1234, be));
    bytes.extend_from_slice(&u32b(16, be));
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&u32b(20, be));
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert!(
        msg.contains("trailing length 20 differs from leading length 16"),
        "{msg}"
    );

    // EPB naming an interface that does not exist.
    let mut bytes = ng_prefix(be);
    let at = bytes.len();
    bytes = Ng { bytes, be }.epb(5, 1, &[0; 20]).bytes;
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert_eq!(
        msg,
        format!(
            "t.pcapng: corrupt enhanced packet block at byte offset {at}: packet of interface 5, \
             but the section has 1 interface(s)"
        )
    );

    // EPB whose captured length is larger than its data.
    let mut bytes = ng_prefix(be);
    let at = bytes.len();
    bytes = Ng { bytes, be }
        .epb_full(0, 1, 4000, 4000, &[0; 20], &[])
        .bytes;
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert!(
        msg.contains("captured length 4000 is larger than the block's 20 bytes"),
        "{msg}"
    );

    // EPB too short for its fixed fields.
    let mut bytes = ng_prefix(be);
    let at = bytes.len();
    bytes = Ng { bytes, be }.block(6, &[0; 8]).bytes;
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert!(msg.contains("too short for its fixed fields"), "{msg}");

    // Packets before any interface.
    let bytes = Ng::new().shb(be).epb(0, 1, &[0; 20]).bytes;
    let (msg, _) = ng_error(bytes, 0);
    assert!(msg.contains("the section has 0 interface(s)"), "{msg}");
    let bytes = Ng::new().shb(be).spb(20, &[0; 20]).bytes;
    let (msg, _) = ng_error(bytes, 0);
    assert!(msg.contains("simple packet block"), "{msg}");

    // An interface with an if_tsresol too fine for 64 bits.
    let prefix = Ng::new().shb(be).bytes;
    let at = prefix.len();
    let bytes = Ng { bytes: prefix, be }
        .idb(1, 0, &[(IF_TSRESOL, &[20])])
        .bytes;
    let (msg, off) = ng_error(bytes, 0);
    assert_eq!(off, at as u64);
    assert!(msg.contains("corrupt interface description block"), "{msg}");

    // A second section's interfaces replace the first's.
    let mut bytes = ng_prefix(be);
    bytes = Ng { bytes, be: false }.shb(true).bytes;
    let at = bytes.len();
    bytes = Ng { bytes, be: true }.epb(0, 1, &[0; 20]).bytes;
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert!(msg.contains("the section has 0 interface(s)"), "{msg}");
}

#[test]
fn pcapng_bad_section_headers() {
    // First SHB with an unknown byte-order magic: the file does not open.
    let mut bytes = ng_prefix(false);
    bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let e = open_err("bom.pcapng", bytes);
    assert_eq!(
        e.to_string(),
        "bom.pcapng: corrupt section header block at byte offset 0: unknown byte-order magic 0x01020304"
    );

    // Unsupported major version.
    let mut bytes = ng_prefix(false);
    bytes[12..14].copy_from_slice(&2u16.to_le_bytes());
    let e = open_err("v2.pcapng", bytes);
    assert!(
        e.to_string()
            .starts_with("v2.pcapng: corrupt section header block at byte offset 0: unsupported pcapng version 2.0"),
        "{e}"
    );

    // A first SHB cut short.
    let bytes = ng_prefix(false)[..20].to_vec();
    let e = open_err("cut.pcapng", bytes);
    assert!(e.is_truncation());
    assert_eq!(e.offset(), Some(0));

    // A later SHB with a bad byte-order magic: the records before it, then the error.
    let mut bytes = ng_prefix(false);
    let at = bytes.len();
    bytes = Ng { bytes, be: false }.shb(false).bytes;
    bytes[at + 8..at + 12].copy_from_slice(&[9, 9, 9, 9]);
    let (msg, off) = ng_error(bytes, 1);
    assert_eq!(off, at as u64);
    assert!(msg.contains("unknown byte-order magic 0x09090909"), "{msg}");
}

/// A deterministic xorshift generator for the mutation tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Reads a capture to its end; checks the error (if any) is the last item
/// and points inside the file.
fn read_to_end(bytes: Vec<u8>) -> usize {
    let len = bytes.len() as u64;
    let Ok(c) = Capture::from_bytes("fuzz", bytes) else {
        return 0;
    };
    let (good, err) = until_error(&c);
    if let Some(e) = err {
        let off = e.offset().expect("content errors have an offset");
        assert!(off <= len, "offset {off} past the end {len}: {e}");
        assert!(e.to_string().starts_with("fuzz: "));
    }
    for r in &good {
        // Touch everything the record hands out.
        let _ = (r.frame.len(), r.payload.l3().map(<[u8]>::len));
    }
    good.len()
}

/// Sample files exercising every path, for the mutation tests.
fn samples() -> Vec<Vec<u8>> {
    let p4 = ipv4(b"sample");
    let p6 = ipv6(b"sample");
    let mut out = Vec::new();
    for be in [false, true] {
        for lt in [1u32, 113, 276, 101, 0, 108, 239, 228, 229, 147] {
            let frame = match lt {
                1 => eth(&[(0x88A8, 1), (0x8100, 2)], 0x0800, &p4),
                113 => sll(0x86DD, &p6),
                276 => sll2(0x0800, &p4),
                0 | 108 => null(2, lt == 108 || be, &p4),
                239 => nflog(2, be, &[(10, b"pfx"), (9, &p4)]),
                _ => p4.clone(),
            };
            out.push(
                Pcap::new(be, be, 65535, lt)
                    .record(1, 2, &frame)
                    .record(3, 4, &frame)
                    .bytes,
            );
        }
        out.push(
            Ng::new()
                .shb(be)
                .idb(1, 0, &[(IF_TSRESOL, &[0x80 | 20]), (IF_TSOFFSET, &[1; 8])])
                .idb(239, 0, &[])
                .epb(0, 1, &eth(&[(0x8100, 2)], 0x86DD, &p6))
                .epb(1, 2, &nflog(10, be, &[(9, &p6)]))
                .spb(40, &eth(&[], 0x0800, &p4))
                .opb(0, 0, 3, &eth(&[], 0x0800, &p4))
                .block(5, &[0; 8])
                .shb(!be)
                .idb(101, 0, &[])
                .epb(0, 1, &p4)
                .bytes,
        );
    }
    out
}

#[test]
fn no_panic_on_any_truncation_or_byte_mutation() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0usize;
    for sample in samples() {
        let full = read_to_end(sample.clone());
        assert!(full >= 2, "sample reads");
        // Every truncation point: never more records than the full file, never a panic.
        for cut in 0..sample.len() {
            assert!(read_to_end(sample[..cut].to_vec()) <= full);
            runs += 1;
        }
        // Every byte set to a few hostile values.
        for i in 0..sample.len() {
            for v in [0x00, 0xFF, 0x7F, 0x80, sample[i] ^ 0x01] {
                let mut m = sample.clone();
                m[i] = v;
                read_to_end(m);
                runs += 1;
            }
        }
        // Random multi-byte mutations and random garbage appended.
        for _ in 0..300 {
            let mut m = sample.clone();
            for _ in 0..(rng.next() % 6 + 1) {
                let i = (rng.next() % m.len() as u64) as usize;
                m[i] = rng.next() as u8;
            }
            let extra = (rng.next() % 40) as usize;
            m.extend((0..extra).map(|_| rng.next() as u8));
            read_to_end(m);
            runs += 1;
        }
    }
    assert!(runs > 10_000, "{runs} runs");
}
