//! The conntrack hash table (kernel `nf_conntrack_hash`): the kernel's buckets, each a
//! chain of nodes, kept in grouped cache lines (`groups.rs`: each node's id and hash
//! tag, four buckets a line, in chain order) beside a slab of entries; every confirmed
//! entry is linked twice, under its original tuple and under its reply tuple (one node
//! per direction). Unconfirmed entries live in the slab but are not linked, so lookups
//! do not find them — exactly like the kernel's unconfirmed list.
//!
//! Bucket-local behaviour the kernel has (early drop scans 8 buckets from the new
//! tuple's bucket; a per-bucket chain limit at confirm; a lookup reaps the expired
//! nodes in front of its match) falls out of the same chains. A group's lower bound
//! of its nodes' deadlines lets a lookup pass the nodes in front of its match without
//! reading their entries while the bound is ahead of `now`.
//! The hash is keyed SipHash-1-3 over the tuple bytes and the zone id, reduced to a
//! bucket as the kernel does: `(hash32 * size) >> 32`.

use crate::entry::Entry;
use crate::groups::GroupedChains;
use crate::sip_lanes;
use crate::time::Instant;
use crate::tuple::{Dir, Family, Tuple};
use crate::zone::Zone;

const NIL: u32 = u32::MAX;

/// No node (a lookup without a tag walk's hint, see [`Table::find_clean`]).
pub const NO_NODE: u32 = u32::MAX;

/// Node direction by its low bit.
const DIRS: [Dir; 2] = [Dir::Original, Dir::Reply];

/// The most entries [`Table::with_capacity`] reserves ahead (768 MiB of address space):
/// beyond that the slab grows on demand.
const MAX_RESERVE: u32 = 1 << 22;

/// Handle of an entry in the table (slab index). Valid until the entry is freed.
pub type EntryId = u32;

use crate::status::Status;

/// Nanoseconds per unit of the groups' deadline bounds, as a shift: 2^24 ns (~16.8 ms);
/// a u32 of them spans ~2.3 years from the table's epoch.
const COARSE_SHIFT: u32 = 24;

/// Protocol classes for the shortest timeouts: TCP, UDP (and UDP-Lite), ICMP (and
/// ICMPv6), any other.
const CLASSES: usize = 4;

/// An entry's protocol class (see [`CLASSES`]), from its tracker state.
#[inline(always)]
fn class_of(e: &Entry) -> usize {
    use crate::proto::ProtoState;
    match e.proto {
        ProtoState::Tcp(_) => 0,
        ProtoState::Udp(_) => 1,
        ProtoState::Icmp => 2,
        _ => 3,
    }
}

/// Tuple equality as a few 64-bit word compares folded together (what `==` on
/// [`Tuple`] means, field for field). A packet's tuple is freshly written by narrow
/// stores; the derived `==` reads its addresses with 16-byte loads, which cannot be
/// forwarded from those stores and stall the hit path.
#[inline(always)]
pub(crate) fn same_tuple(a: &Tuple, b: &Tuple) -> bool {
    let misc = |t: &Tuple| {
        u64::from(t.src_u)
            | u64::from(t.dst_u) << 16
            | u64::from(t.family as u8) << 32
            | u64::from(t.proto) << 40
    };
    let (sa, sb, da, db) = (a.src.words(), b.src.words(), a.dst.words(), b.dst.words());
    ((sa[0] ^ sb[0]) | (sa[1] ^ sb[1]) | (da[0] ^ db[0]) | (da[1] ^ db[1]) | (misc(a) ^ misc(b)))
        == 0
}

/// The tag kept beside a node in its group: the low [`crate::groups::TAG_BITS`] bits of
/// the keyed hash (the bucket comes from the high half). Equal tuples in one zone have
/// equal hashes, so a tag mismatch proves a node does not match (a match of tags
/// between different tuples, 1 in 16,384, only costs reading the entry).
#[inline(always)]
fn tag_of(h: u64) -> u16 {
    h as u16 & ((1 << crate::groups::TAG_BITS) - 1)
}

/// Bytes of an entry a UDP hit reads and writes: up to the end of the L4 state's first
/// 16 bytes (the variant's tag and the UDP state, pinned by `entry_size_is_bounded`).
pub const UDP_HIT_BYTES: usize = 40 + 16;

/// The table's keyed flow hash (kernel `hash_conntrack_raw`): SipHash-1-3 with a
/// 128-bit key derived from the table's seed, over the tuple packed into 64-bit words
/// (IPv4: 2 words; IPv6: 5 words), the zone included. Keyed SipHash resists hash
/// flooding as the kernel's does; feeding it whole words instead of a 38-byte buffer
/// through `Hasher::write` makes it about 4× cheaper (see `benches/core.rs` and
/// BENCHMARKS.md for the candidates measured).
#[derive(Debug, Clone, Copy)]
pub struct FlowHasher {
    k0: u64,
    k1: u64,
}

impl FlowHasher {
    /// The hasher of a table seeded with `seed`.
    pub fn new(seed: u64) -> FlowHasher {
        FlowHasher {
            k0: seed ^ 0x736f_6d65_7073_6575,
            k1: seed.rotate_left(32) ^ 0x646f_7261_6e64_6f6d,
        }
    }

    /// The 64-bit keyed hash of a tuple with a zone id (the zone's id for the tuple's
    /// direction, kernel `hash_conntrack_raw(tuple, nf_ct_zone_id(zone, dir))`).
    #[inline]
    pub fn hash(&self, t: &Tuple, zone: u16) -> u64 {
        match t.family {
            Family::V4 => sip13(self.k0, self.k1, &FlowHasher::v4_words(t, zone)),
            Family::V6 => {
                let (a, b) = (t.src.words(), t.dst.words());
                sip13(
                    self.k0,
                    self.k1,
                    &[a[0], a[1], b[0], b[1], misc_word(t, zone)],
                )
            }
        }
    }

    /// The two words an IPv4 tuple's hash is computed over (its addresses, then its
    /// ports, family, protocol and zone): [`FlowHasher::hash_lanes`] of them is
    /// [`FlowHasher::hash`] of the tuple. Meaningful for an IPv4 tuple only.
    #[inline(always)]
    pub fn v4_words(t: &Tuple, zone: u16) -> [u64; 2] {
        // An IPv4 address is the first 4 bytes of its `Addr`: the low half of its first
        // word (one load, where four byte loads assembled it before).
        let v4 = (t.src.words()[0] & 0xffff_ffff) | t.dst.words()[0] << 32;
        [v4, misc_word(t, zone)]
    }

    /// The hash words of the inversion of the IPv4 tuple whose words are `w` (from
    /// [`FlowHasher::v4_words`]), under zone id `zone`: addresses and ports swapped.
    /// Meaningful for protocols whose inversion is that swap (every one but ICMP).
    #[inline(always)]
    pub fn v4_inverse_words([v4, misc]: [u64; 2], zone: u16) -> [u64; 2] {
        let ports = (misc as u32).rotate_left(16);
        let proto_family = misc & 0x0000_ffff_0000_0000;
        [
            v4.rotate_left(32),
            u64::from(ports) | proto_family | u64::from(zone) << 48,
        ]
    }

    /// The hashes of up to [`sip_lanes::MAX_LANES`] IPv4 tuples at once, given by
    /// their [`FlowHasher::v4_words`] (structure of arrays: tuple `i` is
    /// `(w0[i], w1[i])`): `out[i]` for `i < n`, each equal to [`FlowHasher::hash`] of
    /// its tuple, computed in SIMD lanes where the CPU has them.
    #[inline]
    pub fn hash_lanes(
        &self,
        w0: &sip_lanes::Words,
        w1: &sip_lanes::Words,
        n: usize,
        out: &mut sip_lanes::Words,
    ) {
        sip_lanes::sip13_pairs(self.k0, self.k1, w0, w1, n, out);
    }
}

/// The hash's word of everything but the addresses: ports (or ICMP type, code and id),
/// family, protocol and zone.
#[inline(always)]
fn misc_word(t: &Tuple, zone: u16) -> u64 {
    u64::from(t.src_u)
        | u64::from(t.dst_u) << 16
        | u64::from(t.family as u8) << 32
        | u64::from(t.proto) << 40
        | u64::from(zone) << 48
}

/// A keyed hash of a few 64-bit words: SipHash-1-3 over them, as the table's own hash,
/// so a map of attacker-chosen keys (NAT's bysource index) resists hash flooding
/// without std's byte-buffering `SipHasher` (~4× the cost per key).
#[derive(Debug, Clone, Copy)]
pub struct WordsHasher {
    k0: u64,
    k1: u64,
}

impl WordsHasher {
    /// A hasher keyed from `seed`.
    pub fn new(seed: u64) -> WordsHasher {
        WordsHasher {
            k0: seed.rotate_left(17) ^ 0x6279_736f_7572_6365,
            k1: seed ^ 0x6e61_745f_696e_6465,
        }
    }

    /// The keyed hash of `words`.
    #[inline]
    pub fn hash_words(&self, words: &[u64]) -> u64 {
        sip13(self.k0, self.k1, words)
    }
}

/// SipHash-1-3 of a message made of whole little-endian 64-bit words (equal to
/// `SipHasher13::write` of the words' bytes).
#[inline(always)]
pub fn sip13(k0: u64, k1: u64, words: &[u64]) -> u64 {
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    for &m in words {
        v3 ^= m;
        round!();
        v0 ^= m;
    }
    let b = ((words.len() as u64 * 8) & 0xff) << 56;
    v3 ^= b;
    round!();
    v0 ^= b;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    v0 ^ v1 ^ v2 ^ v3
}

/// Where a batch's tag walk of one bucket stands ([`Table::tag_walk_start`],
/// [`Table::tag_step`]): only a prediction of the lookup to come, made before the
/// batch's earlier packets change the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagWalk {
    /// At this bucket (its group line requested), not yet looked at.
    At(u32),
    /// This node, the chain's first carrying the hash's tag (its entry requested): a
    /// likely hit, and the lookup's hint ([`Table::find_clean`]).
    Tagged(u32),
    /// No node carries the tag: the lookup will miss (unless an earlier packet of
    /// the batch links the tuple first).
    Absent,
    /// Not known (the walk stopped early).
    Unknown,
}

/// The table: the chains of its buckets in grouped lines (`groups.rs`: each node its
/// entry id * 2 + direction and a hash tag) plus a slab of entries.
pub struct Table {
    chains: GroupedChains,
    /// The entries. One is linked exactly when its status has CONFIRMED (the kernel's
    /// meaning: in the hash), under its reply tuple alone when NAT_CLASH too (see
    /// [`Table::link_reply_only`]): the entry's own line says it, no array apart.
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    hasher: FlowHasher,
    /// Allocated entries, including unconfirmed ones (kernel `nf_conntrack_count`).
    count: u32,
    /// The time the groups' deadline bounds count from (ns), set at the first link.
    epoch: Option<u64>,
    /// The latest time the engine worked at (ns): a bound is kept true only while
    /// time goes forward (see [`Table::observe`]).
    latest: u64,
    /// [`Table::coarse_ns`] of `latest`.
    latest_coarse: u32,
    /// Per protocol class ([`class_of`]), the shortest timeout (ns) a refresh can give
    /// an entry: never raised over the table's life (an entry may keep a timeout of
    /// an older setting). `None` until [`Table::set_timeouts`], and between
    /// [`Table::suspend_bounds`] and the next: no bound then.
    shortest: Option<[u64; CLASSES]>,
    /// The shortest timeouts ever set (what `shortest` is when on).
    floor: Option<[u64; CLASSES]>,
    /// The buckets a node was linked into since [`Table::forget_changes`], as bit
    /// `bucket % CHANGE_BITS` (so a bit may stand for several buckets: a set bit only
    /// means "maybe changed"). Unlinks are not noted: a chain that only lost nodes
    /// still holds no node a walk of it did not see (what [`Table::unchanged`] is
    /// asked for: no new match, no new expired node, no longer chain).
    changed: [u64; CHANGE_WORDS],
}

/// Words of [`Table`]'s changed-bucket bits: 512 bits, one cache line.
const CHANGE_WORDS: usize = 8;
const CHANGE_BITS: u32 = 64 * CHANGE_WORDS as u32;

impl Table {
    /// A table with `buckets` chains (already rounded) and a hash key derived from `seed`.
    pub fn new(buckets: u32, seed: u64) -> Table {
        Table::with_capacity(buckets, seed, 0)
    }

    /// [`Table::new`] with the slab reserved for `entries` entries up front (the
    /// engine passes `nf_conntrack_max`): the slab then never moves, so growing the
    /// table neither copies every entry nor faults in a second copy. The reserve is
    /// address space only until an entry is written there, advised to use huge pages
    /// (`huge.rs`: a million entries then take ~100 page faults instead of ~50,000,
    /// and random lookups miss the TLB far less).
    pub fn with_capacity(buckets: u32, seed: u64, entries: u32) -> Table {
        let reserve = entries.min(MAX_RESERVE) as usize;
        let slots: Vec<Option<Entry>> = Vec::with_capacity(reserve);
        crate::huge::advise(
            slots.as_ptr().cast::<u8>(),
            slots.capacity() * size_of::<Option<Entry>>(),
        );
        Table {
            chains: GroupedChains::new(buckets.max(1)),
            slots,
            free: Vec::new(),
            epoch: None,
            latest: 0,
            latest_coarse: 0,
            shortest: None,
            floor: None,
            hasher: FlowHasher::new(seed),
            count: 0,
            changed: [0; CHANGE_WORDS],
        }
    }

    /// The table's keyed flow hash (a copy: another thread may hash ahead with it).
    pub fn hasher(&self) -> FlowHasher {
        self.hasher
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u32 {
        self.chains.buckets()
    }

    /// Whether the groups hold a node or none on average (entries at most half the
    /// groups): most nodes are then alone in their group, its newest, and a lookup
    /// tries that one cell with a scalar compare before the group's vector compare
    /// (a predicted branch instead of a chain of dependent steps). Either way the
    /// lookup finds the same node.
    #[inline(always)]
    fn sparse(&self) -> bool {
        (self.count as usize) * 2 <= self.chains.groups()
    }

    /// Allocated entries, unconfirmed included.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The bucket of a tuple in a zone.
    #[inline]
    pub fn bucket(&self, t: &Tuple, zone: u16) -> u32 {
        self.bucket_of_hash(self.hash(t, zone))
    }

    /// The bucket of a hash from [`FlowHasher::hash`]: `(hash32 * size) >> 32`.
    #[inline]
    pub fn bucket_of_hash(&self, h: u64) -> u32 {
        let h32 = (h >> 32) as u32;
        ((u64::from(h32) * u64::from(self.chains.buckets())) >> 32) as u32
    }

    /// Bytes of heap the table holds: the grouped chains (groups and overflow
    /// groups), the slab slots written so far (free ones included; the reserve beyond
    /// them is untouched address space, never resident), the free list, boxed entry
    /// extensions and the boxed tuples of wide entries (IPv6, NATed).
    pub fn memory_bytes(&self) -> usize {
        let entries = || self.slots.iter().flatten();
        let ext = entries().filter(|e| e.ext.is_some()).count()
            * size_of::<crate::entry::Extensions>()
            + entries().filter(|e| e.is_wide()).count() * Entry::WIDE_BYTES;
        self.chains.memory_bytes()
            + self.slots.len() * size_of::<Option<Entry>>()
            + self.free.capacity() * size_of::<u32>()
            + ext
    }

    /// Store a new (unconfirmed, unlinked) entry; counts it. Inline, so that an entry
    /// built in the call is written straight into its slot.
    #[inline(always)]
    pub fn alloc(&mut self, entry: Entry) -> EntryId {
        self.count += 1;
        if let Some(id) = self.free.pop() {
            self.slots[id as usize] = Some(entry);
            id
        } else {
            self.slots.push(Some(entry));
            (self.slots.len() - 1) as u32
        }
    }

    /// Free an entry (unlinking it first if needed) and return it.
    pub fn free(&mut self, id: EntryId) -> Option<Entry> {
        self.unlink(id);
        let e = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id);
        self.count -= 1;
        Some(e)
    }

    /// The entry of `id`.
    #[inline]
    pub fn get(&self, id: EntryId) -> Option<&Entry> {
        self.slots.get(id as usize)?.as_ref()
    }

    /// The entry of `id`, mutable.
    #[inline]
    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Take the timeouts a refresh can give from `sysctls` (at creation and after any
    /// change): per protocol class the shortest, never above what it was (entries keep
    /// timeouts of older settings); every group's bound is forgotten (they were kept
    /// for the old ones).
    pub fn set_timeouts(&mut self, sysctls: &crate::sysctl::Sysctls) {
        const NS: u64 = 1_000_000_000;
        let any = sysctls.shortest_timeout("").unwrap_or(0);
        let of = |prefix: &str| sysctls.shortest_timeout(prefix).unwrap_or(any) * NS;
        let new = [
            of("nf_conntrack_tcp_timeout"),
            of("nf_conntrack_udp_timeout"),
            of("nf_conntrack_icmp"),
            any * NS,
        ];
        let merged = match self.floor {
            Some(old) => core::array::from_fn(|i| old[i].min(new[i])),
            None => new,
        };
        // The first setting needs no forgetting: no bound was kept with another.
        if self.floor.is_some() {
            self.chains.forget_alive();
        }
        self.floor = Some(merged);
        self.shortest = Some(merged);
    }

    /// Turn the deadline bounds off (the timeouts are about to change) until the next
    /// [`Table::set_timeouts`]: every bound forgotten, none set.
    pub fn suspend_bounds(&mut self) {
        self.shortest = None;
        self.chains.forget_alive();
    }

    /// Whether the bounds are off ([`Table::suspend_bounds`]).
    #[inline(always)]
    pub fn bounds_suspended(&self) -> bool {
        self.shortest.is_none()
    }

    /// A time in bound units since the epoch, rounded down (0 before it).
    #[inline(always)]
    fn coarse_ns(&self, ns: u64) -> u32 {
        let since = ns.saturating_sub(self.epoch.unwrap_or(u64::MAX));
        u32::try_from(since >> COARSE_SHIFT).unwrap_or(u32::MAX)
    }

    /// Whether the group of `bucket` is known to hold no node expired at `now`: its
    /// bound (at most every node's deadline) is past `now`'s unit.
    #[inline(always)]
    fn none_expired(&self, bucket: u32, now: Instant) -> bool {
        let ns = now.as_nanos();
        let c = if ns == self.latest {
            self.latest_coarse
        } else {
            self.coarse_ns(ns)
        };
        c < self.chains.alive(bucket)
    }

    /// A bound for entry `e`'s nodes at `now`: at most its deadline, and at most `now`
    /// plus the shortest timeout a refresh can give it (so that a refresh from `now`
    /// on never goes under it); 0 when no timeouts were set.
    #[inline(always)]
    fn bound_of(&self, e: &Entry, now: Instant) -> u32 {
        let Some(shortest) = &self.shortest else {
            return 0;
        };
        let soonest = now.as_nanos().saturating_add(shortest[class_of(e)]);
        self.coarse_ns(e.deadline.as_nanos().min(soonest))
    }

    /// Before a lookup at `now` in the bucket of hash `h` (whose result may refresh an
    /// entry): keep the groups' bounds true and useful. Time going back (a capture's
    /// timestamps) forgets every bound, since a refresh at an earlier time could go
    /// under one; a bound that `now` has passed is renewed from the entries of every
    /// node in the group.
    #[inline]
    pub fn keep_bound(&mut self, h: u64, now: Instant) {
        self.observe(now);
        let bucket = self.bucket_of_hash(h);
        if !self.none_expired(bucket, now) {
            self.renew_bound(bucket, now);
        }
    }

    /// The engine works at `now` (a packet's time, a confirm's): time going back (a
    /// capture's timestamps) forgets every deadline bound, since a refresh at an
    /// earlier time could set a deadline under one.
    #[inline(always)]
    pub fn observe(&mut self, now: Instant) {
        let ns = now.as_nanos();
        if ns == self.latest {
            return;
        }
        if ns < self.latest {
            self.chains.forget_alive();
        }
        self.latest = ns;
        self.latest_coarse = self.coarse_ns(ns);
    }

    /// Set the bound of `bucket`'s group from every node's entry in it.
    #[cold]
    #[inline(never)]
    fn renew_bound(&mut self, bucket: u32, now: Instant) {
        if self.shortest.is_none() || self.epoch.is_none() {
            return;
        }
        let mut bound = u32::MAX;
        self.chains.for_each_in_group(bucket, |node| {
            let b = match self.slots.get((node / 2) as usize) {
                Some(Some(e)) => self.bound_of(e, now),
                _ => 0,
            };
            bound = bound.min(b);
        });
        self.chains.set_alive(bucket, bound);
    }

    /// The bound for entry `id`'s nodes linked at `now` (`None`: 0, none), the epoch
    /// set at the first link.
    #[inline(always)]
    fn link_bound(&mut self, id: EntryId, now: Option<Instant>) -> u32 {
        if self.epoch.is_none() {
            // Bounds count from a little before the first link.
            self.epoch = Some(now.map_or(0, |n| n.as_nanos()).saturating_sub(1 << 32));
            self.latest_coarse = self.coarse_ns(self.latest);
        }
        match (now, self.slots.get(id as usize)) {
            (Some(now), Some(Some(e))) => self.bound_of(e, now),
            _ => 0,
        }
    }

    /// Whether `id` is linked (confirmed and in the hash).
    #[inline]
    pub fn is_linked(&self, id: EntryId) -> bool {
        self.get(id)
            .is_some_and(|e| e.status.has(Status::CONFIRMED))
    }

    /// Link both tuples of `id` into their buckets (confirm).
    pub fn link(&mut self, id: EntryId) {
        let Some(e) = self.get(id) else { return };
        let h = [
            self.hash(&e.tuple(Dir::Original), e.zone.id_for(Dir::Original)),
            self.hash(&e.tuple(Dir::Reply), e.zone.id_for(Dir::Reply)),
        ];
        self.link_hashed(id, h, None);
    }

    /// Link both tuples of `id` with their hashes already computed (`h[dir]` must be
    /// [`Table::hash`] of the entry's tuple of that direction with its zone's id for that
    /// direction), at `now` (the time its deadline was last set: the groups' bounds
    /// count from it; `None` forgets their bounds).
    #[inline(always)]
    pub fn link_hashed(&mut self, id: EntryId, h: [u64; 2], now: Option<Instant>) {
        if self.get(id).is_none() {
            return;
        }
        let bound = self.link_bound(id, now);
        for (dir, &h) in h.iter().enumerate() {
            let node = id * 2 + dir as u32;
            let b = self.bucket_of_hash(h);
            self.note_change(b);
            self.chains.link(b, node, tag_of(h), bound);
        }
        if let Some(Some(e)) = self.slots.get_mut(id as usize) {
            e.status.set(Status::CONFIRMED);
        }
    }

    /// Link only the reply tuple of `id` (hash `h_reply`); the original node is a fake
    /// that no chain holds (kernel `hlist_nulls_add_fake`), so original-direction
    /// lookups keep finding the entry already there and listings skip this one: the
    /// loser of a NAT clash (`nf_ct_resolve_clash_harder`). It still counts as linked
    /// (confirmed), the GC sees it, and it expires.
    pub fn link_reply_only(&mut self, id: EntryId, h_reply: u64, now: Instant) {
        if self.get(id).is_none() {
            return;
        }
        let bound = self.link_bound(id, Some(now));
        let b = self.bucket_of_hash(h_reply);
        self.note_change(b);
        self.chains.link(b, id * 2 + 1, tag_of(h_reply), bound);
        if let Some(Some(e)) = self.slots.get_mut(id as usize) {
            e.status.set(Status::CONFIRMED | Status::NAT_CLASH);
        }
    }

    /// Whether `id` is linked under its original tuple (not a reply-only clash entry):
    /// what `conntrack -L` and /proc list.
    pub fn is_listed(&self, id: EntryId) -> bool {
        self.get(id)
            .is_some_and(|e| e.status.has(Status::CONFIRMED) && !e.status.has(Status::NAT_CLASH))
    }

    /// Remove both nodes of `id` from their chains.
    pub fn unlink(&mut self, id: EntryId) {
        let Some(Some(e)) = self.slots.get(id as usize) else {
            return;
        };
        if !e.status.has(Status::CONFIRMED) {
            return;
        }
        let reply_only = e.status.has(Status::NAT_CLASH);
        let b = [
            self.bucket(&e.tuple(Dir::Original), e.zone.id_for(Dir::Original)),
            self.bucket(&e.tuple(Dir::Reply), e.zone.id_for(Dir::Reply)),
        ];
        for (dir, &bucket) in b.iter().enumerate() {
            if dir == 0 && reply_only {
                continue;
            }
            self.chains.remove(bucket, id * 2 + dir as u32);
        }
        // The entry keeps CONFIRMED (the kernel's dying entry does too): it is taken
        // out of its slot next (`free`), its id no longer names it.
    }

    /// Find a confirmed entry whose tuple of some direction equals `t` in `zone` (kernel
    /// `nf_conntrack_find_get`): first in the bucket of `t` hashed with the zone's
    /// original-direction id, then, if the zone's reply id differs, with that one. A
    /// node matches when its tuple equals `t` and the zones give the same id for the
    /// node's direction (kernel `nf_ct_key_equal`).
    /// Expired entries met on the way are not returned; their ids are pushed to `expired`
    /// so the caller can delete them (kernel: `nf_ct_gc_expired` during lookup).
    pub fn find(
        &self,
        t: &Tuple,
        zone: Zone,
        now: Instant,
        expired: &mut Vec<EntryId>,
    ) -> Option<(EntryId, Dir)> {
        let id0 = zone.id_for(Dir::Original);
        let h = self.hash(t, id0);
        let found = self.find_hashed(t, zone, h, now, expired);
        let id1 = zone.id_for(Dir::Reply);
        if found.is_some() || id1 == id0 {
            return found;
        }
        self.find_hashed(t, zone, self.hash(t, id1), now, expired)
    }

    /// The keyed hash of a tuple with a zone id ([`FlowHasher::hash`] with this table's
    /// key).
    #[inline]
    pub fn hash(&self, t: &Tuple, zone: u16) -> u64 {
        self.hasher.hash(t, zone)
    }

    /// Hint the CPU to fetch the group line of the bucket of hash `h` (batch lookups).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        self.chains.prefetch(self.bucket_of_hash(h));
    }

    /// The second stage of a look-ahead lookup, once the group line of the bucket of
    /// hash `h` is in cache: its first node with `h`'s tag, whose entry is requested;
    /// returned for the next stage (`NIL` when none).
    #[inline]
    pub fn prefetch_first(&self, h: u64) -> u32 {
        match self
            .chains
            .first_with_tag(self.bucket_of_hash(h), tag_of(h))
        {
            Some(node) => {
                self.prefetch_node(node);
                node
            }
            None => NIL,
        }
    }

    /// The third stage of a look-ahead lookup: nothing is left to request (a group
    /// line holds the chain; the entry was requested by the second stage). `NIL`.
    #[inline]
    pub fn prefetch_next(&self, node: u32) -> u32 {
        let _ = node;
        NIL
    }

    /// Hint the CPU to fetch entry `id`'s slot.
    #[inline]
    pub fn prefetch_entry(&self, id: EntryId) {
        self.prefetch_node(id.wrapping_mul(2));
    }

    /// The first step of a batch's tag walk of the bucket of hash `h` (whose group line
    /// [`Table::prefetch`] requested): nothing is read yet; [`Table::tag_step`] looks
    /// at the group once it has had time to come.
    #[inline]
    pub fn tag_walk_start(&self, h: u64) -> TagWalk {
        TagWalk::At(self.bucket_of_hash(h))
    }

    /// Note that the chain of `bucket` changed (see [`Table::unchanged`]).
    #[inline(always)]
    fn note_change(&mut self, bucket: u32) {
        let bit = bucket % CHANGE_BITS;
        self.changed[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    /// Start noting chain changes afresh: until the next call, [`Table::unchanged`]
    /// is true of a bucket no node was linked into since this one.
    #[inline]
    pub fn forget_changes(&mut self) {
        self.changed = [0; CHANGE_WORDS];
    }

    /// Take every chain for changed until [`Table::forget_changes`] (something
    /// besides links could have changed what a walk saw, e.g. the timeouts).
    #[inline]
    pub fn taint_changes(&mut self) {
        self.changed = [u64::MAX; CHANGE_WORDS];
    }

    /// Whether the chain of the bucket of hash `h` holds only nodes a walk saw before
    /// the last [`Table::forget_changes`]: no node linked there since (false also when
    /// a node was linked into another bucket sharing its bit, or after
    /// [`Table::taint_changes`]).
    #[inline]
    pub fn unchanged(&self, h: u64) -> bool {
        self.unchanged_bucket(self.bucket_of_hash(h))
    }

    /// [`Table::unchanged`] of a bucket.
    #[inline(always)]
    fn unchanged_bucket(&self, bucket: u32) -> bool {
        let bit = bucket % CHANGE_BITS;
        self.changed[(bit / 64) as usize] >> (bit % 64) & 1 == 0
    }

    /// The step of a batch's tag walk for hash `h` (one step: the group line holds the
    /// chain): at `TagWalk::At(bucket)`, a node carrying `h`'s tag ends the walk with
    /// its entry requested (what a hit reads and updates: the whole entry, or for a
    /// UDP packet, `udp`, only its first [`UDP_HIT_BYTES`]); a chain without one
    /// proves that no linked tuple has this hash. Any other state stays as it is.
    #[inline]
    pub fn tag_step(&self, walk: TagWalk, h: u64, udp: bool) -> TagWalk {
        self.tag_step_until(walk, h, udp, None)
    }

    /// [`Table::tag_step`] that, when given `now`, also proves that the chain holds
    /// no node expired at `now` before it answers `Absent` (else `Unknown`): its
    /// `Absent` then means a lookup there would miss without deleting any (a burst
    /// round's proof, see `batch.rs`).
    #[inline(always)]
    pub fn tag_step_until(
        &self,
        walk: TagWalk,
        h: u64,
        udp: bool,
        now: Option<Instant>,
    ) -> TagWalk {
        self.tag_step_noting(walk, h, udp, now, &mut false)
    }

    /// [`Table::tag_step_until`], setting `stale` when its proof read the entries of a
    /// group whose deadline bound `now` had passed (the caller may renew it then:
    /// [`Table::keep_bound`]).
    #[inline(always)]
    pub(crate) fn tag_step_noting(
        &self,
        walk: TagWalk,
        h: u64,
        udp: bool,
        now: Option<Instant>,
        stale: &mut bool,
    ) -> TagWalk {
        let TagWalk::At(bucket) = walk else {
            return walk;
        };
        let newest = || {
            self.sparse()
                .then(|| self.chains.newest_if_tagged(bucket, tag_of(h)))
                .flatten()
        };
        if let Some(node) = newest().or_else(|| self.chains.first_with_tag(bucket, tag_of(h))) {
            let bytes = if udp {
                UDP_HIT_BYTES
            } else {
                size_of::<Entry>()
            };
            self.prefetch_entry_bytes((node / 2) as usize, bytes);
            return TagWalk::Tagged(node);
        }
        if let Some(now) = now.filter(|&now| !self.none_expired(bucket, now)) {
            *stale = true;
            let clean = self.chain_nodes(bucket).all(|(id, _)| {
                self.slots
                    .get(id as usize)
                    .is_some_and(|s| s.as_ref().is_some_and(|e| !e.expired(now)))
            });
            if !clean {
                return TagWalk::Unknown;
            }
        }
        TagWalk::Absent
    }

    /// The nodes of `bucket`'s chain in order, as (entry, direction index).
    #[inline]
    fn chain_nodes(&self, bucket: u32) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.chains
            .chain(bucket)
            .map(|(node, _)| (node / 2, (node & 1) as usize))
    }

    /// Prefetch every cache line of a node's entry (2 or 3: entries are not
    /// line-aligned).
    #[inline]
    fn prefetch_node(&self, node: u32) {
        if node != NIL {
            self.prefetch_entry_bytes((node / 2) as usize, size_of::<Entry>());
        }
    }

    /// Prefetch the lines of entry `id`'s first `bytes` bytes (at most the entry's).
    #[inline]
    fn prefetch_entry_bytes(&self, id: usize, bytes: usize) {
        let p = self.slots.as_ptr().wrapping_add(id).cast::<u8>();
        prefetch_read(p);
        if bytes > 64 {
            prefetch_read(p.wrapping_add(64));
        }
        prefetch_read(p.wrapping_add(bytes - 1));
    }

    /// [`Table::find`] in the bucket of hash `h` (`self.hash(t, id)` where `id` is the
    /// zone's id for the direction being tried).
    #[inline]
    pub fn find_hashed(
        &self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
        expired: &mut Vec<EntryId>,
    ) -> Option<(EntryId, Dir)> {
        // Every node met is checked for expiry first, as the kernel's
        // `____nf_conntrack_find` does (expired ones are reported for deletion).
        self.walk_find(t, zone, h, now, |id| {
            if !expired.contains(&id) {
                expired.push(id);
            }
            true
        })
        .flatten()
    }

    /// [`Table::find_hashed`] for the common walk that meets no expired node: the
    /// result, or `None` as soon as an expired node is met (the caller then walks again
    /// with [`Table::find_hashed`], which reports them for deletion).
    ///
    /// `hint`: [`NO_NODE`], or the node a tag walk of this bucket found
    /// ([`TagWalk::Tagged`]) since the last [`Table::forget_changes`]. While no node
    /// was linked into the bucket since, it is still the chain's first node with the
    /// tag, so if it is linked and holds the tuple, it is the match: the lookup checks
    /// its entry without scanning the group again.
    #[inline(always)]
    pub fn find_clean(
        &self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
        hint: u32,
    ) -> Option<Option<(EntryId, Dir)>> {
        let bucket = self.bucket_of_hash(h);
        if !self.none_expired(bucket, now) {
            return self.walk_find_cold(t, zone, h, now);
        }
        self.find_fresh(t, zone, h, bucket, hint)
    }

    /// [`Table::keep_bound`] then [`Table::find_clean`] (with its `hint`), the bucket
    /// found once: the lookup of a packet whose result may refresh an entry.
    #[inline(always)]
    pub fn find_kept(
        &mut self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
        hint: u32,
    ) -> Option<Option<(EntryId, Dir)>> {
        self.observe(now);
        let bucket = self.bucket_of_hash(h);
        if !self.none_expired(bucket, now) {
            // Renewed, then checked again: still passed when a node has expired.
            self.renew_bound(bucket, now);
            if !self.none_expired(bucket, now) {
                return self.walk_find_cold(t, zone, h, now);
            }
        }
        self.find_fresh(t, zone, h, bucket, hint)
    }

    /// The lookup in `bucket` (of hash `h`) when its group holds no node expired at
    /// the lookup's time.
    #[inline(always)]
    fn find_fresh(
        &self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        bucket: u32,
        hint: u32,
    ) -> Option<Option<(EntryId, Dir)>> {
        if hint != NO_NODE && self.unchanged_bucket(bucket) {
            if let Some(found) = self.linked_node_holds(hint, t, zone) {
                return Some(Some(found));
            }
        }
        // In a sparse table the group's newest node first (a scalar compare), then
        // every tagged one in chain order (the newest again among them only when it
        // carried the tag of another tuple).
        if self.sparse() {
            if let Some(node) = self.chains.newest_if_tagged(bucket, tag_of(h)) {
                if let Some(found) = self.node_holds(node, t, zone) {
                    return Some(Some(found));
                }
            }
        }
        for node in self.chains.tagged(bucket, tag_of(h)) {
            if let Some(found) = self.node_holds(node, t, zone) {
                return Some(Some(found));
            }
        }
        Some(None)
    }

    /// [`Table::node_holds`] of a node that may have left its chain since it was seen:
    /// also that the entry is linked in that direction.
    #[inline(always)]
    fn linked_node_holds(&self, node: u32, t: &Tuple, zone: Zone) -> Option<(EntryId, Dir)> {
        let (id, d) = (node / 2, (node & 1) as usize);
        let e = self.slots.get(id as usize)?.as_ref()?;
        let linked =
            e.status.has(Status::CONFIRMED) && (d == 1 || !e.status.has(Status::NAT_CLASH));
        (linked && e.has_tuple(DIRS[d], t) && e.zone.same_for(zone, DIRS[d]))
            .then_some((id, DIRS[d]))
    }

    /// Node `node`'s entry and direction if its tuple there is `t` in `zone`.
    #[inline(always)]
    fn node_holds(&self, node: u32, t: &Tuple, zone: Zone) -> Option<(EntryId, Dir)> {
        let (id, d) = (node / 2, (node & 1) as usize);
        let e = self.slots.get(id as usize)?.as_ref()?;
        (e.has_tuple(DIRS[d], t) && e.zone.same_for(zone, DIRS[d])).then_some((id, DIRS[d]))
    }

    /// [`Table::find_clean`] when the group's bound is not ahead of `now`.
    #[cold]
    #[inline(never)]
    fn walk_find_cold(
        &self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
    ) -> Option<Option<(EntryId, Dir)>> {
        self.walk_find(t, zone, h, now, |_| false)
    }

    /// The lookup walk of the bucket of hash `h`: each node's expiry is checked first
    /// and an expired one handed to `on_expired` (which says whether to go on; `None`
    /// when it stops the walk); the tag then rules out most non-matching nodes
    /// without comparing tuples.
    #[inline(always)]
    fn walk_find(
        &self,
        t: &Tuple,
        zone: Zone,
        h: u64,
        now: Instant,
        mut on_expired: impl FnMut(EntryId) -> bool,
    ) -> Option<Option<(EntryId, Dir)>> {
        let tag = tag_of(h);
        let bucket = self.bucket_of_hash(h);
        // No node of the group expired: only a node with the tag is read.
        let fresh = self.none_expired(bucket, now);
        for (node, ntag) in self.chains.chain(bucket) {
            if fresh && ntag != tag {
                continue;
            }
            let (id, d) = (node / 2, (node & 1) as usize);
            let Some(Some(e)) = self.slots.get(id as usize) else {
                continue;
            };
            if e.expired(now) {
                if !on_expired(id) {
                    return None;
                }
            } else if ntag == tag && e.has_tuple(DIRS[d], t) && e.zone.same_for(zone, DIRS[d]) {
                return Some(Some((id, DIRS[d])));
            }
        }
        Some(None)
    }

    /// One walk of the bucket of hash `h` for confirm: the chain's length, and the first
    /// unexpired node that `matches` (a predicate on its entry and direction, asked only
    /// of a node whose tag is `h`'s: nodes whose tag differs are counted without
    /// touching their entry), with its position in the chain (0 for the first node) —
    /// [`Table::chain_len`] and a lookup in one pass.
    #[inline(always)]
    pub fn probe_with(
        &self,
        h: u64,
        now: Instant,
        matches: impl Fn(&Entry, Dir) -> bool,
    ) -> (usize, Option<(EntryId, Dir, usize)>) {
        let tag = tag_of(h);
        let mut n = 0;
        let mut found = None;
        for (node, ntag) in self.chains.chain(self.bucket_of_hash(h)) {
            n += 1;
            let (id, d) = (node / 2, (node & 1) as usize);
            if found.is_none() && ntag == tag {
                if let Some(Some(e)) = self.slots.get(id as usize) {
                    if !e.expired(now) && matches(e, DIRS[d]) {
                        found = Some((id, DIRS[d], n - 1));
                    }
                }
            }
        }
        (n, found)
    }

    /// Confirm's walk of the bucket of hash `h` for a tuple that clashes with nothing:
    /// the chain's length, or `None` as soon as a node carries `h`'s tag (a possible
    /// clash, which [`Table::probe_with`] decides). Nodes are only counted, as the
    /// probe counts those whose tag differs.
    #[inline(always)]
    pub fn chain_len_untagged(&self, h: u64) -> Option<usize> {
        self.chains
            .len_if_untagged(self.bucket_of_hash(h), tag_of(h))
    }

    /// The nodes of a bucket, as (entry, direction).
    pub fn bucket_nodes(&self, bucket: u32) -> Vec<(EntryId, Dir)> {
        self.chain_nodes(bucket)
            .map(|(id, d)| (id, DIRS[d]))
            .collect()
    }

    /// Length of a bucket's chain.
    pub fn chain_len(&self, bucket: u32) -> usize {
        self.chains.chain_len(bucket)
    }

    /// Every linked (confirmed) entry id, in slab order.
    pub fn linked_ids(&self) -> Vec<EntryId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|e| e.status.has(Status::CONFIRMED)))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// A read prefetch hint; never faults (an address past the end is fine: it only feeds
/// the cache).
#[inline(always)]
pub(crate) fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 is a hint: it does not dereference `p` architecturally and
        // cannot fault, whatever the address; SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::Addr;
    use siphasher::sip::SipHasher13;
    use std::hash::Hasher;

    #[test]
    fn words_hasher_is_keyed_sip13_of_the_words() {
        let b = WordsHasher::new(42);
        let (k0, k1) = (b.k0, b.k1);
        assert_eq!(b.hash_words(&[1, 2, 3]), sip13(k0, k1, &[1, 2, 3]));
        assert_ne!(b.hash_words(&[1, 2, 3]), b.hash_words(&[1, 2, 4]));
        assert_ne!(
            b.hash_words(&[1, 2, 3]),
            WordsHasher::new(43).hash_words(&[1, 2, 3])
        );
    }

    #[test]
    fn sip13_on_words_equals_siphasher() {
        for n in 0..6 {
            let words: Vec<u64> = (0..n)
                .map(|i| 0x0123_4567_89ab_cdefu64.rotate_left(i * 7))
                .collect();
            let mut h = SipHasher13::new_with_keys(11, 22);
            for w in &words {
                h.write(&w.to_le_bytes());
            }
            assert_eq!(sip13(11, 22, &words), h.finish(), "{n} words");
        }
    }

    /// 10.0.0.1:1 -> 10.0.0.2:2, UDP.
    fn v4_udp() -> Tuple {
        Tuple {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 2]),
            src_u: 1,
            dst_u: 2,
            family: Family::V4,
            proto: 17,
        }
    }

    /// The inverse words are the words of the inverted tuple, for each port protocol,
    /// whatever the zone ids.
    #[test]
    fn inverse_words_are_the_inverted_tuples_words() {
        for proto in [6, 17, 132, 136] {
            let t = Tuple {
                dst: Addr::v4([192, 168, 7, 250]),
                src_u: 40000,
                dst_u: 443,
                proto,
                ..v4_udp()
            };
            let r = crate::conntrack::invert(&t).expect("ports invert");
            for (z, rz) in [(0, 0), (5, 9), (u16::MAX, 1)] {
                let w = FlowHasher::v4_words(&t, z);
                assert_eq!(
                    FlowHasher::v4_inverse_words(w, rz),
                    FlowHasher::v4_words(&r, rz)
                );
            }
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_the_zone() {
        let f = FlowHasher::new(7);
        let t = v4_udp();
        let h = f.hash(&t, 0);
        assert_ne!(h, f.hash(&t, 1));
        assert_ne!(h, f.hash(&Tuple { proto: 6, ..t }, 0));
        assert_ne!(h, f.hash(&Tuple { src_u: 3, ..t }, 0));
        assert_ne!(
            h,
            f.hash(
                &Tuple {
                    dst: Addr::v4([10, 0, 0, 3]),
                    ..t
                },
                0
            )
        );
        let v6 = Tuple {
            family: Family::V6,
            ..t
        };
        assert_ne!(h, f.hash(&v6, 0));
        assert_ne!(h, FlowHasher::new(8).hash(&t, 0));
    }

    #[test]
    fn reserved_table_works_and_counts_only_written_slots() {
        // 8 MiB of reserve: large enough to be advised to use huge pages.
        let mut t = Table::with_capacity(1024, 1, 1 << 16);
        let empty = t.memory_bytes();
        let e = |i: u8| {
            let tup = Tuple {
                src: Addr::v4([10, 0, 0, i]),
                dst: Addr::v4([10, 0, 0, 200]),
                src_u: 1000,
                dst_u: 53,
                family: Family::V4,
                proto: 17,
            };
            let rep = crate::conntrack::invert(&tup).expect("udp inverts");
            (tup, rep)
        };
        let mut ids = Vec::new();
        for i in 0..100u8 {
            let (o, r) = e(i);
            let mut entry = Entry::new([o, r], None);
            entry.deadline = Instant::from_nanos(1_000_000_000);
            entry.seq = u32::from(i);
            let id = t.alloc(entry);
            t.link(id);
            ids.push(id);
        }
        // Each entry's slot (the groups are there from the start).
        assert_eq!(t.memory_bytes() - empty, 100 * size_of::<Option<Entry>>());
        let now = Instant::from_nanos(1);
        let mut scratch = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let (o, r) = e(i as u8);
            let z = Zone::DEFAULT;
            assert_eq!(t.find(&o, z, now, &mut scratch), Some((id, Dir::Original)));
            assert_eq!(t.find(&r, z, now, &mut scratch), Some((id, Dir::Reply)));
            let h = t.hash(&r, 0);
            assert_eq!(walk_to_end(&t, h).0, TagWalk::Tagged(id * 2 + 1));
            let clash = |e: &Entry, d: Dir| e.has_tuple(d, &r) && e.zone.same_for(z, d);
            assert_eq!(
                t.probe_with(h, now, clash).1.map(|c| (c.0, c.1)),
                Some((id, Dir::Reply))
            );
            assert_eq!(
                t.find(&o, Zone::new(1), now, &mut scratch),
                None,
                "zone counts"
            );
            // A zone for the reply direction only leaves the original tuple in zone 0.
            let rz = Zone::one_way(1, Dir::Reply);
            assert_eq!(t.find(&o, rz, now, &mut scratch), Some((id, Dir::Original)));
            assert_eq!(t.find(&r, rz, now, &mut scratch), None);
        }
        assert!(scratch.is_empty());
        t.free(ids[0]);
        assert!(!t.is_linked(ids[0]));
        let (o, _) = e(0);
        assert_eq!(t.find(&o, Zone::DEFAULT, now, &mut scratch), None);
        let h = t.hash(&o, 0);
        assert!(walk_to_end(&t, h).0 == TagWalk::Absent || t.chain_len(t.bucket(&o, 0)) > 0);
    }

    #[test]
    fn same_tuple_is_tuple_equality() {
        let t = Tuple {
            src: Addr::v6([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            dst: Addr::v4([10, 0, 0, 2]),
            src_u: 1,
            dst_u: 2,
            family: Family::V6,
            proto: 17,
        };
        let mut variants = vec![t, Tuple { src_u: 3, ..t }, Tuple { dst_u: 3, ..t }];
        variants.push(Tuple { proto: 6, ..t });
        variants.push(Tuple {
            family: Family::V4,
            ..t
        });
        for i in 0..16 {
            let mut a = t;
            a.src.0[i] ^= 0x80;
            variants.push(a);
            let mut b = t;
            b.dst.0[i] ^= 1;
            variants.push(b);
        }
        for x in &variants {
            for y in &variants {
                assert_eq!(same_tuple(x, y), x == y, "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn an_entry_takes_its_own_size_in_the_slab() {
        assert_eq!(size_of::<Option<Entry>>(), 104);
    }

    /// A batch's tag walk of the bucket of `h`, run to its end (every other step as
    /// for a UDP packet): where it ended, and the steps it took.
    fn walk_to_end(t: &Table, h: u64) -> (TagWalk, usize) {
        let mut w = t.tag_walk_start(h);
        let mut steps = 0;
        while let TagWalk::At(_) = w {
            w = t.tag_step(w, h, steps % 2 == 0);
            steps += 1;
        }
        (w, steps)
    }

    /// A walk's node hints the lookup, which checks it: a hint of another entry, or of
    /// a slot reused since by an entry not linked under that tuple, is passed over
    /// for the chain's own answer.
    #[test]
    fn a_walk_hint_is_checked_not_trusted() {
        let mut t = Table::new(64, 9);
        // Timeouts known, links made at `now`: the groups' bounds are ahead of it, so
        // the lookups below take the fresh path, where the hint is used.
        t.set_timeouts(&crate::sysctl::Sysctls::default());
        let now = Instant::from_nanos(1);
        let z = Zone::DEFAULT;
        let tuple = |i: u16| Tuple {
            src_u: 1000 + i,
            ..v4_udp()
        };
        let mut ids = Vec::new();
        for i in 0..6 {
            let (o, r) = (
                tuple(i),
                crate::conntrack::invert(&tuple(i)).expect("inverts"),
            );
            let mut e = Entry::new([o, r], None);
            e.deadline = Instant::from_nanos(1_000_000_000);
            let id = t.alloc(e);
            t.link_hashed(id, [t.hash(&o, 0), t.hash(&r, 0)], Some(now));
            ids.push(id);
        }
        let (a, h) = (tuple(0), t.hash(&tuple(0), 0));
        assert!(t.none_expired(t.bucket_of_hash(h), now));
        let TagWalk::Tagged(node) = walk_to_end(&t, h).0 else {
            panic!("linked");
        };
        assert_eq!(node, ids[0] * 2);
        t.forget_changes();
        let found = Some(Some((ids[0], Dir::Original)));
        assert_eq!(t.find_clean(&a, z, h, now, node), found);
        assert_eq!(t.find_clean(&a, z, h, now, NO_NODE), found);
        for other in [ids[3] * 2, ids[3] * 2 + 1, 999] {
            assert_eq!(t.find_clean(&a, z, h, now, other), found, "hint {other}");
        }
        // Entry 0 freed; its slot taken by an entry with the same original tuple
        // linked under its reply tuple only (a NAT clash's loser): the hint's node is
        // not in any chain, so the lookup misses as the chain says.
        t.free(ids[0]);
        let r = Tuple {
            src_u: 7,
            ..crate::conntrack::invert(&a).expect("inverts")
        };
        let mut loser = Entry::new([a, r], None);
        loser.deadline = Instant::from_nanos(1_000_000_000);
        let id = t.alloc(loser);
        assert_eq!(id, ids[0], "the slot is reused");
        t.link_reply_only(id, t.hash(&r, 0), now);
        assert!(t.unchanged(h), "no link into the hint's bucket");
        assert_eq!(t.find_clean(&a, z, h, now, node), Some(None));
    }

    #[test]
    fn tag_walk_finds_every_linked_tuple_and_proves_misses() {
        // Two buckets for 40 connections: chains of ~40 nodes.
        let mut t = Table::new(2, 5);
        let tuple = |i: u16| Tuple {
            src_u: 1000 + i,
            dst_u: 53,
            ..v4_udp()
        };
        let walk = walk_to_end;
        assert_eq!(walk(&t, t.hash(&tuple(0), 0)), (TagWalk::Absent, 1));
        for i in 0..40 {
            let o = tuple(i);
            let r = crate::conntrack::invert(&o).expect("udp inverts");
            let id = t.alloc(Entry::new([o, r], None));
            t.link(id);
        }
        let mut longest = 0;
        for i in 0..40 {
            for (k, d) in [
                (tuple(i), 0u16),
                (crate::conntrack::invert(&tuple(i)).expect("inverts"), 0),
            ] {
                let (w, steps) = walk(&t, t.hash(&k, d));
                let TagWalk::Tagged(node) = w else {
                    panic!("{k:?}: {w:?}");
                };
                let dir = DIRS[(node & 1) as usize];
                assert!(t.get(node / 2).is_some_and(|e| e.has_tuple(dir, &k)));
                longest = longest.max(steps);
            }
        }
        assert!(longest >= 1, "{longest}");
        // Tuples never linked: the walk ends at the chain's end (a 14-bit tag
        // collision among 80 nodes would make it Tagged; not with this seed).
        for i in 100..140 {
            let h = t.hash(&tuple(i), 0);
            assert_eq!(walk(&t, h).0, TagWalk::Absent);
        }
        // A state other than `At` stays as it is.
        for w in [TagWalk::Tagged(5), TagWalk::Absent, TagWalk::Unknown] {
            assert_eq!(t.tag_step(w, 7, true), w);
        }
    }

    #[test]
    fn prefetch_accepts_any_hash() {
        let t = Table::new(1024, 1);
        for h in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
            t.prefetch(h);
            let n = t.prefetch_first(h);
            assert_eq!(t.prefetch_next(n), NIL);
        }
        assert_eq!(t.prefetch_next(12345), NIL);
    }
}
