//! Expectations (kernel `nf_conntrack_expect.c`; kernel-semantics.md §12.2).
//!
//! A helper that reads an address and a port in a control connection (FTP `PORT`, a
//! TFTP request) registers an expectation: the tuple of a connection that will come,
//! with a mask (only the source address and port may be wildcards; the destination is
//! always exact). The first packet of a new connection whose original tuple matches an
//! unexpired expectation of a confirmed, live master creates an entry with `EXPECTED`
//! and ctinfo RELATED; the expectation is then removed (unless PERMANENT).
//!
//! Rules kept from the kernel:
//! * insert: an expired expectation met on the way is removed; the same tuple and mask
//!   from the same master replaces the old one (another class: `EALREADY`); a masked
//!   overlap with another expectation is refused (`EBUSY`); at the policy's
//!   `max_expected` for the master and class, the oldest is evicted first; at
//!   `nf_conntrack_expect_max` in all, refused (`EMFILE`);
//! * expectations die when matched, when expired (found so on a lookup or insert; they
//!   are never listed once expired), with their master, and each death counts
//!   `expect_delete` and sends a DESTROY expectation event.
//!
//! The kernel hashes expectations by (destination address and port, family, protocol);
//! the expired ones a lookup removes are those of its bucket. Here the "bucket" is that
//! exact key (a hash collision in the kernel may remove a few more, earlier).

use crate::format::{ipv6_compressed, ipv6_expanded};
use crate::helper::{ExpectRequest, HelperKind, Policy};
use crate::stats::Stats;
use crate::table::EntryId;
use crate::time::Instant;
use crate::tuple::{proto, Addr, Family, Tuple};
use core::fmt::Write;

/// Expectation flags (kernel `NF_CT_EXPECT_*`).
pub mod flags {
    /// Not removed when matched.
    pub const PERMANENT: u8 = 0x1;
    /// Not matched until activated.
    pub const INACTIVE: u8 = 0x2;
    /// Created from userspace.
    pub const USERSPACE: u8 = 0x4;
}

/// The NAT part of an expectation registered by a NAT helper (kernel `exp->dir`,
/// `exp->saved_proto`, `exp->expectfn = nf_nat_follow_master`): the connection it lets
/// in gets the master's NAT mapping when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectNat {
    /// The master's direction the expected connection goes in: its source is mapped to
    /// the master's tuple of the *other* direction's destination, its destination to
    /// that tuple's source.
    pub dir: crate::tuple::Dir,
    /// The port the command announced (before the NAT helper moved it): the expected
    /// connection's destination port is mapped back to it.
    pub saved_port: u16,
}

/// One expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The expected original tuple (wildcard fields zero).
    pub tuple: Tuple,
    /// Mask of the source address (all ones or all zeros in the address's length).
    pub mask_src: Addr,
    /// Mask of the source port.
    pub mask_sport: u16,
    /// The master entry.
    pub master: EntryId,
    /// The master's creation number (guards against a reused slot).
    pub master_seq: u32,
    /// The master's original tuple (listings show it).
    pub master_tuple: Tuple,
    /// The helper that registered it.
    pub helper: HelperKind,
    /// Policy class.
    pub class: u8,
    /// [`flags`].
    pub flags: u8,
    /// Expiry (absolute).
    pub deadline: Instant,
    /// The master's zone.
    pub zone: u16,
    /// Insertion number (listing order).
    pub seq: u64,
    /// Set by a NAT helper: the follow-master mapping of the expected connection.
    pub nat: Option<ExpectNat>,
}

impl Expectation {
    /// An expectation of `master` (with id `master`, creation number `master_seq`,
    /// original tuple `master_tuple`, zone `zone`) from a helper's request; the deadline
    /// is set at insertion.
    pub fn from_request(
        req: &ExpectRequest,
        helper: HelperKind,
        master: EntryId,
        master_seq: u32,
        master_tuple: Tuple,
        zone: u16,
    ) -> Expectation {
        let len = match req.family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        let mut mask_src = Addr::default();
        if req.src.is_some() {
            mask_src.0[..len].fill(0xff);
        }
        Expectation {
            tuple: Tuple {
                src: req.src.unwrap_or_default(),
                dst: req.dst,
                src_u: req.src_port.unwrap_or(0),
                dst_u: req.dst_port,
                family: req.family,
                proto: req.proto,
            },
            mask_src,
            mask_sport: if req.src_port.is_some() { 0xffff } else { 0 },
            master,
            master_seq,
            master_tuple,
            helper,
            class: req.class,
            flags: 0,
            deadline: Instant::from_nanos(0),
            zone,
            seq: 0,
            nat: None,
        }
    }

    /// Whether `t` is the expected tuple under the mask (kernel `nf_ct_tuple_mask_cmp`).
    pub fn matches(&self, t: &Tuple) -> bool {
        masked_eq(&self.tuple, t, &self.mask_src, self.mask_sport)
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }

    /// Remaining whole seconds as a dump reads them an instant after `now`.
    pub fn display_timeout(&self, now: Instant) -> u64 {
        let ns = self.deadline.saturating_since(now).as_nanos() as u64;
        ns.saturating_sub(1) / 1_000_000_000
    }

    fn bucket_key(&self) -> (Addr, u16, Family, u8) {
        key(&self.tuple)
    }

    /// Same tuple, same mask, same zone (kernel `expect_matches`).
    fn same(&self, o: &Expectation) -> bool {
        self.tuple == o.tuple
            && self.mask_src == o.mask_src
            && self.mask_sport == o.mask_sport
            && self.zone == o.zone
    }

    /// The parts both masks cover are equal (kernel `expect_clash`).
    fn clashes(&self, o: &Expectation) -> bool {
        let mut m = Addr::default();
        for (i, b) in m.0.iter_mut().enumerate() {
            *b = self.mask_src.0[i] & o.mask_src.0[i];
        }
        masked_eq(&self.tuple, &o.tuple, &m, self.mask_sport & o.mask_sport) && self.zone == o.zone
    }

    /// The `conntrack -L expect` line at `now` (no trailing space).
    pub fn list_line(&self, now: Instant) -> String {
        let mut o = format!("{} ", self.display_timeout(now));
        self.body_userspace(&mut o);
        o.truncate(o.trim_end().len());
        o
    }

    /// The `conntrack -E expect` line of an event (`[NEW]`/`[DESTROY]` prefix; the
    /// timeout is the remaining time in whole seconds).
    pub fn event_line(&self, kind: ExpectEventKind, now: Instant) -> String {
        let tag = match kind {
            ExpectEventKind::New => "[NEW]",
            ExpectEventKind::Destroy => "[DESTROY]",
        };
        // The kernel counts in jiffies (4 ms): an event sent within the jiffy of the
        // insert still shows the full timeout (300, not 299).
        let rem = self.deadline.saturating_since(now).as_nanos();
        let secs = rem.div_ceil(4_000_000) / 250;
        let mut o = format!("{tag:>9} {secs} ");
        self.body_userspace(&mut o);
        o.truncate(o.trim_end().len());
        o
    }

    fn body_userspace(&self, o: &mut String) {
        let t = &self.tuple;
        let _ = write!(o, "proto={} ", t.proto);
        addr_pair(o, "src", "dst", t.family, &t.src, &t.dst, false);
        l4_pair(o, t.proto, t.src_u, t.dst_u);
        let all = Addr([0xff; 16]);
        addr_pair(
            o,
            "mask-src",
            "mask-dst",
            t.family,
            &self.mask_src,
            &all,
            false,
        );
        l4_pair(o, t.proto, self.mask_sport, 0xffff);
        let m = &self.master_tuple;
        addr_pair(
            o,
            "master-src",
            "master-dst",
            m.family,
            &m.src,
            &m.dst,
            false,
        );
        l4_pair(o, m.proto, m.src_u, m.dst_u);
        let names = flag_names(self.flags);
        if !names.is_empty() {
            let _ = write!(o, "{names} ");
        }
        let _ = write!(o, "class={} helper={} ", self.class, self.helper.name());
    }

    /// The `/proc/net/nf_conntrack_expect` line at `now`.
    pub fn proc_line(&self, now: Instant) -> String {
        let t = &self.tuple;
        let mut o = format!(
            "{} l3proto = {} proto={} ",
            self.display_timeout(now),
            t.family.number(),
            t.proto
        );
        addr_pair(&mut o, "src", "dst", t.family, &t.src, &t.dst, true);
        l4_pair(&mut o, t.proto, t.src_u, t.dst_u);
        let names = flag_names(self.flags);
        o.push_str(&names);
        if !names.is_empty() {
            o.push(' ');
        }
        o.push_str(self.helper.name());
        o
    }
}

fn flag_names(f: u8) -> String {
    let mut v = Vec::new();
    if f & flags::PERMANENT != 0 {
        v.push("PERMANENT");
    }
    if f & flags::INACTIVE != 0 {
        v.push("INACTIVE");
    }
    if f & flags::USERSPACE != 0 {
        v.push("USERSPACE");
    }
    v.join(",")
}

fn addr_text(f: Family, a: &Addr, expanded: bool) -> String {
    match f {
        Family::V4 => std::net::Ipv4Addr::from(a.v4_octets()).to_string(),
        Family::V6 if expanded => ipv6_expanded(&a.0),
        Family::V6 => ipv6_compressed(&a.0),
    }
}

fn addr_pair(o: &mut String, s: &str, d: &str, f: Family, a: &Addr, b: &Addr, expanded: bool) {
    let _ = write!(
        o,
        "{s}={} {d}={} ",
        addr_text(f, a, expanded),
        addr_text(f, b, expanded)
    );
}

fn l4_pair(o: &mut String, p: u8, s: u16, d: u16) {
    if matches!(p, proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP) {
        let _ = write!(o, "sport={s} dport={d} ");
    } else if p == proto::GRE {
        // libnetfilter_conntrack and /proc print GRE keys (and a GRE mask) this way.
        let _ = write!(o, "srckey={s:#x} dstkey={d:#x} ");
    }
}

fn key(t: &Tuple) -> (Addr, u16, Family, u8) {
    (t.dst, t.dst_u, t.family, t.proto)
}

fn masked_eq(e: &Tuple, t: &Tuple, mask: &Addr, mask_port: u16) -> bool {
    let src_ok = e
        .src
        .0
        .iter()
        .zip(t.src.0.iter())
        .zip(mask.0.iter())
        .all(|((a, b), m)| (a ^ b) & m == 0);
    src_ok
        && (e.src_u ^ t.src_u) & mask_port == 0
        && e.dst == t.dst
        && e.dst_u == t.dst_u
        && e.family == t.family
        && e.proto == t.proto
}

/// `conntrack -E expect` message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectEventKind {
    /// Inserted.
    New,
    /// Removed.
    Destroy,
}

/// One expectation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectEvent {
    /// When.
    pub time: Instant,
    /// What.
    pub kind: ExpectEventKind,
    /// The expectation.
    pub exp: Expectation,
}

/// Why an expectation was not inserted (the kernel's errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectError {
    /// `EALREADY`: the same expectation exists in another class.
    Already,
    /// `EBUSY`: it overlaps another master's expectation.
    Busy,
    /// `EMFILE`: `nf_conntrack_expect_max` reached ("expectation table full").
    TableFull,
}

/// The expectations of one conntrack (one network namespace).
#[derive(Debug, Clone, Default)]
pub struct ExpectTable {
    list: Vec<Expectation>,
    next_seq: u64,
    events_enabled: bool,
    events: Vec<ExpectEvent>,
}

impl ExpectTable {
    /// An empty table; `events` records expectation events.
    pub fn new(events: bool) -> ExpectTable {
        ExpectTable {
            events_enabled: events,
            ..ExpectTable::default()
        }
    }

    /// Number of expectations held (expired ones not yet removed included; kernel
    /// `expect_count`).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The unexpired expectations, in insertion order.
    pub fn live(&self, now: Instant) -> impl Iterator<Item = &Expectation> {
        self.list.iter().filter(move |e| !e.expired(now))
    }

    /// Take the recorded events.
    pub fn drain_events(&mut self) -> Vec<ExpectEvent> {
        std::mem::take(&mut self.events)
    }

    /// Expectations of a master and class.
    fn expecting(&self, master: EntryId, seq: u32, class: u8) -> usize {
        self.list
            .iter()
            .filter(|e| e.master == master && e.master_seq == seq && e.class == class)
            .count()
    }

    fn unlink(&mut self, i: usize, now: Instant, stats: &mut Stats) -> Expectation {
        let e = self.list.remove(i);
        stats.expect_delete += 1;
        if self.events_enabled {
            self.events.push(ExpectEvent {
                time: now,
                kind: ExpectEventKind::Destroy,
                exp: e.clone(),
            });
        }
        e
    }

    /// Register `exp` under `policy` with the table limit `max`
    /// (kernel `nf_ct_expect_related`).
    pub fn insert(
        &mut self,
        mut exp: Expectation,
        policy: Policy,
        max: u32,
        now: Instant,
        stats: &mut Stats,
    ) -> Result<(), ExpectError> {
        let k = exp.bucket_key();
        let mut i = 0;
        while i < self.list.len() {
            let other = &self.list[i];
            if other.bucket_key() != k {
                i += 1;
                continue;
            }
            if other.expired(now) {
                self.unlink(i, now, stats);
                continue;
            }
            let same_master = other.master == exp.master && other.master_seq == exp.master_seq;
            if same_master && other.same(&exp) {
                if other.class != exp.class {
                    return Err(ExpectError::Already);
                }
                self.unlink(i, now, stats);
                break;
            } else if other.clashes(&exp) {
                return Err(ExpectError::Busy);
            }
            i += 1;
        }
        let (m, ms, c) = (exp.master, exp.master_seq, exp.class);
        if policy.max_expected > 0 && self.expecting(m, ms, c) >= policy.max_expected as usize {
            // evict_oldest_expect: the master's expired ones go, then the oldest of the
            // class if still at the limit.
            let mut j = 0;
            let mut oldest = None;
            while j < self.list.len() {
                let e = &self.list[j];
                if e.master == m && e.master_seq == ms {
                    if e.expired(now) {
                        self.unlink(j, now, stats);
                        continue;
                    }
                    if e.class == c && oldest.is_none() {
                        oldest = Some(j);
                    }
                }
                j += 1;
            }
            if let Some(j) = oldest {
                if self.expecting(m, ms, c) >= policy.max_expected as usize {
                    self.unlink(j, now, stats);
                }
            }
        }
        if self.list.len() >= max as usize {
            return Err(ExpectError::TableFull);
        }
        exp.deadline = now + policy.timeout;
        exp.seq = self.next_seq;
        self.next_seq += 1;
        stats.expect_create += 1;
        if self.events_enabled {
            self.events.push(ExpectEvent {
                time: now,
                kind: ExpectEventKind::New,
                exp: exp.clone(),
            });
        }
        self.list.push(exp);
        Ok(())
    }

    /// The expectation a new connection with original tuple `t` in `zone` fulfils
    /// (kernel `nf_ct_find_expectation`): expired ones met on the way are removed;
    /// `master_live(id, seq)` says whether the master is confirmed and not dying (else
    /// no match, and the expectation stays). A match is removed unless PERMANENT.
    pub fn find(
        &mut self,
        t: &Tuple,
        zone: u16,
        now: Instant,
        master_live: impl Fn(EntryId, u32) -> bool,
        stats: &mut Stats,
    ) -> Option<Expectation> {
        if self.list.is_empty() {
            return None;
        }
        let k = key(t);
        let mut i = 0;
        let mut hit = None;
        while i < self.list.len() {
            let e = &self.list[i];
            if e.bucket_key() != k {
                i += 1;
                continue;
            }
            if e.expired(now) {
                self.unlink(i, now, stats);
                continue;
            }
            if e.flags & flags::INACTIVE == 0 && e.zone == zone && e.matches(t) {
                hit = Some(i);
                break;
            }
            i += 1;
        }
        let i = hit?;
        let e = &self.list[i];
        if !master_live(e.master, e.master_seq) {
            return None;
        }
        if e.flags & flags::PERMANENT != 0 {
            return Some(e.clone());
        }
        Some(self.unlink(i, now, stats))
    }

    /// Withdraw the expectation of `master` (creation number `seq`) with exactly this
    /// tuple (kernel `nf_ct_unexpect_related`); `expect_delete`++ when found.
    pub fn unexpect(
        &mut self,
        master: EntryId,
        seq: u32,
        tuple: &Tuple,
        now: Instant,
        stats: &mut Stats,
    ) {
        if let Some(i) = self
            .list
            .iter()
            .position(|e| e.master == master && e.master_seq == seq && e.tuple == *tuple)
        {
            self.unlink(i, now, stats);
        }
    }

    /// Withdraw the first unexpired expectation in `zone`, of any master, that a
    /// connection with original tuple `t` would fulfil (kernel `nf_ct_expect_find_get`,
    /// then `nf_ct_unexpect_related`); `expect_delete`++ when found. Returns whether one
    /// was removed.
    pub fn unexpect_matching(
        &mut self,
        t: &Tuple,
        zone: u16,
        now: Instant,
        stats: &mut Stats,
    ) -> bool {
        let k = key(t);
        let hit = self
            .list
            .iter()
            .position(|e| e.bucket_key() == k && !e.expired(now) && e.zone == zone && e.matches(t));
        if let Some(i) = hit {
            self.unlink(i, now, stats);
        }
        hit.is_some()
    }

    /// Remove every expectation of a master (it is being deleted).
    pub fn remove_master(&mut self, master: EntryId, seq: u32, now: Instant, stats: &mut Stats) {
        let mut i = 0;
        while i < self.list.len() {
            let e = &self.list[i];
            if e.master == master && e.master_seq == seq {
                self.unlink(i, now, stats);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
