//! Connection-tracking helpers (kernel `nf_conntrack_helper.c` and one module per
//! protocol; kernel-semantics.md §12).
//!
//! A helper is attached to a new, unconfirmed entry by a rule (`ct helper set "obj"`
//! naming a `ct helper obj { type "ftp" protocol tcp; }` object), never automatically.
//! It then runs at the confirm hook for every packet of that entry except RELATED_REPLY
//! ones ([`crate::Conntrack::help_and_confirm`]): it reads the payload, may ask for an
//! expectation ([`ExpectRequest`]) and may drop the packet ([`HelperDrop`]).
//!
//! Every helper implements [`Helper`]; [`HelperKind`] names them and gives their
//! expectation policy. One file per helper: [`ftp`], [`tftp`], [`pptp`].

pub mod ftp;
pub mod mangle;
pub mod nat_ftp;
pub mod pptp;
pub mod tftp;

use crate::entry::Entry;
use crate::packet::Packet;
use crate::status::CtInfo;
use crate::time::Duration;
use crate::tuple::{Addr, Family};
use core::fmt;

/// The helpers the engine knows (the `type` of an nft `ct helper` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelperKind {
    /// `ftp` (TCP): PORT, EPRT, 227, 229.
    Ftp,
    /// `tftp` (UDP): read and write requests.
    Tftp,
    /// `pptp` (TCP, IPv4 only): the control connection of PPTP; expects the calls'
    /// GRE and fills the GRE keymap.
    Pptp,
}

/// A helper's expectation policy (kernel `nf_conntrack_expect_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Expectations per master and class; the oldest is evicted beyond it.
    pub max_expected: u32,
    /// Lifetime of a new expectation.
    pub timeout: Duration,
}

impl HelperKind {
    /// The helper of an nft `type "NAME"`, if the engine has it.
    pub fn from_type(name: &str) -> Option<HelperKind> {
        match name {
            "ftp" => Some(HelperKind::Ftp),
            "tftp" => Some(HelperKind::Tftp),
            "pptp" => Some(HelperKind::Pptp),
            _ => None,
        }
    }

    /// The kernel's helper name (`helper=` in listings).
    pub fn name(self) -> &'static str {
        match self {
            HelperKind::Ftp => "ftp",
            HelperKind::Tftp => "tftp",
            HelperKind::Pptp => "pptp",
        }
    }

    /// The L4 protocol the helper is registered for.
    pub fn l4proto(self) -> u8 {
        match self {
            HelperKind::Ftp | HelperKind::Pptp => crate::tuple::proto::TCP,
            HelperKind::Tftp => crate::tuple::proto::UDP,
        }
    }

    /// The families the kernel registers the helper for: (IPv4, IPv6). PPTP is
    /// registered for IPv4 only, so an `inet` table's `ct helper` object of type
    /// `pptp` attaches nothing to IPv6 connections, and an `ip6` table cannot have one.
    pub fn families(self) -> (bool, bool) {
        match self {
            HelperKind::Ftp | HelperKind::Tftp => (true, true),
            HelperKind::Pptp => (true, false),
        }
    }

    /// The expectation policy of class `class` (FTP, TFTP: 1 expectation; PPTP: 2, one
    /// per GRE direction; all 300 s).
    pub fn policy(self, _class: u8) -> Policy {
        Policy {
            max_expected: match self {
                HelperKind::Ftp | HelperKind::Tftp => 1,
                HelperKind::Pptp => 2,
            },
            timeout: Duration::from_secs(300),
        }
    }

    /// The implementation.
    pub fn imp(self) -> &'static dyn Helper {
        match self {
            HelperKind::Ftp => &ftp::Ftp,
            HelperKind::Tftp => &tftp::Tftp,
            HelperKind::Pptp => &pptp::Pptp,
        }
    }
}

impl fmt::Display for HelperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A helper attached to an entry, with its private per-connection data (kernel
/// `nf_conn_help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperState {
    /// Which helper.
    pub kind: HelperKind,
    /// FTP's line-start tracking (unused by other helpers).
    pub ftp: ftp::FtpData,
    /// PPTP's session and call state (unused by other helpers).
    pub pptp: pptp::PptpData,
}

impl HelperState {
    /// A fresh attachment of `kind`.
    pub fn new(kind: HelperKind) -> HelperState {
        HelperState {
            kind,
            ftp: ftp::FtpData::default(),
            pptp: pptp::PptpData::default(),
        }
    }
}

/// What a helper sees of one packet.
#[derive(Debug, Clone, Copy)]
pub struct HelpCx<'a> {
    /// The packet (L3 parsed, L4 located).
    pub pkt: &'a Packet<'a>,
    /// The packet's ctinfo (never RELATED_REPLY: the helper is not called for those).
    pub ctinfo: CtInfo,
    /// The master entry (tuples, status).
    pub entry: &'a Entry,
    /// The FTP `loose` module parameter (0: ignore commands naming another address).
    pub loose: bool,
}

/// An expectation a helper asks for (kernel `nf_ct_expect_init` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectRequest {
    /// Policy class (0 for FTP and TFTP).
    pub class: u8,
    /// L3 family.
    pub family: Family,
    /// L4 protocol of the expected connection.
    pub proto: u8,
    /// Expected source address; `None` = any.
    pub src: Option<Addr>,
    /// Expected source port; `None` = any.
    pub src_port: Option<u16>,
    /// Expected destination address (always exact).
    pub dst: Addr,
    /// Expected destination port (always exact).
    pub dst_port: u16,
}

/// Why a helper dropped a packet (the kernel logs `nf_ct_NAME: dropping packet: WHY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperDrop {
    /// FTP: the payload starts like a command but it could not be parsed whole
    /// (`partial matching of `PORT'`); the sender will retransmit.
    Partial {
        /// The helper.
        helper: HelperKind,
        /// The pattern (`PORT`, `EPRT`, `227 `, `229 `).
        pattern: &'static str,
    },
    /// The expectation could not be registered (clash with another master's,
    /// table full).
    CannotExpect {
        /// The helper.
        helper: HelperKind,
    },
    /// NAT: no port could be found for the expectation of a rewritten command
    /// (`nf_nat_exp_find_port` failed).
    AllPortsInUse {
        /// The helper.
        helper: HelperKind,
    },
    /// NAT: the payload could not be rewritten (it would exceed 65535 bytes); the
    /// expectation is withdrawn.
    CannotMangle {
        /// The helper.
        helper: HelperKind,
    },
    /// Sequence adjustment failed on a malformed TCP option or a short header (kernel
    /// `nf_ct_seq_adjust` returning 0 in `nf_confirm`; counts `drop`).
    SeqAdjust,
}

impl fmt::Display for HelperDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelperDrop::Partial { helper, pattern } => {
                write!(
                    f,
                    "nf_ct_{helper}: dropping packet: partial matching of `{pattern}'"
                )
            }
            HelperDrop::CannotExpect { helper } => {
                write!(f, "nf_ct_{helper}: dropping packet: cannot add expectation")
            }
            HelperDrop::AllPortsInUse { helper } => {
                write!(f, "nf_ct_{helper}: dropping packet: all ports in use")
            }
            HelperDrop::CannotMangle { helper } => {
                write!(f, "nf_ct_{helper}: dropping packet: cannot mangle packet")
            }
            HelperDrop::SeqAdjust => {
                f.write_str("sequence adjustment failed (malformed TCP option)")
            }
        }
    }
}

/// A helper's decision on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HelpOutcome {
    /// Drop the packet.
    pub drop: Option<HelperDrop>,
    /// Register this expectation (a failure drops the packet).
    pub expect: Option<ExpectRequest>,
    /// FTP: the command the expectation comes from (where NAT rewrites the payload).
    pub ftp: Option<ftp::FtpCommand>,
    /// PPTP: expectations and keymap entries to add, or a call's GRE to tear down.
    pub pptp: Option<pptp::PptpAction>,
}

/// One helper (kernel `nf_conntrack_helper.help`).
pub trait Helper: Sync {
    /// Look at one packet of a helped entry; `data` is the helper's private state.
    fn help(&self, data: &mut HelperState, cx: &HelpCx<'_>) -> HelpOutcome;
}

/// The helper machinery of one conntrack: the expectation table and the helpers'
/// module parameters.
#[derive(Debug, Clone, Default)]
pub struct Helpers {
    /// The expectations.
    pub expect: crate::expect::ExpectTable,
    /// The FTP module parameter `loose` (default 0): with 1, a command naming another
    /// address than its sender's still creates an expectation, to that address.
    pub ftp_loose: bool,
    /// The GRE keymap the PPTP helper fills and the GRE tuple builder reads (kernel:
    /// per netns, `nf_gre_net.keymap_list`).
    pub keymap: crate::proto::gre_keymap::GreKeymap,
    /// State of the random source of NAT helpers' port searches (the kernel's
    /// `get_random_u32_below` in `nf_nat_exp_find_port`), seeded from the engine's
    /// seed so that a replay is deterministic.
    pub rng: u64,
}

impl Helpers {
    /// A random number below `n` (0 when `n` is 0): splitmix64 over [`Helpers::rng`].
    pub fn random_below(&mut self, n: u32) -> u32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if n == 0 {
            0
        } else {
            (z % u64::from(n)) as u32
        }
    }
}
