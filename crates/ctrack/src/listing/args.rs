//! The `conntrack(8)` option vector, parsed with conntrack-tools 1.4.7's rules: getopt_long
//! (long-option prefixes, optional arguments, protocol options that only exist after
//! `-p`), the command/option legality tables, and the same error messages.

use super::filter::{Filter, NatSpec, Net};
use super::Labels;
use ctrack_core::tuple::{Addr, Family};
use std::fmt;

/// The program name conntrack prints in its messages.
pub const PROGNAME: &str = "conntrack";
/// The version ctrack reproduces.
pub const VERSION: &str = "1.4.7";

/// A conntrack(8) error: the message and the exit status (1 `OTHER_PROBLEM`, 2
/// `PARAMETER_PROBLEM`, which also prints the "Try ..." line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtError {
    /// Exit status.
    pub status: u8,
    /// The message after `conntrack v1.4.7 (conntrack-tools): `.
    pub message: String,
}

impl CtError {
    fn param(message: impl Into<String>) -> CtError {
        CtError {
            status: 2,
            message: message.into(),
        }
    }
    fn other(message: impl Into<String>) -> CtError {
        CtError {
            status: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for CtError {
    /// Exactly what conntrack writes on stderr (without the final newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROGNAME} v{VERSION} (conntrack-tools): {}",
            self.message
        )?;
        if self.status == 2 {
            write!(
                f,
                "\nTry `{PROGNAME} -h' or '{PROGNAME} --help' for more information."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CtError {}

/// The command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `-L`: list.
    List,
    /// `-E`: events.
    Event,
    /// `-C`: count.
    Count,
    /// `-S`: statistics.
    Stats,
}

/// The table a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `conntrack` (default).
    Conntrack,
    /// `expect`.
    Expect,
    /// `dying`.
    Dying,
    /// `unconfirmed`.
    Unconfirmed,
}

/// The `-o` words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputWords {
    /// `xml`.
    pub xml: bool,
    /// `extended`.
    pub extended: bool,
    /// `timestamp`.
    pub timestamp: bool,
    /// `id`.
    pub id: bool,
    /// `ktimestamp`.
    pub ktimestamp: bool,
    /// `labels`.
    pub labels: bool,
    /// `userspace` (accepted, no effect).
    pub userspace: bool,
    /// `save`.
    pub save: bool,
    /// `json` (a ctrack extension: ctrack's JSON objects).
    pub json: bool,
}

/// Event kinds selected by `-e` (`CT_EVENT_F_*`).
pub mod event_mask {
    /// NEW.
    pub const NEW: u32 = 1;
    /// UPDATES.
    pub const UPDATE: u32 = 2;
    /// DESTROY.
    pub const DESTROY: u32 = 4;
    /// ALL.
    pub const ALL: u32 = 7;
}

/// A parsed conntrack(8) command line.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The command.
    pub command: Command,
    /// Its table.
    pub table: Table,
    /// The filter (what `nfct_filter` and the kernel dump filter check).
    pub filter: Filter,
    /// `-o` words.
    pub output: OutputWords,
    /// `-e` selection (all when not given).
    pub event_mask: u32,
    /// `-z` (zero counters while listing: accepted, the replay's table is final anyway).
    pub zero: bool,
    /// Lines conntrack prints on stderr while parsing (warnings, `perror`).
    pub warnings: Vec<String>,
    /// The label map (`/etc/xtables/connlabel.conf`), when labels were used.
    pub labels: Option<Labels>,
}

// Command bits (`enum ct_command`).
const CT_LIST: u32 = 1 << 0;
const CT_CREATE: u32 = 1 << 1;
const CT_UPDATE: u32 = 1 << 2;
const CT_DELETE: u32 = 1 << 3;
const CT_GET: u32 = 1 << 4;
const CT_FLUSH: u32 = 1 << 5;
const CT_EVENT: u32 = 1 << 6;
const CT_VERSION: u32 = 1 << 7;
const CT_HELP: u32 = 1 << 8;
const EXP_LIST: u32 = 1 << 9;
const EXP_CREATE: u32 = 1 << 10;
const EXP_DELETE: u32 = 1 << 11;
const EXP_GET: u32 = 1 << 12;
const EXP_FLUSH: u32 = 1 << 13;
const EXP_EVENT: u32 = 1 << 14;
const CT_COUNT: u32 = 1 << 15;
const EXP_COUNT: u32 = 1 << 16;
const CT_STATS: u32 = 1 << 17;
const EXP_STATS: u32 = 1 << 18;
const CT_ADD: u32 = 1 << 19;
const NUMBER_OF_CMD: usize = 20;

/// Option bits (`enum ct_options`), in the order of the legality table.
pub mod opt {
    /// `CT_OPT_ORIG_SRC`.
    pub const ORIG_SRC: u32 = 1 << 0;
    /// `CT_OPT_ORIG_DST`.
    pub const ORIG_DST: u32 = 1 << 1;
    /// `CT_OPT_REPL_SRC`.
    pub const REPL_SRC: u32 = 1 << 2;
    /// `CT_OPT_REPL_DST`.
    pub const REPL_DST: u32 = 1 << 3;
    /// `CT_OPT_PROTO`.
    pub const PROTO: u32 = 1 << 4;
    /// `CT_OPT_TIMEOUT`.
    pub const TIMEOUT: u32 = 1 << 5;
    /// `CT_OPT_STATUS`.
    pub const STATUS: u32 = 1 << 6;
    /// `CT_OPT_ZERO`.
    pub const ZERO: u32 = 1 << 7;
    /// `CT_OPT_EVENT_MASK`.
    pub const EVENT_MASK: u32 = 1 << 8;
    /// `CT_OPT_EXP_SRC`.
    pub const EXP_SRC: u32 = 1 << 9;
    /// `CT_OPT_EXP_DST`.
    pub const EXP_DST: u32 = 1 << 10;
    /// `CT_OPT_MASK_SRC`.
    pub const MASK_SRC: u32 = 1 << 11;
    /// `CT_OPT_MASK_DST`.
    pub const MASK_DST: u32 = 1 << 12;
    /// `CT_OPT_MARK`.
    pub const MARK: u32 = 1 << 14;
    /// `CT_OPT_ID`.
    pub const ID: u32 = 1 << 15;
    /// `CT_OPT_FAMILY`.
    pub const FAMILY: u32 = 1 << 16;
    /// `CT_OPT_SRC_NAT`.
    pub const SRC_NAT: u32 = 1 << 17;
    /// `CT_OPT_DST_NAT`.
    pub const DST_NAT: u32 = 1 << 18;
    /// `CT_OPT_OUTPUT`.
    pub const OUTPUT: u32 = 1 << 19;
    /// `CT_OPT_SECMARK`.
    pub const SECMARK: u32 = 1 << 20;
    /// `CT_OPT_BUFFERSIZE`.
    pub const BUFFERSIZE: u32 = 1 << 21;
    /// `CT_OPT_ANY_NAT`.
    pub const ANY_NAT: u32 = 1 << 22;
    /// `CT_OPT_ZONE`.
    pub const ZONE: u32 = 1 << 23;
    /// `CT_OPT_LABEL`.
    pub const LABEL: u32 = 1 << 24;
    /// `CT_OPT_ADD_LABEL`.
    pub const ADD_LABEL: u32 = 1 << 25;
    /// `CT_OPT_DEL_LABEL`.
    pub const DEL_LABEL: u32 = 1 << 26;
    /// `CT_OPT_ORIG_ZONE`.
    pub const ORIG_ZONE: u32 = 1 << 27;
    /// `CT_OPT_REPL_ZONE`.
    pub const REPL_ZONE: u32 = 1 << 28;
    /// `CT_COMPARISON`: the options that make conntrack run `nfct_cmp`.
    pub const COMPARISON: u32 = PROTO
        | ORIG_SRC
        | ORIG_DST
        | REPL_SRC
        | REPL_DST
        | MARK
        | SECMARK
        | STATUS
        | ID
        | ZONE
        | LABEL
        | ORIG_ZONE
        | REPL_ZONE;
}

const NUMBER_OF_OPT: usize = 29;

const OPTFLAGS: [&str; NUMBER_OF_OPT] = [
    "src",
    "dst",
    "reply-src",
    "reply-dst",
    "protonum",
    "timeout",
    "status",
    "zero",
    "event-mask",
    "tuple-src",
    "tuple-dst",
    "mask-src",
    "mask-dst",
    "nat-range",
    "mark",
    "id",
    "family",
    "src-nat",
    "dst-nat",
    "output",
    "secmark",
    "buffer-size",
    "any-nat",
    "zone",
    "label",
    "label-add",
    "label-del",
    "orig-zone",
    "reply-zone",
];

/// `commands_v_options` rows for the commands ctrack can run (0 illegal, 2 optional);
/// every other row only matters for commands replay refuses anyway.
fn legality_row(cmd: usize) -> [u8; NUMBER_OF_OPT] {
    const Z: [u8; NUMBER_OF_OPT] = [0; NUMBER_OF_OPT];
    match cmd {
        0 => [
            2, 2, 2, 2, 2, 0, 2, 2, 0, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 2, 0, 0, 2, 2,
        ],
        6 => [
            2, 2, 2, 2, 2, 0, 0, 0, 2, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 2, 2,
        ],
        9 => {
            let mut r = Z;
            r[16] = 2;
            r[19] = 2;
            r
        }
        14 => {
            let mut r = Z;
            r[19] = 2;
            r
        }
        _ => Z,
    }
}

/// The long options of conntrack (`original_opts`): name, has_arg (0 none, 1 required,
/// 2 optional), the short letter it maps to.
const LONG_OPTS: &[(&str, u8, char)] = &[
    ("dump", 2, 'L'),
    ("create", 2, 'I'),
    ("add", 2, 'A'),
    ("delete", 2, 'D'),
    ("update", 2, 'U'),
    ("get", 2, 'G'),
    ("flush", 2, 'F'),
    ("event", 2, 'E'),
    ("counter", 2, 'C'),
    ("stats", 0, 'S'),
    ("version", 0, 'V'),
    ("help", 0, 'h'),
    ("orig-src", 1, 's'),
    ("src", 1, 's'),
    ("orig-dst", 1, 'd'),
    ("dst", 1, 'd'),
    ("reply-src", 1, 'r'),
    ("reply-dst", 1, 'q'),
    ("protonum", 1, 'p'),
    ("timeout", 1, 't'),
    ("status", 1, 'u'),
    ("zero", 0, 'z'),
    ("event-mask", 1, 'e'),
    ("tuple-src", 1, '['),
    ("tuple-dst", 1, ']'),
    ("mask-src", 1, '{'),
    ("mask-dst", 1, '}'),
    ("nat-range", 1, 'a'),
    ("mark", 1, 'm'),
    ("secmark", 1, 'c'),
    ("id", 2, 'i'),
    ("family", 1, 'f'),
    ("src-nat", 2, 'n'),
    ("dst-nat", 2, 'g'),
    ("output", 1, 'o'),
    ("buffer-size", 1, 'b'),
    ("any-nat", 2, 'j'),
    ("zone", 1, 'w'),
    ("label", 1, 'l'),
    ("label-add", 1, '<'),
    ("label-del", 2, '>'),
    ("orig-zone", 1, '('),
    ("reply-zone", 1, ')'),
];

/// Short options (`getopt_str`): letter and has_arg.
fn short_opt(c: char) -> Option<u8> {
    const SPEC: &str =
        "LIUDGEFAhVs:d:r:q:p:t:u:e:a:z[:]:{:}:m:i:f:o:n::g::c:b:C::Sj::w:l:<:>::(:):";
    let b = SPEC.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ch = b[i] as char;
        let mut n = 0u8;
        let mut j = i + 1;
        while j < b.len() && b[j] == b':' {
            n += 1;
            j += 1;
        }
        if ch == c {
            return Some(n);
        }
        i = j;
    }
    None
}

/// How a protocol handler's options behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Ports (TCP, UDP, UDP-Lite, SCTP, DCCP), GRE keys: options 1-4 set ports.
    Ports,
    /// ICMP / ICMPv6: type, code, id.
    Icmp,
    /// `ct_proto_unknown`: no options.
    Unknown,
}

/// A conntrack-tools protocol extension (`libct_proto_*.c`).
#[derive(Debug)]
struct Handler {
    name: &'static str,
    num: u8,
    kind: Kind,
    /// Long options: name, option number (1-based, as the extension's `val`).
    opts: &'static [(&'static str, u8)],
    /// Names used in "Illegal option" messages, by option number - 1.
    optflags: &'static [&'static str],
    /// Legality for -L and -E (the extensions use the same row for both).
    list: &'static [u8],
    /// State names accepted by `--state` (index = kernel number), and the error word.
    states: Option<(&'static [&'static str], &'static str)>,
}

const PORT_FLAGS: &[&str] = &[
    "sport",
    "dport",
    "reply-port-src",
    "reply-port-dst",
    "mask-port-src",
    "mask-port-dst",
    "tuple-port-src",
    "tuple-port-dst",
];

const TCP_STATE_NAMES: &[&str] = &[
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];
/// conntrack-tools' SCTP table stops at SHUTDOWN_ACK_SENT (1.4.7 crashes on any other
/// name; ctrack reports it as unknown instead).
const SCTP_STATE_NAMES: &[&str] = &[
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
];
const DCCP_STATE_NAMES: &[&str] = &[
    "NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT", "IGNORE",
    "INVALID",
];

static HANDLERS: &[Handler] = &[
    Handler {
        name: "tcp",
        num: 6,
        kind: Kind::Ports,
        opts: &[
            ("orig-port-src", 1),
            ("sport", 1),
            ("orig-port-dst", 2),
            ("dport", 2),
            ("reply-port-src", 3),
            ("reply-port-dst", 4),
            ("mask-port-src", 5),
            ("mask-port-dst", 6),
            ("state", 7),
            ("tuple-port-src", 8),
            ("tuple-port-dst", 9),
        ],
        optflags: &[
            "sport",
            "dport",
            "reply-port-src",
            "reply-port-dst",
            "mask-port-src",
            "mask-port-dst",
            "state",
            "tuple-port-src",
            "tuple-port-dst",
        ],
        list: &[2, 2, 2, 2, 0, 0, 2, 0, 0],
        states: Some((TCP_STATE_NAMES, "unknown TCP state")),
    },
    Handler {
        name: "udp",
        num: 17,
        kind: Kind::Ports,
        opts: &[
            ("orig-port-src", 1),
            ("sport", 1),
            ("orig-port-dst", 2),
            ("dport", 2),
            ("reply-port-src", 3),
            ("reply-port-dst", 4),
            ("mask-port-src", 5),
            ("mask-port-dst", 6),
            ("tuple-port-src", 7),
            ("tuple-port-dst", 8),
        ],
        optflags: PORT_FLAGS,
        list: &[2, 2, 2, 2, 0, 0, 0, 0],
        states: None,
    },
    Handler {
        name: "udplite",
        num: 136,
        kind: Kind::Ports,
        opts: &[
            ("orig-port-src", 1),
            ("orig-port-dst", 2),
            ("reply-port-src", 3),
            ("reply-port-dst", 4),
            ("mask-port-src", 5),
            ("mask-port-dst", 6),
            ("tuple-port-src", 7),
            ("tuple-port-dst", 8),
            ("sport", 1),
            ("dport", 2),
        ],
        optflags: PORT_FLAGS,
        list: &[2, 2, 2, 2, 0, 0, 0, 0],
        states: None,
    },
    Handler {
        name: "sctp",
        num: 132,
        kind: Kind::Ports,
        opts: &[
            ("orig-port-src", 1),
            ("orig-port-dst", 2),
            ("reply-port-src", 3),
            ("reply-port-dst", 4),
            ("mask-port-src", 5),
            ("mask-port-dst", 6),
            ("state", 7),
            ("tuple-port-src", 8),
            ("tuple-port-dst", 9),
            ("orig-vtag", 10),
            ("reply-vtag", 11),
            ("sport", 1),
            ("dport", 2),
        ],
        optflags: &[
            "sport",
            "dport",
            "reply-port-src",
            "reply-port-dst",
            "mask-port-src",
            "mask-port-dst",
            "state",
            "tuple-port-src",
            "tuple-port-dst",
            "orig-vtag",
            "reply-vtag",
        ],
        list: &[2, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0],
        states: Some((SCTP_STATE_NAMES, "unknown SCTP state")),
    },
    Handler {
        name: "dccp",
        num: 33,
        kind: Kind::Ports,
        opts: &[
            ("orig-port-src", 1),
            ("orig-port-dst", 2),
            ("reply-port-src", 3),
            ("reply-port-dst", 4),
            ("mask-port-src", 5),
            ("mask-port-dst", 6),
            ("state", 7),
            ("tuple-port-src", 8),
            ("tuple-port-dst", 9),
            ("sport", 1),
            ("dport", 2),
            ("role", 10),
        ],
        optflags: &[
            "sport",
            "dport",
            "reply-port-src",
            "reply-port-dst",
            "mask-port-src",
            "mask-port-dst",
            "state",
            "tuple-port-src",
            "tuple-port-dst",
            "role",
        ],
        list: &[2, 2, 2, 2, 0, 0, 2, 0, 0, 0],
        states: Some((DCCP_STATE_NAMES, "Unknown DCCP state")),
    },
    Handler {
        name: "icmp",
        num: 1,
        kind: Kind::Icmp,
        opts: &[("icmp-type", 1), ("icmp-code", 2), ("icmp-id", 3)],
        optflags: &["icmp-type", "icmp-code", "icmp-id"],
        list: &[2, 2, 2],
        states: None,
    },
    Handler {
        name: "icmpv6",
        num: 58,
        kind: Kind::Icmp,
        opts: &[("icmpv6-type", 1), ("icmpv6-code", 2), ("icmpv6-id", 3)],
        optflags: &["icmpv6-type", "icmpv6-code", "icmpv6-id"],
        list: &[2, 2, 2],
        states: None,
    },
    Handler {
        name: "gre",
        num: 47,
        kind: Kind::Ports,
        opts: &[
            ("orig-key-src", 1),
            ("srckey", 1),
            ("orig-key-dst", 2),
            ("dstkey", 2),
            ("reply-key-src", 3),
            ("reply-key-dst", 4),
            ("mask-key-src", 5),
            ("mask-key-dst", 6),
            ("tuple-key-src", 7),
            ("tuple-key-dst", 8),
        ],
        optflags: &[
            "srckey",
            "dstkey",
            "reply-key-src",
            "reply-key-dst",
            "mask-key-src",
            "mask-key-dst",
            "tuple-key-src",
            "tuple-key-dst",
        ],
        list: &[2, 2, 2, 2, 0, 0, 0, 0],
        states: None,
    },
];

static UNKNOWN: Handler = Handler {
    name: "unknown",
    num: 0,
    kind: Kind::Unknown,
    opts: &[],
    optflags: &[],
    list: &[],
    states: None,
};

/// `/etc/protocols` (netbase), for `getprotobyname`: names and aliases.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ip", 0),
    ("IP", 0),
    ("hopopt", 0),
    ("HOPOPT", 0),
    ("icmp", 1),
    ("ICMP", 1),
    ("igmp", 2),
    ("IGMP", 2),
    ("ggp", 3),
    ("GGP", 3),
    ("ipencap", 4),
    ("IP-ENCAP", 4),
    ("st", 5),
    ("ST", 5),
    ("tcp", 6),
    ("TCP", 6),
    ("egp", 8),
    ("EGP", 8),
    ("igp", 9),
    ("IGP", 9),
    ("pup", 12),
    ("PUP", 12),
    ("udp", 17),
    ("UDP", 17),
    ("hmp", 20),
    ("HMP", 20),
    ("xns-idp", 22),
    ("XNS-IDP", 22),
    ("rdp", 27),
    ("RDP", 27),
    ("iso-tp4", 29),
    ("ISO-TP4", 29),
    ("dccp", 33),
    ("DCCP", 33),
    ("xtp", 36),
    ("XTP", 36),
    ("ddp", 37),
    ("DDP", 37),
    ("idpr-cmtp", 38),
    ("IDPR-CMTP", 38),
    ("ipv6", 41),
    ("IPv6", 41),
    ("ipv6-route", 43),
    ("IPv6-Route", 43),
    ("ipv6-frag", 44),
    ("IPv6-Frag", 44),
    ("idrp", 45),
    ("IDRP", 45),
    ("rsvp", 46),
    ("RSVP", 46),
    ("gre", 47),
    ("GRE", 47),
    ("esp", 50),
    ("IPSEC-ESP", 50),
    ("ah", 51),
    ("IPSEC-AH", 51),
    ("skip", 57),
    ("SKIP", 57),
    ("ipv6-icmp", 58),
    ("IPv6-ICMP", 58),
    ("ipv6-nonxt", 59),
    ("IPv6-NoNxt", 59),
    ("ipv6-opts", 60),
    ("IPv6-Opts", 60),
    ("rspf", 73),
    ("RSPF", 73),
    ("CPHB", 73),
    ("vmtp", 81),
    ("VMTP", 81),
    ("eigrp", 88),
    ("EIGRP", 88),
    ("ospf", 89),
    ("OSPFIGP", 89),
    ("ax.25", 93),
    ("AX.25", 93),
    ("ipip", 94),
    ("IPIP", 94),
    ("etherip", 97),
    ("ETHERIP", 97),
    ("encap", 98),
    ("ENCAP", 98),
    ("pim", 103),
    ("PIM", 103),
    ("ipcomp", 108),
    ("IPCOMP", 108),
    ("vrrp", 112),
    ("VRRP", 112),
    ("l2tp", 115),
    ("L2TP", 115),
    ("isis", 124),
    ("ISIS", 124),
    ("sctp", 132),
    ("SCTP", 132),
    ("fc", 133),
    ("FC", 133),
    ("mobility-header", 135),
    ("Mobility-Header", 135),
    ("udplite", 136),
    ("UDPLite", 136),
    ("mpls-in-ip", 137),
    ("MPLS-in-IP", 137),
    ("manet", 138),
    ("hip", 139),
    ("HIP", 139),
    ("shim6", 140),
    ("Shim6", 140),
    ("wesp", 141),
    ("WESP", 141),
    ("rohc", 142),
    ("ROHC", 142),
    ("ethernet", 143),
    ("Ethernet", 143),
];

/// `strtoul(s, &end, 0)`: the value and the unparsed rest (C semantics: leading
/// whitespace and sign, 0x / 0 prefixes, saturating at `u64::MAX`).
fn strtoul(s: &str) -> (u64, &str) {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].starts_with(|c: char| c.is_ascii_hexdigit())
    {
        (16, &t[2..])
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        return (0, s);
    }
    let mut v: u64 = 0;
    for c in digits[..end].chars() {
        let d = u64::from(c.to_digit(radix).unwrap_or(0));
        v = v.saturating_mul(u64::from(radix)).saturating_add(d);
    }
    (if neg { v.wrapping_neg() } else { v }, &digits[end..])
}

/// `atoi`: decimal, leading whitespace and sign, stops at the first non-digit, 0 if none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for c in t.chars() {
        match c.to_digit(10) {
            Some(d) => v = v.wrapping_mul(10).wrapping_add(i64::from(d)),
            None => break,
        }
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// `inet_aton` (accepts the classic shorthand forms `a`, `a.b`, `a.b.c`, hex and octal).
fn inet_aton(s: &str) -> Option<[u8; 4]> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        if p.is_empty() || !p.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let (v, rest) = strtoul(p);
        if !rest.is_empty() || v > u64::from(u32::MAX) {
            return None;
        }
        vals.push(v);
    }
    let n = vals.len();
    let last = vals[n - 1];
    let mut out: u32 = 0;
    for (i, v) in vals[..n - 1].iter().enumerate() {
        if *v > 255 {
            return None;
        }
        out |= (*v as u32) << (24 - 8 * i);
    }
    let max_last = match n {
        1 => u64::from(u32::MAX),
        2 => 0xff_ffff,
        3 => 0xffff,
        _ => 0xff,
    };
    if last > max_last {
        return None;
    }
    out |= last as u32;
    Some(out.to_be_bytes())
}

/// `parse_addr`: (family, address, mask) where mask is -1 (none), -2 (invalid) or bits.
fn parse_addr(cp: &str, want_mask: bool) -> Option<(Family, Addr, i64)> {
    // conntrack copies into an INET6_ADDRSTRLEN (46) buffer.
    let buf: String = cp.chars().take(45).collect();
    let (addr_part, mut mask) = match (want_mask, buf.find('/')) {
        (true, Some(i)) => {
            let m = &buf[i + 1..];
            let digits_ok = !m.is_empty()
                && m.trim_start()
                    .trim_start_matches(['+', '-'])
                    .chars()
                    .all(|c| c.is_ascii_digit());
            let v = atoi(m);
            (
                buf[..i].to_string(),
                if v < 0 || !digits_ok { -2 } else { v },
            )
        }
        _ => (buf.clone(), -1),
    };
    if let Some(a) = inet_aton(&addr_part) {
        if mask > 32 {
            mask = -2;
        }
        return Some((Family::V4, Addr::v4(a), mask));
    }
    if let Ok(a) = addr_part.parse::<std::net::Ipv6Addr>() {
        if mask > 128 {
            mask = -2;
        }
        return Some((Family::V6, Addr::v6(a.octets()), mask));
    }
    None
}

fn netmask(fam: Family, bits: i64) -> Addr {
    let total = if fam == Family::V4 { 4 } else { 16 };
    let mut a = [0u8; 16];
    let mut b = bits.max(0) as usize;
    for byte in a.iter_mut().take(total) {
        if b >= 8 {
            *byte = 0xff;
            b -= 8;
        } else if b > 0 {
            *byte = 0xffu8 << (8 - b);
            b = 0;
        }
    }
    Addr(a)
}

/// `split_address_and_port` for `-n/-g/-j ADDR[:PORT]` and `[V6]:PORT`.
fn split_address_and_port(arg: &str) -> Result<(String, Option<u16>), CtError> {
    let mut address: Option<String> = None;
    let mut port_at: Option<usize> = None;
    if let Some(open) = arg.find('[') {
        let start = open + 1;
        match arg[start..].find(']') {
            Some(0) => return Err(CtError::param("No IPv6 address specified")),
            None => return Err(CtError::param("No closing ']' around IPv6 address")),
            Some(len) => {
                let close = start + len;
                if let Some(colon) = arg[close..].find(':') {
                    address = Some(arg[start..close].to_string());
                    port_at = Some(close + colon);
                }
            }
        }
    } else if let Some(colon) = arg.find(':') {
        if !arg[colon + 1..].contains(':') {
            address = Some(arg[..colon].to_string());
            port_at = Some(colon);
        }
    }
    match port_at {
        Some(c) => {
            let p = &arg[c + 1..];
            if p.is_empty() {
                return Err(CtError::param("No port specified after `:'"));
            }
            let ok = p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u64>().map(|v| v <= 65535).unwrap_or(false);
            if !ok {
                return Err(CtError::param(format!("Invalid port `{p}'")));
            }
            let port = atoi(p) as u16;
            Ok((address.unwrap_or_default(), Some(port)))
        }
        None => Ok((arg.to_string(), None)),
    }
}

/// The status words of `-u` (`parse_array[PARSE_STATUS]`), kernel bit values.
const STATUS_WORDS: &[(&str, u32)] = &[
    ("ASSURED", 1 << 2),
    ("SEEN_REPLY", 1 << 1),
    ("UNSET", 0),
    ("FIXED_TIMEOUT", 1 << 10),
    ("EXPECTED", 1 << 0),
    ("OFFLOAD", 1 << 14),
    ("HW_OFFLOAD", 1 << 15),
];
const EVENT_WORDS: &[(&str, u32)] = &[
    ("ALL", event_mask::ALL),
    ("NEW", event_mask::NEW),
    ("UPDATES", event_mask::UPDATE),
    ("DESTROY", event_mask::DESTROY),
];
const OUT_XML: u32 = 1;
const OUT_EXT: u32 = 2;
const OUT_TMS: u32 = 4;
const OUT_ID: u32 = 8;
const OUT_KTMS: u32 = 16;
const OUT_CL: u32 = 32;
const OUT_SAVE: u32 = 64;
const OUT_USERSPACE: u32 = 128;
const OUT_JSON: u32 = 256;
const OUTPUT_WORDS: &[(&str, u32)] = &[
    ("xml", OUT_XML),
    ("extended", OUT_EXT),
    ("timestamp", OUT_TMS),
    ("id", OUT_ID),
    ("ktimestamp", OUT_KTMS),
    ("labels", OUT_CL),
    ("userspace", OUT_USERSPACE),
    ("save", OUT_SAVE),
    ("json", OUT_JSON),
];

/// `strncasecmp(word, name, word.len()) == 0`: `word` is a case-insensitive prefix of
/// `name` (so the empty word matches anything).
fn prefix_ci(word: &str, name: &str) -> bool {
    let w = word.as_bytes();
    let n = name.as_bytes();
    for (i, c) in w.iter().enumerate() {
        match n.get(i) {
            Some(d) if c.eq_ignore_ascii_case(d) => {}
            _ => return false,
        }
    }
    true
}

/// `do_parse_parameter`: Ok(Some(bits)), Ok(None) for the ignored SRC_NAT/DST_NAT (with
/// a warning), Err if unknown.
fn parse_word(word: &str, table: &[(&str, u32)], warnings: &mut Vec<String>) -> Result<u32, ()> {
    if prefix_ci(word, "SRC_NAT") {
        warnings.push("WARNING: ignoring SRC_NAT, use --src-nat instead".into());
        return Ok(0);
    }
    if prefix_ci(word, "DST_NAT") {
        warnings.push("WARNING: ignoring DST_NAT, use --dst-nat instead".into());
        return Ok(0);
    }
    table
        .iter()
        .find(|(n, _)| prefix_ci(word, n))
        .map(|(_, v)| *v)
        .ok_or(())
}

/// `parse_parameter` (comma-separated words; the error names the rest of the list).
fn parse_list(
    arg: &str,
    table: &[(&str, u32)],
    warnings: &mut Vec<String>,
) -> Result<u32, CtError> {
    let mut v = 0;
    let mut rest = arg;
    while let Some(comma) = rest.find(',') {
        if comma == 0 {
            return Err(CtError::param(format!("Bad parameter `{rest}'")));
        }
        v |= parse_word(&rest[..comma], table, warnings)
            .map_err(|_| CtError::param(format!("Bad parameter `{rest}'")))?;
        rest = &rest[comma + 1..];
    }
    if rest.is_empty() {
        return Err(CtError::param(format!("Bad parameter `{rest}'")));
    }
    v |= parse_word(rest, table, warnings)
        .map_err(|_| CtError::param(format!("Bad parameter `{rest}'")))?;
    Ok(v)
}

/// `parse_parameter_mask` for `-u`: `!WORD` goes to the mask, `UNREPLIED` (a
/// case-sensitive prefix of the word) masks SEEN_REPLY.
fn parse_status(
    arg: &str,
    status: &mut u32,
    mask: &mut u32,
    warnings: &mut Vec<String>,
) -> Result<(), CtError> {
    let mut rest = arg;
    loop {
        let comma = rest.find(',');
        if comma == Some(0) {
            return Err(CtError::param(format!("Bad parameter `{rest}'")));
        }
        let negated = rest.starts_with('!');
        let body = if negated { &rest[1..] } else { rest };
        let word_end = body.find(',');
        if comma.is_some() && word_end == Some(0) {
            return Err(CtError::param(format!("Bad parameter `{body}'")));
        }
        let word = &body[..word_end.unwrap_or(body.len())];
        if !negated && body.starts_with("UNREPLIED") {
            *mask |= 1 << 1;
        } else {
            if word_end.is_none() && word.is_empty() {
                return Err(CtError::param(format!("Bad parameter `{body}'")));
            }
            let bits = parse_word(word, STATUS_WORDS, warnings)
                .map_err(|_| CtError::param(format!("Bad parameter `{body}'")))?;
            if negated {
                *mask |= bits;
            } else {
                *status |= bits;
            }
        }
        match word_end {
            Some(i) => rest = &body[i + 1..],
            None => return Ok(()),
        }
    }
}

/// One getopt result.
enum Opt {
    /// A global option letter with its argument.
    Global(char, Option<String>),
    /// A protocol option (number) with its argument.
    Proto(u8, Option<String>),
}

/// Parse a conntrack(8) argument vector (without the program name).
pub fn parse(args: &[String]) -> Result<Listing, CtError> {
    Parser::new(args).run()
}

struct Parser<'a> {
    args: &'a [String],
    optind: usize,
    /// Remaining characters of a short-option cluster.
    cluster: Option<(usize, usize)>,
    handler: Option<&'static Handler>,
    /// Handlers whose options were merged (a second `-p` keeps the first one's options).
    merged: Vec<&'static Handler>,
    warnings: Vec<String>,
}

impl<'a> Parser<'a> {
    fn new(args: &'a [String]) -> Parser<'a> {
        Parser {
            args,
            optind: 0,
            cluster: None,
            handler: None,
            merged: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The argument getopt reports in "unknown option" / "requires an argument".
    fn prev_arg(&self) -> String {
        match self.optind.checked_sub(1) {
            Some(i) => self.args.get(i).cloned().unwrap_or_default(),
            None => PROGNAME.to_string(),
        }
    }

    /// `get_optional_arg`: the next argument if it does not look like an option.
    fn optional_arg(&mut self, given: Option<String>) -> Option<String> {
        if given.is_some() {
            return None;
        }
        if self.cluster.is_some() {
            return None;
        }
        match self.args.get(self.optind) {
            Some(a) if !a.starts_with('-') && !a.starts_with('!') => {
                self.optind += 1;
                Some(a.clone())
            }
            _ => None,
        }
    }

    /// The next option, or None at the end. Non-options are skipped (getopt permutes
    /// them to the end, and conntrack ignores them); `--` ends the options.
    fn next(&mut self) -> Option<Result<Opt, CtError>> {
        if let Some((ai, ci)) = self.cluster {
            return Some(self.short(ai, ci));
        }
        loop {
            let a = self.args.get(self.optind)?;
            if a == "--" {
                return None;
            }
            if let Some(long) = a.strip_prefix("--") {
                self.optind += 1;
                return Some(self.long(long));
            }
            if a.len() > 1 && a.starts_with('-') {
                return Some(self.short(self.optind, 1));
            }
            self.optind += 1;
        }
    }

    fn short(&mut self, ai: usize, ci: usize) -> Result<Opt, CtError> {
        let args = self.args;
        let arg = &args[ai];
        let c = arg[ci..].chars().next().unwrap_or('?');
        let next_ci = ci + c.len_utf8();
        let last = next_ci >= arg.len();
        if last {
            self.optind = ai + 1;
            self.cluster = None;
        } else {
            self.cluster = Some((ai, next_ci));
        }
        let Some(has_arg) = short_opt(c).filter(|_| c != ':' && c != ';') else {
            return Err(CtError::param(format!(
                "unknown option `{}'",
                self.prev_arg()
            )));
        };
        let value = match has_arg {
            0 => None,
            1 => {
                if !last {
                    self.cluster = None;
                    self.optind = ai + 1;
                    Some(arg[next_ci..].to_string())
                } else if let Some(v) = self.args.get(self.optind) {
                    self.optind += 1;
                    Some(v.clone())
                } else {
                    return Err(CtError::param(format!(
                        "option `{}' requires an argument",
                        self.prev_arg()
                    )));
                }
            }
            _ => {
                if !last {
                    self.cluster = None;
                    self.optind = ai + 1;
                    Some(arg[next_ci..].to_string())
                } else {
                    None
                }
            }
        };
        Ok(Opt::Global(c, value))
    }

    fn long(&mut self, body: &str) -> Result<Opt, CtError> {
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Candidates in table order: global options, then each merged handler's.
        #[derive(Clone, Copy, PartialEq)]
        enum Target {
            G(char),
            P(usize, u8),
        }
        let mut cands: Vec<(&str, u8, Target)> = LONG_OPTS
            .iter()
            .map(|(n, h, c)| (*n, *h, Target::G(*c)))
            .collect();
        for (hi, h) in self.merged.iter().enumerate() {
            for (n, v) in h.opts {
                cands.push((n, 1, Target::P(hi, *v)));
            }
        }
        let unknown = || CtError::param(format!("unknown option `--{body}'"));
        let found = if let Some(c) = cands.iter().find(|c| c.0 == name) {
            *c
        } else {
            let pre: Vec<_> = cands
                .iter()
                .filter(|c| !name.is_empty() && c.0.starts_with(name))
                .collect();
            match pre.first() {
                None => return Err(unknown()),
                Some(first) => {
                    if pre.iter().any(|c| c.1 != first.1 || c.2 != first.2) {
                        return Err(unknown());
                    }
                    **first
                }
            }
        };
        let value = match found.1 {
            0 => {
                if inline.is_some() {
                    return Err(unknown());
                }
                None
            }
            1 => match inline {
                Some(v) => Some(v),
                None => match self.args.get(self.optind) {
                    Some(v) => {
                        self.optind += 1;
                        Some(v.clone())
                    }
                    None => {
                        return Err(CtError::param(format!(
                            "option `--{body}' requires an argument"
                        )))
                    }
                },
            },
            _ => inline,
        };
        Ok(match found.2 {
            Target::G(c) => Opt::Global(c, value),
            Target::P(hi, v) => {
                // conntrack dispatches every protocol option to the *current* handler.
                if self.merged.get(hi).map(|h| h.name) != self.handler.map(|h| h.name) {
                    Opt::Proto(0, value)
                } else {
                    Opt::Proto(v, value)
                }
            }
        })
    }

    fn run(mut self) -> Result<Listing, CtError> {
        let mut command: u32 = 0;
        let mut table = Table::Conntrack;
        let mut options: u32 = 0;
        let mut l4flags: u32 = 0;
        let mut family: Option<Family> = None;
        let mut f = Filter::default();
        let mut output: u32 = 0;
        let mut events: u32 = 0;
        let mut status: u32 = 0;
        let mut labels: Option<Labels> = None;
        let mut label_bits: Option<u128> = None;

        fn add_command(cmd: &mut u32, new: u32) -> Result<(), CtError> {
            if *cmd != 0 {
                return Err(CtError::param("Invalid commands combination"));
            }
            *cmd |= new;
            Ok(())
        }
        fn set_family(family: &mut Option<Family>, new: Family) -> Result<(), CtError> {
            match family {
                None => *family = Some(new),
                Some(f) if *f != new => return Err(CtError::param("mismatched address family")),
                _ => {}
            }
            Ok(())
        }

        while let Some(o) = self.next() {
            match o? {
                Opt::Global(c, val) => {
                    let arg = val.clone().unwrap_or_default();
                    match c {
                        'L' | 'I' | 'D' | 'G' | 'F' | 'E' | 'V' | 'h' | 'C' | 'S' | 'U' | 'A' => {
                            let t = match self.optional_arg(val) {
                                None => Table::Conntrack,
                                Some(t) => {
                                    let p = |n: &str| n.starts_with(t.as_str());
                                    if p("expect") {
                                        Table::Expect
                                    } else if p("conntrack") {
                                        Table::Conntrack
                                    } else if p("dying") {
                                        Table::Dying
                                    } else if p("unconfirmed") {
                                        Table::Unconfirmed
                                    } else {
                                        return Err(CtError::param(format!("unknown type `{t}'")));
                                    }
                                }
                            };
                            let exp = t == Table::Expect;
                            let bit = match c {
                                'L' if exp => EXP_LIST,
                                'L' => CT_LIST,
                                _ if matches!(t, Table::Dying | Table::Unconfirmed) => {
                                    return Err(CtError::param(
                                        "Can't do that command with tables `dying' and `unconfirmed'",
                                    ))
                                }
                                'I' if exp => EXP_CREATE,
                                'I' => CT_CREATE,
                                'D' if exp => EXP_DELETE,
                                'D' => CT_DELETE,
                                'G' if exp => EXP_GET,
                                'G' => CT_GET,
                                'F' if exp => EXP_FLUSH,
                                'F' => CT_FLUSH,
                                'E' if exp => EXP_EVENT,
                                'E' => CT_EVENT,
                                'V' => CT_VERSION,
                                'h' => CT_HELP,
                                'C' if exp => EXP_COUNT,
                                'C' => CT_COUNT,
                                'S' if exp => EXP_STATS,
                                'S' => CT_STATS,
                                'U' if !exp => CT_UPDATE,
                                'A' if !exp => CT_ADD,
                                _ => {
                                    let long = LONG_OPTS
                                        .iter()
                                        .find(|o| o.2 == c)
                                        .map(|o| o.0)
                                        .unwrap_or("unknown");
                                    return Err(CtError::param(format!(
                                        "Can't do --{long} on expectations"
                                    )));
                                }
                            };
                            add_command(&mut command, bit)?;
                            table = t;
                        }
                        's' | 'd' | 'r' | 'q' | '{' | '}' | '[' | ']' => {
                            let (fam, addr, mask) = parse_addr(&arg, true).ok_or_else(|| {
                                CtError::param(format!("Invalid IP address `{arg}'"))
                            })?;
                            set_family(&mut family, fam)?;
                            let has_maskopt = matches!(c, 's' | 'd' | '[' | ']');
                            if mask != -1 && !has_maskopt {
                                let long = LONG_OPTS
                                    .iter()
                                    .find(|o| o.2 == c)
                                    .map(|o| o.0)
                                    .unwrap_or("unknown");
                                return Err(CtError::param(format!(
                                    "CIDR notation unavailable for `--{long}'"
                                )));
                            } else if mask == -2 {
                                return Err(CtError::param("Invalid netmask"));
                            }
                            let full = if fam == Family::V4 { 32 } else { 128 };
                            match c {
                                's' => {
                                    options |= opt::ORIG_SRC;
                                    f.orig_src = Some(addr);
                                    f.orig_l3 = Some(fam);
                                    if mask >= 0 && mask != full {
                                        options |= opt::MASK_SRC;
                                        f.src_mask = Some(netmask(fam, mask));
                                    }
                                }
                                'd' => {
                                    options |= opt::ORIG_DST;
                                    f.orig_dst = Some(addr);
                                    f.orig_l3 = Some(fam);
                                    if mask >= 0 && mask != full {
                                        options |= opt::MASK_DST;
                                        f.dst_mask = Some(netmask(fam, mask));
                                    }
                                }
                                'r' => {
                                    options |= opt::REPL_SRC;
                                    f.repl_src = Some(addr);
                                    f.repl_l3 = Some(fam);
                                }
                                'q' => {
                                    options |= opt::REPL_DST;
                                    f.repl_dst = Some(addr);
                                    f.repl_l3 = Some(fam);
                                }
                                '{' => {
                                    options |= opt::MASK_SRC;
                                    f.src_mask = Some(addr);
                                }
                                '}' => {
                                    options |= opt::MASK_DST;
                                    f.dst_mask = Some(addr);
                                }
                                '[' => options |= opt::EXP_SRC,
                                _ => options |= opt::EXP_DST,
                            }
                        }
                        'p' => {
                            options |= opt::PROTO;
                            let (h, num) = find_proto(&arg).ok_or_else(|| {
                                CtError::param(format!("`{arg}' unsupported protocol"))
                            })?;
                            self.handler = Some(h);
                            if !self.merged.iter().any(|m| std::ptr::eq(*m, h)) {
                                self.merged.push(h);
                            }
                            f.l4proto = Some(num);
                        }
                        't' => options |= opt::TIMEOUT,
                        'u' => {
                            options |= opt::STATUS;
                            let mut mask = f.kernel_status.map(|k| k.1).unwrap_or(0);
                            parse_status(&arg, &mut status, &mut mask, &mut self.warnings)?;
                            f.status = Some(status);
                            if mask == 0 {
                                mask = status;
                            }
                            f.kernel_status = Some((status, mask));
                            // 1.4.7 also stores the status in the mark template.
                            if let Some(m) = f.user_mark.as_mut() {
                                m.0 = status;
                            }
                        }
                        'e' => {
                            options |= opt::EVENT_MASK;
                            events |= parse_list(&arg, EVENT_WORDS, &mut self.warnings)?;
                        }
                        'o' => {
                            options |= opt::OUTPUT;
                            output |= parse_list(&arg, OUTPUT_WORDS, &mut self.warnings)?;
                            if output & OUT_CL != 0 && labels.is_none() {
                                labels = Some(self.labelmap());
                            }
                            if output & OUT_SAVE != 0
                                && output
                                    & (OUT_EXT
                                        | OUT_TMS
                                        | OUT_ID
                                        | OUT_KTMS
                                        | OUT_CL
                                        | OUT_XML
                                        | OUT_JSON)
                                    != 0
                            {
                                return Err(CtError::other(
                                    "cannot combine save output with any other output type, use -o save only",
                                ));
                            }
                        }
                        'z' => options |= opt::ZERO,
                        'n' | 'g' | 'j' => {
                            options |= match c {
                                'n' => opt::SRC_NAT,
                                'g' => opt::DST_NAT,
                                _ => opt::ANY_NAT,
                            };
                            let mut spec = NatSpec::default();
                            if let Some(a) = self.optional_arg(val) {
                                let (addr_s, port) = split_address_and_port(&a)?;
                                let (fam, addr, mask) =
                                    parse_addr(&addr_s, true).ok_or_else(|| {
                                        CtError::param(format!("Invalid IP address `{addr_s}'"))
                                    })?;
                                set_family(&mut family, fam)?;
                                if mask != -1 {
                                    let long = match c {
                                        'n' => "src-nat",
                                        'g' => "dst-nat",
                                        _ => "any-nat",
                                    };
                                    return Err(CtError::param(format!(
                                        "CIDR notation unavailable for `--{long}'"
                                    )));
                                }
                                spec.addr_v4 = (fam == Family::V4).then(|| addr.v4_octets());
                                spec.port = port;
                                if c == 'j' {
                                    // 1.4.7 writes the address through an unset table
                                    // slot into the template's original source.
                                    f.any_nat_garbles_src = true;
                                } else {
                                    f.orig_l3 = Some(fam);
                                }
                            }
                            match c {
                                'n' => f.src_nat = Some(spec),
                                'g' => f.dst_nat = Some(spec),
                                _ => {
                                    f.src_nat = Some(spec);
                                    f.dst_nat = Some(spec);
                                }
                            }
                        }
                        'w' | '(' | ')' => {
                            let v = strtoul(&arg).0 as u16;
                            match c {
                                'w' => {
                                    options |= opt::ZONE;
                                    f.zone = Some(v);
                                }
                                '(' => {
                                    options |= opt::ORIG_ZONE;
                                    f.orig_zone = Some(v);
                                }
                                _ => {
                                    options |= opt::REPL_ZONE;
                                    f.repl_zone = Some(v);
                                }
                            }
                        }
                        'i' => options |= opt::ID,
                        'c' => options |= opt::SECMARK,
                        'm' => {
                            options |= opt::MARK;
                            let (v, rest) = strtoul(&arg);
                            let mask = match rest.strip_prefix('/') {
                                Some(m) => strtoul(m).0 as u32,
                                None => u32::MAX,
                            };
                            f.user_mark = Some((v as u32, mask));
                            f.kernel_mark = Some((v as u32, mask));
                        }
                        'l' | '<' | '>' => {
                            options |= match c {
                                'l' => opt::LABEL,
                                '<' => opt::ADD_LABEL,
                                _ => opt::DEL_LABEL,
                            };
                            if labels.is_none() {
                                labels = Some(self.labelmap());
                            }
                            if options & (opt::ADD_LABEL | opt::DEL_LABEL)
                                == (opt::ADD_LABEL | opt::DEL_LABEL)
                            {
                                return Err(CtError::other(
                                    "cannot use --label-add and --label-del at the same time",
                                ));
                            }
                            let arg = if c == '>' {
                                match self.optional_arg(val) {
                                    Some(a) => a,
                                    None => continue,
                                }
                            } else {
                                arg
                            };
                            let map = labels.as_ref().cloned().unwrap_or_default();
                            let mut b: u128 = 0;
                            for name in arg.split(',') {
                                let bit = map.bit(name).ok_or_else(|| {
                                    CtError::param(format!("unknown label '{name}'"))
                                })?;
                                b |= 1u128 << bit;
                            }
                            if c == 'l' {
                                label_bits = Some(label_bits.unwrap_or(0) | b);
                            }
                        }
                        'a' => self
                            .warnings
                            .push(format!("WARNING: ignoring -{c}, deprecated option.")),
                        'f' => {
                            options |= opt::FAMILY;
                            if arg.starts_with("ipv4") {
                                set_family(&mut family, Family::V4)?;
                            } else if arg.starts_with("ipv6") {
                                set_family(&mut family, Family::V6)?;
                            } else {
                                return Err(CtError::param(format!(
                                    "`{arg}' unsupported protocol"
                                )));
                            }
                        }
                        'b' => options |= opt::BUFFERSIZE,
                        _ => {
                            return Err(CtError::param(format!(
                                "unknown option `{}'",
                                self.prev_arg()
                            )))
                        }
                    }
                }
                Opt::Proto(v, val) => {
                    let arg = val.unwrap_or_default();
                    let Some(h) = self.handler else { continue };
                    if v == 0 {
                        continue;
                    }
                    l4flags |= 1 << (v - 1);
                    match (h.kind, v) {
                        (Kind::Ports, 1..=4) => {
                            let port = if h.num == 47 {
                                strtoul(&arg).0 as u16
                            } else {
                                atoi(&arg) as u16
                            };
                            match v {
                                1 => f.orig_sport = Some(port),
                                2 => f.orig_dport = Some(port),
                                3 => f.repl_sport = Some(port),
                                _ => f.repl_dport = Some(port),
                            }
                            if v <= 2 {
                                f.l4proto = Some(h.num);
                            } else {
                                f.repl_l4proto = Some(h.num);
                            }
                        }
                        (Kind::Ports, 7) => {
                            if let Some((names, msg)) = h.states {
                                let idx = names.iter().position(|n| *n == arg);
                                let idx = match (idx, h.num) {
                                    (Some(i), _) => i as u8,
                                    // LISTEN, for kernels before 2.6.31 (= SYN_SENT2).
                                    (None, 6) if arg == "LISTEN" => 9,
                                    _ => return Err(CtError::param(format!("{msg} `{arg}'"))),
                                };
                                match h.num {
                                    6 => f.tcp_state = Some(idx),
                                    132 => f.sctp_state = Some(idx),
                                    _ => f.dccp_state = Some(idx),
                                }
                            }
                        }
                        (Kind::Ports, 10)
                            if h.num == 33
                                && !prefix_ci(&arg, "client")
                                && !prefix_ci(&arg, "server") =>
                        {
                            return Err(CtError::param(format!("Unknown DCCP role `{arg}'")));
                        }
                        (Kind::Icmp, 1..=3) => {
                            match v {
                                1 => f.icmp_type = Some(atoi(&arg) as u8),
                                2 => f.icmp_code = Some(atoi(&arg) as u8),
                                _ => f.icmp_id = Some(atoi(&arg) as u16),
                            }
                            f.l4proto = Some(h.num);
                            if f.repl_l3.is_some() {
                                f.repl_l4proto = Some(h.num);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }

        if options & opt::ANY_NAT != 0 && options & (opt::SRC_NAT | opt::DST_NAT) != 0 {
            return Err(CtError::param(
                "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'",
            ));
        }
        let which_command = match command {
            CT_LIST | EXP_LIST => Some(Command::List),
            CT_EVENT | EXP_EVENT => Some(Command::Event),
            CT_COUNT | EXP_COUNT => Some(Command::Count),
            CT_STATS | EXP_STATS => Some(Command::Stats),
            0 => None,
            _ => {
                let which = [
                    (CT_CREATE, "-I"),
                    (CT_UPDATE, "-U"),
                    (CT_DELETE, "-D"),
                    (CT_GET, "-G"),
                    (CT_FLUSH, "-F"),
                    (CT_VERSION, "-V"),
                    (CT_HELP, "-h"),
                    (EXP_CREATE, "-I"),
                    (EXP_DELETE, "-D"),
                    (EXP_GET, "-G"),
                    (EXP_FLUSH, "-F"),
                    (CT_ADD, "-A"),
                ]
                .iter()
                .find(|(b, _)| command & b != 0)
                .map(|(_, n)| *n)
                .unwrap_or("?");
                return Err(CtError::other(format!(
                    "command `{which}' changes the table; ctrack replay only runs -L, -E, -C and -S"
                )));
            }
        };
        let cmd = (0..NUMBER_OF_CMD)
            .find(|i| command & (1 << i) != 0)
            .unwrap_or(NUMBER_OF_CMD);
        let row = legality_row(cmd);
        for (i, name) in OPTFLAGS.iter().enumerate() {
            if options & (1 << i) != 0 && row[i] == 0 {
                return Err(CtError::param(format!(
                    "Illegal option `--{name}' with this command"
                )));
            }
        }
        if command & CT_HELP == 0 {
            if let Some(h) = self.handler {
                if h.kind == Kind::Unknown {
                    if f.repl_l3.is_some() && f.l4proto.is_some() && f.repl_l4proto.is_none() {
                        f.repl_l4proto = f.l4proto;
                    }
                } else {
                    let legal: &[u8] = if matches!(cmd, 0 | 6) { h.list } else { &[] };
                    for (i, name) in h.optflags.iter().enumerate() {
                        if l4flags & (1 << i) != 0 && legal.get(i).copied().unwrap_or(0) == 0 {
                            return Err(CtError::param(format!(
                                "Illegal option `--{name}' with this command"
                            )));
                        }
                    }
                }
            }
        }
        let command = which_command.ok_or_else(|| {
            CtError::param("no command specified (ctrack replay runs -L, -E, -C or -S)")
        })?;
        if command == Command::List && options & opt::COMPARISON != 0 && options & opt::ZERO != 0 {
            return Err(CtError::param("Can't use -z with filtering parameters"));
        }
        if matches!(command, Command::List | Command::Event) && table != Table::Expect {
            if options & opt::MASK_SRC != 0 {
                if options & opt::ORIG_SRC == 0 {
                    return Err(CtError::param("Can't use --mask-src without --src"));
                }
                if let (Some(a), Some(m)) = (f.orig_src, f.src_mask) {
                    f.src_net = Some(Net::new(a, m));
                    f.orig_src = None;
                }
            }
            if options & opt::MASK_DST != 0 {
                if options & opt::ORIG_DST == 0 {
                    return Err(CtError::param("Can't use --mask-dst without --dst"));
                }
                if let (Some(a), Some(m)) = (f.orig_dst, f.dst_mask) {
                    f.dst_net = Some(Net::new(a, m));
                    f.orig_dst = None;
                }
            }
        }
        if command == Command::List && table == Table::Conntrack {
            // The kernel refuses a status dump filter with an empty mask (`-u UNSET`).
            if let Some((_, 0)) = f.kernel_status {
                return Err(CtError::other("Operation failed: invalid parameters"));
            }
        }
        f.family = family;
        f.options = options;
        f.labels = label_bits;
        let o = |b: u32| output & b != 0;
        Ok(Listing {
            command,
            table,
            filter: f,
            output: OutputWords {
                xml: o(OUT_XML),
                extended: o(OUT_EXT),
                timestamp: o(OUT_TMS),
                id: o(OUT_ID),
                ktimestamp: o(OUT_KTMS),
                labels: o(OUT_CL),
                userspace: o(OUT_USERSPACE),
                save: o(OUT_SAVE),
                json: o(OUT_JSON),
            },
            event_mask: if options & opt::EVENT_MASK != 0 {
                events
            } else {
                event_mask::ALL
            },
            zero: options & opt::ZERO != 0,
            warnings: self.warnings,
            labels,
        })
    }

    fn labelmap(&mut self) -> Labels {
        match Labels::load(std::path::Path::new(Labels::PATH)) {
            Ok(l) => l,
            Err(e) => {
                self.warnings.push(format!("nfct_labelmap_new: {e}"));
                Labels::default()
            }
        }
    }
}

/// `findproto`: a known extension by name (case-insensitive), then `getprotobyname`
/// (unknown handler), then a number (0-255; an extension if one has that number).
fn find_proto(name: &str) -> Option<(&'static Handler, u8)> {
    if let Some(h) = HANDLERS.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
        return Some((h, h.num));
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(p, _)| *p == name) {
        return Some((&UNKNOWN, *n));
    }
    let (v, rest) = strtoul(name);
    if rest.is_empty() && !name.is_empty() && name != rest && v <= 255 {
        let n = v as u8;
        return Some(match HANDLERS.iter().find(|h| h.num == n) {
            Some(h) => (h, n),
            None => (&UNKNOWN, n),
        });
    }
    None
}
