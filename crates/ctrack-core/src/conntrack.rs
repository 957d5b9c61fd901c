//! The engine: `nf_conntrack_in` ([`Conntrack::track`]) and `nf_conntrack_confirm`
//! ([`Conntrack::confirm`]) over the table (kernel `nf_conntrack_core.c`;
//! kernel-semantics.md §2, §4, §11).

use crate::entry::{Counter, Entry, Extensions, NewTuples};
use crate::event::{bits, Event, EventKind};
use crate::invalid::InvalidReason;
use crate::packet::{Packet, ParseError};
use crate::proto::gre_keymap::GreKeymap;
use crate::proto::icmp::{self, IcmpClass, IcmpReason};
use crate::proto::{gre, sctp, tcp, udp, Cx, EntryCx, ProtoState, TrackerResult};
use crate::stats::Stats;
use crate::status::{CtInfo, CtState, Status};
use crate::sysctl::Sysctls;
use crate::table::{EntryId, Table};
use crate::time::{Duration, Instant};
use crate::tuple::{proto, Addr, Dir, Family, Tuple};
use crate::zone::Zone;

mod helpers;
mod nat_helpers;
mod pptp;
pub mod seqadj;

/// A packet parsed ahead by the batch path: its view, tuple and keyed hash. Only for
/// packets that take the plain lookup path (not ICMP/ICMPv6, whose errors look up the
/// quoted tuple).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed<'a> {
    pkt: Packet<'a>,
    tuple: Tuple,
    hash: u64,
    /// The node the batch's tag walk found first in the tuple's chain with its tag
    /// (a likely hit, see [`Table::find_clean`]), or [`crate::table::NO_NODE`].
    node: u32,
}

impl<'a> Parsed<'a> {
    /// Parse `data` as `track` would, if it takes the plain path; `None` otherwise (the
    /// packet then goes through `track` unparsed, which handles every other case).
    /// `hash` must return [`Table::hash`] of the tuple in the zone (the batch path
    /// memoises it).
    #[inline]
    pub(crate) fn new_with(data: &'a [u8], hash: impl FnOnce(&Tuple) -> u64) -> Option<Parsed<'a>> {
        if let Some((pkt, tuple)) = Parsed::ports4(data) {
            let hash = hash(&tuple);
            return Some(Parsed::hashed(pkt, tuple, hash));
        }
        Parsed::general(data, hash)
    }

    /// [`Parsed::new_with`] of a packet [`Parsed::ports4`] does not view (the caller
    /// tried it first): the full parse.
    #[inline(never)]
    pub(crate) fn general(data: &'a [u8], hash: impl FnOnce(&Tuple) -> u64) -> Option<Parsed<'a>> {
        let pkt = Packet::parse(data).ok()?;
        // ICMP errors look up the quoted tuple; a GRE tuple may depend on the keymap,
        // which an earlier packet of the batch may still change.
        if matches!(pkt.proto, proto::ICMP | proto::ICMPV6 | proto::GRE) {
            return None;
        }
        let tuple = tuple_of(pkt.family, pkt.src, pkt.dst, pkt.proto, pkt.l4()).ok()?;
        let hash = hash(&tuple);
        Some(Parsed::hashed(pkt, tuple, hash))
    }

    /// The view and tuple [`Parsed::new_with`] builds for an IPv4 packet with a
    /// 20-byte header (no later fragment) of a protocol whose tuple is its two ports
    /// (TCP, UDP, UDP-Lite, SCTP), the ports present, built straight from the bytes;
    /// `None` for any other packet.
    #[inline(always)]
    pub(crate) fn ports4(data: &'a [u8]) -> Option<(Packet<'a>, Tuple)> {
        let ports = data.get(20..24)?;
        let p = data[9];
        if !matches!(p, proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP) {
            return None;
        }
        let pkt = Packet::parse_v4_plain(data)?;
        // The tuple `tuple_of` builds for these protocols, without its match.
        let tuple = Tuple {
            src: pkt.src,
            dst: pkt.dst,
            src_u: u16::from_be_bytes([ports[0], ports[1]]),
            dst_u: u16::from_be_bytes([ports[2], ports[3]]),
            family: Family::V4,
            proto: p,
        };
        Some((pkt, tuple))
    }

    /// [`FlowHasher::v4_words`] of the tuple [`Parsed::ports4`] builds from `data`,
    /// read straight from the header bytes (addresses at 12..20, ports at 20..24, as
    /// the view reads them); `None` when `data` is shorter than that.
    #[inline(always)]
    pub(crate) fn ports4_words(data: &[u8], zone: u16) -> Option<[u64; 2]> {
        let h: &[u8; 12] = data.get(12..24)?.try_into().ok()?;
        let [a0, a1, a2, a3, a4, a5, a6, a7, p0, p1, p2, p3] = *h;
        let addrs = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
        // The source port in the low half, the destination port above, both in host
        // order: the big-endian read puts the source above, so swap the halves.
        let ports = u32::from_be_bytes([p0, p1, p2, p3]).rotate_left(16);
        let misc = u64::from(ports)
            | u64::from(Family::V4 as u8) << 32
            | u64::from(data[9]) << 40
            | u64::from(zone) << 48;
        Some([addrs, misc])
    }

    /// A [`Parsed::ports4`] view with its tuple's hash computed apart (the batch path
    /// hashes a round's tuples together).
    #[inline(always)]
    pub(crate) fn from_view(pkt: Packet<'a>, tuple: Tuple, hash: u64) -> Parsed<'a> {
        Parsed::hashed(pkt, tuple, hash)
    }

    /// A parse with its tuple's hash, no walk's node yet.
    #[inline(always)]
    pub(crate) fn hashed(pkt: Packet<'a>, tuple: Tuple, hash: u64) -> Parsed<'a> {
        Parsed {
            pkt,
            tuple,
            hash,
            node: crate::table::NO_NODE,
        }
    }

    /// Sets the node the batch's tag walk found (see [`Parsed`]'s `node`).
    #[inline(always)]
    pub(crate) fn set_node(&mut self, node: u32) {
        self.node = node;
    }

    /// Sets the tuple's hash (see [`Parsed::from_view`]).
    #[inline(always)]
    pub(crate) fn set_hash(&mut self, hash: u64) {
        self.hash = hash;
    }

    /// [`Parsed::ports4`] of a UDP packet (the express path's protocol).
    #[inline(always)]
    pub(crate) fn udp4(data: &'a [u8]) -> Option<(Packet<'a>, Tuple)> {
        if data.get(9) != Some(&proto::UDP) {
            return None;
        }
        Parsed::ports4(data)
    }

    /// The tuple's keyed hash.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The packet's tuple.
    #[inline]
    pub(crate) fn tuple(&self) -> &Tuple {
        &self.tuple
    }
}

/// How far [`Conntrack::express`] got.
enum Express {
    /// The packet is tracked.
    Done(Tracked),
    /// The lookup was made (and met no expired node): its result.
    Looked(Option<(EntryId, Dir)>),
    /// Nothing was done.
    No,
}

/// The netfilter hook a packet is tracked at (decides checksum verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// PRE_ROUTING: packets arriving from an interface (checksums verified).
    PreRouting,
    /// LOCAL_OUT: packets the host itself sends (never checksum-verified).
    LocalOut,
}

/// What conntrack did with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (INVALID packets are accepted too: dropping them is the ruleset's job).
    Accept,
    /// Dropped by conntrack itself (table full, tracker DROP, failed confirm).
    Drop,
}

/// The per-packet result of [`Conntrack::track`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Tracked {
    /// ctinfo when the packet has a conntrack.
    pub ctinfo: Option<CtInfo>,
    /// The entry, if the packet has one and it still exists.
    pub entry: Option<EntryId>,
    /// The packet is UNTRACKED (ICMPv6 ND/MLD, notrack).
    pub untracked: bool,
    /// Accept or drop.
    pub verdict: Verdict,
    /// Why it is invalid, an error, dropped, or ignored by its tracker.
    pub reason: Option<InvalidReason>,
}

impl Tracked {
    /// The `ct state` rules see, or `None` when conntrack dropped the packet.
    pub fn ctstate(&self) -> Option<CtState> {
        if self.verdict == Verdict::Drop {
            return None;
        }
        Some(if self.untracked {
            CtState::Untracked
        } else if let Some(ci) = self.ctinfo {
            ci.state()
        } else {
            CtState::Invalid
        })
    }

    /// `ct direction`, for packets with a conntrack.
    pub fn direction(&self) -> Option<Dir> {
        self.ctinfo.map(CtInfo::dir)
    }

    fn invalid(reason: InvalidReason) -> Tracked {
        Tracked {
            ctinfo: None,
            entry: None,
            untracked: false,
            verdict: Verdict::Accept,
            reason: Some(reason),
        }
    }
}

/// Result of [`Conntrack::confirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Nothing to confirm (already confirmed, reply direction, no entry): events delivered.
    Nothing,
    /// The entry was inserted.
    Inserted,
    /// A clash with an identical entry was resolved by merging into it.
    Merged(EntryId),
    /// A clash on the original tuple only (a NAT race whose bindings differ): the entry
    /// was inserted under its reply tuple only, NAT_CLASH, expiring in 1 s, unlisted
    /// and with no NEW event (kernel `nf_ct_resolve_clash_harder`).
    ReplyOnly,
    /// Confirm failed: the packet is dropped (`insert_failed`).
    Failed(ConfirmFailure),
}

/// Why [`Confirmed::Failed`]: a fieldless reason, so that a confirm result (and a
/// batch's [`crate::batch::BatchResult`]) stays small; [`InvalidReason`] has its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmFailure {
    /// The tuple was taken (an unresolvable clash) or its chain too long.
    InsertClash,
}

impl From<ConfirmFailure> for InvalidReason {
    fn from(f: ConfirmFailure) -> InvalidReason {
        match f {
            ConfirmFailure::InsertClash => InvalidReason::InsertClash,
        }
    }
}

/// Engine configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The sysctls.
    pub sysctls: Sysctls,
    /// Seed of the hash key and of random choices (replay is deterministic for a seed).
    pub seed: u64,
    /// Record events (snapshots cost a clone per event).
    pub events: bool,
}

/// A conntrack table with its trackers: one network namespace's conntrack.
pub struct Conntrack {
    sysctls: Sysctls,
    pub(crate) table: Table,
    pub(crate) stats: Stats,
    /// NAT state: the bysource index and the random source (`nat/mod.rs`).
    pub(crate) nat: crate::nat::NatState,
    events_enabled: bool,
    events: Vec<Event>,
    next_seq: u32,
    expired: Vec<EntryId>,
    gc: crate::gc::GcWorker,
    helpers: crate::helper::Helpers,
    /// Whether the batch path's last round of a large table proved more misses than
    /// hits (a burst of new flows): the next round then hashes and walks every
    /// packet's reply bucket with its own (see `batch.rs`). A prediction only.
    pub(crate) miss_burst: bool,
    /// [`Sysctls::any_zero_timeout`], once asked, until [`Conntrack::sysctls_mut`].
    zero_timeout: Option<bool>,
}

impl Conntrack {
    /// A new, empty conntrack.
    pub fn new(cfg: Config) -> Conntrack {
        let mut table = Table::with_capacity(
            cfg.sysctls.buckets(),
            cfg.seed,
            cfg.sysctls.nf_conntrack_max,
        );
        table.set_timeouts(&cfg.sysctls);
        Conntrack {
            sysctls: cfg.sysctls,
            table,
            stats: Stats::default(),
            nat: crate::nat::NatState::new(cfg.seed),
            events_enabled: cfg.events,
            events: Vec::new(),
            next_seq: 0,
            expired: Vec::new(),
            gc: crate::gc::GcWorker::new(),
            helpers: crate::helper::Helpers {
                expect: crate::expect::ExpectTable::new(cfg.events),
                rng: cfg.seed ^ 0x6865_6c70_6572_7321,
                ..Default::default()
            },
            miss_burst: false,
            zero_timeout: None,
        }
    }

    /// The sysctls in force.
    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Change the sysctls (timeouts apply from the next refresh, as in the kernel).
    pub fn sysctls_mut(&mut self) -> &mut Sysctls {
        // A timeout set to 0 makes a refreshed entry expire at once: what a batch's
        // walks saw of the chains no longer holds, and whether a timeout is 0 is
        // found again.
        self.table.taint_changes();
        self.zero_timeout = None;
        // The timeouts may change: the chains' deadline bounds are off until the next
        // entry point takes the new ones (`Conntrack::observe`).
        self.table.suspend_bounds();
        &mut self.sysctls
    }

    /// The engine works at `now` (a packet's, a confirm's: every entry point that may
    /// set a deadline calls this first): the table told the time, and its deadline
    /// bounds re-armed with the timeouts of the sysctls as they are after a change
    /// (`sysctls_mut` suspends them; until then lookups take the slow path).
    #[inline(always)]
    pub(crate) fn observe(&mut self, now: Instant) {
        self.table.observe(now);
        if self.table.bounds_suspended() {
            self.table.set_timeouts(&self.sysctls);
        }
    }

    /// Whether a sysctl timeout is 0 (cached until the sysctls may change).
    pub(crate) fn zero_timeout(&mut self) -> bool {
        *self
            .zero_timeout
            .get_or_insert_with(|| self.sysctls.any_zero_timeout())
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Entries allocated, unconfirmed included (kernel `nf_conntrack_count`).
    pub fn count(&self) -> u32 {
        self.table.count()
    }

    /// The table (read-only: lookups, hashing, prefetch hints).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Number of hash buckets.
    pub fn buckets(&self) -> u32 {
        self.table.buckets()
    }

    /// Heap bytes held by the table (see [`Table::memory_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// The entry of `id`.
    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.table.get(id)
    }

    /// Set an entry's `ct mark` (nft `ct mark set`): the MARK event is cached and
    /// delivered with the packet's other events at the confirm hook.
    pub fn set_mark(&mut self, id: EntryId, mark: u32) {
        if let Some(e) = self.table.get_mut(id) {
            if e.mark != mark {
                e.mark = mark;
                e.ecache |= bits::MARK;
            }
        }
    }

    /// `ct label set` (kernel `nf_connlabels_replace` with mask = data): add the label
    /// bits; when that changes them, cache an `IPCT_LABEL` event (delivered at confirm,
    /// as an UPDATE, or with NEW for an unconfirmed entry). The labels live in the
    /// entry's extension box, allocated on first use: the kernel adds the extension to
    /// every entry created while a ruleset sets labels, and a replayed ruleset is loaded
    /// before the first packet, so the two agree.
    pub fn set_labels(&mut self, id: EntryId, add: u128) {
        if let Some(e) = self.table.get_mut(id) {
            let x = e.ext.get_or_insert_with(Box::default);
            if x.labels | add != x.labels {
                x.labels |= add;
                e.ecache |= bits::LABEL;
            }
        }
    }

    /// Take the delivered events.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The confirmed, unexpired entries, in creation order, as `conntrack -L` lists
    /// them (a NAT clash loser linked under its reply tuple only is not listed).
    pub fn entries(&self, now: Instant) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self
            .table
            .linked_ids()
            .into_iter()
            .filter(|&id| self.table.is_listed(id))
            .filter_map(|id| self.table.get(id))
            .filter(|e| !e.expired(now))
            .collect();
        let next = self.next_seq;
        v.sort_by_key(|e| e.age_key(next));
        v
    }

    /// Run the GC worker's passes that are due at `now` (kernel `gc_worker`, paced as
    /// the kernel paces it; see [`crate::gc`]). Returns the entries deleted.
    #[inline]
    pub fn gc(&mut self, now: Instant) -> usize {
        // Called for every packet: the usual answer (not due yet) stays inline.
        if self.gc.due(now).is_none() {
            return 0;
        }
        self.gc_passes(now)
    }

    /// The passes of [`Conntrack::gc`] once one is due.
    #[inline(never)]
    fn gc_passes(&mut self, now: Instant) -> usize {
        use crate::gc::{Average, EXPIRED_MAX, JIFFY};
        let mut deleted = 0;
        while let Some(at) = self.gc.due(now) {
            let max95 = if self.gc.early_drop {
                self.sysctls.nf_conntrack_max / 100 * 95
            } else {
                0
            };
            let mut avg = Average::new();
            let mut expired_count = 0;
            let mut yielded = false;
            for id in self.table.linked_ids() {
                if expired_count > EXPIRED_MAX {
                    yielded = true;
                    break;
                }
                let Some(e) = self.table.get(id) else {
                    continue;
                };
                if e.expired(at) {
                    self.delete(id, at);
                    expired_count += 1;
                    deleted += 1;
                    continue;
                }
                avg.feed(e.remaining(at));
                if max95 == 0 || self.table.count() < max95 {
                    continue;
                }
                let evict = !e.status.has(Status::ASSURED) || e.proto.can_early_drop();
                if evict && !e.status.has(Status::DYING) {
                    self.delete(id, at);
                    expired_count += 1;
                    deleted += 1;
                }
            }
            let delay = if yielded { JIFFY } else { avg.delay() };
            self.gc.reschedule(at, delay);
        }
        deleted
    }

    /// Delete every expired entry (DESTROY events) at once.
    pub fn expire(&mut self, now: Instant) -> usize {
        let ids: Vec<EntryId> = self
            .table
            .linked_ids()
            .into_iter()
            .filter(|&id| self.table.get(id).is_some_and(|e| e.expired(now)))
            .collect();
        let n = ids.len();
        for id in ids {
            self.delete(id, now);
        }
        n
    }

    /// Track one IP packet (already through the IP input checks and defrag): find or
    /// create its entry, run its L4 tracker, give it a ctinfo. A new entry is unconfirmed
    /// until [`Conntrack::confirm`]; call [`Conntrack::discard`] if the packet is dropped
    /// before reaching the confirm hook.
    ///
    /// `zone` is the packet's template zone (`ct zone set` in raw; a plain `u16` is that
    /// zone in both directions).
    pub fn track(
        &mut self,
        now: Instant,
        data: &[u8],
        hook: Hook,
        zone: impl Into<Zone>,
    ) -> Tracked {
        self.observe(now);
        self.track_hinted(now, data, hook, zone.into(), None)
    }

    /// [`Conntrack::track`] with the flow hash the look-ahead window computed for this
    /// packet ([`crate::lookahead::Lookahead`]): used when the hint was made from these
    /// very bytes and the zone hashes the original direction as the default zone does;
    /// otherwise the packet is hashed here, as `track` does.
    pub fn track_with_hint(
        &mut self,
        now: Instant,
        data: &[u8],
        hook: Hook,
        zone: impl Into<Zone>,
        hint: Option<crate::lookahead::FlowHint>,
    ) -> Tracked {
        self.observe(now);
        let zone = zone.into();
        let hint = hint.filter(|h| h.is_for(data) && zone.id_for(Dir::Original) == 0);
        if let (Some(h), Some((pkt, tuple))) = (hint, Parsed::udp4(data)) {
            return self.track_udp4(now, pkt, &tuple, h.hash, hook, zone);
        }
        let pre = hint.and_then(|h| Parsed::new_with(data, |_| h.hash));
        self.track_hinted(now, data, hook, zone, pre.as_ref())
    }

    /// [`Conntrack::track`] with the packet already parsed by the batch path (`pre` must
    /// come from [`Parsed::new_with`] on this packet with this table, hashed with the
    /// zone's original-direction id).
    #[inline]
    pub(crate) fn track_hinted(
        &mut self,
        now: Instant,
        data: &[u8],
        hook: Hook,
        zone: Zone,
        pre: Option<&Parsed<'_>>,
    ) -> Tracked {
        let check_checksum = hook == Hook::PreRouting && self.sysctls.nf_conntrack_checksum == 1;
        match pre {
            Some(p) => self.track_parsed(now, p, zone, check_checksum, None),
            None => match self.parse_for_track(now, data, zone, check_checksum) {
                Ok(p) => self.track_parsed(now, &p, zone, check_checksum, None),
                Err(t) => t,
            },
        }
    }

    /// The first half of `nf_conntrack_in` for a packet the batch path did not parse:
    /// the parse, the ICMP error path (which looks up the quoted tuple and answers
    /// here), the tuple (with the PPTP GRE key) and its hash. `Err` is the packet's
    /// final result.
    #[inline(never)]
    fn parse_for_track<'a>(
        &mut self,
        now: Instant,
        data: &'a [u8],
        zone: Zone,
        check_checksum: bool,
    ) -> Result<Parsed<'a>, Tracked> {
        // The commonest packets: no ICMP error path, no GRE key, the tuple is the ports.
        if let Some((pkt, tuple)) = Parsed::ports4(data) {
            let hash = self.table.hash(&tuple, zone.id_for(Dir::Original));
            return Ok(Parsed::hashed(pkt, tuple, hash));
        }
        let pkt = match Packet::parse(data) {
            Ok(p) => p,
            Err(ParseError::NoL4(r, _)) => {
                self.stats.invalid += 1;
                return Err(Tracked::invalid(InvalidReason::NoL4(r)));
            }
            Err(ParseError::Truncated) => {
                self.stats.invalid += 1;
                return Err(Tracked::invalid(InvalidReason::TupleTooShort));
            }
        };

        // ICMP/ICMPv6 error handler runs before the normal lookup.
        let class = {
            let cx = Cx {
                now,
                sysctls: &self.sysctls,
                check_checksum,
            };
            match (pkt.family, pkt.proto) {
                (Family::V4, proto::ICMP) => Some(icmp::classify_v4(&pkt, &cx)),
                (Family::V6, proto::ICMPV6) => Some(icmp::classify_v6(&pkt, &cx)),
                _ => None,
            }
        };
        match class {
            Some(IcmpClass::Reject(r)) => {
                self.stats.error += 1;
                return Err(Tracked::invalid(r.into()));
            }
            Some(IcmpClass::Untracked) => {
                return Err(Tracked {
                    untracked: true,
                    ..Tracked::invalid(InvalidReason::Generic)
                }
                .without_reason());
            }
            Some(IcmpClass::Error { inner_off }) => {
                return Err(self.icmp_error(now, &pkt, inner_off, zone));
            }
            Some(IcmpClass::Query) | None => {}
        }

        let mut tuple = match tuple_of(pkt.family, pkt.src, pkt.dst, pkt.proto, pkt.l4()) {
            Ok(t) => t,
            Err(r) => {
                self.stats.invalid += 1;
                return Err(Tracked::invalid(r));
            }
        };
        self.gre_src_key(&mut tuple, pkt.l4());
        let hash = self.table.hash(&tuple, zone.id_for(Dir::Original));
        Ok(Parsed::hashed(pkt, tuple, hash))
    }

    /// The second half of `nf_conntrack_in`: lookup or create, the L4 tracker, the
    /// entry's update. The hit path (an existing entry whose tracker accepts) stays in
    /// this function; creation and every non-accepting result are out of line.
    /// `looked`: the result of a clean lookup of this packet already made (by an
    /// express attempt), or `None` to try the express path here.
    #[inline(always)]
    fn track_parsed(
        &mut self,
        now: Instant,
        p: &Parsed<'_>,
        zone: Zone,
        check_checksum: bool,
        looked: Option<Option<(EntryId, Dir)>>,
    ) -> Tracked {
        if p.pkt.proto == proto::TCP {
            self.track_parsed_as::<true>(now, p, zone, check_checksum, looked)
        } else {
            self.track_parsed_as::<false>(now, p, zone, check_checksum, looked)
        }
    }

    /// [`Conntrack::track_parsed`] in two copies: `TCP` for a TCP packet (the TCP
    /// tracker inlined, no express attempt: that path is UDP's), the other for the
    /// rest (the TCP tracker a call away, so the UDP path's frame stays small).
    #[inline]
    fn track_parsed_as<const TCP: bool>(
        &mut self,
        now: Instant,
        p: &Parsed<'_>,
        zone: Zone,
        check_checksum: bool,
        looked: Option<Option<(EntryId, Dir)>>,
    ) -> Tracked {
        let (pkt, tuple, hash) = (&p.pkt, &p.tuple, p.hash);
        let mut first = match looked {
            Some(found) => Some(found),
            // The express path's clean lookup without its UDP part (inline: the
            // general lookup is a call); a group bound `now` has passed is renewed
            // on the way, as there.
            None if TCP => {
                if zone.id_for(Dir::Original) == zone.id_for(Dir::Reply) {
                    self.table.find_kept(tuple, zone, hash, now, p.node)
                } else {
                    None
                }
            }
            None => {
                match self.express::<false>(now, pkt, tuple, (hash, p.node), zone, check_checksum) {
                    Express::Done(t) => return t,
                    Express::Looked(found) => Some(found),
                    Express::No => None,
                }
            }
        };
        loop {
            let found = match first.take() {
                Some(found) => found,
                None => self.lookup_hashed(tuple, zone, hash, now),
            };
            let (id, dir, fresh) = match found {
                Some((id, dir)) => (id, dir, false),
                None => match self.create(now, tuple, zone) {
                    Ok(id) => (id, Dir::Original, true),
                    Err(t) => return t,
                },
            };
            let Some(e) = self.table.get_mut(id) else {
                return Tracked::invalid(InvalidReason::Generic);
            };
            let status = e.status;
            let ctinfo = ctinfo_of(dir, status);
            let ecx = EntryCx {
                status,
                unconfirmed: !status.has(Status::CONFIRMED),
                deadline: e.deadline,
                seqadj: e.ext.as_ref().and_then(|x| x.seqadj),
            };
            let cx = Cx {
                now,
                sysctls: &self.sysctls,
                check_checksum,
            };
            // Matched by reference: moving the accepted value out of the result
            // copied it (~20 instructions a packet).
            let result = run_tracker::<TCP>(e, pkt, dir, fresh, &ecx, &cx);
            let acc = match &result {
                TrackerResult::Accept(acc) => acc,
                TrackerResult::Repeat => {
                    self.delete(id, now);
                    continue;
                }
                _ => return self.not_accepted(now, id, ecx.unconfirmed, result),
            };
            if acc.kill {
                return self.accepted_kill(now, id, dir, ctinfo, acc, pkt.len());
            }
            update_accepted(e, now, dir, ctinfo, acc, pkt.len());
            return Tracked {
                ctinfo: Some(ctinfo),
                entry: Some(id),
                untracked: false,
                verdict: Verdict::Accept,
                // Read by its discriminant: copied whole, the note the tracker just
                // wrote with narrow stores was loaded 16 bytes at a time, which the
                // stores could not forward (a stall on every accepted packet).
                reason: if acc.note.is_some() {
                    note_of(acc)
                } else {
                    None
                },
            };
        }
    }
    /// [`Conntrack::track_hinted`] of a packet [`Parsed::udp4`] viewed (`hash`: its
    /// tuple's hash in the zone's original-direction id): the express hit inline, with
    /// the view and tuple kept out of memory; anything else out of line.
    #[inline(always)]
    pub(crate) fn track_udp4(
        &mut self,
        now: Instant,
        pkt: Packet<'_>,
        tuple: &Tuple,
        hash: u64,
        hook: Hook,
        zone: Zone,
    ) -> Tracked {
        // The parse is built only for the general path (a miss, an entry with
        // extensions, an invalid packet); the tuple is borrowed until then (a copy
        // of a tuple just written by narrow stores stalls the hit).
        let hashed = (hash, crate::table::NO_NODE);
        self.express_or(now, &pkt, tuple, hashed, hook, zone, |ct, check, looked| {
            let p = Parsed::hashed(pkt, *tuple, hash);
            ct.create_udp_or_general_call(now, &p, zone, check, looked)
        })
    }

    /// [`Conntrack::track_hinted`] of a UDP packet the batch parsed: the express hit
    /// inline (its UDP checks too), anything else the general path, from the parse as
    /// it is. `PROVEN_MISS`: the batch proved that its lookup misses without meeting an
    /// expired node (its round's walk went to the chain's end without a node carrying
    /// its tag or past its deadline, and no node was linked there since): what the
    /// express lookup would find, so it goes straight to its creation.
    #[inline(always)]
    pub(crate) fn track_udp_parsed<const PROVEN_MISS: bool>(
        &mut self,
        now: Instant,
        x: &Parsed<'_>,
        hook: Hook,
        zone: Zone,
    ) -> Tracked {
        // The express path is only taken in a zone with one id for both directions:
        // so is its shortcut.
        if PROVEN_MISS && zone.id_for(Dir::Original) == zone.id_for(Dir::Reply) {
            let check = self.checks_checksum(hook);
            return self.create_udp_or_general(now, x, zone, check, Some(None));
        }
        self.express_or(
            now,
            &x.pkt,
            &x.tuple,
            (x.hash, x.node),
            hook,
            zone,
            |ct, check, looked| ct.create_udp_or_general(now, x, zone, check, looked),
        )
    }

    /// Whether the L4 checksum is verified at `hook` (kernel: `nf_conntrack_checksum`,
    /// at PREROUTING only).
    #[inline(always)]
    fn checks_checksum(&self, hook: Hook) -> bool {
        hook == Hook::PreRouting && self.sysctls.nf_conntrack_checksum == 1
    }

    /// A UDP packet's express hit (with `udp_error` inlined), or else `general(self,
    /// check_checksum, looked)`: the general path (not TCP's copy), from the lookup the
    /// express path made.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn express_or(
        &mut self,
        now: Instant,
        pkt: &Packet<'_>,
        tuple: &Tuple,
        hashed: (u64, u32),
        hook: Hook,
        zone: Zone,
        general: impl FnOnce(&mut Conntrack, bool, Option<Option<(EntryId, Dir)>>) -> Tracked,
    ) -> Tracked {
        let check_checksum = self.checks_checksum(hook);
        let looked = match self.express::<true>(now, pkt, tuple, hashed, zone, check_checksum) {
            Express::Done(t) => return t,
            Express::Looked(found) => Some(found),
            Express::No => None,
        };
        general(self, check_checksum, looked)
    }

    /// A UDP packet past the express hit: its entry created at once when the lookup
    /// missed in the usual case ([`Conntrack::create_udp`]), else the general path.
    #[inline(always)]
    fn create_udp_or_general(
        &mut self,
        now: Instant,
        p: &Parsed<'_>,
        zone: Zone,
        check_checksum: bool,
        looked: Option<Option<(EntryId, Dir)>>,
    ) -> Tracked {
        if looked == Some(None) {
            // The result is built here (returned by the call, it was written with
            // narrow stores and read back at once with wide loads, which stall).
            if let Some(id) = self.create_udp(now, &p.pkt, &p.tuple, zone, check_checksum) {
                return Tracked {
                    ctinfo: Some(CtInfo::New),
                    entry: Some(id),
                    untracked: false,
                    verdict: Verdict::Accept,
                    reason: None,
                };
            }
        }
        self.track_parsed_as::<false>(now, p, zone, check_checksum, looked)
    }

    /// [`Conntrack::create_udp_or_general`] as a call of its own, for the per-packet
    /// UDP view's path (`track_udp4`: the small-table batch and the replay): inline,
    /// its two calls cost the express hit around them (hit 3 % slower in A/B at the
    /// same instruction count). The large-table batch, where new flows are common,
    /// keeps it inline.
    #[inline(never)]
    fn create_udp_or_general_call(
        &mut self,
        now: Instant,
        p: &Parsed<'_>,
        zone: Zone,
        check_checksum: bool,
        looked: Option<Option<(EntryId, Dir)>>,
    ) -> Tracked {
        self.create_udp_or_general(now, p, zone, check_checksum, looked)
    }

    /// The general path's creation for a UDP packet whose lookup missed, in the usual
    /// case only: a table with room (no early drop), no accounting or timestamp
    /// extension to allocate, no expectation the new entry could match, a packet that
    /// passes `udp_error`. The entry is built with its UDP state and refreshed as the
    /// general path would (`create`, then the tracker on a fresh entry, then the
    /// update); the packet is then NEW in it. `None` (nothing changed): any other
    /// case, which the general path handles.
    #[inline(never)]
    fn create_udp(
        &mut self,
        now: Instant,
        pkt: &Packet<'_>,
        tuple: &Tuple,
        zone: Zone,
        check_checksum: bool,
    ) -> Option<EntryId> {
        let max = self.sysctls.nf_conntrack_max;
        let usual = pkt.proto == proto::UDP
            && (max == 0 || self.table.count() < max)
            && !self.wants_extensions()
            && self.helpers.expect.is_empty();
        if !usual {
            return None;
        }
        let cx = Cx {
            now,
            sysctls: &self.sysctls,
            check_checksum,
        };
        udp::error_inline(pkt, &cx).ok()?;
        // An IPv4 tuple (the usual case's): compact; anything else the general path.
        let tuples = NewTuples::compact(tuple)?;
        // The fresh entry's context, as the general path reads it from the entry
        // `alloc` builds (deadline `now`, no status, no extensions).
        let ecx = EntryCx {
            status: Status::default(),
            unconfirmed: true,
            deadline: now,
            seqadj: None,
        };
        let mut conn = udp::UdpConn::new(&cx);
        let TrackerResult::Accept(acc) = conn.packet(&ecx, &cx) else {
            return None;
        };
        if acc.kill || acc.note.is_some() {
            return None;
        }
        let seq = self.take_seq();
        // Refreshed before it is stored, so that it is written to its slot once.
        let mut e = Entry::fresh(tuples, None, zone, now, seq, ProtoState::Udp(conn));
        update_accepted(&mut e, now, Dir::Original, CtInfo::New, &acc, pkt.len());
        Some(self.table.alloc(e))
    }

    /// The express hit path: a clean one-bucket lookup (no expired node met, a zone
    /// with one id for both directions) that finds a confirmed UDP entry without
    /// extensions whose packet passes `udp_error`: the UDP tracker and the entry's
    /// update, as the general path makes them, without the general path's checks for
    /// what such an entry cannot have (accounting, sequence adjustment, an
    /// unconfirmed state). Anything else reports how far it got, so the general path
    /// does not look up twice. (A TCP arm here was measured and dropped: its tracker
    /// dominates, and the larger function cost the UDP hit 30 instructions a packet
    /// and TCP 20.)
    ///
    /// `INLINE_UDP_ERROR`: `udp_error` inlined (the UDP view's path, where it saves a
    /// call) or called (the general path, where inlining it cost TCP 16 instructions).
    #[inline(always)]
    fn express<const INLINE_UDP_ERROR: bool>(
        &mut self,
        now: Instant,
        pkt: &Packet<'_>,
        tuple: &Tuple,
        (hash, hint): (u64, u32),
        zone: Zone,
        check_checksum: bool,
    ) -> Express {
        if zone.id_for(Dir::Original) != zone.id_for(Dir::Reply) {
            return Express::No;
        }
        let Some(found) = self.table.find_kept(tuple, zone, hash, now, hint) else {
            return Express::No;
        };
        let Some((id, dir)) = found else {
            return Express::Looked(None);
        };
        // Found by a chain walk, so linked: confirmed (unconfirmed entries are never
        // in a chain).
        debug_assert!(self.table.is_linked(id));
        let sysctls = &self.sysctls;
        let Some(e) = self.table.get_mut(id) else {
            return Express::Looked(found);
        };
        if e.ext.is_some() {
            return Express::Looked(found);
        }
        let (ProtoState::Udp(u), proto::UDP) = (&mut e.proto, pkt.proto) else {
            return Express::Looked(found);
        };
        let cx = Cx {
            now,
            sysctls,
            check_checksum,
        };
        let checked = if INLINE_UDP_ERROR {
            udp::error_inline(pkt, &cx)
        } else {
            udp::error(pkt, &cx)
        };
        if checked.is_err() {
            return Express::Looked(found);
        }
        let status = e.status;
        let ecx = EntryCx {
            status,
            unconfirmed: false,
            deadline: e.deadline,
            seqadj: None,
        };
        // The UDP tracker accepts every packet that passed `udp_error`, with no note
        // and no kill.
        let result = u.packet(&ecx, &cx);
        let TrackerResult::Accept(acc) = &result else {
            return Express::Looked(found);
        };
        let ctinfo = ctinfo_of(dir, status);
        update_accepted(e, now, dir, ctinfo, acc, pkt.len());
        Express::Done(Tracked {
            ctinfo: Some(ctinfo),
            entry: Some(id),
            untracked: false,
            verdict: Verdict::Accept,
            reason: None,
        })
    }

    /// A lookup missed: allocate the unconfirmed entry (early drop on a full table), or
    /// the packet's result when that is impossible.
    #[inline(never)]
    fn create(&mut self, now: Instant, tuple: &Tuple, zone: Zone) -> Result<EntryId, Tracked> {
        // Only ICMP types can fail to invert: every other tuple skips the check.
        let icmp = matches!(tuple.proto, proto::ICMP | proto::ICMPV6);
        if icmp && invert(tuple).is_none() {
            self.stats.invalid += 1;
            return Err(Tracked::invalid(InvalidReason::IcmpNotInvertible {
                icmp_type: tuple.icmp_type(),
            }));
        }
        match self.alloc(now, tuple, zone) {
            Some(id) => Ok(id),
            None => {
                self.stats.drop += 1;
                Err(Tracked {
                    verdict: Verdict::Drop,
                    ..Tracked::invalid(InvalidReason::TableFull)
                })
            }
        }
    }

    /// An accepted packet whose tracker kills the entry (a TCP RST or a close that
    /// ends it): count it, refresh it as the kernel does before the kill, delete it.
    #[inline(never)]
    fn accepted_kill(
        &mut self,
        now: Instant,
        id: EntryId,
        dir: Dir,
        ctinfo: CtInfo,
        acc: &crate::proto::Accepted,
        len: usize,
    ) -> Tracked {
        if let Some(e) = self.table.get_mut(id) {
            count_and_refresh(e, now, dir, acc, len, true);
        }
        self.delete(id, now);
        Tracked {
            ctinfo: Some(ctinfo),
            entry: None,
            untracked: false,
            verdict: Verdict::Accept,
            reason: acc.note,
        }
    }

    /// A tracker result other than accept or repeat: count it, apply what the kernel
    /// applies to the entry (a shortened timeout, ASSURED, a state change event), free
    /// an unconfirmed entry.
    #[inline(never)]
    fn not_accepted(
        &mut self,
        now: Instant,
        id: EntryId,
        unconfirmed: bool,
        result: TrackerResult,
    ) -> Tracked {
        match result {
            TrackerResult::Invalid {
                reason,
                set_timeout,
            } => {
                self.stats.invalid += 1;
                if unconfirmed {
                    self.table.free(id);
                } else if let (Some(t), Some(e)) = (set_timeout, self.table.get_mut(id)) {
                    e.deadline = now + t;
                }
                Tracked::invalid(reason)
            }
            TrackerResult::InvalidAfterUpdate {
                reason,
                set_assured,
                state_changed,
            } => {
                self.stats.invalid += 1;
                if unconfirmed {
                    self.table.free(id);
                } else if let Some(e) = self.table.get_mut(id) {
                    if set_assured && !e.status.has(Status::ASSURED) {
                        e.status.set(Status::ASSURED);
                        e.ecache |= bits::ASSURED;
                    }
                    if state_changed {
                        e.ecache |= bits::PROTOINFO;
                    }
                }
                Tracked::invalid(reason)
            }
            TrackerResult::Drop(reason) => {
                self.stats.invalid += 1;
                self.stats.drop += 1;
                if unconfirmed {
                    self.table.free(id);
                }
                Tracked {
                    verdict: Verdict::Drop,
                    ..Tracked::invalid(reason)
                }
            }
            TrackerResult::Accept(_) | TrackerResult::Repeat => {
                Tracked::invalid(InvalidReason::Generic)
            }
        }
    }

    /// The packet reached the confirm hook (POST_ROUTING or LOCAL_IN, priority INT_MAX):
    /// insert its entry if new (ORIGINAL direction only), then deliver cached events.
    pub fn confirm(&mut self, now: Instant, t: &Tracked) -> Confirmed {
        self.observe(now);
        self.confirm_hinted(now, t, || None)
    }

    /// [`Conntrack::confirm`] with the packet's tuple hashes already known (the batch
    /// path computes them; `hint` makes them, called only past the inline case): used
    /// when they are the entry's, each tuple without one is hashed here.
    #[inline]
    pub(crate) fn confirm_hinted<'h>(
        &mut self,
        now: Instant,
        t: &Tracked,
        hint: impl FnOnce() -> Option<ConfirmHint<'h>>,
    ) -> Confirmed {
        if self.confirm_nothing(t) {
            return Confirmed::Nothing;
        }
        self.confirm_past_inline(now, t, hint().as_ref())
    }

    /// [`Conntrack::confirm_hinted`] past its inline case: a packet that created its
    /// entry in the usual way ([`Conntrack::confirm_fresh`]), or the full path.
    #[inline(never)]
    fn confirm_past_inline(
        &mut self,
        now: Instant,
        t: &Tracked,
        hint: Option<&ConfirmHint<'_>>,
    ) -> Confirmed {
        if let Some(c) = hint.and_then(|x| self.confirm_fresh(now, t, x)) {
            return c;
        }
        self.confirm_slow(now, t, hint)
    }

    /// Confirm's usual case for a packet that created its entry in a batch that hashed
    /// both its tuples: a compact entry (its reply tuple is the packet's tuple
    /// inverted) whose two chains hold no node carrying either tuple's tag, so no
    /// clash, and are within the chain limit — linked at once, with the status, the
    /// cached event and its delivery of [`Conntrack::confirm_slow`]'s insert. `None`
    /// (nothing changed): any other case, which the full path decides.
    #[inline(always)]
    fn confirm_fresh(
        &mut self,
        now: Instant,
        t: &Tracked,
        hint: &ConfirmHint<'_>,
    ) -> Option<Confirmed> {
        let (id, ci) = (t.entry?, t.ctinfo?);
        let (z0, tuple, h0) = hint.orig;
        let (z1, h1) = hint.inverse?;
        if ci.dir() != Dir::Original || self.table.is_linked(id) {
            return None;
        }
        let e = self.table.get(id)?;
        let fits = !e.is_wide()
            && e.zone.id_for(Dir::Original) == z0
            && e.zone.id_for(Dir::Reply) == z1
            && e.has_tuple(Dir::Original, tuple);
        if !fits {
            return None;
        }
        let (n0, n1) = if hint.proven && self.table.unchanged(h0) && self.table.unchanged(h1) {
            // The round's walks went to both chains' ends; neither changed since.
            (0, 0)
        } else {
            (
                self.table.chain_len_untagged(h0)?,
                self.table.chain_len_untagged(h1)?,
            )
        };
        if n0 > CHAIN_LIMIT_ALWAYS || n1 > CHAIN_LIMIT_ALWAYS {
            return None;
        }
        Some(self.insert(now, id, [h0, h1]))
    }

    /// Confirm's insert (no clash, within the chain limit): both tuples linked with
    /// their hashes `h`, CONFIRMED, the timestamp's start, the NEW (or RELATED) event
    /// cached and delivered.
    #[inline(always)]
    fn insert(&mut self, now: Instant, id: EntryId, h: [u64; 2]) -> Confirmed {
        // Linking sets CONFIRMED (the table keeps linked and CONFIRMED together).
        self.table.link_hashed(id, h, Some(now));
        if let Some(e) = self.table.get_mut(id) {
            if let Some(ts) = e.ext.as_mut().and_then(|x| x.tstamp.as_mut()) {
                ts.0 = now;
            }
            e.ecache |= if e.status.has(Status::EXPECTED) {
                bits::RELATED
            } else {
                bits::NEW
            };
        }
        self.deliver_inline(id, now, EventKind::New);
        Confirmed::Inserted
    }

    /// The confirm hook's usual case, inline: a packet of an entry already confirmed
    /// whose cached events go nowhere (none cached, or events off) — the cache is
    /// cleared as delivering it would. `false`: take the full path.
    #[inline(always)]
    fn confirm_nothing(&mut self, t: &Tracked) -> bool {
        let (Some(id), Some(_)) = (t.entry, t.ctinfo) else {
            return false;
        };
        if !self.table.is_linked(id) {
            return false;
        }
        let events = self.events_enabled;
        match self.table.get_mut(id) {
            Some(e) if e.ecache == 0 || !events => {
                e.ecache = 0;
                true
            }
            _ => false,
        }
    }

    /// [`Conntrack::confirm_hinted`] past its inline case.
    #[inline(never)]
    fn confirm_slow(
        &mut self,
        now: Instant,
        t: &Tracked,
        hint: Option<&ConfirmHint<'_>>,
    ) -> Confirmed {
        let (Some(id), Some(ci)) = (t.entry, t.ctinfo) else {
            return Confirmed::Nothing;
        };
        if self.table.is_linked(id) {
            self.deliver(id, now, EventKind::Update);
            return Confirmed::Nothing;
        }
        if ci.dir() != Dir::Original {
            return Confirmed::Nothing;
        }
        let Some(e) = self.table.get(id) else {
            return Confirmed::Nothing;
        };
        let (zone, seq) = (e.zone, e.seq);
        // Chain limit (kernel `__nf_conntrack_confirm`): max = 50 + random(0..29), a
        // per-entry pseudo-random value here. Each walk checks a node for an equal key
        // first, then fails when the nodes before it number more than max: a clash at
        // position p (0-based) is met when p <= max + 1, and a chain longer than
        // max + 1 nodes fails without one. (Worked out only for chains that long.)
        let within = |n: usize| n <= CHAIN_LIMIT_ALWAYS || n <= 51 + (seq % 30) as usize;
        // kernel: the orig tuple hashed with the zone's orig id, the reply with its reply
        // id. The batch's hint serves when its tuple is the entry's original one
        // (compared in the entry's own form), and its inversion's hash when the reply
        // tuple is still that inversion (always, for a compact entry; NAT may have
        // changed it); a tuple without a hash is hashed here.
        let (z0, z1) = (zone.id_for(Dir::Original), zone.id_for(Dir::Reply));
        let hint = hint.filter(|x| x.orig.0 == z0 && e.has_tuple(Dir::Original, x.orig.1));
        let (h0, h1) = match hint {
            Some(x) => {
                let (_, o, h0) = x.orig;
                let inverted =
                    || !e.is_wide() || invert(o).is_some_and(|r| e.has_tuple(Dir::Reply, &r));
                let h1 = match x.inverse {
                    Some((z, h1)) if z == z1 && inverted() => h1,
                    _ => self.table.hash(&e.tuple(Dir::Reply), z1),
                };
                (h0, h1)
            }
            None => (
                self.table.hash(&e.tuple(Dir::Original), z0),
                self.table.hash(&e.tuple(Dir::Reply), z1),
            ),
        };
        // One walk per bucket: its chain length and the clash search together. A node
        // clashes when it carries the entry's tuple of that direction (built only for
        // a node with the same tag) in the same zone.
        let clashes = |d: Dir| {
            move |o: &Entry, od: Dir| o.zone.same_for(zone, od) && o.has_tuple(od, &e.tuple(d))
        };
        let (n0, clash0) = self.table.probe_with(h0, now, clashes(Dir::Original));
        let (n1, clash1) = self.table.probe_with(h1, now, clashes(Dir::Reply));
        let node = |c: Option<(EntryId, Dir, usize)>| c.map(|(id, d, _)| (id, d));
        // The walks stop at a clash the limit lets them reach; the reply chain is walked
        // only when the original one passed. Chains within the limit (those of at most
        // 51 nodes without arithmetic) pass.
        let (met0, met1) = if within(n0) && within(n1) {
            (node(clash0), node(clash1))
        } else {
            let met0 = node(clash0.filter(|c| within(c.2)));
            let reply_walked = met0.is_none() && within(n0);
            let met1 = node(clash1.filter(|c| reply_walked && within(c.2)));
            if met0.is_none() && met1.is_none() {
                self.stats.chaintoolong += 1;
                self.stats.insert_failed += 1;
                self.stats.drop += 1;
                let freed = self.table.free(id);
                self.gre_child_freed(freed.as_ref());
                return Confirmed::Failed(ConfirmFailure::InsertClash);
            }
            (met0, met1)
        };
        let clash1 = node(clash1);
        if let Some((other, _)) = met0.or(met1) {
            let Some([orig, reply]) = self.table.get(id).map(Entry::tuples) else {
                return Confirmed::Nothing;
            };
            // Clash resolution (kernel `nf_ct_resolve_clash`): only protocols that
            // allow it; first merge into an identical entry, then (`..._harder`) an
            // entry whose original tuple alone clashes goes in under its reply tuple.
            let allows = matches!(orig.proto, proto::UDP | proto::UDPLITE | proto::GRE)
                || !is_known_proto(orig.proto);
            if allows {
                if self.can_merge(other, &orig, &reply, zone) {
                    return self.merge_clash(id, other, ci.dir());
                }
                match clash1 {
                    Some((r, _)) if self.can_merge(r, &orig, &reply, zone) => {
                        return self.merge_clash(id, r, ci.dir());
                    }
                    Some(_) => {}
                    None => {
                        if let Some(e) = self.table.get_mut(id) {
                            e.deadline = now + crate::time::secs(1);
                            e.status.set(Status::FIXED_TIMEOUT | Status::NAT_CLASH);
                            // No NEW event: the kernel caches none for the loser.
                            e.ecache = 0;
                        }
                        self.table.link_reply_only(id, h1, now);
                        self.stats.clash_resolve += 1;
                        return Confirmed::ReplyOnly;
                    }
                }
            }
            self.stats.insert_failed += 1;
            self.stats.drop += 1;
            let freed = self.table.free(id);
            self.gre_child_freed(freed.as_ref());
            return Confirmed::Failed(ConfirmFailure::InsertClash);
        }
        self.insert(now, id, [h0, h1])
    }

    /// Whether the linked entry `other` has the tuples `orig`/`reply` and the zone ids of
    /// `zone`, the same or exactly reversed (kernel `nf_ct_can_merge`: `nf_ct_match` /
    /// `nf_ct_match_reverse`).
    fn can_merge(&self, other: EntryId, orig: &Tuple, reply: &Tuple, zone: Zone) -> bool {
        let (zo, zr) = (zone.id_for(Dir::Original), zone.id_for(Dir::Reply));
        self.table.get(other).is_some_and(|o| {
            let (oo, or) = (o.zone.id_for(Dir::Original), o.zone.id_for(Dir::Reply));
            (o.tuple(Dir::Original) == *orig
                && o.tuple(Dir::Reply) == *reply
                && oo == zo
                && or == zr)
                || (o.tuple(Dir::Original) == *reply
                    && o.tuple(Dir::Reply) == *orig
                    && oo == zr
                    && or == zo)
        })
    }

    /// Drop the unconfirmed `loser` in favour of `winner` (kernel
    /// `__nf_ct_resolve_clash`): with accounting, the winner gets one packet and the
    /// loser's bytes in the packet's direction (`nf_ct_acct_merge`).
    fn merge_clash(&mut self, loser: EntryId, winner: EntryId, dir: Dir) -> Confirmed {
        let bytes = self
            .table
            .get(loser)
            .and_then(|e| e.ext.as_ref())
            .and_then(|x| x.acct)
            .map(|a| a[dir.index()].bytes);
        if let Some(bytes) = bytes {
            if let Some(a) = self
                .table
                .get_mut(winner)
                .and_then(|e| e.ext.as_mut())
                .and_then(|x| x.acct.as_mut())
            {
                a[dir.index()].packets += 1;
                a[dir.index()].bytes += bytes;
            }
        }
        self.stats.clash_resolve += 1;
        let freed = self.table.free(loser);
        self.gre_child_freed(freed.as_ref());
        Confirmed::Merged(winner)
    }

    /// The packet was dropped before the confirm hook: an unconfirmed entry it created is
    /// freed without a trace (no event, no count).
    pub fn discard(&mut self, t: &Tracked) {
        if let Some(id) = t.entry {
            if !self.table.is_linked(id) {
                let e = self.table.free(id);
                self.gre_child_freed(e.as_ref());
            }
        }
    }

    fn deliver(&mut self, id: EntryId, now: Instant, kind: EventKind) {
        self.deliver_inline(id, now, kind);
    }

    /// [`Conntrack::deliver`], inline (the usual case has no event to deliver).
    #[inline(always)]
    fn deliver_inline(&mut self, id: EntryId, now: Instant, kind: EventKind) {
        let Some(e) = self.table.get_mut(id) else {
            return;
        };
        let mask = std::mem::take(&mut e.ecache);
        if mask == 0 || !self.events_enabled {
            return;
        }
        self.push_event(id, now, kind, mask);
    }

    /// [`Conntrack::deliver`]'s event, when there is one to deliver.
    #[inline(never)]
    fn push_event(&mut self, id: EntryId, now: Instant, kind: EventKind, mask: u16) {
        let Some(e) = self.table.get(id) else {
            return;
        };
        let kind = if mask & (bits::NEW | bits::RELATED) != 0 {
            EventKind::New
        } else {
            kind
        };
        self.events.push(Event {
            time: now,
            kind,
            mask,
            entry: e.clone(),
        });
    }

    /// Delete an entry (kernel `nf_ct_delete`): DESTROY event, unlink, free.
    pub(crate) fn delete(&mut self, id: EntryId, now: Instant) {
        let confirmed = self.table.is_linked(id);
        if let Some(mut e) = self.table.free(id) {
            // A PPTP master: its DESTROY event comes first, then the helper's destroy
            // callback kills the call's GRE entry (kernel `nf_ct_delete` order), then
            // the remaining expectations go.
            if let Some(s) = confirmed.then(|| pptp::Siblings::of(id, &e)).flatten() {
                if self.events_enabled {
                    let mut d = e.clone();
                    d.status.set(Status::DYING);
                    if let Some(ts) = d.ext.as_mut().and_then(|x| x.tstamp.as_mut()) {
                        ts.1 = Some(if d.deadline < now { d.deadline } else { now });
                    }
                    self.events.push(Event {
                        time: now,
                        kind: EventKind::Destroy,
                        mask: bits::DESTROY,
                        entry: d,
                    });
                }
                self.pptp_destroy_siblings(now, s);
                self.forget_links(id, &e, now, confirmed);
                return;
            }
            self.forget_links(id, &e, now, confirmed);
            if confirmed && self.events_enabled {
                e.status.set(Status::DYING);
                if let Some(ts) = e.ext.as_mut().and_then(|x| x.tstamp.as_mut()) {
                    let stop = if e.deadline < now { e.deadline } else { now };
                    ts.1 = Some(stop);
                }
                self.events.push(Event {
                    time: now,
                    kind: EventKind::Destroy,
                    mask: bits::DESTROY,
                    entry: e,
                });
            }
        }
    }

    fn lookup(&mut self, t: &Tuple, zone: Zone, now: Instant) -> Option<(EntryId, Dir)> {
        let h = self.table.hash(t, zone.id_for(Dir::Original));
        self.lookup_hashed(t, zone, h, now)
    }

    /// Kernel `resolve_normal_ct`'s lookup: the tuple hashed with the zone's orig id
    /// (`h`), then, on a miss and when the zone's reply id differs, hashed with that.
    fn lookup_hashed(
        &mut self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
    ) -> Option<(EntryId, Dir)> {
        let found = self.lookup_one(t, zone, h, now);
        let (id0, id1) = (zone.id_for(Dir::Original), zone.id_for(Dir::Reply));
        if found.is_some() || id0 == id1 {
            return found;
        }
        let h1 = self.table.hash(t, id1);
        self.lookup_one(t, zone, h1, now)
    }

    /// One bucket's walk of a lookup; expired entries met are deleted.
    #[inline]
    fn lookup_one(
        &mut self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
    ) -> Option<(EntryId, Dir)> {
        // The common walk meets no expired node: no list to fill.
        if let Some(r) = self.table.find_kept(t, zone, h, now, crate::table::NO_NODE) {
            return r;
        }
        let mut expired = std::mem::take(&mut self.expired);
        let r = self.table.find_hashed(t, zone, h, now, &mut expired);
        if expired.is_empty() {
            self.expired = expired;
            return r;
        }
        for &id in &expired {
            self.delete(id, now);
        }
        expired.clear();
        self.expired = expired;
        // A deletion above cannot invalidate `r`: `r` is unexpired.
        r
    }

    /// The creation number of a new entry. 32-bit creation numbers wrap (see
    /// `Entry::seq`); listings sort by `age_key`.
    #[inline(always)]
    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    /// Whether a new entry gets extensions (accounting or timestamp sysctl on).
    #[inline(always)]
    fn wants_extensions(&self) -> bool {
        self.sysctls.nf_conntrack_acct == 1 || self.sysctls.nf_conntrack_timestamp == 1
    }

    /// Allocate an unconfirmed entry; on a full table run early drop (§11.4).
    fn alloc(&mut self, now: Instant, orig: &Tuple, zone: Zone) -> Option<EntryId> {
        let max = self.sysctls.nf_conntrack_max;
        if max != 0 && self.table.count() >= max && !self.early_drop(now, orig, zone) {
            // The GC worker's early-eviction mode (§11.5).
            self.gc.early_drop = true;
            return None;
        }
        let s = &self.sysctls;
        // The tracker's `new` fills in the L4 state on the first packet.
        let proto = match orig.proto {
            proto::ICMP | proto::ICMPV6 => ProtoState::Icmp,
            _ => ProtoState::Generic,
        };
        let ext = self.wants_extensions().then(|| {
            Box::new(Extensions {
                acct: (s.nf_conntrack_acct == 1).then_some([Counter::default(); 2]),
                tstamp: (s.nf_conntrack_timestamp == 1).then_some((now, None)),
                ..Extensions::default()
            })
        });
        // `create` checked that the tuple inverts.
        let tuples = NewTuples::inverting(orig)?;
        let seq = self.take_seq();
        if self.helpers.expect.is_empty() {
            // The usual case, the entry built in one expression straight into its slab
            // slot: built on the stack and moved there, it was reloaded with wide
            // loads that the narrow stores writing it could not forward.
            return Some(
                self.table
                    .alloc(Entry::fresh(tuples, ext, zone, now, seq, proto)),
            );
        }
        let mut entry = Entry::fresh(tuples, ext, zone, now, seq, proto);
        let follow = self.init_expected(now, &mut entry);
        let id = self.table.alloc(entry);
        if let Some((master, nat)) = follow {
            self.follow_master(now, id, master, nat);
        }
        Some(id)
    }

    /// `early_drop`: up to 8 buckets from the new tuple's bucket; in the first bucket that
    /// has any, delete every confirmed, non-ASSURED, non-dying entry.
    /// `zone` is the new entry's: the scan starts at the bucket of its original tuple.
    fn early_drop(&mut self, now: Instant, t: &Tuple, zone: Zone) -> bool {
        let n = self.table.buckets();
        let mut bucket = self.table.bucket(t, zone.id_for(Dir::Original));
        for i in 0..8 {
            if i > 0 {
                bucket = (bucket + 1) % n;
            }
            let mut victims: Vec<EntryId> = Vec::new();
            let mut expired: Vec<EntryId> = Vec::new();
            for (id, _) in self.table.bucket_nodes(bucket) {
                let Some(e) = self.table.get(id) else {
                    continue;
                };
                if e.expired(now) {
                    if !expired.contains(&id) {
                        expired.push(id);
                    }
                    continue;
                }
                if e.status.has(Status::ASSURED) || e.status.has(Status::DYING) {
                    continue;
                }
                if self.table.is_linked(id) && !victims.contains(&id) {
                    victims.push(id);
                }
            }
            for id in expired {
                self.delete(id, now);
            }
            if !victims.is_empty() {
                self.stats.early_drop += victims.len() as u32;
                for id in victims {
                    self.delete(id, now);
                }
                return true;
            }
        }
        false
    }

    /// The ICMP error path's inner lookup (`nf_conntrack_inet_error`).
    fn icmp_error(
        &mut self,
        now: Instant,
        pkt: &Packet<'_>,
        inner_off: usize,
        zone: Zone,
    ) -> Tracked {
        let fail = |s: &mut Self, r: IcmpReason| {
            s.stats.error += 1;
            Tracked::invalid(r.into())
        };
        let data = pkt.data();
        let Some(inner) = data.get(inner_off..) else {
            return fail(self, IcmpReason::InnerNoTuple);
        };
        let Some(quoted) = inner_tuple(pkt.family, inner, &self.helpers.keymap) else {
            return fail(self, IcmpReason::InnerNoTuple);
        };
        let Some(target) = invert(&quoted) else {
            return fail(self, IcmpReason::InnerNotInvertible);
        };
        let Some((id, dir)) = self.lookup(&target, zone, now) else {
            return fail(self, IcmpReason::NoMatch);
        };
        let Some(e) = self.table.get(id) else {
            return fail(self, IcmpReason::NoMatch);
        };
        let ct_daddr = e.tuple(dir).dst;
        if ct_daddr != pkt.dst {
            return fail(
                self,
                IcmpReason::OuterMismatch {
                    family: pkt.family,
                    outer: pkt.dst,
                    inner: ct_daddr,
                },
            );
        }
        let ctinfo = match dir {
            Dir::Original => CtInfo::Related,
            Dir::Reply => CtInfo::RelatedReply,
        };
        Tracked {
            ctinfo: Some(ctinfo),
            entry: Some(id),
            untracked: false,
            verdict: Verdict::Accept,
            reason: None,
        }
    }
}

impl Tracked {
    fn without_reason(mut self) -> Tracked {
        self.reason = None;
        self
    }
}

fn is_known_proto(p: u8) -> bool {
    matches!(
        p,
        proto::TCP
            | proto::UDP
            | proto::UDPLITE
            | proto::ICMP
            | proto::ICMPV6
            | proto::SCTP
            | proto::GRE
    )
}

/// The ctinfo of a packet of an existing entry, from its direction and the entry's
/// status before the packet (`resolve_normal_ct`).
#[inline(always)]
fn ctinfo_of(dir: Dir, status: Status) -> CtInfo {
    match dir {
        Dir::Reply => CtInfo::EstablishedReply,
        Dir::Original if status.has(Status::SEEN_REPLY) => CtInfo::Established,
        Dir::Original if status.has(Status::EXPECTED) => CtInfo::Related,
        Dir::Original => CtInfo::New,
    }
}

/// What an accepted packet does to its entry (`nf_ct_refresh_acct` and the
/// tracker's status changes): accounting when the tracker refreshes (or kills: then
/// `always_count`), the new timeout unless FIXED_TIMEOUT, ASSURED and the protocol
/// state change as events.
#[inline(always)]
fn count_and_refresh(
    e: &mut Entry,
    now: Instant,
    dir: Dir,
    acc: &crate::proto::Accepted,
    len: usize,
    always_count: bool,
) {
    if acc.refresh.is_some() || always_count {
        if let Some(c) = e.ext.as_mut().and_then(|x| x.acct.as_mut()) {
            c[dir.index()].packets += 1;
            c[dir.index()].bytes += len as u64;
        }
    }
    if let Some(t) = acc.refresh {
        if !e.status.has(Status::FIXED_TIMEOUT) {
            e.deadline = now + t;
        }
    }
    if acc.set_assured && !e.status.has(Status::ASSURED) {
        e.status.set(Status::ASSURED);
        e.ecache |= bits::ASSURED;
    }
    if acc.state_changed {
        e.ecache |= bits::PROTOINFO;
    }
}

/// [`count_and_refresh`] for a packet that does not kill its entry, then SEEN_REPLY
/// on the first reply.
#[inline(always)]
fn update_accepted(
    e: &mut Entry,
    now: Instant,
    dir: Dir,
    ctinfo: CtInfo,
    acc: &crate::proto::Accepted,
    len: usize,
) {
    count_and_refresh(e, now, dir, acc, len, false);
    if ctinfo == CtInfo::EstablishedReply && !e.status.has(Status::SEEN_REPLY) {
        e.status.set(Status::SEEN_REPLY);
        e.ecache |= bits::REPLY;
    }
}

/// The note of an accepted packet that has one (out of line, so the usual `None` is
/// never copied whole).
#[cold]
#[inline(never)]
fn note_of(acc: &crate::proto::Accepted) -> Option<InvalidReason> {
    acc.note
}

/// Run the L4 tracker of the entry's protocol (`nf_conntrack_handle_packet`). UDP and
/// TCP, the common ones, are inlined into the general path; the others are a call of
/// their own, so that path's frame stays small.
#[inline]
fn run_tracker<const TCP_INLINE: bool>(
    e: &mut Entry,
    pkt: &Packet<'_>,
    dir: Dir,
    fresh: bool,
    ecx: &EntryCx,
    cx: &Cx<'_>,
) -> TrackerResult {
    match e.proto_num() {
        p @ (proto::UDP | proto::UDPLITE) => {
            let checked = if p == proto::UDP {
                udp::error(pkt, cx)
            } else {
                udp::error_lite(pkt, cx)
            };
            if let Err(r) = checked {
                return invalid(r);
            }
            if fresh {
                e.proto = ProtoState::Udp(udp::UdpConn::new(cx));
            }
            match &mut e.proto {
                ProtoState::Udp(u) if p == proto::UDP => u.packet(ecx, cx),
                ProtoState::Udp(u) => u.packet_lite(ecx, cx),
                _ => invalid(InvalidReason::Generic),
            }
        }
        proto::TCP if TCP_INLINE => run_tcp(e, pkt, dir, fresh, ecx, cx),
        proto::TCP => run_tcp_call(e, pkt, dir, fresh, ecx, cx),
        _ => run_other(e, pkt, dir, fresh, ecx, cx),
    }
}

/// [`run_tcp`] as a call of its own, for the general path's copy that is not TCP's.
#[inline(never)]
fn run_tcp_call(
    e: &mut Entry,
    pkt: &Packet<'_>,
    dir: Dir,
    fresh: bool,
    ecx: &EntryCx,
    cx: &Cx<'_>,
) -> TrackerResult {
    run_tcp(e, pkt, dir, fresh, ecx, cx)
}

/// The TCP tracker: `tcp_error`, `tcp_new` on the first packet, then the state machine,
/// all inlined into the general path's TCP copy (a call cost TCP 17 instructions a
/// packet, and the state machine's own call 21 more).
#[inline(always)]
fn run_tcp(
    e: &mut Entry,
    pkt: &Packet<'_>,
    dir: Dir,
    fresh: bool,
    ecx: &EntryCx,
    cx: &Cx<'_>,
) -> TrackerResult {
    // The segment is used where `error_segment` wrote it, field by field: moving it
    // out of the result read it back with 16-byte loads, which cannot be forwarded
    // from the narrow stores that wrote it (a stall on every TCP packet).
    let checked = tcp::error_segment(pkt, cx);
    let seg = match &checked {
        Ok(seg) => seg,
        Err(r) => return invalid(*r),
    };
    if fresh {
        if let Err(r) = tcp::TcpConn::new_into(seg, cx, &mut e.proto) {
            return invalid(r);
        }
    }
    match &mut e.proto {
        ProtoState::Tcp(t) => t.packet_from(seg, dir, ecx, cx),
        _ => invalid(InvalidReason::Generic),
    }
}

/// The trackers of SCTP, ICMP/ICMPv6, GRE and the generic protocols.
#[inline(never)]
fn run_other(
    e: &mut Entry,
    pkt: &Packet<'_>,
    dir: Dir,
    fresh: bool,
    ecx: &EntryCx,
    cx: &Cx<'_>,
) -> TrackerResult {
    let family = e.family();
    match e.proto_num() {
        proto::SCTP => {
            if let Err(r) = sctp::error(pkt, cx) {
                return invalid(r);
            }
            if fresh {
                match sctp::SctpConn::new(pkt, cx) {
                    Ok(n) => e.proto = ProtoState::Sctp(n),
                    Err(r) => return invalid(r),
                }
            }
            match &mut e.proto {
                ProtoState::Sctp(s) => s.packet(pkt, dir, ecx, cx),
                _ => invalid(InvalidReason::Generic),
            }
        }
        p @ (proto::ICMP | proto::ICMPV6) => {
            let fam_ok = matches!(
                (family, p),
                (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6)
            );
            if !fam_ok {
                return invalid(InvalidReason::Generic);
            }
            let orig_type = e.tuple(Dir::Original).icmp_type();
            icmp::packet(family, orig_type, ecx.unconfirmed, cx)
        }
        proto::GRE => {
            if fresh {
                e.proto = ProtoState::Gre(gre::GreConn::new(cx));
            }
            match &mut e.proto {
                ProtoState::Gre(g) => g.packet(ecx),
                _ => invalid(InvalidReason::Generic),
            }
        }
        _ => crate::proto::generic::packet(cx),
    }
}

fn invalid(reason: InvalidReason) -> TrackerResult {
    TrackerResult::Invalid {
        reason,
        set_timeout: None,
    }
}

/// Build the tuple of a packet (`nf_ct_get_tuple`).
#[inline]
pub fn tuple_of(
    family: Family,
    src: Addr,
    dst: Addr,
    p: u8,
    l4: &[u8],
) -> Result<Tuple, InvalidReason> {
    let mut t = Tuple {
        src,
        dst,
        src_u: 0,
        dst_u: 0,
        family,
        proto: p,
    };
    match p {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {
            let h = l4.get(..4).ok_or(InvalidReason::TupleTooShort)?;
            t.src_u = u16::from_be_bytes([h[0], h[1]]);
            t.dst_u = u16::from_be_bytes([h[2], h[3]]);
        }
        proto::ICMP | proto::ICMPV6 => {
            let h = l4.get(..8).ok_or(InvalidReason::TupleTooShort)?;
            t.dst_u = u16::from_be_bytes([h[0], h[1]]);
            t.src_u = u16::from_be_bytes([h[4], h[5]]);
        }
        proto::GRE => {
            let (s, d) = gre::keys(l4)?;
            t.src_u = s;
            t.dst_u = d;
        }
        _ => {}
    }
    Ok(t)
}

/// Chain length that passes the confirm's chain limit for every entry (kernel
/// `__nf_conntrack_confirm`: max = 50 + a random 0..29, a chain failing only past
/// max + 1 nodes; see `confirm_slow`).
const CHAIN_LIMIT_ALWAYS: usize = 51;

/// What the batch path knows of a packet's hashes when it reaches confirm
/// ([`Conntrack::confirm_hinted`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfirmHint<'a> {
    /// The packet's tuple with the zone id it was hashed with (the zone's
    /// original-direction id) and its [`Table::hash`].
    pub(crate) orig: (u16, &'a Tuple, u64),
    /// The zone's reply-direction id and the hash of the tuple's inversion with it,
    /// when the batch computed it (for a packet predicted to create an entry).
    pub(crate) inverse: Option<(u16, u64)>,
    /// Both chains were walked in the batch's round, to their end, without a node
    /// carrying either hash's tag (so no clash, and far under the chain limit): they
    /// still are where [`Table::unchanged`] holds for both hashes.
    pub(crate) proven: bool,
}

/// Invert a tuple (`nf_ct_invert_tuple`); `None` for ICMP types without a reply type.
pub fn invert(t: &Tuple) -> Option<Tuple> {
    let mut r = Tuple {
        src: t.dst,
        dst: t.src,
        src_u: t.dst_u,
        dst_u: t.src_u,
        family: t.family,
        proto: t.proto,
    };
    let fam = match t.proto {
        proto::ICMP => Some(Family::V4),
        proto::ICMPV6 => Some(Family::V6),
        _ => None,
    };
    if let Some(f) = fam {
        let ty = icmp::invert_type(f, t.icmp_type())?;
        r.src_u = t.src_u;
        r.dst_u = u16::from(ty) << 8 | u16::from(t.icmp_code());
    }
    Some(r)
}

/// The tuple of the packet quoted inside an ICMP error (`nf_ct_get_tuplepr`; a quoted
/// PPTP GRE packet takes its source key from the keymap too).
fn inner_tuple(family: Family, inner: &[u8], keymap: &GreKeymap) -> Option<Tuple> {
    let mut t = inner_tuple_raw(family, inner)?;
    if t.proto == proto::GRE && !keymap.is_empty() {
        let l4 = match family {
            Family::V4 => inner.get(usize::from(inner.first()? & 0x0f) * 4..)?,
            Family::V6 => {
                let nh = *inner.get(6)?;
                let (_, off) = crate::packet::ip::ipv6_skip_exthdr(inner, 40, nh).ok()?;
                inner.get(off..)?
            }
        };
        if gre::pptp_call_id(l4).is_some() {
            t.src_u = keymap.lookup(&t);
        }
    }
    Some(t)
}

/// [`inner_tuple`] without the keymap.
fn inner_tuple_raw(family: Family, inner: &[u8]) -> Option<Tuple> {
    match family {
        Family::V4 => {
            let h = inner.get(..20)?;
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if frag & 0x1fff != 0 {
                return None;
            }
            let off = usize::from(h[0] & 0x0f) * 4;
            if off > inner.len() {
                return None;
            }
            let src = Addr::v4([h[12], h[13], h[14], h[15]]);
            let dst = Addr::v4([h[16], h[17], h[18], h[19]]);
            tuple_of(family, src, dst, h[9], &inner[off..]).ok()
        }
        Family::V6 => {
            let nh = *inner.get(6)?;
            let (p, off) = crate::packet::ip::ipv6_skip_exthdr(inner, 40, nh).ok()?;
            let h = inner.get(..40)?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            tuple_of(family, Addr::v6(s), Addr::v6(d), p, inner.get(off..)?).ok()
        }
    }
}

/// Convenience: remaining time of an entry, for formats.
pub fn remaining(e: &Entry, now: Instant) -> Duration {
    e.remaining(now)
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use crate::table::FlowHasher;

    /// `Parsed::ports4_words` gives, from the header bytes, the hash words of the tuple
    /// `Parsed::ports4` builds.
    #[test]
    fn ports4_words_are_the_tuple_hash_words() {
        let mut p = vec![0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend([10, 1, 2, 3, 192, 168, 7, 9]);
        p.extend(40000u16.to_be_bytes());
        p.extend(53u16.to_be_bytes());
        p.extend([0, 8, 0, 0]);
        for proto in [proto::TCP, proto::UDP, proto::UDPLITE, proto::SCTP] {
            p[9] = proto;
            let (_, t) = Parsed::ports4(&p).expect("viewed");
            for zone in [0u16, 1, 0xfffe] {
                let w = Parsed::ports4_words(&p, zone).expect("words");
                assert_eq!(w, FlowHasher::v4_words(&t, zone), "{proto} {zone}");
            }
        }
        assert_eq!(Parsed::ports4_words(&p[..23], 0), None);
    }

    /// `Parsed::ports4` answers exactly when the general parse yields an IPv4 TCP, UDP,
    /// UDP-Lite or SCTP packet with a 20-byte header and its ports, and then with the
    /// same view and tuple; `Parsed::udp4` is its UDP part.
    #[test]
    fn the_ports4_view_is_the_general_parse_where_it_answers() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let base = [
            0x45u8, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0,
            53, 0, 8, 0, 0,
        ];
        let (mut answered, mut general_v4, mut udp) = (0, 0, 0);
        for i in 0..40_000 {
            let mut p = base.to_vec();
            p[9] = [6, 17, 132, 136, 1, 47, 58, 17][(next() % 8) as usize];
            // Mutate the bytes that decide the view: version/IHL, fragment word,
            // protocol, addresses, ports, and the length.
            for _ in 0..(i % 4) {
                let r = next();
                let at = [0usize, 6, 7, 9, 12, 19, 20, 23][(r % 8) as usize];
                p[at] = match r >> 8 & 3 {
                    0 => 0,
                    1 => 0xff,
                    2 => (r >> 16) as u8,
                    _ => p[at] ^ 0x20,
                };
            }
            p.truncate(20 + (next() % 9) as usize);
            let general = Packet::parse(&p).ok().and_then(|pkt| {
                let t = tuple_of(pkt.family, pkt.src, pkt.dst, pkt.proto, pkt.l4()).ok()?;
                Some((pkt, t))
            });
            let want = general.filter(|(pkt, _)| {
                pkt.family == Family::V4
                    && matches!(pkt.proto, 6 | 17 | 132 | 136)
                    && pkt.l4_off == 20
            });
            general_v4 += usize::from(want.is_some());
            let got = Parsed::ports4(&p);
            answered += usize::from(got.is_some());
            let show = |x: Option<(Packet<'_>, Tuple)>| {
                x.map(|(pkt, t)| {
                    let k = (pkt.family, pkt.src, pkt.dst, pkt.ttl, pkt.proto, pkt.l4_off);
                    (k, pkt.data().as_ptr(), pkt.len(), t)
                })
            };
            assert_eq!(show(got), show(want), "{p:02x?}");
            let want_udp = want.filter(|(pkt, _)| pkt.proto == proto::UDP);
            udp += usize::from(want_udp.is_some());
            assert_eq!(show(Parsed::udp4(&p)), show(want_udp), "{p:02x?}");
        }
        assert!(answered > 5_000 && answered < 35_000, "{answered} answered");
        assert!(udp > 1_000 && udp < answered, "{udp} UDP");
        assert_eq!(answered, general_v4);
    }
}
