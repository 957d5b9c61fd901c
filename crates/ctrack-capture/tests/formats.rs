//! Hand-built captures for every format, byte order, timestamp resolution
//! and link type: decoded timestamps, indices, families, VLANs and L3 bytes.

mod common;

use common::*;
use ctrack_capture::{Capture, Format, IpFamily, NonIpReason, Payload, VlanStack};

/// Asserts an IP payload with these family, L3 bytes and VLAN ids.
#[track_caller]
fn assert_ip(p: &Payload<'_>, family: IpFamily, l3: &[u8], vlans: &[u16]) {
    match p {
        Payload::Ip {
            family: f,
            l3: got,
            vlans: v,
        } => {
            assert_eq!(*f, family);
            assert_eq!(*got, l3);
            assert_eq!(v.as_slice(), vlans);
        }
        Payload::NonIp { reason } => panic!("expected IP, got non-IP: {reason}"),
    }
}

/// Asserts a non-IP payload with this reason.
#[track_caller]
fn assert_non_ip(p: &Payload<'_>, want: NonIpReason) {
    match p {
        Payload::NonIp { reason } => assert_eq!(*reason, want),
        Payload::Ip { .. } => panic!("expected non-IP {want}, got IP"),
    }
}

/// Decodes one frame of one link type through a little-endian pcap file.
fn decode_one(link_type: u32, frame: &[u8]) -> Payload<'static> {
    decode_one_order(link_type, frame, false)
}

/// Decodes one frame of one link type through a pcap file of this order.
fn decode_one_order(link_type: u32, frame: &[u8], be: bool) -> Payload<'static> {
    let bytes = Pcap::new(false, be, 65535, link_type)
        .record(1, 2, frame)
        .bytes;
    let cap: &'static Capture = Box::leak(Box::new(cap(bytes)));
    let recs = all_records(cap);
    assert_eq!(recs.len(), 1);
    recs[0].payload
}

#[test]
fn pcap_micro_and_nano_both_orders() {
    let p4 = ipv4(b"hello");
    let p6 = ipv6(b"world!");
    for nanos in [false, true] {
        for be in [false, true] {
            let bytes = Pcap::new(nanos, be, 65535, 1)
                .record(1_700_000_000, 123_456, &eth(&[], 0x0800, &p4))
                .record(1_700_000_001, 999_999, &eth(&[], 0x86DD, &p6))
                .record(0, 0, &eth(&[], 0x0806, &[0; 28]))
                .bytes;
            let c = cap(bytes);
            assert_eq!(
                c.format(),
                Format::Pcap {
                    nanos,
                    big_endian: be
                }
            );
            let recs = all_records(&c);
            assert_eq!(recs.len(), 3);
            let mult = if nanos { 1 } else { 1_000 };
            assert_eq!(
                recs[0].ts_ns,
                1_700_000_000 * 1_000_000_000 + 123_456 * mult
            );
            assert_eq!(
                recs[1].ts_ns,
                1_700_000_001 * 1_000_000_000 + 999_999 * mult
            );
            assert_eq!(recs[2].ts_ns, 0);
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(r.index, i as u64);
                assert_eq!(r.interface, 0);
                assert_eq!(r.link_type, 1);
                assert_eq!(r.orig_len as usize, r.frame.len());
            }
            assert_ip(&recs[0].payload, IpFamily::V4, &p4, &[]);
            assert_ip(&recs[1].payload, IpFamily::V6, &p6, &[]);
            assert_non_ip(&recs[2].payload, NonIpReason::EtherType(0x0806));
        }
    }
}

#[test]
fn pcap_extremes_do_not_overflow() {
    let bytes = Pcap::new(false, false, 65535, 1)
        .record(u32::MAX, u32::MAX, &eth(&[], 0x0800, &ipv4(b"")))
        .bytes;
    let c = cap(bytes);
    let r = all_records(&c)[0];
    assert_eq!(
        r.ts_ns,
        u64::from(u32::MAX) * 1_000_000_000 + u64::from(u32::MAX) * 1_000
    );
}

#[test]
fn pcap_orig_len_and_fcs_bits_of_link_type() {
    // Link type field with the FCS-present bit and a 4-byte FCS length.
    let network = 1 | 0x0400_0000 | (4 << 28);
    let mut p = Pcap::new(false, false, 96, network);
    let frame = eth(&[], 0x0800, &ipv4(&[7; 30]));
    p.raw_record(5, 6, 60, 1514, &frame[..60]);
    let c = cap(p.bytes);
    let r = all_records(&c)[0];
    assert_eq!(r.link_type, 1);
    assert_eq!(r.orig_len, 1514);
    assert_eq!(r.frame.len(), 60);
    assert_eq!(r.payload.l3(), Some(&frame[14..60]));
}

#[test]
fn ethernet_padding_is_kept() {
    // A 40-byte IPv4 packet padded to the 60-byte Ethernet minimum.
    let mut pkt = ipv4(&[1; 20]);
    let inner = pkt.clone();
    pkt.extend_from_slice(&[0; 6]);
    let p = decode_one(1, &eth(&[], 0x0800, &pkt));
    assert_ip(&p, IpFamily::V4, &pkt, &[]);
    assert_eq!(p.l3().map(|l| &l[..inner.len()]), Some(&inner[..]));
}

#[test]
fn ethernet_vlan_stacks() {
    let pkt = ipv4(b"vlan");
    // 802.1Q, PCP and DEI bits set: only the 12-bit id is kept.
    let p = decode_one(1, &eth(&[(0x8100, 0xE000 | 100)], 0x0800, &pkt));
    assert_ip(&p, IpFamily::V4, &pkt, &[100]);
    // QinQ: 802.1ad outer, 802.1Q inner.
    let p6 = ipv6(b"qinq");
    let p = decode_one(1, &eth(&[(0x88A8, 200), (0x8100, 300)], 0x86DD, &p6));
    assert_ip(&p, IpFamily::V6, &p6, &[200, 300]);
    // QinQinQ with the pre-standard 0x9100 outer tag.
    let p = decode_one(
        1,
        &eth(&[(0x9100, 30), (0x88A8, 20), (0x8100, 10)], 0x0800, &pkt),
    );
    assert_ip(&p, IpFamily::V4, &pkt, &[30, 20, 10]);
    // MAX_VLAN_TAGS (7) tags fit, one more does not.
    assert_eq!(ctrack_capture::MAX_VLAN_TAGS, 7);
    let seven: Vec<(u16, u16)> = (1..=7).map(|i| (0x8100, i)).collect();
    let p = decode_one(1, &eth(&seven, 0x0800, &pkt));
    assert_ip(&p, IpFamily::V4, &pkt, &[1, 2, 3, 4, 5, 6, 7]);
    let eight: Vec<(u16, u16)> = (1..=8).map(|i| (0x8100, i)).collect();
    assert_non_ip(
        &decode_one(1, &eth(&eight, 0x0800, &pkt)),
        NonIpReason::TooManyVlanTags,
    );
    // A tagged ARP is non-IP; a tag cut short is a truncated link header.
    assert_non_ip(
        &decode_one(1, &eth(&[(0x8100, 5)], 0x0806, &[0; 28])),
        NonIpReason::EtherType(0x0806),
    );
    let cut = eth(&[(0x8100, 5)], 0x0800, &[]);
    assert_non_ip(&decode_one(1, &cut[..16]), NonIpReason::TruncatedLinkHeader);
    // VlanStack helpers.
    let v = VlanStack::from_ids(&[30, 20, 10]).expect("fits");
    assert_eq!((v.len(), v.outer(), v.inner()), (3, Some(30), Some(10)));
    assert_eq!(format!("{v:?}"), "[30, 20, 10]");
    assert!(VlanStack::new().is_empty());
    assert!(VlanStack::from_ids(&[1; 8]).is_none());
    assert_eq!(std::mem::size_of::<VlanStack>(), 16);
}

#[test]
fn ethernet_non_ip_reasons() {
    assert_non_ip(
        &decode_one(1, &eth(&[], 0x0806, &[0; 28])),
        NonIpReason::EtherType(0x0806),
    );
    assert_non_ip(
        &decode_one(1, &eth(&[], 0x88CC, &[0; 30])),
        NonIpReason::EtherType(0x88CC),
    );
    // 802.3 length field + LLC (STP).
    assert_non_ip(
        &decode_one(1, &eth(&[], 38, &[0x42, 0x42, 0x03, 0, 0])),
        NonIpReason::EtherType(38),
    );
    assert_non_ip(&decode_one(1, &[0; 13]), NonIpReason::TruncatedLinkHeader);
    assert_non_ip(&decode_one(1, &[]), NonIpReason::TruncatedLinkHeader);
    assert_eq!(
        NonIpReason::EtherType(0x0806).to_string(),
        "non-IP ethertype 0x0806"
    );
    assert_eq!(
        NonIpReason::EtherType(38).to_string(),
        "802.3/LLC frame (length field 38)"
    );
    assert_eq!(
        NonIpReason::UnsupportedLinkType(147).to_string(),
        "unsupported link type 147"
    );
}

#[test]
fn linux_sll_and_sll2() {
    let p4 = ipv4(b"sll");
    let p6 = ipv6(b"sll");
    assert_ip(&decode_one(113, &sll(0x0800, &p4)), IpFamily::V4, &p4, &[]);
    assert_ip(&decode_one(113, &sll(0x86DD, &p6)), IpFamily::V6, &p6, &[]);
    assert_non_ip(
        &decode_one(113, &sll(0x0806, &[0; 28])),
        NonIpReason::EtherType(0x0806),
    );
    // libpcap puts a VLAN tag back after the cooked header.
    let mut tagged = vec![0x00, 42, 0x08, 0x00];
    tagged.extend_from_slice(&p4);
    assert_ip(
        &decode_one(113, &sll(0x8100, &tagged)),
        IpFamily::V4,
        &p4,
        &[42],
    );
    assert_non_ip(&decode_one(113, &[0; 15]), NonIpReason::TruncatedLinkHeader);

    assert_ip(&decode_one(276, &sll2(0x0800, &p4)), IpFamily::V4, &p4, &[]);
    assert_ip(&decode_one(276, &sll2(0x86DD, &p6)), IpFamily::V6, &p6, &[]);
    assert_non_ip(
        &decode_one(276, &sll2(0x8035, &[0; 28])),
        NonIpReason::EtherType(0x8035),
    );
    assert_non_ip(
        &decode_one(276, &[0x08, 0, 0, 0]),
        NonIpReason::TruncatedLinkHeader,
    );
}

#[test]
fn raw_ip_link_types() {
    let p4 = ipv4(b"raw");
    let p6 = ipv6(b"raw");
    for lt in [101, 12, 14] {
        assert_ip(&decode_one(lt, &p4), IpFamily::V4, &p4, &[]);
        assert_ip(&decode_one(lt, &p6), IpFamily::V6, &p6, &[]);
        assert_non_ip(&decode_one(lt, &[0x50, 0, 0]), NonIpReason::IpVersion(5));
        assert_non_ip(&decode_one(lt, &[]), NonIpReason::TruncatedLinkHeader);
    }
    assert_ip(&decode_one(228, &p4), IpFamily::V4, &p4, &[]);
    assert_ip(&decode_one(229, &p6), IpFamily::V6, &p6, &[]);
    assert_non_ip(&decode_one(228, &[]), NonIpReason::TruncatedLinkHeader);
}

#[test]
fn bsd_null_and_loop() {
    let p4 = ipv4(b"null");
    let p6 = ipv6(b"null");
    for file_be in [false, true] {
        // NULL: family in the capturing host's order (= the file's order)...
        assert_ip(
            &decode_one_order(0, &null(2, file_be, &p4), file_be),
            IpFamily::V4,
            &p4,
            &[],
        );
        for af6 in [24, 28, 30] {
            assert_ip(
                &decode_one_order(0, &null(af6, file_be, &p6), file_be),
                IpFamily::V6,
                &p6,
                &[],
            );
        }
        // ...or the other order (a file rewritten on another host).
        assert_ip(
            &decode_one_order(0, &null(2, !file_be, &p4), file_be),
            IpFamily::V4,
            &p4,
            &[],
        );
        assert_non_ip(
            &decode_one_order(0, &null(7, file_be, &[0; 8]), file_be),
            NonIpReason::AddressFamily(7),
        );
        // LOOP: always network order.
        assert_ip(
            &decode_one_order(108, &null(2, true, &p4), file_be),
            IpFamily::V4,
            &p4,
            &[],
        );
        assert_ip(
            &decode_one_order(108, &null(30, true, &p6), file_be),
            IpFamily::V6,
            &p6,
            &[],
        );
        assert_non_ip(
            &decode_one_order(108, &null(2, false, &p4), file_be),
            NonIpReason::AddressFamily(0x0200_0000),
        );
    }
    assert_non_ip(&decode_one(0, &[2, 0, 0]), NonIpReason::TruncatedLinkHeader);
    assert_non_ip(&decode_one(108, &[]), NonIpReason::TruncatedLinkHeader);
}

#[test]
fn nflog_tlvs() {
    let p4 = ipv4(b"nflog");
    let p6 = ipv6(b"nflog6");
    // NFULA_PACKET_HDR, NFULA_PREFIX (odd length: padded), NFULA_HWTYPE, NFULA_PAYLOAD.
    let hdr: &[u8] = &[0x08, 0x00, 1, 0];
    let prefix: &[u8] = b"drop\0";
    let hwtype: &[u8] = &[0, 1];
    for be in [false, true] {
        let f = nflog(2, be, &[(1, hdr), (10, prefix), (15, hwtype), (9, &p4)]);
        assert_ip(&decode_one_order(239, &f, be), IpFamily::V4, &p4, &[]);
        let f = nflog(10, be, &[(10, prefix), (9, &p6)]);
        assert_ip(&decode_one_order(239, &f, be), IpFamily::V6, &p6, &[]);
        // A type with NLA_F_NET_BYTEORDER set is still matched on its type bits.
        let f = nflog(2, be, &[(0x4000 | 9, &p4)]);
        assert_ip(&decode_one_order(239, &f, be), IpFamily::V4, &p4, &[]);
        // No payload.
        let f = nflog(2, be, &[(10, prefix), (15, hwtype)]);
        assert_non_ip(&decode_one_order(239, &f, be), NonIpReason::NflogNoPayload);
        // A TLV length below 4.
        let mut f = nflog(2, be, &[]);
        f.extend_from_slice(&u16b(2, be));
        f.extend_from_slice(&u16b(10, be));
        assert_non_ip(&decode_one_order(239, &f, be), NonIpReason::NflogMalformed);
        // An attribute before the payload running past the frame.
        let f = nflog(2, be, &[(10, prefix)]);
        assert_non_ip(
            &decode_one_order(239, &f[..9], be),
            NonIpReason::NflogMalformed,
        );
        // Payload cut by the snapshot length: the captured part is returned.
        let f = nflog(2, be, &[(10, prefix), (9, &p4)]);
        let cut = &f[..f.len() - 10];
        let got = decode_one_order(239, cut, be);
        let start = 4 + 12 + 4;
        assert_ip(&got, IpFamily::V4, &cut[start..], &[]);
        assert_eq!(got.l3(), Some(&p4[..cut.len() - start]));
        // Non-IP family.
        let f = nflog(7, be, &[(9, &p4)]);
        assert_non_ip(
            &decode_one_order(239, &f, be),
            NonIpReason::AddressFamily(7),
        );
    }
    assert_non_ip(
        &decode_one(239, &[2, 0, 0]),
        NonIpReason::TruncatedLinkHeader,
    );
}

#[test]
fn unsupported_link_type_marks_every_record() {
    let bytes = Pcap::new(false, false, 65535, 147)
        .record(1, 0, &ipv4(b"a"))
        .record(2, 0, &ipv4(b"b"))
        .bytes;
    let c = cap(bytes);
    let recs = all_records(&c);
    assert_eq!(recs.len(), 2);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(r.link_type, 147);
        assert_non_ip(&r.payload, NonIpReason::UnsupportedLinkType(147));
        if let Payload::NonIp { reason } = r.payload {
            assert_eq!(reason.to_string(), "unsupported link type 147");
        }
    }
}

#[test]
fn pcapng_resolutions_and_offsets() {
    let p4 = ipv4(b"ng");
    let frame = eth(&[], 0x0800, &p4);
    let base: u64 = 1_600_000_000;
    for be in [false, true] {
        let off_pos: &[u8] = &if be {
            100i64.to_be_bytes()
        } else {
            100i64.to_le_bytes()
        };
        let off_neg: &[u8] = &if be {
            (-50i64).to_be_bytes()
        } else {
            (-50i64).to_le_bytes()
        };
        let bytes = Ng::new()
            .shb(be)
            .idb(1, 0, &[]) // 0: default microseconds
            .idb(1, 0, &[(IF_TSRESOL, &[9])]) // 1: nanoseconds
            .idb(1, 0, &[(IF_TSRESOL, &[3])]) // 2: milliseconds
            .idb(1, 0, &[(IF_TSRESOL, &[0x80 | 20])]) // 3: 2^-20 s
            .idb(1, 0, &[(IF_TSRESOL, &[0x80 | 10]), (IF_TSOFFSET, off_pos)]) // 4: 2^-10 s, +100 s
            .idb(1, 0, &[(IF_TSOFFSET, off_neg)]) // 5: µs, -50 s
            .idb(1, 0, &[(IF_TSRESOL, &[12])]) // 6: picoseconds
            .epb(0, base * 1_000_000 + 654_321, &frame)
            .epb(1, base * 1_000_000_000 + 987_654_321, &frame)
            .epb(2, base * 1_000 + 5, &frame)
            .epb(3, (base << 20) | (1 << 19), &frame)
            .epb(4, (base << 10) | 3, &frame)
            .epb(5, base * 1_000_000 + 1, &frame)
            .epb(6, 10_000_000 * 1_000_000_000_000 + 123_456_789_999, &frame)
            .bytes;
        let c = Capture::from_bytes("x.pcapng", bytes).expect("opens");
        assert_eq!(c.format(), Format::PcapNg);
        let recs = all_records(&c);
        let s = base * 1_000_000_000;
        let want = [
            s + 654_321_000,
            s + 987_654_321,
            s + 5_000_000,
            s + 500_000_000,
            s + 100_000_000_000 + 2_929_687, // 3/1024 s = 2929687.5 ns, truncated
            s - 50_000_000_000 + 1_000,
            10_000_000 * 1_000_000_000 + 123_456_789,
        ];
        let got: Vec<u64> = recs.iter().map(|r| r.ts_ns).collect();
        assert_eq!(got, want, "big_endian={be}");
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.index, i as u64);
            assert_eq!(r.interface, i as u32);
            assert_ip(&r.payload, IpFamily::V4, &p4, &[]);
        }
    }
}

#[test]
fn pcapng_sections_interfaces_and_link_types() {
    let p4 = ipv4(b"s1");
    let p6 = ipv6(b"s2");
    let bytes = Ng::new()
        .shb(false)
        .idb(1, 65535, &[])
        .idb(101, 65535, &[(IF_TSRESOL, &[9])])
        .epb(0, 1_000_000, &eth(&[(0x8100, 7)], 0x0800, &p4))
        .epb(1, 2_000_000_000, &p6)
        // A new big-endian section: interfaces start again from 0.
        .shb(true)
        .idb(239, 65535, &[])
        .idb(0, 65535, &[])
        .idb(276, 65535, &[])
        .epb(0, 3_000_000, &nflog(10, true, &[(9, &p6)]))
        .epb(1, 4_000_000, &null(2, true, &p4))
        .epb(2, 5_000_000, &sll2(0x86DD, &p6))
        .bytes;
    let c = cap(bytes);
    assert_eq!(c.format(), Format::PcapNg);
    let recs = all_records(&c);
    let summary: Vec<(u64, u64, u32, u32)> = recs
        .iter()
        .map(|r| (r.index, r.ts_ns, r.interface, r.link_type))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 1_000_000_000, 0, 1),
            (1, 2_000_000_000, 1, 101),
            (2, 3_000_000_000, 0, 239),
            (3, 4_000_000_000, 1, 0),
            (4, 5_000_000_000, 2, 276),
        ]
    );
    assert_ip(&recs[0].payload, IpFamily::V4, &p4, &[7]);
    assert_ip(&recs[1].payload, IpFamily::V6, &p6, &[]);
    assert_ip(&recs[2].payload, IpFamily::V6, &p6, &[]);
    assert_ip(&recs[3].payload, IpFamily::V4, &p4, &[]);
    assert_ip(&recs[4].payload, IpFamily::V6, &p6, &[]);
}

#[test]
fn pcapng_simple_and_obsolete_packet_blocks() {
    let p4 = ipv4(&[9; 11]); // 31 bytes: the SPB pads it
    let frame = eth(&[], 0x0800, &p4);
    for be in [false, true] {
        let bytes = Ng::new()
            .shb(be)
            .idb(1, 0, &[])
            .idb(1, 0, &[(IF_TSRESOL, &[9])])
            .spb(u32::try_from(frame.len()).expect("small"), &frame)
            .opb(1, 3, 1_234_567_890_123_456_789, &frame)
            .opb(0, 0, 42, &frame)
            .bytes;
        let c = cap(bytes);
        let recs = all_records(&c);
        assert_eq!(recs.len(), 3);
        // SPB: interface 0, no timestamp, padding cut off at the original length.
        assert_eq!((recs[0].index, recs[0].ts_ns, recs[0].interface), (0, 0, 0));
        assert_eq!(recs[0].frame, &frame[..]);
        assert_ip(&recs[0].payload, IpFamily::V4, &p4, &[]);
        // OPB: interface id from its 16-bit field, not confused with drops.
        assert_eq!(recs[1].interface, 1);
        assert_eq!(recs[1].ts_ns, 1_234_567_890_123_456_789);
        assert_ip(&recs[1].payload, IpFamily::V4, &p4, &[]);
        assert_eq!((recs[2].interface, recs[2].ts_ns), (0, 42_000));
    }
    // SPB cut to the interface's snapshot length.
    let bytes = Ng::new()
        .shb(false)
        .idb(1, 20, &[])
        .spb(u32::try_from(frame.len()).expect("small"), &frame)
        .bytes;
    let c = cap(bytes);
    let r = all_records(&c)[0];
    assert_eq!(r.frame, &frame[..20]);
    assert_eq!(r.orig_len as usize, frame.len());
    // An EPB captured longer than its interface's snapshot length is cut to
    // it, as libpcap does; the next block is still found.
    let bytes = Ng::new()
        .shb(true)
        .idb(1, 20, &[])
        .epb(0, 1, &frame)
        .epb(0, 2, &frame[..18])
        .bytes;
    let c = cap(bytes);
    let recs = all_records(&c);
    assert_eq!(
        (recs[0].frame, recs[0].orig_len as usize),
        (&frame[..20], frame.len())
    );
    assert_eq!((recs[1].frame, recs[1].ts_ns), (&frame[..18], 2_000));
}

#[test]
fn pcapng_other_blocks_are_skipped() {
    let p4 = ipv4(b"skip");
    let frame = eth(&[], 0x0800, &p4);
    let bytes = Ng::new()
        .shb(false)
        .block(4, &[0, 0, 0, 0]) // name resolution, empty
        .idb(1, 0, &[(2, b"eth0"), (3, b"a description")])
        .block(0x0000_000A, &[1, 2, 3, 4, 5, 6, 7, 8]) // decryption secrets
        .epb_full(
            0,
            7,
            u32::try_from(frame.len()).expect("small"),
            1500,
            &frame,
            &[(1, b"a comment"), (2, &[1, 0, 0, 0])],
        )
        .block(5, &[0; 20]) // interface statistics
        .block(0x0000_0BAD, b"custom block data")
        .block(0x1234_5678, &[])
        .epb(0, 8, &frame)
        .bytes;
    let c = cap(bytes);
    let recs = all_records(&c);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].index, recs[0].ts_ns, recs[0].orig_len),
        (0, 7_000, 1500)
    );
    assert_eq!((recs[1].index, recs[1].ts_ns), (1, 8_000));
    assert_ip(&recs[0].payload, IpFamily::V4, &p4, &[]);
    assert_ip(&recs[1].payload, IpFamily::V4, &p4, &[]);
}

#[test]
fn magic_decides_not_the_name() {
    let ng = Ng::new().shb(false).idb(1, 0, &[]).bytes;
    let c = Capture::from_bytes("looks-like.pcap", ng).expect("opens");
    assert_eq!(c.format(), Format::PcapNg);
    assert_eq!(c.records().count(), 0);
    let pcap = Pcap::new(true, true, 0, 1).bytes;
    let c = Capture::from_bytes("looks-like.pcapng", pcap).expect("opens");
    assert_eq!(
        c.format(),
        Format::Pcap {
            nanos: true,
            big_endian: true
        }
    );
    assert_eq!(c.records().count(), 0);
}

#[test]
fn iterator_and_cursor_agree() {
    let bytes = Pcap::new(false, false, 0, 101)
        .record(1, 0, &ipv4(b"a"))
        .record(2, 0, &ipv6(b"b"))
        .bytes;
    let c = cap(bytes);
    let via_iter: Vec<_> = c.records().map(|r| r.expect("ok")).collect();
    let mut cur = c.records();
    let mut via_cursor = Vec::new();
    while let Some(r) = cur.next_record() {
        via_cursor.push(r.expect("ok"));
    }
    assert_eq!(via_iter, via_cursor);
    assert!(cur.next_record().is_none());
    assert!(cur.next_record().is_none());
    assert_eq!(cur.offset(), c.bytes().len() as u64);
}

/// A unique temporary path for this test process.
fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ctrack-capture-{}-{tag}", std::process::id()))
}

#[test]
fn open_maps_the_file_and_reads_the_same_records() {
    let bytes = Ng::new()
        .shb(true)
        .idb(1, 0, &[(IF_TSRESOL, &[9])])
        .epb(
            0,
            5,
            &eth(&[(0x88A8, 1), (0x8100, 2)], 0x0800, &ipv4(b"mmap")),
        )
        .epb(0, 6, &eth(&[], 0x86DD, &ipv6(b"mmap")))
        .bytes;
    let path = temp_path("mapped.bin");
    std::fs::write(&path, &bytes).expect("write temp file");
    let mapped = Capture::open(&path).expect("opens");
    let owned = cap(bytes.clone());
    assert_eq!(mapped.bytes(), &bytes[..]);
    assert_eq!(mapped.name(), path.display().to_string());
    assert_eq!(all_records(&mapped), all_records(&owned));
    drop(mapped);
    std::fs::remove_file(&path).expect("remove temp file");
}

#[test]
fn open_errors_name_the_file() {
    let missing = temp_path("does-not-exist.pcap");
    let e = Capture::open(&missing).expect_err("missing file");
    assert!(matches!(e, ctrack_capture::CaptureError::Io { .. }));
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    assert_eq!(e.offset(), None);

    let empty = temp_path("empty.pcap");
    std::fs::write(&empty, b"").expect("write temp file");
    let e = Capture::open(&empty).expect_err("empty file");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a pcap or pcapng file: file is only 0 bytes long, no magic number at byte offset 0",
            empty.display()
        )
    );
    std::fs::remove_file(&empty).expect("remove temp file");

    let dir = std::env::temp_dir();
    let e = Capture::open(&dir).expect_err("a directory");
    assert!(matches!(e, ctrack_capture::CaptureError::Io { .. }), "{e}");
}
