//! Why a packet is INVALID, ignored, or counted as an error: one variant per kernel
//! check, printed with the kernel's own log wording (`nf_conntrack_log_invalid`).

use crate::packet::NoL4;
use crate::proto::icmp::IcmpReason;
use crate::proto::sctp::SctpReason;
use crate::proto::tcp::TcpReason;
use crate::proto::udp::UdpReason;
use core::fmt;

/// The reason a packet got no ct, or was ignored by its tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// No L4 protocol could be found (fragment offset, IPv6 chain without transport).
    NoL4(NoL4),
    /// The L4 header is too short to build the tuple (ports need 4 bytes).
    TupleTooShort,
    /// GRE version 1 with a protocol other than PPP: no tuple.
    GreNotPptp,
    /// ICMP query type that cannot be inverted (no reply type).
    IcmpNotInvertible {
        /// The type.
        icmp_type: u8,
    },
    /// TCP tracker.
    Tcp(TcpReason),
    /// UDP / UDP-Lite tracker.
    Udp(UdpReason),
    /// ICMP / ICMPv6 tracker and error path.
    Icmp(IcmpReason),
    /// SCTP tracker.
    Sctp(SctpReason),
    /// Generic tracker refused (never on the target kernel; kept for completeness).
    Generic,
    /// Allocation failed: the table is full and nothing could be early-dropped.
    TableFull,
    /// Confirm found the tuple taken and the clash could not be resolved.
    InsertClash,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidReason::NoL4(NoL4::Ipv4Fragment) => {
                f.write_str("fragment with non-zero offset reached conntrack")
            }
            InvalidReason::NoL4(NoL4::Ipv6Fragment) => {
                f.write_str("IPv6 fragment with non-zero offset reached conntrack")
            }
            InvalidReason::NoL4(NoL4::Ipv6NoTransport) => {
                f.write_str("no transport header in the IPv6 extension chain")
            }
            InvalidReason::TupleTooShort => f.write_str("L4 header too short for the tuple"),
            InvalidReason::GreNotPptp => f.write_str("GRE version 1 without PPP: no tuple"),
            InvalidReason::IcmpNotInvertible { icmp_type } => {
                write!(f, "icmp type {icmp_type} cannot be inverted")
            }
            InvalidReason::Tcp(r) => r.fmt(f),
            InvalidReason::Udp(r) => r.fmt(f),
            InvalidReason::Icmp(r) => r.fmt(f),
            InvalidReason::Sctp(r) => r.fmt(f),
            InvalidReason::Generic => f.write_str("generic tracker refused"),
            InvalidReason::TableFull => f.write_str("table full"),
            InvalidReason::InsertClash => f.write_str("insert clash"),
        }
    }
}

impl From<TcpReason> for InvalidReason {
    fn from(r: TcpReason) -> Self {
        InvalidReason::Tcp(r)
    }
}
impl From<UdpReason> for InvalidReason {
    fn from(r: UdpReason) -> Self {
        InvalidReason::Udp(r)
    }
}
impl From<IcmpReason> for InvalidReason {
    fn from(r: IcmpReason) -> Self {
        InvalidReason::Icmp(r)
    }
}
impl From<SctpReason> for InvalidReason {
    fn from(r: SctpReason) -> Self {
        InvalidReason::Sctp(r)
    }
}
