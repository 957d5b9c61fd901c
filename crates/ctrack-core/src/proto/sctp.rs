//! SCTP tracker (STUB: being written; see the helper's task). Interface only.

use super::{Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::Packet;
use crate::tuple::Dir;
use core::fmt;

/// SCTP connection states (kernel `enum sctp_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SctpState {
    /// NONE.
    #[default]
    None,
}

impl SctpState {
    /// The `conntrack -L` word.
    pub fn name(self) -> &'static str {
        "NONE"
    }
}

/// SCTP invalid/ignore reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SctpReason {
    /// Truncated.
    Truncated,
}

impl fmt::Display for SctpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated packet")
    }
}

/// Per-connection SCTP state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SctpConn {
    state: SctpState,
}

impl SctpConn {
    /// Current state.
    pub fn state(&self) -> SctpState {
        self.state
    }
    /// GC early-eviction eligibility.
    pub fn can_early_drop(&self) -> bool {
        false
    }
    /// `sctp_new`.
    pub(crate) fn new(_pkt: &Packet<'_>, _cx: &Cx<'_>) -> Result<SctpConn, InvalidReason> {
        Err(SctpReason::Truncated.into())
    }
    /// `nf_conntrack_sctp_packet` after `sctp_error`.
    pub(crate) fn packet(
        &mut self,
        _pkt: &Packet<'_>,
        _dir: Dir,
        _ecx: &EntryCx,
        _cx: &Cx<'_>,
    ) -> TrackerResult {
        TrackerResult::Invalid {
            reason: SctpReason::Truncated.into(),
            set_timeout: None,
        }
    }
}

/// `sctp_error`: header length, checksum, flag combination.
pub(crate) fn error(_pkt: &Packet<'_>, _cx: &Cx<'_>) -> Result<(), InvalidReason> {
    Ok(())
}
