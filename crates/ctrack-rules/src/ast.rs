//! The parsed ruleset, before compilation: what the text file or the JSON said, with
//! positions for error messages. Values stay uninterpreted (a word is an address, a
//! port or a name depending on what it is compared with); [`crate::compile()`] decides.

use crate::error::Pos;

/// A whole ruleset file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    /// Tables in file order.
    pub tables: Vec<Table>,
}

/// A table's address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFamily {
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
    /// `inet`: both.
    Inet,
    /// `arp`, `bridge`, `netdev`: never see routed IP packets here.
    Other(&'static str),
}

impl TableFamily {
    /// Parse nft's family word.
    pub fn parse(w: &str) -> Option<TableFamily> {
        Some(match w {
            "ip" => TableFamily::Ip,
            "ip6" => TableFamily::Ip6,
            "inet" => TableFamily::Inet,
            "arp" => TableFamily::Other("arp"),
            "bridge" => TableFamily::Other("bridge"),
            "netdev" => TableFamily::Other("netdev"),
            _ => return None,
        })
    }

    /// nft's word.
    pub fn name(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
            TableFamily::Inet => "inet",
            TableFamily::Other(s) => s,
        }
    }
}

/// A table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Family.
    pub family: TableFamily,
    /// Name.
    pub name: String,
    /// Chains in declaration order.
    pub chains: Vec<Chain>,
    /// `ct helper NAME { type "ftp" protocol tcp; }` objects.
    pub helpers: Vec<CtHelperObject>,
    /// Where the table is declared.
    pub pos: Pos,
}

/// A `ct helper` object (stored; the engine has no helpers yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtHelperObject {
    /// Object name.
    pub name: String,
    /// `type "ftp"`.
    pub helper_type: String,
    /// `protocol tcp`.
    pub protocol: String,
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookName {
    /// NF_INET_PRE_ROUTING.
    Prerouting,
    /// NF_INET_LOCAL_IN.
    Input,
    /// NF_INET_FORWARD.
    Forward,
    /// NF_INET_LOCAL_OUT.
    Output,
    /// NF_INET_POST_ROUTING.
    Postrouting,
    /// netdev ingress (never crossed by the replay model's IP packets).
    Ingress,
}

impl HookName {
    /// Parse nft's hook word.
    pub fn parse(w: &str) -> Option<HookName> {
        Some(match w {
            "prerouting" => HookName::Prerouting,
            "input" => HookName::Input,
            "forward" => HookName::Forward,
            "output" => HookName::Output,
            "postrouting" => HookName::Postrouting,
            "ingress" => HookName::Ingress,
            _ => return None,
        })
    }

    /// nft's word.
    pub fn name(self) -> &'static str {
        match self {
            HookName::Prerouting => "prerouting",
            HookName::Input => "input",
            HookName::Forward => "forward",
            HookName::Output => "output",
            HookName::Postrouting => "postrouting",
            HookName::Ingress => "ingress",
        }
    }
}

/// A chain policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `policy accept`.
    Accept,
    /// `policy drop`.
    Drop,
}

/// The hook part of a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `type filter|nat|route`.
    pub chain_type: ChainType,
    /// `hook H`.
    pub hook: HookName,
    /// `priority P` (keywords resolved as nft does for the table's family).
    pub priority: i32,
    /// `policy accept|drop` (default accept).
    pub policy: Policy,
    /// `device D` (netdev chains).
    pub device: Option<String>,
}

/// A chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Hook, if a base chain.
    pub base: Option<BaseChain>,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// The handle nft gives it (or the JSON's).
    pub handle: u64,
    /// Where it is declared.
    pub pos: Pos,
}

/// A rule: matches and statements in order (a statement before a match runs for every
/// packet reaching the rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The items.
    pub items: Vec<Item>,
    /// The handle nft gives it (or the JSON's).
    pub handle: u64,
    /// Where it starts (line 0 for JSON input).
    pub pos: Pos,
    /// `comment "..."`.
    pub comment: Option<String>,
}

/// One element of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A match: the rule stops here if it fails.
    Match(Match),
    /// A statement.
    Stmt(Stmt, Pos),
}

/// What a match or a `set` statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `ip saddr`.
    IpSaddr,
    /// `ip daddr`.
    IpDaddr,
    /// `ip protocol`.
    IpProtocol,
    /// `ip6 saddr`.
    Ip6Saddr,
    /// `ip6 daddr`.
    Ip6Daddr,
    /// `ip6 nexthdr`.
    Ip6Nexthdr,
    /// `meta l4proto`.
    L4proto,
    /// `meta nfproto`.
    Nfproto,
    /// `meta mark`.
    MetaMark,
    /// `meta iifname`.
    Iifname,
    /// `meta oifname`.
    Oifname,
    /// `meta length`.
    Length,
    /// `PROTO sport` (th, tcp, udp, udplite, sctp, dccp; protocol number 0 = th).
    Sport(u8),
    /// `PROTO dport`.
    Dport(u8),
    /// `tcp flags`.
    TcpFlags,
    /// `icmp type`.
    IcmpType,
    /// `icmp code`.
    IcmpCode,
    /// `icmpv6 type`.
    Icmpv6Type,
    /// `icmpv6 code`.
    Icmpv6Code,
    /// `ct state`.
    CtState,
    /// `ct status`.
    CtStatus,
    /// `ct direction`.
    CtDirection,
    /// `ct mark`.
    CtMark,
    /// `ct [original|reply] zone`: `None` without a direction (the zone's id), else
    /// `Some(reply?)` (the zone's id for that direction, 0 if it does not cover it).
    CtZone(Option<bool>),
    /// `ct label`: the 128 label bits.
    CtLabel,
    /// `ct helper`.
    CtHelper,
    /// `ct l3proto`.
    CtL3proto,
    /// `ct protocol`.
    CtProtocol,
    /// `ct original|reply [ip|ip6] saddr|daddr`: (reply?, source?, family: 0 any, 4, 6).
    CtAddr(bool, bool, u8),
    /// `ct original|reply proto-src|proto-dst`: (reply?, source?).
    CtProto(bool, bool),
}

/// A value as written (interpreted by the compiler for the key it meets).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A word or number (`22`, `10.0.0.0/8`, `established`, `1-9`).
    Word(String, Pos),
    /// A quoted string (interface names, helper names).
    Str(String, Pos),
    /// A comma list of flags (`established,related`) or `syn|ack`.
    Flags(Vec<Value>),
    /// A `{ ... }` set.
    Set(Vec<Value>),
    /// JSON: an explicit range.
    Range(Box<Value>, Box<Value>),
    /// JSON: an explicit prefix.
    Prefix(Box<Value>, u8),
    /// JSON: a number.
    Num(u64),
    /// Another key's value (`meta mark set ct mark`).
    Key(Key),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// No operator written: equality, or "any bit" for flag types (nft's implicit op).
    Implicit,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `>`.
    Gt,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
    /// JSON `in`: any bit (flags) or membership.
    In,
}

/// A match: `KEY [& MASK] [OP] VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// What is read.
    pub key: Key,
    /// `& MASK` (or the mask of `tcp flags syn / syn,ack`).
    pub mask: Option<Value>,
    /// The operator.
    pub op: Op,
    /// The value compared with.
    pub value: Value,
    /// Where the match is.
    pub pos: Pos,
}

/// A NAT statement, stored for the NAT issue (rejected at compile time until then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatKind {
    /// `snat`.
    Snat,
    /// `dnat`.
    Dnat,
    /// `masquerade`.
    Masquerade,
    /// `redirect`.
    Redirect,
}

/// A statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject [with ...]` (the text after `reject`).
    Reject(String),
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// `continue`.
    Continue,
    /// `counter [packets N bytes M]`.
    Counter {
        /// Initial packets.
        packets: u64,
        /// Initial bytes.
        bytes: u64,
    },
    /// `log [prefix "..."] [level L] [group N]`.
    Log {
        /// The prefix.
        prefix: Option<String>,
        /// NFLOG group, if any.
        group: Option<u16>,
    },
    /// `notrack`.
    Notrack,
    /// `ct [original|reply] zone set V`: the direction as in [`Key::CtZone`].
    CtZoneSet(Option<bool>, Value),
    /// `ct label set V`.
    CtLabelSet(Value),
    /// `ct mark set V`.
    CtMarkSet(Value),
    /// `meta mark set V`.
    MetaMarkSet(Value),
    /// `ct helper set "name"`.
    CtHelperSet(String),
    /// `snat|dnat|masquerade|redirect ...` with its arguments as written.
    Nat(NatKind, String),
    /// Anything else nft knows but we do not model (`limit`, `queue`, ...): its keyword.
    Unsupported(String),
}
