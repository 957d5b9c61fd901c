//! ICMP and ICMPv6 (kernel `nf_conntrack_proto_icmp.c`, `nf_conntrack_proto_icmpv6.c`;
//! kernel-semantics.md §3, §9).
//!
//! Queries (echo, timestamp, info, mask, node info) are flows keyed by (id, type, code);
//! errors are RELATED to the flow they quote (the lookup itself is done by the engine,
//! `Conntrack::icmp_error`); ICMPv6 ND/MLD are UNTRACKED.

use super::{Accepted, Cx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::{checksum, Packet};
use crate::time::secs;
use crate::tuple::{proto, Addr, Family};
use core::fmt;

/// Why an ICMP packet is INVALID or counted as an error (the kernel's log text where it logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpReason {
    /// Fewer than 8 bytes of ICMP header.
    ShortPacket,
    /// ICMPv4 checksum wrong.
    BadChecksum,
    /// ICMPv4 type above 18.
    InvalidType,
    /// ICMPv6 checksum wrong.
    V6ChecksumFailed,
    /// ICMPv6 redirect shorter than its fixed part.
    ShortRedirect,
    /// ICMPv6 redirect with hop limit ≠ 255 or a non-link-local source.
    RedirectBadSource,
    /// ICMPv6 redirect without options.
    RedirectNoOptions,
    /// The quoted packet does not give a tuple (truncated, fragment, bad inner header).
    InnerNoTuple,
    /// The quoted packet is an ICMP query that cannot be inverted.
    InnerNotInvertible,
    /// The quoted packet matches no entry.
    NoMatch,
    /// The error's outer destination differs from the matched tuple's destination.
    OuterMismatch {
        /// Family of both addresses.
        family: Family,
        /// Outer destination.
        outer: Addr,
        /// The matched direction's tuple destination.
        inner: Addr,
    },
    /// A query type that may not create an entry (e.g. an echo reply first).
    CannotCreate {
        /// The type.
        icmp_type: u8,
    },
}

impl IcmpReason {
    /// Whether the packet counts in `error` (error path) rather than `invalid`.
    pub fn is_error_path(&self) -> bool {
        !matches!(self, IcmpReason::CannotCreate { .. })
    }
}

impl fmt::Display for IcmpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IcmpReason::ShortPacket => f.write_str("short packet"),
            IcmpReason::BadChecksum => f.write_str("bad hw icmp checksum"),
            IcmpReason::InvalidType => f.write_str("invalid icmp type"),
            IcmpReason::V6ChecksumFailed => f.write_str("ICMPv6 checksum failed"),
            IcmpReason::ShortRedirect => f.write_str("short redirect"),
            IcmpReason::RedirectBadSource => f.write_str("invalid saddr or hoplimit for redirect"),
            IcmpReason::RedirectNoOptions => f.write_str("redirect without options"),
            IcmpReason::InnerNoTuple => f.write_str("error quotes no usable tuple"),
            IcmpReason::InnerNotInvertible => f.write_str("error quotes a non-invertible icmp"),
            IcmpReason::NoMatch => f.write_str("error quotes no known connection"),
            IcmpReason::OuterMismatch {
                family,
                outer,
                inner,
            } => write!(
                f,
                "outer daddr {} != inner {}",
                outer.to_ip(*family),
                inner.to_ip(*family)
            ),
            IcmpReason::CannotCreate { icmp_type } => {
                write!(f, "icmp type {icmp_type} cannot create a connection")
            }
        }
    }
}

/// What the error handler decided before the normal lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcmpClass {
    /// Not an error: track as a query flow.
    Query,
    /// An error quoting the IP packet at this offset of `pkt.data()`.
    Error {
        /// Offset of the quoted IP header.
        inner_off: usize,
    },
    /// ICMPv6 ND/MLD: untracked.
    Untracked,
    /// Rejected by the error path (`error`++).
    Reject(IcmpReason),
}

/// `nf_conntrack_icmpv4_error` up to the inner lookup.
pub(crate) fn classify_v4(pkt: &Packet<'_>, cx: &Cx<'_>) -> IcmpClass {
    let l4 = pkt.l4();
    let Some(h) = l4.get(..8) else {
        return IcmpClass::Reject(IcmpReason::ShortPacket);
    };
    if cx.check_checksum && !checksum::verify(l4) {
        return IcmpClass::Reject(IcmpReason::BadChecksum);
    }
    match h[0] {
        t if t > 18 => IcmpClass::Reject(IcmpReason::InvalidType),
        3 | 4 | 5 | 11 | 12 => IcmpClass::Error {
            inner_off: pkt.l4_off + 8,
        },
        _ => IcmpClass::Query,
    }
}

/// `nf_conntrack_icmpv6_error` up to the inner lookup.
pub(crate) fn classify_v6(pkt: &Packet<'_>, cx: &Cx<'_>) -> IcmpClass {
    let l4 = pkt.l4();
    let Some(h) = l4.get(..8) else {
        return IcmpClass::Reject(IcmpReason::ShortPacket);
    };
    if cx.check_checksum && !pkt.l4_checksum_ok(proto::ICMPV6) {
        return IcmpClass::Reject(IcmpReason::V6ChecksumFailed);
    }
    let ty = h[0];
    if matches!(ty, 130..=136 | 143 | 151 | 152) {
        return IcmpClass::Untracked;
    }
    if ty == 137 {
        return classify_redirect(pkt);
    }
    if ty >= 128 {
        return IcmpClass::Query;
    }
    IcmpClass::Error {
        inner_off: pkt.l4_off + 8,
    }
}

/// `nf_conntrack_icmpv6_redirect`: 40-byte message, then ND options; the first must be a
/// Redirected Header option (type 4), whose 8-byte header precedes the quoted packet.
fn classify_redirect(pkt: &Packet<'_>) -> IcmpClass {
    let l4 = pkt.l4();
    let Some(msg) = l4.get(..40) else {
        return IcmpClass::Reject(IcmpReason::ShortRedirect);
    };
    if msg[1] != 0 {
        return IcmpClass::Query;
    }
    let link_local = pkt.src.0[0] == 0xfe && pkt.src.0[1] & 0xc0 == 0x80;
    if pkt.ttl != 255 || !link_local {
        return IcmpClass::Reject(IcmpReason::RedirectBadSource);
    }
    match l4.get(40..42) {
        Some(opt) if opt[1] != 0 => {
            if opt[0] != 4 {
                IcmpClass::Query
            } else {
                IcmpClass::Error {
                    inner_off: pkt.l4_off + 48,
                }
            }
        }
        _ => IcmpClass::Reject(IcmpReason::RedirectNoOptions),
    }
}

/// The reply type of an invertible ICMP query type (`invmap`).
pub fn invert_type(family: Family, ty: u8) -> Option<u8> {
    match family {
        Family::V4 => match ty {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        },
        Family::V6 => match ty {
            128 => Some(129),
            129 => Some(128),
            139 => Some(140),
            140 => Some(139),
            _ => None,
        },
    }
}

/// Whether a query type may create an entry (`valid_new`).
fn valid_new(family: Family, ty: u8) -> bool {
    match family {
        Family::V4 => matches!(ty, 8 | 13 | 15 | 17),
        Family::V6 => matches!(ty, 128 | 139),
    }
}

/// `nf_conntrack_icmp_packet` / `nf_conntrack_icmpv6_packet`. ICMPv4 checks the original
/// type on every packet, ICMPv6 only while unconfirmed (same effect).
pub(crate) fn packet(
    family: Family,
    orig_type: u8,
    unconfirmed: bool,
    cx: &Cx<'_>,
) -> TrackerResult {
    let check = match family {
        Family::V4 => true,
        Family::V6 => unconfirmed,
    };
    if check && !valid_new(family, orig_type) {
        return TrackerResult::Invalid {
            reason: InvalidReason::Icmp(IcmpReason::CannotCreate {
                icmp_type: orig_type,
            }),
            set_timeout: None,
        };
    }
    let t = match family {
        Family::V4 => cx.sysctls.nf_conntrack_icmp_timeout,
        Family::V6 => cx.sysctls.nf_conntrack_icmpv6_timeout,
    };
    TrackerResult::Accept(Accepted::refresh(secs(t.into())))
}
