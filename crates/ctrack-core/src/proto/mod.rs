//! L4 trackers, one file per protocol, with the kernel's verbs (kernel:
//! `nf_conntrack_proto_*.c`, dispatched by `nf_conntrack_handle_packet`'s switch):
//!
//! * `error(pkt, cx)` — header validation and checksum before anything else
//!   (`tcp_error`, `udp_error`, ...): `Err(reason)` makes the packet INVALID.
//! * `new(pkt, cx)` — first packet of a would-be entry (`tcp_new`, ...): the initial
//!   per-connection state, or `Err(reason)` (no entry is created).
//! * `packet(&mut state, pkt, dir, ecx, cx)` — the state machine for every packet of
//!   the entry, including the first one right after `new`: returns a [`TrackerResult`].
//!
//! Per-entry state is the [`ProtoState`] enum (the kernel's `union nf_conntrack_proto`).

pub mod generic;
pub mod gre;
pub mod gre_keymap;
pub mod icmp;
pub mod sctp;
pub mod tcp;
pub mod udp;

use crate::invalid::InvalidReason;
use crate::status::Status;
use crate::sysctl::Sysctls;
use crate::time::{Duration, Instant};

/// What a tracker may read about the world: the clock, the sysctls, the hook.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a> {
    /// Current (simulated) time.
    pub now: Instant,
    /// The netns's sysctls.
    pub sysctls: &'a Sysctls,
    /// Verify L4 checksums: PRE_ROUTING and `nf_conntrack_checksum=1`.
    pub check_checksum: bool,
}

/// What a tracker may read about the entry the packet belongs to.
#[derive(Debug, Clone, Copy)]
pub struct EntryCx {
    /// Status bits before this packet.
    pub status: Status,
    /// The entry is not yet confirmed (this packet created it, or an earlier packet
    /// created it and it was not yet confirmed).
    pub unconfirmed: bool,
    /// When the entry expires (before this packet's refresh); see
    /// [`EntryCx::remaining`].
    pub deadline: Instant,
    /// The entry's NAT sequence adjustment, if it has one: the TCP window check takes
    /// the other direction's offset out of the ack (kernel `nf_ct_seq_offset` in
    /// `tcp_in_window`).
    pub seqadj: Option<crate::conntrack::seqadj::SeqAdj>,
}

impl EntryCx {
    /// Time left before the entry expires at `now` (zero when expired). Computed only
    /// by the rare check that needs it: the hit path does not divide.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_since(now)
    }
}

/// The result of a tracker's `packet` (kernel: NF_ACCEPT, -NF_ACCEPT, NF_DROP, -NF_REPEAT
/// plus the side effects the tracker performs on the entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerResult {
    /// The packet is accepted and keeps its ct.
    Accept(Accepted),
    /// The tracker rejected the packet: it becomes INVALID (`invalid`++). An existing entry
    /// is otherwise unchanged except for `set_timeout` (TCP lowers an ASSURED entry's timeout
    /// to UNACK on some out-of-window FIN/RST); a new entry is discarded.
    Invalid {
        /// Why (the kernel's log text).
        reason: InvalidReason,
        /// Set the timeout to this value (from now).
        set_timeout: Option<Duration>,
    },
    /// The tracker rejected the packet after it had already changed the entry (an SCTP
    /// packet of several chunks that fails on a later chunk keeps the earlier chunks'
    /// changes): INVALID as above, and on a confirmed entry ASSURED is set and the state
    /// change queued, as the kernel does.
    InvalidAfterUpdate {
        /// Why (the kernel's log text).
        reason: InvalidReason,
        /// An earlier chunk entered ESTABLISHED.
        set_assured: bool,
        /// An earlier chunk changed the state.
        state_changed: bool,
    },
    /// The tracker asks to drop the packet (NF_DROP): `invalid`++ and `drop`++.
    Drop(InvalidReason),
    /// Delete the existing entry and look the packet up again (TCP reopen from
    /// TIME_WAIT/CLOSE): the second lookup creates a fresh entry.
    Repeat,
}

/// Side effects of an accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    /// Refresh the timeout to now + this (`nf_ct_refresh_acct`), and account the packet.
    /// `None`: no refresh and no accounting (TCP IGNORE, SYN retransmit in SYN_SENT).
    pub refresh: Option<Duration>,
    /// Set ASSURED (and emit IPCT_ASSURED) if not already set.
    pub set_assured: bool,
    /// The protocol state changed (IPCT_PROTOINFO event).
    pub state_changed: bool,
    /// Delete the entry after accepting the packet (TCP RST on an unreplied entry). The
    /// packet is accounted (`kill_acct`).
    pub kill: bool,
    /// The kernel logged something for this accepted packet (IGNORE cases, "lowered
    /// timeout to UNACK"): the reason shown by `replay --packets`.
    pub note: Option<InvalidReason>,
}

impl Accepted {
    /// Accept and refresh with `t`.
    pub fn refresh(t: Duration) -> Accepted {
        Accepted {
            refresh: Some(t),
            ..Accepted::default()
        }
    }
    /// Accept without refresh (ignored), with the reason the kernel logs.
    pub fn ignore(note: InvalidReason) -> Accepted {
        Accepted {
            note: Some(note),
            ..Accepted::default()
        }
    }
}

/// Per-entry L4 state (kernel `union nf_conntrack_proto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoState {
    /// TCP.
    Tcp(tcp::TcpConn),
    /// UDP and UDP-Lite.
    Udp(udp::UdpConn),
    /// ICMP and ICMPv6 (no state).
    Icmp,
    /// GRE (per-entry timeouts).
    Gre(gre::GreConn),
    /// SCTP.
    Sctp(sctp::SctpConn),
    /// Everything else (incl. DCCP on the target kernel).
    Generic,
}

impl ProtoState {
    /// The state word printed by `conntrack -L` after the timeout (TCP, SCTP), if any.
    pub fn state_name(&self) -> Option<&'static str> {
        match self {
            ProtoState::Tcp(t) => Some(t.state().name()),
            ProtoState::Sctp(s) => Some(s.state().name()),
            _ => None,
        }
    }

    /// Whether the GC worker's early-eviction mode may delete an ASSURED entry in this state.
    pub fn can_early_drop(&self) -> bool {
        match self {
            ProtoState::Tcp(t) => t.can_early_drop(),
            ProtoState::Sctp(s) => s.can_early_drop(),
            _ => false,
        }
    }
}

/// The kernel's name for an L4 protocol number (`conntrack -L`, /proc).
pub fn proto_name(proto: u8) -> &'static str {
    use crate::tuple::proto::*;
    match proto {
        TCP => "tcp",
        UDP => "udp",
        UDPLITE => "udplite",
        ICMP => "icmp",
        ICMPV6 => "icmpv6",
        SCTP => "sctp",
        GRE => "gre",
        _ => "unknown",
    }
}
