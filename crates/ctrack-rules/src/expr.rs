//! Compiled matches: a key, an optional mask and a test on fixed-size values, evaluated
//! against a [`PacketCtx`] with no allocation. Also the symbol tables nft uses for
//! protocols, ICMP types, `ct state`, `ct status` and `tcp flags`.

use crate::ast::{Key, Op};
use ctrack_core::conntrack::Conntrack;
use ctrack_core::table::EntryId;
use ctrack_core::{Addr, CtInfo, Dir, Family};

/// What a compiled match tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// The value is inside one of the ranges (single values are `lo == hi`), or not.
    In {
        /// Inclusive ranges.
        ranges: Box<[(u128, u128)]>,
        /// Negated (`!=`).
        neg: bool,
    },
    /// `<`, `>`, `<=`, `>=` against a constant.
    Cmp(Op, u128),
    /// Flag types: any of the bits is set (nft's implicit operator), or none is.
    AnyBits {
        /// The bits.
        bits: u128,
        /// Negated.
        neg: bool,
    },
    /// Interface or helper names; a trailing `*` is a prefix match.
    Str {
        /// (name, prefix match).
        pats: Box<[(Box<str>, bool)]>,
        /// Negated.
        neg: bool,
    },
}

/// A compiled match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CMatch {
    /// What is read.
    pub key: Key,
    /// `& mask` applied first.
    pub mask: Option<u128>,
    /// The test.
    pub test: Test,
}

/// The conntrack part of a packet's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtCtx {
    /// ctinfo, when the packet has a conntrack.
    pub ctinfo: Option<CtInfo>,
    /// Its entry.
    pub entry: Option<EntryId>,
    /// Marked untracked.
    pub untracked: bool,
}

impl CtCtx {
    /// nft's `ct state` bit (invalid 1, established 2, related 4, new 8, untracked 64).
    pub fn state_bit(&self) -> u128 {
        if let Some(ci) = self.ctinfo {
            match ci {
                CtInfo::Established | CtInfo::EstablishedReply => 2,
                CtInfo::Related | CtInfo::RelatedReply => 4,
                CtInfo::New => 8,
            }
        } else if self.untracked {
            64
        } else {
            1
        }
    }
}

/// The headers rules read, parsed once per packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketCtx<'a> {
    /// L3 family.
    pub family: Family,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// `ip protocol` / the first `ip6 nexthdr`.
    pub l3_proto: u8,
    /// `meta l4proto` (after IPv6 extension headers); `None` if not found.
    pub l4proto: Option<u8>,
    /// The L4 header and payload (empty when not found).
    pub l4: &'a [u8],
    /// `meta length`.
    pub len: u32,
    /// `iifname` (None on the output path).
    pub iif: Option<&'a str>,
    /// `oifname` (None on the input path and before routing).
    pub oif: Option<&'a str>,
    /// `meta mark`.
    pub mark: u32,
    /// Conntrack.
    pub ct: CtCtx,
}

impl<'a> PacketCtx<'a> {
    /// Parse an IP packet (already through the IP checks and defrag).
    pub fn parse(data: &'a [u8]) -> Option<PacketCtx<'a>> {
        use ctrack_core::packet::{Packet, ParseError};
        let (pkt, found) = match Packet::parse(data) {
            Ok(p) => (p, true),
            Err(ParseError::NoL4(_, p)) => (p, false),
            Err(ParseError::Truncated) => return None,
        };
        let l3_proto = match pkt.family {
            Family::V4 => data.get(9).copied().unwrap_or(0),
            Family::V6 => data.get(6).copied().unwrap_or(0),
        };
        Some(PacketCtx {
            family: pkt.family,
            src: pkt.src,
            dst: pkt.dst,
            l3_proto,
            l4proto: found.then_some(pkt.proto),
            l4: if found { pkt.l4() } else { &[] },
            len: data.len() as u32,
            iif: None,
            oif: None,
            mark: 0,
            ct: CtCtx::default(),
        })
    }

    fn addr(&self, a: &Addr, fam: Family) -> Option<u128> {
        (self.family == fam).then(|| addr_value(a, fam))
    }

    fn l4_u16(&self, off: usize) -> Option<u128> {
        let b = self.l4.get(off..off + 2)?;
        Some(u128::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

/// An address as a number (IPv4 in the low 32 bits).
pub fn addr_value(a: &Addr, fam: Family) -> u128 {
    match fam {
        Family::V4 => u128::from(u32::from_be_bytes(a.v4_octets())),
        Family::V6 => u128::from_be_bytes(a.0),
    }
}

/// The protocol a port key needs (`th` = 0 accepts any transport protocol).
fn port_proto_ok(want: u8, have: Option<u8>) -> bool {
    match have {
        None => false,
        Some(p) if want == 0 => matches!(p, 6 | 17 | 33 | 132 | 136),
        Some(p) => p == want,
    }
}

/// Read a numeric key; `None` means the expression breaks (the rule does not match),
/// as nft's payload, meta and ct expressions do when the data is absent.
pub fn load(key: Key, p: &PacketCtx<'_>, ct: &Conntrack) -> Option<u128> {
    let entry = || p.ct.entry.and_then(|id| ct.entry(id));
    Some(match key {
        Key::IpSaddr => p.addr(&p.src, Family::V4)?,
        Key::IpDaddr => p.addr(&p.dst, Family::V4)?,
        Key::Ip6Saddr => p.addr(&p.src, Family::V6)?,
        Key::Ip6Daddr => p.addr(&p.dst, Family::V6)?,
        Key::IpProtocol if p.family == Family::V4 => u128::from(p.l3_proto),
        Key::Ip6Nexthdr if p.family == Family::V6 => u128::from(p.l3_proto),
        Key::IpProtocol | Key::Ip6Nexthdr => return None,
        Key::L4proto => u128::from(p.l4proto?),
        Key::Nfproto => u128::from(p.family.number()),
        Key::MetaMark => u128::from(p.mark),
        Key::Length => u128::from(p.len),
        Key::Sport(w) if port_proto_ok(w, p.l4proto) => p.l4_u16(0)?,
        Key::Dport(w) if port_proto_ok(w, p.l4proto) => p.l4_u16(2)?,
        Key::Sport(_) | Key::Dport(_) => return None,
        Key::TcpFlags if p.l4proto == Some(6) => u128::from(*p.l4.get(13)?),
        Key::IcmpType if p.l4proto == Some(1) => u128::from(*p.l4.first()?),
        Key::IcmpCode if p.l4proto == Some(1) => u128::from(*p.l4.get(1)?),
        Key::Icmpv6Type if p.l4proto == Some(58) => u128::from(*p.l4.first()?),
        Key::Icmpv6Code if p.l4proto == Some(58) => u128::from(*p.l4.get(1)?),
        Key::TcpFlags | Key::IcmpType | Key::IcmpCode | Key::Icmpv6Type | Key::Icmpv6Code => {
            return None
        }
        Key::CtState => p.ct.state_bit(),
        Key::CtDirection => match p.ct.ctinfo?.dir() {
            Dir::Original => 0,
            Dir::Reply => 1,
        },
        Key::CtStatus => u128::from(entry()?.status.0),
        Key::CtMark => u128::from(entry()?.mark),
        Key::CtZone(None) => u128::from(entry()?.zone.id),
        Key::CtZone(Some(reply)) => {
            let d = if reply { Dir::Reply } else { Dir::Original };
            u128::from(entry()?.zone.id_for(d))
        }
        Key::CtLabel => entry()?.labels(),
        Key::CtL3proto => u128::from(entry()?.family().number()),
        Key::CtProtocol => u128::from(entry()?.proto_num()),
        Key::CtAddr(reply, src, fam) => {
            let e = entry()?;
            let t = &e.tuple(if reply { Dir::Reply } else { Dir::Original });
            let want = if fam == 6 { Family::V6 } else { Family::V4 };
            if t.family != want {
                return None;
            }
            addr_value(if src { &t.src } else { &t.dst }, want)
        }
        Key::CtProto(reply, src) => {
            let t = &entry()?.tuple(if reply { Dir::Reply } else { Dir::Original });
            u128::from(if src { t.src_u } else { t.dst_u })
        }
        // Strings are read by `load_str`.
        Key::Iifname | Key::Oifname | Key::CtHelper => return None,
    })
}

/// Read a string key. `ct helper` is, as in nft_ct, the kernel name (`ftp`, `tftp`) of
/// the helper of the entry's **master**: it matches the connections a helper expected
/// (the FTP data connections), not the helped connection itself (iptables' `-m helper`
/// semantics); no master or no helper there, no match.
pub fn load_str<'a>(key: Key, p: &PacketCtx<'a>, ct: &Conntrack) -> Option<&'a str> {
    match key {
        Key::Iifname => p.iif,
        Key::Oifname => p.oif,
        Key::CtHelper => {
            let e = p.ct.entry.and_then(|id| ct.entry(id))?;
            let (mid, mseq) = e.ext.as_ref()?.master?;
            let m = ct.entry(mid).filter(|m| m.seq == mseq)?;
            let h = m.ext.as_ref()?.helper.as_ref()?;
            Some(h.kind.name())
        }
        _ => None,
    }
}

impl CMatch {
    /// Whether the packet matches.
    pub fn matches(&self, p: &PacketCtx<'_>, ct: &Conntrack) -> bool {
        if let Test::Str { pats, neg } = &self.test {
            let Some(s) = load_str(self.key, p, ct) else {
                return false;
            };
            let hit = pats.iter().any(|(pat, prefix)| {
                if *prefix {
                    s.starts_with(&**pat)
                } else {
                    s == &**pat
                }
            });
            return hit != *neg;
        }
        let Some(mut v) = load(self.key, p, ct) else {
            return false;
        };
        if let Some(m) = self.mask {
            v &= m;
        }
        match &self.test {
            Test::In { ranges, neg } => ranges.iter().any(|&(lo, hi)| lo <= v && v <= hi) != *neg,
            Test::Cmp(op, c) => match op {
                Op::Lt => v < *c,
                Op::Gt => v > *c,
                Op::Le => v <= *c,
                _ => v >= *c,
            },
            Test::AnyBits { bits, neg } => (v & bits != 0) != *neg,
            Test::Str { .. } => false,
        }
    }
}

/// The type of a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// An integer of this many bits.
    Int(u8),
    /// An IP protocol (names or numbers).
    Proto,
    /// `ipv4`/`ipv6`.
    L3proto,
    /// `ct state` flags.
    CtState,
    /// `ct status` flags.
    CtStatus,
    /// `tcp flags`.
    TcpFlags,
    /// ICMP type names.
    IcmpType,
    /// ICMPv6 type names.
    Icmpv6Type,
    /// ICMP code names.
    IcmpCode,
    /// ICMPv6 code names.
    Icmpv6Code,
    /// `original`/`reply`.
    Direction,
    /// Interface or helper names.
    Str,
    /// `ct label`: one bit per label (a number 0..127 or a name from connlabel.conf).
    CtLabel,
}

impl ValueType {
    /// The type of `key`'s values.
    pub fn of(key: Key) -> ValueType {
        match key {
            Key::IpSaddr | Key::IpDaddr | Key::CtAddr(_, _, 4) => ValueType::Ipv4,
            Key::Ip6Saddr | Key::Ip6Daddr | Key::CtAddr(_, _, _) => ValueType::Ipv6,
            Key::IpProtocol | Key::Ip6Nexthdr | Key::L4proto | Key::CtProtocol => ValueType::Proto,
            Key::Nfproto | Key::CtL3proto => ValueType::L3proto,
            Key::MetaMark | Key::CtMark | Key::Length => ValueType::Int(32),
            Key::Sport(_) | Key::Dport(_) | Key::CtZone(_) | Key::CtProto(..) => ValueType::Int(16),
            Key::CtLabel => ValueType::CtLabel,
            Key::TcpFlags => ValueType::TcpFlags,
            Key::IcmpType => ValueType::IcmpType,
            Key::IcmpCode => ValueType::IcmpCode,
            Key::Icmpv6Type => ValueType::Icmpv6Type,
            Key::Icmpv6Code => ValueType::Icmpv6Code,
            Key::CtState => ValueType::CtState,
            Key::CtStatus => ValueType::CtStatus,
            Key::CtDirection => ValueType::Direction,
            Key::Iifname | Key::Oifname | Key::CtHelper => ValueType::Str,
        }
    }

    /// Flag types: a bare value or a comma list means "any of these bits".
    pub fn is_flags(self) -> bool {
        matches!(
            self,
            ValueType::CtState | ValueType::CtStatus | ValueType::TcpFlags | ValueType::CtLabel
        )
    }

    /// nft's name of the type, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Ipv4 => "IPv4 address",
            ValueType::Ipv6 => "IPv6 address",
            ValueType::Int(_) => "integer",
            ValueType::Proto => "Internet protocol",
            ValueType::L3proto => "nfproto",
            ValueType::CtState => "conntrack state",
            ValueType::CtStatus => "conntrack status",
            ValueType::TcpFlags => "TCP flag",
            ValueType::IcmpType => "ICMP type",
            ValueType::Icmpv6Type => "ICMPv6 type",
            ValueType::IcmpCode => "icmp code",
            ValueType::Icmpv6Code => "icmpv6 code",
            ValueType::Direction => "conntrack direction",
            ValueType::Str => "string",
            ValueType::CtLabel => "conntrack label",
        }
    }

    fn symbol(self, w: &str) -> Option<u128> {
        let table: &[(&str, u128)] = match self {
            ValueType::Proto => &[
                ("icmp", 1),
                ("igmp", 2),
                ("tcp", 6),
                ("udp", 17),
                ("ipv6", 41),
                ("gre", 47),
                ("esp", 50),
                ("ah", 51),
                ("icmpv6", 58),
                ("ipv6-icmp", 58),
                ("dccp", 33),
                ("sctp", 132),
                ("udplite", 136),
            ],
            ValueType::L3proto => &[("ipv4", 2), ("ipv6", 10)],
            ValueType::CtState => &[
                ("invalid", 1),
                ("established", 2),
                ("related", 4),
                ("new", 8),
                ("untracked", 64),
            ],
            ValueType::CtStatus => &[
                ("expected", 1),
                ("seen-reply", 2),
                ("assured", 4),
                ("confirmed", 8),
                ("snat", 16),
                ("dnat", 32),
                ("dying", 512),
            ],
            ValueType::TcpFlags => &[
                ("fin", 1),
                ("syn", 2),
                ("rst", 4),
                ("psh", 8),
                ("ack", 16),
                ("urg", 32),
                ("ecn", 64),
                ("cwr", 128),
            ],
            ValueType::IcmpType => &[
                ("echo-reply", 0),
                ("destination-unreachable", 3),
                ("source-quench", 4),
                ("redirect", 5),
                ("echo-request", 8),
                ("router-advertisement", 9),
                ("router-solicitation", 10),
                ("time-exceeded", 11),
                ("parameter-problem", 12),
                ("timestamp-request", 13),
                ("timestamp-reply", 14),
                ("info-request", 15),
                ("info-reply", 16),
                ("address-mask-request", 17),
                ("address-mask-reply", 18),
            ],
            ValueType::Icmpv6Type => &[
                ("destination-unreachable", 1),
                ("packet-too-big", 2),
                ("time-exceeded", 3),
                ("parameter-problem", 4),
                ("echo-request", 128),
                ("echo-reply", 129),
                ("mld-listener-query", 130),
                ("mld-listener-report", 131),
                ("mld-listener-done", 132),
                ("mld-listener-reduction", 132),
                ("nd-router-solicit", 133),
                ("nd-router-advert", 134),
                ("nd-neighbor-solicit", 135),
                ("nd-neighbor-advert", 136),
                ("nd-redirect", 137),
                ("router-renumbering", 138),
                ("ind-neighbor-solicit", 141),
                ("ind-neighbor-advert", 142),
                ("mld2-listener-report", 143),
            ],
            ValueType::IcmpCode => &[
                ("net-unreachable", 0),
                ("host-unreachable", 1),
                ("prot-unreachable", 2),
                ("port-unreachable", 3),
                ("frag-needed", 4),
                ("net-prohibited", 9),
                ("host-prohibited", 10),
                ("admin-prohibited", 13),
            ],
            ValueType::Icmpv6Code => &[
                ("no-route", 0),
                ("admin-prohibited", 1),
                ("addr-unreachable", 3),
                ("port-unreachable", 4),
                ("policy-fail", 5),
                ("reject-route", 6),
            ],
            ValueType::Direction => &[("original", 0), ("reply", 1)],
            _ => &[],
        };
        table.iter().find(|(n, _)| *n == w).map(|&(_, v)| v)
    }

    fn max(self) -> u128 {
        match self {
            ValueType::Int(bits) => (1u128 << bits) - 1,
            ValueType::Ipv4 => u128::from(u32::MAX),
            ValueType::Ipv6 => u128::MAX,
            ValueType::CtStatus => 0xffff_ffff,
            _ => 0xff,
        }
    }

    /// One value (no range, no prefix): a symbol or a number.
    pub fn scalar(self, w: &str) -> Result<u128, String> {
        match self {
            ValueType::Ipv4 => w
                .parse::<std::net::Ipv4Addr>()
                .map(|a| u128::from(u32::from(a)))
                .map_err(|_| format!("Could not resolve hostname: {w} (not an {})", self.name())),
            ValueType::Ipv6 => w
                .parse::<std::net::Ipv6Addr>()
                .map(u128::from)
                .map_err(|_| format!("Could not resolve hostname: {w} (not an {})", self.name())),
            ValueType::CtLabel => crate::connlabel::resolve(w).map(|b| 1u128 << b),
            _ => {
                if let Some(v) = self.symbol(w) {
                    return Ok(v);
                }
                let n = if let Some(h) = w.strip_prefix("0x") {
                    u128::from_str_radix(h, 16).ok()
                } else {
                    w.parse::<u128>().ok()
                };
                match n {
                    Some(n) if n <= self.max() => Ok(n),
                    Some(_) => Err(format!("Value {w} exceeds valid range 0-{}", self.max())),
                    None => Err(format!("Could not parse {}: {w}", self.name())),
                }
            }
        }
    }

    /// A word as an inclusive range: `v`, `lo-hi`, `addr/len`.
    pub fn range(self, w: &str) -> Result<(u128, u128), String> {
        if let Ok(v) = self.scalar(w) {
            return Ok((v, v));
        }
        if matches!(self, ValueType::Ipv4 | ValueType::Ipv6) {
            if let Some((a, l)) = w.split_once('/') {
                let base = self.scalar(a)?;
                let bits: u32 = if self == ValueType::Ipv4 { 32 } else { 128 };
                let len: u32 = l
                    .parse()
                    .ok()
                    .filter(|&n| n <= bits)
                    .ok_or_else(|| format!("invalid prefix length in {w}"))?;
                return Ok(prefix_range(base, len, bits));
            }
        }
        // A range: split at a '-' that makes both sides parse (names contain '-').
        for (i, c) in w.char_indices() {
            if c == '-' && i > 0 {
                if let (Ok(lo), Ok(hi)) = (self.scalar(&w[..i]), self.scalar(&w[i + 1..])) {
                    if lo > hi {
                        return Err(format!("Range has zero or negative size: {w}"));
                    }
                    return Ok((lo, hi));
                }
            }
        }
        self.scalar(w).map(|v| (v, v))
    }
}

/// The inclusive range of a prefix `base/len` in a `bits`-bit space.
pub fn prefix_range(base: u128, len: u32, bits: u32) -> (u128, u128) {
    let host_bits = bits - len;
    let host = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (base & !host, (base & !host) | host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_ranges() {
        assert_eq!(ValueType::Int(16).range("1024-2048"), Ok((1024, 2048)));
        assert_eq!(
            ValueType::Ipv4.range("10.0.0.0/8"),
            Ok((0x0a00_0000, 0x0aff_ffff))
        );
        assert_eq!(
            ValueType::Ipv4.range("192.168.1.1-192.168.1.9"),
            Ok((0xc0a8_0101, 0xc0a8_0109))
        );
        assert_eq!(
            ValueType::Icmpv6Type.range("nd-neighbor-solicit"),
            Ok((135, 135))
        );
        assert_eq!(
            ValueType::Ipv6.range("fe80::/10").map(|r| r.0 >> 118),
            Ok(0x3fa)
        );
        assert!(ValueType::Int(16).range("70000").is_err());
        assert_eq!(ValueType::Int(32).range("0x10"), Ok((16, 16)));
    }
}
