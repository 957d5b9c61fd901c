//! Window tracking: is this segment inside what the receiver could accept?
//!
//! Mirrors `tcp_in_window()`, `tcp_init_sender()` and `nf_tcp_store_invalid()` of the
//! kernel's `net/netfilter/nf_conntrack_proto_tcp.c` (kernel-semantics.md §7.6), after
//! Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter". Per direction
//! we keep:
//!
//! * `td_end`    — the highest seq + len sent,
//! * `td_maxend` — the highest ack + window the other side advertised (right edge),
//! * `td_maxwin` — the largest (scaled) window sent, plus SACK slack,
//! * `td_maxack` — the highest ack sent,
//!
//! and check, with modulo-2^32 comparisons:
//!
//! | check | condition                                        | failure           |
//! |-------|--------------------------------------------------|-------------------|
//! | I     | seq ≤ sender.td_maxend                           | INVALID (or the "overshot" IGNORE) |
//! | III   | sack ≤ receiver.td_end                           | INVALID           |
//! | II    | end > sender.td_end − receiver.td_maxwin − 1     | IGNORE            |
//! | IV    | sack > receiver.td_end − MAXACKWINDOW − 1        | IGNORE            |
//!
//! in that order (the kernel tests I, III, II, IV). `be_liberal` (sysctl or the
//! sender's BE_LIBERAL flag) turns any failure into an ACCEPT *without* the updates.
//! NAT sequence adjustment: the ack and SACK lose the other direction's offset
//! (`nf_ct_seq_offset(ct, !dir, ack - 1)`) before the checks, so both directions are
//! compared in the sender's own sequence space.

use super::options::{apply_syn_options, highest_sack};
use super::table::PacketIndex;
use super::{
    after, before, flags, DirState, Segment, TcpConn, TcpReason, TcpState, DIR_FLAG_BE_LIBERAL,
    DIR_FLAG_DATA_UNACK, DIR_FLAG_MAXACK_SET, DIR_FLAG_SACK_PERM, DIR_FLAG_WINDOW_SCALE,
};
use crate::tuple::Dir;

/// kernel `MAXACKWINCONST`: the smallest window assumed for check IV.
const MAX_ACK_WIN_CONST: u32 = 66_000;

/// The result of the window check (kernel `enum nf_ct_tcp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// In window (or a failure forgiven by be_liberal): go on to the state update.
    Accept,
    /// Accept the packet but change nothing else (no state change, no refresh).
    Ignore(TcpReason),
    /// The packet is INVALID.
    Invalid(TcpReason),
}

/// kernel `MAXACKWINDOW(sender)`: max(sender td_maxwin, 66000).
#[inline]
fn max_ack_window(sender: &DirState) -> u32 {
    sender.td_maxwin.max(MAX_ACK_WIN_CONST)
}

/// kernel `nf_tcp_store_invalid()`: a failed check becomes ACCEPT when the sender's
/// direction or the netns is liberal; otherwise the given verdict.
#[inline]
fn fail(sender: &DirState, liberal_sysctl: bool, v: Verdict) -> Verdict {
    if sender.flags & DIR_FLAG_BE_LIBERAL != 0 || liberal_sysctl {
        Verdict::Accept
    } else {
        v
    }
}

/// kernel `tcp_init_sender()`: (re)initialise the sender from a SYN or SYN/ACK.
fn init_sender(
    sender: &mut DirState,
    receiver: &mut DirState,
    seg: &Segment<'_>,
    end: u32,
    dir: Dir,
) {
    sender.td_end = end;
    sender.td_maxend = end;
    // kernel: the raw (unscaled) window of the SYN, at least 1.
    sender.td_maxwin = u32::from(seg.win).max(1);
    apply_syn_options(sender, seg.opts);
    // RFC 7323: scaling is on only if both SYNs carried the option. The decision is
    // made when the answering (REPLY) side's SYN is seen.
    if dir == Dir::Reply
        && !(sender.flags & DIR_FLAG_WINDOW_SCALE != 0
            && receiver.flags & DIR_FLAG_WINDOW_SCALE != 0)
    {
        sender.td_scale = 0;
        receiver.td_scale = 0;
    }
}

/// kernel `tcp_in_window()`: check the segment against the tracked windows and, if it
/// passes, update them and the retransmission counter.
#[inline]
pub(super) fn tcp_in_window(
    conn: &mut TcpConn,
    dir: Dir,
    index: PacketIndex,
    seg: &Segment<'_>,
    liberal_sysctl: bool,
    seqadj: Option<&crate::conntrack::seqadj::SeqAdj>,
) -> Verdict {
    let state = conn.state;
    let [orig, reply] = &mut conn.seen;
    let (sender, receiver) = match dir {
        Dir::Original => (orig, reply),
        Dir::Reply => (reply, orig),
    };

    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut sack = ack;
    let win_raw = seg.win;
    let mut win = u32::from(win_raw);
    let mut end = seg.end();

    // kernel: SACK blocks count only if the receiver offered SACK_PERM on its SYN.
    if receiver.flags & DIR_FLAG_SACK_PERM != 0 {
        sack = highest_sack(seg.opts, sack);
    }
    // kernel: take NAT sequence mangling into account.
    if let Some(sa) = seqadj {
        let off = sa.offset(dir.opposite(), ack.wrapping_sub(1)) as u32;
        ack = ack.wrapping_sub(off);
        sack = sack.wrapping_sub(off);
    }

    if sender.td_maxwin == 0 {
        // First packet seen from this direction.
        if seg.has(flags::SYN) {
            init_sender(sender, receiver, seg, end, dir);
            // kernel: a bare SYN from the REPLY side (simultaneous open) has nothing to
            // check yet.
            if !seg.has(flags::ACK) {
                return Verdict::Accept;
            }
        } else {
            // Mid-stream pickup of this direction: we have no history, so trust the
            // packet for the sender's data.
            sender.td_end = end;
            let swin = win << sender.td_scale.min(super::options::MAX_WSCALE);
            sender.td_maxwin = swin.max(1);
            sender.td_maxend = end.wrapping_add(sender.td_maxwin);
            if receiver.td_maxwin == 0 {
                // Nothing from the other side yet either: make III and IV pass until it
                // shows up.
                receiver.td_end = sack;
                receiver.td_maxend = sack;
            } else if sack == receiver.td_end.wrapping_add(1) {
                // Likely the answer to a keep-alive (which sends seq = td_end − 1 with
                // one garbage byte): needed for III.
                receiver.td_end = receiver.td_end.wrapping_add(1);
            }
        }
    } else if seg.has(flags::SYN)
        && after(end, sender.td_end)
        && matches!(state, TcpState::SynSent | TcpState::SynRecv)
    {
        // RFC 793: a reinitialised TCP may reuse the connection with a larger ISN. Start
        // this direction over, as for the first SYN(/ACK).
        init_sender(sender, receiver, seg, end, dir);
        if dir == Dir::Reply && !seg.has(flags::ACK) {
            return Verdict::Accept;
        }
    }

    if !seg.has(flags::ACK) {
        // No ACK: pretend it acknowledged exactly what the receiver sent.
        ack = receiver.td_end;
        sack = ack;
    } else if seg.has(flags::RST) && ack == 0 {
        // Broken stacks send RST+ACK with ack 0: treat as above.
        ack = receiver.td_end;
        sack = ack;
    }

    if seg.has(flags::RST) && seq == 0 && state == TcpState::SynSent {
        // An RST answering a SYN may carry seq 0: place it at the sender's end.
        seq = sender.td_end;
        end = seq;
    }

    // kernel: check I, seq ≤ td_maxend.
    if !before(seq, sender.td_maxend.wrapping_add(1)) {
        let overshot = end.wrapping_sub(sender.td_maxend).wrapping_add(1);
        let ack_ok = after(
            sack,
            receiver
                .td_end
                .wrapping_sub(max_ack_window(sender))
                .wrapping_sub(1),
        );
        let in_recv_win = receiver.td_maxwin != 0
            && after(
                end,
                sender
                    .td_end
                    .wrapping_sub(receiver.td_maxwin)
                    .wrapping_sub(1),
            );
        if in_recv_win
            && ack_ok
            && overshot <= receiver.td_maxwin
            && before(sack, receiver.td_end.wrapping_add(1))
        {
            // Some stacks send a little more than the advertised window. If the ruleset
            // lets it through and the peer acks it, every later ACK would fail III, so
            // remember the data even though the packet is only ignored.
            sender.td_end = end;
            sender.flags |= DIR_FLAG_DATA_UNACK;
            return fail(
                sender,
                liberal_sysctl,
                Verdict::Ignore(TcpReason::Overshot(overshot)),
            );
        }
        return fail(
            sender,
            liberal_sysctl,
            Verdict::Invalid(TcpReason::SeqOverUpperBound(
                sender.td_maxend.wrapping_add(1),
            )),
        );
    }

    // kernel: check III, sack ≤ receiver td_end — it cannot ack what was never sent.
    if !before(sack, receiver.td_end.wrapping_add(1)) {
        return fail(
            sender,
            liberal_sysctl,
            Verdict::Invalid(TcpReason::AckOverUpperBound(
                receiver.td_end.wrapping_add(1),
            )),
        );
    }

    // kernel: check II, the end must lie in the receive window (skipped while the
    // receiver's window is unknown). Failing means old data retransmitted: ignore.
    let lower = sender
        .td_end
        .wrapping_sub(receiver.td_maxwin)
        .wrapping_sub(1);
    if receiver.td_maxwin != 0 && !after(end, lower) {
        return fail(
            sender,
            liberal_sysctl,
            Verdict::Ignore(TcpReason::SeqUnderLowerBound(lower)),
        );
    }

    // kernel: check IV, the ack must not be older than one maximal window: a very
    // delayed ACK, ignore.
    let ack_lower = receiver
        .td_end
        .wrapping_sub(max_ack_window(sender))
        .wrapping_sub(1);
    if !after(sack, ack_lower) {
        return fail(
            sender,
            liberal_sysctl,
            Verdict::Ignore(TcpReason::AckUnderLowerBound(ack_lower)),
        );
    }

    // In window. RFC 7323: the window field of a SYN is never scaled.
    if !seg.has(flags::SYN) {
        win <<= sender.td_scale.min(super::options::MAX_WSCALE);
    }

    // Update the sender: its largest window (plus the SACKed slack), its data end, its
    // highest ack.
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    if sender.td_maxwin < swin {
        sender.td_maxwin = swin;
    }
    if after(end, sender.td_end) {
        sender.td_end = end;
        sender.flags |= DIR_FLAG_DATA_UNACK;
    }
    if seg.has(flags::ACK) {
        if sender.flags & DIR_FLAG_MAXACK_SET == 0 {
            sender.td_maxack = ack;
            sender.flags |= DIR_FLAG_MAXACK_SET;
        } else if after(ack, sender.td_maxack) {
            sender.td_maxack = ack;
        }
    }

    // Update the receiver: data past the sender's right edge widens the receiver's
    // window; this ack + window is the receiver's new right edge.
    if receiver.td_maxwin != 0 && after(end, sender.td_maxend) {
        receiver.td_maxwin = receiver
            .td_maxwin
            .wrapping_add(end.wrapping_sub(sender.td_maxend));
    }
    if after(sack.wrapping_add(win), receiver.td_maxend.wrapping_sub(1)) {
        receiver.td_maxend = sack.wrapping_add(win);
        if win == 0 {
            receiver.td_maxend = receiver.td_maxend.wrapping_add(1);
        }
    }
    if ack == receiver.td_end {
        receiver.flags &= !DIR_FLAG_DATA_UNACK;
    }

    // Retransmission counter: only data/pure-ACK packets; an exact repeat of the last
    // recorded one (same direction, seq, ack, end and raw window) counts.
    if index == PacketIndex::Ack {
        if conn.last_dir == dir
            && conn.last_seq == seq
            && conn.last_ack == ack
            && conn.last_end == end
            && conn.last_win == win_raw
        {
            conn.retrans = conn.retrans.wrapping_add(1);
        } else {
            conn.last_dir = dir;
            conn.last_seq = seq;
            conn.last_ack = ack;
            conn.last_end = end;
            conn.last_win = win_raw;
            conn.retrans = 0;
        }
    }

    Verdict::Accept
}
