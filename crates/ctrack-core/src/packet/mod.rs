//! Packet views: what the kernel knows about a packet when conntrack sees it.
//!
//! [`ip::check_ipv4`]/[`ip::check_ipv6`] reproduce the IP input checks that run before
//! netfilter (a packet failing them never reaches conntrack). [`Packet::parse`] then
//! locates the L4 header as `ipv4_get_l4proto`/`ipv6_get_l4proto` do. Views borrow the
//! bytes; no accessor panics once the view exists.

pub mod checksum;
pub mod ip;

use crate::tuple::{Addr, Family};

/// Why conntrack could not find the L4 protocol (the kernel counts `invalid`, no ct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoL4 {
    /// IPv4 packet with a non-zero fragment offset (should have been reassembled).
    Ipv4Fragment,
    /// IPv6 fragment header with a non-zero offset.
    Ipv6Fragment,
    /// IPv6 extension chain ends in "no next header" or runs past the packet.
    Ipv6NoTransport,
}

/// A packet as conntrack sees it: L3 parsed, L4 located.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    data: &'a [u8],
    /// L3 family.
    pub family: Family,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// L4 protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Offset of the L4 header in `data`.
    pub l4_off: usize,
}

impl<'a> Packet<'a> {
    /// Parse an IP packet already trimmed to its IP length and validated by the IP
    /// input checks (or reassembled by defrag). Returns the kernel's reason when no L4
    /// protocol can be found.
    #[inline]
    pub fn parse(data: &'a [u8]) -> Result<Packet<'a>, ParseError<'a>> {
        let first = *data.first().ok_or(ParseError::Truncated)?;
        match first >> 4 {
            4 => {
                if data.len() < 20 {
                    return Err(ParseError::Truncated);
                }
                let ihl = usize::from(first & 0x0f) * 4;
                if ihl < 20 || ihl > data.len() {
                    return Err(ParseError::Truncated);
                }
                let frag = u16::from_be_bytes([data[6], data[7]]);
                let pkt = Packet::v4(data, ihl);
                if frag & 0x1fff != 0 {
                    return Err(ParseError::NoL4(NoL4::Ipv4Fragment, pkt.header_only()));
                }
                Ok(pkt)
            }
            6 => {
                if data.len() < 40 {
                    return Err(ParseError::Truncated);
                }
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&data[8..24]);
                d.copy_from_slice(&data[24..40]);
                let mut pkt = Packet {
                    data,
                    family: Family::V6,
                    src: Addr::v6(s),
                    dst: Addr::v6(d),
                    ttl: data[7],
                    proto: data[6],
                    l4_off: 40,
                };
                match ip::ipv6_skip_exthdr(data, 40, data[6]) {
                    Ok((proto, off)) => {
                        pkt.proto = proto;
                        pkt.l4_off = off;
                        Ok(pkt)
                    }
                    Err(e) => Err(ParseError::NoL4(e, pkt.header_only())),
                }
            }
            _ => Err(ParseError::Truncated),
        }
    }

    /// [`Packet::parse`] of the commonest packet, IPv4 with a 20-byte header that is no
    /// later fragment: the same packet `parse` returns for it, without the general
    /// branches. `None` for anything else (the caller then uses `parse`).
    #[inline(always)]
    pub(crate) fn parse_v4_plain(data: &'a [u8]) -> Option<Packet<'a>> {
        let h = data.get(..20)?;
        if h[0] != 0x45 || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
            return None;
        }
        Some(Packet::v4(data, 20))
    }

    /// The view of an IPv4 packet whose header (`ihl` bytes, at least 20) is in `data`.
    #[inline(always)]
    fn v4(data: &'a [u8], ihl: usize) -> Packet<'a> {
        let h = &data[..20];
        Packet {
            data,
            family: Family::V4,
            src: Addr::v4([h[12], h[13], h[14], h[15]]),
            dst: Addr::v4([h[16], h[17], h[18], h[19]]),
            ttl: h[8],
            proto: h[9],
            l4_off: ihl,
        }
    }

    fn header_only(mut self) -> Packet<'a> {
        self.l4_off = self.data.len();
        self
    }

    /// The whole IP packet.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The L4 header and payload (empty if the offset is past the end).
    #[inline]
    pub fn l4(&self) -> &'a [u8] {
        self.data.get(self.l4_off..).unwrap_or(&[])
    }

    /// The L3 length (what accounting adds: `skb->len`).
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the packet is empty (never true for a parsed packet).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Verify the L4 checksum over the whole L4 part with a pseudo-header of protocol `proto`.
    #[inline]
    pub fn l4_checksum_ok(&self, proto: u8) -> bool {
        checksum::verify_with_pseudo(self.family, &self.src, &self.dst, proto, self.l4())
    }
}

/// Why [`Packet::parse`] failed.
#[derive(Debug, Clone, Copy)]
pub enum ParseError<'a> {
    /// Not an IP packet of sufficient length (the IP input checks should have caught it).
    Truncated,
    /// The L4 protocol cannot be found: conntrack counts `invalid`. The header view is kept.
    NoL4(NoL4, Packet<'a>),
}
