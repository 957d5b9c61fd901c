//! # ctrack-oracle: ask the live Linux kernel what its conntrack does
//!
//! The test oracle of the project. [`run`] replays packets through the **running
//! kernel's** nf_conntrack and reports, per packet, what the kernel did, then the final
//! table and counters in the kernel's own formats.
//!
//! ## How
//! Each run builds three throwaway network namespaces (names `ctko-<pid>-<n>-{c,f,s}`):
//!
//! ```text
//!  [client ns] veth0 ==== "client" [firewall ns] "server" ==== veth0 [server ns]
//!   original-direction packets             reply-direction packets
//!   are injected here                      are injected here
//! ```
//!
//! * The firewall forwards anything: no IP addresses, `ip_forward=1`, IPv6 forwarding,
//!   policy routing by input interface to a fake gateway with a permanent neighbour
//!   entry, `rp_filter=0`. Client and server have no addresses and IPv6 disabled, so
//!   they never send anything; all traffic stays inside the namespaces.
//! * Packets are injected with `AF_PACKET` sockets on the client's or server's veth end
//!   (by [`Side`]), with the firewall interface's MAC as destination.
//! * An nft table of ours logs every packet over NFLOG at prerouting −450 (seen),
//!   prerouting −150 (the `ct state` and `ct direction` after conntrack), postrouting
//!   +500 (forwarded, so a new entry is confirmed) and input +500 (delivered locally).
//!   The kernel's own "invalid" messages (`nf_conntrack_log_invalid=255`) arrive on
//!   NFLOG group 0 and are attached to the packet that caused them.
//! * After each packet a **barrier** frame (ethertype 0x88b5) follows on the same device;
//!   a netdev ingress rule logs and drops it. The injecting thread is pinned to one CPU,
//!   so both frames share one backlog queue: once the barrier's log is read, everything
//!   the packet caused has been read. No sleeps, no guessing.
//! * After each barrier `/proc/net/stat/nf_conntrack` of the firewall is re-read for the
//!   packet's counter deltas.
//! * At the end: `conntrack -L`, `-L -o extended`, `-L expect`, `-S`, `-C`,
//!   `/proc/net/nf_conntrack` and `/proc/net/nf_conntrack_expect` of the firewall
//!   namespace.
//!
//! Everything is removed on return, on error, on Ctrl-C and SIGTERM (the signal is
//! re-raised once cleanup is done), and sets left over by killed processes are removed at
//! the next start ([`cleanup_stale`]).
//!
//! Needs root, `ip`, `nft` and `conntrack` (see [`available`]).
//!
//! ## Races at confirm
//! [`race::run`] makes the kernel show what sequential injection never does: several
//! packets of one flow with their own unconfirmed conntracks (and NAT bindings) meeting
//! at confirm. Each racer is held in an NFQUEUE ([`nfqueue`], a minimal client of our
//! own over `NETLINK_NETFILTER`) at postrouting +200, then accepted in a chosen order;
//! the run reports each packet (its `ct state`, the packet at postrouting +500 and as it
//! left the firewall, its counters), the tables after the verdicts and after the
//! replies, and the count after a linger time.
//!
//! ## Example
//! ```no_run
//! use ctrack_oracle::{craft, run, InjectPacket, OracleConfig, Side};
//! use std::net::Ipv4Addr;
//!
//! let (c, s) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1));
//! let packets = vec![
//!     InjectPacket { index: 0, ts_ns: 0, side: Side::Client, l3: craft::udp4(c, s, 1000, 53, b"q") },
//!     InjectPacket { index: 1, ts_ns: 1_000, side: Side::Server, l3: craft::udp4(s, c, 53, 1000, b"r") },
//! ];
//! let kernel = run(&packets, &OracleConfig::default())?;
//! assert_eq!(kernel.packets[1].ctstate, Some(ctrack_oracle::CtState::Established));
//! # Ok::<(), ctrack_oracle::OracleError>(())
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod craft;
mod error;
mod events;
mod inject;
mod netlink;
mod netns;
mod nflog;
pub mod nfqueue;
mod nft;
mod procstat;
pub mod race;
mod runner;
mod signal;
mod sysctl;

pub use error::OracleError;
pub use procstat::Stats;

/// Which end of the firewall a packet enters from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Injected from the client namespace: enters the firewall on `ifnames.0`.
    Client,
    /// Injected from the server namespace: enters the firewall on `ifnames.1`.
    Server,
}

/// One packet to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectPacket {
    /// The caller's identifier (e.g. the capture record number), copied to
    /// [`KernelPacket::index`] and used in error messages.
    pub index: u64,
    /// Capture timestamp in ns; only the differences between packets matter (pacing).
    pub ts_ns: u64,
    /// Which side injects it.
    pub side: Side,
    /// The IPv4 or IPv6 packet from the IP header on, already trimmed to its IP length.
    /// The Ethernet type is chosen by the version nibble: 6 → IPv6, anything else → IPv4
    /// (so malformed versions reach the kernel's IPv4 input checks).
    pub l3: Vec<u8>,
}

/// How to run the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleConfig {
    /// Per-netns sysctls set in the firewall namespace before the first packet. Names are
    /// relative to `net/netfilter` (`("nf_conntrack_tcp_loose", "0")`); a name starting
    /// with `net.` or `net/` is taken as a full sysctl path instead.
    pub sysctls: Vec<(String, String)>,
    /// Global sysctls, written in the init namespace for the run and restored afterwards
    /// (also after a crash, through a restore file under `/run/ctrack-oracle/`). Only
    /// `nf_conntrack_max`, `nf_conntrack_buckets` and `nf_conntrack_expect_max` are
    /// accepted; a non-zero `nf_conntrack_max` at or below the host's own entry count is
    /// refused. Runs with global sysctls exclude all other oracle runs on the machine
    /// while they last (a file lock), since the limits apply to every namespace.
    pub global_sysctls: Vec<(String, String)>,
    /// A user nft ruleset loaded into the firewall namespace (`nft -f`) before the
    /// oracle's own tables (so a `flush ruleset` in it is harmless). It may use the
    /// interface names of [`OracleConfig::ifnames`]. NFLOG groups 0 and 100 are the
    /// oracle's: logs sent there by the user ruleset would be mixed into the results.
    pub ruleset: Option<PathBuf>,
    /// The firewall's interface names: (client side, server side).
    pub ifnames: (String, String),
    /// Pacing: capture-timestamp gaps are honoured, each capped at this.
    pub max_gap: Duration,
    /// Leave the namespaces in place after the run, for debugging (`ip netns list`).
    /// They are removed by the next run's [`cleanup_stale`] once this process is gone.
    pub keep_netns: bool,
    /// MTU of all four veth ends (default 1500). A packet longer than this cannot be
    /// injected and fails the run; raising it also raises the firewall's egress MTU.
    pub mtu: u32,
    /// How long to wait for one packet's barrier before giving up (default 2 s).
    pub barrier_timeout: Duration,
    /// Record the kernel's events with `conntrack -E -o timestamp` (adds about 0.5 s).
    pub events: bool,
    /// Addresses of the firewall's interfaces (host routes: /32, /128 without DAD), for
    /// rulesets that need them (masquerade, redirect); the policy routing to the fake
    /// gateways is unchanged, and packets to these addresses are delivered locally.
    pub fw_addrs: Vec<(Side, std::net::IpAddr)>,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            sysctls: Vec::new(),
            global_sysctls: Vec::new(),
            ruleset: None,
            ifnames: ("client".to_owned(), "server".to_owned()),
            max_gap: Duration::from_secs(3),
            keep_netns: false,
            mtu: 1500,
            barrier_timeout: Duration::from_secs(2),
            events: false,
            fw_addrs: Vec::new(),
        }
    }
}

/// The `ct state` nft sees after conntrack (prerouting −150).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// ctinfo NEW.
    New,
    /// ctinfo ESTABLISHED or ESTABLISHED_REPLY.
    Established,
    /// ctinfo RELATED or RELATED_REPLY.
    Related,
    /// No conntrack attached (the tracker rejected the packet, or no tuple).
    Invalid,
    /// Marked untracked (notrack, ICMPv6 neighbour discovery and MLD).
    Untracked,
}

impl CtState {
    /// The nft keyword (`new`, `established`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }
}

/// The `ct direction` nft sees after conntrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The packet matched the entry's original tuple.
    Original,
    /// The packet matched the entry's reply tuple.
    Reply,
}

impl Direction {
    /// The nft keyword (`original`, `reply`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Original => "original",
            Direction::Reply => "reply",
        }
    }
}

/// What the kernel did with one injected packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelPacket {
    /// [`InjectPacket::index`] of the packet.
    pub index: u64,
    /// When it was injected, ns since the first injection (replay the engine with these).
    pub inject_offset_ns: u64,
    /// It reached netfilter (the prerouting −450 log). `false`: dropped by the IP layer
    /// before netfilter (bad header, foreign MAC...).
    pub seen: bool,
    /// `ct state` after conntrack (prerouting −150); `None` if not seen or held by
    /// defrag (a fragment that does not complete its datagram).
    pub ctstate: Option<CtState>,
    /// `ct direction`; `None` for invalid and untracked packets and when `ctstate` is.
    pub direction: Option<Direction>,
    /// It reached postrouting +500, so a new entry gets confirmed there.
    pub forwarded: bool,
    /// It reached input +500 (broadcast, local multicast): confirmed at INPUT.
    pub local_in: bool,
    /// The kernel's own nf_log messages for this packet (NFLOG group 0), e.g.
    /// `nf_ct_proto_6: invalid tcp flag combination`, trailing blanks trimmed.
    pub log: Vec<String>,
    /// Non-zero deltas of `/proc/net/stat/nf_conntrack` (summed over CPUs) caused by this
    /// packet, by [`Stats`] field name. The gauge `entries` is not included.
    pub counters: BTreeMap<String, u64>,
}

/// The result of one [`run`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRun {
    /// One per [`InjectPacket`], same order.
    pub packets: Vec<KernelPacket>,
    /// `conntrack -L -o labels` stdout lines, as printed (plain `-L` plus `labels=` on
    /// entries with labels, when /etc/xtables/connlabel.conf names them).
    pub table: Vec<String>,
    /// `conntrack -L -o extended` stdout lines.
    pub table_extended: Vec<String>,
    /// `/proc/net/nf_conntrack` lines of the firewall namespace.
    pub proc_table: Vec<String>,
    /// `/proc/net/nf_conntrack_expect` lines of the firewall namespace.
    pub expect: Vec<String>,
    /// `conntrack -L expect` stdout lines.
    #[serde(default)]
    pub expect_table: Vec<String>,
    /// `/proc/net/stat/nf_conntrack` at the end, summed over CPUs.
    pub stats: Stats,
    /// `conntrack -S` stdout.
    pub stats_text: String,
    /// `conntrack -C`.
    pub count: u64,
    /// When the table was read, ns since the first injection.
    pub dump_offset_ns: u64,
    /// `conntrack -E -o timestamp,labels` lines, when [`OracleConfig::events`] was set.
    pub events: Vec<KernelEvent>,
    /// `conntrack -E expect -o timestamp` lines, when [`OracleConfig::events`] was set.
    pub expect_events: Vec<KernelEvent>,
}

/// One line of `conntrack -E -o timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelEvent {
    /// When conntrack printed it, ns relative to the first injection (negative: before).
    pub offset_ns: i64,
    /// The line without its `[timestamp]\t` prefix.
    pub line: String,
}

/// Replays `packets` through the live kernel's conntrack and reports what it did.
///
/// Blocks for the whole run: about 0.3 s of setup, then the packets at their capture
/// pace (gaps capped at [`OracleConfig::max_gap`]) and at most a few thousand per
/// second, then the final dumps. Needs root. Safe to call from several threads at once
/// (each run has its own namespaces), except that runs with
/// [`OracleConfig::global_sysctls`] wait for exclusive use of the machine.
pub fn run(packets: &[InjectPacket], cfg: &OracleConfig) -> Result<KernelRun, OracleError> {
    runner::run(packets, cfg)
}

/// Checks that [`run`] can work here: root, network namespaces, conntrack with
/// nfnetlink_log, and the `ip`, `nft` and `conntrack` binaries. `Err` says what is
/// missing; tests use it to skip outside CI.
pub fn available() -> Result<(), String> {
    runner::available()
}

/// Removes namespace sets left by oracle processes that are gone, and restores global
/// sysctls left changed by a crashed run. Called at the start of every [`run`]; errors
/// are ignored (best effort).
pub fn cleanup_stale() {
    netns::cleanup_stale();
    sysctl::restore_leftover();
}
