//! Packet rewriting for NAT (kernel `nf_nat_proto.c`; kernel-semantics.md §13.4, §13.6):
//! pure functions on packet bytes, from the IP header on.
//!
//! * IPv4: the source (SRC manip) or destination (DST manip) address is replaced and the
//!   header checksum updated incrementally (RFC 1624). IPv6 has no header checksum;
//!   L4 rewriting is skipped for a non-first fragment.
//! * TCP: port and checksum (pseudo-header address change + port); with fewer than 20
//!   bytes of header (the quoted packet of an ICMP error) only the port changes.
//! * UDP: the same, but a zero checksum ("none") stays zero and a computed zero is sent
//!   as 0xFFFF. UDP-Lite: always updated, zero sent as 0xFFFF.
//! * SCTP: port, then the CRC32c recomputed over the rest of the packet (not with fewer
//!   than 12 bytes).
//! * ICMP: only the 8 query types, the id replaced (no pseudo-header). ICMPv6:
//!   pseudo-header update, and the id of echo request/reply.
//! * GRE: DST manip of version 1 only (the call id). Other protocols: address only.
//!
//! Which L4 code runs is decided by the target tuple's protocol, as in the kernel.

use super::Manip;
use crate::packet::checksum;
use crate::tuple::{proto, Family, Tuple};

/// RFC 1624 incremental update of a one's-complement checksum `check` when the bytes
/// `old` are replaced by `new` (both of even length): `~(~HC + ~m + m')`.
pub fn csum_replace(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = u64::from(!check);
    for w in old.chunks(2) {
        let v = u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]);
        acc += u64::from(!v);
    }
    for w in new.chunks(2) {
        let v = u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]);
        acc += u64::from(v);
    }
    !checksum::fold(acc)
}

fn rd16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn wr16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The address bytes of `t`'s manipulated side, `len` bytes (4 or 16).
fn target_addr(t: &Tuple, manip: Manip, len: usize) -> &[u8] {
    match manip {
        Manip::Src => &t.src.0[..len],
        Manip::Dst => &t.dst.0[..len],
    }
}

/// Rewrite the IP packet starting at `iph_off` of `pkt` so that its source (SRC) or
/// destination (DST) address and L4 key are those of `target` (kernel
/// `nf_nat_ipv4_manip_pkt` / `nf_nat_ipv6_manip_pkt`). `false` when the packet is too
/// short to be written (the kernel drops it).
pub fn manip_pkt(pkt: &mut [u8], iph_off: usize, target: &Tuple, manip: Manip) -> bool {
    let Some(&first) = pkt.get(iph_off) else {
        return false;
    };
    match first >> 4 {
        4 => {
            if pkt.len() < iph_off + 20 {
                return false;
            }
            let ihl = usize::from(first & 0x0f) * 4;
            let l4_off = iph_off + ihl;
            let aoff = iph_off + if manip == Manip::Src { 12 } else { 16 };
            let mut old = [0u8; 4];
            old.copy_from_slice(&pkt[aoff..aoff + 4]);
            let new = target_addr(target, manip, 4);
            if !l4_manip(pkt, l4_off, Family::V4, &old, new, target, manip) {
                return false;
            }
            let check = rd16(pkt, iph_off + 10).unwrap_or(0);
            wr16(pkt, iph_off + 10, csum_replace(check, &old, new));
            pkt[aoff..aoff + 4].copy_from_slice(new);
            true
        }
        6 => {
            if pkt.len() < iph_off + 40 {
                return false;
            }
            let aoff = iph_off + if manip == Manip::Src { 8 } else { 24 };
            let mut old = [0u8; 16];
            old.copy_from_slice(&pkt[aoff..aoff + 16]);
            let new = target_addr(target, manip, 16);
            let nh = pkt[iph_off + 6];
            // A non-first fragment or no transport header: the address only.
            if let Ok((_, l4_off)) = crate::packet::ip::ipv6_skip_exthdr(&pkt[iph_off..], 40, nh) {
                if !l4_manip(pkt, iph_off + l4_off, Family::V6, &old, new, target, manip) {
                    return false;
                }
            }
            pkt[aoff..aoff + 16].copy_from_slice(new);
            true
        }
        _ => false,
    }
}

/// The L4 part (kernel `l4proto_manip_pkt`); `old`/`new` are the addresses for the
/// pseudo-header update.
fn l4_manip(
    pkt: &mut [u8],
    off: usize,
    family: Family,
    old: &[u8],
    new: &[u8],
    t: &Tuple,
    manip: Manip,
) -> bool {
    let avail = pkt.len().saturating_sub(off);
    let (port_off, new_port) = match manip {
        Manip::Src => (off, t.src_u),
        Manip::Dst => (off + 2, t.dst_u),
    };
    match t.proto {
        proto::TCP => {
            if avail < 8 {
                return false;
            }
            let old_port = rd16(pkt, port_off).unwrap_or(0);
            wr16(pkt, port_off, new_port);
            if avail < 20 {
                return true;
            }
            let c = rd16(pkt, off + 16).unwrap_or(0);
            let c = csum_replace(c, old, new);
            let c = csum_replace(c, &old_port.to_be_bytes(), &new_port.to_be_bytes());
            wr16(pkt, off + 16, c);
            true
        }
        proto::UDP | proto::UDPLITE => {
            if avail < 8 {
                return false;
            }
            let old_port = rd16(pkt, port_off).unwrap_or(0);
            let c = rd16(pkt, off + 6).unwrap_or(0);
            if c != 0 || t.proto == proto::UDPLITE {
                let c = csum_replace(c, old, new);
                let c = csum_replace(c, &old_port.to_be_bytes(), &new_port.to_be_bytes());
                wr16(pkt, off + 6, if c == 0 { 0xffff } else { c });
            }
            wr16(pkt, port_off, new_port);
            true
        }
        proto::SCTP => {
            if avail < 8 {
                return false;
            }
            wr16(pkt, port_off, new_port);
            if avail < 12 {
                return true;
            }
            let crc = crate::proto::sctp::sctp_checksum(&pkt[off..]);
            pkt[off + 8..off + 12].copy_from_slice(&crc.to_le_bytes());
            true
        }
        proto::ICMP => {
            if avail < 8 {
                return false;
            }
            // Only the query types carry an id.
            if !matches!(pkt[off], 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
                return true;
            }
            let old_id = rd16(pkt, off + 4).unwrap_or(0);
            let c = rd16(pkt, off + 2).unwrap_or(0);
            let c = csum_replace(c, &old_id.to_be_bytes(), &t.src_u.to_be_bytes());
            wr16(pkt, off + 2, c);
            wr16(pkt, off + 4, t.src_u);
            true
        }
        proto::ICMPV6 => {
            if avail < 8 {
                return false;
            }
            let c = rd16(pkt, off + 2).unwrap_or(0);
            let mut c = csum_replace(c, old, new);
            if matches!(pkt[off], 128 | 129) {
                let old_id = rd16(pkt, off + 4).unwrap_or(0);
                c = csum_replace(c, &old_id.to_be_bytes(), &t.src_u.to_be_bytes());
                wr16(pkt, off + 4, t.src_u);
            }
            wr16(pkt, off + 2, c);
            true
        }
        proto::GRE => {
            if avail < 8 {
                return false;
            }
            // Version 1 (PPTP enhanced GRE): the call id is the key; DST manip only.
            if manip == Manip::Dst && pkt[off + 1] & 0x07 == 1 {
                wr16(pkt, off + 6, t.dst_u);
            }
            true
        }
        _ => {
            let _ = family;
            true
        }
    }
}

/// Translate an ICMP or ICMPv6 error that is RELATED to a NATed entry (kernel
/// `nf_nat_icmp_reply_translation` / `nf_nat_icmpv6_reply_translation`): the quoted
/// packet is rewritten with `other` (the entry's tuple of the direction opposite to the
/// error) and the opposite manip type, the ICMP checksum recomputed over the whole
/// message, then the outer header rewritten to look like a reply to `other`
/// (`target = invert(other)` with protocol ICMP). `l4_off` is the ICMP header's offset.
/// `false` when the message is too short (the kernel drops it).
pub fn icmp_error_translate(pkt: &mut [u8], l4_off: usize, other: &Tuple, manip: Manip) -> bool {
    let Some(&first) = pkt.first() else {
        return false;
    };
    let v6 = first >> 4 == 6;
    if pkt.len() < l4_off + 8 {
        return false;
    }
    if !manip_pkt(pkt, l4_off + 8, other, manip.opposite()) {
        return false;
    }
    wr16(pkt, l4_off + 2, 0);
    let c = if v6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&pkt[8..24]);
        d.copy_from_slice(&pkt[24..40]);
        let len = (pkt.len() - l4_off) as u32;
        let acc = checksum::pseudo_header(
            Family::V6,
            &crate::tuple::Addr(s),
            &crate::tuple::Addr(d),
            len,
            proto::ICMPV6,
        );
        checksum::compute(acc, &pkt[l4_off..])
    } else {
        checksum::compute(0, &pkt[l4_off..])
    };
    wr16(pkt, l4_off + 2, c);
    let outer = Tuple {
        src: other.dst,
        dst: other.src,
        src_u: 0,
        dst_u: 0,
        family: other.family,
        proto: if v6 { proto::ICMPV6 } else { proto::ICMP },
    };
    manip_pkt(pkt, 0, &outer, manip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Packet;
    use crate::tuple::Addr;

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let c = checksum::compute(0, &p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn l4_csum(p: &mut [u8], off: usize, field: usize, proto: u8) {
        p[off + field..off + field + 2].copy_from_slice(&[0, 0]);
        let pkt = Packet::parse(p).unwrap();
        let (s, d, f) = (pkt.src, pkt.dst, pkt.family);
        let acc = checksum::pseudo_header(f, &s, &d, (p.len() - off) as u32, proto);
        let c = checksum::compute(acc, &p[off..]);
        p[off + field..off + field + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn tcp4() -> Vec<u8> {
        let mut l4 = vec![0u8; 24];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        l4[12] = 0x50;
        l4[13] = 0x02;
        l4[20..24].copy_from_slice(b"data");
        let mut p = ipv4(6, [10, 0, 0, 3], [192, 168, 5, 9], &l4);
        l4_csum(&mut p, 20, 16, 6);
        p
    }

    fn target(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: u8) -> Tuple {
        Tuple {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            src_u: sport,
            dst_u: dport,
            family: Family::V4,
            proto: p,
        }
    }

    fn valid(p: &[u8]) -> bool {
        let pkt = Packet::parse(p).unwrap();
        checksum::verify(&p[..20]) && pkt.l4_checksum_ok(pkt.proto)
    }

    #[test]
    fn tcp_snat_matches_full_recompute() {
        let mut p = tcp4();
        assert!(valid(&p));
        let t = target([203, 0, 113, 1], 15994, [192, 168, 5, 9], 80, 6);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        assert_eq!(&p[12..16], &[203, 0, 113, 1]);
        assert_eq!(rd16(&p, 20), Some(15994));
        assert!(valid(&p));
        let mut q = p.clone();
        l4_csum(&mut q, 20, 16, 6);
        assert_eq!(p, q);
    }

    #[test]
    fn tcp_dnat() {
        let mut p = tcp4();
        let t = target([10, 0, 0, 3], 40000, [10, 9, 9, 9], 8080, 6);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Dst));
        assert_eq!(&p[16..20], &[10, 9, 9, 9]);
        assert_eq!(rd16(&p, 22), Some(8080));
        assert!(valid(&p));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut l4 = vec![0u8; 12];
        l4[0..2].copy_from_slice(&5353u16.to_be_bytes());
        l4[2..4].copy_from_slice(&53u16.to_be_bytes());
        l4[4..6].copy_from_slice(&12u16.to_be_bytes());
        let mut p = ipv4(17, [10, 0, 0, 3], [8, 8, 8, 8], &l4);
        let t = target([1, 2, 3, 4], 1024, [8, 8, 8, 8], 53, 17);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        assert_eq!(rd16(&p, 26), Some(0));
        assert!(checksum::verify(&p[..20]));
    }

    #[test]
    fn udp_computed_zero_is_sent_as_ffff() {
        // Search a source port that makes the rewritten checksum 0 (i.e. 0xFFFF sum).
        let mut l4 = vec![0u8; 10];
        l4[2..4].copy_from_slice(&53u16.to_be_bytes());
        l4[4..6].copy_from_slice(&10u16.to_be_bytes());
        l4[8..10].copy_from_slice(b"hi");
        let mut base = ipv4(17, [10, 0, 0, 3], [8, 8, 8, 8], &l4);
        base[20..22].copy_from_slice(&1000u16.to_be_bytes());
        l4_csum(&mut base, 20, 6, 17);
        let mut hit = false;
        for port in 1..=u16::MAX {
            let mut p = base.clone();
            let t = target([1, 2, 3, 4], port, [8, 8, 8, 8], 53, 17);
            assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
            let c = rd16(&p, 26).unwrap();
            assert_ne!(c, 0);
            assert!(valid(&p), "port {port}");
            if c == 0xffff {
                hit = true;
            }
        }
        assert!(hit);
    }

    #[test]
    fn icmp_echo_id() {
        let mut l4 = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i'];
        let c = checksum::compute(0, &l4);
        l4[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = ipv4(1, [10, 0, 0, 3], [8, 8, 8, 8], &l4);
        let t = target([1, 2, 3, 4], 0x9999, [8, 8, 8, 8], 0x0800, 1);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        assert_eq!(rd16(&p, 24), Some(0x9999));
        assert!(checksum::verify(&p[20..]));
        assert!(checksum::verify(&p[..20]));
    }

    #[test]
    fn sctp_crc_recomputed() {
        let mut l4 = vec![0u8; 16];
        l4[0..2].copy_from_slice(&5000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        let mut p = ipv4(132, [10, 0, 0, 3], [8, 8, 8, 8], &l4);
        let t = target([1, 2, 3, 4], 6000, [8, 8, 8, 8], 80, 132);
        assert!(manip_pkt(&mut p, 0, &t, Manip::Src));
        let crc = crate::proto::sctp::sctp_checksum(&p[20..]);
        assert_eq!(&p[28..32], &crc.to_le_bytes());
    }

    #[test]
    fn icmp_error_through_snat() {
        // Entry: 10.0.0.3:40000 -> 192.168.5.9:80, SNAT to 203.0.113.1:15994.
        // The server's error quotes the NATed packet and goes to 203.0.113.1.
        let mut quoted = tcp4();
        let nat = target([203, 0, 113, 1], 15994, [192, 168, 5, 9], 80, 6);
        assert!(manip_pkt(&mut quoted, 0, &nat, Manip::Src));
        quoted.truncate(28);
        let mut l4 = vec![3, 3, 0, 0, 0, 0, 0, 0];
        l4.extend_from_slice(&quoted);
        let c = checksum::compute(0, &l4);
        l4[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = ipv4(1, [192, 168, 5, 9], [203, 0, 113, 1], &l4);
        // Reply-direction error at PRE_ROUTING (DST manip); other = the orig tuple.
        let orig = target([10, 0, 0, 3], 40000, [192, 168, 5, 9], 80, 6);
        assert!(icmp_error_translate(&mut p, 20, &orig, Manip::Dst));
        assert_eq!(&p[16..20], &[10, 0, 0, 3]);
        assert_eq!(&p[28 + 12..28 + 16], &[10, 0, 0, 3]);
        assert_eq!(rd16(&p, 48), Some(40000));
        assert!(checksum::verify(&p[..20]));
        assert!(checksum::verify(&p[20..]));
        assert!(checksum::verify(&p[28..48]));
    }

    #[test]
    fn csum_replace_is_rfc1624() {
        let data = [0x45u8, 0, 0, 20, 1, 2, 3, 4, 10, 0, 0, 1];
        let c = checksum::compute(0, &data);
        let mut d2 = data;
        d2[8..12].copy_from_slice(&[192, 0, 2, 77]);
        assert_eq!(
            csum_replace(c, &data[8..12], &d2[8..12]),
            checksum::compute(0, &d2)
        );
    }
}
