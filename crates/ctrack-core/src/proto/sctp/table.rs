//! The SCTP transition table (kernel: `sctp_conntracks[2][11][SCTP_CONNTRACK_MAX]` and
//! `sctp_new_state()`), laid out as the kernel's grid so each row can be diffed against
//! kernel-semantics-2.md §1.3, and the per-state timeouts (§1.7, `sctp_timeouts[]`).
//!
//! Rows are chunk types (§1.2), columns the current state in the kernel's order
//! NO CL CW CE ES SS SR SA HS. A cell is the next state, or `IV` ("invalid": the packet
//! is rejected and logged as "Invalid, old_state %d, dir %d, type %d").

use super::{cid, SctpState};
use crate::sysctl::Sysctls;
use crate::time::{secs, Duration};
use crate::tuple::Dir;

/// A table cell: `None` is the kernel's `sIV` (`SCTP_CONNTRACK_MAX`).
type Cell = Option<SctpState>;

const CL: Cell = Some(SctpState::Closed);
const CW: Cell = Some(SctpState::CookieWait);
const CE: Cell = Some(SctpState::CookieEchoed);
const ES: Cell = Some(SctpState::Established);
const SS: Cell = Some(SctpState::ShutdownSent);
const SR: Cell = Some(SctpState::ShutdownRecd);
const SA: Cell = Some(SctpState::ShutdownAckSent);
const HS: Cell = Some(SctpState::HeartbeatSent);
const IV: Cell = None;

/// Number of state columns (NONE..HEARTBEAT_SENT).
const STATES: usize = 9;
/// Number of chunk rows.
const ROWS: usize = 11;

/// `TRANSITIONS[dir][row][state]`. The NO column is used only for the first packet
/// (§1.6); no cell leads back to NONE.
#[rustfmt::skip]
const TRANSITIONS: [[[Cell; STATES]; ROWS]; 2] = [
    // ORIGINAL
    [
    //                      NO  CL  CW  CE  ES  SS  SR  SA  HS
    /* INIT              */ [CL, CL, CW, CE, ES, CL, CL, SA, CW], // INIT from the orig side in SS/SR resets to CL; from HS starts a handshake
    /* INIT_ACK          */ [CL, CL, CW, CE, ES, SS, SR, SA, CL], // INIT_ACK travels in the reply dir normally: orig one does not advance CL
    /* ABORT             */ [CL, CL, CL, CL, CL, CL, CL, CL, CL], // always closes
    /* SHUTDOWN          */ [CL, CL, CW, CE, SS, SS, SR, SA, CL], // only ES moves (to SS); SS/SR stay put
    /* SHUTDOWN_ACK      */ [SA, CL, CW, CE, ES, SA, SA, SA, SA], // first packet: OOTB SHUTDOWN_ACK creates SA
    /* ERROR             */ [CL, CL, CW, CE, ES, SS, SR, SA, CL], // no stale-cookie handling in the orig dir
    /* COOKIE_ECHO       */ [CL, CL, CE, CE, ES, SS, SR, SA, CL], // CW -> CE is the normal third step
    /* COOKIE_ACK        */ [CL, CL, CW, ES, ES, SS, SR, SA, CL], // CE -> ES in either direction (ASSURED)
    /* SHUTDOWN_COMPLETE */ [CL, CL, CW, CE, ES, SS, SR, CL, CL], // only SA closes
    /* HEARTBEAT         */ [HS, CL, CW, CE, ES, SS, SR, SA, HS], // first packet on a secondary path -> HS
    /* HEARTBEAT_ACK     */ [CL, CL, CW, CE, ES, SS, SR, SA, HS], // an orig HEARTBEAT_ACK does not confirm HS
    ],
    // REPLY
    [
    //                      NO  CL  CW  CE  ES  SS  SR  SA  HS
    /* INIT              */ [IV, CL, CW, CE, ES, SS, SR, SA, IV], // NO unreachable in reply; HS accepts only heartbeats from the reply side
    /* INIT_ACK          */ [IV, CW, CW, CE, ES, SS, SR, SA, IV], // CL -> CW: the normal second step
    /* ABORT             */ [IV, CL, CL, CL, CL, CL, CL, CL, IV], // closes, except in HS
    /* SHUTDOWN          */ [IV, CL, CW, CE, SR, SS, SR, SA, IV], // ES -> SR (shutdown initiated by the responder)
    /* SHUTDOWN_ACK      */ [IV, CL, CW, CE, ES, SA, SA, SA, IV], // SS/SR -> SA
    /* ERROR             */ [IV, CL, CW, CL, ES, SS, SR, SA, IV], // CE -> CL: a reply ERROR during setup (stale cookie) closes
    /* COOKIE_ECHO       */ [IV, CL, CE, CE, ES, SS, SR, SA, IV], // same moves as the orig dir, except HS
    /* COOKIE_ACK        */ [IV, CL, CW, ES, ES, SS, SR, SA, IV], // CE -> ES: the normal fourth step (ASSURED)
    /* SHUTDOWN_COMPLETE */ [IV, CL, CW, CE, ES, SS, SR, CL, IV], // only SA closes
    /* HEARTBEAT         */ [IV, CL, CW, CE, ES, SS, SR, SA, HS], // a reply HEARTBEAT keeps HS (and learns the reply vtag)
    /* HEARTBEAT_ACK     */ [IV, CL, CW, CE, ES, SS, SR, SA, ES], // HS -> ES: the secondary path is confirmed (ASSURED)
    ],
];

/// The table row of a chunk type (§1.2), or `None` for a chunk that never changes the
/// state (DATA, SACK, ECNE, CWR, AUTH, FORWARD_TSN, ASCONF, I-DATA, PAD, unknown types).
fn row(chunk_type: u8) -> Option<usize> {
    Some(match chunk_type {
        cid::INIT => 0,
        cid::INIT_ACK => 1,
        cid::ABORT => 2,
        cid::SHUTDOWN => 3,
        cid::SHUTDOWN_ACK => 4,
        cid::ERROR => 5,
        cid::COOKIE_ECHO => 6,
        cid::COOKIE_ACK => 7,
        cid::SHUTDOWN_COMPLETE => 8,
        cid::HEARTBEAT => 9,
        cid::HEARTBEAT_ACK => 10,
        _ => return None,
    })
}

/// The state after a chunk of type `chunk_type` travelling in `dir` (kernel:
/// `sctp_new_state`): `None` = invalid. A chunk without a row keeps `cur`.
pub(super) fn next(dir: Dir, cur: SctpState, chunk_type: u8) -> Option<SctpState> {
    match row(chunk_type) {
        Some(r) => TRANSITIONS[dir.index()][r][cur as usize],
        None => Some(cur),
    }
}

/// The timeout a packet leaving the entry in `state` refreshes it with (§1.7), read from
/// the netns sysctls on every refresh so a change applies at the next packet.
pub(super) fn timeout(state: SctpState, s: &Sysctls) -> Duration {
    let v = match state {
        // Slot 0 is a fixed copy of the CLOSED *default*, not the sysctl (kernel:
        // `nf_conntrack_sctp_init_net`); a stored entry is never NONE.
        SctpState::None => 10,
        SctpState::Closed => s.nf_conntrack_sctp_timeout_closed,
        SctpState::CookieWait => s.nf_conntrack_sctp_timeout_cookie_wait,
        SctpState::CookieEchoed => s.nf_conntrack_sctp_timeout_cookie_echoed,
        SctpState::Established => s.nf_conntrack_sctp_timeout_established,
        SctpState::ShutdownSent => s.nf_conntrack_sctp_timeout_shutdown_sent,
        SctpState::ShutdownRecd => s.nf_conntrack_sctp_timeout_shutdown_recd,
        SctpState::ShutdownAckSent => s.nf_conntrack_sctp_timeout_shutdown_ack_sent,
        SctpState::HeartbeatSent => s.nf_conntrack_sctp_timeout_heartbeat_sent,
    };
    secs(u64::from(v))
}
