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
use ctrack_core::nat::Manip;
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
    /// NAT could not rewrite it, or found no address (masquerade, redirect).
    Nat(&'static str),
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
            Reason::Nat(why) => write!(f, "nat: {why}"),
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
    /// The router's interface addresses (`--addr SIDE=ADDR`), for masquerade/redirect.
    addrs: Vec<(Side, Family, Addr)>,
    /// NAT hooks are registered for IPv4 / IPv6 (some `type nat` chain covers it).
    nat_families: (bool, bool),
    /// The last packet as it left the NAT hooks (`--write`).
    buf: Vec<u8>,
    /// Whether [`Pipeline::last_packet`] is asked for (the default): without it, a
    /// plain pipeline copies a packet into `buf` only for a helper or sequence
    /// adjustment to rewrite.
    keep_last: bool,
}

enum ChainResult {
    Accept(Option<RuleRef>),
    Drop(RuleRef),
    Loop,
}

/// Per-packet state the rules change.
struct PktState {
    /// The conntrack template a `ct zone set` attached before conntrack, if any.
    template: Option<ctrack_core::Zone>,
    /// Conntrack has not run yet (templates are only read by conntrack-in).
    before_ct: bool,
    notrack: bool,
    accepted_by: Option<RuleRef>,
    now: Instant,
    /// Interface sides, for masquerade (out) and redirect (in).
    in_side: Option<Side>,
    out_side: Option<Side>,
    /// The manip type of the NAT hook being run (NAT statements act only inside it).
    nat_manip: Option<Manip>,
}

/// The per-packet fields rules change, kept while NAT rewrites the bytes.
#[derive(Clone, Copy)]
struct Saved<'a> {
    iif: Option<&'a str>,
    oif: Option<&'a str>,
    mark: u32,
    ct: CtCtx,
}

impl<'a> Saved<'a> {
    /// `iif`/`oif` are passed separately: `p`'s borrow covers the packet bytes.
    fn of(p: &PacketCtx<'_>, iif: Option<&'a str>, oif: Option<&'a str>) -> Saved<'a> {
        Saved {
            iif,
            oif,
            mark: p.mark,
            ct: p.ct,
        }
    }
    fn ctx<'b>(&self, data: &'b [u8]) -> Option<PacketCtx<'b>>
    where
        'a: 'b,
    {
        let mut p = PacketCtx::parse(data)?;
        p.iif = self.iif;
        p.oif = self.oif;
        p.mark = self.mark;
        p.ct = self.ct;
        Some(p)
    }
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
        let mut nat_families = (false, false);
        for c in rules.chains.iter().filter(|c| c.nat) {
            match c.family {
                crate::TableFamily::Ip => nat_families.0 = true,
                crate::TableFamily::Ip6 => nat_families.1 = true,
                crate::TableFamily::Inet => nat_families = (true, true),
                _ => {}
            }
        }
        Pipeline {
            rules,
            counters,
            locals: Vec::new(),
            ifnames,
            logs: Vec::with_capacity(8),
            addrs: Vec::new(),
            nat_families,
            buf: Vec::with_capacity(2048),
            keep_last: true,
        }
    }

    /// Whether [`Pipeline::last_packet`] will be read (default `true`). `false` spares
    /// a plain pipeline (no ruleset) the copy of every packet; `last_packet` then says
    /// nothing reliable.
    pub fn keep_last_packet(&mut self, keep: bool) {
        self.keep_last = keep;
    }

    /// Give the router's interface on `side` the address `addr` (`--addr SIDE=ADDR`):
    /// it becomes one of the router's own addresses, masquerade uses it for packets
    /// leaving on that side and redirect for packets entering there (the first address
    /// of the family wins, as the kernel's primary address).
    pub fn add_addr(&mut self, side: Side, addr: std::net::IpAddr) {
        self.add_local(addr);
        if let Some(&(f, a)) = self.locals.last() {
            self.addrs.push((side, f, a));
        }
    }

    /// The last packet as it left the hooks: with NAT applied (meaningful when its
    /// outcome was not a drop, and while [`Pipeline::keep_last_packet`] is on).
    pub fn last_packet(&self) -> &[u8] {
        &self.buf
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
        self.packet_with_hint(ct, defrag, now, l3, side, None)
    }

    /// [`Pipeline::packet`] with the look-ahead window's flow hint for `l3`
    /// ([`ctrack_core::lookahead::FlowHint`]), which saves conntrack hashing it again.
    pub fn packet_with_hint(
        &mut self,
        ct: &mut Conntrack,
        defrag: &mut Defrag,
        now: Instant,
        l3: &[u8],
        side: Side,
        hint: Option<ctrack_core::lookahead::FlowHint>,
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
        // The reader thread may have run the checks already (a pure function of the
        // bytes): its hint carries the result when they passed.
        let checked = match hint.and_then(|h| h.ip_checked(l3)) {
            Some(d) => Ok(d),
            None => ip::check_ip(l3),
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
        if self.is_plain() {
            self.plain_packet(ct, now, data, hint, &mut out);
            return out;
        }
        self.buf.clear();
        self.buf.extend_from_slice(data);
        let Some(mut p) = PacketCtx::parse(data) else {
            // Unreachable after the IP checks; track as before (conntrack counts it).
            let t = ct.track(now, data, Hook::PreRouting, 0);
            out.ctstate = t.ctstate();
            out.fate = Fate::Dropped;
            ct.discard(&t);
            return out;
        };
        let from_local = !self.locals.is_empty() && self.is_local(p.family, &p.src);
        let mut to_local = !self.locals.is_empty() && self.is_local(p.family, &p.dst);
        let nat_on = match p.family {
            Family::V4 => self.nat_families.0,
            Family::V6 => self.nat_families.1,
        };
        let Pipeline {
            rules,
            counters,
            ifnames,
            logs,
            addrs,
            locals,
            buf,
            ..
        } = self;
        let mut ev = Eval {
            rules,
            counters,
            logs,
            addrs,
        };
        let (client, server) = (ifnames.0.as_str(), ifnames.1.as_str());
        let name = |s: Side| if s == Side::Client { client } else { server };
        let mut st = PktState {
            template: None,
            before_ct: true,
            notrack: false,
            accepted_by: None,
            now,
            in_side: (!from_local).then_some(side),
            out_side: None,
            nat_manip: None,
        };
        // Hook lists are cloned by index, not by value: walk indices.
        let (first_hook, ct_hook) = if from_local {
            out.path = Path::Output;
            p.oif = Some(name(side.opposite()));
            st.out_side = Some(side.opposite());
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
        st.before_ct = false;
        if st.notrack {
            p.ct = CtCtx {
                ctinfo: None,
                entry: None,
                untracked: true,
            };
            out.ctstate = Some(CtState::Untracked);
        } else {
            let zone = st.template.unwrap_or_default();
            let t = conntrack_hook(ct, now, data, ct_hook, zone, hint, &mut out);
            if out.drop {
                return out;
            }
            p.ct = CtCtx {
                ctinfo: t.ctinfo,
                entry: t.entry,
                untracked: t.untracked,
            };
            tracked = Some(t);
        }
        // The NAT hooks run once per walk, where their priority falls among the chains
        // (−100 DNAT at PREROUTING/OUTPUT, +100 SNAT at POSTROUTING/INPUT), or after the
        // last chain; one expansion for every place (a closure cannot hold `buf` and the
        // packet view at once).
        macro_rules! nat_hook {
            ($hook:expr, $manip:expr) => {{
                let saved = Saved::of(&p, (!from_local).then(|| name(side)), st.out_side.map(name));
                let r = ev.nat_step(
                    ct,
                    &mut st,
                    &mut out,
                    tracked.as_ref(),
                    buf,
                    saved,
                    $hook,
                    $manip,
                    !from_local,
                );
                let Some(q) = r.and_then(|s| s.ctx(buf).ok_or(out)).ok() else {
                    return out;
                };
                p = q;
            }};
        }
        let mut nat_done = !nat_on;
        // One step past the last chain, so a NAT hook after every chain runs there.
        for i in split..=n_first {
            let hc = ev.rules.hooks[first_hook].get(i).copied();
            if !nat_done && hc.is_none_or(|hc| hc.priority >= -100) {
                nat_done = true;
                nat_hook!(first_hook, Manip::Dst);
            }
            let Some(hc) = hc else { break };
            if ev
                .rules
                .chains
                .get(hc.chain as usize)
                .is_some_and(|c| c.nat)
            {
                continue;
            }
            if let Some(o) =
                ev.base_chain(hc.chain, &mut p, ct, &mut st, &mut out, tracked.as_ref())
            {
                return o;
            }
        }
        let data: &[u8] = buf;
        if nat_on && !from_local && !locals.is_empty() {
            // DNAT (redirect) may have made the packet local.
            to_local = locals.iter().any(|(f, a)| *f == p.family && *a == p.dst);
        }

        // Routing.
        let hooks: &[usize] = if from_local {
            st.out_side = Some(side.opposite());
            &[4]
        } else if to_local {
            out.path = Path::Input;
            match topology::route(data) {
                Route::Drop(
                    why @ (NoRoute::MartianSource
                    | NoRoute::MartianDestination
                    | NoRoute::BadOptions),
                ) => {
                    no_route(ct, tracked, why, &mut out);
                    return out;
                }
                _ => &[1],
            }
        } else {
            match topology::route(data) {
                Route::Forward => {
                    p.oif = Some(name(side.opposite()));
                    st.out_side = Some(side.opposite());
                    &[2, 4]
                }
                Route::Local => {
                    out.path = Path::Input;
                    &[1]
                }
                Route::Drop(why) => {
                    no_route(ct, tracked, why, &mut out);
                    return out;
                }
            }
        };
        for &h in hooks {
            // POSTROUTING and INPUT: the SRC NAT hook at priority 100.
            let mut nat_done = !nat_on || !matches!(h, 1 | 4);
            for i in 0..=ev.rules.hooks[h].len() {
                let hc = ev.rules.hooks[h].get(i).copied();
                if !nat_done && hc.is_none_or(|hc| hc.priority >= 100) {
                    nat_done = true;
                    nat_hook!(h, Manip::Src);
                }
                let Some(hc) = hc else { break };
                if ev
                    .rules
                    .chains
                    .get(hc.chain as usize)
                    .is_some_and(|c| c.nat)
                {
                    continue;
                }
                if let Some(o) =
                    ev.base_chain(hc.chain, &mut p, ct, &mut st, &mut out, tracked.as_ref())
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
            confirm_hook(ct, now, &t, buf, &mut out);
        }
        out
    }

    /// No chain on any hook, no NAT hook, no local address: the walk would run
    /// nothing but conntrack, routing and the confirm hook.
    fn is_plain(&self) -> bool {
        self.rules.hooks.iter().all(Vec::is_empty)
            && self.nat_families == (false, false)
            && self.locals.is_empty()
    }

    /// [`Pipeline::packet_with_hint`] for a plain pipeline ([`Pipeline::is_plain`])
    /// after the IP checks and defrag: what the general walk does with no chain to
    /// run, without building the rules' view of the packet (which cannot fail on a
    /// packet that passed the IP checks). `data` is copied into `self.buf` for the
    /// confirm hook when the last packet is kept or the entry has extensions (a helper
    /// or sequence adjustment may rewrite it there); a packet dropped before has no
    /// last packet to keep.
    fn plain_packet(
        &mut self,
        ct: &mut Conntrack,
        now: Instant,
        data: &[u8],
        hint: Option<ctrack_core::lookahead::FlowHint>,
        out: &mut Outcome,
    ) {
        let zone = ctrack_core::Zone::default();
        let t = conntrack_hook(ct, now, data, Hook::PreRouting, zone, hint, out);
        if out.drop {
            return;
        }
        match topology::route(data) {
            Route::Forward => {}
            Route::Local => out.path = Path::Input,
            Route::Drop(why) => return no_route(ct, Some(t), why, out),
        }
        out.fate = if out.path == Path::Input {
            Fate::Local
        } else {
            Fate::Forwarded
        };
        let extended = t
            .entry
            .and_then(|id| ct.table().get(id))
            .is_some_and(|e| e.ext.is_some());
        if self.keep_last || extended {
            self.buf.clear();
            self.buf.extend_from_slice(data);
        }
        confirm_hook(ct, now, &t, &mut self.buf, out);
    }
}

/// The conntrack hook (priority −200): track the packet and record its ct state,
/// direction and reason in `out`. When conntrack dropped it, `out.drop` says so and
/// its unconfirmed entry, if any, is discarded. (The result is returned as it is, not
/// in an `Option`: copying it into one right after the engine wrote it stalled on
/// store forwarding.)
fn conntrack_hook(
    ct: &mut Conntrack,
    now: Instant,
    data: &[u8],
    hook: Hook,
    zone: ctrack_core::Zone,
    hint: Option<ctrack_core::lookahead::FlowHint>,
    out: &mut Outcome,
) -> Tracked {
    let t = ct.track_with_hint(now, data, hook, zone, hint);
    out.ctstate = t.ctstate();
    out.direction = t.direction();
    out.reason = t.reason.map(Reason::Ct);
    if t.verdict == Verdict::Drop {
        out.drop = true;
        out.fate = Fate::Dropped;
        ct.discard(&t);
    }
    t
}

/// The confirm hook (INT_MAX of POSTROUTING or LOCAL_IN): helpers (NAT: payload
/// rewrite) and sequence adjustment rewrite `buf`, then the entry is confirmed.
fn confirm_hook(
    ct: &mut Conntrack,
    now: Instant,
    t: &Tracked,
    buf: &mut Vec<u8>,
    out: &mut Outcome,
) {
    match ct.help_and_confirm(now, t, buf) {
        Ok(Confirmed::Failed(r)) => {
            // Dropped at the confirm hook itself (clash, chain too long), after
            // POSTROUTING/INPUT: the fate stays, as for a helper drop there.
            out.drop = true;
            out.reason = Some(Reason::Confirm(r.into()));
        }
        Ok(_) => {}
        Err(d) => {
            // Dropped at the confirm hook, after POSTROUTING/INPUT: the fate
            // stays (the packet reached it); the entry goes if unconfirmed.
            ct.discard(t);
            out.drop = true;
            out.reason = Some(Reason::Helper(d));
        }
    }
}

/// A packet routing drops: its unconfirmed entry (if any) discarded, the outcome
/// dropped, for `why` unless an earlier hook gave a reason.
fn no_route(ct: &mut Conntrack, tracked: Option<Tracked>, why: NoRoute, out: &mut Outcome) {
    if let Some(t) = tracked {
        ct.discard(&t);
    }
    out.fate = Fate::Dropped;
    if out.reason.is_none() {
        out.reason = Some(Reason::NoRoute(why));
    }
}

struct Eval<'r> {
    rules: &'r Ruleset,
    counters: &'r mut Vec<CounterValue>,
    logs: &'r mut Vec<u32>,
    addrs: &'r [(Side, Family, Addr)],
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
            addrs,
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
                        // kernel nft_notrack_eval: only a packet without a ct (a
                        // template counts as one).
                        if p.ct.entry.is_none()
                            && p.ct.ctinfo.is_none()
                            && !p.ct.untracked
                            && st.template.is_none()
                        {
                            st.notrack = true;
                            p.ct.untracked = true;
                        }
                    }
                    CItem::CtZoneSet(z) => {
                        // kernel nft_ct_set_zone_eval: a template, only when the packet
                        // has no ct yet — not even a template, so the first zone set
                        // wins. `notrack` leaves no ct (only the UNTRACKED ctinfo), so a
                        // later zone set replaces it and the packet is tracked.
                        if st.before_ct && st.template.is_none() {
                            if st.notrack {
                                st.notrack = false;
                                p.ct.untracked = false;
                            }
                            st.template = Some(*z);
                        }
                    }
                    CItem::CtLabelSet(add) => {
                        // kernel nft_ct_set_eval: a real ct only (not a template).
                        if let Some(id) = p.ct.entry {
                            ct.set_labels(id, *add);
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
                    CItem::Nat(n) => {
                        v = match nat_stmt(n, p, ct, st, addrs) {
                            Some(true) => V::Accept,
                            Some(false) => V::Drop,
                            None => V::Next,
                        };
                        break;
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

impl Eval<'_> {
    /// A NAT hook (kernel `nf_nat_inet_fn`, `nf_nat_ipv4_fn`): ICMP errors RELATED to
    /// an entry are translated; the first packet of a connection (NEW, RELATED) runs the
    /// `type nat` chains of hook `h` until one sets up a binding, else gets a null
    /// binding; then every packet is rewritten by the entry's binding. `Err` when the
    /// packet is dropped (the outcome is filled in).
    #[allow(clippy::too_many_arguments)]
    fn nat_step<'s>(
        &mut self,
        ct: &mut Conntrack,
        st: &mut PktState,
        out: &mut Outcome,
        tracked: Option<&Tracked>,
        buf: &mut [u8],
        mut saved: Saved<'s>,
        h: usize,
        manip: Manip,
        verify: bool,
    ) -> Result<Saved<'s>, Outcome> {
        use ctrack_core::CtInfo;
        let (Some(id), Some(ci)) = (saved.ct.entry, saved.ct.ctinfo) else {
            return Ok(saved);
        };
        let drop = |ct: &mut Conntrack, out: &mut Outcome, why: &'static str| {
            if let Some(t) = tracked {
                ct.discard(t);
            }
            out.drop = true;
            out.fate = Fate::Dropped;
            out.reason = Some(Reason::Nat(why));
            *out
        };
        let Ok(pkt) = ctrack_core::packet::Packet::parse(buf) else {
            return Ok(saved);
        };
        let (family, l4proto, l4_off) = (pkt.family, pkt.proto, pkt.l4_off);
        let icmp_err = matches!(ci, CtInfo::Related | CtInfo::RelatedReply)
            && matches!((family, l4proto), (Family::V4, 1) | (Family::V6, 58));
        if icmp_err {
            if !ct.nat_icmp_error(id, ci.dir(), manip, buf, l4_off, verify) {
                return Err(drop(ct, out, "ICMP error translation failed"));
            }
            return Ok(saved);
        }
        if matches!(ci, CtInfo::New | CtInfo::Related | CtInfo::RelatedReply)
            && !ct.nat_initialized(id, manip)
        {
            let Some(mut p) = saved.ctx(buf) else {
                return Ok(saved);
            };
            st.nat_manip = Some(manip);
            for i in 0..self.rules.hooks[h].len() {
                let chain = self.rules.hooks[h][i].chain;
                if !self.rules.chains.get(chain as usize).is_some_and(|c| c.nat) {
                    continue;
                }
                if let Some(o) = self.base_chain(chain, &mut p, ct, st, out, tracked) {
                    st.nat_manip = None;
                    return Err(o);
                }
                if ct.nat_initialized(id, manip) {
                    break;
                }
            }
            st.nat_manip = None;
            saved.mark = p.mark;
            if !ct.nat_initialized(id, manip) && !ct.nat_null_binding(st.now, id, manip) {
                return Err(drop(ct, out, "null binding failed"));
            }
        }
        if !ct.nat_packet(id, ci.dir(), manip, buf) {
            return Err(drop(ct, out, "packet too short to rewrite"));
        }
        Ok(saved)
    }
}

/// A NAT statement inside a NAT hook (kernel `nft_nat_eval`, `nft_masq_eval`,
/// `nft_redir_eval`): `Some(true)` accept (binding set up), `Some(false)` drop, `None`
/// the rule does not apply (wrong family, not in a NAT hook of its type).
fn nat_stmt(
    n: &crate::nat::NatStmt,
    p: &PacketCtx<'_>,
    ct: &mut Conntrack,
    st: &PktState,
    addrs: &[(Side, Family, Addr)],
) -> Option<bool> {
    use crate::nat::NatKind;
    let manip = st.nat_manip.filter(|m| *m == n.kind.manip())?;
    if n.family.is_some_and(|f| f != p.family) {
        return None;
    }
    let id = p.ct.entry?;
    let addr_of = |side: Option<Side>| {
        let side = side?;
        addrs
            .iter()
            .find(|(s, f, _)| *s == side && *f == p.family)
            .map(|(_, _, a)| *a)
    };
    let mut range = n.range;
    let set = |range: &mut ctrack_core::nat::NatRange, a: Addr| {
        range.flags |= ctrack_core::nat::flags::MAP_IPS;
        range.min_addr = a;
        range.max_addr = a;
    };
    match n.kind {
        NatKind::Masquerade => {
            let orig_src = ct.entry(id).map(|e| e.tuple(Dir::Original).src)?;
            if p.family == Family::V4 && orig_src == Addr::default() {
                return Some(true);
            }
            // "%s ate my IP address": no address on the outgoing interface.
            let a = addr_of(st.out_side)?;
            set(&mut range, a);
        }
        NatKind::Redirect => {
            let a = match st.in_side {
                // LOCAL_OUT: to the loopback address.
                None => match p.family {
                    Family::V4 => Addr::v4([127, 0, 0, 1]),
                    Family::V6 => {
                        let mut b = [0u8; 16];
                        b[15] = 1;
                        Addr::v6(b)
                    }
                },
                Some(_) => match addr_of(st.in_side) {
                    Some(a) => a,
                    None => return Some(false),
                },
            };
            set(&mut range, a);
        }
        NatKind::Snat | NatKind::Dnat => {}
    }
    Some(ct.nat_setup(st.now, id, &range, manip))
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
