//! Internet checksum (RFC 1071) over byte slices, with the pseudo-headers TCP, UDP,
//! UDP-Lite, ICMPv6 use.

use crate::tuple::{Addr, Family};

/// Add `data` to a running one's-complement sum (not yet folded).
#[inline]
pub fn sum(mut acc: u64, mut data: &[u8]) -> u64 {
    // 64-bit big-endian words, each added as its two 32-bit halves: a 2^32 multiple is
    // congruent to 1 modulo 0xffff, which is all the one's-complement sum keeps.
    while let Some((c, rest)) = data.split_first_chunk::<8>() {
        let w = u64::from_be_bytes(*c);
        acc = acc.wrapping_add(w >> 32).wrapping_add(w & 0xffff_ffff);
        data = rest;
    }
    // The tail (up to 7 bytes) as at most one 32-bit, one 16-bit and one odd byte.
    if let Some((c, rest)) = data.split_first_chunk::<4>() {
        acc += u64::from(u32::from_be_bytes(*c));
        data = rest;
    }
    if let Some((c, rest)) = data.split_first_chunk::<2>() {
        acc += u64::from(u16::from_be_bytes(*c));
        data = rest;
    }
    if let [a] = data {
        acc += u64::from(*a) << 8;
    }
    acc
}

/// Fold a running sum to 16 bits (not complemented): the value in 1..=0xffff
/// congruent to it modulo 0xffff (0 only for 0), in four fixed steps.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let a = (acc >> 32) + (acc & 0xffff_ffff);
    let a = (a >> 16) + (a & 0xffff);
    let a = (a >> 16) + (a & 0xffff);
    let a = (a >> 16) + (a & 0xffff);
    a as u16
}

/// Sum of the pseudo-header for an upper-layer length `len` and protocol `proto`.
#[inline]
pub fn pseudo_header(family: Family, src: &Addr, dst: &Addr, len: u32, proto: u8) -> u64 {
    let word = |a: &Addr, i: usize| {
        let b = &a.0;
        u64::from(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]))
    };
    let acc = match family {
        Family::V4 => word(src, 0) + word(dst, 0),
        Family::V6 => (0..16)
            .step_by(4)
            .map(|i| word(src, i) + word(dst, i))
            .sum(),
    };
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
