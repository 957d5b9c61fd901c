//! TCP tracker: header validation, the state machine, window tracking, timeouts.
//!
//! Mirrors the kernel's `net/netfilter/nf_conntrack_proto_tcp.c` — `tcp_error()`,
//! `tcp_new()`, `nf_conntrack_tcp_packet()`, `tcp_in_window()`, `tcp_options()`,
//! `tcp_sack()`, `nf_tcp_handle_invalid()`, `tcp_can_early_drop()` — and the data
//! layout of `include/linux/netfilter/nf_conntrack_tcp.h`. Specification:
//! kernel-semantics.md §7 (7.1 states and flags, 7.2 header validation, 7.3 packet
//! index, 7.4 transition tables, 7.5 special cases, 7.6 window tracking, 7.7 after
//! acceptance, 7.8 ASSURED, 7.9 the RST timeout of 6.18.44, 7.10), §4, §6, §15a, §15b.
//!
//! Files:
//! * `mod.rs` — [`TcpState`], [`TcpReason`], [`TcpConn`]: `error`, `new`, `packet`,
//!   the special cases of §7.5, `nf_tcp_handle_invalid` and the timeout choice.
//! * `table.rs` — [`PacketIndex`] and the two transition tables.
//! * `window.rs` — `tcp_in_window` (§7.6).
//! * `options.rs` — SYN options and SACK blocks.
//!
//! Target: the live 6.18.44 kernel. Where it differs from the 6.12.117 source (any
//! accepted RST takes the CLOSE timeout, §7.9) the live kernel is followed.
//! Not modelled: synproxy (its SYN_SENT keep-alive exception), NAT sequence adjustment
//! in the window check, cttimeout policies (the sysctls are always the timeout table).

mod options;
mod table;
mod window;

#[cfg(test)]
mod tests;

pub use table::PacketIndex;

use super::{Accepted, Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::Packet;
use crate::status::Status;
use crate::sysctl::Sysctls;
use crate::time::{secs, Duration, Instant};
use crate::tuple::Dir;
use core::fmt;
use table::Cell;
use window::Verdict;

/// TCP header flag bits (the 13th byte of the header).
pub(crate) mod flags {
    /// FIN.
    pub(crate) const FIN: u8 = 0x01;
    /// SYN.
    pub(crate) const SYN: u8 = 0x02;
    /// RST.
    pub(crate) const RST: u8 = 0x04;
    /// PSH.
    pub(crate) const PSH: u8 = 0x08;
    /// ACK.
    pub(crate) const ACK: u8 = 0x10;
    /// URG.
    pub(crate) const URG: u8 = 0x20;
    /// ECE.
    pub(crate) const ECE: u8 = 0x40;
    /// CWR.
    pub(crate) const CWR: u8 = 0x80;
}

// Per-direction flags (kernel `IP_CT_TCP_FLAG_*`, §7.1).
/// This side sent the window-scale option.
const DIR_FLAG_WINDOW_SCALE: u8 = 0x01;
/// This side sent SACK-permitted.
const DIR_FLAG_SACK_PERM: u8 = 0x02;
/// This side sent the first FIN.
const DIR_FLAG_CLOSE_INIT: u8 = 0x04;
/// Never window-check this side's packets.
const DIR_FLAG_BE_LIBERAL: u8 = 0x08;
/// This side has data the other side has not acknowledged.
const DIR_FLAG_DATA_UNACK: u8 = 0x10;
/// `td_maxack` holds a value.
const DIR_FLAG_MAXACK_SET: u8 = 0x20;
// Flags kept in `last_flags` only.
/// An RFC 5961 challenge ACK may follow (SYN ignored in LAST_ACK).
const LAST_FLAG_EXP_CHALLENGE_ACK: u8 = 0x40;
/// A REPLY SYN put the entry in SYN_SENT2.
const LAST_FLAG_SIMULTANEOUS_OPEN: u8 = 0x80;

/// SYN_SENT2 has no sysctl: the kernel's built-in 2 minutes (§1).
const SYN_SENT2_TIMEOUT_SECS: u32 = 120;
/// `nf_tcp_handle_invalid` lowers the timeout only if at least this much remains.
const HANDLE_INVALID_MIN_REMAINING_SECS: u64 = 120;
/// Size of the fixed TCP header.
const TCP_HDR_LEN: usize = 20;

/// `a` is before `b` in sequence space (kernel `before()`: signed 32-bit difference).
#[inline]
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is after `b` in sequence space (kernel `after()`).
#[inline]
pub(crate) fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// TCP connection states (kernel `enum tcp_conntrack`, values 0..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TcpState {
    /// No packet processed yet (only between `new` and the first `packet`).
    #[default]
    None = 0,
    /// A SYN was seen.
    SynSent = 1,
    /// A SYN/ACK was seen.
    SynRecv = 2,
    /// The handshake completed (or a mid-stream pickup).
    Established = 3,
    /// A FIN was seen.
    FinWait = 4,
    /// The first FIN was acknowledged.
    CloseWait = 5,
    /// FINs from both sides were seen.
    LastAck = 6,
    /// The last ACK was seen.
    TimeWait = 7,
    /// Closed by an RST.
    Close = 8,
    /// A SYN from the REPLY side after the original SYN: simultaneous open (the kernel
    /// reuses the value of the obsolete LISTEN state).
    SynSent2 = 9,
}

impl TcpState {
    /// The word `conntrack -L` and /proc print (kernel `tcp_conntrack_names`).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }

    /// The kernel's number (`CTA_PROTOINFO_TCP_STATE`).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The state's timeout from the sysctls, in seconds (NONE uses SYN_SENT's, as the
    /// kernel's table does).
    fn timeout_secs(self, s: &Sysctls) -> u32 {
        match self {
            TcpState::None | TcpState::SynSent => s.nf_conntrack_tcp_timeout_syn_sent,
            TcpState::SynRecv => s.nf_conntrack_tcp_timeout_syn_recv,
            TcpState::Established => s.nf_conntrack_tcp_timeout_established,
            TcpState::FinWait => s.nf_conntrack_tcp_timeout_fin_wait,
            TcpState::CloseWait => s.nf_conntrack_tcp_timeout_close_wait,
            TcpState::LastAck => s.nf_conntrack_tcp_timeout_last_ack,
            TcpState::TimeWait => s.nf_conntrack_tcp_timeout_time_wait,
            TcpState::Close => s.nf_conntrack_tcp_timeout_close,
            TcpState::SynSent2 => SYN_SENT2_TIMEOUT_SECS,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the TCP tracker refused or ignored a packet: one variant per kernel check, shown
/// with the kernel's log wording (the text after `nf_ct_proto_6: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpReason {
    /// The 20-byte header cannot be read. The kernel returns -NF_ACCEPT here without
    /// logging (see [`TcpReason::logged`]); shown as "truncated packet".
    ShortHeader,
    /// `doff*4 < 20` or the header is longer than the L4 data: "truncated packet".
    Truncated,
    /// The checksum is wrong (PRE_ROUTING, nf_conntrack_checksum=1): "bad checksum".
    BadChecksum,
    /// The FIN/SYN/RST/ACK/URG combination is not one of the nine valid ones:
    /// "invalid tcp flag combination".
    InvalidFlags,
    /// The first packet of an entry is neither a SYN nor an ACK: "invalid new".
    InvalidNew,
    /// The first packet is an ACK but `nf_conntrack_tcp_loose=0`. The kernel refuses
    /// it without logging.
    NoPickup,
    /// The table says IGNORE: "packet (index %d) in dir %d ignored, state %s".
    Ignored {
        /// The packet's row.
        index: PacketIndex,
        /// Its direction.
        dir: Dir,
        /// The state before the packet.
        state: TcpState,
    },
    /// The table says INVALID: "packet (index %d) in dir %d invalid, state %s".
    InvalidTransition {
        /// The packet's row.
        index: PacketIndex,
        /// Its direction.
        dir: Dir,
        /// The state before the packet.
        state: TcpState,
    },
    /// An RST whose seq is before the peer's highest ack: "invalid rst".
    InvalidRst,
    /// An ACK in LAST_ACK answering an ignored SYN (RFC 5961): "challenge-ack ignored".
    ChallengeAck,
    /// Data past the receive window by this many bytes, remembered but ignored:
    /// "%u bytes more than expected".
    Overshot(u32),
    /// Window check I: "SEQ is over upper bound %u (over the window of the receiver)".
    SeqOverUpperBound(u32),
    /// Window check III: "ACK is over upper bound %u (ACKed data not seen yet)".
    AckOverUpperBound(u32),
    /// Window check II: "SEQ is under lower bound %u (already ACKed data retransmitted)".
    SeqUnderLowerBound(u32),
    /// Window check IV: "ignored ACK under lower bound %u (possible overly delayed)".
    AckUnderLowerBound(u32),
    /// `nf_tcp_handle_invalid` cut the timeout of an out-of-window FIN/RST to UNACK:
    /// "lowered timeout to UNACK". The kernel logs it as a second line after the window
    /// reason; the tracker returns the window reason and signals the lowering through
    /// `TrackerResult::Invalid::set_timeout`.
    LoweredTimeout,
}

impl TcpReason {
    /// The packet was accepted (IGNORE: keeps its ct, no state change, no refresh), the
    /// reason only being logged; `false` means the packet is INVALID.
    pub fn is_ignore(&self) -> bool {
        matches!(
            self,
            TcpReason::Ignored { .. }
                | TcpReason::ChallengeAck
                | TcpReason::Overshot(_)
                | TcpReason::SeqUnderLowerBound(_)
                | TcpReason::AckUnderLowerBound(_)
        )
    }

    /// Whether the kernel writes this reason to the log (`nf_conntrack_log_invalid`).
    /// [`TcpReason::ShortHeader`] and [`TcpReason::NoPickup`] are silent.
    pub fn logged(&self) -> bool {
        !matches!(self, TcpReason::ShortHeader | TcpReason::NoPickup)
    }
}

impl fmt::Display for TcpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TcpReason::ShortHeader | TcpReason::Truncated => f.write_str("truncated packet"),
            TcpReason::BadChecksum => f.write_str("bad checksum"),
            TcpReason::InvalidFlags => f.write_str("invalid tcp flag combination"),
            TcpReason::InvalidNew => f.write_str("invalid new"),
            TcpReason::NoPickup => f.write_str("invalid new (pickup disabled, tcp_loose=0)"),
            TcpReason::Ignored { index, dir, state } => write!(
                f,
                "packet (index {}) in dir {} ignored, state {}",
                index.number(),
                dir.index(),
                state.name()
            ),
            TcpReason::InvalidTransition { index, dir, state } => write!(
                f,
                "packet (index {}) in dir {} invalid, state {}",
                index.number(),
                dir.index(),
                state.name()
            ),
            TcpReason::InvalidRst => f.write_str("invalid rst"),
            TcpReason::ChallengeAck => f.write_str("challenge-ack ignored"),
            TcpReason::Overshot(n) => write!(f, "{n} bytes more than expected"),
            TcpReason::SeqOverUpperBound(v) => write!(
                f,
                "SEQ is over upper bound {v} (over the window of the receiver)"
            ),
            TcpReason::AckOverUpperBound(v) => {
                write!(f, "ACK is over upper bound {v} (ACKed data not seen yet)")
            }
            TcpReason::SeqUnderLowerBound(v) => write!(
                f,
                "SEQ is under lower bound {v} (already ACKed data retransmitted)"
            ),
            TcpReason::AckUnderLowerBound(v) => write!(
                f,
                "ignored ACK under lower bound {v} (possible overly delayed)"
            ),
            TcpReason::LoweredTimeout => f.write_str("lowered timeout to UNACK"),
        }
    }
}

/// One direction's window data (kernel `struct ip_ct_tcp_state`). 18 bytes: packed to
/// 2-byte alignment so two of them take 36 bytes, not 40 (the u32 fields are read and
/// written by value; x86 loads them unaligned at no cost), which brings [`TcpConn`] to
/// 56 bytes and the entry to 104 (issue 6). Safe Rust: the compiler refuses any
/// reference to a field, so none exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, packed(2))]
struct DirState {
    /// Highest seq + len sent by this side.
    td_end: u32,
    /// Highest ack + window the other side advertised to this side (right edge).
    td_maxend: u32,
    /// Largest window this side advertised (scaled), 0 = no packet seen yet.
    td_maxwin: u32,
    /// Highest ack this side sent (valid with MAXACK_SET).
    td_maxack: u32,
    /// Window-scale shift this side announced (0..=14).
    td_scale: u8,
    /// `DIR_FLAG_*`.
    flags: u8,
}

impl DirState {
    /// kernel `nf_ct_tcp_state_reset()`: forget everything but BE_LIBERAL.
    fn reset(&mut self) {
        *self = DirState {
            flags: self.flags & DIR_FLAG_BE_LIBERAL,
            ..DirState::default()
        };
    }
}

/// Per-connection TCP state (kernel `struct ip_ct_tcp`).
///
/// Layout (`repr(C)`, pinned by the test `tcp_conn_fits_56_bytes`): the six bytes and
/// the raw window first, then 2 × 18 bytes of [`DirState`], then 3 × u32 = 56 bytes, no
/// padding. The small fields come first because their unused values (`state`'s,
/// `last_dir`'s) give [`super::ProtoState`] its tag: at the start of the L4 state, a
/// UDP hit (the tag and the 8-byte UDP state just after it) stays in the slot's first
/// 80 bytes and skips its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct TcpConn {
    /// Current state.
    state: TcpState,
    /// Direction of the last recorded packet.
    last_dir: Dir,
    /// Identical retransmissions counted so far.
    retrans: u8,
    /// Row of the last recorded packet.
    last_index: PacketIndex,
    /// Window scale of the last ignored ORIGINAL SYN.
    last_wscale: u8,
    /// Options of the last ignored ORIGINAL SYN plus `LAST_FLAG_*`.
    last_flags: u8,
    /// Last recorded raw window.
    last_win: u16,
    /// Window data per direction, indexed by [`Dir::index`].
    seen: [DirState; 2],
    /// Last recorded seq (retransmission detection, ignored-packet record).
    last_seq: u32,
    /// Last recorded ack (retransmission detection; the REPLY ACK ignored in SYN_SENT).
    last_ack: u32,
    /// Last recorded seq + len.
    last_end: u32,
}

/// The fields of a TCP header the tracker uses, plus the option bytes and payload length
/// ([`error_segment`] reads it once for the checks and the tracker).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment<'a> {
    seq: u32,
    ack: u32,
    win: u16,
    /// The flag byte (FIN..CWR).
    flags: u8,
    /// Payload length: L3 length − L4 offset − doff*4 (kernel `segment_seq_plus_len`).
    payload_len: u32,
    /// Option bytes (doff*4 − 20 of them, possibly empty).
    opts: &'a [u8],
}

impl<'a> Segment<'a> {
    /// Read the header of `pkt`; `None` if the 20 fixed bytes are not there (the
    /// tests' way in, which may skip [`error_segment`]'s checks).
    #[cfg(test)]
    fn parse(pkt: &Packet<'a>) -> Option<Segment<'a>> {
        let l4 = pkt.l4();
        let h: &[u8; TCP_HDR_LEN] = l4.get(..TCP_HDR_LEN)?.try_into().ok()?;
        let hdr_len = usize::from(h[12] >> 4) * 4;
        let opts = l4.get(TCP_HDR_LEN..hdr_len).unwrap_or(&[]);
        // kernel: skb->len - dataoff - doff*4, unsigned arithmetic. `error` has checked
        // doff*4 <= L4 length, so this does not wrap for packets that reach here.
        let payload_len = (l4.len() as u32).wrapping_sub(hdr_len as u32);
        Some(Segment {
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            win: u16::from_be_bytes([h[14], h[15]]),
            flags: h[13],
            payload_len,
            opts,
        })
    }

    #[inline]
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// seq + payload + 1 for SYN + 1 for FIN (kernel `segment_seq_plus_len`).
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.has(flags::SYN)))
            .wrapping_add(u32::from(self.has(flags::FIN)))
    }
}

/// kernel `tcp_valid_flags[]`: the valid FIN/SYN/RST/ACK/URG combinations once ECE,
/// CWR and PSH are cleared (§7.2).
fn valid_flag_combination(flag_byte: u8) -> bool {
    use flags::*;
    const SYN_URG: u8 = SYN | URG;
    const SYN_ACK: u8 = SYN | ACK;
    const RST_ACK: u8 = RST | ACK;
    const FIN_ACK: u8 = FIN | ACK;
    const FIN_ACK_URG: u8 = FIN | ACK | URG;
    const ACK_URG: u8 = ACK | URG;
    matches!(
        flag_byte & !(ECE | CWR | PSH),
        SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
    )
}

/// [`error_segment`]'s verdict alone (the tests' way in).
#[cfg(test)]
pub(crate) fn error(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<(), InvalidReason> {
    error_segment(pkt, cx).map(|_| ())
}

/// kernel `tcp_error()` (plus the 20-byte read of `nf_conntrack_tcp_packet`): header
/// length, checksum (only when `cx.check_checksum`), flag combination (§7.2). Run on
/// every TCP packet before anything else; `Err` makes it INVALID. A packet that passes
/// gives the segment read, so the tracker does not read the header again.
pub(crate) fn error_segment<'a>(
    pkt: &Packet<'a>,
    cx: &Cx<'_>,
) -> Result<Segment<'a>, InvalidReason> {
    let l4 = pkt.l4();
    let Some(h) = l4.first_chunk::<TCP_HDR_LEN>() else {
        return Err(TcpReason::ShortHeader.into());
    };
    let hdr_len = usize::from(h[12] >> 4) * 4;
    let Some(opts) = l4.get(TCP_HDR_LEN..hdr_len) else {
        // doff*4 < 20 (an empty range's start past its end) or past the L4 length.
        return Err(TcpReason::Truncated.into());
    };
    if cx.check_checksum && !pkt.l4_checksum_ok(crate::tuple::proto::TCP) {
        return Err(TcpReason::BadChecksum.into());
    }
    if !valid_flag_combination(h[13]) {
        return Err(TcpReason::InvalidFlags.into());
    }
    Ok(Segment {
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        win: u16::from_be_bytes([h[14], h[15]]),
        flags: h[13],
        // kernel: skb->len - dataoff - doff*4; doff*4 <= L4 length here.
        payload_len: (l4.len() - hdr_len) as u32,
        opts,
    })
}

/// What the RST rules of §7.5 decided.
struct RstPath {
    /// The state to move to (CLOSE, or the old state for rule 2e).
    new: TcpState,
    /// Skip the window check (rules 1, 3, 4).
    skip_window: bool,
}

impl TcpConn {
    /// An all-zero connection in state NONE (kernel: the `memset` of `tcp_new`), with
    /// `last_index` = NONE as `tcp_new` leaves it.
    fn zeroed() -> TcpConn {
        TcpConn {
            seen: [DirState::default(); 2],
            last_seq: 0,
            last_ack: 0,
            last_end: 0,
            last_win: 0,
            state: TcpState::None,
            last_dir: Dir::Original,
            retrans: 0,
            last_index: PacketIndex::None,
            last_wscale: 0,
            last_flags: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Whether the GC's early-eviction pass may delete the entry in this state (kernel
    /// `tcp_can_early_drop()`: FIN_WAIT, LAST_ACK, TIME_WAIT, CLOSE, CLOSE_WAIT).
    pub fn can_early_drop(&self) -> bool {
        matches!(
            self.state,
            TcpState::FinWait
                | TcpState::LastAck
                | TcpState::TimeWait
                | TcpState::Close
                | TcpState::CloseWait
        )
    }

    /// The highest seq + len a direction sent (`td_end`; NAT's TIME_WAIT eviction
    /// compares the original directions of two entries).
    pub fn td_end(&self, dir: Dir) -> u32 {
        self.seen[dir.index()].td_end
    }

    /// The window-scale shift in use for a direction (ctnetlink `WSCALE_ORIGINAL/REPLY`).
    pub fn wscale(&self, dir: Dir) -> u8 {
        self.seen[dir.index()].td_scale
    }

    /// The per-direction flag byte (ctnetlink `FLAGS_ORIGINAL/REPLY`: WINDOW_SCALE 0x01,
    /// SACK_PERM 0x02, CLOSE_INIT 0x04, BE_LIBERAL 0x08, DATA_UNACKNOWLEDGED 0x10,
    /// MAXACK_SET 0x20).
    pub fn dir_flags(&self, dir: Dir) -> u8 {
        self.seen[dir.index()].flags
    }

    /// [`TcpConn::new_into`] of `pkt`'s segment, returned (the tests' way in).
    #[cfg(test)]
    pub(crate) fn new(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<TcpConn, InvalidReason> {
        let Some(seg) = Segment::parse(pkt) else {
            return Err(TcpReason::ShortHeader.into());
        };
        let mut state = super::ProtoState::Generic;
        TcpConn::new_into(&seg, cx, &mut state)?;
        match state {
            super::ProtoState::Tcp(conn) => Ok(conn),
            _ => unreachable!("new_into wrote a TCP state"),
        }
    }

    /// kernel `tcp_new()`: the per-connection data for the first packet of a would-be
    /// entry, from the segment [`error_segment`] read, written straight into the
    /// entry's protocol state `dest` (left as it was on `Err`: returned and then copied
    /// there, the connection just written by narrow stores was read back with wide
    /// loads the stores could not forward, a stall on every new connection). A SYN
    /// starts in SYN_SENT's initialisation; an ACK-class packet is picked up
    /// mid-stream when `nf_conntrack_tcp_loose=1`, with both directions
    /// SACK_PERM|BE_LIBERAL (never window-checked); anything else is refused and no
    /// entry is created. The state stays NONE: the caller runs
    /// [`TcpConn::packet_from`] on the same packet next, as the kernel does.
    pub(crate) fn new_into(
        seg: &Segment<'_>,
        cx: &Cx<'_>,
        dest: &mut super::ProtoState,
    ) -> Result<(), InvalidReason> {
        let index = PacketIndex::of(seg.flags);
        let mut conn = TcpConn::zeroed();
        match table::next(Dir::Original, index, TcpState::None) {
            Cell::To(TcpState::SynSent) => {
                // kernel: SYN — seen[0] from the packet, raw window, options parsed.
                let o = &mut conn.seen[0];
                o.td_end = seg.end();
                o.td_maxwin = u32::from(seg.win).max(1);
                o.td_maxend = o.td_end;
                options::apply_syn_options(o, seg.opts);
            }
            Cell::To(_) if cx.sysctls.nf_conntrack_tcp_loose == 0 => {
                // kernel: "Don't try to pick up connections" — refused, not logged.
                return Err(TcpReason::NoPickup.into());
            }
            Cell::To(_) => {
                // kernel: mid-stream pickup. The window scale is unknown, hence liberal
                // checking in both directions for the life of the entry.
                let o = &mut conn.seen[0];
                o.td_end = seg.end();
                o.td_maxwin = u32::from(seg.win).max(1);
                o.td_maxend = o.td_end.wrapping_add(o.td_maxwin);
                conn.seen[0].flags = DIR_FLAG_SACK_PERM | DIR_FLAG_BE_LIBERAL;
                conn.seen[1].flags = DIR_FLAG_SACK_PERM | DIR_FLAG_BE_LIBERAL;
            }
            Cell::Invalid | Cell::Ignore => return Err(TcpReason::InvalidNew.into()),
        }
        *dest = super::ProtoState::Tcp(conn);
        Ok(())
    }

    /// [`TcpConn::packet_from`] of `pkt`'s segment (the tests' way in).
    #[cfg(test)]
    pub(crate) fn packet(
        &mut self,
        pkt: &Packet<'_>,
        dir: Dir,
        ecx: &EntryCx,
        cx: &Cx<'_>,
    ) -> TrackerResult {
        let Some(seg) = Segment::parse(pkt) else {
            return invalid(TcpReason::ShortHeader);
        };
        self.packet_from(&seg, dir, ecx, cx)
    }

    /// kernel `nf_conntrack_tcp_packet()` after `tcp_error`/`tcp_new`: the state
    /// machine (§7.4), its special cases (§7.5), the window check (§7.6) and the timeout
    /// choice (§7.7), for the segment [`error_segment`] read of a packet of direction
    /// `dir` on this entry.
    #[inline]
    pub(crate) fn packet_from(
        &mut self,
        seg: &Segment<'_>,
        dir: Dir,
        ecx: &EntryCx,
        cx: &Cx<'_>,
    ) -> TrackerResult {
        let sys = cx.sysctls;
        let index = PacketIndex::of(seg.flags);
        let mut old = self.state;
        let new;
        let mut skip_window = false;

        match table::next(dir, index, old) {
            Cell::Invalid => {
                // kernel: the synproxy keep-alive exception is not modelled.
                return invalid(TcpReason::InvalidTransition {
                    index,
                    dir,
                    state: old,
                });
            }
            Cell::To(TcpState::SynSent) if matches!(old, TcpState::TimeWait | TcpState::Close) => {
                // kernel: reopen from TIME_WAIT/CLOSE (RFC 1122) when this entry was
                // closed by a FIN (either side has CLOSE_INIT) or by an RST from this
                // same direction: delete the entry and look the packet up again.
                let close_init =
                    (self.seen[0].flags | self.seen[1].flags) & DIR_FLAG_CLOSE_INIT != 0;
                if close_init || (self.last_dir == dir && self.last_index == PacketIndex::Rst) {
                    return TrackerResult::Repeat;
                }
                // Otherwise (e.g. closed by an RST from the other side): IGNORE.
                match self.ignore_or_resync(seg, dir, index, old) {
                    Some(result) => return result,
                    None => {
                        old = TcpState::SynSent;
                        new = TcpState::SynRecv;
                    }
                }
            }
            Cell::Ignore => match self.ignore_or_resync(seg, dir, index, old) {
                Some(result) => return result,
                None => {
                    // kernel: the out-of-sync SYN/ACK case, "old_state = SYN_SENT".
                    old = TcpState::SynSent;
                    new = TcpState::SynRecv;
                }
            },
            Cell::To(TcpState::TimeWait)
                if old == TcpState::LastAck
                    && index == PacketIndex::Ack
                    && self.last_dir != dir
                    && self.last_index == PacketIndex::Syn
                    && self.last_flags & LAST_FLAG_EXP_CHALLENGE_ACK != 0 =>
            {
                // kernel: RFC 5961 — the ACK answers the SYN we let through in LAST_ACK,
                // it does not acknowledge the last FIN. No state change, no refresh.
                self.last_flags &= !LAST_FLAG_EXP_CHALLENGE_ACK;
                return TrackerResult::Accept(Accepted::ignore(TcpReason::ChallengeAck.into()));
            }
            Cell::To(TcpState::SynSent2) => {
                // kernel: the table cannot express simultaneous open; remember it.
                self.last_flags |= LAST_FLAG_SIMULTANEOUS_OPEN;
                new = TcpState::SynSent2;
            }
            Cell::To(TcpState::SynRecv)
                if dir == Dir::Reply
                    && index == PacketIndex::Ack
                    && self.last_flags & LAST_FLAG_SIMULTANEOUS_OPEN != 0 =>
            {
                // kernel: in a simultaneous open the REPLY ACK completes the handshake.
                new = TcpState::Established;
            }
            Cell::To(TcpState::Close) if index == PacketIndex::Rst => {
                match self.rst_rules(seg, dir, old, ecx, sys) {
                    Ok(p) => {
                        new = p.new;
                        skip_window = p.skip_window;
                    }
                    Err(reason) => return invalid(reason),
                }
            }
            Cell::To(s) => new = s,
        }

        if !skip_window {
            let liberal = sys.nf_conntrack_tcp_be_liberal != 0;
            match window::tcp_in_window(self, dir, index, seg, liberal, ecx.seqadj.as_ref()) {
                Verdict::Accept => {}
                Verdict::Ignore(reason) => {
                    return TrackerResult::Accept(Accepted::ignore(reason.into()));
                }
                Verdict::Invalid(reason) => {
                    let set_timeout = self
                        .handle_invalid(dir, index, ecx, sys, cx.now)
                        .then(|| secs(u64::from(sys.nf_conntrack_tcp_timeout_unacknowledged)));
                    return TrackerResult::Invalid {
                        reason: reason.into(),
                        set_timeout,
                    };
                }
            }
        }

        // kernel label `in_window`: from here on the packet is accepted.
        self.last_index = index;
        self.last_dir = dir;
        self.state = new;
        if old != new && new == TcpState::FinWait {
            self.seen[dir.index()].flags |= DIR_FLAG_CLOSE_INIT;
        }

        let mut timeout = self.timeout_secs(index, new, sys);
        let mut acc = Accepted {
            state_changed: old != new,
            ..Accepted::default()
        };

        if !ecx.status.has(Status::SEEN_REPLY) {
            if seg.has(flags::RST) {
                // kernel: an entry only ever answered by an RST is deleted at once
                // (nf_ct_kill_acct: accounted, not refreshed — the DESTROY event shows
                // the timeout as it was, §15a "TCP refused").
                acc.kill = true;
                return TrackerResult::Accept(acc);
            }
            if index == PacketIndex::Syn && old == TcpState::SynSent {
                // kernel: SYN retransmits never extend the timeout, else port reuse could
                // keep an unanswered entry (and its NAT binding) alive forever.
                return TrackerResult::Accept(acc);
            }
            // kernel: a picked-up ESTABLISHED without a reply is capped at UNACK.
            if new == TcpState::Established {
                timeout = timeout.min(sys.nf_conntrack_tcp_timeout_unacknowledged);
            }
        } else if !ecx.status.has(Status::ASSURED)
            && matches!(old, TcpState::SynRecv | TcpState::Established)
            && new == TcpState::Established
        {
            // §7.8: a valid ACK after SYN_RECV, or a valid answer on a picked-up entry.
            acc.set_assured = true;
        }
        acc.refresh = Some(secs(u64::from(timeout)));
        TrackerResult::Accept(acc)
    }

    /// The IGNORE branch of `nf_conntrack_tcp_packet` (§7.5). Returns `None` when the
    /// packet is the SYN/ACK answering a SYN we ignored earlier: the direction data was
    /// rebuilt and the caller continues as SYN_SENT → SYN_RECV. Otherwise records the
    /// packet and returns the IGNORE result.
    fn ignore_or_resync(
        &mut self,
        seg: &Segment<'_>,
        dir: Dir,
        index: PacketIndex,
        old: TcpState,
    ) -> Option<TrackerResult> {
        if index == PacketIndex::SynAck
            && self.last_index == PacketIndex::Syn
            && self.last_dir != dir
            && seg.ack == self.last_end
        {
            // Client and server are in sync, we are not: take the ignored SYN as the
            // start of a new connection, from the values recorded when we ignored it.
            let ld = self.last_dir.index();
            let last_flags = self.last_flags & !LAST_FLAG_EXP_CHALLENGE_ACK;
            self.last_flags = last_flags;
            let s = &mut self.seen[ld];
            s.td_end = self.last_end;
            s.td_maxend = self.last_end;
            s.td_maxwin = u32::from(self.last_win).max(1);
            s.td_scale = self.last_wscale;
            // kernel quirk kept: the whole flag byte is replaced by last_flags (which
            // may hold SIMULTANEOUS_OPEN, and drops BE_LIBERAL).
            s.flags = last_flags;
            self.seen[dir.index()].reset();
            return None;
        }

        self.last_index = index;
        self.last_dir = dir;
        self.last_seq = seg.seq;
        self.last_end = seg.end();
        self.last_win = seg.win;

        if index == PacketIndex::Syn && dir == Dir::Original {
            // The SYN may start a new connection the peers agree on: note its options
            // for a resync on the SYN/ACK.
            let o = options::syn_options(seg.opts);
            self.last_flags = 0;
            self.last_wscale = 0;
            if let Some(shift) = o.wscale {
                self.last_flags |= DIR_FLAG_WINDOW_SCALE;
                self.last_wscale = shift;
            }
            if o.sack_perm {
                self.last_flags |= DIR_FLAG_SACK_PERM;
            }
            // In LAST_ACK the server's answer may be an RFC 5961 challenge ACK, which
            // must not be taken for the last ACK.
            if old == TcpState::LastAck {
                self.last_flags |= LAST_FLAG_EXP_CHALLENGE_ACK;
            }
        }

        // A REPLY ACK in SYN_SENT may be a challenge ACK to the SYN: remember its ack for
        // RST rule 4.
        if old == TcpState::SynSent && index == PacketIndex::Ack && dir == Dir::Reply {
            self.last_ack = seg.ack;
        }

        Some(TrackerResult::Accept(Accepted::ignore(
            TcpReason::Ignored {
                index,
                dir,
                state: old,
            }
            .into(),
        )))
    }

    /// The RST rules of §7.5 (the `TCP_CONNTRACK_CLOSE` case of the kernel's switch).
    /// `Err` = "invalid rst".
    fn rst_rules(
        &self,
        seg: &Segment<'_>,
        dir: Dir,
        old: TcpState,
        ecx: &EntryCx,
        sys: &Sysctls,
    ) -> Result<RstPath, TcpReason> {
        let close = |skip_window| RstPath {
            new: TcpState::Close,
            skip_window,
        };
        // Rule 1: closing states. The tuple may already be reused and our sequence data
        // stale: skip every check.
        if self.can_early_drop() {
            return Ok(close(true));
        }
        // kernel `nf_conntrack_tcp_established()`.
        let established = self.state == TcpState::Established && ecx.status.has(Status::ASSURED);
        let peer = &self.seen[dir.opposite().index()];
        let mut new = TcpState::Close;

        // Rule 2: the peer's highest ack tells where a genuine RST must be. Not usable
        // right after a SYN we let through (td_maxack may be stale then).
        if peer.flags & DIR_FLAG_MAXACK_SET != 0 && self.last_index != PacketIndex::Syn {
            let seq = seg.seq;
            // 2a: seq 0 outside an assured ESTABLISHED most likely answers a SYN we let
            // through: window check only.
            if seq == 0 && !established {
                return Ok(close(false));
            }
            // 2b: before the peer's highest ack: stale or forged.
            if before(seq, peer.td_maxack) && sys.nf_conntrack_tcp_ignore_invalid_rst == 0 {
                return Err(TcpReason::InvalidRst);
            }
            // 2c: not an assured connection, or exactly at the peer's ack.
            if !established || seq == peer.td_maxack {
                return Ok(close(false));
            }
            // 2d: the RST ends a data train from this same side.
            if self.last_index == PacketIndex::Ack && self.last_dir == dir && seq == self.last_end {
                return Ok(close(false));
            }
            // 2e: inexact: stay ESTABLISHED so that the peer's challenge ACK can still
            // pass; rules 3 and 4 are still evaluated.
            new = old;
        }

        // Rule 3: an RST answering a SYN (from the other side, after a reply) or an ACK
        // (on an unassured entry) we let through: it may ack what we ignored.
        let last_syn_other = ecx.status.has(Status::SEEN_REPLY)
            && self.last_index == PacketIndex::Syn
            && self.last_dir != dir;
        let last_ack_unassured =
            !ecx.status.has(Status::ASSURED) && self.last_index == PacketIndex::Ack;
        if (last_syn_other || last_ack_unassured) && seg.ack == self.last_end {
            return Ok(RstPath {
                new,
                skip_window: true,
            });
        }

        // Rule 4: in SYN_SENT, an RST answering the challenge ACK the server sent to our
        // SYN carries seq = that ACK's ack number.
        if old == TcpState::SynSent
            && self.last_index == PacketIndex::Ack
            && self.last_dir == Dir::Reply
            && seg.seq == self.last_ack
        {
            return Ok(RstPath {
                new,
                skip_window: true,
            });
        }

        Ok(RstPath {
            new,
            skip_window: false,
        })
    }

    /// kernel `nf_tcp_handle_invalid()`: an ASSURED, not FIXED_TIMEOUT entry gets an
    /// out-of-window FIN or RST right after an accepted FIN/RST from the other side →
    /// `true`: cut the timeout to UNACK, if at least 120 s and more than UNACK remain.
    /// Otherwise a FIN/RST is just recorded as the last packet.
    fn handle_invalid(
        &mut self,
        dir: Dir,
        index: PacketIndex,
        ecx: &EntryCx,
        sys: &Sysctls,
        now: Instant,
    ) -> bool {
        if !ecx.status.has(Status::ASSURED) || ecx.status.has(Status::FIXED_TIMEOUT) {
            return false;
        }
        if !matches!(index, PacketIndex::Rst | PacketIndex::Fin) {
            return false;
        }
        if self.last_dir != dir && matches!(self.last_index, PacketIndex::Fin | PacketIndex::Rst) {
            let remaining = ecx.remaining(now);
            if remaining < Duration::from_secs(HANDLE_INVALID_MIN_REMAINING_SECS) {
                return false;
            }
            let unack = secs(u64::from(sys.nf_conntrack_tcp_timeout_unacknowledged));
            return remaining > unack;
        }
        self.last_index = index;
        self.last_dir = dir;
        false
    }

    /// The timeout of an accepted packet, in seconds (§7.7 step 2, live 6.18.44 order).
    fn timeout_secs(&self, index: PacketIndex, new: TcpState, sys: &Sysctls) -> u32 {
        let t_new = new.timeout_secs(sys);
        let t_retrans = sys.nf_conntrack_tcp_timeout_max_retrans;
        let t_unack = sys.nf_conntrack_tcp_timeout_unacknowledged;
        let unacked = (self.seen[0].flags | self.seen[1].flags) & DIR_FLAG_DATA_UNACK != 0;
        if self.retrans >= sys.nf_conntrack_tcp_max_retrans && t_new > t_retrans {
            // Too many identical retransmissions: the peer is probably gone.
            t_retrans
        } else if index == PacketIndex::Rst {
            // 6.18.44 (§7.9): any accepted RST, even one that leaves the state
            // ESTABLISHED (rule 2e), takes the CLOSE timeout. (The 6.12.117 source with
            // 2026 backports uses UNACK when the state stays ESTABLISHED.)
            sys.nf_conntrack_tcp_timeout_close
        } else if unacked && t_new > t_unack {
            // Data in flight: don't keep a stalled connection for days.
            t_unack
        } else if self.last_win == 0 && t_new > t_retrans {
            // The last recorded ACK advertised a zero window: zero-window probing.
            t_retrans
        } else {
            t_new
        }
    }
}

/// An INVALID result without a timeout change.
fn invalid(reason: TcpReason) -> TrackerResult {
    TrackerResult::Invalid {
        reason: reason.into(),
        set_timeout: None,
    }
}
