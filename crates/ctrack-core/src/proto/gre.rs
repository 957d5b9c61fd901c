//! GRE (kernel `nf_conntrack_proto_gre.c`: `gre_pkt_to_tuple`, `nf_conntrack_gre_packet`;
//! kernel-semantics-2.md §2). Version 0 keys never enter the tuple; version 1 (PPTP)
//! uses the call ID as the destination key and, as the source key, what the PPTP
//! helper's keymap ([`super::gre_keymap`]) holds for it. Timeouts are stored per entry
//! at creation (an expected PPTP data connection gets them too: the kernel's
//! `pptp_expectfn` sets 600 s / 18000 s, but `nf_conntrack_gre_packet` then overwrites
//! both with the sysctls on the unconfirmed entry; the live kernel shows
//! `timeout=30, stream_timeout=180`).

use super::{Accepted, Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::status::Status;
use crate::time::secs;

/// Per-entry GRE state: the two timeouts, in seconds, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GreConn {
    /// Unreplied timeout (s).
    pub timeout: u32,
    /// Stream timeout (s).
    pub stream_timeout: u32,
}

/// `gre_pkt_to_tuple` without the keymap: (src key, dst key), the src key 0. For a
/// version-1 PPP packet ([`pptp_call_id`] is `Some`) the caller then takes the src key
/// from the keymap ([`super::gre_keymap::GreKeymap::lookup`]).
pub(crate) fn keys(l4: &[u8]) -> Result<(u16, u16), InvalidReason> {
    let Some(base) = l4.get(..4) else {
        return Ok((0, 0));
    };
    if base[1] & 0x07 != 1 {
        return Ok((0, 0));
    }
    let Some(p) = l4.get(..8) else {
        return Ok((0, 0));
    };
    if u16::from_be_bytes([base[2], base[3]]) != 0x880b {
        return Err(InvalidReason::GreNotPptp);
    }
    Ok((0, u16::from_be_bytes([p[6], p[7]])))
}

/// The call ID of a version-1 GRE packet carrying PPP with a full 8-byte header (the
/// packets whose source key comes from the keymap); `None` for any other GRE packet.
pub(crate) fn pptp_call_id(l4: &[u8]) -> Option<u16> {
    let p = l4.get(..8)?;
    (p[1] & 0x07 == 1 && u16::from_be_bytes([p[2], p[3]]) == 0x880b)
        .then(|| u16::from_be_bytes([p[6], p[7]]))
}

impl GreConn {
    /// Timeouts from the sysctls at creation.
    pub(crate) fn new(cx: &Cx<'_>) -> GreConn {
        GreConn {
            timeout: cx.sysctls.nf_conntrack_gre_timeout,
            stream_timeout: cx.sysctls.nf_conntrack_gre_timeout_stream,
        }
    }

    /// `nf_conntrack_gre_packet`.
    pub(crate) fn packet(&mut self, ecx: &EntryCx) -> TrackerResult {
        if ecx.status.has(Status::SEEN_REPLY) {
            let mut acc = Accepted::refresh(secs(self.stream_timeout.into()));
            acc.set_assured = !ecx.status.has(Status::NAT_CLASH);
            TrackerResult::Accept(acc)
        } else {
            TrackerResult::Accept(Accepted::refresh(secs(self.timeout.into())))
        }
    }
}
