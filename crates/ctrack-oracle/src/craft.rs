//! Hand-built IPv4/IPv6 packets with correct checksums, for tests and examples.
//!
//! Every builder returns the packet from the IP header on, ready for
//! [`InjectPacket::l3`](crate::InjectPacket::l3). IPv4 headers have no options, DF set,
//! IP ID 1 and TTL 64; IPv6 headers have hop limit 64 and no extension headers. For
//! anything else, build the L4 part yourself and wrap it with [`ipv4`] or [`ipv6`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// IP protocol numbers used here.
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The TCP header fields a test usually cares about (no options, data offset 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits ([`tcp_flags`]).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
}

impl Tcp {
    /// A segment with the given ports and flags, seq/ack 0 and window 64240.
    pub fn new(sport: u16, dport: u16, flags: u8) -> Tcp {
        Tcp {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags,
            window: 64240,
        }
    }

    /// The same segment with these sequence and acknowledgement numbers.
    pub fn seq_ack(self, seq: u32, ack: u32) -> Tcp {
        Tcp { seq, ack, ..self }
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + l4.len());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + l4.len());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, nh]);
    p.extend_from_slice(l4);
    p
}

/// Wraps `payload` in an IPv4 header (no options, DF, ID 1) with a correct checksum.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, ttl, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Wraps `payload` in an IPv6 header (no extension headers).
pub fn ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next_header, hop_limit]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn tcp_segment(t: &Tcp, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&t.sport.to_be_bytes());
    s.extend_from_slice(&t.dport.to_be_bytes());
    s.extend_from_slice(&t.seq.to_be_bytes());
    s.extend_from_slice(&t.ack.to_be_bytes());
    s.extend_from_slice(&[5 << 4, t.flags]);
    s.extend_from_slice(&t.window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

fn icmp_message(ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut s = vec![ty, code, 0, 0];
    s.extend_from_slice(rest);
    s
}

fn echo_rest(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut r = id.to_be_bytes().to_vec();
    r.extend_from_slice(&seq.to_be_bytes());
    r.extend_from_slice(data);
    r
}

/// Sets a checksum at `at` computed over `pseudo_and_l4` (pseudo header + L4 bytes).
fn fill(l4: &mut [u8], at: usize, sum: u16, udp: bool) {
    // UDP transmits a computed 0 as 0xffff (0 means "no checksum").
    let sum = if udp && sum == 0 { 0xffff } else { sum };
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// A TCP segment over IPv4.
pub fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, t: &Tcp, payload: &[u8]) -> Vec<u8> {
    let mut s = tcp_segment(t, payload);
    let c = checksum(&pseudo4(src, dst, TCP, &s));
    fill(&mut s, 16, c, false);
    ipv4(src, dst, TCP, 64, &s)
}

/// A TCP segment over IPv6.
pub fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, t: &Tcp, payload: &[u8]) -> Vec<u8> {
    let mut s = tcp_segment(t, payload);
    let c = checksum(&pseudo6(src, dst, TCP, &s));
    fill(&mut s, 16, c, false);
    ipv6(src, dst, TCP, 64, &s)
}

/// A UDP datagram over IPv4.
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = udp_datagram(sport, dport, payload);
    let c = checksum(&pseudo4(src, dst, UDP, &s));
    fill(&mut s, 6, c, true);
    ipv4(src, dst, UDP, 64, &s)
}

/// A UDP datagram over IPv6.
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = udp_datagram(sport, dport, payload);
    let c = checksum(&pseudo6(src, dst, UDP, &s));
    fill(&mut s, 6, c, true);
    ipv6(src, dst, UDP, 64, &s)
}

/// An ICMP message over IPv4: type, code, then `rest` (what follows the 4-byte header).
pub fn icmp4(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut s = icmp_message(ty, code, rest);
    let c = checksum(&s);
    fill(&mut s, 2, c, false);
    ipv4(src, dst, ICMP, 64, &s)
}

/// An ICMP echo request (type 8) or reply (type 0).
pub fn icmp4_echo(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    reply: bool,
    id: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    icmp4(
        src,
        dst,
        if reply { 0 } else { 8 },
        0,
        &echo_rest(id, seq, data),
    )
}

/// An ICMPv6 message: type, code, then `rest` (what follows the 4-byte header).
pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut s = icmp_message(ty, code, rest);
    let c = checksum(&pseudo6(src, dst, ICMPV6, &s));
    fill(&mut s, 2, c, false);
    ipv6(src, dst, ICMPV6, 64, &s)
}

/// An ICMPv6 echo request (type 128) or reply (type 129).
pub fn icmp6_echo(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    reply: bool,
    id: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    icmp6(
        src,
        dst,
        if reply { 129 } else { 128 },
        0,
        &echo_rest(id, seq, data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let (a, b) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1));
        let p = tcp4(
            a,
            b,
            &Tcp::new(1000, 80, tcp_flags::SYN).seq_ack(7, 0),
            b"x",
        );
        assert_eq!(checksum(&p[..20]), 0, "IPv4 header");
        assert_eq!(checksum(&pseudo4(a, b, TCP, &p[20..])), 0, "TCP");
        assert_eq!(p.len(), 20 + 20 + 1);
        let u = udp4(a, b, 1, 2, b"odd");
        assert_eq!(checksum(&pseudo4(a, b, UDP, &u[20..])), 0, "UDP");
        let i = icmp4_echo(a, b, false, 9, 1, b"ping");
        assert_eq!(checksum(&i[20..]), 0, "ICMP");
        assert_eq!(i[20], 8);
    }

    #[test]
    fn ipv6_checksums_verify_to_zero() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8:1::1".parse().unwrap(),
        );
        let p = tcp6(a, b, &Tcp::new(1, 2, tcp_flags::SYN), &[]);
        assert_eq!(p.len(), 60);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 20);
        assert_eq!(checksum(&pseudo6(a, b, TCP, &p[40..])), 0);
        let e = icmp6_echo(a, b, true, 3, 4, b"");
        assert_eq!(e[40], 129);
        assert_eq!(checksum(&pseudo6(a, b, ICMPV6, &e[40..])), 0);
        let u = udp6(a, b, 5, 6, b"abc");
        assert_eq!(checksum(&pseudo6(a, b, UDP, &u[40..])), 0);
    }

    #[test]
    fn known_checksum() {
        // RFC 1071 example bytes.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }
}
