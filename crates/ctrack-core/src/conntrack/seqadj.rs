//! TCP sequence adjustment (kernel `nf_conntrack_seqadj.c`; kernel-semantics.md §12.5).
//!
//! When a NAT helper changes the length of a TCP payload (FTP `PORT 10,1,0,1,...`
//! rewritten to `PORT 10,2,0,254,...`), the two ends no longer agree on sequence
//! numbers: the receiver counts the new length, the sender the old one. Per direction
//! the entry keeps where the last change happened (`correction_pos`, a sequence number
//! in the *sender's* space) and the total offset before and after it; every packet of
//! the entry is then corrected at the confirm hook:
//!
//! * its `seq` gets the offset of its own direction (after or before the correction
//!   position);
//! * its `ack` (and each SACK block edge) loses the offset of the other direction;
//! * the TCP checksum is updated incrementally (RFC 1624).
//!
//! The TCP window tracker, which runs at conntrack-in before any of this, sees the
//! packet as the sender wrote it: it takes the other direction's offset out of `ack`
//! and SACK before its checks (`tcp_in_window`, [`SeqAdj::offset`]).
//!
//! The state lives in the entry's extensions. The kernel allocates its seqadj
//! extension when an entry has both a helper and a NAT binding that changed a tuple
//! (`nf_nat_setup_info`, `nft_ct_helper_obj_eval`), which is exactly when a NAT helper
//! can change a length; here it is created by the first change (all offsets zero
//! before it, so no state and a zero state behave alike).

use crate::nat::rewrite::csum_replace;
use crate::tuple::Dir;

/// TCP option kinds walked by the SACK adjustment.
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;
/// Bytes per SACK block (two sequence numbers).
const SACK_BLOCK: usize = 8;

/// `a` is after `b` in sequence space (kernel `after()`).
#[inline]
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// One direction's adjustment (kernel `struct nf_ct_seqadj`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqAdjDir {
    /// Sequence number (sender's space) of the last payload whose length changed.
    pub correction_pos: u32,
    /// Offset for sequence numbers up to `correction_pos`.
    pub offset_before: i32,
    /// Offset for sequence numbers after `correction_pos`.
    pub offset_after: i32,
}

impl SeqAdjDir {
    /// The offset for `seq` (kernel `nf_ct_seq_offset` on one direction).
    #[inline]
    pub fn offset(&self, seq: u32) -> i32 {
        if after(seq, self.correction_pos) {
            self.offset_after
        } else {
            self.offset_before
        }
    }

    /// The offset to take out of an ack (or SACK edge) the other side sent: the ack is
    /// in the adjusted space, so it is compared after removing `offset_before`
    /// (kernel `nf_ct_seq_adjust`, `nf_ct_sack_block_adjust`).
    #[inline]
    fn ack_offset(&self, ack: u32) -> i32 {
        if after(
            ack.wrapping_sub(self.offset_before as u32),
            self.correction_pos,
        ) {
            self.offset_after
        } else {
            self.offset_before
        }
    }
}

/// The sequence adjustment of one entry, both directions (kernel
/// `struct nf_conn_seqadj`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqAdj {
    /// Indexed by [`Dir::index`].
    pub dirs: [SeqAdjDir; 2],
}

impl SeqAdj {
    /// Record that the payload of a packet of direction `dir` starting at sender
    /// sequence number `seq` changed length by `off` bytes (kernel
    /// `nf_ct_seqadj_set`). A new correction position is taken only for the first
    /// change or a packet after the current position (a retransmission of an earlier
    /// rewritten packet changes nothing). Returns whether anything was recorded
    /// (`off` ≠ 0): the caller sets SEQ_ADJUST.
    pub fn set(&mut self, dir: Dir, seq: u32, off: i32) -> bool {
        if off == 0 {
            return false;
        }
        let w = &mut self.dirs[dir.index()];
        if w.offset_before == w.offset_after || after(seq, w.correction_pos) {
            w.correction_pos = seq;
            w.offset_before = w.offset_after;
            w.offset_after = w.offset_after.wrapping_add(off);
        }
        true
    }

    /// The offset of direction `dir` for sender sequence number `seq` (kernel
    /// `nf_ct_seq_offset`). `tcp_in_window` subtracts `offset(!dir, ack - 1)` from a
    /// packet's ack and SACK.
    pub fn offset(&self, dir: Dir, seq: u32) -> i32 {
        self.dirs[dir.index()].offset(seq)
    }

    /// Adjust the TCP header at `l4` (from the TCP header to the end of the packet) of
    /// a packet of direction `dir` (kernel `nf_ct_seq_adjust`): seq, then, if ACK is
    /// set, ack and the SACK blocks. `false` when the header is too short or a TCP
    /// option is malformed (the kernel then drops the packet, counting `drop`); the
    /// seq and ack may already have been written then, as in the kernel.
    pub fn adjust(&self, l4: &mut [u8], dir: Dir) -> bool {
        if l4.len() < 20 {
            return false;
        }
        let this = &self.dirs[dir.index()];
        let other = &self.dirs[dir.opposite().index()];
        let seq = rd32(l4, 4);
        let new_seq = seq.wrapping_add(this.offset(seq) as u32);
        replace32(l4, 4, new_seq);
        if l4[13] & 0x10 == 0 {
            return true;
        }
        let ack = rd32(l4, 8);
        let new_ack = ack.wrapping_sub(other.ack_offset(ack) as u32);
        replace32(l4, 8, new_ack);
        sack_adjust(l4, other)
    }
}

fn rd32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Write `v` at `off` of a TCP header and update its checksum incrementally.
fn replace32(l4: &mut [u8], off: usize, v: u32) {
    let (Some(old), Some(ck)) = (l4.get(off..off + 4), l4.get(16..18)) else {
        return;
    };
    let check = u16::from_be_bytes([ck[0], ck[1]]);
    let new = v.to_be_bytes();
    let check = csum_replace(check, old, &new);
    l4[off..off + 4].copy_from_slice(&new);
    l4[16..18].copy_from_slice(&check.to_be_bytes());
}

/// Walk the TCP options and adjust every SACK block by the other direction's offsets
/// (kernel `nf_ct_sack_adjust`). `false` on a partial option.
fn sack_adjust(l4: &mut [u8], other: &SeqAdjDir) -> bool {
    let end = (usize::from(l4[12] >> 4) * 4).min(l4.len());
    let mut off = 20;
    while off < end {
        match l4[off] {
            OPT_EOL => return true,
            OPT_NOP => off += 1,
            kind => {
                let len = l4.get(off + 1).map_or(0, |&l| usize::from(l));
                if off + 1 == end || off + len > end || len < 2 {
                    return false;
                }
                if kind == OPT_SACK && len >= 2 + SACK_BLOCK && (len - 2).is_multiple_of(SACK_BLOCK)
                {
                    let mut b = off + 2;
                    while b < off + len {
                        for edge in [b, b + 4] {
                            let v = rd32(l4, edge);
                            replace32(l4, edge, v.wrapping_sub(other.ack_offset(v) as u32));
                        }
                        b += SACK_BLOCK;
                    }
                }
                off += len;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests;
