//! The unique tuple search (kernel `get_unique_tuple`, `find_best_ips_proto`,
//! `nf_nat_l4proto_unique_tuple`; kernel-semantics.md §13.3), written against a
//! [`TupleSpace`] that answers "is this taken?" so it can be tested without a table.
//!
//! 1. SRC manip without a random flag: the original tuple itself if it is in the range
//!    and free (identity); if it is not in range, an existing mapping of the same
//!    original source (`bysource`) that is in range and free.
//! 2. The address: a single address directly; otherwise `jhash2` of the source address
//!    seeded with the last destination word (0 with `persistent`), scaled into the range
//!    word by word — deterministic, so the kernel's choice is reproduced exactly.
//! 3. Done if the L4 key is in range and free (a single-port range needs no check).
//! 4. Otherwise the port search: the key is the source port for SRC, the destination
//!    port for DST, the ICMP id (0..65535 unless given); without a range, DST keeps its
//!    port and SRC searches the class of the original port ([1,511], [600,1023],
//!    [1024,65535]). Random start (SRC or random flags; DST from 0), at most 128
//!    attempts, halved with a new random start while ≥ 16 and below the range size.

use super::{flags, Manip, NatRange};
use crate::tuple::{proto, Family, Tuple};

/// What the search asks of the table.
pub trait TupleSpace {
    /// `nf_nat_used_tuple`: would `t` as the new original-side tuple clash, i.e. is its
    /// inverse some live entry's tuple (excluding the querying entry and same-flow
    /// racers)? Counts `found` when it is.
    fn used(&mut self, t: &Tuple) -> bool;
    /// `nf_nat_used_tuple_new`: [`TupleSpace::used`] with the reverse-race exception
    /// for protocols that allow clashes.
    fn used_new(&mut self, t: &Tuple) -> bool;
    /// `nf_nat_used_tuple_harder`: [`TupleSpace::used`], but in the last
    /// `NF_NAT_HARDER_THRESH` attempts a TCP SYN may evict a colliding TIME_WAIT entry.
    fn used_harder(&mut self, t: &Tuple, attempts_left: u32) -> bool;
    /// `find_appropriate_src`: for each existing SRC-manipulated entry of the same
    /// original source (address, key, protocol, zone), its mapped source (the inverse of
    /// its reply tuple) with `t`'s destination.
    fn src_mappings(&mut self, t: &Tuple) -> Vec<Tuple>;
    /// A random 16-bit value (kernel `get_random_u16`).
    fn random_u16(&mut self) -> u16;
}

/// `NF_NAT_MAX_ATTEMPTS`.
pub const MAX_ATTEMPTS: u32 = 128;
/// `NF_NAT_HARDER_THRESH`: the last quarter of the attempts.
pub const HARDER_THRESH: u32 = MAX_ATTEMPTS / 4;

/// Bob Jenkins' lookup3 `jhash2` over 32-bit words, as the kernel's `<linux/jhash.h>`.
pub fn jhash2(k: &[u32], initval: u32) -> u32 {
    let mut a = 0xdead_beef_u32
        .wrapping_add((k.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    macro_rules! mix {
        () => {
            a = a.wrapping_sub(c);
            a ^= c.rotate_left(4);
            c = c.wrapping_add(b);
            b = b.wrapping_sub(a);
            b ^= a.rotate_left(6);
            a = a.wrapping_add(c);
            c = c.wrapping_sub(b);
            c ^= b.rotate_left(8);
            b = b.wrapping_add(a);
            a = a.wrapping_sub(c);
            a ^= c.rotate_left(16);
            c = c.wrapping_add(b);
            b = b.wrapping_sub(a);
            b ^= a.rotate_left(19);
            a = a.wrapping_add(c);
            c = c.wrapping_sub(b);
            c ^= b.rotate_left(4);
            b = b.wrapping_add(a);
        };
    }
    let mut k = k;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        mix!();
        k = &k[3..];
    }
    if k.is_empty() {
        return c;
    }
    if k.len() == 3 {
        c = c.wrapping_add(k[2]);
    }
    if k.len() >= 2 {
        b = b.wrapping_add(k[1]);
    }
    a = a.wrapping_add(k[0]);
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// The address as the kernel's `u32 all[4]` read on a little-endian host.
fn words(a: &crate::tuple::Addr) -> [u32; 4] {
    let b = &a.0;
    [0, 1, 2, 3].map(|i| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

fn addr_in_range(t: &Tuple, r: &NatRange) -> bool {
    match t.family {
        Family::V4 => {
            let v = u32::from_be_bytes(t.src.v4_octets());
            v >= u32::from_be_bytes(r.min_addr.v4_octets())
                && v <= u32::from_be_bytes(r.max_addr.v4_octets())
        }
        Family::V6 => t.src.0 >= r.min_addr.0 && t.src.0 <= r.max_addr.0,
    }
}

/// `l4proto_in_range`: the manipulable key of `t` is within [min, max].
pub fn l4_in_range(t: &Tuple, manip: Manip, min: u16, max: u16) -> bool {
    let key = match t.proto {
        proto::ICMP | proto::ICMPV6 => t.src_u,
        proto::GRE | proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => match manip {
            Manip::Src => t.src_u,
            Manip::Dst => t.dst_u,
        },
        _ => return true,
    };
    key >= min && key <= max
}

/// `nf_in_range`: would mapping the source to `t` meet the range?
fn in_range(t: &Tuple, r: &NatRange) -> bool {
    if r.flags & flags::MAP_IPS != 0 && !addr_in_range(t, r) {
        return false;
    }
    if r.flags & flags::PROTO_SPECIFIED == 0 {
        return true;
    }
    l4_in_range(t, Manip::Src, r.min_port, r.max_port)
}

/// `find_best_ips_proto`: choose the address of the manipulated side.
/// `zone` is the raw zone id (`zone->id`), whatever its directions.
fn best_ips(t: &mut Tuple, r: &NatRange, manip: Manip, zone: u16) {
    if r.flags & flags::MAP_IPS == 0 {
        return;
    }
    let (min, max) = (words(&r.min_addr), words(&r.max_addr));
    if r.min_addr == r.max_addr {
        match manip {
            Manip::Src => t.src = r.min_addr,
            Manip::Dst => t.dst = r.min_addr,
        }
        return;
    }
    let last = match t.family {
        Family::V4 => 0,
        Family::V6 => 3,
    };
    let dst = words(&t.dst);
    let persistent = r.flags & flags::PERSISTENT != 0;
    let mut j = jhash2(
        &words(&t.src),
        if persistent {
            0
        } else {
            dst[last] ^ u32::from(zone)
        },
    );
    let mut out = match manip {
        Manip::Src => words(&t.src),
        Manip::Dst => dst,
    };
    let mut full_range = false;
    for i in 0..=last {
        let (minip, dist) = if full_range {
            (0u32, u32::MAX)
        } else {
            let lo = u32::from_be(min[i]);
            let hi = u32::from_be(max[i]);
            (lo, hi.wrapping_sub(lo).wrapping_add(1))
        };
        let scaled = ((u64::from(j) * u64::from(dist)) >> 32) as u32;
        out[i] = minip.wrapping_add(scaled).to_be();
        if out[i] != max[i] {
            full_range = true;
        }
        if !persistent {
            // The kernel reads tuple->dst here: for DST manip, the word just written.
            j ^= if manip == Manip::Dst { out[i] } else { dst[i] };
        }
    }
    let mut bytes = [0u8; 16];
    for (i, w) in out.iter().enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    match manip {
        Manip::Src => t.src.0 = bytes,
        Manip::Dst => t.dst.0 = bytes,
    }
}

/// `nf_nat_l4proto_unique_tuple`: search the L4 key.
fn l4_unique(
    space: &mut dyn TupleSpace,
    t: &mut Tuple,
    r: &NatRange,
    manip: Manip,
    has_master: bool,
) {
    let icmp = matches!(t.proto, proto::ICMP | proto::ICMPV6);
    let (min, range_size): (u32, u32) = if icmp {
        if r.flags & flags::PROTO_SPECIFIED == 0 {
            (0, 65536)
        } else {
            let (lo, hi) = (u32::from(r.min_port), u32::from(r.max_port));
            (lo, hi.wrapping_sub(lo).wrapping_add(1) & 0x1ffff)
        }
    } else {
        match t.proto {
            proto::GRE if !has_master => return,
            proto::GRE | proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {}
            _ => return,
        }
        let key = match manip {
            Manip::Src => t.src_u,
            Manip::Dst => t.dst_u,
        };
        if r.flags & flags::PROTO_SPECIFIED == 0 {
            if t.proto == proto::GRE {
                (1, 65535)
            } else if manip == Manip::Dst {
                return;
            } else if key < 512 {
                (1, 511)
            } else if key < 1024 {
                (600, 1023 - 600 + 1)
            } else {
                (1024, 65535 - 1024 + 1)
            }
        } else {
            let (mut lo, mut hi) = (u32::from(r.min_port), u32::from(r.max_port));
            if hi < lo {
                std::mem::swap(&mut lo, &mut hi);
            }
            (lo, hi - lo + 1)
        }
    };
    let set = |t: &mut Tuple, v: u16| {
        if icmp || manip == Manip::Src {
            t.src_u = v;
        } else {
            t.dst_u = v;
        }
    };
    let cur = if icmp || manip == Manip::Src {
        t.src_u
    } else {
        t.dst_u
    };
    let mut off: u16 = if r.flags & flags::PROTO_OFFSET != 0 {
        cur.wrapping_sub(r.base_port)
    } else if r.flags & flags::RANDOM_ALL != 0 || manip != Manip::Dst {
        space.random_u16()
    } else {
        0
    };
    if range_size == 0 {
        return;
    }
    let mut attempts = range_size.min(MAX_ATTEMPTS);
    loop {
        for i in 0..attempts {
            set(t, (min + u32::from(off) % range_size) as u16);
            if !space.used_harder(t, attempts - i) {
                return;
            }
            off = off.wrapping_add(1);
        }
        if attempts >= range_size || attempts < 16 {
            return;
        }
        attempts /= 2;
        off = space.random_u16();
    }
}

/// `get_unique_tuple`: the new tuple for the manipulated side of `orig` (the entry's
/// current original-side view, `invert(reply)`), within `r`.
pub fn unique_tuple(
    space: &mut dyn TupleSpace,
    orig: &Tuple,
    r: &NatRange,
    manip: Manip,
    zone_id: u16,
    has_master: bool,
) -> Tuple {
    if manip == Manip::Src && r.flags & flags::RANDOM_ALL == 0 {
        if in_range(orig, r) {
            if !space.used_new(orig) {
                return *orig;
            }
        } else {
            for cand in space.src_mappings(orig) {
                if in_range(&cand, r) {
                    if !space.used(&cand) {
                        return cand;
                    }
                    break;
                }
            }
        }
    }
    let mut t = *orig;
    best_ips(&mut t, r, manip, zone_id);
    if r.flags & flags::RANDOM_ALL == 0 {
        if r.flags & flags::PROTO_SPECIFIED != 0 {
            if r.flags & flags::PROTO_OFFSET == 0
                && l4_in_range(&t, manip, r.min_port, r.max_port)
                && (r.min_port == r.max_port || !space.used(&t))
            {
                return t;
            }
        } else if !space.used(&t) {
            return t;
        }
    }
    l4_unique(space, &mut t, r, manip, has_master);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::invert;
    use crate::tuple::Addr;
    use std::collections::HashSet;

    /// Taken = the inverse is in the set (replies of live entries).
    struct Set {
        replies: HashSet<Tuple>,
        rng: u64,
        found: u32,
    }

    impl TupleSpace for Set {
        fn used(&mut self, t: &Tuple) -> bool {
            let r = invert(t).unwrap();
            let u = self.replies.contains(&r);
            self.found += u32::from(u);
            u
        }
        fn used_new(&mut self, t: &Tuple) -> bool {
            self.used(t)
        }
        fn used_harder(&mut self, t: &Tuple, _: u32) -> bool {
            self.used(t)
        }
        fn src_mappings(&mut self, _: &Tuple) -> Vec<Tuple> {
            Vec::new()
        }
        fn random_u16(&mut self) -> u16 {
            self.rng = self.rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            (self.rng >> 33) as u16
        }
    }

    fn t4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Tuple {
        Tuple {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            src_u: sport,
            dst_u: dport,
            family: Family::V4,
            proto: proto::TCP,
        }
    }

    fn set() -> Set {
        Set {
            replies: HashSet::new(),
            rng: 1,
            found: 0,
        }
    }

    #[test]
    fn jhash2_known_values() {
        // lookup3's hashword() with the kernel's initval convention: empty key → the
        // initial value; reference values from the C implementation.
        assert_eq!(jhash2(&[], 0), 0xdead_beef);
        assert_eq!(jhash2(&[], 0xdead_beef), 0xbd5b_7dde);
    }

    #[test]
    fn identity_when_free_then_class_remap() {
        let mut s = set();
        let r = NatRange::addr(Addr::v4([10, 0, 0, 3]));
        let o = t4([10, 0, 0, 3], 40000, [192, 168, 5, 9], 80);
        assert_eq!(unique_tuple(&mut s, &o, &r, Manip::Src, 0, false), o);
        s.replies.insert(invert(&o).unwrap());
        let n = unique_tuple(&mut s, &o, &r, Manip::Src, 0, false);
        assert!(n.src_u >= 1024 && n.src_u != 40000, "{n:?}");
        for (p, lo, hi) in [(500, 1, 511), (700, 600, 1023)] {
            let o = t4([10, 0, 0, 3], p, [192, 168, 5, 9], 80);
            s.replies.insert(invert(&o).unwrap());
            let n = unique_tuple(&mut s, &o, &r, Manip::Src, 0, false);
            assert!(n.src_u >= lo && n.src_u <= hi && n.src_u != p, "{n:?}");
        }
        assert!(s.found >= 3);
    }

    #[test]
    fn dst_without_ports_keeps_port() {
        let mut s = set();
        let r = NatRange::addr(Addr::v4([10, 9, 9, 9]));
        let o = t4([10, 0, 0, 3], 40000, [192, 168, 5, 9], 80);
        let n = unique_tuple(&mut s, &o, &r, Manip::Dst, 0, false);
        assert_eq!(n.dst, Addr::v4([10, 9, 9, 9]));
        assert_eq!(n.dst_u, 80);
    }

    #[test]
    fn pool_choice_is_deterministic_and_in_range() {
        let mut s = set();
        let mut r = NatRange::addr(Addr::v4([198, 51, 100, 1]));
        r.max_addr = Addr::v4([198, 51, 100, 4]);
        let mut seen = HashSet::new();
        for i in 0..200u8 {
            let o = t4([10, 0, 1, i], 40000, [192, 168, 5, 9], 80);
            let a = unique_tuple(&mut s, &o, &r, Manip::Src, 0, false);
            let b = unique_tuple(&mut s, &o, &r, Manip::Src, 0, false);
            assert_eq!(a, b);
            let last = a.src.v4_octets()[3];
            assert!((1..=4).contains(&last));
            seen.insert(last);
        }
        assert_eq!(seen.len(), 4);
    }
}
