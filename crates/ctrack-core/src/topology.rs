//! The replay topology: a Linux router with two interfaces, `client` and `server`.
//!
//! * [`SideAssigner`] decides which interface a packet enters on: the side of its
//!   flow's original direction (the first packet of a flow defines it) is `client`;
//!   an ICMP error enters opposite to the sender of the packet it quotes;
//!   `--client-net` prefixes override both ("source in a client net → client").
//! * [`route`] is what the router does with a packet after PREROUTING: forward it
//!   (a new entry is confirmed at POSTROUTING), deliver it locally (confirmed at
//!   LOCAL_IN: 255.255.255.255, 224.0.0.1, ff02::1, ff02::2, ff05::2), or drop it
//!   before confirm (TTL/hop limit ≤ 1, martians, bad IPv4 options, unjoined
//!   multicast, link-local IPv6 sources or destinations) — the packet keeps its
//!   ctstate but its new entry is never confirmed (kernel-semantics-2.md §4).
//!
//! The router has no IP addresses of its own and forwards every other unicast
//! address (the kernel-parity harness builds exactly this with policy routing), and
//! its interfaces have the largest MTU (65535), so no packet is too big to forward.

use crate::tuple::{proto, Addr, Family};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The side assigner's map hasher: a multiply-rotate fold of the key's words with a
/// murmur3 finish, ~10× cheaper than `RandomState`'s SipHash per packet. Not keyed:
/// these maps hold one capture's flows, are rebuilt per replay, and a crafted capture
/// can at worst slow its own replay down (the conntrack table itself keeps its keyed
/// SipHash).
#[derive(Default, Clone, Copy)]
struct FoldHasher(u64);

impl FoldHasher {
    #[inline(always)]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut it = bytes.chunks_exact(8);
        for c in &mut it {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = it.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ (rest.len() as u64) << 56);
        }
    }
    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }
    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.add(u64::from(v));
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3 fmix64: every input bit reaches the high bits (hashbrown's tags) and
        // the low bits (its bucket index).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// An interface of the replay router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The side where connections start (original direction enters here).
    Client,
    /// The other side.
    Server,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// An address prefix (`--client-net 10.1.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    family: Family,
    addr: Addr,
    len: u8,
}

impl Cidr {
    /// Parse `ADDR/LEN` or a bare address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}`: not an address or prefix"))?;
        let (family, addr, max) = match ip {
            std::net::IpAddr::V4(v) => (Family::V4, Addr::v4(v.octets()), 32),
            std::net::IpAddr::V6(v) => (Family::V6, Addr::v6(v.octets()), 128),
        };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { family, addr, len })
    }

    /// Whether `a` (of family `f`) is inside the prefix.
    pub fn contains(&self, f: Family, a: &Addr) -> bool {
        if f != self.family {
            return false;
        }
        let full = usize::from(self.len / 8);
        let rest = self.len % 8;
        if a.0[..full] != self.addr.0[..full] {
            return false;
        }
        if rest == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rest);
        a.0[full] & mask == self.addr.0[full] & mask
    }
}

/// A direction-free flow key: protocol, and both endpoints sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    proto: u8,
    /// ICMP query id and request type (0 for port-based protocols).
    icmp: u32,
    a: (Addr, u16),
    b: (Addr, u16),
}

/// What the side assigner needs from a packet's headers.
#[derive(Debug, Clone, Copy)]
struct Head {
    family: Family,
    src: Addr,
    dst: Addr,
    proto: u8,
    /// (src port/id, dst port/query class) when the L4 header is there.
    ports: Option<(u16, u16)>,
    /// Offset of the quoted packet when this is an ICMP error.
    quoted: Option<usize>,
    /// Fragment identity (non-first fragments have no ports).
    frag: Option<(u32, bool)>,
}

/// Decides the entry side of each packet, in capture order.
#[derive(Debug, Default)]
pub struct SideAssigner {
    client_nets: Vec<Cidr>,
    flows: FastMap<FlowKey, Addr>,
    frags: FastMap<(Addr, Addr, u32), Side>,
}

impl SideAssigner {
    /// A new assigner; with `client_nets`, the source address alone decides.
    pub fn new(client_nets: Vec<Cidr>) -> SideAssigner {
        SideAssigner {
            client_nets,
            ..SideAssigner::default()
        }
    }

    /// The side `pkt` (an IP packet from its header) enters on.
    pub fn side(&mut self, pkt: &[u8]) -> Side {
        let Some(h) = head(pkt) else {
            return Side::Client;
        };
        if !self.client_nets.is_empty() {
            return if self
                .client_nets
                .iter()
                .any(|c| c.contains(h.family, &h.src))
            {
                Side::Client
            } else {
                Side::Server
            };
        }
        if let Some(off) = h.quoted {
            // An ICMP error travels back towards the sender of the quoted packet.
            if let Some(q) = pkt.get(off..).and_then(head) {
                return self.flow_side(&q, false).opposite();
            }
            return Side::Server;
        }
        self.flow_side(&h, true)
    }

    fn flow_side(&mut self, h: &Head, learn: bool) -> Side {
        if let Some((id, first)) = h.frag {
            let key = (h.src, h.dst, id);
            if !first {
                if let Some(&s) = self.frags.get(&key) {
                    return s;
                }
            }
            let s = self.by_flow(h, learn);
            if learn {
                self.frags.insert(key, s);
            }
            return s;
        }
        self.by_flow(h, learn)
    }

    fn by_flow(&mut self, h: &Head, learn: bool) -> Side {
        let (sp, dp) = h.ports.unwrap_or((0, 0));
        // ICMP queries: the id and the request type identify the flow in both directions.
        let icmp_query = matches!(h.proto, proto::ICMP | proto::ICMPV6);
        let (x, y, icmp) = if icmp_query {
            ((h.src, 0), (h.dst, 0), u32::from(sp) << 16 | u32::from(dp))
        } else {
            ((h.src, sp), (h.dst, dp), 0)
        };
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        let key = FlowKey {
            proto: h.proto,
            icmp,
            a,
            b,
        };
        match self.flows.get(&key) {
            Some(client) => {
                if *client == h.src {
                    Side::Client
                } else {
                    Side::Server
                }
            }
            None => {
                if learn {
                    self.flows.insert(key, h.src);
                }
                Side::Client
            }
        }
    }
}

/// ICMP query types folded to their request type, so a request and its reply share a key.
fn icmp_query_class(p: u8, ty: u8) -> u16 {
    let c = match (p, ty) {
        (proto::ICMP, 0) => 8,
        (proto::ICMP, 14) => 13,
        (proto::ICMP, 16) => 15,
        (proto::ICMP, 18) => 17,
        (proto::ICMPV6, 129) => 128,
        (proto::ICMPV6, 140) => 139,
        (_, t) => t,
    };
    u16::from(c)
}

fn head(pkt: &[u8]) -> Option<Head> {
    let v = pkt.first()? >> 4;
    let (family, src, dst, mut p, mut off, frag) = match v {
        4 => {
            let h = pkt.get(..20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let fo = u16::from_be_bytes([h[6], h[7]]);
            let id = u32::from(u16::from_be_bytes([h[4], h[5]]));
            let frag = (fo & 0x3fff != 0).then_some((id | u32::from(h[9]) << 16, fo & 0x1fff == 0));
            (
                Family::V4,
                Addr::v4([h[12], h[13], h[14], h[15]]),
                Addr::v4([h[16], h[17], h[18], h[19]]),
                h[9],
                ihl,
                frag,
            )
        }
        6 => {
            let h = pkt.get(..40)?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            (Family::V6, Addr::v6(s), Addr::v6(d), h[6], 40, None)
        }
        _ => return None,
    };
    let mut frag = frag;
    if family == Family::V6 {
        // Walk extension headers; note a fragment header.
        loop {
            match p {
                0 | 43 | 60 | 51 => {
                    let e = pkt.get(off..off + 2)?;
                    let len = if p == 51 {
                        (usize::from(e[1]) + 2) << 2
                    } else {
                        (usize::from(e[1]) + 1) << 3
                    };
                    p = e[0];
                    off += len;
                }
                44 => {
                    let e = pkt.get(off..off + 8)?;
                    let fo = u16::from_be_bytes([e[2], e[3]]);
                    let id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                    frag = Some((id, fo & !0x7 == 0));
                    p = e[0];
                    off += 8;
                    if fo & !0x7 != 0 {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    let non_first = matches!(frag, Some((_, false)));
    let l4 = if non_first {
        &[][..]
    } else {
        pkt.get(off..).unwrap_or(&[])
    };
    let mut quoted = None;
    let ports = match p {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP if l4.len() >= 4 => Some((
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )),
        proto::ICMP | proto::ICMPV6 if l4.len() >= 8 => {
            let ty = l4[0];
            let is_err = match p {
                proto::ICMP => matches!(ty, 3 | 4 | 5 | 11 | 12),
                _ => ty < 128,
            };
            if is_err
                && family
                    == match p {
                        proto::ICMP => Family::V4,
                        _ => Family::V6,
                    }
            {
                quoted = Some(off + 8);
            }
            Some((u16::from_be_bytes([l4[4], l4[5]]), icmp_query_class(p, ty)))
        }
        _ => None,
    };
    Some(Head {
        family,
        src,
        dst,
        proto: p,
        ports,
        quoted,
        frag,
    })
}

/// What the router does with a packet after PREROUTING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Forwarded to the other side: a new entry is confirmed at POSTROUTING.
    Forward,
    /// Delivered to the router itself: a new entry is confirmed at LOCAL_IN.
    Local,
    /// Dropped before confirm: the packet had its ctstate, its new entry vanishes.
    Drop(NoRoute),
}

/// Why the router did not forward or deliver a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// TTL or hop limit ≤ 1.
    TtlExceeded,
    /// Martian source (127/8, 0/8, multicast, broadcast; IPv6 ::, multicast, loopback).
    MartianSource,
    /// Martian destination (0.0.0.0, 127/8).
    MartianDestination,
    /// Multicast group the router has not joined.
    Multicast,
    /// IPv4 options the router refuses (malformed, source route).
    BadOptions,
    /// IPv6 link-local source or destination (not forwardable).
    LinkLocal,
}

impl core::fmt::Display for NoRoute {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NoRoute::TtlExceeded => "not forwarded: TTL exceeded",
            NoRoute::MartianSource => "not forwarded: martian source",
            NoRoute::MartianDestination => "not forwarded: martian destination",
            NoRoute::Multicast => "not forwarded: multicast group not joined",
            NoRoute::BadOptions => "not forwarded: bad IP options",
            NoRoute::LinkLocal => "not forwarded: link-local address",
        })
    }
}

/// The router's decision for an IP packet that passed PREROUTING (kernel
/// `ip_rcv_finish`/`ip_route_input`/`ip_forward`, `ip6_route_input`/`ip6_forward`).
pub fn route(pkt: &[u8]) -> Route {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => route_v4(pkt),
        Some(6) => route_v6(pkt),
        _ => Route::Drop(NoRoute::MartianSource),
    }
}

fn route_v4(pkt: &[u8]) -> Route {
    let Some(h) = pkt.get(..20) else {
        return Route::Drop(NoRoute::BadOptions);
    };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl > 20 && !options_ok(pkt.get(20..ihl).unwrap_or(&[])) {
        return Route::Drop(NoRoute::BadOptions);
    }
    let src = [h[12], h[13], h[14], h[15]];
    let dst = [h[16], h[17], h[18], h[19]];
    let multicast = |a: [u8; 4]| (224..=239).contains(&a[0]);
    let lbcast = |a: [u8; 4]| a == [255, 255, 255, 255];
    let zeronet = |a: [u8; 4]| a[0] == 0;
    let loopback = |a: [u8; 4]| a[0] == 127;
    if multicast(dst) {
        // Only 224.0.0.1 (all hosts) is joined; IGMP to a joined group likewise.
        if dst != [224, 0, 0, 1] {
            return Route::Drop(NoRoute::Multicast);
        }
        if multicast(src) || lbcast(src) || loopback(src) {
            return Route::Drop(NoRoute::MartianSource);
        }
        if zeronet(src) && h[9] != 2 {
            // 224.0.0.1 is a local multicast group: zeronet sources are allowed.
        }
        return Route::Local;
    }
    if multicast(src) || lbcast(src) {
        return Route::Drop(NoRoute::MartianSource);
    }
    if lbcast(dst) || (src == [0; 4] && dst == [0; 4]) {
        return Route::Local;
    }
    if zeronet(src) {
        return Route::Drop(NoRoute::MartianSource);
    }
    if zeronet(dst) {
        return Route::Drop(NoRoute::MartianDestination);
    }
    if loopback(dst) {
        return Route::Drop(NoRoute::MartianDestination);
    }
    if loopback(src) {
        return Route::Drop(NoRoute::MartianSource);
    }
    if h[8] <= 1 {
        return Route::Drop(NoRoute::TtlExceeded);
    }
    Route::Forward
}

/// `ip_options_compile` on a received packet, plus the source-route refusal.
fn options_ok(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return true,
            1 => {
                i += 1;
                continue;
            }
            ty => {
                let Some(&len) = opts.get(i + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || len > opts.len() - i {
                    return false;
                }
                let ptr = opts.get(i + 2).copied().map(usize::from);
                match ty {
                    // Loose and strict source route: refused (accept_source_route = 0).
                    131 | 137 => return false,
                    // Record route.
                    7 => {
                        let Some(p) = ptr else { return false };
                        if len < 3 || p < 4 || (p <= len && p + 3 > len) {
                            return false;
                        }
                    }
                    // Timestamp.
                    68 => {
                        let Some(p) = ptr else { return false };
                        if len < 4 || p < 5 {
                            return false;
                        }
                    }
                    // Router alert.
                    148 if len != 4 => return false,
                    _ => {}
                }
                i += len;
            }
        }
    }
    true
}

fn route_v6(pkt: &[u8]) -> Route {
    let Some(h) = pkt.get(..40) else {
        return Route::Drop(NoRoute::MartianSource);
    };
    let src = &h[8..24];
    let dst = &h[24..40];
    let link_local = |a: &[u8]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
    if dst[0] == 0xff {
        let joined: [[u8; 16]; 3] = [
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xff, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ];
        return if joined.iter().any(|g| g[..] == *dst) {
            Route::Local
        } else {
            Route::Drop(NoRoute::Multicast)
        };
    }
    if link_local(dst) {
        return Route::Drop(NoRoute::LinkLocal);
    }
    if h[7] <= 1 {
        return Route::Drop(NoRoute::TtlExceeded);
    }
    if src.iter().all(|&b| b == 0) {
        return Route::Drop(NoRoute::MartianSource);
    }
    if link_local(src) {
        return Route::Drop(NoRoute::LinkLocal);
    }
    Route::Forward
}

#[cfg(test)]
mod tests {

    #[test]
    fn fold_hasher_separates_nearby_keys() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<FoldHasher>::default();
        let mut seen = std::collections::HashSet::new();
        for a in 0..64u8 {
            for port in 0..64u16 {
                let k = FlowKey {
                    proto: 17,
                    icmp: 0,
                    a: (Addr::v4([10, 0, 0, a]), port),
                    b: (Addr::v4([10, 0, 1, 1]), 53),
                };
                seen.insert(b.hash_one(k));
            }
        }
        assert_eq!(seen.len(), 64 * 64);
    }
    use super::*;

    fn udp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, ttl: u8) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, ttl, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    #[test]
    fn first_packet_defines_client() {
        let mut s = SideAssigner::new(vec![]);
        let a = [10, 1, 0, 1];
        let b = [10, 2, 0, 1];
        assert_eq!(s.side(&udp4(a, b, 1000, 53, 64)), Side::Client);
        assert_eq!(s.side(&udp4(b, a, 53, 1000, 64)), Side::Server);
        assert_eq!(s.side(&udp4(a, b, 1000, 53, 64)), Side::Client);
        // A new flow started by b.
        assert_eq!(s.side(&udp4(b, a, 7, 9, 64)), Side::Client);
    }

    fn echo4(src: [u8; 4], dst: [u8; 4], ty: u8, id: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[ty, 0, 0, 0]);
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p
    }

    #[test]
    fn icmp_echo_reply_enters_on_the_server_side() {
        let mut s = SideAssigner::new(vec![]);
        let a = [10, 1, 0, 1];
        let b = [10, 2, 0, 1];
        assert_eq!(s.side(&echo4(a, b, 8, 7)), Side::Client);
        assert_eq!(s.side(&echo4(b, a, 0, 7)), Side::Server);
        assert_eq!(s.side(&echo4(a, b, 8, 7)), Side::Client);
    }

    #[test]
    fn client_nets_override() {
        let mut s = SideAssigner::new(vec![Cidr::parse("10.2.0.0/16").unwrap()]);
        assert_eq!(
            s.side(&udp4([10, 1, 0, 1], [10, 2, 0, 1], 1, 2, 64)),
            Side::Server
        );
        assert_eq!(
            s.side(&udp4([10, 2, 0, 1], [10, 1, 0, 1], 2, 1, 64)),
            Side::Client
        );
    }

    #[test]
    fn router_decisions() {
        assert_eq!(
            route(&udp4([10, 1, 0, 1], [10, 2, 0, 1], 1, 2, 64)),
            Route::Forward
        );
        assert_eq!(
            route(&udp4([10, 1, 0, 1], [10, 2, 0, 1], 1, 2, 1)),
            Route::Drop(NoRoute::TtlExceeded)
        );
        assert_eq!(route(&udp4([10, 1, 0, 1], [255; 4], 1, 2, 1)), Route::Local);
        assert_eq!(
            route(&udp4([127, 0, 0, 1], [10, 2, 0, 1], 1, 2, 64)),
            Route::Drop(NoRoute::MartianSource)
        );
        assert_eq!(
            route(&udp4([10, 1, 0, 1], [239, 1, 1, 1], 1, 2, 64)),
            Route::Drop(NoRoute::Multicast)
        );
    }
}
