//! Look-ahead prefetching for a packet stream (replay): while one packet is processed,
//! the table lines the next ones will need are already on their way, as the batch
//! path's prefetch does for a batch (`batch.rs`), but for a pipeline that must run the
//! packets strictly one after the other.
//!
//! A packet entering the window ([`Lookahead::push`]) is parsed and hashed (or comes
//! with its [`FlowHint`] made on a reader thread, [`Lookahead::push_hinted`]) and its
//! bucket head prefetched; half-way through the window its chain's first node is
//! requested, a quarter window later its second ([`Lookahead::pop`]), which hands back
//! the hash as a [`FlowHint`] so tracking does not hash the packet again. Only hints: a packet whose zone or bytes
//! differ by the time it is tracked (rules, defrag) merely gets no benefit. Results
//! never depend on it.

use crate::conntrack::{Conntrack, Parsed};
use std::collections::VecDeque;

/// Packets in flight in the window.
const DEPTH: usize = 32;
/// Where in the window the chain's first node is prefetched (its bucket head, fetched
/// at push, has had half a window to arrive).
const HALF: usize = DEPTH / 2;
/// Where the chain's second node is prefetched: the first node's link is read there,
/// a quarter window after that node was requested (reading it right away stalled on
/// it: the pop then waited a full memory latency per packet).
const QUARTER: usize = DEPTH / 4;

/// The window's parse of one packet: its flow hash in the default zone, tied to the
/// exact bytes it was computed from, so [`Conntrack::track_with_hint`] can skip hashing
/// again. Only the window makes one; a hint that does not belong to the packet tracked
/// (other bytes, another zone) is ignored, never trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHint {
    pub(crate) hash: u64,
    pub(crate) ptr: usize,
    pub(crate) len: usize,
    /// The packet's length after the IP input checks, when they passed on exactly
    /// these bytes (`ptr`, `len`); 0 when they failed.
    checked: u32,
}

impl FlowHint {
    /// The hint of the IP packet `l3` for a table hashing with `hasher` (see
    /// [`crate::table::Table::hasher`]): what [`Lookahead::push`] computes, for a
    /// reader that parses and hashes on another thread. `None` for a packet tracking
    /// parses itself (ICMP, GRE, no tuple).
    pub fn compute(hasher: &crate::table::FlowHasher, l3: &[u8]) -> Option<FlowHint> {
        let x = Parsed::new_with(l3, |t| hasher.hash(t, 0))?;
        let checked = crate::packet::ip::check_ip(l3);
        Some(FlowHint {
            hash: x.hash(),
            ptr: l3.as_ptr() as usize,
            len: l3.len(),
            checked: checked.map_or(0, |d| u32::try_from(d.len()).unwrap_or(0)),
        })
    }

    /// What the IP input checks ([`crate::packet::ip::check_ip`]) return for `l3` when the hint was made from exactly these bytes and they
    /// passed: the packet trimmed to its IP length. `None` otherwise (the caller runs
    /// the checks). A pure function of the bytes, so a reader thread may run it ahead.
    pub fn ip_checked<'a>(&self, l3: &'a [u8]) -> Option<&'a [u8]> {
        if self.ptr != l3.as_ptr() as usize || self.len != l3.len() || self.checked == 0 {
            return None;
        }
        l3.get(..self.checked as usize)
    }

    /// Whether the hint was made from `data` or from a longer slice that starts where
    /// `data` starts: the IP input checks trim a frame's padding (Ethernet pads short
    /// packets to 60 bytes) after the window saw it. The tuple only depends on a
    /// prefix (the IP header, the extension chain, the first L4 bytes), and
    /// `track_with_hint` parses the trimmed bytes again and uses the hash only when
    /// that parse succeeds, so it read nothing beyond the trimmed end: the same bytes,
    /// the same tuple, the same hash. A copy elsewhere (defrag's reassembly) starts at
    /// another address and is hashed afresh.
    pub(crate) fn is_for(&self, data: &[u8]) -> bool {
        self.ptr == data.as_ptr() as usize && data.len() <= self.len
    }
}

/// A window of upcoming packets (any item type) with their hints; the prefetch
/// schedule is [`Stages`]'s, by each item's number in the stream.
#[derive(Debug)]
pub struct Lookahead<T> {
    q: VecDeque<(T, Option<FlowHint>)>,
    stages: Stages,
    /// Stream number of the item at the front.
    n: u64,
}

impl<T> Default for Lookahead<T> {
    fn default() -> Self {
        Lookahead {
            q: VecDeque::with_capacity(DEPTH + 1),
            stages: Stages::default(),
            n: 0,
        }
    }
}

impl<T> Lookahead<T> {
    /// Whether the window holds enough packets: stop pushing and pop one.
    pub fn is_full(&self) -> bool {
        self.q.len() >= DEPTH
    }

    /// Add an item; `l3` is its IP packet (or `None` for items that are not packets),
    /// whose bucket is prefetched in `ct`'s table for the default zone.
    pub fn push(&mut self, ct: &Conntrack, item: T, l3: Option<&[u8]>) {
        let hasher = ct.table().hasher();
        let hint = l3.and_then(|p| FlowHint::compute(&hasher, p));
        self.push_hinted(ct, item, hint);
    }

    /// [`Lookahead::push`] of an item whose hint was computed already
    /// ([`FlowHint::compute`], e.g. on a reader thread). Its bucket head is requested
    /// now, a window ahead (the first stage).
    pub fn push_hinted(&mut self, ct: &Conntrack, item: T, hint: Option<FlowHint>) {
        if let Some(h) = hint {
            ct.table().prefetch(h.hash);
        }
        self.q.push_back((item, hint));
    }

    /// The oldest item with its hint (for [`Conntrack::track_with_hint`]). On the
    /// way, the packet half a window behind gets its chain's first node requested,
    /// and the one a quarter window behind (whose first node has had time to arrive)
    /// its second node ([`Stages::step`]; the window holds no packet a whole window
    /// behind, whose head [`Lookahead::push_hinted`] requested).
    pub fn pop(&mut self, ct: &Conntrack) -> Option<(T, Option<FlowHint>)> {
        let q = &self.q;
        self.stages.step(ct, self.n, |k| q.get(k).and_then(|x| x.1));
        let item = self.q.pop_front()?;
        self.n += 1;
        Some(item)
    }
}

/// The window's prefetch stages for a stream whose packets stay where the caller keeps
/// them (replay's reader thread hands over chunks of records; moving each record
/// through a [`Lookahead`] queue costs more than the prefetches save). Before tracking
/// packet number `n` of the stream, the caller calls [`Stages::step`] with the hints
/// of the packets [`Stages::DEPTH`], half that and a quarter of that ahead: the first
/// gets its bucket head requested, the second its chain's first node, the third its
/// second node ([`Lookahead::pop`] runs the same schedule). Only prefetches: results
/// never depend on it.
#[derive(Debug)]
pub struct Stages {
    /// Per packet (by its number modulo `DEPTH`), the first node requested for it at
    /// the half-way stage, `u32::MAX` for none.
    first: [u32; DEPTH],
}

impl Default for Stages {
    fn default() -> Self {
        Stages {
            first: [u32::MAX; DEPTH],
        }
    }
}

impl Stages {
    /// How far ahead the first stage looks (packets).
    pub const DEPTH: usize = DEPTH;

    /// The stages due before packet `n` is tracked; `hint_ahead(k)` is the
    /// [`FlowHint`] of the packet `k` positions after `n`, `None` when there is no such
    /// packet or it has no hint. The first stage also requests the packet's first
    /// bytes (a reader thread on another core wrote or read them last).
    #[inline]
    pub fn step(&mut self, ct: &Conntrack, n: u64, hint_ahead: impl Fn(usize) -> Option<FlowHint>) {
        let table = ct.table();
        if let Some(h) = hint_ahead(DEPTH) {
            table.prefetch(h.hash);
            crate::table::prefetch_read(h.ptr as *const u8);
        }
        self.first[((n + HALF as u64) % DEPTH as u64) as usize] =
            hint_ahead(HALF).map_or(u32::MAX, |h| table.prefetch_first(h.hash));
        let q = ((n + QUARTER as u64) % DEPTH as u64) as usize;
        table.prefetch_next(self.first[q]);
        self.first[q] = u32::MAX;
    }
}

/// Ask the CPU to fetch the cache lines of `x` (e.g. a record another core wrote),
/// without waiting for them. Only a hint: it never faults and changes no result.
#[inline]
pub fn prefetch<T>(x: &T) {
    let p = (x as *const T).cast::<u8>();
    crate::table::prefetch_read(p);
    if size_of::<T>() > 1 {
        crate::table::prefetch_read(p.wrapping_add(size_of::<T>() - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::Config;

    #[test]
    fn items_come_out_in_order_whatever_they_are() {
        let ct = Conntrack::new(Config::default());
        let mut la = Lookahead::default();
        let pkt = [
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        let mut out = Vec::new();
        for i in 0..40u32 {
            let l3 = match i % 3 {
                0 => Some(&pkt[..]),
                1 => Some(&pkt[..5]), // unparsable: no hint
                _ => None,
            };
            la.push(&ct, i, l3);
            if la.is_full() {
                out.extend(la.pop(&ct).map(|x| x.0));
            }
        }
        while let Some((i, _)) = la.pop(&ct) {
            out.push(i);
        }
        assert_eq!(out, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_hint_carries_the_ip_checks_of_exactly_its_bytes() {
        let hasher = crate::table::FlowHasher::new(3);
        let mut frame = vec![
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        let c = crate::packet::checksum::compute(0, &frame[..20]);
        frame[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&[0; 18]); // Ethernet padding
        let hint = FlowHint::compute(&hasher, &frame).expect("parses");
        let want = crate::packet::ip::check_ipv4(&frame).expect("passes");
        assert_eq!(hint.ip_checked(&frame), Some(want));
        assert_eq!(want.len(), 28);
        // Not for a shorter or a copied slice: the caller checks those itself.
        assert_eq!(hint.ip_checked(&frame[..28]), None);
        let copy = frame.clone();
        assert_eq!(hint.ip_checked(&copy), None);
        // A header checksum error: the hint still hashes, but carries no check.
        frame[10] ^= 0xff;
        let bad = FlowHint::compute(&hasher, &frame).expect("still parses");
        assert!(crate::packet::ip::check_ipv4(&frame).is_err());
        assert_eq!(bad.ip_checked(&frame), None);
    }

    #[test]
    fn a_hint_is_used_only_for_its_own_bytes() {
        use crate::conntrack::Hook;
        use crate::status::CtInfo;
        let udp = |src: u8| {
            let mut p = vec![
                0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, src, 10, 0, 0, 2, 0, 1, 0, 2,
                0, 8, 0, 0,
            ];
            let c = crate::packet::checksum::compute(0, &p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        };
        let (a, b) = (udp(1), udp(9));
        let mut ct = Conntrack::new(Config::default());
        let now = crate::time::Instant::from_nanos(1_000_000_000);
        let t = ct.track(now, &a, Hook::PreRouting, 0);
        ct.confirm(now, &t);
        let mut la = Lookahead::default();
        la.push(&ct, 'a', Some(&a));
        la.push(&ct, 'b', Some(&b));
        let (_, hint_a) = la.pop(&ct).expect("a");
        let (_, hint_b) = la.pop(&ct).expect("b");
        assert!(hint_a.is_some_and(|h| h.is_for(&a)) && hint_b.is_some_and(|h| h.is_for(&b)));
        // Its own hint: the same entry as a plain lookup.
        let t = ct.track_with_hint(now, &a, Hook::PreRouting, 0, hint_a);
        assert_eq!((t.entry, t.ctinfo), (Some(0), Some(CtInfo::New)));
        // Another packet's hint (or a copy of the bytes) is ignored, not trusted.
        let t = ct.track_with_hint(now, &a, Hook::PreRouting, 0, hint_b);
        assert_eq!(t.entry, Some(0));
        let copy = a.clone();
        let t = ct.track_with_hint(now, &copy, Hook::PreRouting, 0, hint_b);
        assert_eq!(t.entry, Some(0));
        // In another zone the hash differs: the hint is ignored there too.
        let t = ct.track_with_hint(now, &a, Hook::PreRouting, 7, hint_a);
        assert_ne!(t.entry, Some(0));
    }

    #[test]
    fn a_hint_made_from_a_padded_frame_serves_its_trimmed_packet() {
        use crate::conntrack::Hook;
        use crate::invalid::InvalidReason;
        use crate::status::CtInfo;
        // The packet (28 bytes) followed by Ethernet padding, as a frame's L3 slice.
        let mut frame = vec![
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        let c = crate::packet::checksum::compute(0, &frame[..20]);
        frame[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&[0xee; 18]);
        let mut ct = Conntrack::new(Config::default());
        let now = crate::time::Instant::from_nanos(1_000_000_000);
        let t = ct.track(now, &frame[..28], Hook::PreRouting, 0);
        ct.confirm(now, &t);
        let mut la = Lookahead::default();
        la.push(&ct, (), Some(&frame[..]));
        let (_, hint) = la.pop(&ct).expect("pushed");
        let hint = hint.expect("the padded frame parses");
        // The IP checks trim the padding: the hint still belongs to the packet.
        assert!(hint.is_for(&frame[..28]));
        let t = ct.track_with_hint(now, &frame[..28], Hook::PreRouting, 0, Some(hint));
        assert_eq!((t.entry, t.ctinfo), (Some(0), Some(CtInfo::New)));
        // Trimmed into the UDP ports, the packet has no tuple, hint or not.
        let t = ct.track_with_hint(now, &frame[..22], Hook::PreRouting, 0, Some(hint));
        assert_eq!(
            (t.entry, t.reason),
            (None, Some(InvalidReason::TupleTooShort))
        );
        // A slice starting elsewhere is not the hint's.
        assert!(!hint.is_for(&frame[1..28]));
    }
}
