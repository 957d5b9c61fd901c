//! The batch API (issue 6): a slice of packets in, a slice of results out, as VPP, DPDK
//! and OVS process packets. Per-packet [`Conntrack::track`] is a batch of one.
//!
//! Ordering rule: a batch gives exactly the results of running each packet through
//! `track`, then the caller's pipeline step, then `confirm` or `discard`, one packet
//! after the other in slice order. So the caller's pipeline runs inside the batch, as a
//! closure, between a packet's `track` and its `confirm`: two packets of one new flow in
//! the same batch behave as in the kernel (the second finds the confirmed entry).

use crate::conntrack::{invert, ConfirmHint, Confirmed, Conntrack, Hook, Parsed, Tracked};
use crate::sip_lanes::{Words, MAX_LANES};
use crate::table::{FlowHasher, Table, TagWalk};
use crate::time::Instant;
use crate::tuple::{Dir, Family, Tuple};
use crate::zone::Zone;

/// What the pipeline decided for a tracked packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The packet reached the confirm hook (forwarded or delivered locally).
    Confirm,
    /// The packet was dropped before the confirm hook.
    Discard,
}

/// One packet's result in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct BatchResult {
    /// What `track` gave the packet.
    pub tracked: Tracked,
    /// What `confirm` did, when the pipeline said [`Next::Confirm`].
    pub confirmed: Option<Confirmed>,
}

/// Entries up to which the batch path skips its prefetch stages (see `track_batch`).
const SMALL_TABLE: u32 = 1024;

/// Packets resolved per prefetch round: enough to hide a memory access behind the
/// others' hashing, few enough that the lines fetched stay in L1.
const ROUND: usize = 16;
const _: () = assert!(ROUND <= MAX_LANES, "a round is hashed in one call");

impl Conntrack {
    /// Track a batch of IP packets that share one `now`, hook and template zone (a plain
    /// `u16` is that zone in both directions). For each packet,
    /// in order: `track`, then `pipeline(index, &tracked, self)` (rules, routing), then
    /// `confirm` or `discard` as it says; one [`BatchResult`] per packet is appended to
    /// `out`.
    ///
    /// How it is fast: per round of 16 packets it
    /// 1. parses each one and hashes the round's IPv4 tuples together, in SIMD lanes
    ///    (`sip_lanes`: the same keyed SipHash-1-3 as one at a time), then requests
    ///    each bucket's group line (`groups.rs`);
    /// 2. walks each bucket by its cells' keys ([`crate::table::Table::tag_step`]):
    ///    the chain's first node carrying the packet's tag has its entry requested (a
    ///    likely hit; the node is kept as the lookup's hint, checked there, not
    ///    trusted), a chain without one is a sure miss (unless an earlier packet of
    ///    the batch links the tuple first);
    /// 3. for a predicted miss, hashes its reply tuple (in lanes too) and requests
    ///    that bucket's group for confirm; when the round's walks proved more misses
    ///    than hits, the next round is taken for a burst of new flows: every packet's
    ///    reply tuple is hashed with its own and both buckets are walked in one
    ///    round; those walks also give up at an expired node, so that a walk without
    ///    the tag proves a clean miss: while no node has been linked into that bucket
    ///    since (`Table::unchanged`) and no timeout is 0, the packet's lookup is not
    ///    made again, nor are confirm's two chain scans when both were proved;
    /// 4. resolves the packets one by one, in order, reusing the parse, the hashes and
    ///    the walks' nodes (confirm takes the orig and reply hashes as hints, checked
    ///    against the entry's tuples, so a NAT rewrite of the reply in the pipeline is
    ///    hashed afresh).
    ///
    /// On a table of at most 1,024 entries (in cache) the stages would only cost
    /// instructions: each packet is parsed and tracked at once, its hash memoised per
    /// batch by the packet's 5-tuple words (a flow repeated in the batch is hashed
    /// once).
    ///
    /// The hash of a tuple does not depend on the table, so the hints stay valid
    /// whatever the earlier packets of the batch changed; a wrong miss prediction only
    /// costs a wasted prefetch.
    pub fn track_batch<F>(
        &mut self,
        now: Instant,
        pkts: &[&[u8]],
        hook: Hook,
        zone: impl Into<Zone>,
        out: &mut Vec<BatchResult>,
        mut pipeline: F,
    ) where
        F: FnMut(usize, &Tracked, &mut Conntrack) -> Next,
    {
        let zone: Zone = zone.into();
        self.observe(now);
        // Packets are hashed with the zone's original-direction id (their own tuple is
        // looked up as an original tuple first), predicted replies with its reply id.
        let (zid, rzid) = (zone.id_for(Dir::Original), zone.id_for(Dir::Reply));
        out.reserve(pkts.len());
        // A table this small stays in cache (a group line and an entry per entry at
        // most: ~170 KiB): the prefetch stages would only cost instructions, and so
        // would keeping a round's parses in an array. Each packet is parsed and
        // tracked at once.
        if self.table.count() <= SMALL_TABLE {
            let mut memo = HashMemo::default();
            for (i, p) in pkts.iter().enumerate() {
                let table = &self.table;
                let key = HashMemo::key(p, zid);
                let hash_of = |t: &Tuple, memo: &mut HashMemo| match key {
                    Some(k) => memo.hash(k, || table.hash(t, zid)),
                    None => table.hash(t, zid),
                };
                // An IPv4 UDP packet: viewed from its bytes, its hit tracked inline.
                // Each result is pushed where it is made (built in place: a shared
                // `let` copied it, ~8 instructions a packet).
                match Parsed::udp4(p) {
                    Some((pkt, tuple)) => {
                        let h = hash_of(&tuple, &mut memo);
                        let tracked = self.track_udp4(now, pkt, &tuple, h, hook, zone);
                        let hint = || {
                            Some(ConfirmHint {
                                orig: (zid, &tuple, h),
                                inverse: None,
                                proven: false,
                            })
                        };
                        out.push(self.finish(i, now, tracked, hint, &mut pipeline));
                    }
                    None => {
                        let x = Parsed::new_with(p, |t| hash_of(t, &mut memo));
                        let tracked = self.track_hinted(now, p, hook, zone, x.as_ref());
                        let hint = || {
                            x.as_ref().map(|x| ConfirmHint {
                                orig: (zid, x.tuple(), x.hash()),
                                inverse: None,
                                proven: false,
                            })
                        };
                        out.push(self.finish(i, now, tracked, hint, &mut pipeline));
                    }
                }
            }
            return;
        }
        let mut pre: [Option<Parsed<'_>>; ROUND] = [None; ROUND];
        // The hash words of each IPv4 port-protocol packet's tuple (see `Parsed::ports4`).
        let mut words: [Option<[u64; 2]>; ROUND] = [None; ROUND];
        // A round's IPv4 tuples as hash words, hashed together in SIMD lanes, and
        // where each one's packet sits in the round.
        let mut lanes = Lanes::default();
        // The reply tuples hashed for the packets predicted to miss.
        let mut replies = Replies::default();
        for (r, round) in pkts.chunks(ROUND).enumerate() {
            lanes.clear();
            for (k, ((slot, w), p)) in pre.iter_mut().zip(&mut words).zip(round).enumerate() {
                match Parsed::ports4(p) {
                    Some((pkt, tuple)) => {
                        // Read from the header, not the tuple just built (+66
                        // instructions a packet when read back from the tuple); a view
                        // always has these bytes, the fallback only keeps it total.
                        let tw = Parsed::ports4_words(p, zid)
                            .unwrap_or_else(|| FlowHasher::v4_words(&tuple, zid));
                        lanes.push(k, tw);
                        *w = Some(tw);
                        *slot = Some(Parsed::from_view(pkt, tuple, 0));
                    }
                    None => {
                        let table = &self.table;
                        *w = None;
                        *slot = Parsed::general(p, |t| table.hash(t, zid));
                    }
                }
            }
            for (k, h) in lanes.hash(self.table()) {
                if let Some(x) = &mut pre[k] {
                    x.set_hash(h);
                }
            }
            for x in pre[..round.len()].iter().flatten() {
                self.table().prefetch(x.hash());
            }
            replies.clear();
            // In a burst of new flows (the last round proved mostly misses), every
            // packet is taken for a miss from the start: its reply tuple hashed (while
            // the group lines just requested arrive) and that bucket walked beside its
            // own, in one round instead of one walk after the other.
            let burst = self.miss_burst && round.len() > 1;
            // In a burst round, the packets whose lookup its walks proved a clean miss
            // (bit k), and those of them whose reply chain the walks proved free of
            // the reply tuple's tag too (see `walk_burst`).
            let (mut proven_miss, mut proven_both) = (0u32, 0u32);
            if burst {
                for (k, x) in pre[..round.len()].iter().enumerate() {
                    if let Some(x) = x {
                        replies.push(self.table(), k, words[k], x.tuple(), rzid);
                    }
                }
                replies.hash(self.table());
            }
            if round.len() > 1 {
                // Walk each bucket's group by tags, the round's lines requested above:
                // a node with the packet's tag gets its entry requested (a likely
                // hit), a chain without one proves a miss. In a burst, the reply
                // buckets' walks go with them (confirm scans those chains).
                let n = round.len();
                let mut walks = [TagWalk::Unknown; ROUND];
                if burst {
                    (proven_miss, proven_both) =
                        self.walk_burst(now, &pre[..n], &replies, &mut walks[..n]);
                } else {
                    let table = self.table();
                    walk_tags::<ROUND>(table, &mut walks[..n], None, &mut false, |k| {
                        pre[k].as_ref().map(|x| (x.hash(), x.tuple().proto))
                    });
                    // Links from here on are noted: a walk's node stays its lookup's
                    // hint while its bucket gets none (`Table::find_clean`).
                    self.table.forget_changes();
                }
                // The predicted misses: the walks that proved one. When they are more
                // than the hits (a burst of new flows), the next round is a burst
                // round.
                let mut cands = [0usize; ROUND];
                let (mut n_cand, mut n_tagged) = (0, 0);
                for (k, w) in walks[..n].iter().enumerate() {
                    match *w {
                        TagWalk::Absent => {
                            cands[n_cand] = k;
                            n_cand += 1;
                        }
                        TagWalk::Tagged(node) => {
                            n_tagged += 1;
                            if let Some(x) = &mut pre[k] {
                                x.set_node(node);
                            }
                        }
                        TagWalk::At(_) | TagWalk::Unknown => {}
                    }
                }
                self.miss_burst = n_cand > n_tagged;
                if !burst {
                    // A packet whose bucket has no node with its tag will miss and
                    // create an entry: hash its reply tuple now and request that
                    // bucket's group too, so confirm finds both in cache and does not
                    // hash again. The stage runs over these predicted misses only
                    // (most rounds of a busy table have few or none).
                    for &k in &cands[..n_cand] {
                        if let Some(x) = &pre[k] {
                            replies.push(self.table(), k, words[k], x.tuple(), rzid);
                        }
                    }
                    if replies.n > 0 {
                        replies.hash(self.table());
                        // Confirm scans the reply chain (its length, and a clash) in
                        // that group line: requested, not waited for.
                        for &k in replies.misses() {
                            self.table().prefetch(replies.hashes[k]);
                        }
                    }
                }
            }
            let has_reply = replies.mask;
            for (k, p) in round.iter().enumerate() {
                let i = r * ROUND + k;
                let x = pre[k].as_ref();
                // A UDP packet takes the express hit inline, as in the small-table
                // path; anything else the general path.
                let tracked = match x {
                    Some(x) if x.tuple().proto == crate::tuple::proto::UDP => {
                        if proven_miss >> k & 1 != 0 && self.table.unchanged(x.hash()) {
                            self.track_udp_parsed::<true>(now, x, hook, zone)
                        } else {
                            self.track_udp_parsed::<false>(now, x, hook, zone)
                        }
                    }
                    _ => self.track_hinted(now, p, hook, zone, x),
                };
                let inverse = (has_reply >> k & 1 != 0).then(|| (rzid, replies.hashes[k]));
                let hint = || {
                    x.map(|x| ConfirmHint {
                        orig: (zid, x.tuple(), x.hash()),
                        inverse,
                        proven: proven_both >> k & 1 != 0,
                    })
                };
                out.push(self.finish(i, now, tracked, hint, &mut pipeline));
            }
        }
    }
}

impl Conntrack {
    /// A tracked packet of a batch: the caller's pipeline step, then `confirm` (with
    /// the tuples' hashes the batch knows as hints, made only if confirm needs them)
    /// or `discard`.
    #[inline(always)]
    fn finish<'h, F>(
        &mut self,
        i: usize,
        now: Instant,
        tracked: Tracked,
        hint: impl FnOnce() -> Option<ConfirmHint<'h>>,
        pipeline: &mut F,
    ) -> BatchResult
    where
        F: FnMut(usize, &Tracked, &mut Conntrack) -> Next,
    {
        let confirmed = match pipeline(i, &tracked, self) {
            Next::Confirm => Some(self.confirm_hinted(now, &tracked, hint)),
            Next::Discard => {
                self.discard(&tracked);
                None
            }
        };
        BatchResult { tracked, confirmed }
    }
}

impl Conntrack {
    /// A burst round's walks (see `track_batch`): each packet's bucket and its reply
    /// bucket walked in the same passes, the walks' states left in `walks`. Returns the
    /// packets (bit k) whose lookup the walks proved a miss that meets no expired
    /// node, and those of them whose reply chain they proved free of the reply tuple's
    /// tag too; both hold while `Table::unchanged` does (changes are counted from
    /// here on). None when a timeout is 0 (an entry refreshed with one expires at
    /// once, after its walk). Out of line: it keeps `track_batch` small enough for its
    /// caller to inline it.
    #[inline(never)]
    fn walk_burst(
        &mut self,
        now: Instant,
        pre: &[Option<Parsed<'_>>],
        replies: &Replies,
        walks: &mut [TagWalk],
    ) -> (u32, u32) {
        let n = walks.len().min(pre.len());
        for &k in replies.misses() {
            self.table().prefetch(replies.hashes[k]);
        }
        // Positions past the round's are its reply walks, in `misses` order. The
        // walks give up at an expired node, so that an `Absent` proves a clean miss.
        let proofs = !self.zero_timeout();
        let mut both = [TagWalk::Unknown; 2 * ROUND];
        let m = (n + replies.n).min(2 * ROUND);
        let mut stale = false;
        let until = proofs.then_some(now);
        // Walk `j`'s hash and protocol: the packet's own tuple, then the replies'.
        let target = |j: usize| {
            let k = if j < n { j } else { replies.list[j - n] };
            let x = pre.get(k)?.as_ref()?;
            let h = if j < n { x.hash() } else { replies.hashes[k] };
            Some((h, x.tuple().proto))
        };
        walk_tags::<{ 2 * ROUND }>(self.table(), &mut both[..m], until, &mut stale, target);
        walks[..n].copy_from_slice(&both[..n]);
        if !proofs {
            return (0, 0);
        }
        let mut miss = 0u32;
        for (k, w) in walks[..n].iter().enumerate() {
            miss |= u32::from(*w == TagWalk::Absent) << k;
        }
        let mut reply = 0u32;
        for (j, w) in both[n..m].iter().enumerate() {
            if *w == TagWalk::Absent {
                reply |= 1 << replies.list[j];
            }
        }
        // A proof read the entries of every node of a group whose deadline bound
        // `now` had passed (entries deleted since it was set leave it low): the bound
        // is renewed from them, in cache now, so that the next walks there read none
        // (a proven miss makes no lookup, which would renew it).
        if stale {
            for (j, w) in both[..m].iter().enumerate() {
                if let (TagWalk::Absent, Some((h, _))) = (*w, target(j)) {
                    self.table.keep_bound(h, now);
                }
            }
        }
        self.table.forget_changes();
        (miss, miss & reply)
    }
}

/// The tag walks of a round's buckets ([`Table::tag_walk_start`], then the step of
/// [`Table::tag_step_until`], which ends each one: the group line holds the chain):
/// `target(k)` is the hash and protocol of the tuple whose bucket packet `k` walks,
/// `None` for no walk (its state is then `Unknown`); `stale` is set when a proof
/// read a group whose deadline bound had passed.
#[inline(always)]
fn walk_tags<const N: usize>(
    table: &Table,
    walks: &mut [TagWalk],
    until: Option<Instant>,
    stale: &mut bool,
    target: impl Fn(usize) -> Option<(u64, u8)>,
) {
    let mut targets = [(0u64, false); N];
    for ((k, w), t) in walks.iter_mut().enumerate().zip(&mut targets) {
        *w = match target(k) {
            Some((h, proto)) => {
                *t = (h, proto == crate::tuple::proto::UDP);
                table.tag_walk_start(h)
            }
            None => TagWalk::Unknown,
        };
    }
    for (w, &(h, udp)) in walks.iter_mut().zip(&targets) {
        *w = table.tag_step_noting(*w, h, udp, until, stale);
    }
}

/// The reply tuples of a round's packets predicted to miss (the reply tuple of the
/// entry each would create: its own tuple inverted), hashed with the zone's reply id:
/// IPv4 ones together in SIMD lanes (a port protocol's reply words are its own words
/// swapped, without a tuple), others one at a time.
#[derive(Default)]
struct Replies {
    lanes: Lanes,
    /// Per round position, the hash (meaningful where `mask` has its bit).
    hashes: [u64; ROUND],
    /// Bit k: round position k has its reply hash.
    mask: u32,
    /// The round positions pushed, in order.
    list: [usize; ROUND],
    n: usize,
}

impl Replies {
    fn clear(&mut self) {
        self.lanes.clear();
        self.mask = 0;
        self.n = 0;
    }

    /// Queue round position `k`'s reply tuple: its packet's hash `words` (IPv4 port
    /// protocols) or its `tuple`; a tuple without an inverse is skipped.
    #[inline(always)]
    fn push(&mut self, table: &Table, k: usize, words: Option<[u64; 2]>, tuple: &Tuple, rzid: u16) {
        if let Some(w) = words {
            self.lanes.push(k, FlowHasher::v4_inverse_words(w, rzid));
        } else {
            let Some(t) = invert(tuple) else { return };
            if t.family == Family::V4 {
                self.lanes.push(k, FlowHasher::v4_words(&t, rzid));
            } else {
                self.hashes[k] = table.hash(&t, rzid);
            }
        }
        self.mask |= 1 << k;
        if self.n < ROUND {
            self.list[self.n] = k;
            self.n += 1;
        }
    }

    /// Hash the queued IPv4 tuples (the others are hashed when pushed).
    #[inline(always)]
    fn hash(&mut self, table: &Table) {
        for (k, h) in self.lanes.hash(table) {
            self.hashes[k] = h;
        }
    }

    /// The round positions with a reply hash, in order.
    fn misses(&self) -> &[usize] {
        &self.list[..self.n]
    }
}

/// A round's IPv4 tuples waiting to be hashed together ([`FlowHasher::hash_lanes`]),
/// with the round position of each one's packet.
struct Lanes {
    w0: Words,
    w1: Words,
    at: [usize; MAX_LANES],
    n: usize,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            w0: [0; MAX_LANES],
            w1: [0; MAX_LANES],
            at: [0; MAX_LANES],
            n: 0,
        }
    }
}

impl Lanes {
    fn clear(&mut self) {
        self.n = 0;
    }

    /// Queue the hash words of the tuple of round position `k` (a round has at most
    /// `MAX_LANES` packets: more is a bug, and is ignored).
    #[inline(always)]
    fn push(&mut self, k: usize, [a, b]: [u64; 2]) {
        // One bounds check for the three arrays (indexing each one reloaded `n` and
        // checked it again: ~8 instructions a packet).
        let n = self.n;
        debug_assert!(n < MAX_LANES, "a round is at most MAX_LANES packets");
        if n < MAX_LANES {
            self.w0[n] = a;
            self.w1[n] = b;
            self.at[n] = k;
            self.n = n + 1;
        }
    }

    /// The queued tuples' hashes, each with its round position.
    #[inline(always)]
    fn hash(&self, table: &Table) -> impl Iterator<Item = (usize, u64)> {
        let mut out = [0u64; MAX_LANES];
        table
            .hasher()
            .hash_lanes(&self.w0, &self.w1, self.n, &mut out);
        let at = self.at;
        (0..self.n).map(move |i| (at[i], out[i]))
    }
}

/// The batch's flow cache: the keyed hashes of the flows seen last, in 8 slots, keyed
/// by the packet's own 5-tuple words. It only saves recomputing a pure function of
/// (tuple, zone): every packet still goes through the full lookup, its tracker, the
/// timeout refresh and the accounting. A hit is an exact compare of the words, so a
/// slot collision costs a recomputation, never a wrong hash.
#[derive(Default)]
struct HashMemo {
    slots: [Option<([u64; 2], u64)>; 8],
}

impl HashMemo {
    /// The memo key of an IPv4 packet with a 20-byte header and a port-carrying L4
    /// protocol (TCP, UDP, UDP-Lite, SCTP): its tuple's hash words, read straight from
    /// the packet bytes ([`Parsed::ports4_words`]), which determine the tuple and the
    /// zone and so the hash. `None` for anything else.
    #[inline]
    fn key(p: &[u8], zone: u16) -> Option<[u64; 2]> {
        let h = p.get(..24)?;
        if h[0] != 0x45 || !matches!(h[9], 6 | 17 | 132 | 136) {
            return None;
        }
        Parsed::ports4_words(p, zone)
    }

    /// The hash memoised under `k`, or `compute()` (stored for the next packet).
    #[inline]
    fn hash(&mut self, k: [u64; 2], compute: impl FnOnce() -> u64) -> u64 {
        let x = k[0] ^ k[1];
        let i = ((x ^ x >> 16 ^ x >> 32) & 7) as usize;
        if let Some((kk, h)) = self.slots[i] {
            if kk == k {
                return h;
            }
        }
        let h = compute();
        self.slots[i] = Some((k, h));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::Addr;

    use crate::nat::tests::udp4 as udp;

    #[test]
    fn a_burst_of_new_flows_is_predicted_and_ends_with_it() {
        let mut ct = Conntrack::new(crate::conntrack::Config {
            seed: 3,
            ..Default::default()
        });
        let server = [10, 200, 0, 1];
        let client = |i: u32| [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let now = Instant::from_nanos(1_000_000_000);
        let run = |ct: &mut Conntrack, pkts: &[Vec<u8>]| {
            let mut out = Vec::new();
            for chunk in pkts.chunks(32) {
                let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                ct.track_batch(now, &refs, Hook::PreRouting, 0, &mut out, |_, _, _| {
                    Next::Confirm
                });
            }
            out
        };
        // 4,096 new flows: past the first 1,024 (the small-table path), rounds of
        // misses, which the prediction takes for a burst.
        let new: Vec<Vec<u8>> = (0..4096)
            .map(|i| udp(client(i), 1000, server, 53))
            .collect();
        let out = run(&mut ct, &new);
        assert!(ct.miss_burst, "a burst of new flows is predicted");
        assert!(out
            .iter()
            .all(|r| r.tracked.ctstate() == Some(crate::CtState::New)
                && r.confirmed == Some(crate::conntrack::Confirmed::Inserted)));
        assert_eq!(ct.count(), 4096);
        // Their replies all hit: the burst ends with the first round of them.
        let replies: Vec<Vec<u8>> = (0..4096)
            .map(|i| udp(server, 53, client(i), 1000))
            .collect();
        let out = run(&mut ct, &replies);
        assert!(!ct.miss_burst, "hits end the burst");
        assert!(out
            .iter()
            .all(|r| r.tracked.ctstate() == Some(crate::CtState::Established)));
        assert_eq!(ct.count(), 4096);
    }

    #[test]
    fn a_batch_result_stays_small() {
        // Written once per packet: 84 bytes while a failed confirm carried a full
        // `InvalidReason`.
        assert_eq!(size_of::<Option<Confirmed>>(), 8);
        assert!(
            size_of::<BatchResult>() <= 56,
            "{}",
            size_of::<BatchResult>()
        );
    }

    #[test]
    fn hash_memo_returns_the_table_hash_whatever_collides() {
        let table = Table::new(64, 9);
        let mut memo = HashMemo::default();
        let mut n_keyed = 0;
        for round in 0..3 {
            for a in 0..40u8 {
                for (proto, sp) in [(17u8, 1000u16), (6, 1008), (17, 2000), (1, 0), (47, 0)] {
                    for zone in [0u16, 7] {
                        let mut p = vec![0u8; 28];
                        p[0] = 0x45;
                        p[9] = proto;
                        p[12..16].copy_from_slice(&[10, 0, 0, a]);
                        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
                        p[20..22].copy_from_slice(&sp.to_be_bytes());
                        p[22..24].copy_from_slice(&53u16.to_be_bytes());
                        let Some(k) = HashMemo::key(&p, zone) else {
                            assert!(!matches!(proto, 6 | 17), "{proto}");
                            continue;
                        };
                        n_keyed += 1;
                        let t = crate::conntrack::tuple_of(
                            Family::V4,
                            Addr::v4([10, 0, 0, a]),
                            Addr::v4([10, 0, 0, 1]),
                            proto,
                            &p[20..],
                        )
                        .expect("tuple");
                        let want = table.hash(&t, zone);
                        assert_eq!(memo.hash(k, || table.hash(&t, zone)), want, "{round}");
                    }
                }
            }
        }
        assert_eq!(n_keyed, 3 * 40 * 3 * 2);
    }
}
