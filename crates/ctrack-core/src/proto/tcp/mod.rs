//! TCP tracker (STUB: being written; see the helper's task). Interface only.

use super::{Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::Packet;
use crate::tuple::Dir;
use core::fmt;

/// TCP connection states (kernel `enum tcp_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// NONE.
    #[default]
    None,
}

impl TcpState {
    /// The `conntrack -L` word.
    pub fn name(self) -> &'static str {
        "NONE"
    }
}

/// TCP invalid/ignore reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpReason {
    /// Truncated.
    Truncated,
}

impl fmt::Display for TcpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated packet")
    }
}

/// Per-connection TCP state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpConn {
    state: TcpState,
}

impl TcpConn {
    /// Current state.
    pub fn state(&self) -> TcpState {
        self.state
    }
    /// GC early-eviction eligibility.
    pub fn can_early_drop(&self) -> bool {
        false
    }
    /// `tcp_new`.
    pub(crate) fn new(_pkt: &Packet<'_>, _cx: &Cx<'_>) -> Result<TcpConn, InvalidReason> {
        Err(TcpReason::Truncated.into())
    }
    /// `nf_conntrack_tcp_packet` after `tcp_error`.
    pub(crate) fn packet(
        &mut self,
        _pkt: &Packet<'_>,
        _dir: Dir,
        _ecx: &EntryCx,
        _cx: &Cx<'_>,
    ) -> TrackerResult {
        TrackerResult::Invalid {
            reason: TcpReason::Truncated.into(),
            set_timeout: None,
        }
    }
}

/// `tcp_error`: header length, checksum, flag combination.
pub(crate) fn error(_pkt: &Packet<'_>, _cx: &Cx<'_>) -> Result<(), InvalidReason> {
    Ok(())
}
