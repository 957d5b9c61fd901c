//! The batch API (issue 6): a slice of packets in, a slice of results out, as VPP, DPDK
//! and OVS process packets. Per-packet [`Conntrack::track`] is a batch of one.
//!
//! Ordering rule: a batch gives exactly the results of running each packet through
//! `track`, then the caller's pipeline step, then `confirm` or `discard`, one packet
//! after the other in slice order. So the caller's pipeline runs inside the batch, as a
//! closure, between a packet's `track` and its `confirm`: two packets of one new flow in
//! the same batch behave as in the kernel (the second finds the confirmed entry).

use crate::conntrack::{tuple_of, Confirmed, Conntrack, Hook, Tracked};
use crate::packet::Packet;
use crate::time::Instant;
use crate::tuple::proto;

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

/// Packets resolved per prefetch round: enough to hide a memory access behind the
/// others' hashing, few enough that the lines fetched stay in L1.
const ROUND: usize = 16;

impl Conntrack {
    /// Track a batch of IP packets that share one `now`, hook and zone. For each packet,
    /// in order: `track`, then `pipeline(index, &tracked, self)` (rules, routing), then
    /// `confirm` or `discard` as it says; one [`BatchResult`] per packet is appended to
    /// `out`.
    ///
    /// How it is fast: per round of packets it first parses each one and computes its
    /// tuple's keyed hash, prefetching the bucket head; then it prefetches each bucket's
    /// first entry; then it resolves the packets one by one, in order, with the hashes
    /// already computed. The hash of a tuple does not depend on the table, so the hints
    /// stay valid whatever the earlier packets of the batch changed.
    pub fn track_batch<F>(
        &mut self,
        now: Instant,
        pkts: &[&[u8]],
        hook: Hook,
        zone: u16,
        out: &mut Vec<BatchResult>,
        mut pipeline: F,
    ) where
        F: FnMut(usize, &Tracked, &mut Conntrack) -> Next,
    {
        out.reserve(pkts.len());
        let mut hashes = [None; ROUND];
        for (r, round) in pkts.chunks(ROUND).enumerate() {
            for (h, p) in hashes.iter_mut().zip(round) {
                *h = self.peek_hash(p, zone);
                if let Some(h) = *h {
                    self.table().prefetch(h);
                }
            }
            if round.len() > 1 {
                for h in hashes[..round.len()].iter().flatten() {
                    self.table().prefetch_first(*h);
                }
            }
            for (k, p) in round.iter().enumerate() {
                let i = r * ROUND + k;
                let tracked = self.track_hinted(now, p, hook, zone, hashes[k]);
                let confirmed = match pipeline(i, &tracked, self) {
                    Next::Confirm => Some(self.confirm(now, &tracked)),
                    Next::Discard => {
                        self.discard(&tracked);
                        None
                    }
                };
                out.push(BatchResult { tracked, confirmed });
            }
        }
    }

    /// The hash `track` will look the packet up with, when it takes the plain path
    /// (not ICMP, whose errors look up the quoted tuple); `None` otherwise.
    fn peek_hash(&self, data: &[u8], zone: u16) -> Option<u64> {
        let pkt = Packet::parse(data).ok()?;
        if matches!(pkt.proto, proto::ICMP | proto::ICMPV6) {
            return None;
        }
        let t = tuple_of(pkt.family, pkt.src, pkt.dst, pkt.proto, pkt.l4()).ok()?;
        Some(self.table().hash(&t, zone))
    }
}
