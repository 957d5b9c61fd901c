//! IPv6 reassembly for conntrack: kernel `nf_ct_frag6_gather`
//! (`net/ipv6/netfilter/nf_conntrack_reasm.c`, `include/net/ipv6_frag.h`) with the
//! user `IP6_DEFRAG_CONNTRACK_IN + zone` of `nf_defrag_ipv6_hooks.c`
//! (kernel-semantics-2.md §3.1–§3.4, IPv6 column of §3.3, §4.4).
//!
//! Conntrack keeps its own IPv6 queues (separate from the host's), with its own
//! lifetime (`nf_conntrack_frag6_timeout`) and memory limit
//! (`nf_conntrack_frag6_high_thresh`), and its own rules, which differ from IPv4's:
//! most bad fragments are dropped alone and the queue kept; two cases pass the
//! fragment on unreassembled (`Outcome::PassThrough`).
//!
//! Order of the checks for one packet:
//! 1. payload length 0 (jumbo) or no fragment header in the extension chain → not a
//!    fragment;
//! 2. a first fragment that does not hold the whole upper-layer header (TCP 20, UDP 8,
//!    ICMPv6 8, else 1 byte) → passed on, no queue touched;
//! 3. fragment header not all present → dropped;
//! 4. find or create the queue (memory limit);
//! 5. end > 65535 → dropped (the queue, maybe just created, stays);
//! 6. last fragment: an end before the known length, or a second last with another
//!    end → dropped. Non-last: an end that is not a multiple of 8 discards the queue
//!    and passes the fragment on; an end beyond the last fragment's → dropped;
//! 7. empty → dropped; run placement: duplicate → dropped, overlap → queue discarded;
//! 8. complete when the first and the last fragment are in and the data adds up; the
//!    datagram fails if not-ECT was mixed with ECT/CE or its payload exceeds 65535.

use super::{
    approx_truesize, ecn_merge, DefragDrop, DefragStats, FragQueue, Insert, Outcome, Reassembled,
    Step, Table, IPV6_QUEUE_SIZE,
};
use crate::sysctl::Sysctls;
use crate::time::{secs, Instant};

const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_TCP: u8 = 6;
const NEXTHDR_UDP: u8 = 17;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_ICMP: u8 = 58;
const NEXTHDR_NONE: u8 = 59;
const NEXTHDR_DEST: u8 = 60;
const IP6_MF: u16 = 0x0001;
const IP6_OFFSET: u16 = 0xfff8;

/// Queue key (`struct frag_v6_compare_key`; ingress index always 0, user = zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct V6Key {
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    zone: u16,
}

/// IPv6 part of a queue (`struct frag_queue`).
#[derive(Debug, Default)]
pub(super) struct V6Ext {
    /// Offset of the next-header byte pointing at the fragment header in the offset-0
    /// fragment, kept modulo 256 as the kernel's `find_prev_fhdr` does (it holds it in
    /// a `u8`).
    nhoff: u8,
    /// Next header of the offset-0 fragment's fragment header.
    frag_nexthdr: u8,
    /// A fragment was queued, so the kernel knows the ingress device (`fq->iif`): the
    /// timeout counters need it.
    inserted: bool,
}

/// The IPv6 conntrack queues of a namespace.
#[derive(Debug)]
pub(super) struct Ipv6Defrag {
    pub(super) table: Table<V6Key, V6Ext>,
}

/// `ipv6_ext_hdr`: the next-header values the kernel walks as extension headers
/// (ESP is not one).
fn is_ext_hdr(nh: u8) -> bool {
    matches!(
        nh,
        NEXTHDR_HOP
            | NEXTHDR_ROUTING
            | NEXTHDR_FRAGMENT
            | NEXTHDR_AUTH
            | NEXTHDR_NONE
            | NEXTHDR_DEST
    )
}

/// Length of the extension header `nh` whose first two bytes are `h`
/// (`ipv6_authlen` / `ipv6_optlen`).
fn ext_len(nh: u8, h: &[u8]) -> usize {
    let n = usize::from(h.get(1).copied().unwrap_or(0));
    if nh == NEXTHDR_AUTH {
        (n + 2) << 2
    } else {
        (n + 1) << 3
    }
}

/// `find_prev_fhdr`: walk the extension headers up to the fragment header. Returns
/// the offset of the next-header byte that names it (modulo 256, see [`V6Ext::nhoff`])
/// and the fragment header's offset; `None` when there is none (not a fragment).
fn find_prev_fhdr(pkt: &[u8]) -> Option<(u8, usize)> {
    let mut nexthdr = *pkt.get(6)?;
    let mut prev_nhoff: u8 = 6;
    let mut start: usize = 40;
    // Signed, as in the kernel: a header running past the packet makes it negative.
    let mut len: i64 = pkt.len() as i64 - 40;
    while nexthdr != NEXTHDR_FRAGMENT {
        if !is_ext_hdr(nexthdr) || nexthdr == NEXTHDR_NONE || len < 2 {
            return None;
        }
        let h = pkt.get(start..start + 2)?;
        let hdrlen = ext_len(nexthdr, h);
        prev_nhoff = (start & 0xff) as u8;
        nexthdr = h[0];
        len -= hdrlen as i64;
        start += hdrlen;
    }
    if len < 0 {
        return None;
    }
    Some((prev_nhoff, start))
}

/// `ipv6frag_thdr_truncated`: a first fragment (offset 0 in every fragment header met)
/// whose upper-layer header is not all present. Extension chains that cannot be
/// walked do not count as truncated.
fn upper_header_truncated(pkt: &[u8], fhoff: usize) -> bool {
    // ipv6_skip_exthdr from the fragment header.
    let mut nh = NEXTHDR_FRAGMENT;
    let mut start = fhoff;
    while is_ext_hdr(nh) {
        if nh == NEXTHDR_NONE {
            return false;
        }
        let Some(h) = pkt.get(start..start + 2) else {
            return false;
        };
        let hdrlen = if nh == NEXTHDR_FRAGMENT {
            let Some(f) = pkt.get(start + 2..start + 4) else {
                return false;
            };
            if u16::from_be_bytes([f[0], f[1]]) & IP6_OFFSET != 0 {
                // Not a first fragment.
                return false;
            }
            8
        } else {
            ext_len(nh, h)
        };
        nh = h[0];
        start += hdrlen;
    }
    let need = match nh {
        NEXTHDR_TCP => 20,
        NEXTHDR_UDP | NEXTHDR_ICMP => 8,
        _ => 1,
    };
    start + need > pkt.len()
}

impl Ipv6Defrag {
    pub(super) fn new() -> Self {
        Ipv6Defrag {
            table: Table::new(IPV6_QUEUE_SIZE),
        }
    }

    /// `ip6frag_expire_frag_queue` for every queue whose lifetime ended. Counts
    /// `Ip6: ReasmFails/ReasmTimeout` only when a fragment was queued (the kernel needs
    /// its ingress device). The ICMPv6 time-exceeded is not produced here.
    #[inline]
    pub(super) fn expire(&mut self, now: Instant, stats: &mut DefragStats) {
        self.table.expire(now, |_, q| {
            if q.ext.inserted {
                stats.ipv6_reasm_fails += 1;
                stats.ipv6_reasm_timeout += 1;
            }
        });
    }

    /// `ipv6_defrag` + `nf_ct_frag6_gather` for one packet.
    pub(super) fn push(
        &mut self,
        now: Instant,
        pkt: &[u8],
        zone: u16,
        sysctls: &Sysctls,
        _stats: &mut DefragStats,
        out: &mut Reassembled,
    ) -> Outcome {
        if pkt.len() < 40 {
            return Outcome::NotFragment;
        }
        // Jumbo payload inhibits the fragment header.
        if pkt[4] == 0 && pkt[5] == 0 {
            return Outcome::NotFragment;
        }
        let Some((nhoff, fhoff)) = find_prev_fhdr(pkt) else {
            return Outcome::NotFragment;
        };
        // RFC 8200 §4.5: the kernel lets such a first fragment through unreassembled.
        if upper_header_truncated(pkt, fhoff) {
            return Outcome::PassThrough;
        }
        let Some(fh) = pkt.get(fhoff..fhoff + 8) else {
            return Outcome::Dropped(DefragDrop::TruncatedHeader);
        };
        let frag_nexthdr = fh[0];
        let frag_off = u16::from_be_bytes([fh[2], fh[3]]);
        let key = V6Key {
            src: pkt[8..24].try_into().unwrap_or([0; 16]),
            dst: pkt[24..40].try_into().unwrap_or([0; 16]),
            id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
            zone,
        };
        let created = self.table.find_or_create(
            key,
            now,
            u64::from(sysctls.nf_conntrack_frag6_high_thresh),
            secs(u64::from(sysctls.nf_conntrack_frag6_timeout)),
            V6Ext::default,
        );
        if !created {
            return Outcome::Dropped(DefragDrop::MemoryLimit);
        }
        let f = Fragment {
            pkt,
            fhoff,
            nhoff,
            frag_nexthdr,
            frag_off,
            truesize: approx_truesize(pkt.len()),
        };
        let Some(step) = self.table.with_queue(&key, |q| queue_fragment(q, &f)) else {
            return Outcome::NotFragment;
        };
        match step {
            QueueStep::PassThrough => {
                // The queue is discarded and the fragment handed on as it is.
                if let Some(q) = self.table.remove(&key) {
                    self.table.recycle(q);
                }
                Outcome::PassThrough
            }
            QueueStep::Step(Step::Held) => Outcome::Held,
            QueueStep::Step(Step::Drop(r)) => Outcome::Dropped(r),
            QueueStep::Step(Step::Kill(r)) => {
                if let Some(q) = self.table.remove(&key) {
                    self.table.recycle(q);
                }
                Outcome::Dropped(r)
            }
            QueueStep::Step(Step::Complete) => {
                let Some(mut q) = self.table.remove(&key) else {
                    return Outcome::NotFragment;
                };
                let r = reassemble(&mut q, out);
                self.table.recycle(q);
                match r {
                    Ok(()) => Outcome::Complete,
                    Err(e) => Outcome::Dropped(e),
                }
            }
        }
    }
}

/// The fragment being queued.
struct Fragment<'a> {
    pkt: &'a [u8],
    fhoff: usize,
    nhoff: u8,
    frag_nexthdr: u8,
    frag_off: u16,
    truesize: u64,
}

/// [`Step`] plus the IPv6-only "discard the queue, pass the fragment on".
enum QueueStep {
    Step(Step),
    PassThrough,
}

/// `nf_ct_frag6_queue`.
fn queue_fragment(q: &mut FragQueue<V6Ext>, f: &Fragment<'_>) -> QueueStep {
    let offset = u32::from(f.frag_off & IP6_OFFSET);
    // Data after the fragment header (the packet is trimmed to 40 + payload length).
    let data_start = f.fhoff + 8;
    let data_len = f.pkt.len().saturating_sub(data_start);
    let end = offset.saturating_add(u32::try_from(data_len).unwrap_or(u32::MAX));
    if end > 65535 {
        return QueueStep::Step(Step::Drop(DefragDrop::OffsetTooLarge));
    }
    if f.frag_off & IP6_MF == 0 {
        if end < q.len || (q.last_in && end != q.len) {
            return QueueStep::Step(Step::Drop(DefragDrop::InconsistentLast {
                queue_discarded: false,
            }));
        }
        q.last_in = true;
        q.len = end;
    } else {
        if end & 7 != 0 {
            return QueueStep::PassThrough;
        }
        if end > q.len {
            if q.last_in {
                return QueueStep::Step(Step::Drop(DefragDrop::BeyondEnd {
                    queue_discarded: false,
                }));
            }
            q.len = end;
        }
    }
    if end == offset {
        return QueueStep::Step(Step::Drop(DefragDrop::Empty {
            queue_discarded: false,
        }));
    }
    let Some(data) = f.pkt.get(data_start..) else {
        return QueueStep::Step(Step::Drop(DefragDrop::TruncatedHeader));
    };
    match q.insert(offset, data, f.truesize) {
        Insert::Dup => return QueueStep::Step(Step::Drop(DefragDrop::Duplicate)),
        Insert::Overlap => return QueueStep::Step(Step::Kill(DefragDrop::Overlap)),
        Insert::Ok => {}
    }
    q.ext.inserted = true;
    // Traffic class ECN bits: the low two bits of the second nibble pair.
    q.ecn |= 1 << ((f.pkt[1] >> 4) & 3);
    let payload_len = u16::try_from(f.pkt.len() - 40).unwrap_or(u16::MAX);
    q.max_size = q.max_size.max(payload_len);
    if offset == 0 {
        q.first_in = true;
        q.ext.nhoff = f.nhoff;
        q.ext.frag_nexthdr = f.frag_nexthdr;
        q.bufs.head.clear();
        q.bufs.head.extend_from_slice(&f.pkt[..f.fhoff]);
    }
    if q.first_in && q.last_in && q.meat == q.len {
        QueueStep::Step(Step::Complete)
    } else {
        QueueStep::Step(Step::Held)
    }
}

/// `nf_ct_frag6_reasm`: build the datagram in `out` from a complete (already removed)
/// queue: the offset-0 fragment's headers without the fragment header, the next
/// header byte that named it set to the fragment header's next header.
fn reassemble(q: &mut FragQueue<V6Ext>, out: &mut Reassembled) -> Result<(), DefragDrop> {
    let ecn = ecn_merge(q.ecn).ok_or(DefragDrop::EcnMismatch)?;
    let hlen = q.bufs.head.len();
    if hlen < 40 {
        return Err(DefragDrop::TruncatedHeader);
    }
    let payload_len = hlen - 40 + q.len as usize;
    if payload_len > 65535 {
        return Err(DefragDrop::Oversize);
    }
    out.buf.clear();
    out.buf.extend_from_slice(&q.bufs.head);
    // The kernel writes at the offset it kept in a u8; it is below the fragment
    // header's offset, so inside the header bytes.
    if let Some(b) = out.buf.get_mut(usize::from(q.ext.nhoff)) {
        *b = q.ext.frag_nexthdr;
    }
    q.assemble(out);
    let h = &mut out.buf;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[1] |= ecn << 4;
    out.max_frag_size = 40 + usize::from(q.max_size);
    Ok(())
}
