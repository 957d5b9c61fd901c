//! AST → [`Ruleset`]: values interpreted by the type of what they meet, jumps resolved
//! to chain indices, base chains sorted by hook and priority, counters numbered. Only a
//! compiled ruleset can run; it never changes (rule counters live in the pipeline).

use crate::ast::{
    self, ChainType, HookName, Item, Key, Match, Op, Policy, Stmt, TableFamily, Value,
};
use crate::error::{Error, Pos};
use crate::expr::{prefix_range, CMatch, Test, ValueType};

/// Where a `set` statement takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// A constant.
    Const(u32),
    /// The packet's `meta mark`.
    MetaMark,
    /// The entry's `ct mark`.
    CtMark,
}

/// A compiled rule item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CItem {
    /// A match.
    Match(CMatch),
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject` (a drop; the reply it would send is not modelled).
    Reject,
    /// `return`.
    Return,
    /// `continue`.
    Continue,
    /// `jump` to a chain index.
    Jump(u32),
    /// `goto` a chain index.
    Goto(u32),
    /// `counter`: index into the counters.
    Counter(u32),
    /// `log`: index into [`Ruleset::log_prefix`].
    Log(u32),
    /// `notrack`.
    Notrack,
    /// `ct [original|reply] zone set`: the template zone.
    CtZoneSet(ctrack_core::Zone),
    /// `ct label set`: the label bits to add.
    CtLabelSet(u128),
    /// `ct mark set`.
    CtMarkSet(Src),
    /// `meta mark set`.
    MetaMarkSet(Src),
    /// `snat`/`dnat`/`masquerade`/`redirect`: set up the entry's NAT binding (a
    /// terminal statement: the rule accepts).
    Nat(crate::nat::NatStmt),
    /// `ct helper set "obj"`: the object's helper, for the families its table covers.
    CtHelperSet {
        /// The helper (`type` of the object).
        kind: ctrack_core::helper::HelperKind,
        /// Attach to IPv4 entries.
        v4: bool,
        /// Attach to IPv6 entries.
        v6: bool,
    },
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CRule {
    /// Its items.
    pub items: Box<[CItem]>,
    /// nft's handle.
    pub handle: u64,
    /// Source line (0 for JSON input).
    pub line: u32,
}

/// A compiled chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CChain {
    /// `FAMILY TABLE` of its table.
    pub table: String,
    /// Its table's family.
    pub family: TableFamily,
    /// Name.
    pub name: String,
    /// Rules.
    pub rules: Box<[CRule]>,
    /// Policy, for base chains.
    pub policy: Option<Policy>,
    /// A base chain of `type nat` (run by the NAT hooks, first packets only).
    pub nat: bool,
}

/// A base chain on a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookChain {
    /// Priority.
    pub priority: i32,
    /// Chain index.
    pub chain: u32,
}

/// Where a counter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSite {
    /// Chain index.
    pub chain: u32,
    /// Rule index in the chain.
    pub rule: u32,
    /// Initial packets.
    pub packets: u64,
    /// Initial bytes.
    pub bytes: u64,
}

/// An immutable, compiled ruleset: base chains by hook, sorted by priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// All chains.
    pub chains: Vec<CChain>,
    /// Base chains of prerouting, input, forward, output, postrouting (in that order),
    /// each sorted by priority (load order among equals).
    pub hooks: [Vec<HookChain>; 5],
    /// Every `counter` statement.
    pub counters: Vec<CounterSite>,
    /// Every `log` statement's prefix.
    pub log_prefix: Vec<String>,
}

/// Index of a hook in [`Ruleset::hooks`].
pub fn hook_index(h: HookName) -> Option<usize> {
    Some(match h {
        HookName::Prerouting => 0,
        HookName::Input => 1,
        HookName::Forward => 2,
        HookName::Output => 3,
        HookName::Postrouting => 4,
        HookName::Ingress => return None,
    })
}

impl Ruleset {
    /// The accept-everything ruleset (no chains).
    pub fn empty() -> Ruleset {
        Ruleset::default()
    }

    /// Whether it has no base chains at all.
    pub fn is_empty(&self) -> bool {
        self.hooks.iter().all(Vec::is_empty)
    }

    /// `inet fw forward handle 8 (line 12)` or `inet fw forward policy drop`.
    pub fn describe(&self, chain: u32, rule: Option<u32>) -> String {
        let Some(c) = self.chains.get(chain as usize) else {
            return String::new();
        };
        match rule.and_then(|r| c.rules.get(r as usize)) {
            Some(r) if r.line > 0 => {
                format!(
                    "{} {} handle {} (line {})",
                    c.table, c.name, r.handle, r.line
                )
            }
            Some(r) => format!("{} {} handle {}", c.table, c.name, r.handle),
            None => format!(
                "{} {} policy {}",
                c.table,
                c.name,
                if c.policy == Some(Policy::Drop) {
                    "drop"
                } else {
                    "accept"
                }
            ),
        }
    }
}

struct Cx<'a> {
    file: &'a str,
    table: &'a ast::Table,
    chain: &'a ast::Chain,
    rule: &'a ast::Rule,
}

impl Cx<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> Error {
        let msg = msg.into();
        if pos.line == 0 {
            Error::file(
                self.file,
                format!(
                    "table {} {} chain {} rule handle {}: {msg}",
                    self.table.family.name(),
                    self.table.name,
                    self.chain.name,
                    self.rule.handle
                ),
            )
        } else {
            Error::at(self.file, pos, msg)
        }
    }
}

fn value_pos(v: &Value) -> Pos {
    match v {
        Value::Word(_, p) | Value::Str(_, p) => *p,
        Value::Flags(v) | Value::Set(v) => v.first().map(value_pos).unwrap_or_default(),
        Value::Range(a, _) | Value::Prefix(a, _) => value_pos(a),
        Value::Num(_) | Value::Key(_) => Pos::default(),
    }
}

/// Compile a parsed file. `file` names it in errors.
pub fn compile(file: &str, f: &ast::File) -> Result<Ruleset, Error> {
    let mut rs = Ruleset::default();
    // Chain indices first, so jumps resolve in any order.
    let mut index = Vec::new();
    for (ti, t) in f.tables.iter().enumerate() {
        for c in &t.chains {
            index.push((ti, c.name.clone()));
            rs.chains.push(CChain {
                table: format!("{} {}", t.family.name(), t.name),
                family: t.family,
                name: c.name.clone(),
                rules: Box::new([]),
                policy: c.base.as_ref().map(|b| b.policy),
                nat: c
                    .base
                    .as_ref()
                    .is_some_and(|b| b.chain_type == ChainType::Nat),
            });
        }
    }
    let mut ci = 0u32;
    for (ti, t) in f.tables.iter().enumerate() {
        for c in &t.chains {
            if let Some(b) = &c.base {
                if b.chain_type == ChainType::Nat
                    && matches!(b.hook, HookName::Forward | HookName::Ingress)
                {
                    return Err(Error::at(
                        file,
                        c.pos,
                        format!(
                            "chain {}: Could not process rule: Operation not supported (type nat chains hook prerouting, input, output or postrouting)",
                            c.name
                        ),
                    ));
                }
                if b.chain_type == ChainType::Route && b.hook != HookName::Output {
                    return Err(Error::at(file, c.pos, "Chain of type \"route\" is not supported, perhaps kernel support is missing?"));
                }
                let ok_family = !matches!(t.family, TableFamily::Other(_));
                if let (Some(h), true) = (hook_index(b.hook), ok_family) {
                    rs.hooks[h].push(HookChain {
                        priority: b.priority,
                        chain: ci,
                    });
                }
            }
            let mut rules = Vec::with_capacity(c.rules.len());
            for (ri, r) in c.rules.iter().enumerate() {
                let cx = Cx {
                    file,
                    table: t,
                    chain: c,
                    rule: r,
                };
                let mut items = Vec::with_capacity(r.items.len());
                // Whether a transport protocol is known at this point of the rule (nft's
                // protocol context): a NAT port mapping needs one.
                let mut l4_known = false;
                for it in &r.items {
                    items.push(match it {
                        Item::Match(m) => {
                            l4_known |= names_transport(m);
                            CItem::Match(compile_match(&cx, m)?)
                        }
                        Item::Stmt(s, pos) => {
                            let c = compile_stmt(&cx, s, *pos, ti, &index, &mut rs, ci, ri as u32)?;
                            if let CItem::Nat(st) = &c {
                                if st.range.flags & ctrack_core::nat::flags::PROTO_SPECIFIED != 0
                                    && !l4_known
                                {
                                    return Err(cx.err(
                                        *pos,
                                        "transport protocol mapping is only valid after transport protocol match",
                                    ));
                                }
                            }
                            c
                        }
                    });
                }
                rules.push(CRule {
                    items: items.into_boxed_slice(),
                    handle: r.handle,
                    line: r.pos.line,
                });
            }
            rs.chains[ci as usize].rules = rules.into_boxed_slice();
            ci += 1;
        }
    }
    for h in &mut rs.hooks {
        h.sort_by_key(|c| c.priority);
    }
    Ok(rs)
}

/// Whether a match fixes the transport protocol, as nft's protocol context sees it: an
/// equality on `ip protocol`, `ip6 nexthdr` or `meta l4proto`, or any field of a named
/// transport header (`tcp dport`, `udp sport`, `tcp flags`; not `th`).
fn names_transport(m: &Match) -> bool {
    match m.key {
        Key::IpProtocol | Key::Ip6Nexthdr | Key::L4proto => {
            matches!(m.op, Op::Implicit | Op::Eq | Op::In) && m.mask.is_none()
        }
        Key::Sport(p) | Key::Dport(p) => p != 0,
        Key::TcpFlags => true,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn compile_stmt(
    cx: &Cx<'_>,
    s: &Stmt,
    pos: Pos,
    ti: usize,
    index: &[(usize, String)],
    rs: &mut Ruleset,
    chain: u32,
    rule: u32,
) -> Result<CItem, Error> {
    let target = |name: &str| -> Result<u32, Error> {
        index
            .iter()
            .position(|(t, n)| *t == ti && n == name)
            .map(|i| i as u32)
            .ok_or_else(|| cx.err(pos, format!("Could not process rule: No such file or directory (chain {name} does not exist)")))
    };
    let src = |v: &Value, bits: u8| -> Result<Src, Error> {
        match v {
            Value::Key(Key::MetaMark) => Ok(Src::MetaMark),
            Value::Key(Key::CtMark) => Ok(Src::CtMark),
            Value::Key(_) => Err(cx.err(pos, "only ct mark and meta mark can be copied")),
            Value::Num(n) => u32::try_from(*n)
                .map(Src::Const)
                .map_err(|_| cx.err(pos, format!("Value {n} exceeds valid range"))),
            Value::Word(w, p) => ValueType::Int(bits)
                .scalar(w)
                .map(|n| Src::Const(n as u32))
                .map_err(|e| cx.err(*p, e)),
            _ => Err(cx.err(pos, "expected a number, ct mark or meta mark")),
        }
    };
    Ok(match s {
        Stmt::Accept => CItem::Accept,
        Stmt::Drop => CItem::Drop,
        Stmt::Reject(_) => CItem::Reject,
        Stmt::Return => CItem::Return,
        Stmt::Continue => CItem::Continue,
        Stmt::Jump(n) => CItem::Jump(target(n)?),
        Stmt::Goto(n) => CItem::Goto(target(n)?),
        Stmt::Counter { packets, bytes } => {
            rs.counters.push(CounterSite {
                chain,
                rule,
                packets: *packets,
                bytes: *bytes,
            });
            CItem::Counter(rs.counters.len() as u32 - 1)
        }
        Stmt::Log { prefix, group } => {
            if matches!(group, Some(0) | Some(100)) {
                // The oracle reads these groups; a user log there would be mixed into
                // its results. Allowed here, noted in the README.
            }
            rs.log_prefix.push(prefix.clone().unwrap_or_default());
            CItem::Log(rs.log_prefix.len() as u32 - 1)
        }
        Stmt::Notrack => CItem::Notrack,
        Stmt::CtZoneSet(dir, v) => match src(v, 16)? {
            Src::Const(z) => {
                let id = z as u16;
                CItem::CtZoneSet(match dir {
                    None => ctrack_core::Zone::new(id),
                    Some(reply) => ctrack_core::Zone::one_way(
                        id,
                        if *reply {
                            ctrack_core::Dir::Reply
                        } else {
                            ctrack_core::Dir::Original
                        },
                    ),
                })
            }
            _ => return Err(cx.err(pos, "ct zone set takes a constant here")),
        },
        Stmt::CtLabelSet(v) => {
            let (bits, _) = range_of(cx, ValueType::CtLabel, v)?;
            CItem::CtLabelSet(bits)
        }
        Stmt::CtMarkSet(v) => CItem::CtMarkSet(src(v, 32)?),
        Stmt::MetaMarkSet(v) => CItem::MetaMarkSet(src(v, 32)?),
        Stmt::CtHelperSet(name) => {
            let Some(obj) = cx.table.helpers.iter().find(|h| &h.name == name) else {
                return Err(cx.err(
                    pos,
                    format!("Could not process rule: No such file or directory (no ct helper \"{name}\" in this table)"),
                ));
            };
            let Some(kind) = ctrack_core::helper::HelperKind::from_type(&obj.helper_type) else {
                return Err(cx.err(
                    pos,
                    format!(
                        "ct helper \"{name}\": type \"{}\" is not supported (ftp, tftp, pptp)",
                        obj.helper_type
                    ),
                ));
            };
            let want = if kind.l4proto() == 6 { "tcp" } else { "udp" };
            if !obj.protocol.is_empty() && obj.protocol != want {
                return Err(cx.err(
                    pos,
                    format!(
                        "ct helper \"{name}\": helper {kind} is for {want}, not {}",
                        obj.protocol
                    ),
                ));
            }
            let (v4, v6) = match cx.table.family {
                TableFamily::Ip => (true, false),
                TableFamily::Ip6 => (false, true),
                _ => (true, true),
            };
            // The kernel looks the helper up per family (nft_ct_helper_obj_init): an
            // inet object gets whichever of the two exists; none at all is ENOENT.
            let (k4, k6) = kind.families();
            let (v4, v6) = (v4 && k4, v6 && k6);
            if !v4 && !v6 {
                return Err(cx.err(
                    pos,
                    format!(
                        "Could not process rule: No such file or directory (helper {kind} does not exist for this table's family)"
                    ),
                ));
            }
            CItem::CtHelperSet { kind, v4, v6 }
        }
        Stmt::Nat(kind, args) => {
            let kind = match kind {
                ast::NatKind::Snat => crate::nat::NatKind::Snat,
                ast::NatKind::Dnat => crate::nat::NatKind::Dnat,
                ast::NatKind::Masquerade => crate::nat::NatKind::Masquerade,
                ast::NatKind::Redirect => crate::nat::NatKind::Redirect,
            };
            let st = crate::nat::NatStmt::parse(kind, args)
                .map_err(|e| cx.err(pos, format!("{} {args}: {e}", kind.name())))?;
            if let Some(b) = &cx.chain.base {
                if b.chain_type != ChainType::Nat || !st.valid_at(b.hook) {
                    return Err(cx.err(
                        pos,
                        format!(
                            "Could not process rule: Operation not supported ({} needs a type nat chain at {})",
                            kind.name(),
                            match st.kind.manip() {
                                ctrack_core::nat::Manip::Src if kind == crate::nat::NatKind::Masquerade => "postrouting",
                                ctrack_core::nat::Manip::Src => "postrouting or input",
                                ctrack_core::nat::Manip::Dst => "prerouting or output",
                            }
                        ),
                    ));
                }
            }
            if let (Some(f), TableFamily::Ip | TableFamily::Ip6) = (st.family, cx.table.family) {
                let tf = if cx.table.family == TableFamily::Ip {
                    ctrack_core::Family::V4
                } else {
                    ctrack_core::Family::V6
                };
                if f != tf {
                    return Err(cx.err(
                        pos,
                        format!("{}: address family does not match the table", kind.name()),
                    ));
                }
            }
            CItem::Nat(st)
        }
        Stmt::Unsupported(w) => {
            return Err(cx.err(pos, format!("the {w} statement is not supported")))
        }
    })
}

fn elems(v: &Value) -> Vec<&Value> {
    match v {
        Value::Set(v) | Value::Flags(v) => v.iter().collect(),
        other => vec![other],
    }
}

fn range_of(cx: &Cx<'_>, ty: ValueType, v: &Value) -> Result<(u128, u128), Error> {
    match v {
        Value::Word(w, p) | Value::Str(w, p) => ty.range(w).map_err(|e| cx.err(*p, e)),
        Value::Num(n) => {
            let s = n.to_string();
            ty.range(&s).map_err(|e| cx.err(Pos::default(), e))
        }
        Value::Range(a, b) => {
            let (lo, _) = range_of(cx, ty, a)?;
            let (_, hi) = range_of(cx, ty, b)?;
            Ok((lo, hi))
        }
        Value::Prefix(a, len) => {
            let (base, _) = range_of(cx, ty, a)?;
            let bits = if ty == ValueType::Ipv4 { 32 } else { 128 };
            Ok(prefix_range(base, u32::from(*len).min(bits), bits))
        }
        Value::Flags(list) => {
            let mut bits = 0;
            for x in list {
                bits |= range_of(cx, ty, x)?.0;
            }
            Ok((bits, bits))
        }
        Value::Set(_) => Err(cx.err(value_pos(v), "a set is not allowed here")),
        Value::Key(_) => Err(cx.err(Pos::default(), "a key is not allowed here")),
    }
}

fn compile_match(cx: &Cx<'_>, m: &ast::Match) -> Result<CMatch, Error> {
    let mut key = m.key;
    // `ct original saddr` takes its family from the table, or from the value.
    if let Key::CtAddr(r, s, 0) = key {
        let fam = match cx.table.family {
            TableFamily::Ip => 4,
            TableFamily::Ip6 => 6,
            _ => {
                let first = elems(&m.value).first().map(|v| match v {
                    Value::Word(w, _) | Value::Str(w, _) => w.contains(':'),
                    _ => false,
                });
                match first {
                    Some(true) => 6,
                    Some(false) => 4,
                    None => 4,
                }
            }
        };
        key = Key::CtAddr(r, s, fam);
    }
    let ty = ValueType::of(key);
    if ty == ValueType::Str {
        let mut pats = Vec::new();
        for e in elems(&m.value) {
            let s = match e {
                Value::Word(w, _) | Value::Str(w, _) => w.clone(),
                _ => return Err(cx.err(m.pos, "expected a name")),
            };
            let (name, prefix) = match s.strip_suffix('*') {
                Some(p) if !s.ends_with("\\*") => (p.to_string(), true),
                _ => (s.replace("\\*", "*"), false),
            };
            pats.push((name.into_boxed_str(), prefix));
        }
        let neg = match m.op {
            Op::Implicit | Op::Eq | Op::In => false,
            Op::Ne => true,
            _ => return Err(cx.err(m.pos, "names can only be compared with == or !=")),
        };
        return Ok(CMatch {
            key,
            mask: None,
            test: Test::Str {
                pats: pats.into_boxed_slice(),
                neg,
            },
        });
    }
    let mask = match &m.mask {
        Some(v) => Some(range_of(cx, ty, v)?.0),
        None => None,
    };
    let is_set = matches!(m.value, Value::Set(_));
    let test = match m.op {
        Op::Lt | Op::Gt | Op::Le | Op::Ge => {
            if is_set {
                return Err(cx.err(value_pos(&m.value), "a set cannot be compared with < or >"));
            }
            Test::Cmp(m.op, range_of(cx, ty, &m.value)?.0)
        }
        _ => {
            let neg = m.op == Op::Ne;
            let flag_style = ty.is_flags()
                && mask.is_none()
                && !is_set
                && (matches!(m.op, Op::Implicit | Op::In)
                    // nft compares `ct label != x` as a whole value (cmp neq).
                    || (m.op == Op::Ne && ty != ValueType::CtLabel));
            if flag_style {
                Test::AnyBits {
                    bits: range_of(cx, ty, &m.value)?.0,
                    neg,
                }
            } else {
                let mut ranges = Vec::new();
                for e in elems(&m.value) {
                    if ty.is_flags() && !is_set {
                        // `tcp flags == syn,ack`: the whole value.
                        ranges.push(range_of(cx, ty, &m.value)?);
                        break;
                    }
                    ranges.push(range_of(cx, ty, e)?);
                }
                Test::In {
                    ranges: ranges.into_boxed_slice(),
                    neg,
                }
            }
        }
    };
    Ok(CMatch { key, mask, test })
}

/// Parse and compile a ruleset file's text: JSON (`nft -j list ruleset`) when it starts
/// with `{`, nft syntax otherwise.
pub fn load_str(file: &str, src: &str) -> Result<Ruleset, Error> {
    let ast = if src.trim_start().starts_with('{') {
        crate::json::parse(file, src)?
    } else {
        crate::parser::parse(file, src)?
    };
    compile(file, &ast).map_err(|e| e.with_source(src))
}

/// Read, parse and compile a ruleset file.
pub fn load_file(path: &std::path::Path) -> Result<Ruleset, Error> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path)
        .map_err(|e| Error::file(&name, format!("cannot read: {e}")))?;
    load_str(&name, &src)
}
