//! The packet index and the two TCP transition tables.
//!
//! Mirrors `get_conntrack_index()` and the `tcp_conntracks[2][6][TCP_CONNTRACK_MAX]`
//! table of the kernel's `net/netfilter/nf_conntrack_proto_tcp.c`
//! (kernel-semantics.md §7.3, §7.4). The table is a fact about the kernel and is
//! reproduced cell for cell: rows are the packet index, columns the old state, one
//! grid per direction. All 120 cells were checked on the live 6.18.44 kernel.
//!
//! The table alone is not the whole story: the special cases of §7.5 (reopen,
//! resync, challenge ACK, simultaneous open, RST rules) and the window check of §7.6
//! are applied to the cell's result by [`super::TcpConn::packet`].

use super::{flags, TcpState};
use crate::tuple::Dir;

/// Which row of the transition table a packet uses (kernel `enum tcp_bit_set`, chosen
/// by `get_conntrack_index()`). The numbers are the kernel's: they appear in the log
/// text "packet (index %d) in dir %d ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketIndex {
    /// SYN without ACK (`TCP_SYN_SET`).
    Syn = 0,
    /// SYN with ACK (`TCP_SYNACK_SET`).
    SynAck = 1,
    /// FIN, without SYN or RST (`TCP_FIN_SET`); FIN+ACK lands here.
    Fin = 2,
    /// ACK without SYN, FIN or RST (`TCP_ACK_SET`): pure ACKs and data.
    Ack = 3,
    /// RST, whatever else is set (`TCP_RST_SET`); RST+ACK lands here.
    Rst = 4,
    /// None of RST, SYN, FIN, ACK (`TCP_NONE_SET`). `tcp_error` rejects such packets
    /// before the table is consulted, so this row is reached only in tests.
    None = 5,
}

impl PacketIndex {
    /// The row for a TCP flag byte. First match wins: RST, then SYN (SYN/ACK if ACK is
    /// also set), then FIN, then ACK (kernel: `get_conntrack_index()`, §7.3).
    pub fn of(flag_byte: u8) -> PacketIndex {
        if flag_byte & flags::RST != 0 {
            PacketIndex::Rst
        } else if flag_byte & flags::SYN != 0 {
            if flag_byte & flags::ACK != 0 {
                PacketIndex::SynAck
            } else {
                PacketIndex::Syn
            }
        } else if flag_byte & flags::FIN != 0 {
            PacketIndex::Fin
        } else if flag_byte & flags::ACK != 0 {
            PacketIndex::Ack
        } else {
            PacketIndex::None
        }
    }

    /// The kernel's number for this index (0..=5).
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// One cell of the transition table: a state, `sIV` or `sIG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Move to this state (subject to the special cases and the window check).
    To(TcpState),
    /// `sIV` (`TCP_CONNTRACK_MAX`): the packet is INVALID.
    Invalid,
    /// `sIG` (`TCP_CONNTRACK_IGNORE`): accept the packet without state change or refresh.
    Ignore,
}

// Short names so the grid reads like the kernel's.
const SS: Cell = Cell::To(TcpState::SynSent);
const SR: Cell = Cell::To(TcpState::SynRecv);
const ES: Cell = Cell::To(TcpState::Established);
const FW: Cell = Cell::To(TcpState::FinWait);
const CW: Cell = Cell::To(TcpState::CloseWait);
const LA: Cell = Cell::To(TcpState::LastAck);
const TW: Cell = Cell::To(TcpState::TimeWait);
const CL: Cell = Cell::To(TcpState::Close);
const S2: Cell = Cell::To(TcpState::SynSent2);
const IV: Cell = Cell::Invalid;
const IG: Cell = Cell::Ignore;

/// `TRANSITIONS[dir][index][old_state]` (kernel `tcp_conntracks`, §7.4).
///
/// NONE is never a result, only a column (the state of an entry before its first
/// packet went through the state machine).
#[rustfmt::skip]
pub(crate) const TRANSITIONS: [[[Cell; 10]; 6]; 2] = [
    // ORIGINAL: the sender is the side that opened the entry.
    [
        //          NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* syn    */ [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // NO: a new connection. SS, S2: retransmitted SYN. SR..LA: a SYN inside a live
        // connection: either the peer answers with an RST, or we are out of sync and
        // the SYN/ACK will resync us (§7.5), so let it through. TW, CL: reopen
        // (RFC 1122), subject to the CLOSE_INIT / last-RST test of §7.5.
        /* synack */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // The opener does not send SYN/ACK, except in SR (stays) and in a simultaneous
        // open (S2 -> SR).
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // No FIN before the handshake got a SYN/ACK (NO, SS, S2). SR, ES: close starts.
        // FW, CW: FIN from both sides. LA: retransmitted FIN. TW, CL: stay.
        /* ack    */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // NO: mid-stream pickup (tcp_loose). SS, S2: no SYN/ACK seen yet, so no ACK.
        // SR: handshake completes. FW -> CW: the FIN is acknowledged. LA -> TW: the
        // last ACK. TW, CL: retransmissions, stay.
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // Any RST closes (the RST rules of §7.5 may still refuse it or keep ES).
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
        // No RST/SYN/FIN/ACK: always invalid.
    ],
    // REPLY: the sender is the side that answered.
    [
        //          NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* syn    */ [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // NO: never reached. SS -> S2: simultaneous open; S2: its retransmission.
        // SR..LA, CL: a server does not send a bare SYN. TW: reopen with the roles of
        // client and server swapped.
        /* synack */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // SS, S2 -> SR: the normal (or simultaneous) open. Elsewhere a retransmitted
        // or late SYN/ACK, possibly answering a SYN we ignored: ignore (resync, §7.5).
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // Same as ORIGINAL: no FIN before the SYN/ACK; close starts in SR and ES.
        /* ack    */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // SS, S2: maybe a half-open connection or a challenge ACK: ignore. SR: may
        // answer a late retransmitted SYN, stay. FW -> CW, LA -> TW as above.
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // Any RST closes, as in ORIGINAL.
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
        // Always invalid.
    ],
];

/// The table cell for a packet of `index` in direction `dir` when the entry is in `old`.
#[inline]
pub(crate) fn next(dir: Dir, index: PacketIndex, old: TcpState) -> Cell {
    // The three indices are enum discriminants (2, 6 and 10 values): always in range.
    TRANSITIONS[dir.index()][usize::from(index.number())][usize::from(old.number())]
}
