//! IP input checks that run before netfilter (kernel `ip_rcv_core`, `ip6_rcv_core`,
//! `ipv6_parse_hopopts`; kernel-semantics-2.md §4), and the IPv6 extension-header walk
//! (`ipv6_skip_exthdr`). A packet failing a check never reaches conntrack.

use super::checksum;
use super::NoL4;
use core::fmt;

/// Why the IP layer dropped a packet before netfilter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDrop {
    /// Fewer bytes than a minimal header.
    TooShort,
    /// Version nibble differs from the frame's family.
    BadVersion(u8),
    /// IPv4 IHL below 5 or beyond the packet.
    BadIhl,
    /// IPv4 header checksum wrong.
    BadHeaderChecksum,
    /// Length field larger than the bytes present.
    LengthBeyondPacket,
    /// IPv4 tot_len smaller than the header.
    LengthBelowHeader,
    /// IPv6 ::1 as source or destination on a non-loopback device.
    Ipv6Loopback,
    /// IPv6 multicast destination of scope 0 or 1, or multicast source.
    Ipv6BadMulticast,
    /// IPv6 hop-by-hop options header malformed or with a must-drop option.
    Ipv6HopByHop,
}

impl fmt::Display for IpDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpDrop::TooShort => f.write_str("ip: packet shorter than the IP header"),
            IpDrop::BadVersion(v) => write!(f, "ip: version {v} in the frame"),
            IpDrop::BadIhl => f.write_str("ip: bad IPv4 header length"),
            IpDrop::BadHeaderChecksum => f.write_str("ip: bad IPv4 header checksum"),
            IpDrop::LengthBeyondPacket => f.write_str("ip: length field beyond the packet"),
            IpDrop::LengthBelowHeader => f.write_str("ip: IPv4 total length below header length"),
            IpDrop::Ipv6Loopback => f.write_str("ip6: ::1 on a non-loopback device"),
            IpDrop::Ipv6BadMulticast => f.write_str("ip6: bad multicast address"),
            IpDrop::Ipv6HopByHop => f.write_str("ip6: bad hop-by-hop options"),
        }
    }
}

/// The IP input checks of the packet's version (the version nibble: 6 is IPv6,
/// anything else goes through the IPv4 checks, which reject it).
#[inline]
pub fn check_ip(frame: &[u8]) -> Result<&[u8], IpDrop> {
    match frame.first().map(|b| b >> 4) {
        Some(6) => check_ipv6(frame),
        _ => check_ipv4(frame),
    }
}

/// IPv4 input checks. Returns the packet trimmed to `tot_len` (link padding removed).
pub fn check_ipv4(frame: &[u8]) -> Result<&[u8], IpDrop> {
    if frame.len() < 20 {
        return Err(IpDrop::TooShort);
    }
    let v = frame[0] >> 4;
    if v != 4 {
        return Err(IpDrop::BadVersion(v));
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(IpDrop::BadIhl);
    }
    if frame.len() < ihl {
        return Err(IpDrop::BadIhl);
    }
    if !checksum::verify(&frame[..ihl]) {
        return Err(IpDrop::BadHeaderChecksum);
    }
    let tot = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
    if tot > frame.len() {
        return Err(IpDrop::LengthBeyondPacket);
    }
    if tot < ihl {
        return Err(IpDrop::LengthBelowHeader);
    }
    Ok(&frame[..tot])
}

/// IPv6 input checks (incl. hop-by-hop options). Returns the packet trimmed to
/// 40 + payload length.
pub fn check_ipv6(frame: &[u8]) -> Result<&[u8], IpDrop> {
    if frame.len() < 40 {
        return Err(IpDrop::TooShort);
    }
    let v = frame[0] >> 4;
    if v != 6 {
        return Err(IpDrop::BadVersion(v));
    }
    let src = &frame[8..24];
    let dst = &frame[24..40];
    let loopback = |a: &[u8]| a[..15].iter().all(|&b| b == 0) && a[15] == 1;
    if loopback(src) || loopback(dst) {
        return Err(IpDrop::Ipv6Loopback);
    }
    if dst[0] == 0xff && (dst[1] & 0x0f) <= 1 {
        return Err(IpDrop::Ipv6BadMulticast);
    }
    if src[0] == 0xff {
        return Err(IpDrop::Ipv6BadMulticast);
    }
    let plen = usize::from(u16::from_be_bytes([frame[4], frame[5]]));
    if plen + 40 > frame.len() {
        return Err(IpDrop::LengthBeyondPacket);
    }
    let pkt = if plen == 0 && frame[6] == 0 {
        // Jumbo payload: the HBH parser decides; without a valid jumbo option it fails.
        frame
    } else {
        &frame[..40 + plen]
    };
    if pkt[6] == 0 {
        return check_hop_by_hop(pkt, plen);
    }
    Ok(pkt)
}

/// `ipv6_parse_hopopts` / `ip6_parse_tlv` on the forward path.
fn check_hop_by_hop(pkt: &[u8], plen: usize) -> Result<&[u8], IpDrop> {
    let hdr = pkt.get(40..42).ok_or(IpDrop::Ipv6HopByHop)?;
    let len = (usize::from(hdr[1]) + 1) * 8;
    let opts = pkt.get(40..40 + len).ok_or(IpDrop::Ipv6HopByHop)?;
    let mut off = 2;
    let mut padlen = 0usize;
    let mut count = 0usize;
    let mut jumbo: Option<u32> = None;
    while off < len {
        let ty = opts[off];
        if ty == 0 {
            padlen += 1;
            if padlen > 7 {
                return Err(IpDrop::Ipv6HopByHop);
            }
            off += 1;
            continue;
        }
        let optlen = usize::from(*opts.get(off + 1).ok_or(IpDrop::Ipv6HopByHop)?) + 2;
        if off + optlen > len {
            return Err(IpDrop::Ipv6HopByHop);
        }
        if ty == 1 {
            padlen += optlen;
            if padlen > 7 || opts[off + 2..off + optlen].iter().any(|&b| b != 0) {
                return Err(IpDrop::Ipv6HopByHop);
            }
        } else {
            padlen = 0;
            count += 1;
            if count > 8 {
                return Err(IpDrop::Ipv6HopByHop);
            }
            match ty {
                // Router alert: length must be 2.
                0x05 => {
                    if optlen != 4 {
                        return Err(IpDrop::Ipv6HopByHop);
                    }
                }
                // Jumbo payload.
                0xc2 => {
                    if optlen != 6 || off & 3 != 2 || plen != 0 {
                        return Err(IpDrop::Ipv6HopByHop);
                    }
                    let v = u32::from_be_bytes([
                        opts[off + 2],
                        opts[off + 3],
                        opts[off + 4],
                        opts[off + 5],
                    ]);
                    if v <= 65535 {
                        return Err(IpDrop::Ipv6HopByHop);
                    }
                    jumbo = Some(v);
                }
                // CALIPSO (7) and IOAM (0x31) are known options; accept them.
                0x07 | 0x31 => {}
                _ => {
                    if ty >> 6 != 0 {
                        return Err(IpDrop::Ipv6HopByHop);
                    }
                }
            }
        }
        off += optlen;
    }
    match (plen, jumbo) {
        (0, Some(v)) => {
            let total = 40usize.saturating_add(v as usize);
            pkt.get(..total).ok_or(IpDrop::LengthBeyondPacket)
        }
        (0, None) => Ok(&pkt[..40]),
        _ => Ok(pkt),
    }
}

/// Walk IPv6 extension headers from `off` with next header `nh` (kernel
/// `ipv6_skip_exthdr` + the fragment-offset test of `ipv6_get_l4proto`).
/// Returns the L4 protocol and its offset.
pub fn ipv6_skip_exthdr(data: &[u8], mut off: usize, mut nh: u8) -> Result<(u8, usize), NoL4> {
    loop {
        match nh {
            0 | 43 | 44 | 51 | 60 => {}
            59 => return Err(NoL4::Ipv6NoTransport),
            _ => return Ok((nh, off)),
        }
        let h = data.get(off..off + 2).ok_or(NoL4::Ipv6NoTransport)?;
        let next = h[0];
        let hdrlen = match nh {
            44 => {
                let f = data.get(off + 2..off + 4).ok_or(NoL4::Ipv6NoTransport)?;
                let frag_off = u16::from_be_bytes([f[0], f[1]]);
                if frag_off & !0x7 != 0 {
                    return Err(NoL4::Ipv6Fragment);
                }
                8
            }
            51 => (usize::from(h[1]) + 2) << 2,
            _ => (usize::from(h[1]) + 1) << 3,
        };
        nh = next;
        off += hdrlen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(tot: u16, csum_ok: bool) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1,
        ];
        h[2..4].copy_from_slice(&tot.to_be_bytes());
        let c = checksum::compute(0, &h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        if !csum_ok {
            h[11] ^= 0xff;
        }
        h.resize(usize::from(tot.max(20)), 0);
        h
    }

    #[test]
    fn ipv4_checks() {
        assert!(check_ipv4(&v4(28, true)).is_ok());
        assert_eq!(check_ipv4(&v4(28, false)), Err(IpDrop::BadHeaderChecksum));
        let mut long = v4(28, true);
        long.extend_from_slice(&[0; 18]);
        assert_eq!(check_ipv4(&long).unwrap().len(), 28);
        let mut short = v4(28, true);
        short.truncate(24);
        assert_eq!(check_ipv4(&short), Err(IpDrop::LengthBeyondPacket));
    }

    #[test]
    fn ipv6_nonext_header_is_no_transport() {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = 59;
        assert_eq!(ipv6_skip_exthdr(&p, 40, 59), Err(NoL4::Ipv6NoTransport));
        assert_eq!(ipv6_skip_exthdr(&p, 40, 17), Ok((17, 40)));
    }
}
