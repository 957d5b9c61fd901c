//! Internet checksum (RFC 1071) over byte slices, with the pseudo-headers TCP, UDP,
//! UDP-Lite, ICMPv6 use.

use crate::tuple::{Addr, Family};

/// Add `data` to a running one's-complement sum (not yet folded).
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc = acc.wrapping_add(w >> 32).wrapping_add(w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Fold a running sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sum of the pseudo-header for an upper-layer length `len` and protocol `proto`.
pub fn pseudo_header(family: Family, src: &Addr, dst: &Addr, len: u32, proto: u8) -> u64 {
    let mut acc = 0u64;
    match family {
        Family::V4 => {
            acc = sum(acc, &src.0[..4]);
            acc = sum(acc, &dst.0[..4]);
        }
        Family::V6 => {
            acc = sum(acc, &src.0);
            acc = sum(acc, &dst.0);
        }
    }
    acc + u64::from(len) + u64::from(proto)
}

/// Whether `data` (with a checksum field inside) sums to 0xffff with the pseudo-header.
pub fn verify_with_pseudo(family: Family, src: &Addr, dst: &Addr, proto: u8, data: &[u8]) -> bool {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let acc = pseudo_header(family, src, dst, len, proto);
    fold(sum(acc, data)) == 0xffff
}

/// Whether `data` (e.g. an IPv4 header or an ICMP message) sums to 0xffff.
pub fn verify(data: &[u8]) -> bool {
    fold(sum(0, data)) == 0xffff
}

/// The checksum value to store for `data` whose checksum field is zero.
pub fn compute(acc: u64, data: &[u8]) -> u16 {
    !fold(sum(acc, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum() {
        // A known-good IPv4 header (checksum 0xb1e6).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&h));
        let mut bad = h;
        bad[10] ^= 1;
        assert!(!verify(&bad));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(compute(0, &z), 0xb861);
    }
}
