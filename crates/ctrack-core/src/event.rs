//! Conntrack events (kernel `nf_conntrack_ecache.c`): bits cached on the entry while a
//! packet crosses the hooks, delivered when it reaches the confirm hook; DESTROY at
//! deletion. The frontend drains them with `Conntrack::drain_events`.

use crate::entry::Entry;
use crate::time::Instant;

/// Event bits (kernel `enum ip_conntrack_events`).
pub mod bits {
    /// New entry confirmed.
    pub const NEW: u16 = 1 << 0;
    /// New entry created from an expectation.
    pub const RELATED: u16 = 1 << 1;
    /// Entry deleted.
    pub const DESTROY: u16 = 1 << 2;
    /// First reply seen.
    pub const REPLY: u16 = 1 << 3;
    /// Became ASSURED.
    pub const ASSURED: u16 = 1 << 4;
    /// L4 state changed.
    pub const PROTOINFO: u16 = 1 << 5;
    /// Helper attached.
    pub const HELPER: u16 = 1 << 6;
    /// Mark changed.
    pub const MARK: u16 = 1 << 7;
    /// Labels changed (`IPCT_LABEL`): the event carries the labels.
    pub const LABEL: u16 = 1 << 10;
}

/// The message type `conntrack -E` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `[NEW]`.
    New,
    /// `[UPDATE]`.
    Update,
    /// `[DESTROY]`.
    Destroy,
}

/// One delivered event, with a snapshot of the entry at that moment.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it was delivered.
    pub time: Instant,
    /// Message type.
    pub kind: EventKind,
    /// The event bits.
    pub mask: u16,
    /// The entry as it was.
    pub entry: Entry,
}
