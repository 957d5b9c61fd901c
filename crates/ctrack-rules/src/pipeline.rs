//! The netfilter hooks a packet crosses, in the kernel's priority order, around the
//! engine (kernel-semantics.md §2):
//!
//! ```text
//! forward path:  IP checks → defrag (−400) → prerouting chains ≤ −200 (raw: notrack,
//!                ct zone set) → conntrack in (−200) → prerouting chains > −200 →
//!                routing → forward chains → postrouting chains → confirm (INT_MAX)
//! to a --local:  ... routing → input chains → confirm (LOCAL_IN, INT_MAX)
//! from a --local: defrag → output chains ≤ −200 → conntrack in at LOCAL_OUT (no
//!                checksum verification) → output chains > −200 → postrouting chains
//!                → confirm
//! ```
//!
//! A drop (rule, policy, routing) before confirm discards the packet's unconfirmed
//! entry ([`Conntrack::discard`]): no entry, no event, exactly as the kernel frees the
//! ct with the skb. At equal priority a user chain runs before conntrack (it registered
//! its hook first). `notrack` makes the packet UNTRACKED (no conntrack call); `ct zone
//! set` before conntrack gives the zone of the lookup; `ct mark set` writes the entry
//! ([`Conntrack::set_mark`]); `meta mark` lives with the packet. Defrag runs first
//! whatever the chain priorities (chains below −400 see whole datagrams here).
//!
//! Evaluation allocates nothing per packet: chains are walked with a fixed stack of 16
//! jumps (nft's limit), counters are a preallocated vector, and log lines are indices
//! into the ruleset's prefixes.

use crate::compile::{CItem, Ruleset, Src};
use crate::expr::{CtCtx, PacketCtx};
use crate::Policy;
use ctrack_core::conntrack::{Confirmed, Conntrack, Hook, Tracked, Verdict};
use ctrack_core::defrag::{Defrag, DefragDrop, DefragResult};
use ctrack_core::packet::ip::{self, IpDrop};
use ctrack_core::topology::{self, NoRoute, Route, Side};
use ctrack_core::{Addr, CtState, Dir, Family, Instant, InvalidReason};
use std::fmt;

/// Where the packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped by the IP layer before netfilter (bad header).
    NotSeen,
    /// Held (or discarded) by defrag: no ctstate.
    Held,
    /// Reached POSTROUTING and confirm.
    Forwarded,
    /// Delivered locally: reached LOCAL_IN and confirm.
    Local,
    /// Dropped after netfilter saw it (rule, policy, conntrack, routing) before confirm.
    Dropped,
}

/// Why a packet was dropped, held, or marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The IP input checks.
    Ip(IpDrop),
    /// Held by defrag.
    Held,
    /// Discarded by defrag.
    Defrag(DefragDrop),
    /// Conntrack's own reason (invalid, ignored, table full...).
    Ct(InvalidReason),
    /// Not routed.
    NoRoute(NoRoute),
    /// Confirm failed.
    Confirm(InvalidReason),
    /// A rule or a chain policy dropped it ([`Outcome::rule`] says which).
    Rule,
    /// The jump stack overflowed (more than 16 nested jumps): dropped.
    Loop,
    /// A conntrack helper dropped it at the confirm hook (FTP partial command, an
    /// expectation that could not be registered).
    Helper(ctrack_core::helper::HelperDrop),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Ip(e) => write!(f, "{e}"),
            Reason::Held => f.write_str("held by defrag"),
            Reason::Defrag(e) => write!(f, "defrag: {e}"),
            Reason::Ct(r) | Reason::Confirm(r) => write!(f, "{r}"),
            Reason::NoRoute(r) => write!(f, "{r}"),
            Reason::Rule => f.write_str("dropped by rule"),
            Reason::Loop => f.write_str("dropped: too many nested jumps"),
            Reason::Helper(d) => write!(f, "{d}"),
        }
    }
}

/// A rule (or a chain's policy when `rule` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    /// Chain index in the ruleset.
    pub chain: u32,
    /// Rule index in the chain; `None` for the policy.
    pub rule: Option<u32>,
}

/// The path a packet takes through the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// PREROUTING → FORWARD → POSTROUTING.
    Forward,
    /// PREROUTING → INPUT.
    Input,
    /// OUTPUT → POSTROUTING.
    Output,
}

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `ct state` after conntrack, or `None` when it never got one.
    pub ctstate: Option<CtState>,
    /// `ct direction`.
    pub direction: Option<Dir>,
    /// Dropped by netfilter (a rule, a policy or conntrack) or by the IP layer.
    pub drop: bool,
    /// Why.
    pub reason: Option<Reason>,
    /// Where it went.
    pub fate: Fate,
    /// The rule that decided the verdict: the drop rule (or policy), else the last
    /// rule that accepted it; `None` when only policies accepted it.
    pub rule: Option<RuleRef>,
    /// The path taken.
    pub path: Path,
}

/// A rule counter's current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterValue {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The router: a compiled ruleset, its counters, its local addresses and interface
/// names. Call [`Pipeline::packet`] for each packet, in capture order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    rules: Ruleset,
    counters: Vec<CounterValue>,
    locals: Vec<(Family, Addr)>,
    ifnames: (String, String),
    logs: Vec<u32>,
}

enum ChainResult {
    Accept(Option<RuleRef>),
    Drop(RuleRef),
    Loop,
}

/// Per-packet state the rules change.
struct PktState {
    zone: u16,
    notrack: bool,
    accepted_by: Option<RuleRef>,
}

impl Pipeline {
    /// A pipeline for `rules`; `ifnames` are the (client, server) interface names.
    pub fn new(rules: Ruleset, ifnames: (String, String)) -> Pipeline {
        let counters = rules
            .counters
            .iter()
            .map(|c| CounterValue {
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect();
        Pipeline {
            rules,
            counters,
            locals: Vec::new(),
            ifnames,
            logs: Vec::with_capacity(8),
        }
    }

    /// Make `addr` one of the router's own addresses (`--local`).
    pub fn add_local(&mut self, addr: std::net::IpAddr) {
        self.locals.push(match addr {
            std::net::IpAddr::V4(a) => (Family::V4, Addr::v4(a.octets())),
            std::net::IpAddr::V6(a) => (Family::V6, Addr::v6(a.octets())),
        });
    }

    /// The ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        &self.rules
    }

    /// Rule counters, in the order of [`Ruleset::counters`].
    pub fn counters(&self) -> &[CounterValue] {
        &self.counters
    }

    /// The `log` prefixes the last packet hit, in order.
    pub fn logs(&self) -> impl Iterator<Item = &str> {
        self.logs
            .iter()
            .filter_map(|&i| self.rules.log_prefix.get(i as usize).map(String::as_str))
    }

    /// `nft list`-style lines for every counter:
    /// `inet fw forward handle 8 (line 12): counter packets 3 bytes 180`.
    pub fn counter_lines(&self) -> Vec<String> {
        self.rules
            .counters
            .iter()
            .zip(&self.counters)
            .map(|(site, v)| {
                format!(
                    "{}: counter packets {} bytes {}",
                    self.rules.describe(site.chain, Some(site.rule)),
                    v.packets,
                    v.bytes
                )
            })
            .collect()
    }

    fn is_local(&self, f: Family, a: &Addr) -> bool {
        self.locals.iter().any(|(lf, la)| *lf == f && la == a)
    }

    /// Run one IP packet (from the IP header to the end of the frame) entering on
    /// `side` (or, from a local address, leaving towards the other side).
    pub fn packet(
        &mut self,
        ct: &mut Conntrack,
        defrag: &mut Defrag,
        now: Instant,
        l3: &[u8],
        side: Side,
    ) -> Outcome {
        self.logs.clear();
        let mut out = Outcome {
            ctstate: None,
            direction: None,
            drop: false,
            reason: None,
            fate: Fate::NotSeen,
            rule: None,
            path: Path::Forward,
        };
        let checked = match l3.first().map(|b| b >> 4) {
            Some(6) => ip::check_ipv6(l3),
            _ => ip::check_ipv4(l3),
        };
        let data = match checked {
            Ok(d) => d,
            Err(e) => {
                out.drop = true;
                out.reason = Some(Reason::Ip(e));
                return out;
            }
        };
        let data = match defrag.push(now, data, 0, ct.sysctls()) {
            DefragResult::NotFragment | DefragResult::PassThrough => data,
            DefragResult::Complete(whole) => whole,
            DefragResult::Held => {
                out.fate = Fate::Held;
                out.reason = Some(Reason::Held);
                return out;
            }
            DefragResult::Dropped(why) => {
                out.fate = Fate::Held;
                out.drop = true;
                out.reason = Some(Reason::Defrag(why));
                return out;
            }
        };
        let Some(mut p) = PacketCtx::parse(data) else {
            // Unreachable after the IP checks; track as before (conntrack counts it).
            let t = ct.track(now, data, Hook::PreRouting, 0);
            out.ctstate = t.ctstate();
            out.fate = Fate::Dropped;
            ct.discard(&t);
            return out;
        };
        let from_local = !self.locals.is_empty() && self.is_local(p.family, &p.src);
        let to_local = !self.locals.is_empty() && self.is_local(p.family, &p.dst);
        let Pipeline {
            rules,
            counters,
            ifnames,
            logs,
            ..
        } = self;
        let mut ev = Eval {
            rules,
            counters,
            logs,
        };
        let (client, server) = (ifnames.0.as_str(), ifnames.1.as_str());
        let name = |s: Side| if s == Side::Client { client } else { server };
        let mut st = PktState {
            zone: 0,
            notrack: false,
            accepted_by: None,
        };
        // Hook lists are cloned by index, not by value: walk indices.
        let (first_hook, ct_hook) = if from_local {
            out.path = Path::Output;
            p.oif = Some(name(side.opposite()));
            (3usize, Hook::LocalOut)
        } else {
            p.iif = Some(name(side));
            (0usize, Hook::PreRouting)
        };

        // PREROUTING / OUTPUT, up to and including priority −200: raw, then conntrack.
        let n_first = ev.rules.hooks[first_hook].len();
        let split = ev.rules.hooks[first_hook]
            .iter()
            .position(|h| h.priority > -200)
            .unwrap_or(n_first);
        for i in 0..split {
            let chain = ev.rules.hooks[first_hook][i].chain;
            if let Some(o) = ev.base_chain(chain, &mut p, ct, &mut st, &mut out, None) {
                return o;
            }
        }
        let mut tracked: Option<Tracked> = None;
        if st.notrack {
            p.ct = CtCtx {
                ctinfo: None,
                entry: None,
                untracked: true,
            };
            out.ctstate = Some(CtState::Untracked);
        } else {
            let t = ct.track(now, data, ct_hook, st.zone);
            out.ctstate = t.ctstate();
            out.direction = t.direction();
            out.reason = t.reason.map(Reason::Ct);
            if t.verdict == Verdict::Drop {
                out.drop = true;
                out.fate = Fate::Dropped;
                ct.discard(&t);
                return out;
            }
            p.ct = CtCtx {
                ctinfo: t.ctinfo,
                entry: t.entry,
                untracked: t.untracked,
            };
            tracked = Some(t);
        }
        for i in split..n_first {
            let chain = ev.rules.hooks[first_hook][i].chain;
            if let Some(o) = ev.base_chain(chain, &mut p, ct, &mut st, &mut out, tracked.as_ref()) {
                return o;
            }
        }

        // Routing.
        let hooks: &[usize] = if from_local {
            &[4]
        } else if to_local {
            out.path = Path::Input;
            match topology::route(data) {
                Route::Drop(
                    why @ (NoRoute::MartianSource
                    | NoRoute::MartianDestination
                    | NoRoute::BadOptions),
                ) => return no_route(ct, tracked, why, out),
                _ => &[1],
            }
        } else {
            match topology::route(data) {
                Route::Forward => {
                    p.oif = Some(name(side.opposite()));
                    &[2, 4]
                }
                Route::Local => {
                    out.path = Path::Input;
                    &[1]
                }
                Route::Drop(why) => return no_route(ct, tracked, why, out),
            }
        };
        for &h in hooks {
            for i in 0..ev.rules.hooks[h].len() {
                let chain = ev.rules.hooks[h][i].chain;
                if let Some(o) =
                    ev.base_chain(chain, &mut p, ct, &mut st, &mut out, tracked.as_ref())
                {
                    return o;
                }
            }
        }

        // Confirm at INT_MAX (POSTROUTING or LOCAL_IN).
        out.fate = if out.path == Path::Input {
            Fate::Local
        } else {
            Fate::Forwarded
        };
        out.rule = st.accepted_by;
        if let Some(t) = tracked {
            match ct.help_and_confirm(now, &t, data) {
                Ok(Confirmed::Failed(r)) => {
                    out.drop = true;
                    out.fate = Fate::Dropped;
                    out.reason = Some(Reason::Confirm(r));
                }
                Ok(_) => {}
                Err(d) => {
                    // Dropped at the confirm hook, after POSTROUTING/INPUT: the fate
                    // stays (the packet reached it); the entry goes if unconfirmed.
                    ct.discard(&t);
                    out.drop = true;
                    out.reason = Some(Reason::Helper(d));
                }
            }
        }
        out
    }
}

fn no_route(
    ct: &mut Conntrack,
    tracked: Option<Tracked>,
    why: NoRoute,
    mut out: Outcome,
) -> Outcome {
    if let Some(t) = tracked {
        ct.discard(&t);
    }
    out.fate = Fate::Dropped;
    if out.reason.is_none() {
        out.reason = Some(Reason::NoRoute(why));
    }
    out
}

struct Eval<'r> {
    rules: &'r Ruleset,
    counters: &'r mut Vec<CounterValue>,
    logs: &'r mut Vec<u32>,
}

impl Eval<'_> {
    /// Run a base chain; `Some(outcome)` when the packet is dropped.
    fn base_chain(
        &mut self,
        chain: u32,
        p: &mut PacketCtx<'_>,
        ct: &mut Conntrack,
        st: &mut PktState,
        out: &mut Outcome,
        tracked: Option<&Tracked>,
    ) -> Option<Outcome> {
        // Family filter: ip tables see IPv4, ip6 tables IPv6, inet both.
        let fam = self.rules.chains.get(chain as usize).map(|c| c.family)?;
        match (fam, p.family) {
            (crate::TableFamily::Ip, Family::V6) | (crate::TableFamily::Ip6, Family::V4) => {
                return None
            }
            _ => {}
        }
        let r = self.run_chain(chain, p, ct, st);
        match r {
            ChainResult::Accept(by) => {
                if by.is_some() {
                    st.accepted_by = by;
                }
                None
            }
            ChainResult::Drop(by) => {
                if let Some(t) = tracked {
                    ct.discard(t);
                }
                out.drop = true;
                out.fate = Fate::Dropped;
                // Conntrack's own reason (invalid, ignored) stays: the rule is in `rule`.
                if !matches!(out.reason, Some(Reason::Ct(_))) {
                    out.reason = Some(Reason::Rule);
                }
                out.rule = Some(by);
                Some(*out)
            }
            ChainResult::Loop => {
                if let Some(t) = tracked {
                    ct.discard(t);
                }
                out.drop = true;
                out.fate = Fate::Dropped;
                out.reason = Some(Reason::Loop);
                Some(*out)
            }
        }
    }

    fn run_chain(
        &mut self,
        base: u32,
        p: &mut PacketCtx<'_>,
        ct: &mut Conntrack,
        st: &mut PktState,
    ) -> ChainResult {
        enum V {
            Next,
            Accept,
            Drop,
            Return,
            Jump(u32),
            Goto(u32),
        }
        let Eval {
            rules,
            counters,
            logs,
        } = self;
        let rules: &Ruleset = rules;
        let mut stack = [(0u32, 0u32); 16];
        let mut sp = 0usize;
        let (mut c, mut r) = (base, 0u32);
        loop {
            let Some(ch) = rules.chains.get(c as usize) else {
                return ChainResult::Accept(None);
            };
            let Some(rule) = ch.rules.get(r as usize) else {
                // End of chain: implicit return.
                if sp == 0 {
                    return policy(rules, base);
                }
                sp -= 1;
                (c, r) = stack[sp];
                continue;
            };
            let mut v = V::Next;
            for item in rule.items.iter() {
                match item {
                    CItem::Match(m) => {
                        if !m.matches(p, ct) {
                            break;
                        }
                    }
                    CItem::Accept => {
                        v = V::Accept;
                        break;
                    }
                    CItem::Drop | CItem::Reject => {
                        v = V::Drop;
                        break;
                    }
                    CItem::Return => {
                        v = V::Return;
                        break;
                    }
                    CItem::Continue => break,
                    CItem::Jump(t) => {
                        v = V::Jump(*t);
                        break;
                    }
                    CItem::Goto(t) => {
                        v = V::Goto(*t);
                        break;
                    }
                    CItem::Counter(i) => {
                        if let Some(cv) = counters.get_mut(*i as usize) {
                            cv.packets += 1;
                            cv.bytes += u64::from(p.len);
                        }
                    }
                    CItem::Log(i) => logs.push(*i),
                    CItem::Notrack => {
                        // kernel nft_notrack_eval: only a packet without a ct.
                        if p.ct.entry.is_none() && p.ct.ctinfo.is_none() && !p.ct.untracked {
                            st.notrack = true;
                            p.ct.untracked = true;
                        }
                    }
                    CItem::CtZoneSet(z) => {
                        // A template: only before conntrack attached an entry.
                        if p.ct.ctinfo.is_none() && !p.ct.untracked {
                            st.zone = *z;
                        }
                    }
                    CItem::CtMarkSet(src) => {
                        let val = value_of(*src, p, ct);
                        if let (Some(id), Some(val)) = (p.ct.entry, val) {
                            ct.set_mark(id, val);
                        }
                    }
                    CItem::MetaMarkSet(src) => {
                        if let Some(val) = value_of(*src, p, ct) {
                            p.mark = val;
                        }
                    }
                    CItem::CtHelperSet { kind, v4, v6 } => {
                        if let Some(id) = p.ct.entry {
                            ct.set_helper(id, *kind, *v4, *v6);
                        }
                    }
                }
            }
            let here = RuleRef {
                chain: c,
                rule: Some(r),
            };
            match v {
                V::Next => r += 1,
                V::Accept => return ChainResult::Accept(Some(here)),
                V::Drop => return ChainResult::Drop(here),
                V::Return => {
                    if sp == 0 {
                        return policy(rules, base);
                    }
                    sp -= 1;
                    (c, r) = stack[sp];
                }
                V::Jump(t) => {
                    if sp == stack.len() {
                        return ChainResult::Loop;
                    }
                    stack[sp] = (c, r + 1);
                    sp += 1;
                    (c, r) = (t, 0);
                }
                V::Goto(t) => (c, r) = (t, 0),
            }
        }
    }
}

fn policy(rules: &Ruleset, base: u32) -> ChainResult {
    match rules.chains.get(base as usize).and_then(|c| c.policy) {
        Some(Policy::Drop) => ChainResult::Drop(RuleRef {
            chain: base,
            rule: None,
        }),
        _ => ChainResult::Accept(None),
    }
}

fn value_of(src: Src, p: &PacketCtx<'_>, ct: &Conntrack) -> Option<u32> {
    match src {
        Src::Const(v) => Some(v),
        Src::MetaMark => Some(p.mark),
        Src::CtMark => p.ct.entry.and_then(|id| ct.entry(id)).map(|e| e.mark),
    }
}
