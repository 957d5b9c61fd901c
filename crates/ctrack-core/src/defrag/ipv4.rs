//! IPv4 reassembly for conntrack: kernel `ip_defrag` (`net/ipv4/ip_fragment.c`) with
//! the user `IP_DEFRAG_CONNTRACK_IN + zone` of `nf_defrag_ipv4.c`
//! (kernel-semantics-2.md §3.1–§3.4, IPv4 column of §3.3).
//!
//! Order of the checks for one fragment (`ip_frag_queue`):
//! 1. find or create the queue (memory limit);
//! 2. `ipfrag_max_dist`: too many fragments from the same source since this queue's
//!    last one → the queue is flushed and restarted (new lifetime), and the fragment
//!    goes on into the empty queue;
//! 3. end = offset + data length. Last fragment: an end before the known length, or
//!    a second last with another end, discards the queue. Otherwise the end is rounded
//!    down to 8; an end beyond the last fragment's discards the queue;
//! 4. end = offset (empty, also after rounding) discards the queue;
//! 5. run placement: duplicate → fragment dropped; overlap → queue discarded;
//! 6. complete when the first and the last fragment are in and the data adds up; the
//!    datagram fails if not-ECT was mixed with ECT/CE or header + data > 65535.

use super::{
    approx_truesize, ecn_merge, DefragDrop, DefragStats, FragQueue, Insert, Outcome, Reassembled,
    Step, Table, IPV4_QUEUE_SIZE,
};
use crate::packet::checksum;
use crate::sysctl::Sysctls;
use crate::time::{secs, Instant};
use std::collections::HashMap;

const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;

/// Whether an IPv4 packet (at least 20 bytes) is no fragment: MF clear, offset 0.
#[inline(always)]
pub(super) fn is_whole(pkt: &[u8]) -> bool {
    u16::from_be_bytes([pkt[6], pkt[7]]) & (IP_MF | IP_OFFSET) == 0
}

/// Queue key (`struct frag_v4_compare_key`; VRF index always 0, user = zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct V4Key {
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    proto: u8,
    zone: u16,
}

/// IPv4 part of a queue (`struct ipq`).
#[derive(Debug, Default)]
pub(super) struct V4Ext {
    /// The queue holds a reference on its source's peer counter (taken at creation
    /// when `ipfrag_max_dist` was non-zero).
    peer: bool,
    /// Peer counter value at this queue's last fragment (`ipq.rid`).
    rid: u32,
    /// Largest fragment with DF (`ipq.max_df_size`).
    max_df_size: u16,
}

/// Per-source fragment counter (`inet_peer.rid`). Only differences matter, so an
/// entry lives exactly as long as a queue refers to it.
#[derive(Debug, Default)]
struct Peer {
    rid: u32,
    refs: u32,
}

/// The IPv4 conntrack queues of a namespace.
#[derive(Debug)]
pub(super) struct Ipv4Defrag {
    pub(super) table: Table<V4Key, V4Ext>,
    peers: HashMap<[u8; 4], Peer>,
}

impl Ipv4Defrag {
    pub(super) fn new() -> Self {
        Ipv4Defrag {
            table: Table::new(IPV4_QUEUE_SIZE),
            peers: HashMap::new(),
        }
    }

    /// Drop the queue's reference on its peer counter.
    fn release_peer(peers: &mut HashMap<[u8; 4], Peer>, key: &V4Key, ext: &V4Ext) {
        if !ext.peer {
            return;
        }
        if let Some(p) = peers.get_mut(&key.src) {
            p.refs = p.refs.saturating_sub(1);
            if p.refs == 0 {
                peers.remove(&key.src);
            }
        }
    }

    /// Take the queue of `key` out of the table (`inet_frag_kill`).
    fn kill(&mut self, key: &V4Key) -> Option<super::FragQueue<V4Ext>> {
        let q = self.table.remove(key)?;
        Self::release_peer(&mut self.peers, key, &q.ext);
        Some(q)
    }

    /// `ip_expire` for every queue whose lifetime ended: counts ReasmFails and
    /// ReasmTimeout; no ICMP here (§3.4).
    #[inline]
    pub(super) fn expire(&mut self, now: Instant, stats: &mut DefragStats) {
        let peers = &mut self.peers;
        self.table.expire(now, |key, q| {
            stats.ipv4_reasm_fails += 1;
            stats.ipv4_reasm_timeout += 1;
            Self::release_peer(peers, key, &q.ext);
        });
    }

    /// `ipv4_conntrack_defrag` + `ip_defrag` for one packet. A packet that is no
    /// fragment (almost every one) is answered here, inline; a fragment goes to
    /// [`Ipv4Defrag::push_fragment`].
    #[inline]
    pub(super) fn push(
        &mut self,
        now: Instant,
        pkt: &[u8],
        zone: u16,
        sysctls: &Sysctls,
        stats: &mut DefragStats,
        out: &mut Reassembled,
    ) -> Outcome {
        if pkt.len() < 20 || is_whole(pkt) {
            return Outcome::NotFragment;
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if ihl < 20 || ihl > pkt.len() {
            return Outcome::NotFragment;
        }
        let frag = u16::from_be_bytes([pkt[6], pkt[7]]);
        self.push_fragment(now, pkt, ihl, frag, zone, sysctls, stats, out)
    }

    /// [`Ipv4Defrag::push`] of a fragment (`ihl`: its header length, `frag`: its
    /// flags and offset word).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn push_fragment(
        &mut self,
        now: Instant,
        pkt: &[u8],
        ihl: usize,
        frag: u16,
        zone: u16,
        sysctls: &Sysctls,
        stats: &mut DefragStats,
        out: &mut Reassembled,
    ) -> Outcome {
        stats.ipv4_reasm_reqds += 1;

        let key = V4Key {
            src: [pkt[12], pkt[13], pkt[14], pkt[15]],
            dst: [pkt[16], pkt[17], pkt[18], pkt[19]],
            id: u16::from_be_bytes([pkt[4], pkt[5]]),
            proto: pkt[9],
            zone,
        };
        let max_dist = sysctls.ipfrag_max_dist;
        let timeout = secs(u64::from(sysctls.ipfrag_time));
        let peers = &mut self.peers;
        let created = self.table.find_or_create(
            key,
            now,
            u64::from(sysctls.ipfrag_high_thresh),
            timeout,
            || {
                // ip4_frag_init: a peer only when max_dist is on at creation.
                let peer = max_dist != 0;
                if peer {
                    peers.entry(key.src).or_default().refs += 1;
                }
                V4Ext {
                    peer,
                    ..V4Ext::default()
                }
            },
        );
        if !created {
            stats.ipv4_reasm_fails += 1;
            return Outcome::Dropped(DefragDrop::MemoryLimit);
        }

        let frag_in = Fragment {
            pkt,
            ihl,
            frag,
            truesize: approx_truesize(pkt.len()),
        };
        let peers = &mut self.peers;
        let step = self.table.with_queue(&key, |q| {
            if too_far(q, peers, &key, max_dist) {
                stats.ipv4_reasm_fails += 1;
                // ip_frag_reinit: flush, new lifetime, forget what was known. The
                // largest-fragment sizes are not reset (as in the kernel).
                q.flush();
                q.deadline = now + timeout;
                q.first_in = false;
                q.last_in = false;
                q.len = 0;
                q.meat = 0;
                q.ecn = 0;
            }
            queue_fragment(q, &frag_in)
        });
        let Some(step) = step else {
            return Outcome::NotFragment;
        };
        match step {
            Step::Held => Outcome::Held,
            Step::Drop(r) => Outcome::Dropped(r),
            Step::Kill(r) => {
                if r == DefragDrop::Overlap {
                    stats.ipv4_reasm_overlaps += 1;
                }
                stats.ipv4_reasm_fails += 1;
                if let Some(q) = self.kill(&key) {
                    self.table.recycle(q);
                }
                Outcome::Dropped(r)
            }
            Step::Complete => {
                let Some(mut q) = self.kill(&key) else {
                    return Outcome::NotFragment;
                };
                let r = reassemble(&mut q, out);
                self.table.recycle(q);
                match r {
                    Ok(()) => {
                        stats.ipv4_reasm_oks += 1;
                        Outcome::Complete
                    }
                    Err(e) => {
                        stats.ipv4_reasm_fails += 1;
                        Outcome::Dropped(e)
                    }
                }
            }
        }
    }
}

/// The fragment being queued.
struct Fragment<'a> {
    pkt: &'a [u8],
    ihl: usize,
    frag: u16,
    truesize: u64,
}

/// `ip_frag_too_far`: count this fragment on the source's counter; true when more
/// than `max_dist` fragments from that source arrived since this queue's last one and
/// the queue holds fragments.
fn too_far(
    q: &mut FragQueue<V4Ext>,
    peers: &mut HashMap<[u8; 4], Peer>,
    key: &V4Key,
    max_dist: u32,
) -> bool {
    if !q.ext.peer || max_dist == 0 {
        return false;
    }
    let Some(p) = peers.get_mut(&key.src) else {
        return false;
    };
    p.rid = p.rid.wrapping_add(1);
    let start = q.ext.rid;
    q.ext.rid = p.rid;
    q.has_fragments() && p.rid.wrapping_sub(start) > max_dist
}

/// `ip_frag_queue` after the max_dist check.
fn queue_fragment(q: &mut FragQueue<V4Ext>, f: &Fragment<'_>) -> Step {
    let offset = u32::from(f.frag & IP_OFFSET) * 8;
    let data_len = u32::try_from(f.pkt.len() - f.ihl).unwrap_or(u32::MAX);
    let mut end = offset.saturating_add(data_len);

    if f.frag & IP_MF == 0 {
        if end < q.len || (q.last_in && end != q.len) {
            return Step::Kill(DefragDrop::InconsistentLast {
                queue_discarded: true,
            });
        }
        q.last_in = true;
        q.len = end;
    } else {
        // Round down to 8: the extra bytes are dropped, the fragment kept.
        end &= !7;
        if end > q.len {
            if q.last_in {
                return Step::Kill(DefragDrop::BeyondEnd {
                    queue_discarded: true,
                });
            }
            q.len = end;
        }
    }
    if end == offset {
        return Step::Kill(DefragDrop::Empty {
            queue_discarded: true,
        });
    }
    let kept = (end - offset) as usize;
    let Some(data) = f.pkt.get(f.ihl..f.ihl + kept) else {
        return Step::Kill(DefragDrop::Empty {
            queue_discarded: true,
        });
    };
    match q.insert(offset, data, f.truesize) {
        Insert::Dup => return Step::Drop(DefragDrop::Duplicate),
        Insert::Overlap => return Step::Kill(DefragDrop::Overlap),
        Insert::Ok => {}
    }
    q.ecn |= 1 << (f.pkt[1] & 3);
    if offset == 0 {
        q.first_in = true;
        q.bufs.head.clear();
        q.bufs.head.extend_from_slice(&f.pkt[..f.ihl]);
    }
    let fragsize = u16::try_from(kept + f.ihl).unwrap_or(u16::MAX);
    q.max_size = q.max_size.max(fragsize);
    if f.frag & IP_DF != 0 {
        q.ext.max_df_size = q.ext.max_df_size.max(fragsize);
    }
    if q.first_in && q.last_in && q.meat == q.len {
        Step::Complete
    } else {
        Step::Held
    }
}

/// `ip_frag_reasm`: build the datagram in `out` from a complete (already removed) queue.
fn reassemble(q: &mut FragQueue<V4Ext>, out: &mut Reassembled) -> Result<(), DefragDrop> {
    let ecn = ecn_merge(q.ecn).ok_or(DefragDrop::EcnMismatch)?;
    let ihl = q.bufs.head.len();
    let total = ihl + q.len as usize;
    if total > 65535 || ihl < 20 {
        return Err(DefragDrop::Oversize);
    }
    out.buf.clear();
    out.buf.extend_from_slice(&q.bufs.head);
    q.assemble(out);
    let h = &mut out.buf;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[1] |= ecn;
    // DF only if the largest fragment had DF.
    let frag: u16 = if q.ext.max_df_size == q.max_size {
        IP_DF
    } else {
        0
    };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[10] = 0;
    h[11] = 0;
    let c = checksum::compute(0, &h[..ihl]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    out.max_frag_size = usize::from(q.max_size.max(q.ext.max_df_size));
    Ok(())
}
