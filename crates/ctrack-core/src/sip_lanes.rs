//! SipHash-1-3 of many two-word messages at once (issue 6): the batch path hashes a
//! round of IPv4 tuples (each packed into two 64-bit words, see
//! [`crate::table::FlowHasher::v4_words`]) in SIMD lanes — eight per AVX-512 vector,
//! four per AVX2 vector — instead of one after the other. Each lane computes exactly
//! [`crate::table::sip13`] of its two words (a test pins the equality on every path),
//! so the table's keyed hash and its resistance to hash flooding are unchanged; only
//! the instructions a packet spends on it shrink (~130 scalar, ~15 in AVX-512 lanes).
//!
//! The widest path the CPU offers is chosen at run time (`is_x86_feature_detected!`,
//! a cached flag); other CPUs take the scalar loop.

use crate::table::sip13;

/// The most messages [`sip13_pairs`] takes in one call (a batch round).
pub const MAX_LANES: usize = 16;

/// A round's messages, word by word (structure of arrays, as the vectors load them):
/// message `i` is `(w0[i], w1[i])`. Lanes past the ones a call asks for are hashed too
/// (whatever they hold) and ignored, so nothing is copied or padded.
pub type Words = [u64; MAX_LANES];

/// Which implementation [`sip13_pairs`] runs (by what the CPU offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Eight lanes per AVX-512 vector (AVX-512F and VL).
    Avx512,
    /// Four lanes per AVX2 vector.
    Avx2,
    /// One message after the other.
    Scalar,
}

/// The path [`sip13_pairs`] takes on this CPU.
#[inline]
pub fn best_path() -> Path {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Path::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Path::Avx2;
        }
    }
    Path::Scalar
}

/// `out[i] = sip13(k0, k1, &[w0[i], w1[i]])` for every `i < n` (`n` at most
/// [`MAX_LANES`]), on the widest path this CPU has.
#[inline]
pub fn sip13_pairs(k0: u64, k1: u64, w0: &Words, w1: &Words, n: usize, out: &mut Words) {
    sip13_pairs_on(best_path(), k0, k1, w0, w1, n, out);
}

/// [`sip13_pairs`] on a given path; a path the CPU lacks falls back to the scalar loop
/// (so tests can run every path that exists here).
pub fn sip13_pairs_on(
    path: Path,
    k0: u64,
    k1: u64,
    w0: &Words,
    w1: &Words,
    n: usize,
    out: &mut Words,
) {
    let n = n.min(MAX_LANES);
    #[cfg(target_arch = "x86_64")]
    match path {
        Path::Avx512
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl") =>
        {
            // SAFETY: the CPU has AVX-512F and AVX-512VL (checked just above), the only
            // requirement of the target-feature function.
            unsafe { x86::pairs_avx512(k0, k1, w0, w1, n, out) };
            return;
        }
        Path::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
            // SAFETY: the CPU has AVX2 (checked just above), the only requirement of
            // the target-feature function.
            unsafe { x86::pairs_avx2(k0, k1, w0, w1, n, out) };
            return;
        }
        _ => {}
    }
    let _ = path;
    for ((o, &a), &b) in out[..n].iter_mut().zip(w0).zip(w1) {
        *o = sip13(k0, k1, &[a, b]);
    }
}

/// [`sip13_pairs_on`] over any number of messages, a round of [`MAX_LANES`] at a
/// time, each hash handed to `each` in order (benchmarks and tests of whole sets).
pub fn sip13_each(path: Path, k0: u64, k1: u64, msgs: &[[u64; 2]], mut each: impl FnMut(u64)) {
    let mut out: Words = [0; MAX_LANES];
    for round in msgs.chunks(MAX_LANES) {
        let (mut w0, mut w1): (Words, Words) = ([0; MAX_LANES], [0; MAX_LANES]);
        for (i, m) in round.iter().enumerate() {
            (w0[i], w1[i]) = (m[0], m[1]);
        }
        sip13_pairs_on(path, k0, k1, &w0, &w1, round.len(), &mut out);
        out[..round.len()].iter().for_each(|&h| each(h));
    }
}

/// SipHash's initial state constants ("somepseudorandomlygeneratedbytes").
const INIT: [u64; 4] = [
    0x736f_6d65_7073_6575,
    0x646f_7261_6e64_6f6d,
    0x6c79_6765_6e65_7261,
    0x7465_6462_7974_6573,
];

/// The length block of a 16-byte message (its length in the top byte).
const LEN16: u64 = 16 << 56;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Words, INIT, LEN16, MAX_LANES};
    use core::arch::x86_64::*;

    /// SipHash-1-3 of `(w0[i], w1[i])` in AVX-512 lanes, eight per vector.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub(super) fn pairs_avx512(k0: u64, k1: u64, a: &Words, b: &Words, n: usize, r: &mut Words) {
        let set = |x: u64| _mm512_set1_epi64(x as i64);
        let (s0, s1) = (set(k0 ^ INIT[0]), set(k1 ^ INIT[1]));
        let (s2, s3) = (set(k0 ^ INIT[2]), set(k1 ^ INIT[3]));
        let (len, ff) = (set(LEN16), set(0xff));
        macro_rules! round {
            ($v0:ident, $v1:ident, $v2:ident, $v3:ident) => {
                $v0 = _mm512_add_epi64($v0, $v1);
                $v1 = _mm512_rol_epi64::<13>($v1);
                $v1 = _mm512_xor_si512($v1, $v0);
                $v0 = _mm512_rol_epi64::<32>($v0);
                $v2 = _mm512_add_epi64($v2, $v3);
                $v3 = _mm512_rol_epi64::<16>($v3);
                $v3 = _mm512_xor_si512($v3, $v2);
                $v0 = _mm512_add_epi64($v0, $v3);
                $v3 = _mm512_rol_epi64::<21>($v3);
                $v3 = _mm512_xor_si512($v3, $v0);
                $v2 = _mm512_add_epi64($v2, $v1);
                $v1 = _mm512_rol_epi64::<17>($v1);
                $v1 = _mm512_xor_si512($v1, $v2);
                $v2 = _mm512_rol_epi64::<32>($v2);
            };
        }
        debug_assert!(n <= MAX_LANES);
        let mut i = 0;
        while i < n {
            // SAFETY: `i + 8 <= MAX_LANES` (i < n <= MAX_LANES, both multiples of 8, i
            // steps by 8), so each unaligned 64-byte load reads inside `a` or `b` and
            // the store writes inside `r`.
            let (m0, m1) = unsafe {
                (
                    _mm512_loadu_si512(a.as_ptr().add(i).cast()),
                    _mm512_loadu_si512(b.as_ptr().add(i).cast()),
                )
            };
            let (mut v0, mut v1, mut v2, mut v3) = (s0, s1, s2, s3);
            for m in [m0, m1, len] {
                v3 = _mm512_xor_si512(v3, m);
                round!(v0, v1, v2, v3);
                v0 = _mm512_xor_si512(v0, m);
            }
            v2 = _mm512_xor_si512(v2, ff);
            round!(v0, v1, v2, v3);
            round!(v0, v1, v2, v3);
            round!(v0, v1, v2, v3);
            let h = _mm512_xor_si512(_mm512_xor_si512(v0, v1), _mm512_xor_si512(v2, v3));
            // SAFETY: as for the loads above.
            unsafe { _mm512_storeu_si512(r.as_mut_ptr().add(i).cast(), h) };
            i += 8;
        }
    }

    /// `$x` rotated left by `$l` bits in each 64-bit lane (`$r` = 64 - `$l`).
    macro_rules! rol256 {
        ($x:expr, $l:literal, $r:literal) => {
            _mm256_or_si256(_mm256_slli_epi64::<$l>($x), _mm256_srli_epi64::<$r>($x))
        };
    }

    /// SipHash-1-3 of `(w0[i], w1[i])` in AVX2 lanes, four per vector.
    #[target_feature(enable = "avx2")]
    pub(super) fn pairs_avx2(k0: u64, k1: u64, a: &Words, b: &Words, n: usize, r: &mut Words) {
        let set = |x: u64| _mm256_set1_epi64x(x as i64);
        let (s0, s1) = (set(k0 ^ INIT[0]), set(k1 ^ INIT[1]));
        let (s2, s3) = (set(k0 ^ INIT[2]), set(k1 ^ INIT[3]));
        let (len, ff) = (set(LEN16), set(0xff));
        // Rotating a 64-bit lane by 32 swaps its halves: one shuffle.
        let swap = |x: __m256i| _mm256_shuffle_epi32::<0b10_11_00_01>(x);
        macro_rules! round {
            ($v0:ident, $v1:ident, $v2:ident, $v3:ident) => {
                $v0 = _mm256_add_epi64($v0, $v1);
                $v1 = rol256!($v1, 13, 51);
                $v1 = _mm256_xor_si256($v1, $v0);
                $v0 = swap($v0);
                $v2 = _mm256_add_epi64($v2, $v3);
                $v3 = rol256!($v3, 16, 48);
                $v3 = _mm256_xor_si256($v3, $v2);
                $v0 = _mm256_add_epi64($v0, $v3);
                $v3 = rol256!($v3, 21, 43);
                $v3 = _mm256_xor_si256($v3, $v0);
                $v2 = _mm256_add_epi64($v2, $v1);
                $v1 = rol256!($v1, 17, 47);
                $v1 = _mm256_xor_si256($v1, $v2);
                $v2 = swap($v2);
            };
        }
        debug_assert!(n <= MAX_LANES);
        let mut i = 0;
        while i < n {
            // SAFETY: `i + 4 <= MAX_LANES` (i < n <= MAX_LANES, both multiples of 4, i
            // steps by 4), so each unaligned 32-byte load reads inside `a` or `b` and
            // the store writes inside `r`.
            let (m0, m1) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(i).cast()),
                    _mm256_loadu_si256(b.as_ptr().add(i).cast()),
                )
            };
            let (mut v0, mut v1, mut v2, mut v3) = (s0, s1, s2, s3);
            for m in [m0, m1, len] {
                v3 = _mm256_xor_si256(v3, m);
                round!(v0, v1, v2, v3);
                v0 = _mm256_xor_si256(v0, m);
            }
            v2 = _mm256_xor_si256(v2, ff);
            round!(v0, v1, v2, v3);
            round!(v0, v1, v2, v3);
            round!(v0, v1, v2, v3);
            let h = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
            // SAFETY: as for the loads above.
            unsafe { _mm256_storeu_si256(r.as_mut_ptr().add(i).cast(), h) };
            i += 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siphasher::sip::SipHasher13;
    use std::hash::Hasher;

    fn reference(k0: u64, k1: u64, a: u64, b: u64) -> u64 {
        let mut h = SipHasher13::new_with_keys(k0, k1);
        h.write(&a.to_le_bytes());
        h.write(&b.to_le_bytes());
        h.finish()
    }

    #[test]
    fn every_path_equals_siphash13_for_every_length() {
        let mut s = 0x0123_4567_89ab_cdefu64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for path in [Path::Avx512, Path::Avx2, Path::Scalar] {
            for n in 0..=MAX_LANES {
                let (k0, k1) = (next(), next());
                let w0: Words = std::array::from_fn(|_| next());
                let w1: Words = std::array::from_fn(|_| next());
                let mut out = [0u64; MAX_LANES];
                sip13_pairs_on(path, k0, k1, &w0, &w1, n, &mut out);
                for i in 0..n {
                    assert_eq!(
                        out[i],
                        reference(k0, k1, w0[i], w1[i]),
                        "{path:?} n {n} i {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_hashes_every_message_in_order() {
        let msgs: Vec<[u64; 2]> = (0..40u64).map(|i| [i, i * 3]).collect();
        for path in [Path::Avx512, Path::Avx2, Path::Scalar] {
            let mut got = Vec::new();
            sip13_each(path, 1, 2, &msgs, |h| got.push(h));
            let want: Vec<u64> = msgs.iter().map(|m| sip13(1, 2, m)).collect();
            assert_eq!(got, want, "{path:?}");
        }
    }

    #[test]
    fn the_dispatch_equals_the_scalar_hash() {
        let w0: Words = std::array::from_fn(|i| i as u64 * 77);
        let w1: Words = std::array::from_fn(|i| !(i as u64));
        let mut out = [0u64; MAX_LANES];
        sip13_pairs(5, 6, &w0, &w1, MAX_LANES, &mut out);
        for i in 0..MAX_LANES {
            assert_eq!(out[i], sip13(5, 6, &[w0[i], w1[i]]));
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn this_machine_takes_a_simd_path() {
        // CI runs on x86_64 machines with AVX2 at least; a scalar answer here would mean
        // the detection broke and the batch path silently lost its SIMD hash.
        if std::arch::is_x86_feature_detected!("avx2") {
            assert_ne!(best_path(), Path::Scalar);
        }
    }
}
