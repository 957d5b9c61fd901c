//! UDP and UDP-Lite (stub).
use core::fmt;
/// UDP reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpReason {
    /// Short.
    ShortPacket,
}
impl fmt::Display for UdpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("short packet")
    }
}
/// UDP per-entry state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpConn;
