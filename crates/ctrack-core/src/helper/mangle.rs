//! Payload rewriting for NAT helpers (kernel `nf_nat_helper.c`,
//! `__nf_nat_mangle_tcp_packet` and `mangle_contents`; kernel-semantics.md §12.5).
//!
//! A helper replaces a run of bytes in a TCP payload (the address and port text of an
//! FTP command) with text of possibly another length. The packet grows or shrinks; the
//! IPv4 total length and header checksum or the IPv6 payload length are set again, and
//! the TCP checksum is computed over the new segment from scratch (the kernel hands the
//! packet on as CHECKSUM_PARTIAL and the checksum is completed on transmit: the bytes on
//! the wire carry the full checksum computed here). The caller records the length change
//! in the entry's sequence adjustment ([`crate::conntrack::seqadj`]).
//!
//! (The kernel's `nf_nat_helper.c` belongs to NAT; here it sits with the helpers, its
//! only users.)

use crate::packet::checksum;
use crate::tuple::{proto, Addr, Family};

/// The largest IP packet (kernel `enlarge_skb`: `skb->len + extra > 65535` fails).
const MAX_IP_LEN: usize = 65_535;

/// Replace `match_len` bytes at `match_off` of the TCP payload of `pkt` (an IPv4 or
/// IPv6 packet from its IP header, TCP header at `l4_off`) with `rep`. Returns the
/// length change, or `None` when the packet cannot be rewritten (offsets outside the
/// payload, a result above 65535 bytes, not IPv4/IPv6): the kernel then drops it
/// ("cannot mangle packet").
pub fn mangle_tcp(
    pkt: &mut Vec<u8>,
    l4_off: usize,
    match_off: usize,
    match_len: usize,
    rep: &[u8],
) -> Option<i32> {
    let family = match pkt.first()? >> 4 {
        4 => Family::V4,
        6 => Family::V6,
        _ => return None,
    };
    let doff = usize::from(pkt.get(l4_off + 12)? >> 4) * 4;
    let start = l4_off.checked_add(doff)?.checked_add(match_off)?;
    let end = start.checked_add(match_len)?;
    if doff < 20 || end > pkt.len() {
        return None;
    }
    let new_len = pkt.len() - match_len + rep.len();
    if new_len > MAX_IP_LEN {
        return None;
    }
    pkt.splice(start..end, rep.iter().copied());
    let len16 = new_len as u16;
    let (src, dst) = match family {
        Family::V4 => {
            if pkt.len() < 20 {
                return None;
            }
            pkt[2..4].copy_from_slice(&len16.to_be_bytes());
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            pkt[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::compute(0, pkt.get(..ihl)?);
            pkt[10..12].copy_from_slice(&c.to_be_bytes());
            (addr(&pkt[12..16]), addr(&pkt[16..20]))
        }
        Family::V6 => {
            if pkt.len() < 40 {
                return None;
            }
            let plen = (new_len - 40) as u16;
            pkt[4..6].copy_from_slice(&plen.to_be_bytes());
            (addr(&pkt[8..24]), addr(&pkt[24..40]))
        }
    };
    tcp_checksum(pkt, l4_off, family, &src, &dst);
    Some(rep.len() as i32 - match_len as i32)
}

fn addr(b: &[u8]) -> Addr {
    let mut a = Addr::default();
    a.0[..b.len()].copy_from_slice(b);
    a
}

/// Compute the TCP checksum of the segment at `l4_off` from scratch.
fn tcp_checksum(pkt: &mut [u8], l4_off: usize, family: Family, src: &Addr, dst: &Addr) {
    let Some(seg) = pkt.get_mut(l4_off..) else {
        return;
    };
    if seg.len() < 20 {
        return;
    }
    seg[16..18].copy_from_slice(&[0, 0]);
    let len = u32::try_from(seg.len()).unwrap_or(u32::MAX);
    let acc = checksum::pseudo_header(family, src, dst, len, proto::TCP);
    let c = checksum::compute(acc, seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests;
