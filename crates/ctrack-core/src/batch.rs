//! The batch API (issue 6): a slice of packets in, a slice of results out, as VPP, DPDK
//! and OVS process packets. Per-packet [`Conntrack::track`] is a batch of one.
//!
//! Ordering rule: a batch gives exactly the results of running each packet through
//! `track`, then the caller's pipeline step, then `confirm` or `discard`, one packet
//! after the other in slice order. So the caller's pipeline runs inside the batch, as a
//! closure, between a packet's `track` and its `confirm`: two packets of one new flow in
//! the same batch behave as in the kernel (the second finds the confirmed entry).

use crate::conntrack::{Confirmed, Conntrack, Hook, Parsed, Tracked};
use crate::time::Instant;

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
    /// first node, then the second; then it resolves the packets one by one, in order, with the hashes
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
        let mut pre: [Option<Parsed<'_>>; ROUND] = [None; ROUND];
        for (r, round) in pkts.chunks(ROUND).enumerate() {
            for (slot, p) in pre.iter_mut().zip(round) {
                *slot = Parsed::new(self.table(), p, zone);
                if let Some(x) = slot {
                    self.table().prefetch(x.hash());
                }
            }
            if round.len() > 1 {
                let mut first = [u32::MAX; ROUND];
                for (f, x) in first.iter_mut().zip(&pre[..round.len()]) {
                    if let Some(x) = x {
                        *f = self.table().prefetch_first(x.hash());
                    }
                }
                // Each connection is linked twice, so a chain holds two nodes per
                // entry on average at load factor 1: fetch the second one too.
                for f in &first[..round.len()] {
                    self.table().prefetch_next(*f);
                }
            }
            for (k, p) in round.iter().enumerate() {
                let i = r * ROUND + k;
                let tracked = self.track_hinted(now, p, hook, zone, pre[k]);
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
}
