//! ICMP and ICMPv6 (stub).
use core::fmt;
/// ICMP reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpReason {
    /// Short.
    ShortPacket,
}
impl fmt::Display for IcmpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("short packet")
    }
}
