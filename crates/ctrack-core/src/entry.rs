//! A connection entry: both tuples, status, L4 state, deadline, zone, mark, counters.
//!
//! Layout (issue 6: ≤ 128 bytes per connection all in, both index nodes included): an
//! `Entry` is 104 bytes, the table's slab slot is the entry alone, and the grouped
//! chains (`groups.rs`: a 64-byte line for four buckets, overflow lines for the rest)
//! add ~21 bytes a connection at one connection per bucket: ~125 bytes all in.
//!
//! ```text
//! offset  size  field
//!      0     8  deadline
//!      8    16  tuples: compact (IPv4 src, dst, src_u, dst_u, family, protocol: 14 bytes)
//!               or wide (a Box of both full tuples), with the variant's tag
//!     24     4  zone (id, direction mask)
//!     28     2  status
//!     30     2  ecache
//!     32     8  ext (Option<Box<Extensions>>)
//!     40    56  proto (ProtoState; TcpConn is 56 bytes)
//!     96     4  mark
//!    100     4  seq (creation number, 32 bits)
//! ```
//!
//! Everything a UDP hit reads or writes comes first (up to the L4 state's first 16
//! bytes, where the UDP state lives): 56 bytes of the entry, one cache line or two
//! depending on where the entry starts; `mark` and `seq`, which it does not touch,
//! last.
//!
//! The tuples are not stored as two 38-byte [`Tuple`]s. The common entry (IPv4, reply
//! tuple = the inverted original tuple, i.e. not NATed) keeps only its original tuple,
//! in 14 bytes; the reply tuple is derived on demand (the kernel's `invert_tuple`).
//! Any other entry — IPv6, or a reply tuple NAT changed — is *wide*: both full tuples
//! live in a 76-byte box of their own, so a lookup that reaches such an entry follows
//! one more pointer, and the entry costs 76 bytes more (80 with the allocator's
//! rounding). Read tuples with [`Entry::tuple`], compare with [`Entry::has_tuple`],
//! change them with [`Entry::set_tuple`]: the form is chosen there and is canonical
//! (equal tuples, equal bytes).

use crate::proto::ProtoState;
use crate::status::Status;
use crate::time::{Duration, Instant};
use crate::tuple::{proto, Addr, Dir, Family, Tuple};
use core::fmt;

/// Packet and byte counters of one direction (`nf_conntrack_acct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (L3 length).
    pub bytes: u64,
}

/// Optional extensions, allocated when the sysctl was on at creation (kernel: ct extensions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Per-direction counters, when `nf_conntrack_acct` was 1 at creation.
    pub acct: Option<[Counter; 2]>,
    /// Confirm time (start) and deletion time (stop), when `nf_conntrack_timestamp` was 1.
    pub tstamp: Option<(Instant, Option<Instant>)>,
    /// The helper a rule attached (`ct helper set`), with its per-connection state.
    pub helper: Option<crate::helper::HelperState>,
    /// For an entry created from an expectation: its master (id, creation number).
    pub master: Option<(crate::table::EntryId, u32)>,
    /// Confirmed entries created from this one's expectations that still exist: each
    /// holds a reference on its master (`use=` in listings is one more).
    pub children: u32,
    /// TCP sequence adjustment of a NATed entry with a helper (kernel seqadj
    /// extension): created when a NAT helper first changes a payload's length.
    pub seqadj: Option<crate::conntrack::seqadj::SeqAdj>,
    /// Connection labels (kernel `nf_conn_labels`, 128 bits; bit N = label N), set by
    /// `ct label set`. 0 = none (dumps then omit them, as ctnetlink does).
    pub labels: u128,
}

/// The original tuple of a compact entry: IPv4 addresses, the two L4 fields, the
/// family and the protocol. 14 bytes, `repr(C)` so that `src_u`, `dst_u`, `family`
/// and `l4` are adjacent in the order of the compare word in [`Entry::has_tuple`] (the
/// compiler then reads them with one or two loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Key {
    src: [u8; 4],
    dst: [u8; 4],
    src_u: u16,
    dst_u: u16,
    family: Family,
    l4: u8,
}

/// How an entry holds its tuples (see the module doc). 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tuples {
    /// IPv4, reply = inverted original: the original tuple, inline.
    Compact(Key),
    /// Anything else: both tuples, original first, out of line.
    Wide(Box<[Tuple; 2]>),
}

/// The tuples of a new connection's entry ([`Entry::fresh`]).
pub(crate) struct NewTuples(Tuples);

impl NewTuples {
    /// `orig` and its inversion (see [`Entry::inverting`]); `None` when `orig` does not
    /// invert.
    /// Inline for the compact form, so its key stays in registers on its way into
    /// the entry (moved through the stack, its 14 bytes were copied as two overlapping
    /// 8-byte words and reloaded before the stores could forward them).
    #[inline(always)]
    pub(crate) fn inverting(orig: &Tuple) -> Option<NewTuples> {
        NewTuples::compact(orig).or_else(|| NewTuples::inverting_wide(orig))
    }

    /// [`NewTuples::inverting`] in the compact form only: `None` for a tuple that does
    /// not fit it (its caller then takes its general path). No call on the other
    /// branch, so the key is not built in a stack slot that call also writes (read
    /// back with other widths than its stores', it stalled every creation).
    #[inline(always)]
    pub(crate) fn compact(orig: &Tuple) -> Option<NewTuples> {
        let swaps = !matches!(orig.proto, proto::ICMP | proto::ICMPV6);
        (swaps && orig.family == Family::V4 && v4_clean(&orig.src) && v4_clean(&orig.dst))
            .then(|| NewTuples(Tuples::Compact(Key::of(orig))))
    }

    /// [`NewTuples::inverting`] of a tuple that may not fit the compact form.
    #[inline(never)]
    fn inverting_wide(orig: &Tuple) -> Option<NewTuples> {
        let reply = crate::conntrack::invert(orig)?;
        let tuples = [*orig, reply];
        Some(NewTuples(compact_key(&tuples).map_or_else(
            || Tuples::Wide(Box::new(tuples)),
            Tuples::Compact,
        )))
    }
}

/// An IPv4 [`Addr`] holding `a`, as the native-endian 128-bit value of its 16 bytes.
#[inline(always)]
fn v4_wide(a: [u8; 4]) -> u128 {
    let x = u128::from(u32::from_ne_bytes(a));
    if cfg!(target_endian = "little") {
        x
    } else {
        x << 96
    }
}

/// The native-endian 64-bit word of bytes `i..i + 8` of an address.
#[inline(always)]
fn word(x: &[u8; 16], i: usize) -> u64 {
    u64::from_ne_bytes([
        x[i],
        x[i + 1],
        x[i + 2],
        x[i + 3],
        x[i + 4],
        x[i + 5],
        x[i + 6],
        x[i + 7],
    ])
}

/// Whether an address is an IPv4 one in the 16-byte layout (bytes 4.. zero).
#[inline]
fn v4_clean(a: &Addr) -> bool {
    word(&a.0, 8) == 0 && a.0[4..8] == [0; 4]
}

/// The compact form of `tuples`, if they fit it: an IPv4 original tuple (addresses with
/// zero high bytes) whose inversion is the reply tuple.
#[inline]
fn compact_key(tuples: &[Tuple; 2]) -> Option<Key> {
    let [o, r] = tuples;
    if o.family != Family::V4 || !v4_clean(&o.src) || !v4_clean(&o.dst) {
        return None;
    }
    let fits = match o.proto {
        proto::ICMP | proto::ICMPV6 => crate::conntrack::invert(o).as_ref() == Some(r),
        // `invert` swaps addresses and L4 fields of every other protocol.
        _ => {
            r.src == o.dst
                && r.dst == o.src
                && r.src_u == o.dst_u
                && r.dst_u == o.src_u
                && r.family == o.family
                && r.proto == o.proto
        }
    };
    fits.then(|| Key::of(o))
}

impl Key {
    /// The key of an IPv4 original tuple (its addresses' first 4 bytes).
    #[inline(always)]
    fn of(o: &Tuple) -> Key {
        Key {
            src: o.src.v4_octets(),
            dst: o.dst.v4_octets(),
            src_u: o.src_u,
            dst_u: o.dst_u,
            family: o.family,
            l4: o.proto,
        }
    }
}

/// The reply tuple's source L4 field of a compact entry (kernel `invert_tuple`: ICMP
/// keeps the id; other protocols swap the ports).
#[inline(always)]
fn reply_src_u(k: &Key) -> u16 {
    match k.l4 {
        proto::ICMP | proto::ICMPV6 => k.src_u,
        _ => k.dst_u,
    }
}

/// The reply tuple's destination L4 field of a compact entry (ICMP: the inverted type
/// with the same code; other protocols: the original source port).
#[inline(always)]
fn reply_dst_u(k: &Key) -> u16 {
    let fam = match k.l4 {
        proto::ICMP => Family::V4,
        proto::ICMPV6 => Family::V6,
        _ => return k.src_u,
    };
    let [ty, code] = k.dst_u.to_be_bytes();
    // Compact entries are stored only when the type inverts (see `Entry::store`).
    let ty = crate::proto::icmp::invert_type(fam, ty).unwrap_or(ty);
    u16::from_be_bytes([ty, code])
}

/// A conntrack entry. 104 bytes (see the module doc; pinned by `entry_size_is_bounded`).
#[derive(Clone, PartialEq, Eq)]
#[repr(C)]
pub struct Entry {
    /// Expiry deadline (absolute).
    pub deadline: Instant,
    /// The tuples, compact or wide.
    tuples: Tuples,
    /// Zone: id and the directions it covers (kernel `ct->zone`).
    pub zone: crate::zone::Zone,
    /// Status bits.
    pub status: Status,
    /// Event bits cached until the packet reaches the confirm hook.
    pub ecache: u16,
    /// Extensions (accounting, timestamps, helper, labels), allocated only when needed
    /// (kernel: ct extensions), so the common entry stays small.
    pub ext: Option<Box<Extensions>>,
    /// L4 tracker state.
    pub proto: ProtoState,
    /// `ct mark`.
    pub mark: u32,
    /// Creation sequence number: the id `-o id` prints and the listing order. 32 bits,
    /// as the kernel's ct id: it wraps after 2^32 creations; listings order entries by
    /// `seq` relative to the next number ([`Entry::age_key`]), which is creation order
    /// as long as no listed entry outlived 2^32 newer ones.
    pub seq: u32,
}

// The tracked figure, checked at compile time (issue 6; the slot adds 16 bytes).
const _: () = assert!(size_of::<Entry>() == 104 && size_of::<Option<Entry>>() == 104);

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("tuples", &self.tuples())
            .field("status", &self.status)
            .field("zone", &self.zone)
            .field("mark", &self.mark)
            .field("deadline", &self.deadline)
            .field("proto", &self.proto)
            .field("ext", &self.ext)
            .field("seq", &self.seq)
            .field("ecache", &self.ecache)
            .finish()
    }
}

impl Entry {
    /// A new entry with tuples `tuples` (original, reply) and extensions `ext`; the
    /// other fields start empty (status 0, default zone, mark 0, deadline 0, generic L4
    /// state, seq 0, no cached events) and are set by the caller.
    pub fn new(tuples: [Tuple; 2], ext: Option<Box<Extensions>>) -> Entry {
        let tuples =
            compact_key(&tuples).map_or_else(|| Tuples::Wide(Box::new(tuples)), Tuples::Compact);
        Entry::empty(tuples, ext)
    }

    /// An entry holding `tuples` and `ext`, every other field empty (see `new`).
    #[inline(always)]
    fn empty(tuples: Tuples, ext: Option<Box<Extensions>>) -> Entry {
        Entry::fresh(
            NewTuples(tuples),
            ext,
            crate::zone::Zone::DEFAULT,
            Instant::from_nanos(0),
            0,
            ProtoState::Generic,
        )
    }

    /// [`Entry::new`] of `orig` and its inversion (kernel `nf_ct_invert_tuple`), built
    /// straight into the compact form when `orig` is an IPv4 tuple of a protocol whose
    /// inversion swaps addresses and L4 fields (every one but ICMP): the common new
    /// connection, without building the reply tuple only to find it fits. `None` when
    /// `orig` does not invert (an ICMP type without a reply type).
    #[inline]
    pub fn inverting(orig: &Tuple, ext: Option<Box<Extensions>>) -> Option<Entry> {
        Some(Entry::empty(NewTuples::inverting(orig)?.0, ext))
    }

    /// A new connection's entry, every field given (status, mark and cached events
    /// empty), in one expression so that it can be written straight where it is kept.
    #[inline(always)]
    pub(crate) fn fresh(
        tuples: NewTuples,
        ext: Option<Box<Extensions>>,
        zone: crate::zone::Zone,
        deadline: Instant,
        seq: u32,
        proto: ProtoState,
    ) -> Entry {
        Entry {
            deadline,
            tuples: tuples.0,
            zone,
            status: Status::default(),
            ecache: 0,
            mark: 0,
            seq,
            ext,
            proto,
        }
    }

    /// The tuple of a direction.
    #[inline]
    pub fn tuple(&self, dir: Dir) -> Tuple {
        let k = match &self.tuples {
            Tuples::Wide(w) => return w[dir.index()],
            Tuples::Compact(k) => k,
        };
        let orig = Tuple {
            src: Addr::v4(k.src),
            dst: Addr::v4(k.dst),
            src_u: k.src_u,
            dst_u: k.dst_u,
            family: k.family,
            proto: k.l4,
        };
        match dir {
            Dir::Original => orig,
            Dir::Reply => Tuple {
                src: orig.dst,
                dst: orig.src,
                src_u: reply_src_u(k),
                dst_u: reply_dst_u(k),
                ..orig
            },
        }
    }

    /// Both tuples, original first.
    #[inline]
    pub fn tuples(&self) -> [Tuple; 2] {
        [self.tuple(Dir::Original), self.tuple(Dir::Reply)]
    }

    /// Replace the tuple of a direction (NAT changes the reply tuple). The entry becomes
    /// wide if its tuples no longer fit the compact form, and compact again if they do.
    pub fn set_tuple(&mut self, dir: Dir, t: Tuple) {
        let mut both = self.tuples();
        both[dir.index()] = t;
        self.store(both);
    }

    /// Whether the tuple of direction `dir` equals `t` (`self.tuple(dir) == *t`,
    /// without building the tuple: the lookup's compare). Compared as 64-bit words, as
    /// [`crate::table::same_tuple`] does.
    #[inline(always)]
    pub fn has_tuple(&self, dir: Dir, t: &Tuple) -> bool {
        let k = match &self.tuples {
            Tuples::Wide(w) => return crate::table::same_tuple(&w[dir.index()], t),
            Tuples::Compact(k) => k,
        };
        let (s, d, su, du) = match dir {
            Dir::Original => (k.src, k.dst, k.src_u, k.dst_u),
            Dir::Reply => (k.dst, k.src, reply_src_u(k), reply_dst_u(k)),
        };
        let misc = |su: u16, du: u16, fam: Family, p: u8| {
            u64::from(su) | u64::from(du) << 16 | u64::from(fam as u8) << 32 | u64::from(p) << 40
        };
        // Each address as one 128-bit value (a packet's tuple is built that way, see
        // `Addr::v4`, so the load is forwarded from the store): 64-bit words against
        // an implied zero made the compiler OR the high bytes one by one.
        let addrs = (u128::from_ne_bytes(t.src.0) ^ v4_wide(s))
            | (u128::from_ne_bytes(t.dst.0) ^ v4_wide(d));
        addrs == 0 && misc(t.src_u, t.dst_u, t.family, t.proto) == misc(su, du, k.family, k.l4)
    }

    /// Store `tuples` in the compact form when they fit it (IPv4 original, reply = its
    /// inversion), else in a box (reusing the entry's box if it has one).
    fn store(&mut self, tuples: [Tuple; 2]) {
        if let Some(k) = compact_key(&tuples) {
            self.tuples = Tuples::Compact(k);
        } else if let Tuples::Wide(w) = &mut self.tuples {
            **w = tuples;
        } else {
            self.tuples = Tuples::Wide(Box::new(tuples));
        }
    }

    /// Whether the entry's tuples live out of line (IPv6, or NATed): it then holds a
    /// box of [`Entry::WIDE_BYTES`] more.
    pub fn is_wide(&self) -> bool {
        matches!(self.tuples, Tuples::Wide(_))
    }

    /// Heap bytes a wide entry's tuples take (both full tuples).
    pub const WIDE_BYTES: usize = size_of::<[Tuple; 2]>();

    /// The listing-order key: `seq` relative to `next_seq`, the number the next entry
    /// will get (creation order across a wrap of the 32-bit counter).
    pub fn age_key(&self, next_seq: u32) -> u32 {
        self.seq.wrapping_sub(next_seq)
    }

    /// The connection labels (0 when none were set).
    #[inline]
    pub fn labels(&self) -> u128 {
        self.ext.as_ref().map_or(0, |x| x.labels)
    }

    /// L4 protocol number.
    #[inline]
    pub fn proto_num(&self) -> u8 {
        match &self.tuples {
            Tuples::Compact(k) => k.l4,
            Tuples::Wide(w) => w[0].proto,
        }
    }

    /// L3 family.
    #[inline]
    pub fn family(&self) -> Family {
        match &self.tuples {
            Tuples::Compact(k) => k.family,
            Tuples::Wide(w) => w[0].family,
        }
    }

    /// Whether the deadline has passed (kernel: `(s32)(timeout - now) <= 0`).
    #[inline]
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }

    /// Time left, zero when expired.
    #[inline]
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_since(now)
    }

    /// Remaining seconds as dumps show them: floored, read "an instant after" `now`
    /// (the kernel's dump always runs at least a jiffy after the last refresh, so a fresh
    /// 30 s entry shows 29).
    pub fn display_timeout(&self, now: Instant) -> u64 {
        let ns = self.remaining(now).as_nanos() as u64;
        ns.saturating_sub(1) / 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(fam: Family, p: u8, src: Addr, dst: Addr, su: u16, du: u16) -> Tuple {
        Tuple {
            src,
            dst,
            src_u: su,
            dst_u: du,
            family: fam,
            proto: p,
        }
    }

    /// The entry's size is a tracked figure (issue 6: ≤ 128 bytes per connection with
    /// both index nodes and the groups): 104 bytes, laid out as the module doc says
    /// (the table's slot is the entry alone: `Option<Entry>` has a niche).
    #[test]
    fn entry_size_is_bounded() {
        assert_eq!(size_of::<Tuple>(), 38);
        assert_eq!(size_of::<ProtoState>(), 56);
        assert_eq!(size_of::<Entry>(), 104);
        assert_eq!(size_of::<Option<Entry>>(), 104);
        assert_eq!(size_of::<Key>(), 14);
        assert_eq!(size_of::<Tuples>(), 16);
        assert_eq!(core::mem::offset_of!(Entry, deadline), 0);
        assert_eq!(core::mem::offset_of!(Entry, tuples), 8);
        assert_eq!(core::mem::offset_of!(Entry, zone), 24);
        assert_eq!(core::mem::offset_of!(Entry, ext), 32);
        assert_eq!(core::mem::offset_of!(Entry, proto), 40);
        assert_eq!(core::mem::offset_of!(Entry, mark), 96);
        // A UDP hit reads the L4 state's first 16 bytes (the variant's tag, then the UDP
        // state): the batch prefetches a UDP entry's slot only that far.
        let udp = ProtoState::Udp(Default::default());
        let ProtoState::Udp(u) = &udp else {
            unreachable!("built as UDP")
        };
        let at = (u as *const crate::proto::udp::UdpConn as usize) - (&udp as *const _ as usize);
        assert!(
            at + size_of::<crate::proto::udp::UdpConn>() <= 16,
            "UDP state at {at}"
        );
    }

    /// Every way of storing tuples gives them back unchanged, `has_tuple` is tuple
    /// equality, and the form is the compact one exactly for IPv4 entries whose reply
    /// is the inverted original.
    #[test]
    fn tuples_round_trip_in_both_forms() {
        let a = Addr::v4([10, 0, 0, 1]);
        let b = Addr::v4([192, 168, 1, 2]);
        let c = Addr::v4([10, 2, 0, 100]);
        let x = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let y = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut odd = a;
        odd.0[9] = 1;
        let cases: Vec<([Tuple; 2], bool)> = vec![
            (
                [
                    t(Family::V4, 17, a, b, 1000, 53),
                    t(Family::V4, 17, b, a, 53, 1000),
                ],
                false,
            ),
            (
                [
                    t(Family::V4, 6, a, b, 1000, 80),
                    t(Family::V4, 6, b, c, 80, 1000),
                ],
                true,
            ),
            (
                [
                    t(Family::V4, 6, a, b, 1000, 80),
                    t(Family::V4, 6, b, a, 80, 61000),
                ],
                true,
            ),
            (
                [
                    t(Family::V4, 1, a, b, 7, 8 << 8),
                    t(Family::V4, 1, b, a, 7, 0),
                ],
                false,
            ),
            (
                [
                    t(Family::V4, 1, a, b, 7, 8 << 8 | 3),
                    t(Family::V4, 1, b, a, 7, 3),
                ],
                false,
            ),
            (
                [
                    t(Family::V4, 1, a, b, 7, 3 << 8),
                    t(Family::V4, 1, b, a, 3 << 8, 7),
                ],
                true,
            ),
            (
                [
                    t(Family::V4, 58, a, b, 7, 128 << 8),
                    t(Family::V4, 58, b, a, 7, 129 << 8),
                ],
                false,
            ),
            (
                [t(Family::V4, 47, a, b, 0, 9), t(Family::V4, 47, b, a, 9, 0)],
                false,
            ),
            (
                [
                    t(Family::V4, 132, odd, b, 1, 2),
                    t(Family::V4, 132, b, odd, 2, 1),
                ],
                true,
            ),
            (
                [t(Family::V6, 17, x, y, 1, 2), t(Family::V6, 17, y, x, 2, 1)],
                true,
            ),
            (
                [
                    t(Family::V6, 58, x, y, 5, 128 << 8),
                    t(Family::V6, 58, y, x, 5, 129 << 8),
                ],
                true,
            ),
        ];
        let all: Vec<Tuple> = cases.iter().flat_map(|(ts, _)| *ts).collect();
        for (ts, wide) in &cases {
            let e = Entry::new(*ts, None);
            assert_eq!(e.is_wide(), *wide, "{ts:?}");
            assert_eq!(e.tuples(), *ts);
            assert_eq!(e.proto_num(), ts[0].proto);
            assert_eq!(e.family(), ts[0].family);
            for d in [Dir::Original, Dir::Reply] {
                for u in &all {
                    assert_eq!(e.has_tuple(d, u), e.tuple(d) == *u, "{d:?} {u:?} {ts:?}");
                }
            }
            assert_eq!(e.clone(), Entry::new(*ts, None), "canonical");
            // Built from the original tuple alone, an entry is the one of the
            // original and its inversion, in the same form (or none: no inversion).
            let by_inversion =
                crate::conntrack::invert(&ts[0]).map(|r| Entry::new([ts[0], r], None));
            assert_eq!(Entry::inverting(&ts[0], None), by_inversion, "{ts:?}");
        }
        // A destination-unreachable type has no reply type: no entry.
        let unreachable = t(Family::V4, 1, a, b, 7, 3 << 8);
        assert_eq!(Entry::inverting(&unreachable, None), None);
    }

    /// NAT changes the reply tuple: the entry turns wide, keeps its extensions, and
    /// turns compact again when the reply is the inverted original once more.
    #[test]
    fn set_tuple_switches_forms() {
        let a = Addr::v4([10, 0, 0, 1]);
        let b = Addr::v4([10, 0, 0, 2]);
        let o = t(Family::V4, 17, a, b, 1000, 53);
        let r = t(Family::V4, 17, b, a, 53, 1000);
        let nat = t(Family::V4, 17, b, Addr::v4([10, 9, 0, 1]), 53, 2000);
        let mut e = Entry::new([o, r], None);
        e.set_tuple(Dir::Reply, nat);
        assert!(e.is_wide());
        assert_eq!(e.tuples(), [o, nat]);
        e.set_tuple(Dir::Reply, r);
        assert!(!e.is_wide());
        assert_eq!(e, Entry::new([o, r], None));
        let labelled = Box::new(Extensions {
            labels: 5,
            ..Extensions::default()
        });
        let mut e = Entry::new([o, r], Some(labelled));
        e.set_tuple(Dir::Reply, nat);
        assert_eq!((e.labels(), e.tuple(Dir::Reply)), (5, nat));
        e.set_tuple(Dir::Reply, r);
        assert_eq!((e.labels(), e.is_wide()), (5, false));
    }

    /// Listing order survives the wrap of the 32-bit creation number.
    #[test]
    fn age_key_orders_across_the_wrap() {
        let mut old = Entry::new([Tuple::default(); 2], None);
        old.seq = u32::MAX - 1;
        let mut new = old.clone();
        new.seq = 1;
        assert!(old.age_key(2) < new.age_key(2));
        old.seq = 3;
        new.seq = 4;
        assert!(old.age_key(5) < new.age_key(5));
    }
}
