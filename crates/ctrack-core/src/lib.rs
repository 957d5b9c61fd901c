//! # ctrack-core: connection tracking with the Linux kernel's semantics, sans I/O
//!
//! The model, as in the kernel's nf_conntrack:
//! * **Two phases.** [`Conntrack::track`] (kernel `nf_conntrack_in`) finds or creates
//!   the packet's entry, runs the L4 tracker and gives the packet its ctinfo; a new entry
//!   stays *unconfirmed* until [`Conntrack::confirm`] (kernel `nf_conntrack_confirm`) at
//!   the end of the hook pipeline. A packet dropped in between leaves no entry.
//! * **One entry, two keys.** Each connection is found by its original and its reply
//!   tuple in one hash table.
//! * **Time is an argument.** Nothing here reads a clock, a file or a socket: `now` is
//!   passed in, so replay from a capture is deterministic.
//! * **Configuration = the kernel's sysctls** ([`Sysctls`]), with the kernel's names
//!   and defaults.

pub mod batch;
pub mod conntrack;
pub mod defrag;
pub mod entry;
pub mod event;
pub mod expect;
pub mod format;
pub mod gc;
pub mod groups;
pub mod helper;
pub mod huge;
pub mod invalid;
pub mod lookahead;
pub mod nat;
pub mod packet;
pub mod proto;
pub mod shard;
pub mod sip_lanes;
pub mod stats;
pub mod status;
pub mod sysctl;
pub mod table;
pub mod time;
pub mod topology;
pub mod tuple;
pub mod zone;

pub use conntrack::{Config, ConfirmFailure, Confirmed, Conntrack, Hook, Tracked, Verdict};
pub use entry::Entry;
pub use invalid::InvalidReason;
pub use stats::Stats;
pub use status::{CtInfo, CtState, Status};
pub use sysctl::Sysctls;
pub use time::{Duration, Instant};
pub use tuple::{Addr, Dir, Family, Tuple};
pub use zone::Zone;
