//! NAT on the conntrack entry (kernel `nf_nat_core.c`; kernel-semantics.md §13):
//! bindings set up on the first packet of a connection, the reply tuple rewritten, and
//! packets rewritten by the binding in both directions.
//!
//! * **Where**: PRE_ROUTING and LOCAL_OUT manipulate the destination ([`Manip::Dst`]),
//!   POST_ROUTING and LOCAL_IN the source ([`Manip::Src`]). The caller (the hook
//!   pipeline) decides which rules run; this module holds the engine's side.
//! * **Binding** ([`Conntrack::nat_setup`]): only on unconfirmed entries, once per manip
//!   type. `curr = invert(reply)`; the new tuple comes from the unique tuple search
//!   ([`alloc`]); if it differs, `reply = invert(new)` and SRC_NAT/DST_NAT is set. The
//!   *_NAT_DONE bit is always set — a null binding ([`Conntrack::nat_null_binding`])
//!   sets DONE only, unless the identity tuple was taken and the source port moved.
//! * **Rewriting** ([`Conntrack::nat_packet`]): the status bit of the hook's manip type
//!   (swapped for reply packets) decides; the packet is made to look like
//!   `invert(tuple of the other direction)` ([`rewrite`]).
//! * **ICMP errors** ([`Conntrack::nat_icmp_error`]): the quoted packet and the outer
//!   header are translated together (§13.6).
//!
//! Random choices (port search offsets) come from a generator seeded with the engine's
//! seed, so a replay is deterministic; the kernel's own picks use boot-random keys and
//! cannot be reproduced, only their range and uniqueness (the address choice over a
//! range is a plain `jhash2` and is reproduced exactly).

pub mod alloc;
pub mod rewrite;

use crate::conntrack::{invert, Conntrack};
use crate::packet::checksum;
use crate::proto::tcp::TcpState;
use crate::proto::ProtoState;
use crate::status::Status;
use crate::table::EntryId;
use crate::table::WordsHasher;
use crate::time::Instant;
use crate::tuple::{proto, Addr, Dir, Family, Tuple};
use crate::zone::Zone;
use hashbrown::HashTable;

/// The NAT manipulation type of a hook (kernel `enum nf_nat_manip_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Manip {
    /// Source NAT (POST_ROUTING, LOCAL_IN).
    Src,
    /// Destination NAT (PRE_ROUTING, LOCAL_OUT).
    Dst,
}

impl Manip {
    /// The other manip type.
    pub fn opposite(self) -> Manip {
        match self {
            Manip::Src => Manip::Dst,
            Manip::Dst => Manip::Src,
        }
    }
    /// SRC_NAT or DST_NAT.
    pub fn nat_bit(self) -> u16 {
        match self {
            Manip::Src => Status::SRC_NAT,
            Manip::Dst => Status::DST_NAT,
        }
    }
    /// SRC_NAT_DONE or DST_NAT_DONE.
    pub fn done_bit(self) -> u16 {
        match self {
            Manip::Src => Status::SRC_NAT_DONE,
            Manip::Dst => Status::DST_NAT_DONE,
        }
    }
}

/// Range flags (`include/uapi/linux/netfilter/nf_nat.h`).
pub mod flags {
    /// The range maps addresses.
    pub const MAP_IPS: u32 = 1;
    /// A port range is given.
    pub const PROTO_SPECIFIED: u32 = 2;
    /// `random`.
    pub const PROTO_RANDOM: u32 = 4;
    /// `persistent`.
    pub const PERSISTENT: u32 = 8;
    /// `fully-random`.
    pub const PROTO_RANDOM_FULLY: u32 = 16;
    /// Port offset mapping (`base_port`).
    pub const PROTO_OFFSET: u32 = 32;
    /// Prefix mapping (netmap).
    pub const NETMAP: u32 = 64;
    /// Either random flag.
    pub const RANDOM_ALL: u32 = PROTO_RANDOM | PROTO_RANDOM_FULLY;
}

/// A NAT range (kernel `struct nf_nat_range2`): addresses and L4 keys, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRange {
    /// [`flags`].
    pub flags: u32,
    /// Lowest address.
    pub min_addr: Addr,
    /// Highest address.
    pub max_addr: Addr,
    /// Lowest port (or ICMP id).
    pub min_port: u16,
    /// Highest port (or ICMP id).
    pub max_port: u16,
    /// Base of a `PROTO_OFFSET` mapping.
    pub base_port: u16,
}

impl NatRange {
    /// A single address, ports chosen by the protocol (a null binding's range).
    pub fn addr(a: Addr) -> NatRange {
        NatRange {
            flags: flags::MAP_IPS,
            min_addr: a,
            max_addr: a,
            ..NatRange::default()
        }
    }
}

/// Key of the bysource index: original source address, key, protocol, and the zone's
/// original-direction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SrcKey {
    addr: Addr,
    key: u16,
    proto: u8,
    zone: u16,
}

impl SrcKey {
    /// The key of the original tuple `t` in zone id `zone`.
    fn of(t: &Tuple, zone: u16) -> SrcKey {
        SrcKey {
            addr: t.src,
            key: t.src_u,
            proto: t.proto,
            zone,
        }
    }
}

impl SrcKey {
    /// The three words the key is hashed as (the address's two halves, then key,
    /// protocol and zone), for [`WordsHasher::hash_words`].
    fn words(&self) -> [u64; 3] {
        let [lo, hi] = self.addr.words();
        let rest = u64::from(self.key) | u64::from(self.proto) << 16 | u64::from(self.zone) << 24;
        [lo, hi, rest]
    }
}

/// The entries of one bysource key: nearly always one, so no allocation then.
#[derive(Debug, Clone)]
enum SrcIds {
    One(EntryId),
    Many(Vec<EntryId>),
}

impl SrcIds {
    fn as_slice(&self) -> &[EntryId] {
        match self {
            SrcIds::One(id) => std::slice::from_ref(id),
            SrcIds::Many(v) => v,
        }
    }

    fn push(&mut self, id: EntryId) {
        match self {
            SrcIds::One(first) => *self = SrcIds::Many(vec![*first, id]),
            SrcIds::Many(v) => v.push(id),
        }
    }
}

/// The bysource index (kernel `nf_nat_bysource`): source key → the entries NATed from
/// it. Each element keeps its key's keyed hash, so a lookup hashes once for its find
/// and its update, and growing the table rehashes nothing.
#[derive(Debug, Clone)]
struct BySource {
    map: HashTable<(u64, SrcKey, SrcIds)>,
    hasher: WordsHasher,
}

impl BySource {
    fn new(seed: u64) -> BySource {
        BySource {
            map: HashTable::new(),
            hasher: WordsHasher::new(seed),
        }
    }

    /// The keyed hash of `key` (SipHash-1-3 of its words: attacker-chosen keys).
    fn hash(&self, key: &SrcKey) -> u64 {
        self.hasher.hash_words(&key.words())
    }

    fn get(&self, h: u64, key: &SrcKey) -> Option<&SrcIds> {
        self.map.find(h, |x| x.1 == *key).map(|x| &x.2)
    }

    /// Replace `key`'s entries with `ids`, or drop the key for `None`.
    fn set(&mut self, h: u64, key: SrcKey, ids: Option<SrcIds>) {
        match (self.map.find_entry(h, |x| x.1 == key), ids) {
            (Ok(mut o), Some(ids)) => o.get_mut().2 = ids,
            (Ok(o), None) => {
                o.remove();
            }
            (Err(_), Some(ids)) => {
                self.map.insert_unique(h, (h, key, ids), |x| x.0);
            }
            (Err(_), None) => {}
        }
    }

    /// Add `id` to `key`'s entries (once).
    fn add(&mut self, h: u64, key: SrcKey, id: EntryId) {
        match self.map.find_mut(h, |x| x.1 == key) {
            Some(x) if x.2.as_slice().contains(&id) => {}
            Some(x) => x.2.push(id),
            None => {
                self.map
                    .insert_unique(h, (h, key, SrcIds::One(id)), |x| x.0);
            }
        }
    }
}

/// The engine's NAT state: the bysource index (kernel `nf_nat_bysource`) and the random
/// source of port searches. Built by [`NatState::new`] only: the index's hash key
/// comes from the engine's seed.
#[derive(Debug, Clone)]
pub struct NatState {
    bysource: BySource,
    rng: u64,
}

impl NatState {
    /// Empty, with the random source seeded from `seed`.
    pub fn new(seed: u64) -> NatState {
        NatState {
            bysource: BySource::new(seed),
            rng: seed ^ 0x6e61_745f_7365_6564,
        }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn allows_clash(p: u8) -> bool {
    !matches!(p, proto::TCP | proto::ICMP | proto::ICMPV6 | proto::SCTP)
}

/// The table seen from one entry being set up (kernel: the `ignored_conntrack`).
struct Space<'a> {
    ct: &'a mut Conntrack,
    id: EntryId,
    now: Instant,
    zone: Zone,
    orig: Tuple,
    reply: Tuple,
    status: Status,
    /// (state, td_end of the original direction) of a TCP entry.
    tcp: Option<(TcpState, u32)>,
}

impl Space<'_> {
    /// `nf_conntrack_find_get(zone, t)`: the orig zone id's bucket, then the reply id's.
    fn find(&self, t: &Tuple) -> Option<(EntryId, Dir)> {
        let mut scratch = Vec::new();
        self.ct
            .table
            .find(t, self.zone, self.now, &mut scratch)
            .filter(|(id, _)| *id != self.id)
    }

    /// `nf_conntrack_tuple_taken(reply)`: one bucket, hashed with the zone's reply id.
    fn taken(&mut self, reply: &Tuple) -> bool {
        let h = self.ct.table.hash(reply, self.zone.id_for(Dir::Reply));
        let mut scratch = Vec::new();
        let found = self
            .ct
            .table
            .find_hashed(reply, self.zone, h, self.now, &mut scratch)
            .filter(|(id, _)| *id != self.id);
        let Some((other, _)) = found else {
            return false;
        };
        let same_flow = self.ct.table.get(other).is_some_and(|o| {
            o.tuple(Dir::Original) == self.orig && o.zone.same_for(self.zone, Dir::Original)
        });
        if same_flow {
            return false;
        }
        self.ct.stats.found += 1;
        true
    }
}

impl alloc::TupleSpace for Space<'_> {
    fn used(&mut self, t: &Tuple) -> bool {
        match invert(t) {
            Some(r) => self.taken(&r),
            None => false,
        }
    }

    fn used_new(&mut self, t: &Tuple) -> bool {
        if !self.used(t) {
            return false;
        }
        if !allows_clash(self.orig.proto) {
            return true;
        }
        let uses_nat = Status::SRC_NAT | Status::DST_NAT | Status::SEQ_ADJUST;
        if self.status.0 & uses_nat != 0 {
            return true;
        }
        let found = self
            .find(t)
            .or_else(|| invert(t).and_then(|r| self.find(&r)));
        let Some((other, _)) = found else {
            return false;
        };
        match self.ct.table.get(other) {
            Some(o) if o.status.0 & uses_nat != 0 => true,
            Some(o) => o.tuple(Dir::Original) != self.reply,
            None => false,
        }
    }

    fn used_harder(&mut self, t: &Tuple, attempts_left: u32) -> bool {
        let Some(reply) = invert(t) else {
            return false;
        };
        let syn_sent = matches!(self.tcp, Some((TcpState::SynSent, _)));
        if attempts_left > alloc::HARDER_THRESH || t.proto != proto::TCP || !syn_sent {
            return self.taken(&reply);
        }
        // The last attempts: a TCP SYN may evict a colliding entry in TIME_WAIT.
        let Some((other, dir)) = self.find(&reply) else {
            return false;
        };
        if dir == Dir::Original {
            return true;
        }
        let Some(o) = self.ct.table.get(other) else {
            return false;
        };
        let (ProtoState::Tcp(oc), Some((_, our_end))) = (&o.proto, self.tcp) else {
            return true;
        };
        let may_kill = oc.state() as u8 >= TcpState::TimeWait as u8
            && o.status.0 & (Status::FIXED_TIMEOUT | Status::DYING) == 0
            && o.status.has(Status::SRC_NAT);
        let advanced = (our_end.wrapping_sub(oc.td_end(Dir::Original)) as i32) > 0;
        if !(may_kill && advanced) {
            return true;
        }
        self.ct.delete(other, self.now);
        false
    }

    fn src_mappings(&mut self, t: &Tuple) -> Vec<Tuple> {
        // kernel find_appropriate_src: same source, zone equal in the orig direction.
        let key = SrcKey::of(t, self.zone.id_for(Dir::Original));
        let h = self.ct.nat.bysource.hash(&key);
        let Some(ids) = self.ct.nat.bysource.get(h, &key) else {
            return Vec::new();
        };
        let table = &self.ct.table;
        let valid = |id: &EntryId| {
            table.get(*id).is_some_and(|e| {
                e.status.has(Status::SRC_NAT_DONE)
                    && e.tuple(Dir::Original).src == t.src
                    && e.tuple(Dir::Original).src_u == t.src_u
                    && e.tuple(Dir::Original).proto == t.proto
                    && e.zone.id_for(Dir::Original) == key.zone
            })
        };
        let mapping = |id: EntryId| {
            let e = table.get(id)?;
            let r = &e.tuple(Dir::Reply);
            Some(Tuple {
                src: r.dst,
                src_u: r.dst_u,
                dst: t.dst,
                dst_u: t.dst_u,
                family: t.family,
                proto: t.proto,
            })
        };
        // Stale ids (entries gone or reused) are pruned as the kernel's hlist is.
        let all = ids.as_slice();
        if all.iter().all(valid) {
            return all
                .iter()
                .rev()
                .filter(|&&id| id != self.id)
                .filter_map(|&id| mapping(id))
                .collect();
        }
        let live: Vec<EntryId> = all.iter().copied().filter(valid).collect();
        let out = live
            .iter()
            .rev()
            .filter(|&&id| id != self.id)
            .filter_map(|&id| mapping(id))
            .collect();
        let ids = match live.len() {
            0 => None,
            1 => Some(SrcIds::One(live[0])),
            _ => Some(SrcIds::Many(live)),
        };
        self.ct.nat.bysource.set(h, key, ids);
        out
    }

    fn random_u16(&mut self) -> u16 {
        self.ct.nat.next() as u16
    }
}

impl Conntrack {
    /// Whether the entry's binding for `manip` is set up (`nf_nat_initialized`).
    pub fn nat_initialized(&self, id: EntryId, manip: Manip) -> bool {
        self.table
            .get(id)
            .is_some_and(|e| e.status.has(manip.done_bit()))
    }

    /// Set up the entry's binding for `manip` within `range` (kernel
    /// `nf_nat_setup_info`). A confirmed entry is left alone. Returns `false` when the
    /// packet must be dropped (the binding was already set up).
    pub fn nat_setup(&mut self, now: Instant, id: EntryId, range: &NatRange, manip: Manip) -> bool {
        let Some(e) = self.table.get(id) else {
            return true;
        };
        if e.status.has(Status::CONFIRMED) {
            return true;
        }
        if e.status.has(manip.done_bit()) {
            return false;
        }
        let Some(curr) = invert(&e.tuple(Dir::Reply)) else {
            return true;
        };
        let tcp = match &e.proto {
            ProtoState::Tcp(c) => Some((c.state(), c.td_end(Dir::Original))),
            _ => None,
        };
        let has_master = e.status.has(Status::EXPECTED);
        let mut space = Space {
            zone: e.zone,
            orig: e.tuple(Dir::Original),
            reply: e.tuple(Dir::Reply),
            status: e.status,
            tcp,
            ct: self,
            id,
            now,
        };
        let zone = space.zone;
        let new = alloc::unique_tuple(&mut space, &curr, range, manip, zone.id, has_master);
        let orig = space.orig;
        let Some(e) = self.table.get_mut(id) else {
            return true;
        };
        if new != curr {
            if let Some(reply) = invert(&new) {
                e.set_tuple(Dir::Reply, reply);
                e.status.set(manip.nat_bit());
            }
        }
        e.status.set(manip.done_bit());
        if manip == Manip::Src {
            let key = SrcKey::of(&orig, zone.id_for(Dir::Original));
            let h = self.nat.bysource.hash(&key);
            self.nat.bysource.add(h, key, id);
        }
        true
    }

    /// A null binding (kernel `nf_nat_alloc_null_binding`): the entry's current address
    /// of the manipulated side, ports left to the protocol.
    pub fn nat_null_binding(&mut self, now: Instant, id: EntryId, manip: Manip) -> bool {
        let Some(e) = self.table.get(id) else {
            return true;
        };
        let ip = match manip {
            Manip::Src => e.tuple(Dir::Reply).dst,
            Manip::Dst => e.tuple(Dir::Reply).src,
        };
        self.nat_setup(now, id, &NatRange::addr(ip), manip)
    }

    /// Rewrite a packet of direction `dir` at a hook of type `manip` by the entry's
    /// binding (kernel `nf_nat_packet`). `false`: the packet could not be written (drop).
    pub fn nat_packet(&self, id: EntryId, dir: Dir, manip: Manip, pkt: &mut [u8]) -> bool {
        let Some(e) = self.table.get(id) else {
            return true;
        };
        let mut bit = manip.nat_bit();
        if dir == Dir::Reply {
            bit = manip.opposite().nat_bit();
        }
        if !e.status.has(bit) {
            return true;
        }
        let Some(target) = invert(&e.tuple(dir.opposite())) else {
            return true;
        };
        rewrite::manip_pkt(pkt, 0, &target, manip)
    }

    /// Translate an ICMP/ICMPv6 error RELATED to the entry (kernel
    /// `nf_nat_icmp_reply_translation`): `dir` is the error's direction, `l4_off` the
    /// ICMP header's offset. With `verify`, a bad ICMP checksum drops the packet. An
    /// ICMP redirect is dropped unless the entry is fully set up without NAT. `false`:
    /// drop.
    pub fn nat_icmp_error(
        &self,
        id: EntryId,
        dir: Dir,
        manip: Manip,
        pkt: &mut [u8],
        l4_off: usize,
        verify: bool,
    ) -> bool {
        let Some(e) = self.table.get(id) else {
            return true;
        };
        let Some(icmp) = pkt.get(l4_off..) else {
            return false;
        };
        let v6 = e.tuple(Dir::Original).family == Family::V6;
        if verify {
            let ok = if v6 {
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                if let (Some(a), Some(b)) = (pkt.get(8..24), pkt.get(24..40)) {
                    s.copy_from_slice(a);
                    d.copy_from_slice(b);
                }
                checksum::verify_with_pseudo(Family::V6, &Addr(s), &Addr(d), proto::ICMPV6, icmp)
            } else {
                checksum::verify(icmp)
            };
            if !ok {
                return false;
            }
        }
        let redirect = if v6 { 137 } else { 5 };
        if icmp.first() == Some(&redirect) {
            let done = Status::SRC_NAT_DONE | Status::DST_NAT_DONE;
            if !e.status.has(done) || e.status.0 & (Status::SRC_NAT | Status::DST_NAT) != 0 {
                return false;
            }
        }
        let bit = match dir {
            Dir::Original => manip.nat_bit(),
            Dir::Reply => manip.opposite().nat_bit(),
        };
        if !e.status.has(bit) {
            return true;
        }
        let other = e.tuple(dir.opposite());
        rewrite::icmp_error_translate(pkt, l4_off, &other, manip)
    }
}

#[cfg(test)]
pub(crate) mod tests;
