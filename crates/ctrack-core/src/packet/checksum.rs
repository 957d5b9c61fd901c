//! Internet checksum (RFC 1071) over byte slices, with the pseudo-headers TCP, UDP,
//! UDP-Lite, ICMPv6 use.

use crate::tuple::{Addr, Family};

/// Add `data` to a running one's-complement sum (not yet folded).
#[inline]
pub fn sum(acc: u64, data: &[u8]) -> u64 {
    acc + u64::from(fold(sum_le(0, data)).swap_bytes())
}

/// The one's-complement sum of `data` read as native little-endian words (not folded),
/// added to `acc`, a sum of the same kind. The sum does not depend on byte order (RFC
/// 1071 §2(B)): folded, it is the network-order sum with its two bytes swapped. 16,
/// then 8 bytes at a time into a 128-bit accumulator (one add with carry per word).
#[inline]
fn sum_le(acc: u64, mut data: &[u8]) -> u64 {
    let mut le = u128::from(acc);
    while let Some((c, rest)) = data.split_first_chunk::<16>() {
        let (a, b) = c.split_at(8);
        le += u128::from(word_le(a)) + u128::from(word_le(b));
        data = rest;
    }
    if let Some((c, rest)) = data.split_first_chunk::<8>() {
        le += u128::from(u64::from_le_bytes(*c));
        data = rest;
    }
    // The tail (up to 7 bytes) as at most one 32-bit, one 16-bit and one odd byte: the
    // odd byte is a word's high byte in network order, its low byte here.
    let mut tail = 0u64;
    if let Some((c, rest)) = data.split_first_chunk::<4>() {
        tail += u64::from(u32::from_le_bytes(*c));
        data = rest;
    }
    if let Some((c, rest)) = data.split_first_chunk::<2>() {
        tail += u64::from(u16::from_le_bytes(*c));
        data = rest;
    }
    if let [a] = data {
        tail += u64::from(*a);
    }
    le += u128::from(tail);
    // 2^64 ≡ 1 modulo 0xffff: the high half adds to the low one, its carry too.
    let (lo, carry) = (le as u64).overflowing_add((le >> 64) as u64);
    lo + u64::from(carry)
}

/// The little-endian 64-bit word of an 8-byte slice.
#[inline(always)]
fn word_le(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c))
}

/// Fold a running sum to 16 bits (not complemented): the value in 1..=0xffff
/// congruent to it modulo 0xffff (0 only for 0): 64 to 32 bits, then 32 to 16, each
/// with its end-around carry.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let (a, c) = (acc as u32).overflowing_add((acc >> 32) as u32);
    let a = a + u32::from(c);
    let (b, c) = (a as u16).overflowing_add((a >> 16) as u16);
    b + u16::from(c)
}

/// Sum of the pseudo-header for an upper-layer length `len` and protocol `proto`.
#[inline]
pub fn pseudo_header(family: Family, src: &Addr, dst: &Addr, len: u32, proto: u8) -> u64 {
    addr_sum(family, src, dst, u32::from_be_bytes) + u64::from(len) + u64::from(proto)
}

/// The sum of both addresses' 32-bit words, each read from its bytes by `word`.
#[inline(always)]
fn addr_sum(family: Family, src: &Addr, dst: &Addr, word: impl Fn([u8; 4]) -> u32) -> u64 {
    let at = |a: &Addr, i: usize| u64::from(word([a.0[i], a.0[i + 1], a.0[i + 2], a.0[i + 3]]));
    match family {
        Family::V4 => at(src, 0) + at(dst, 0),
        Family::V6 => (0..16).step_by(4).map(|i| at(src, i) + at(dst, i)).sum(),
    }
}

/// Whether `data` (with a checksum field inside) sums to 0xffff with the pseudo-header.
/// Summed in little-endian words (see `sum_le`): 0xffff is the same in either order.
#[inline]
pub fn verify_with_pseudo(family: Family, src: &Addr, dst: &Addr, proto: u8, data: &[u8]) -> bool {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let addrs = addr_sum(family, src, dst, u32::from_le_bytes);
    // The length's and protocol's network-order words, byte-swapped into this order.
    let acc = addrs + u64::from(len.swap_bytes()) + (u64::from(proto) << 8);
    fold(sum_le(acc, data)) == 0xffff
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

    /// RFC 1071 the plain way: 16-bit big-endian words, an odd last byte padded, the
    /// carries folded back one at a time.
    fn naive(acc: u64, data: &[u8]) -> u16 {
        let mut a = acc;
        for w in data.chunks(2) {
            a += u64::from(w[0]) << 8 | w.get(1).map_or(0, |&b| u64::from(b));
        }
        while a >> 16 != 0 {
            a = (a & 0xffff) + (a >> 16);
        }
        a as u16
    }

    #[test]
    fn fold_is_the_carry_by_carry_fold() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for k in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let acc = match k % 4 {
                0 => x >> (k % 64),
                1 => k,
                2 => 0xffff * (k + 1),
                _ => x & 0x0000_ffff_ffff_ffff,
            };
            assert_eq!(fold(acc), naive(acc, &[]), "{acc:#x}");
        }
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn sum_folds_as_the_word_by_word_sum_for_every_length() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..80 {
            for round in 0..40 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if round % 5 == 0 {
                            0xff
                        } else {
                            x as u8
                        }
                    })
                    .collect();
                let acc = x % 0x1_0000_0000;
                assert_eq!(
                    fold(sum(acc, &data)),
                    naive(acc, &data),
                    "{len} {data:02x?}"
                );
            }
        }
    }

    /// Long data (up to a jumbo segment), all ones or random, with any running sum.
    #[test]
    fn sum_of_long_data_folds_as_the_word_by_word_sum() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in (81..9100).step_by(97) {
            for ones in [true, false] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if ones {
                            0xff
                        } else {
                            x as u8
                        }
                    })
                    .collect();
                let acc = if ones { u64::from(u32::MAX) } else { x >> 40 };
                assert_eq!(fold(sum(acc, &data)), naive(acc, &data), "{len}");
            }
        }
    }

    #[test]
    fn pseudo_header_is_the_sum_of_its_words() {
        let v4 = (Addr::v4([192, 168, 255, 1]), Addr::v4([10, 0, 0, 254]));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&v4.0 .0[..4]);
        bytes.extend_from_slice(&v4.1 .0[..4]);
        let want = naive(u64::from(1500u32) + 6, &bytes);
        assert_eq!(fold(pseudo_header(Family::V4, &v4.0, &v4.1, 1500, 6)), want);
        let s6 = Addr::v6([
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        let d6 = Addr::v6([
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef, 2,
        ]);
        let mut bytes = s6.0.to_vec();
        bytes.extend_from_slice(&d6.0);
        let want = naive(u64::from(70_000u32) + 17, &bytes);
        assert_eq!(fold(pseudo_header(Family::V6, &s6, &d6, 70_000, 17)), want);
    }

    /// A segment whose checksum field holds `compute` of it with the pseudo-header
    /// verifies, for both families and every length up to 300; one flipped bit fails.
    #[test]
    fn verify_with_pseudo_accepts_exactly_the_computed_checksum() {
        let (s4, d4) = (Addr::v4([192, 168, 255, 1]), Addr::v4([10, 0, 0, 254]));
        let s6 = Addr::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3, 0, 0, 0xab, 1]);
        let d6 = Addr::v6([
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xcd, 0xef, 2,
        ]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 18..300usize {
            for (family, src, dst, proto) in [(Family::V4, s4, d4, 6), (Family::V6, s6, d6, 17)] {
                let mut seg: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                seg[16..18].fill(0);
                let acc = pseudo_header(family, &src, &dst, len as u32, proto);
                let check = compute(acc, &seg);
                seg[16..18].copy_from_slice(&check.to_be_bytes());
                assert!(verify_with_pseudo(family, &src, &dst, proto, &seg), "{len}");
                seg[len / 2] ^= 0x10;
                assert!(
                    !verify_with_pseudo(family, &src, &dst, proto, &seg),
                    "{len}"
                );
            }
        }
    }

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
