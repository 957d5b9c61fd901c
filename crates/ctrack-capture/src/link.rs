//! Link-layer decapsulation: from a captured frame to the IP packet inside.
//!
//! [`decode`] takes the link type of the interface, the captured bytes and
//! the byte order of the capture, and returns a [`Payload`]: either the IP
//! packet (from its first header byte to the end of the captured frame,
//! link padding included) or the reason the frame carries no IP packet.
//! Nothing here allocates.

use std::fmt;

/// `LINKTYPE_NULL`: BSD loopback, 4-byte address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `DLT_RAW` as most systems number it (libpcap maps it to `LINKTYPE_RAW`).
pub const LINKTYPE_RAW_12: u32 = 12;
/// `DLT_RAW` as OpenBSD numbers it (libpcap maps it to `LINKTYPE_RAW`).
pub const LINKTYPE_RAW_14: u32 = 14;
/// `LINKTYPE_RAW`: raw IPv4 or IPv6, told apart by the version nibble.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_LOOP`: OpenBSD loopback, 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// `LINKTYPE_LINUX_SLL`: Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// `LINKTYPE_IPV4`: raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// `LINKTYPE_IPV6`: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// `LINKTYPE_NFLOG`: Linux netfilter NFLOG.
pub const LINKTYPE_NFLOG: u32 = 239;
/// `LINKTYPE_LINUX_SLL2`: Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Ethertype of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q customer VLAN tag.
const ETHERTYPE_8021Q: u16 = 0x8100;
/// 802.1ad service VLAN tag (QinQ outer tag).
const ETHERTYPE_8021AD: u16 = 0x88A8;
/// Pre-standard QinQ outer tag.
const ETHERTYPE_QINQ_9100: u16 = 0x9100;

/// BSD `AF_INET`.
const BSD_AF_INET: u32 = 2;
/// `AF_INET6` on NetBSD, OpenBSD and BSD/OS.
const BSD_AF_INET6_BSD: u32 = 24;
/// `AF_INET6` on FreeBSD.
const BSD_AF_INET6_FREEBSD: u32 = 28;
/// `AF_INET6` on macOS.
const BSD_AF_INET6_DARWIN: u32 = 30;

/// Linux `NFPROTO_IPV4` (= `AF_INET`), byte 0 of the NFLOG header.
const NFPROTO_IPV4: u8 = 2;
/// Linux `NFPROTO_IPV6` (= `AF_INET6`), byte 0 of the NFLOG header.
const NFPROTO_IPV6: u8 = 10;
/// NFLOG attribute carrying the packet, from its network header on.
const NFULA_PAYLOAD: u16 = 9;
/// Mask of the attribute type bits (without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3FFF;

/// The IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// How many VLAN tags a [`VlanStack`] holds; a frame with more tags is
/// returned as non-IP with [`NonIpReason::TooManyVlanTags`].
pub const MAX_VLAN_TAGS: usize = 7;

/// The VLAN ids (12-bit VIDs) of the 802.1Q / 802.1ad / 0x9100 tags of a
/// frame, outermost first. A fixed array: building one never allocates.
///
/// 16 bytes, 8-aligned, so that records copy it in whole words.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct VlanStack {
    /// The ids; entries at `len..` are always zero.
    ids: [u16; MAX_VLAN_TAGS],
    /// How many ids are in use.
    len: u16,
}

impl VlanStack {
    /// An empty stack (an untagged frame).
    pub const fn new() -> VlanStack {
        VlanStack {
            ids: [0; MAX_VLAN_TAGS],
            len: 0,
        }
    }

    /// Builds a stack from ids, outermost first; `None` if there are more
    /// than [`MAX_VLAN_TAGS`]. Ids are masked to 12 bits.
    pub fn from_ids(ids: &[u16]) -> Option<VlanStack> {
        let mut stack = VlanStack::new();
        for &id in ids {
            if !stack.push(id) {
                return None;
            }
        }
        Some(stack)
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for an untagged frame.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The VLAN ids, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..self.len()).unwrap_or(&[])
    }

    /// The outermost VLAN id, if any.
    pub fn outer(&self) -> Option<u16> {
        self.as_slice().first().copied()
    }

    /// The innermost VLAN id, if any.
    pub fn inner(&self) -> Option<u16> {
        self.as_slice().last().copied()
    }

    /// Appends an (inner) id; false if the stack is full.
    fn push(&mut self, id: u16) -> bool {
        let len = self.len();
        match self.ids.get_mut(len) {
            Some(slot) => {
                *slot = id & 0x0FFF;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl AsRef<[u16]> for VlanStack {
    fn as_ref(&self) -> &[u16] {
        self.as_slice()
    }
}

impl fmt::Debug for VlanStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Why a record carries no IP packet. Such records are to be skipped and
/// counted by the caller; the value is small, `Copy` and `Hash` so it can
/// key a counter, and its `Display` form is a short human sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NonIpReason {
    /// The interface's link type is not one this crate decapsulates.
    UnsupportedLinkType(u32),
    /// The captured frame is shorter than its link-layer header (or empty).
    TruncatedLinkHeader,
    /// An Ethernet / SLL frame whose (innermost) ethertype is not IPv4 or
    /// IPv6 (ARP, LLDP, ...). Values below 0x0600 are 802.3 length fields
    /// (LLC frames).
    EtherType(u16),
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    TooManyVlanTags,
    /// A NULL / LOOP / NFLOG frame whose address family is not IPv4 or IPv6.
    AddressFamily(u32),
    /// A raw-IP frame whose version nibble is neither 4 nor 6.
    IpVersion(u8),
    /// An NFLOG record with no `NFULA_PAYLOAD` attribute.
    NflogNoPayload,
    /// An NFLOG record whose attribute list is malformed (a length below 4,
    /// or an attribute running past the captured bytes before the payload).
    NflogMalformed,
}

impl fmt::Display for NonIpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NonIpReason::UnsupportedLinkType(lt) => write!(f, "unsupported link type {lt}"),
            NonIpReason::TruncatedLinkHeader => {
                write!(f, "frame shorter than its link-layer header")
            }
            NonIpReason::EtherType(et) if et < 0x0600 => {
                write!(f, "802.3/LLC frame (length field {et})")
            }
            NonIpReason::EtherType(et) => write!(f, "non-IP ethertype 0x{et:04x}"),
            NonIpReason::TooManyVlanTags => {
                write!(f, "more than {MAX_VLAN_TAGS} VLAN tags")
            }
            NonIpReason::AddressFamily(af) => write!(f, "non-IP address family {af}"),
            NonIpReason::IpVersion(v) => write!(f, "raw IP frame with IP version {v}"),
            NonIpReason::NflogNoPayload => write!(f, "NFLOG record without payload attribute"),
            NonIpReason::NflogMalformed => write!(f, "malformed NFLOG attribute list"),
        }
    }
}

/// What a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An IP packet.
    Ip {
        /// IPv4 or IPv6, as the link layer says (ethertype, address
        /// family, link type or version nibble).
        family: IpFamily,
        /// From the first byte of the IP header to the end of the captured
        /// frame. Link-layer padding and trailers are *not* trimmed: use the
        /// IP length field for that.
        l3: &'a [u8],
        /// The VLAN ids of the frame, outermost first (empty if untagged
        /// or the link type has no VLAN tags).
        vlans: VlanStack,
    },
    /// No IP packet; the reason says why.
    NonIp {
        /// Why.
        reason: NonIpReason,
    },
}

impl<'a> Payload<'a> {
    /// The IP bytes, if this is an IP packet.
    pub fn l3(&self) -> Option<&'a [u8]> {
        match *self {
            Payload::Ip { l3, .. } => Some(l3),
            Payload::NonIp { .. } => None,
        }
    }
}

/// Shorthand for a non-IP payload.
#[inline]
fn non_ip(reason: NonIpReason) -> Payload<'static> {
    Payload::NonIp { reason }
}

/// Reads a big-endian `u16` at `off`, if in bounds.
#[inline]
fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(off..)?.first_chunk::<2>()?))
}

/// Reads a `u16` at `off` in the given byte order, if in bounds.
#[inline]
fn u16_at(b: &[u8], off: usize, big_endian: bool) -> Option<u16> {
    let v = u16::from_le_bytes(*b.get(off..)?.first_chunk::<2>()?);
    Some(if big_endian { v.swap_bytes() } else { v })
}

/// Reads a `u32` at `off` in the given byte order, if in bounds.
#[inline]
fn u32_at(b: &[u8], off: usize, big_endian: bool) -> Option<u32> {
    let v = u32::from_le_bytes(*b.get(off..)?.first_chunk::<4>()?);
    Some(if big_endian { v.swap_bytes() } else { v })
}

/// Decapsulates one captured frame.
///
/// `link_type` is the capture's (pcap) or interface's (pcapng) link type;
/// `big_endian` is the byte order of the capture file (pcap header or pcapng
/// section), which is the capturing host's order, used by the host-endian
/// fields of NULL and NFLOG.
#[inline]
pub fn decode(link_type: u32, frame: &[u8], big_endian: bool) -> Payload<'_> {
    match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_RAW | LINKTYPE_RAW_12 | LINKTYPE_RAW_14 => raw_ip(frame),
        LINKTYPE_IPV4 => fixed_family(frame, IpFamily::V4),
        LINKTYPE_IPV6 => fixed_family(frame, IpFamily::V6),
        LINKTYPE_LINUX_SLL => sll(frame),
        LINKTYPE_LINUX_SLL2 => sll2(frame),
        LINKTYPE_NULL => bsd_loopback(frame, Some(big_endian)),
        LINKTYPE_LOOP => bsd_loopback(frame, None),
        LINKTYPE_NFLOG => nflog(frame, big_endian),
        other => non_ip(NonIpReason::UnsupportedLinkType(other)),
    }
}

/// Ethernet II, with any stack of VLAN tags.
#[inline]
fn ethernet(frame: &[u8]) -> Payload<'_> {
    match be16(frame, 12) {
        Some(et) => ethertype_walk(frame, 14, et),
        None => non_ip(NonIpReason::TruncatedLinkHeader),
    }
}

/// Follows VLAN tags from `off` (where the payload of ethertype `et`
/// starts) and classifies the innermost ethertype.
#[inline]
fn ethertype_walk(frame: &[u8], mut off: usize, mut et: u16) -> Payload<'_> {
    let mut vlans = VlanStack::new();
    while matches!(et, ETHERTYPE_8021Q | ETHERTYPE_8021AD | ETHERTYPE_QINQ_9100) {
        let (Some(tci), Some(next)) = (be16(frame, off), be16(frame, off + 2)) else {
            return non_ip(NonIpReason::TruncatedLinkHeader);
        };
        if !vlans.push(tci) {
            return non_ip(NonIpReason::TooManyVlanTags);
        }
        et = next;
        off += 4;
    }
    let family = match et {
        ETHERTYPE_IPV4 => IpFamily::V4,
        ETHERTYPE_IPV6 => IpFamily::V6,
        other => return non_ip(NonIpReason::EtherType(other)),
    };
    match frame.get(off..) {
        Some(l3) => Payload::Ip { family, l3, vlans },
        None => non_ip(NonIpReason::TruncatedLinkHeader),
    }
}

/// Linux cooked capture v1: 16-byte header, protocol at offset 14.
fn sll(frame: &[u8]) -> Payload<'_> {
    match be16(frame, 14) {
        Some(proto) => ethertype_walk(frame, 16, proto),
        None => non_ip(NonIpReason::TruncatedLinkHeader),
    }
}

/// Linux cooked capture v2: 20-byte header, protocol at offset 0.
fn sll2(frame: &[u8]) -> Payload<'_> {
    if frame.len() < 20 {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    }
    match be16(frame, 0) {
        Some(proto) => ethertype_walk(frame, 20, proto),
        None => non_ip(NonIpReason::TruncatedLinkHeader),
    }
}

/// Raw IP: the version nibble decides.
fn raw_ip(frame: &[u8]) -> Payload<'_> {
    let Some(&first) = frame.first() else {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    };
    let family = match first >> 4 {
        4 => IpFamily::V4,
        6 => IpFamily::V6,
        v => return non_ip(NonIpReason::IpVersion(v)),
    };
    Payload::Ip {
        family,
        l3: frame,
        vlans: VlanStack::new(),
    }
}

/// Raw IP whose family the link type gives (228, 229).
fn fixed_family(frame: &[u8], family: IpFamily) -> Payload<'_> {
    if frame.is_empty() {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    }
    Payload::Ip {
        family,
        l3: frame,
        vlans: VlanStack::new(),
    }
}

/// BSD NULL (`host_big_endian` = the capture's byte order) or LOOP (`None`:
/// network order): a 4-byte address family, then the IP packet.
fn bsd_loopback(frame: &[u8], host_big_endian: Option<bool>) -> Payload<'_> {
    let Some(mut af) = u32_at(frame, 0, host_big_endian.unwrap_or(true)) else {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    };
    // As libpcap and tcpdump do for NULL: the family is small, so if the high
    // half is set the capturing host had the other byte order.
    if host_big_endian.is_some() && af & 0xFFFF_0000 != 0 {
        af = af.swap_bytes();
    }
    let family = match af {
        BSD_AF_INET => IpFamily::V4,
        BSD_AF_INET6_BSD | BSD_AF_INET6_FREEBSD | BSD_AF_INET6_DARWIN => IpFamily::V6,
        other => return non_ip(NonIpReason::AddressFamily(other)),
    };
    match frame.get(4..) {
        Some(l3) => Payload::Ip {
            family,
            l3,
            vlans: VlanStack::new(),
        },
        None => non_ip(NonIpReason::TruncatedLinkHeader),
    }
}

/// NFLOG: a 4-byte header (family, version, resource id), then TLVs whose
/// length and type are in the capturing host's byte order, each padded to 4.
/// The packet is the value of the `NFULA_PAYLOAD` TLV (cut to the captured
/// bytes when the snapshot length cut it).
fn nflog(frame: &[u8], host_big_endian: bool) -> Payload<'_> {
    let Some(&af) = frame.first() else {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    };
    if frame.len() < 4 {
        return non_ip(NonIpReason::TruncatedLinkHeader);
    }
    let family = match af {
        NFPROTO_IPV4 => IpFamily::V4,
        NFPROTO_IPV6 => IpFamily::V6,
        other => return non_ip(NonIpReason::AddressFamily(u32::from(other))),
    };
    let mut off = 4usize;
    while let (Some(tlv_len), Some(tlv_type)) = (
        u16_at(frame, off, host_big_endian),
        u16_at(frame, off + 2, host_big_endian),
    ) {
        let tlv_len = usize::from(tlv_len);
        if tlv_len < 4 {
            return non_ip(NonIpReason::NflogMalformed);
        }
        let value_start = off + 4;
        let value_end = off + tlv_len;
        if tlv_type & NLA_TYPE_MASK == NFULA_PAYLOAD {
            let end = value_end.min(frame.len());
            return match frame.get(value_start..end) {
                Some(l3) => Payload::Ip {
                    family,
                    l3,
                    vlans: VlanStack::new(),
                },
                None => non_ip(NonIpReason::NflogMalformed),
            };
        }
        if value_end > frame.len() {
            return non_ip(NonIpReason::NflogMalformed);
        }
        // tlv_len <= 65535, so no overflow here.
        off += (tlv_len + 3) & !3;
    }
    non_ip(NonIpReason::NflogNoPayload)
}
