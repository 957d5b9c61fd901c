//! Connection tuples (kernel: `struct nf_conntrack_tuple`), directions and inversion.
//!
//! A tuple holds both L3 addresses (IPv4 in the first 4 bytes, rest zero), the
//! "manipulable" source L4 field (port, ICMP id, GRE key), the destination L4 field
//! (port, ICMP type<<8|code, GRE key), the L3 family and the L4 protocol number.
//! Size: 38 bytes.

use core::fmt;

/// L3 family (kernel `l3num`: AF_INET 2, AF_INET6 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Family {
    /// IPv4.
    #[default]
    V4 = 2,
    /// IPv6.
    V6 = 10,
}

impl Family {
    /// The kernel's name (`ipv4` / `ipv6`).
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    /// The kernel's number (2 / 10).
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// An L3 address in the kernel's 16-byte union layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// An IPv4 address (first 4 bytes, rest zero).
    #[inline]
    pub fn v4(b: [u8; 4]) -> Addr {
        // Built as one 128-bit value (not 4 byte stores into a zeroed array), so the
        // hot path copies it without a store-forwarding stall.
        Addr(u128::from(u32::from_le_bytes(b)).to_le_bytes())
    }
    /// An IPv6 address.
    pub fn v6(b: [u8; 16]) -> Addr {
        Addr(b)
    }
    /// The 16 bytes as two little-endian 64-bit words (what the hashes and the word
    /// compares of tuples read).
    #[inline(always)]
    pub fn words(&self) -> [u64; 2] {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = self.0;
        [
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        ]
    }
    /// The IPv4 octets (first 4 bytes).
    pub fn v4_octets(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }
    /// As a std address of the given family.
    pub fn to_ip(&self, family: Family) -> std::net::IpAddr {
        match family {
            Family::V4 => std::net::IpAddr::V4(std::net::Ipv4Addr::from(self.v4_octets())),
            Family::V6 => std::net::IpAddr::V6(std::net::Ipv6Addr::from(self.0)),
        }
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0[4..].iter().all(|&b| b == 0) {
            write!(f, "{}", std::net::Ipv4Addr::from(self.v4_octets()))
        } else {
            write!(f, "{}", std::net::Ipv6Addr::from(self.0))
        }
    }
}

/// Direction of a packet relative to its connection (kernel `enum ip_conntrack_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Dir {
    /// The direction of the packet that created the entry.
    Original = 0,
    /// The opposite direction.
    Reply = 1,
}

impl Dir {
    /// The other direction.
    pub fn opposite(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
    /// 0 or 1, to index per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
    /// nft's `ct direction` word.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Original => "original",
            Dir::Reply => "reply",
        }
    }
}

/// L4 protocol numbers the core knows by name.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// DCCP (no tracker on the target kernel: generic).
    pub const DCCP: u8 = 33;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// A connection tuple. Equality and hashing cover every field (the kernel's `dir`
/// is not stored here: the table knows which side of an entry a tuple is).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tuple {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source L4 field: port, ICMP id, GRE source key.
    pub src_u: u16,
    /// Destination L4 field: port, ICMP `type << 8 | code`, GRE destination key.
    pub dst_u: u16,
    /// L3 family.
    pub family: Family,
    /// L4 protocol number.
    pub proto: u8,
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}:{} -> {:?}:{} proto {}",
            self.src, self.src_u, self.dst, self.dst_u, self.proto
        )
    }
}

impl Tuple {
    /// ICMP type (for ICMP/ICMPv6 tuples).
    pub fn icmp_type(&self) -> u8 {
        (self.dst_u >> 8) as u8
    }
    /// ICMP code (for ICMP/ICMPv6 tuples).
    pub fn icmp_code(&self) -> u8 {
        (self.dst_u & 0xff) as u8
    }
    /// Bytes fed to the hash: every field, in a fixed layout.
    pub fn hash_bytes(&self) -> [u8; 38] {
        let mut b = [0u8; 38];
        b[..16].copy_from_slice(&self.src.0);
        b[16..32].copy_from_slice(&self.dst.0);
        b[32..34].copy_from_slice(&self.src_u.to_be_bytes());
        b[34..36].copy_from_slice(&self.dst_u.to_be_bytes());
        b[36] = self.family as u8;
        b[37] = self.proto;
        b
    }
}
