//! GRE (kernel `nf_conntrack_proto_gre.c`: `gre_pkt_to_tuple`, `nf_conntrack_gre_packet`;
//! kernel-semantics-2.md §2). Version 0 keys never enter the tuple; version 1 (PPTP)
//! uses the call ID. Timeouts are stored per entry at creation.

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

/// `gre_pkt_to_tuple`: (src key, dst key). The PPTP keymap (filled by the PPTP helper) is
/// not modelled yet, so the source key of a version-1 tuple is 0.
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
