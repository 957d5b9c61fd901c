//! Status bits (kernel `ct->status`, `enum ip_conntrack_status`), per-packet ctinfo and
//! the `ct state` words rules see.

use crate::tuple::Dir;

/// The entry's status bits, with the kernel's bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Status(pub u16);

impl Status {
    /// Created by matching an expectation.
    pub const EXPECTED: u16 = 1 << 0;
    /// A reply-direction packet passed its tracker.
    pub const SEEN_REPLY: u16 = 1 << 1;
    /// Protected from early drop (protocol rule).
    pub const ASSURED: u16 = 1 << 2;
    /// Inserted in the table.
    pub const CONFIRMED: u16 = 1 << 3;
    /// NAT changed the source.
    pub const SRC_NAT: u16 = 1 << 4;
    /// NAT changed the destination.
    pub const DST_NAT: u16 = 1 << 5;
    /// A helper changed the payload length.
    pub const SEQ_ADJUST: u16 = 1 << 6;
    /// SRC manip set up (also for null bindings).
    pub const SRC_NAT_DONE: u16 = 1 << 7;
    /// DST manip set up.
    pub const DST_NAT_DONE: u16 = 1 << 8;
    /// Being deleted.
    pub const DYING: u16 = 1 << 9;
    /// Refreshes do not change the timeout.
    pub const FIXED_TIMEOUT: u16 = 1 << 10;
    /// Template (never in the table).
    pub const TEMPLATE: u16 = 1 << 11;
    /// Clash entry inserted reply-only (kernel reuses the old UNTRACKED bit).
    pub const NAT_CLASH: u16 = 1 << 12;
    /// Helper explicitly attached.
    pub const HELPER: u16 = 1 << 13;

    /// Whether every bit of `bits` is set.
    #[inline]
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }
    /// Set `bits`.
    #[inline]
    pub fn set(&mut self, bits: u16) {
        self.0 |= bits;
    }
    /// Clear `bits`.
    #[inline]
    pub fn clear(&mut self, bits: u16) {
        self.0 &= !bits;
    }
}

/// Per-packet connection info (kernel `enum ip_conntrack_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtInfo {
    /// Original direction, a reply was already seen.
    Established,
    /// Original direction of an expected connection, or an ICMP error matching the orig tuple.
    Related,
    /// Original direction, no reply seen yet.
    New,
    /// Reply direction.
    EstablishedReply,
    /// ICMP error matching the reply tuple.
    RelatedReply,
}

impl CtInfo {
    /// The state word rules see.
    pub fn state(self) -> CtState {
        match self {
            CtInfo::Established | CtInfo::EstablishedReply => CtState::Established,
            CtInfo::Related | CtInfo::RelatedReply => CtState::Related,
            CtInfo::New => CtState::New,
        }
    }
    /// The packet's direction (`ct direction`).
    pub fn dir(self) -> Dir {
        match self {
            CtInfo::Established | CtInfo::Related | CtInfo::New => Dir::Original,
            CtInfo::EstablishedReply | CtInfo::RelatedReply => Dir::Reply,
        }
    }
}

/// What `ct state` matches (nft words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// No conntrack (tracker rejected, not trackable).
    Invalid,
    /// ctinfo ESTABLISHED or ESTABLISHED_REPLY.
    Established,
    /// ctinfo RELATED or RELATED_REPLY.
    Related,
    /// ctinfo NEW.
    New,
    /// Deliberately not tracked (notrack, ICMPv6 ND/MLD).
    Untracked,
}

impl CtState {
    /// The nft word.
    pub fn name(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::New => "new",
            CtState::Untracked => "untracked",
        }
    }
}
