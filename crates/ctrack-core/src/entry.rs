//! A connection entry: both tuples, status, L4 state, deadline, zone, mark, counters.
//!
//! Layout note: the entry is found through both tuples by the table's chains (see
//! `table.rs`); the per-entry memory is a tracked figure (goal ≤ 128 bytes, issue 6).

use crate::proto::ProtoState;
use crate::status::Status;
use crate::time::{Duration, Instant};
use crate::tuple::{Dir, Tuple};

/// Packet and byte counters of one direction (`nf_conntrack_acct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (L3 length).
    pub bytes: u64,
}

/// Optional extensions, allocated when the sysctl was on at creation (kernel: ct extensions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Per-direction counters, when `nf_conntrack_acct` was 1 at creation.
    pub acct: Option<[Counter; 2]>,
    /// Confirm time (start) and deletion time (stop), when `nf_conntrack_timestamp` was 1.
    pub tstamp: Option<(Instant, Option<Instant>)>,
    /// The helper a rule attached (`ct helper set`), with its per-connection state.
    pub helper: Option<crate::helper::HelperState>,
    /// For an entry created from an expectation: its master (id, creation number).
    pub master: Option<(crate::table::EntryId, u64)>,
    /// Confirmed entries created from this one's expectations that still exist: each
    /// holds a reference on its master (`use=` in listings is one more).
    pub children: u32,
    /// TCP sequence adjustment of a NATed entry with a helper (kernel seqadj
    /// extension): created when a NAT helper first changes a payload's length.
    pub seqadj: Option<crate::conntrack::seqadj::SeqAdj>,
    /// Connection labels (kernel `nf_conn_labels`, 128 bits; bit N = label N), set by
    /// `ct label set`. 0 = none (dumps then omit them, as ctnetlink does).
    pub labels: u128,
}

/// A conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Original and reply tuples, indexed by [`Dir`].
    pub tuples: [Tuple; 2],
    /// Status bits.
    pub status: Status,
    /// Zone: id and the directions it covers (kernel `ct->zone`).
    pub zone: crate::zone::Zone,
    /// `ct mark`.
    pub mark: u32,
    /// Expiry deadline (absolute).
    pub deadline: Instant,
    /// L4 tracker state.
    pub proto: ProtoState,
    /// Extensions (accounting, timestamps), allocated only when a sysctl asked for them
    /// at creation (kernel: ct extensions), so the common entry stays small.
    pub ext: Option<Box<Extensions>>,
    /// Creation sequence number: a stable, unique id (`-o id`) and the listing order.
    pub seq: u64,
    /// Event bits cached until the packet reaches the confirm hook.
    pub ecache: u16,
}

impl Entry {
    /// The tuple of a direction.
    #[inline]
    pub fn tuple(&self, dir: Dir) -> &Tuple {
        &self.tuples[dir.index()]
    }

    /// The connection labels (0 when none were set).
    #[inline]
    pub fn labels(&self) -> u128 {
        self.ext.as_ref().map_or(0, |x| x.labels)
    }

    /// L4 protocol number.
    #[inline]
    pub fn proto_num(&self) -> u8 {
        self.tuples[0].proto
    }

    /// Whether the deadline has passed (kernel: `(s32)(timeout - now) <= 0`).
    #[inline]
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }

    /// Time left, zero when expired.
    #[inline]
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_since(now)
    }

    /// Remaining seconds as dumps show them: floored, read "an instant after" `now`
    /// (the kernel's dump always runs at least a jiffy after the last refresh, so a fresh
    /// 30 s entry shows 29).
    pub fn display_timeout(&self, now: Instant) -> u64 {
        let ns = self.remaining(now).as_nanos() as u64;
        ns.saturating_sub(1) / 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    /// The entry's size is a tracked figure (issue 6 aims at ≤ 128 bytes with both
    /// index nodes); today: 2 × 38-byte tuples, 64-byte L4 state, 8-byte deadline, ...
    #[test]
    fn entry_size_is_bounded() {
        assert_eq!(size_of::<crate::tuple::Tuple>(), 38);
        assert!(
            size_of::<super::Entry>() <= 176,
            "{}",
            size_of::<super::Entry>()
        );
    }
}
