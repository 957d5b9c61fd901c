//! UDP and UDP-Lite (kernel `nf_conntrack_proto_udp.c`: `udp_error`, `udplite_error`,
//! `nf_conntrack_udp_packet`, `nf_conntrack_udplite_packet`; kernel-semantics.md §8).
//!
//! UDP: 30 s until a reply was seen *and* a packet arrives more than 2 s after the entry
//! was created; then 120 s and ASSURED. UDP-Lite: ASSURED and 120 s as soon as a packet
//! follows the first reply (no 2-second rule).

use super::{Accepted, Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::{checksum, Packet};
use crate::status::Status;
use crate::time::{secs, Duration, Instant};
use crate::tuple::proto;
use core::fmt;

/// Why a UDP or UDP-Lite packet is INVALID (the kernel's log text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpReason {
    /// Fewer than 8 bytes of header.
    ShortPacket,
    /// Length field larger than the packet or below 8.
    TruncatedMalformed,
    /// Checksum wrong.
    BadChecksum,
    /// UDP-Lite coverage below 8 or beyond the packet.
    InvalidCoverage,
    /// UDP-Lite checksum 0 (mandatory).
    ChecksumMissing,
}

impl fmt::Display for UdpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpReason::ShortPacket => "short packet",
            UdpReason::TruncatedMalformed => "truncated/malformed packet",
            UdpReason::BadChecksum => "bad checksum",
            UdpReason::InvalidCoverage => "invalid checksum coverage",
            UdpReason::ChecksumMissing => "checksum missing",
        })
    }
}

/// Per-entry UDP state: when the entry stops counting as "fresh" (2 s after creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpConn {
    stream_ts: Instant,
}

/// `udp_error`.
pub(crate) fn error(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<(), InvalidReason> {
    error_inline(pkt, cx)
}

/// [`error`], for a caller that wants it inline (the express hit on the UDP view).
#[inline(always)]
pub(crate) fn error_inline(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<(), InvalidReason> {
    let l4 = pkt.l4();
    let h = l4.get(..8).ok_or(UdpReason::ShortPacket)?;
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if len > l4.len() || len < 8 {
        return Err(UdpReason::TruncatedMalformed.into());
    }
    if h[6] == 0 && h[7] == 0 {
        return Ok(());
    }
    if cx.check_checksum && !pkt.l4_checksum_ok(proto::UDP) {
        return Err(UdpReason::BadChecksum.into());
    }
    Ok(())
}

/// `udplite_error`. Quirk kept from the kernel: the checksum is verified with pseudo-header
/// protocol 17 (UDP), not 136.
pub(crate) fn error_lite(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<(), InvalidReason> {
    let l4 = pkt.l4();
    let h = l4.get(..8).ok_or(UdpReason::ShortPacket)?;
    let udplen = l4.len();
    let mut cscov = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if cscov == 0 {
        cscov = udplen;
    } else if cscov < 8 || cscov > udplen {
        return Err(UdpReason::InvalidCoverage.into());
    }
    if h[6] == 0 && h[7] == 0 {
        return Err(UdpReason::ChecksumMissing.into());
    }
    if cx.check_checksum {
        let len = u32::try_from(udplen).unwrap_or(u32::MAX);
        let acc = checksum::pseudo_header(pkt.family, &pkt.src, &pkt.dst, len, proto::UDP);
        if checksum::fold(checksum::sum(acc, &l4[..cscov])) != 0xffff {
            return Err(UdpReason::BadChecksum.into());
        }
    }
    Ok(())
}

impl UdpConn {
    /// First packet: the stream timestamp is set at creation.
    pub(crate) fn new(cx: &Cx<'_>) -> UdpConn {
        UdpConn {
            stream_ts: cx.now + Duration::from_secs(2),
        }
    }

    /// `nf_conntrack_udp_packet` after `udp_error`.
    pub(crate) fn packet(&mut self, ecx: &EntryCx, cx: &Cx<'_>) -> TrackerResult {
        let s = cx.sysctls;
        if !ecx.status.has(Status::SEEN_REPLY) {
            return TrackerResult::Accept(Accepted::refresh(secs(
                s.nf_conntrack_udp_timeout.into(),
            )));
        }
        let mut extra = secs(s.nf_conntrack_udp_timeout.into());
        let mut stream = false;
        if cx.now > self.stream_ts {
            extra = secs(s.nf_conntrack_udp_timeout_stream.into());
            stream = !ecx.status.has(Status::ASSURED);
        }
        let mut acc = Accepted::refresh(extra);
        acc.set_assured = stream && !ecx.status.has(Status::NAT_CLASH);
        TrackerResult::Accept(acc)
    }

    /// `nf_conntrack_udplite_packet` after `udplite_error`.
    pub(crate) fn packet_lite(&mut self, ecx: &EntryCx, cx: &Cx<'_>) -> TrackerResult {
        let s = cx.sysctls;
        if ecx.status.has(Status::SEEN_REPLY) {
            let mut acc = Accepted::refresh(secs(s.nf_conntrack_udp_timeout_stream.into()));
            acc.set_assured = !ecx.status.has(Status::NAT_CLASH);
            TrackerResult::Accept(acc)
        } else {
            TrackerResult::Accept(Accepted::refresh(secs(s.nf_conntrack_udp_timeout.into())))
        }
    }
}
