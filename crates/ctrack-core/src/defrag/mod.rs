//! # Defragmentation before conntrack (kernel `nf_defrag_ipv4` / `nf_defrag_ipv6`)
//!
//! The kernel reassembles fragments in PRE_ROUTING / LOCAL_OUT at priority −400, before
//! conntrack (−200): a held fragment reaches neither conntrack nor any later rule, and
//! the fragment that completes a datagram is replaced by the whole datagram, which is
//! tracked once (kernel-semantics-2.md §3.1). This module does the same, sans IO: the
//! caller passes every IP packet that passed the IP input checks to [`Defrag::push`]
//! and gives conntrack what comes back.
//!
//! Mirrored kernel code (behaviour only, written from our notes, no kernel code):
//! * `net/ipv4/inet_fragment.c`: the queue engine shared by both families
//!   (`inet_frag_find` with its memory limit, `inet_frag_queue_insert` with its
//!   "contiguous runs", `inet_frag_kill`, the RFC 3168 ECN table) — here `Table`,
//!   `FragQueue` and `insert_run`;
//! * `net/ipv4/ip_fragment.c` (`ip_defrag`, `ip_frag_queue`, `ip_frag_too_far`,
//!   `ip_frag_reinit`, `ip_frag_reasm`, `ip_expire`) with the user of
//!   `net/ipv4/netfilter/nf_defrag_ipv4.c` — in `ipv4.rs`;
//! * `net/ipv6/netfilter/nf_conntrack_reasm.c` (`nf_ct_frag6_gather`,
//!   `find_prev_fhdr`, `nf_ct_frag6_queue`, `nf_ct_frag6_reasm`) with
//!   `include/net/ipv6_frag.h` (`ipv6frag_thdr_truncated`,
//!   `ip6frag_expire_frag_queue`) and `nf_defrag_ipv6_hooks.c` — in `ipv6.rs`.
//!
//! Doc sections: kernel-semantics-2.md §3 (where/when, limits and timers, the
//! per-fragment rules of §3.3 — IPv4 and IPv6 differ —, contiguous runs, atomic
//! fragments, reassembled headers, never-completing datagrams, counters) and §4.4
//! (IPv6 fragments passed on unreassembled).
//!
//! ## Approximations
//! * **Memory accounting.** The kernel counts the `truesize` of every queued skb plus
//!   the size of each queue structure against `ipfrag_high_thresh` /
//!   `nf_conntrack_frag6_high_thresh`. Truesize depends on the driver's buffers, so we
//!   count [`approx_truesize`] (the size `__alloc_skb` gives a linear skb holding the
//!   frame) and fixed queue sizes ([`IPV4_QUEUE_SIZE`], [`IPV6_QUEUE_SIZE`]). The rule
//!   itself is the kernel's: while the count is **above** the threshold, every fragment
//!   is dropped, also those for existing queues; a threshold of 0 drops all.
//! * **Interfaces.** There is one ingress interface and no VRF: the IPv4 key has VRF
//!   index 0 and the IPv6 key ingress index 0 (the kernel uses the ingress index for
//!   link-local/multicast destinations only).
//! * **Users.** Only the PRE_ROUTING user (`CONNTRACK_IN + zone`) exists; the host's own
//!   reassembly and its share of the IPv4 memory counter and inet_peer counters are not
//!   modelled.
//! * **Timers** fire lazily: a queue whose lifetime ended is removed at the next
//!   [`Defrag::push`] or [`Defrag::expire`] whose `now` is at or past its deadline. The
//!   ICMP "reassembly time exceeded" the kernel may send on expiry is not produced.
//! * **Verdicts.** IPv4 errors are `NF_STOLEN` in the kernel, IPv6 ones `NF_DROP` (an
//!   IPv6 duplicate is `NF_STOLEN`, "pretend queued"); here all are [`DefragResult::Dropped`].

mod ipv4;
mod ipv6;
#[cfg(test)]
mod tests;

use crate::sysctl::Sysctls;
use crate::time::{Duration, Instant};
use core::fmt;
use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

/// Approximate `sizeof(struct ipq)` on x86-64, charged per IPv4 queue (kernel `qsize`).
pub const IPV4_QUEUE_SIZE: u64 = 200;
/// Approximate `sizeof(struct frag_queue)` on x86-64, charged per IPv6 queue.
pub const IPV6_QUEUE_SIZE: u64 = 184;

/// Approximate skb `truesize` of a received fragment of `l3_len` IP bytes.
///
/// Model: a linear skb from `__alloc_skb` holding NET_SKB_PAD (64) + an Ethernet
/// header (14) + the IP packet, cache-line aligned, plus `skb_shared_info` (320),
/// rounded up to the kmalloc size class; truesize adds the aligned `sk_buff` (256).
/// A 1500-byte fragment counts 2304 bytes, a 100-byte one 768. Real drivers differ
/// (page-fragment buffers, GRO), so this only approximates the fill level.
pub fn approx_truesize(l3_len: usize) -> u64 {
    let data = (64 + 14 + l3_len as u64).div_ceil(64) * 64 + 320;
    let bucket = match data {
        0..=96 => 96,
        97..=128 => 128,
        129..=192 => 192,
        _ => data.next_power_of_two(),
    };
    bucket + 256
}

/// Why [`Defrag::push`] discarded a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragDrop {
    /// An exact duplicate, or a fragment lying entirely inside a contiguous run already
    /// queued. The fragment is dropped, the queue kept (both families).
    Duplicate,
    /// Partial overlap with queued data (or a spanning fragment over two runs that were
    /// not appended in offset order): the whole queue is discarded (both families).
    Overlap,
    /// A last fragment (MF=0) ending before data already queued, or a second last
    /// fragment with a different end. IPv4 discards the queue; IPv6 keeps it.
    InconsistentLast {
        /// Whether the queue was discarded with the fragment.
        queue_discarded: bool,
    },
    /// A non-last fragment with data beyond the end fixed by the last fragment. IPv4
    /// discards the queue; IPv6 keeps it.
    BeyondEnd {
        /// Whether the queue was discarded with the fragment.
        queue_discarded: bool,
    },
    /// A fragment with no data (end = offset; for IPv4 after rounding a non-last
    /// fragment down to 8 bytes). IPv4 discards the queue; IPv6 keeps it.
    Empty {
        /// Whether the queue was discarded with the fragment.
        queue_discarded: bool,
    },
    /// IPv6: the fragment ends beyond 65535. Dropped at once, the queue kept.
    OffsetTooLarge,
    /// The reassembled datagram would exceed 65535 bytes (IPv4: header + data; IPv6:
    /// payload length). Found when the datagram completes; the queue is discarded.
    Oversize,
    /// RFC 3168: a not-ECT fragment mixed with ECT/CE ones. Found when the datagram
    /// completes; the queue is discarded.
    EcnMismatch,
    /// The reassembly memory of the family is above its high threshold
    /// (`ipfrag_high_thresh`, `nf_conntrack_frag6_high_thresh`), or the threshold is 0.
    MemoryLimit,
    /// IPv6: the fragment header is not entirely inside the packet.
    TruncatedHeader,
}

impl DefragDrop {
    /// Whether the fragment's queue was discarded too (later fragments of the datagram
    /// start a new queue).
    pub fn queue_discarded(&self) -> bool {
        match *self {
            DefragDrop::Overlap | DefragDrop::Oversize | DefragDrop::EcnMismatch => true,
            DefragDrop::InconsistentLast { queue_discarded }
            | DefragDrop::BeyondEnd { queue_discarded }
            | DefragDrop::Empty { queue_discarded } => queue_discarded,
            DefragDrop::Duplicate
            | DefragDrop::OffsetTooLarge
            | DefragDrop::MemoryLimit
            | DefragDrop::TruncatedHeader => false,
        }
    }
}

impl fmt::Display for DefragDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            DefragDrop::Duplicate => "defrag: duplicate fragment",
            DefragDrop::Overlap => "defrag: overlapping fragment",
            DefragDrop::InconsistentLast { .. } => "defrag: inconsistent last fragment",
            DefragDrop::BeyondEnd { .. } => "defrag: fragment data beyond the datagram end",
            DefragDrop::Empty { .. } => "defrag: empty fragment",
            DefragDrop::OffsetTooLarge => "defrag: fragment ends beyond 65535",
            DefragDrop::Oversize => "defrag: reassembled datagram larger than 65535",
            DefragDrop::EcnMismatch => "defrag: not-ECT fragment mixed with ECT/CE",
            DefragDrop::MemoryLimit => "defrag: reassembly memory above the high threshold",
            DefragDrop::TruncatedHeader => "defrag: truncated fragment header",
        };
        f.write_str(what)?;
        if self.queue_discarded() {
            f.write_str(" (queue discarded)")?;
        }
        Ok(())
    }
}

/// What [`Defrag::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragResult<'a> {
    /// Not a fragment (or not a packet defrag looks at): pass the original packet on
    /// unchanged.
    NotFragment,
    /// The fragment was queued; nothing reaches conntrack.
    Held,
    /// The fragment was discarded (and with it perhaps its queue, see
    /// [`DefragDrop::queue_discarded`]); nothing reaches conntrack.
    Dropped(DefragDrop),
    /// The fragment completed its datagram: pass this reassembled datagram on instead.
    /// IPv4: the header of the offset-0 fragment with tot_len, the fragment field (DF
    /// only if the largest fragment had DF), ECN and checksum rewritten. IPv6: the
    /// offset-0 fragment's headers without the fragment header, payload length, next
    /// header and ECN fixed. Borrowed from a buffer reused by the next call.
    Complete(&'a [u8]),
    /// IPv6 only: the kernel passes this fragment on unreassembled (a first fragment
    /// not holding the upper-layer header, or a non-last fragment whose length is not
    /// a multiple of 8, which also discards its queue). Conntrack finds it INVALID.
    PassThrough,
}

/// One original fragment of the last completed datagram: its place in the
/// fragmentable part (IPv4: after the IP header; IPv6: after the fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPiece {
    /// Offset in bytes.
    pub offset: u32,
    /// Data bytes kept from this fragment (IPv4 non-last fragments rounded down to 8).
    pub len: u32,
}

/// Reassembly counters (kernel SNMP MIB fields, kernel-semantics-2.md §3.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// `Ip: ReasmReqds`: IPv4 fragments handed to reassembly.
    pub ipv4_reasm_reqds: u64,
    /// `Ip: ReasmOKs`: IPv4 datagrams reassembled.
    pub ipv4_reasm_oks: u64,
    /// `Ip: ReasmFails`: IPv4 failures (discarded queues, memory limit, max_dist
    /// restarts, failed completions, timeouts).
    pub ipv4_reasm_fails: u64,
    /// `Ip: ReasmTimeout`: IPv4 queues whose lifetime ended.
    pub ipv4_reasm_timeout: u64,
    /// `IpExt: ReasmOverlaps`: IPv4 queues discarded for an overlap.
    pub ipv4_reasm_overlaps: u64,
    /// `Ip6: ReasmFails`: IPv6 conntrack queues count only on timeout.
    pub ipv6_reasm_fails: u64,
    /// `Ip6: ReasmTimeout`: IPv6 conntrack queues whose lifetime ended (with at least
    /// one fragment queued).
    pub ipv6_reasm_timeout: u64,
}

/// Reassembly state of one network namespace: the IPv4 and IPv6 conntrack queues.
#[derive(Debug)]
pub struct Defrag {
    v4: ipv4::Ipv4Defrag,
    v6: ipv6::Ipv6Defrag,
    out: Reassembled,
    stats: DefragStats,
}

/// The output buffer of the last completed datagram.
#[derive(Debug, Default)]
struct Reassembled {
    buf: Vec<u8>,
    pieces: Vec<FragmentPiece>,
    max_frag_size: usize,
}

impl Default for Defrag {
    fn default() -> Self {
        Defrag::new()
    }
}

impl Defrag {
    /// No queues, empty counters.
    pub fn new() -> Defrag {
        Defrag {
            v4: ipv4::Ipv4Defrag::new(),
            v6: ipv6::Ipv6Defrag::new(),
            out: Reassembled::default(),
            stats: DefragStats::default(),
        }
    }

    /// Hand one packet to defrag, as the hook at priority −400 sees it.
    ///
    /// `pkt` is an IP packet (IPv4 or IPv6, told by its version nibble) that passed the
    /// IP input checks and is trimmed to its IP length. `zone` is the conntrack zone:
    /// queues are per zone. Queues whose lifetime ended by `now` are dropped first.
    #[inline]
    pub fn push(
        &mut self,
        now: Instant,
        pkt: &[u8],
        zone: u16,
        sysctls: &Sysctls,
    ) -> DefragResult<'_> {
        // The common case inline: an IPv4 packet that is no fragment (MF clear, offset
        // 0) while no queue is open has nothing to expire and nothing to join.
        // (The IPv4 family gives the same answer in `push_any`; asking here keeps the
        // call and the timers out of the common path: 25 instructions a packet.)
        if pkt.len() >= 20 && pkt[0] >> 4 == 4 && ipv4::is_whole(pkt) && self.queued() == 0 {
            self.out.max_frag_size = 0;
            self.out.pieces.clear();
            return DefragResult::NotFragment;
        }
        self.push_any(now, pkt, zone, sysctls)
    }

    /// [`Defrag::push`] in general.
    #[inline(never)]
    fn push_any(
        &mut self,
        now: Instant,
        pkt: &[u8],
        zone: u16,
        sysctls: &Sysctls,
    ) -> DefragResult<'_> {
        self.out.max_frag_size = 0;
        self.out.pieces.clear();
        self.expire(now, sysctls);
        let outcome = match pkt.first().map(|b| b >> 4) {
            Some(4) => self
                .v4
                .push(now, pkt, zone, sysctls, &mut self.stats, &mut self.out),
            Some(6) => self
                .v6
                .push(now, pkt, zone, sysctls, &mut self.stats, &mut self.out),
            _ => Outcome::NotFragment,
        };
        match outcome {
            Outcome::NotFragment => DefragResult::NotFragment,
            Outcome::Held => DefragResult::Held,
            Outcome::Dropped(r) => DefragResult::Dropped(r),
            Outcome::PassThrough => DefragResult::PassThrough,
            Outcome::Complete => DefragResult::Complete(&self.out.buf),
        }
    }

    /// Drop the queues whose lifetime ended at or before `now` (also done inside
    /// [`Defrag::push`]). Counts `ReasmTimeout` as the kernel's timers do. `sysctls`
    /// is not read: a queue's lifetime is fixed when it is created.
    pub fn expire(&mut self, now: Instant, _sysctls: &Sysctls) {
        self.v4.expire(now, &mut self.stats);
        self.v6.expire(now, &mut self.stats);
    }

    /// Number of open queues (IPv4 + IPv6).
    pub fn queued(&self) -> usize {
        self.v4.table.len() + self.v6.table.len()
    }

    /// After [`DefragResult::Complete`]: the size of the largest original fragment
    /// (IPv4: header + kept data, kernel `IPCB(skb)->frag_max_size`; IPv6: 40 + its
    /// payload length, `IP6CB(skb)->frag_max_size`). Forwarding compares it with the
    /// egress MTU (§3.5). 0 after any other result.
    pub fn max_frag_size(&self) -> usize {
        self.out.max_frag_size
    }

    /// After [`DefragResult::Complete`]: the original fragments in offset order, as
    /// refragmentation on output reproduces them (§3.5). Empty after any other result.
    pub fn original_fragments(&self) -> &[FragmentPiece] {
        &self.out.pieces
    }

    /// The reassembly counters.
    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Bytes counted against `ipfrag_high_thresh` (see [`approx_truesize`]).
    pub fn ipv4_mem(&self) -> u64 {
        self.v4.table.mem
    }

    /// Bytes counted against `nf_conntrack_frag6_high_thresh` (see [`approx_truesize`]).
    pub fn ipv6_mem(&self) -> u64 {
        self.v6.table.mem
    }
}

/// What a family's `push` did (the borrow of the output buffer is taken afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NotFragment,
    Held,
    Dropped(DefragDrop),
    Complete,
    PassThrough,
}

/// What queueing one fragment decided, before the table acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Queued, datagram incomplete.
    Held,
    /// Fragment dropped, queue kept.
    Drop(DefragDrop),
    /// Fragment dropped and queue discarded.
    Kill(DefragDrop),
    /// Queued and the datagram is complete.
    Complete,
}

/// A contiguous run of fragments: the unit `inet_frag_queue_insert` compares with.
/// Fragments appended at the end of the last run extend it; any other placement
/// starts a run of its own, even when it touches a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u32,
    end: u32,
}

/// Result of [`insert_run`] (kernel `IPFRAG_OK` / `IPFRAG_DUP` / `IPFRAG_OVERLAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insert {
    Ok,
    Dup,
    Overlap,
}

/// Place `[offset, end)` among the runs (sorted, disjoint; the last one holds the
/// highest end), as `inet_frag_queue_insert` does:
/// * past the end of the last run: an overlap if it starts inside it, appended to it
///   if it starts exactly at its end, a new run otherwise;
/// * otherwise: a duplicate if entirely inside one run, an overlap if it meets any
///   run, else a new run of its own in the gap.
fn insert_run(runs: &mut Vec<Run>, offset: u32, end: u32) -> Insert {
    let Some(last) = runs.last_mut() else {
        runs.push(Run { start: offset, end });
        return Insert::Ok;
    };
    if end > last.end {
        if offset < last.end {
            return Insert::Overlap;
        }
        if offset == last.end {
            last.end = end;
        } else {
            runs.push(Run { start: offset, end });
        }
        return Insert::Ok;
    }
    // First run ending after `offset`: the only candidate for containing the fragment;
    // it meets the fragment iff it starts before `end`.
    let i = runs.partition_point(|r| r.end <= offset);
    match runs.get(i) {
        Some(r) if r.start < end => {
            if offset >= r.start && end <= r.end {
                Insert::Dup
            } else {
                Insert::Overlap
            }
        }
        _ => {
            runs.insert(i, Run { start: offset, end });
            Insert::Ok
        }
    }
}

/// One queued fragment: where its data sits in [`Bufs::data`].
#[derive(Debug, Clone, Copy)]
struct Piece {
    offset: u32,
    len: u32,
    pos: usize,
}

/// The growable parts of a queue, recycled between queues.
#[derive(Debug, Default)]
struct Bufs {
    runs: Vec<Run>,
    pieces: Vec<Piece>,
    /// Fragment data in arrival order (only accepted fragments, no duplicates).
    data: Vec<u8>,
    /// Header bytes of the offset-0 fragment (IPv4 header with options; IPv6 header
    /// and extension headers before the fragment header).
    head: Vec<u8>,
}

impl Bufs {
    fn clear(&mut self) {
        self.runs.clear();
        self.pieces.clear();
        self.data.clear();
        self.head.clear();
    }
}

/// A reassembly queue (kernel `struct inet_frag_queue` + the family's `E`).
#[derive(Debug)]
struct FragQueue<E> {
    /// Identifies this queue in the timer heap.
    serial: u64,
    /// When the queue's lifetime ends (set at creation; IPv4 `ip_frag_reinit` resets it).
    deadline: Instant,
    /// Datagram length known so far (`q.len`): the highest end seen, or the last
    /// fragment's end.
    len: u32,
    /// Data bytes queued (`q.meat`).
    meat: u32,
    /// The offset-0 fragment is queued (`INET_FRAG_FIRST_IN`).
    first_in: bool,
    /// The last fragment (MF=0) arrived (`INET_FRAG_LAST_IN`).
    last_in: bool,
    /// Largest fragment seen (`q.max_size`; family-specific meaning).
    max_size: u16,
    /// OR of `1 << ecn` over the queued fragments (`ipq.ecn` / `frag_queue.ecn`).
    ecn: u8,
    /// Approximate truesize of the queued fragments.
    mem: u64,
    bufs: Bufs,
    ext: E,
}

impl<E> FragQueue<E> {
    /// Whether any fragment is queued (the kernel's `fragments_tail != NULL`).
    fn has_fragments(&self) -> bool {
        !self.bufs.runs.is_empty()
    }

    /// Insert `[offset, offset + data.len())`; on success keep the data and count its
    /// memory. `data` is non-empty.
    fn insert(&mut self, offset: u32, data: &[u8], truesize: u64) -> Insert {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let end = offset.saturating_add(len);
        let r = insert_run(&mut self.bufs.runs, offset, end);
        if r == Insert::Ok {
            self.bufs.pieces.push(Piece {
                offset,
                len,
                pos: self.bufs.data.len(),
            });
            self.bufs.data.extend_from_slice(data);
            self.meat = self.meat.saturating_add(len);
            self.mem = self.mem.saturating_add(truesize);
        }
        r
    }

    /// `inet_frag_queue_flush`: free the queued fragments and their memory.
    fn flush(&mut self) {
        self.bufs.clear();
        self.mem = 0;
    }

    /// Write the queued data after the header already in `out.buf` and record the
    /// original fragments in offset order.
    fn assemble(&mut self, out: &mut Reassembled) {
        let base = out.buf.len();
        out.buf.resize(base + self.len as usize, 0);
        self.bufs.pieces.sort_unstable_by_key(|p| p.offset);
        for p in &self.bufs.pieces {
            let dst = (base + p.offset as usize)..(base + p.offset as usize + p.len as usize);
            let src = p.pos..p.pos + p.len as usize;
            if let (Some(d), Some(s)) = (out.buf.get_mut(dst), self.bufs.data.get(src)) {
                d.copy_from_slice(s);
            }
            out.pieces.push(FragmentPiece {
                offset: p.offset,
                len: p.len,
            });
        }
    }
}

/// Spare buffers kept for new queues.
const POOL_MAX: usize = 32;

/// The queues of one family (kernel `struct fqdir`): lookup, lifetime, memory.
#[derive(Debug)]
struct Table<K, E> {
    map: HashMap<K, FragQueue<E>>,
    /// (deadline, serial, key); entries whose queue is gone or whose deadline changed
    /// are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// Bytes counted against the high threshold.
    mem: u64,
    /// Charged per queue.
    qsize: u64,
    next_serial: u64,
    pool: Vec<Bufs>,
}

impl<K: Copy + Eq + Hash + Ord, E> Table<K, E> {
    fn new(qsize: u64) -> Self {
        Table {
            map: HashMap::new(),
            timers: BinaryHeap::new(),
            mem: 0,
            qsize,
            next_serial: 0,
            pool: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    /// `inet_frag_find`: make sure a queue for `key` exists. False when the memory
    /// count is above `high_thresh` or `high_thresh` is 0 (checked before the lookup,
    /// so existing queues are refused too). A new queue lives `timeout` from `now`.
    fn find_or_create(
        &mut self,
        key: K,
        now: Instant,
        high_thresh: u64,
        timeout: Duration,
        init: impl FnOnce() -> E,
    ) -> bool {
        if high_thresh == 0 || self.mem > high_thresh {
            return false;
        }
        if let MapEntry::Vacant(v) = self.map.entry(key) {
            let serial = self.next_serial;
            self.next_serial += 1;
            let deadline = now + timeout;
            v.insert(FragQueue {
                serial,
                deadline,
                len: 0,
                meat: 0,
                first_in: false,
                last_in: false,
                max_size: 0,
                ecn: 0,
                mem: 0,
                bufs: self.pool.pop().unwrap_or_default(),
                ext: init(),
            });
            self.mem = self.mem.saturating_add(self.qsize);
            self.push_timer(deadline, serial, key);
        }
        true
    }

    fn push_timer(&mut self, deadline: Instant, serial: u64, key: K) {
        self.timers.push(Reverse((deadline, serial, key)));
        // Stale entries (queues killed or restarted) wait for their deadline; rebuild
        // the heap when they dominate so it stays proportional to the open queues.
        if self.timers.len() > 2 * self.map.len() + 64 {
            self.timers = self
                .map
                .iter()
                .map(|(k, q)| Reverse((q.deadline, q.serial, *k)))
                .collect();
        }
    }

    /// Run `f` on the queue of `key`, then account for its memory and deadline changes.
    fn with_queue<R>(&mut self, key: &K, f: impl FnOnce(&mut FragQueue<E>) -> R) -> Option<R> {
        let q = self.map.get_mut(key)?;
        let (mem0, deadline0) = (q.mem, q.deadline);
        let r = f(q);
        let (mem1, deadline1, serial) = (q.mem, q.deadline, q.serial);
        self.mem = self.mem.saturating_sub(mem0).saturating_add(mem1);
        if deadline1 != deadline0 {
            self.push_timer(deadline1, serial, *key);
        }
        Some(r)
    }

    /// `inet_frag_kill` + destroy: take the queue out and release its memory.
    fn remove(&mut self, key: &K) -> Option<FragQueue<E>> {
        let q = self.map.remove(key)?;
        self.mem = self.mem.saturating_sub(q.mem).saturating_sub(self.qsize);
        Some(q)
    }

    /// Keep a dead queue's buffers for a later queue.
    fn recycle(&mut self, q: FragQueue<E>) {
        if self.pool.len() < POOL_MAX {
            let mut bufs = q.bufs;
            bufs.clear();
            self.pool.push(bufs);
        }
    }

    /// Remove every queue whose deadline is at or before `now`, calling `on_expire`
    /// on each (the timer handler), in deadline order.
    #[inline]
    fn expire(&mut self, now: Instant, mut on_expire: impl FnMut(&K, &FragQueue<E>)) {
        // No live queue (the common case: a stream without fragments): every timer
        // left is stale, so dropping them all is what popping them would do.
        if self.map.is_empty() {
            self.timers.clear();
            return;
        }
        while let Some(&Reverse((deadline, serial, key))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let live = self
                .map
                .get(&key)
                .is_some_and(|q| q.serial == serial && q.deadline == deadline);
            if live {
                if let Some(q) = self.remove(&key) {
                    on_expire(&key, &q);
                    self.recycle(q);
                }
            }
        }
    }
}

/// RFC 3168 §5.3 on the OR of `1 << ecn` over the fragments (kernel
/// `ip_frag_ecn_table`): `None` = drop (not-ECT mixed with ECT/CE), else the bits to
/// OR into the reassembled header's ECN field (CE when CE met ECT).
fn ecn_merge(bits: u8) -> Option<u8> {
    const NOT_ECT: u8 = 0x01;
    const ECT_1: u8 = 0x02;
    const ECT_0: u8 = 0x04;
    const CE: u8 = 0x08;
    if bits & NOT_ECT != 0 && bits & (ECT_1 | ECT_0 | CE) != 0 {
        return None;
    }
    if bits & CE != 0 && bits & (ECT_1 | ECT_0) != 0 {
        Some(3)
    } else {
        Some(0)
    }
}
