//! The conntrack hash table (kernel `nf_conntrack_hash`): an array of bucket heads, each
//! a chain of nodes; every confirmed entry is linked twice, under its original tuple and
//! under its reply tuple (one node per direction). Unconfirmed entries live in the slab
//! but are not linked, so lookups do not find them — exactly like the kernel's
//! unconfirmed list.
//!
//! Bucket-local behaviour the kernel has (early drop scans 8 buckets from the new
//! tuple's bucket; a per-bucket chain limit at confirm) falls out of the same layout.
//! The hash is keyed SipHash-1-3 over the tuple bytes and the zone id, reduced to a
//! bucket as the kernel does: `(hash32 * size) >> 32`.

use crate::entry::Entry;
use crate::sip_lanes;
use crate::time::Instant;
use crate::tuple::{Dir, Family, Tuple};
use crate::zone::Zone;

const NIL: u32 = u32::MAX;

/// Node direction by its low bit.
const DIRS: [Dir; 2] = [Dir::Original, Dir::Reply];

/// The most entries [`Table::with_capacity`] reserves ahead (768 MiB of address space):
/// beyond that the slab grows on demand.
const MAX_RESERVE: u32 = 1 << 22;

/// Handle of an entry in the table (slab index). Valid until the entry is freed.
pub type EntryId = u32;

/// One slab slot: the chain links and hash tags of both nodes first, then the entry,
/// whose first 28 bytes are what a chain walk reads (deadline, compact original tuple,
/// zone, family, protocol; see `entry.rs`). 120 bytes, 8-byte aligned: with the
/// bucket heads a connection takes ~124 bytes (issue 6: ≤ 128). Slots are not
/// cache-line aligned (that would round them to 128 bytes, 132 all in): a walk reads
/// the slot's first 44 bytes, which share one line in 3 slots of 8 and span two in the
/// rest.
#[repr(C)]
struct Slot {
    /// Next node in the chain, per direction (node = id * 2 + dir).
    next: [u32; 2],
    /// Per direction, [`tag_of`] the tuple's keyed hash while linked; 0 when not linked
    /// (so `tag[0] != 0` is the "linked" flag).
    tag: [u32; 2],
    entry: Option<Entry>,
}

// 120 bytes per slot: with the bucket heads, ≤ 128 bytes per connection (issue 6).
const _: () = assert!(size_of::<Slot>() == 120);

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

/// The 32-bit tag kept beside a chain link: the low half of the keyed hash (the bucket
/// comes from the high half), with bit 0 set so a linked node's tag is never 0. Equal
/// tuples in one zone have equal hashes, so a tag mismatch proves a node does not match.
#[inline(always)]
fn tag_of(h: u64) -> u32 {
    h as u32 | 1
}

// The prefetches count on it (see `BY_SECOND_LINE`).
const _: () = assert!(align_of::<Slot>() == 8 && size_of::<Slot>().is_multiple_of(8));

/// A slot's first bytes that end in the line of its byte 64 wherever it starts (slots
/// start 8-aligned): the prefetch of byte 64 covers them, and no third is needed.
const BY_SECOND_LINE: usize = 64 + align_of::<Slot>();

/// Bytes of a slot a chain walk reads of every node it meets: the links, the tags, the
/// entry's deadline and the start of its tuples (`Option<Entry>`'s discriminant, which
/// the lookup reads first).
const LINK_BYTES: usize = 32;

/// Bytes of a slot a UDP hit reads and writes: up to the end of the L4 state's first
/// 16 bytes (the variant's tag and the UDP state, pinned by `entry_size_is_bounded`).
pub const UDP_HIT_BYTES: usize = 16 + 40 + 16;

/// The original-direction tag of a reply-only entry ([`Table::link_reply_only`]):
/// non-zero (linked) but even, so no real tag equals it.
const FAKE_TAG: u32 = 2;

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
    /// At this node (its link bytes requested), not yet looked at.
    At(u32),
    /// A node carries the hash's tag (its slot requested): a likely hit.
    Tagged,
    /// No node carries the tag: the lookup will miss (unless an earlier packet of
    /// the batch links the tuple first).
    Absent,
    /// Not known (the walk stopped early).
    Unknown,
}

/// The table: bucket heads plus a slab of entries.
pub struct Table {
    heads: Vec<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    hasher: FlowHasher,
    /// Allocated entries, including unconfirmed ones (kernel `nf_conntrack_count`).
    count: u32,
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
    /// address space only until an entry is written there.
    pub fn with_capacity(buckets: u32, seed: u64, entries: u32) -> Table {
        let slots: Vec<Slot> = Vec::with_capacity(entries.min(MAX_RESERVE) as usize);
        advise_huge_pages(
            slots.as_ptr().cast::<u8>(),
            slots.capacity() * size_of::<Slot>(),
        );
        Table {
            heads: vec![NIL; buckets.max(1) as usize],
            slots,
            free: Vec::new(),
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
        self.heads.len() as u32
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
        ((u64::from(h32) * self.heads.len() as u64) >> 32) as u32
    }

    /// Bytes of heap the table holds: bucket heads, the slab slots written so far
    /// (free ones included; the reserve beyond them is untouched address space, never
    /// resident), the free list, boxed entry extensions and the boxed tuples of wide
    /// entries (IPv6, NATed).
    pub fn memory_bytes(&self) -> usize {
        let entries = || self.slots.iter().filter_map(|s| s.entry.as_ref());
        let ext = entries().filter(|e| e.ext.is_some()).count()
            * size_of::<crate::entry::Extensions>()
            + entries().filter(|e| e.is_wide()).count() * Entry::WIDE_BYTES;
        self.heads.capacity() * size_of::<u32>()
            + self.slots.len() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + ext
    }

    /// Store a new (unconfirmed, unlinked) entry; counts it. Inline, so that an entry
    /// built in the call is written straight into its slot.
    #[inline(always)]
    pub fn alloc(&mut self, entry: Entry) -> EntryId {
        self.count += 1;
        let slot = Slot {
            next: [NIL; 2],
            tag: [0; 2],
            entry: Some(entry),
        };
        if let Some(id) = self.free.pop() {
            self.slots[id as usize] = slot;
            id
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        }
    }

    /// Free an entry (unlinking it first if needed) and return it.
    pub fn free(&mut self, id: EntryId) -> Option<Entry> {
        self.unlink(id);
        let e = self.slots.get_mut(id as usize)?.entry.take()?;
        self.free.push(id);
        self.count -= 1;
        Some(e)
    }

    /// The entry of `id`.
    #[inline]
    pub fn get(&self, id: EntryId) -> Option<&Entry> {
        self.slots.get(id as usize)?.entry.as_ref()
    }

    /// The entry of `id`, mutable.
    #[inline]
    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.slots.get_mut(id as usize)?.entry.as_mut()
    }

    /// Whether `id` is linked (confirmed and in the hash).
    #[inline]
    pub fn is_linked(&self, id: EntryId) -> bool {
        self.slots.get(id as usize).is_some_and(|s| s.tag[0] != 0)
    }

    /// Link both tuples of `id` into their buckets (confirm).
    pub fn link(&mut self, id: EntryId) {
        let Some(e) = self.get(id) else { return };
        let h = [
            self.hash(&e.tuple(Dir::Original), e.zone.id_for(Dir::Original)),
            self.hash(&e.tuple(Dir::Reply), e.zone.id_for(Dir::Reply)),
        ];
        self.link_hashed(id, h);
    }

    /// Link both tuples of `id` with their hashes already computed (`h[dir]` must be
    /// [`Table::hash`] of the entry's tuple of that direction with its zone's id for that
    /// direction).
    #[inline(always)]
    pub fn link_hashed(&mut self, id: EntryId, h: [u64; 2]) {
        if self.get(id).is_none() {
            return;
        }
        for (dir, &h) in h.iter().enumerate() {
            let node = id * 2 + dir as u32;
            let b = self.bucket_of_hash(h) as usize;
            self.note_change(b as u32);
            let head = &mut self.heads[b];
            let slot = &mut self.slots[id as usize];
            slot.next[dir] = *head;
            slot.tag[dir] = tag_of(h);
            *head = node;
        }
    }

    /// Link only the reply tuple of `id` (hash `h_reply`); the original node is a fake
    /// that no chain holds (kernel `hlist_nulls_add_fake`), so original-direction
    /// lookups keep finding the entry already there and listings skip this one: the
    /// loser of a NAT clash (`nf_ct_resolve_clash_harder`). It still counts as linked
    /// (confirmed), the GC sees it, and it expires.
    pub fn link_reply_only(&mut self, id: EntryId, h_reply: u64) {
        if self.get(id).is_none() {
            return;
        }
        let b = self.bucket_of_hash(h_reply) as usize;
        self.note_change(b as u32);
        let head = self.heads[b];
        let slot = &mut self.slots[id as usize];
        slot.next = [NIL, head];
        slot.tag = [FAKE_TAG, tag_of(h_reply)];
        self.heads[b] = id * 2 + 1;
    }

    /// Whether `id` is linked under its original tuple (not a reply-only clash entry):
    /// what `conntrack -L` and /proc list.
    pub fn is_listed(&self, id: EntryId) -> bool {
        self.slots
            .get(id as usize)
            .is_some_and(|s| s.tag[0] & 1 == 1)
    }

    /// Remove both nodes of `id` from their chains.
    pub fn unlink(&mut self, id: EntryId) {
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        if slot.tag[0] == 0 {
            return;
        }
        let Some(e) = slot.entry.as_ref() else { return };
        let b = [
            self.bucket(&e.tuple(Dir::Original), e.zone.id_for(Dir::Original)),
            self.bucket(&e.tuple(Dir::Reply), e.zone.id_for(Dir::Reply)),
        ];
        let fake_orig = slot.tag[0] == FAKE_TAG;
        for (dir, &bucket) in b.iter().enumerate() {
            if dir == 0 && fake_orig {
                continue;
            }
            let node = id * 2 + dir as u32;
            let mut cur = self.heads[bucket as usize];
            let mut prev = NIL;
            while cur != NIL {
                let next = self.slots[(cur / 2) as usize].next[(cur & 1) as usize];
                if cur == node {
                    if prev == NIL {
                        self.heads[bucket as usize] = next;
                    } else {
                        self.slots[(prev / 2) as usize].next[(prev & 1) as usize] = next;
                    }
                    break;
                }
                prev = cur;
                cur = next;
            }
        }
        self.slots[id as usize].tag = [0; 2];
        self.slots[id as usize].next = [NIL; 2];
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

    /// Hint the CPU to fetch the head of the bucket of hash `h` (batch lookups).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        let b = self.bucket_of_hash(h) as usize;
        prefetch_read(self.heads.as_ptr().wrapping_add(b));
    }

    /// Hint the CPU to fetch the first node of the bucket of hash `h` (second stage of
    /// a batch lookup, once the head is in cache); returns that node for the next stage.
    #[inline]
    pub fn prefetch_first(&self, h: u64) -> u32 {
        let head = self.heads[self.bucket_of_hash(h) as usize];
        self.prefetch_node(head);
        head
    }

    /// Hint the CPU to fetch the node after `node` in its chain (third stage of a batch
    /// lookup, once `node`'s slot is in cache); returns it.
    #[inline]
    pub fn prefetch_next(&self, node: u32) -> u32 {
        if node == NIL {
            return NIL;
        }
        let next = self
            .slots
            .get((node / 2) as usize)
            .map_or(NIL, |s| s.next[(node & 1) as usize]);
        self.prefetch_node(next);
        next
    }

    /// Hint the CPU to fetch entry `id`'s slot.
    #[inline]
    pub fn prefetch_entry(&self, id: EntryId) {
        self.prefetch_node(id.wrapping_mul(2));
    }

    /// The first step of a batch's tag walk of the bucket of hash `h` (the head
    /// fetched by [`Table::prefetch`]): the chain's first node, whose link bytes are
    /// requested; [`Table::tag_step`] then looks at it once they have had time to come.
    #[inline]
    pub fn tag_walk_start(&self, h: u64) -> TagWalk {
        let node = self.heads[self.bucket_of_hash(h) as usize];
        self.prefetch_link(node);
        if node == NIL {
            TagWalk::Absent
        } else {
            TagWalk::At(node)
        }
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
        let bit = self.bucket_of_hash(h) % CHANGE_BITS;
        self.changed[(bit / 64) as usize] >> (bit % 64) & 1 == 0
    }

    /// One step of a batch's tag walk for hash `h` (spread over rounds so each node's
    /// line has time to arrive): at
    /// `TagWalk::At(node)`, a node carrying `h`'s tag ends the walk with the rest of
    /// its slot requested (what a hit reads and updates: the whole slot, or for a UDP
    /// packet, `udp`, only its first [`UDP_HIT_BYTES`]); the chain's end proves that
    /// no linked tuple has this hash; otherwise the walk moves on to the next node,
    /// whose link bytes are requested. Any other state stays as it is.
    #[inline]
    pub fn tag_step(&self, walk: TagWalk, h: u64, udp: bool) -> TagWalk {
        self.tag_step_until(walk, h, udp, None)
    }

    /// [`Table::tag_step`] that also gives up (`Unknown`) on meeting a node expired at
    /// `now`, when given: its `Absent` then also proves that the chain held no expired
    /// node, so a lookup there would miss without deleting any (a burst round's
    /// proof, see `batch.rs`).
    #[inline(always)]
    pub fn tag_step_until(
        &self,
        walk: TagWalk,
        h: u64,
        udp: bool,
        now: Option<Instant>,
    ) -> TagWalk {
        let TagWalk::At(node) = walk else {
            return walk;
        };
        let Some(slot) = self.slots.get((node / 2) as usize) else {
            return TagWalk::Unknown;
        };
        let d = (node & 1) as usize;
        if slot.tag[d] == tag_of(h) {
            let end = if udp {
                UDP_HIT_BYTES
            } else {
                size_of::<Slot>()
            };
            // The link line is in (the walk just read it): the rest of the slot.
            let p = (slot as *const Slot).cast::<u8>();
            prefetch_read(p.wrapping_add(64));
            if end > BY_SECOND_LINE {
                prefetch_read(p.wrapping_add(end - 1));
            }
            return TagWalk::Tagged;
        }
        if let Some(now) = now {
            // The deadline is among the link bytes the walk fetched.
            if slot.entry.as_ref().is_none_or(|e| e.expired(now)) {
                return TagWalk::Unknown;
            }
        }
        let next = slot.next[d];
        if next == NIL {
            return TagWalk::Absent;
        }
        self.prefetch_link(next);
        TagWalk::At(next)
    }

    /// The walk's first bytes of a node's slot: links, tags and the entry's deadline
    /// (one line, two when the slot starts late in a line).
    #[inline]
    fn prefetch_link(&self, node: u32) {
        self.prefetch_slot(node, LINK_BYTES);
    }

    /// Prefetch every cache line of a node's slot (2 or 3 lines: the slot is not
    /// line-aligned): the walk reads its head, a hit then the L4 state at its end.
    #[inline]
    fn prefetch_node(&self, node: u32) {
        self.prefetch_slot(node, size_of::<Slot>());
    }

    /// Prefetch the lines of a node's slot's first `bytes` bytes (at most the slot).
    #[inline]
    fn prefetch_slot(&self, node: u32, bytes: usize) {
        if node == NIL {
            return;
        }
        let p = self
            .slots
            .as_ptr()
            .wrapping_add((node / 2) as usize)
            .cast::<u8>();
        prefetch_read(p);
        if bytes > 64 {
            prefetch_read(p.wrapping_add(64));
        }
        if bytes <= 64 || bytes > BY_SECOND_LINE {
            prefetch_read(p.wrapping_add(bytes - 1));
        }
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
    #[inline]
    pub fn find_clean(
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
        let mut cur = self.heads[self.bucket_of_hash(h) as usize];
        while cur != NIL {
            let id = cur / 2;
            let d = (cur & 1) as usize;
            let slot = &self.slots[id as usize];
            if let Some(e) = slot.entry.as_ref() {
                if e.expired(now) {
                    if !on_expired(id) {
                        return None;
                    }
                } else if slot.tag[d] == tag
                    && e.has_tuple(DIRS[d], t)
                    && e.zone.same_for(zone, DIRS[d])
                {
                    return Some(Some((id, DIRS[d])));
                }
            }
            cur = slot.next[d];
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
        let mut cur = self.heads[self.bucket_of_hash(h) as usize];
        while cur != NIL {
            n += 1;
            let id = cur / 2;
            let d = (cur & 1) as usize;
            let slot = &self.slots[id as usize];
            if found.is_none() && slot.tag[d] == tag {
                if let Some(e) = slot.entry.as_ref() {
                    if !e.expired(now) && matches(e, DIRS[d]) {
                        found = Some((id, DIRS[d], n - 1));
                    }
                }
            }
            cur = slot.next[d];
        }
        (n, found)
    }

    /// Confirm's walk of the bucket of hash `h` for a tuple that clashes with nothing:
    /// the chain's length, or `None` as soon as a node carries `h`'s tag (a possible
    /// clash, which [`Table::probe_with`] decides). Nodes are only counted, as the
    /// probe counts those whose tag differs.
    #[inline(always)]
    pub fn chain_len_untagged(&self, h: u64) -> Option<usize> {
        let tag = tag_of(h);
        let mut n = 0;
        let mut cur = self.heads[self.bucket_of_hash(h) as usize];
        while cur != NIL {
            let slot = self.slots.get((cur / 2) as usize)?;
            let d = (cur & 1) as usize;
            if slot.tag[d] == tag {
                return None;
            }
            n += 1;
            cur = slot.next[d];
        }
        Some(n)
    }

    /// The nodes of a bucket, as (entry, direction).
    pub fn bucket_nodes(&self, bucket: u32) -> Vec<(EntryId, Dir)> {
        let mut out = Vec::new();
        let mut cur = self.heads.get(bucket as usize).copied().unwrap_or(NIL);
        while cur != NIL {
            let dir = if cur & 1 == 0 {
                Dir::Original
            } else {
                Dir::Reply
            };
            out.push((cur / 2, dir));
            cur = self.slots[(cur / 2) as usize].next[dir.index()];
        }
        out
    }

    /// Length of a bucket's chain.
    pub fn chain_len(&self, bucket: u32) -> usize {
        let mut n = 0;
        let mut cur = self.heads.get(bucket as usize).copied().unwrap_or(NIL);
        while cur != NIL {
            n += 1;
            cur = self.slots[(cur / 2) as usize].next[(cur & 1) as usize];
        }
        n
    }

    /// Every linked (confirmed) entry id, in slab order.
    pub fn linked_ids(&self) -> Vec<EntryId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tag[0] != 0 && s.entry.is_some())
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// Ask the kernel to back `[p, p + len)` (a reserve we own) with transparent huge
/// pages where it can: a table of a million entries then takes ~100 page faults
/// instead of ~50,000, and random lookups miss the TLB far less. Ranges under 4 MiB
/// are left alone; any failure (THP disabled, not Linux) only leaves small pages.
fn advise_huge_pages(p: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    const PAGE: usize = 4096;
    if len < 2 * HUGE {
        return;
    }
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + len) & !(PAGE - 1);
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `[start, end)` lies inside an allocation the caller owns (a Vec's
    // reserved capacity, page-rounded inwards). MADV_HUGEPAGE only changes how the
    // kernel backs those pages; it never changes their contents or their validity, so
    // no Rust invariant depends on it, and its result is deliberately ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
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
        assert_eq!(t.memory_bytes() - empty, 100 * size_of::<Slot>());
        let now = Instant::from_nanos(1);
        let mut scratch = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let (o, r) = e(i as u8);
            let z = Zone::DEFAULT;
            assert_eq!(t.find(&o, z, now, &mut scratch), Some((id, Dir::Original)));
            assert_eq!(t.find(&r, z, now, &mut scratch), Some((id, Dir::Reply)));
            let h = t.hash(&r, 0);
            assert_eq!(walk_to_end(&t, h).0, TagWalk::Tagged);
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
    fn slot_is_120_bytes() {
        assert_eq!(size_of::<Slot>(), 120);
        assert_eq!(align_of::<Slot>(), 8);
        // The walk's fields: links and tags, then the entry's deadline, compact key,
        // zone, family and protocol, all in the slot's first 44 bytes.
        assert_eq!(core::mem::offset_of!(Slot, entry), 16);
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
        assert_eq!(walk(&t, t.hash(&tuple(0), 0)), (TagWalk::Absent, 0));
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
                assert_eq!(w, TagWalk::Tagged, "{k:?}");
                longest = longest.max(steps);
            }
        }
        assert!(longest > 10, "{longest}");
        // Tuples never linked: the walk ends at the chain's end (a 32-bit tag
        // collision among 80 nodes would make it Tagged; not with this seed).
        for i in 100..140 {
            let h = t.hash(&tuple(i), 0);
            assert_eq!(walk(&t, h).0, TagWalk::Absent);
        }
        // A state other than `At` stays as it is.
        for w in [TagWalk::Tagged, TagWalk::Absent, TagWalk::Unknown] {
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
