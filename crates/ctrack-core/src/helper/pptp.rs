//! The PPTP helper (kernel `nf_conntrack_pptp.c`, `conntrack_pptp_help`,
//! `pptp_outbound_pkt`, `pptp_inbound_pkt`; IPv4 only, TCP, policy: 2 expectations,
//! 300 s).
//!
//! PPTP (RFC 2637) runs a control connection on TCP 1723 from the PNS (client) to the
//! PAC (server), and carries each call's PPP frames in enhanced GRE (version 1) keyed by
//! the receiver's call ID. The helper reads the control messages, keeps a session state
//! and a call state per control connection, and when a call is established (an
//! Outgoing-Call-Reply "connected", or an Incoming-Call-Connected) asks for two GRE
//! expectations, one per direction, keyed by the two call IDs, and for the matching
//! keymap entries ([`crate::proto::gre_keymap`]). A Call-Disconnect-Notify removes the
//! keymap entries and kills the call's GRE connection, or withdraws its expectations.
//!
//! Kernel behaviour kept here:
//! * only ESTABLISHED and ESTABLISHED_REPLY packets are read, and only the first
//!   message of a segment: an 8-byte PPTP header (packet type 1 = control, magic cookie
//!   0x1a2b3c4d), a 4-byte control header (message type), then the message. There is no
//!   stream reassembly and no sequence tracking: a retransmission is read again;
//! * a known message type (1..=15) shorter than its structure is ignored, as is any
//!   packet that is too short for the headers or not a control message;
//! * the control connection is assumed to go PNS → PAC: ORIGINAL-direction messages are
//!   the PNS's ("outbound"), REPLY-direction ones the PAC's ("inbound");
//! * a message that does not fit the state (an Outgoing-Call-Reply before the session
//!   is confirmed, a peer call ID that is not ours, a message the side never sends) is
//!   "invalid": ignored, **the packet passes**. The helper never drops a packet;
//! * one call per control connection: each request overwrites the call IDs.
//!
//! Call IDs are kept as the 16-bit values on the wire (the kernel compares them in
//! network order; only equality is used).

use super::{HelpCx, HelpOutcome, Helper, HelperState};
use crate::status::CtInfo;
use crate::tuple::Dir;

/// Packet type of a control message (`PPTP_PACKET_CONTROL`).
pub const PACKET_CONTROL: u16 = 1;
/// The magic cookie every PPTP message carries (`PPTP_MAGIC_COOKIE`).
pub const MAGIC_COOKIE: u32 = 0x1a2b_3c4d;
/// The control port (the helper is attached by rule; listed for reference).
pub const CONTROL_PORT: u16 = 1723;

/// Control message types (`PPTP_*` in the kernel's `nf_conntrack_pptp.h`, RFC 2637 §2).
pub mod msg {
    /// Start-Control-Connection-Request.
    pub const START_SESSION_REQUEST: u16 = 1;
    /// Start-Control-Connection-Reply.
    pub const START_SESSION_REPLY: u16 = 2;
    /// Stop-Control-Connection-Request.
    pub const STOP_SESSION_REQUEST: u16 = 3;
    /// Stop-Control-Connection-Reply.
    pub const STOP_SESSION_REPLY: u16 = 4;
    /// Echo-Request.
    pub const ECHO_REQUEST: u16 = 5;
    /// Echo-Reply.
    pub const ECHO_REPLY: u16 = 6;
    /// Outgoing-Call-Request.
    pub const OUT_CALL_REQUEST: u16 = 7;
    /// Outgoing-Call-Reply.
    pub const OUT_CALL_REPLY: u16 = 8;
    /// Incoming-Call-Request.
    pub const IN_CALL_REQUEST: u16 = 9;
    /// Incoming-Call-Reply.
    pub const IN_CALL_REPLY: u16 = 10;
    /// Incoming-Call-Connected.
    pub const IN_CALL_CONNECT: u16 = 11;
    /// Call-Clear-Request.
    pub const CALL_CLEAR_REQUEST: u16 = 12;
    /// Call-Disconnect-Notify.
    pub const CALL_DISCONNECT_NOTIFY: u16 = 13;
    /// WAN-Error-Notify.
    pub const WAN_ERROR_NOTIFY: u16 = 14;
    /// Set-Link-Info.
    pub const SET_LINK_INFO: u16 = 15;
    /// The highest known type.
    pub const MAX: u16 = 15;
}

/// Size of each known message's body after the control header (the kernel's
/// `pptp_msg_size[]`, i.e. the sizes of its message structures). Echo-Request and
/// Echo-Reply have no entry there (0): any length is read. Index = message type.
const MSG_SIZE: [usize; 16] = [
    0,   // (none)
    144, // Start-Control-Connection-Request
    144, // Start-Control-Connection-Reply
    4,   // Stop-Control-Connection-Request
    4,   // Stop-Control-Connection-Reply
    0,   // Echo-Request: not in the kernel's table
    0,   // Echo-Reply: not in the kernel's table
    156, // Outgoing-Call-Request
    20,  // Outgoing-Call-Reply
    208, // Incoming-Call-Request
    12,  // Incoming-Call-Reply
    16,  // Incoming-Call-Connected
    4,   // Call-Clear-Request
    136, // Call-Disconnect-Notify
    28,  // WAN-Error-Notify
    12,  // Set-Link-Info
];

/// Result codes that mean success (`PPTP_START_OK`, `PPTP_STOP_OK`,
/// `PPTP_OUTCALL_CONNECT`, `PPTP_INCALL_ACCEPT` are all 1).
const RESULT_OK: u8 = 1;

/// State of the control session (kernel `enum pptp_ctrlsess_state`; the order matters:
/// the kernel compares with `<` and `>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SessionState {
    /// No session (`PPTP_SESSION_NONE`).
    #[default]
    None,
    /// The PAC refused the session or a stop (`PPTP_SESSION_ERROR`).
    Error,
    /// Stop-Control-Connection-Request seen (`PPTP_SESSION_STOPREQ`).
    StopReq,
    /// Start-Control-Connection-Request seen (`PPTP_SESSION_REQUESTED`).
    Requested,
    /// Start-Control-Connection-Reply with result 1 (`PPTP_SESSION_CONFIRMED`).
    Confirmed,
}

/// State of the (single) call of the session (kernel `enum pptp_ctrlcall_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallState {
    /// No call (`PPTP_CALL_NONE`).
    #[default]
    None,
    /// Unused by the kernel (`PPTP_CALL_ERROR`).
    Error,
    /// Outgoing-Call-Request seen (`PPTP_CALL_OUT_REQ`).
    OutReq,
    /// Outgoing-Call-Reply "connected" seen (`PPTP_CALL_OUT_CONF`).
    OutConf,
    /// Incoming-Call-Request seen (`PPTP_CALL_IN_REQ`).
    InReq,
    /// Incoming-Call-Reply "accept" seen (`PPTP_CALL_IN_REP`).
    InRep,
    /// Incoming-Call-Connected seen (`PPTP_CALL_IN_CONF`).
    InConf,
    /// Call-Clear-Request seen (`PPTP_CALL_CLEAR_REQ`).
    ClearReq,
}

/// The helper's per-control-connection data (kernel `struct nf_ct_pptp_master`; the
/// keymap slots live in the keymap itself, keyed by the master).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PptpData {
    /// Session state.
    pub sstate: SessionState,
    /// Call state.
    pub cstate: CallState,
    /// The PAC's call ID (what the PNS's GRE packets carry).
    pub pac_call_id: u16,
    /// The PNS's call ID (what the PAC's GRE packets carry).
    pub pns_call_id: u16,
}

/// What the engine must do after a control message (the kernel does it inside the
/// helper; here the glue in `conntrack/pptp.rs` does, with the table at hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PptpAction {
    /// `exp_gre(ct, callid, peer_callid)`: expect GRE PNS → PAC with keys (peer_callid,
    /// callid) and PAC → PNS with (callid, peer_callid), and add both keymap entries.
    /// A failure is not a drop: the expectations are withdrawn and the packet passes.
    ExpectGre {
        /// The PAC's call ID.
        callid: u16,
        /// The PNS's call ID.
        peer_callid: u16,
    },
    /// `pptp_destroy_siblings`: remove the keymap entries, then kill the GRE connection
    /// of each direction of the call, or withdraw its expectation.
    DestroySiblings,
}

/// A big-endian u16 of the message body at `off` (0 past the end; callers check the
/// message size first, so this never happens for the fields they read).
fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |x| u16::from_be_bytes([x[0], x[1]]))
}

/// The byte at `off` (0 past the end).
fn byte(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// One control message: its type and body (everything after the control header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Control message type.
    pub kind: u16,
    /// The body, at least as long as the type's structure when the type is known.
    pub body: &'a [u8],
}

/// The first PPTP control message of a TCP segment's payload, as the kernel reads it;
/// `None` when the helper ignores the segment (short, not a control message, wrong
/// cookie, a known type with a short body).
pub fn parse(payload: &[u8]) -> Option<Message<'_>> {
    let hdr = payload.get(..8)?;
    let ptype = u16::from_be_bytes([hdr[2], hdr[3]]);
    let cookie = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if ptype != PACKET_CONTROL || cookie != MAGIC_COOKIE {
        return None;
    }
    let ctl = payload.get(8..12)?;
    let kind = u16::from_be_bytes([ctl[0], ctl[1]]);
    let body = payload.get(12..)?;
    if (1..=msg::MAX).contains(&kind) && body.len() < MSG_SIZE[usize::from(kind)] {
        return None;
    }
    Some(Message { kind, body })
}

impl PptpData {
    /// A message from the PNS (ORIGINAL direction; kernel `pptp_outbound_pkt`).
    /// Returns the action to take, if any. A message that does not fit the state (a
    /// guard below fails) is "invalid": it falls to the last arm and changes nothing.
    pub fn outbound(&mut self, m: &Message<'_>) -> Option<PptpAction> {
        let confirmed = self.sstate == SessionState::Confirmed;
        match m.kind {
            msg::START_SESSION_REQUEST if self.sstate == SessionState::None => {
                self.sstate = SessionState::Requested;
            }
            msg::STOP_SESSION_REQUEST => self.sstate = SessionState::StopReq,
            msg::OUT_CALL_REQUEST if confirmed => {
                self.cstate = CallState::OutReq;
                // PptpOutCallRequest.callID at 0.
                self.pns_call_id = be16(m.body, 0);
            }
            // PptpInCallReply: callID 0, peersCallID 2, resultCode 4. No session check
            // here (the kernel has none).
            msg::IN_CALL_REPLY
                if matches!(self.cstate, CallState::InReq | CallState::InRep)
                    && self.pac_call_id == be16(m.body, 2) =>
            {
                if byte(m.body, 4) == RESULT_OK {
                    self.cstate = CallState::InRep;
                    self.pns_call_id = be16(m.body, 0);
                } else {
                    self.cstate = CallState::None;
                }
            }
            msg::CALL_CLEAR_REQUEST if confirmed => self.cstate = CallState::ClearReq,
            // Set-Link-Info and echoes: nothing to track; anything else from the PNS
            // is invalid (ignored).
            _ => {}
        }
        None
    }

    /// A message from the PAC (REPLY direction; kernel `pptp_inbound_pkt`), with the
    /// same convention as [`PptpData::outbound`].
    pub fn inbound(&mut self, m: &Message<'_>) -> Option<PptpAction> {
        let confirmed = self.sstate == SessionState::Confirmed;
        match m.kind {
            // PptpStartSessionReply: protocolVersion 0, resultCode 2.
            msg::START_SESSION_REPLY if self.sstate >= SessionState::Requested => {
                self.sstate = if byte(m.body, 2) == RESULT_OK {
                    SessionState::Confirmed
                } else {
                    SessionState::Error
                };
            }
            // PptpStopSessionReply: resultCode 0.
            msg::STOP_SESSION_REPLY if self.sstate <= SessionState::StopReq => {
                self.sstate = if byte(m.body, 0) == RESULT_OK {
                    SessionState::None
                } else {
                    SessionState::Error
                };
            }
            // PptpOutCallReply: callID 0, peersCallID 2, resultCode 4.
            msg::OUT_CALL_REPLY
                if confirmed
                    && matches!(self.cstate, CallState::OutReq | CallState::OutConf)
                    && self.pns_call_id == be16(m.body, 2) =>
            {
                if byte(m.body, 4) != RESULT_OK {
                    self.cstate = CallState::None;
                    return None;
                }
                let (cid, pcid) = (be16(m.body, 0), be16(m.body, 2));
                self.cstate = CallState::OutConf;
                self.pac_call_id = cid;
                return Some(PptpAction::ExpectGre {
                    callid: cid,
                    peer_callid: pcid,
                });
            }
            // PptpInCallRequest: callID 0.
            msg::IN_CALL_REQUEST if confirmed => {
                self.cstate = CallState::InReq;
                self.pac_call_id = be16(m.body, 0);
            }
            // PptpInCallConnected: peersCallID 0.
            msg::IN_CALL_CONNECT
                if confirmed
                    && matches!(self.cstate, CallState::InRep | CallState::InConf)
                    && self.pns_call_id == be16(m.body, 0) =>
            {
                self.cstate = CallState::InConf;
                return Some(PptpAction::ExpectGre {
                    callid: self.pac_call_id,
                    peer_callid: self.pns_call_id,
                });
            }
            // No state check: whatever the call ID, the call is gone.
            msg::CALL_DISCONNECT_NOTIFY => {
                self.cstate = CallState::None;
                return Some(PptpAction::DestroySiblings);
            }
            // WAN-Error-Notify, Set-Link-Info and echoes: nothing to track; anything
            // else from the PAC is invalid (ignored).
            _ => {}
        }
        None
    }
}

/// The PPTP helper.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pptp;

impl Helper for Pptp {
    fn help(&self, st: &mut HelperState, cx: &HelpCx<'_>) -> HelpOutcome {
        let mut out = HelpOutcome::default();
        // "don't do any tracking before tcp handshake complete"
        let dir = match cx.ctinfo {
            CtInfo::Established => Dir::Original,
            CtInfo::EstablishedReply => Dir::Reply,
            _ => return out,
        };
        let l4 = cx.pkt.l4();
        let Some(&off) = l4.get(12) else {
            return out;
        };
        let doff = usize::from(off >> 4) * 4;
        if l4.len() < 20 {
            return out;
        }
        let Some(m) = l4.get(doff..).and_then(parse) else {
            return out;
        };
        out.pptp = match dir {
            Dir::Original => st.pptp.outbound(&m),
            Dir::Reply => st.pptp.inbound(&m),
        };
        out
    }
}

#[cfg(test)]
mod tests;
