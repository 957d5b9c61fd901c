//! The kernel's hash chains kept in grouped bucket lines (issue 6, the `live` row): an
//! index whose lookup reads one cache line for the nodes of a bucket's chain, instead
//! of one line per node as a linked chain through the entries does.
//!
//! Each 64-byte [`Group`] holds the chains of [`BUCKETS_PER_GROUP`] consecutive
//! buckets: up to [`CELLS`] nodes, each a node id (`entry id * 2 + direction`) and a
//! 16-bit key — the node's bucket slot in the group (2 bits) and a 14-bit hash tag —
//! the newest first. A bucket's chain (the newest first, as `hlist_nulls_add_head_rcu`
//! links them) is its cells in order. A full group hands its oldest cell on to an
//! overflow group of the same shape (as that group's newest), so every cell of an
//! overflow group is older than every cell of the group before it, and a bucket's
//! chain goes on there. So everything the kernel's chains decide stays decidable in
//! the same order — a lookup's first match and the expired nodes in front of it, early
//! drop's scan of a chain, confirm's chain length — while a lookup's compare of a key
//! matches bucket and tag at once (eight cells in one vector compare), and the group's
//! newest node sits at a fixed place (a sparse table's lookup tries it first).
//!
//! The group also keeps a lower bound of its nodes' deadlines (in the caller's coarse
//! time units; 0 for none known), which lets a lookup pass the nodes in front of its
//! match without reading their entries while the bound is ahead of its time. The
//! caller keeps the bound true: lowered when a node is linked or a deadline drops
//! below it, raised only from a scan of the whole group
//! ([`GroupedChains::for_each_in_group`]).

use crate::huge::HugeArray;

/// Buckets whose chains share a group: with the kernel's default of one connection
/// (two nodes) a bucket at a full table, eight nodes a group on average.
pub const BUCKETS_PER_GROUP: usize = 4;

/// One overflow group reserved ahead for this many groups.
const OVERFLOW_RESERVE: usize = 4;

/// Node cells in a group.
pub const CELLS: usize = 9;

/// Bits of a node's hash tag kept in its cell (the rest of the key is its bucket slot).
pub const TAG_BITS: u32 = 14;

/// The tag bits of a hash tag.
const TAG_MASK: u16 = (1 << TAG_BITS) - 1;

/// No group (an overflow link's end).
const NONE: u32 = u32::MAX;

/// One cache line of chains.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Group {
    /// Node ids, the newest first.
    nodes: [u32; CELLS],
    /// Per cell, the node's bucket slot in the group (high bits) and hash tag.
    keys: [u16; CELLS],
    /// Cells in use.
    used: u8,
    /// In a main group, a lower bound of every node's deadline in it and its overflow
    /// groups, in the caller's coarse units (0: none known; `u32::MAX` for a group that
    /// never held a node). Not used in an overflow group.
    alive: u32,
    /// The overflow group (an index into the overflow pool), or [`NONE`].
    more: u32,
}

const _: () = assert!(size_of::<Group>() == 64);
const _: () = assert!(BUCKETS_PER_GROUP <= 1 << (16 - TAG_BITS));

/// The key of a node of bucket slot `j` with hash tag `tag`.
#[inline(always)]
fn key(j: usize, tag: u16) -> u16 {
    (j as u16) << TAG_BITS | tag & TAG_MASK
}

impl Group {
    const EMPTY: Group = Group {
        nodes: [0; CELLS],
        keys: [0; CELLS],
        used: 0,
        // No node: every node's deadline is above any bound.
        alive: u32::MAX,
        more: NONE,
    };

    /// The cells in use, as (nodes, keys).
    #[inline(always)]
    fn cells(&self) -> (&[u32], &[u16]) {
        let n = usize::from(self.used).min(CELLS);
        (&self.nodes[..n], &self.keys[..n])
    }

    /// Put a cell first (the newest), the others moving one place on (the group must
    /// have a free one).
    #[inline(always)]
    fn push_newest(&mut self, node: u32, key: u16) {
        // Every cell moves (a fixed-size copy: no call), the unused last one dropped.
        self.nodes.copy_within(..CELLS - 1, 1);
        self.keys.copy_within(..CELLS - 1, 1);
        (self.nodes[0], self.keys[0]) = (node, key);
        self.used += 1;
    }

    /// Append a cell (the oldest; the group must have a free one).
    #[inline(always)]
    fn push_oldest(&mut self, node: u32, key: u16) {
        let n = usize::from(self.used);
        if let (Some(a), Some(b)) = (self.nodes.get_mut(n), self.keys.get_mut(n)) {
            (*a, *b) = (node, key);
            self.used += 1;
        }
    }

    /// Take the last cell (the oldest).
    #[inline(always)]
    fn pop_oldest(&mut self) -> Option<(u32, u16)> {
        let last = usize::from(self.used).checked_sub(1)?;
        let cell = (*self.nodes.get(last)?, *self.keys.get(last)?);
        self.used -= 1;
        Some(cell)
    }

    /// Take the first cell (the newest).
    #[inline(always)]
    fn pop_newest(&mut self) -> Option<(u32, u16)> {
        if self.used == 0 {
            return None;
        }
        let cell = (self.nodes[0], self.keys[0]);
        self.remove_at(0);
        Some(cell)
    }

    /// Remove cell `at`, the later ones moving one place down (order kept).
    #[inline(always)]
    fn remove_at(&mut self, at: usize) {
        let n = usize::from(self.used).min(CELLS);
        for i in at..n.saturating_sub(1) {
            if let (Some(&a), Some(&b)) = (self.nodes.get(i + 1), self.keys.get(i + 1)) {
                self.nodes[i] = a;
                self.keys[i] = b;
            }
        }
        self.used = self.used.saturating_sub(1);
    }
}

/// The high bit of each 16-bit lane of a word.
const LANE_HIGH: u64 = 0x8000_8000_8000_8000;

/// A lane's bit `k` moved to bit `48 + lane`, for the four lanes' bits `0, 16, 32, 48`
/// (no two partial products meet, so nothing carries).
const LANE_GATHER: u64 = 1 << 48 | 1 << 33 | 1 << 18 | 1 << 3;

/// Bit `i` set where 16-bit lane `i` of `x` is zero (exact: no borrow crosses lanes).
#[inline(always)]
fn zero_lanes(x: u64) -> u32 {
    let low = !LANE_HIGH;
    // A lane's high bit: set when any of its bits is.
    let nonzero = ((x & low).wrapping_add(low)) | x;
    let zero = !(nonzero | low);
    ((zero >> 15).wrapping_mul(LANE_GATHER) >> 48) as u32 & 0xF
}

/// Four keys from `at` as the lanes of a word.
#[inline(always)]
fn key_word(keys: &[u16; CELLS], at: usize) -> u64 {
    let k = |i: usize| keys.get(at + i).map_or(0, |&k| u64::from(k));
    k(0) | k(1) << 16 | k(2) << 32 | k(3) << 48
}

// `Group::lanes` compares the keys as two words and one more.
const _: () = assert!(CELLS == 9);

impl Group {
    /// The cells in use whose key agrees with `want` on the bits of `care`, as bit `i`
    /// for cell `i`: eight keys compared at once in a vector register, then the ninth.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn lanes(&self, want: u16, care: u16) -> u32 {
        use core::arch::x86_64::*;
        let k = |i: usize| self.keys[i] as i16;
        // SAFETY: these intrinsics only compute on values (no pointer), and need SSE2,
        // which every x86_64 CPU has (it is part of the target's baseline, enabled in
        // every x86_64 build). `lanes_match_each_cell` checks the result.
        let eight = unsafe {
            let keys = _mm_set_epi16(k(7), k(6), k(5), k(4), k(3), k(2), k(1), k(0));
            let differ = _mm_and_si128(
                _mm_xor_si128(keys, _mm_set1_epi16(want as i16)),
                _mm_set1_epi16(care as i16),
            );
            let equal = _mm_cmpeq_epi16(differ, _mm_setzero_si128());
            // Each lane's all-ones or zero narrowed to a byte, one bit a lane.
            _mm_movemask_epi8(_mm_packs_epi16(equal, equal)) as u32 & 0xFF
        };
        self.with_last(eight, want, care)
    }

    /// [`Group::lanes`] on targets without SSE2: the keys as the lanes of two words.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn lanes(&self, want: u16, care: u16) -> u32 {
        self.lanes_in_words(want, care)
    }

    /// [`Group::lanes`] in word operations (no vector unit): four keys a word.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn lanes_in_words(&self, want: u16, care: u16) -> u32 {
        let spread = |v: u16| u64::from(v) * 0x0001_0001_0001_0001;
        let (w, c) = (spread(want), spread(care));
        let low = zero_lanes((key_word(&self.keys, 0) ^ w) & c);
        let high = zero_lanes((key_word(&self.keys, 4) ^ w) & c);
        self.with_last(low | high << 4, want, care)
    }

    /// The lanes of the first eight cells, `eight`, with the ninth's, limited to the
    /// cells in use.
    #[inline(always)]
    fn with_last(&self, eight: u32, want: u16, care: u16) -> u32 {
        let last = u32::from((self.keys[8] ^ want) & care == 0);
        let used = (1u32 << usize::from(self.used).min(CELLS)) - 1;
        (eight | last << 8) & used
    }
}

/// The cells of a group and of its overflow groups after it whose key agrees with
/// `want` on the bits of `care`, newest first, as (node, key): with `care` 0 every
/// cell (each bucket's chain order, the buckets' cells interleaved), with the slot
/// bits one bucket's chain, with all bits one bucket's nodes of one tag.
#[derive(Debug, Clone)]
struct Cells<'a> {
    overflow: &'a [Group],
    /// The current group.
    group: &'a Group,
    /// The current group's matching cells not yet given.
    mask: u32,
    want: u16,
    care: u16,
}

impl<'a> Cells<'a> {
    /// From group `g` (none: no cell).
    #[inline(always)]
    fn from(overflow: &'a [Group], g: Option<&'a Group>, want: u16, care: u16) -> Cells<'a> {
        let group = g.unwrap_or(&Group::EMPTY);
        Cells {
            overflow,
            group,
            mask: group.lanes(want, care),
            want,
            care,
        }
    }

    /// Move to the next overflow group (`false` at the end).
    #[inline(always)]
    fn advance(&mut self) -> bool {
        let Some(g) = self.overflow.get(self.group.more as usize) else {
            return false;
        };
        self.group = g;
        self.mask = g.lanes(self.want, self.care);
        true
    }
}

impl Iterator for Cells<'_> {
    type Item = (u32, u16);

    #[inline(always)]
    fn next(&mut self) -> Option<(u32, u16)> {
        while self.mask == 0 {
            if !self.advance() {
                return None;
            }
        }
        let i = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some((*self.group.nodes.get(i)?, *self.group.keys.get(i)?))
    }
}

/// A bucket's chain in order ([`GroupedChains::chain`]): (node, tag) of each.
#[derive(Debug, Clone)]
pub struct Chain<'a> {
    cells: Cells<'a>,
}

impl Iterator for Chain<'_> {
    type Item = (u32, u16);

    #[inline]
    fn next(&mut self) -> Option<(u32, u16)> {
        self.cells.next().map(|(n, k)| (n, k & TAG_MASK))
    }
}

/// The nodes of a bucket's chain that carry a tag, in chain order
/// ([`GroupedChains::tagged`]).
#[derive(Debug, Clone)]
pub struct Tagged<'a> {
    cells: Cells<'a>,
}

impl Iterator for Tagged<'_> {
    type Item = u32;

    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        self.cells.next().map(|(n, _)| n)
    }
}

/// The chains of a table's buckets in groups (see the module doc).
#[derive(Debug, Clone)]
pub struct GroupedChains {
    groups: HugeArray<Group>,
    /// Overflow groups, linked from a group's `more`.
    overflow: Vec<Group>,
    /// Free overflow groups.
    free: Vec<u32>,
    buckets: u32,
}

/// Where a group lives: a main group or an overflow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Main(usize),
    More(usize),
}

impl GroupedChains {
    /// Empty chains for `buckets` buckets.
    pub fn new(buckets: u32) -> GroupedChains {
        let buckets = buckets.max(1);
        let n = (buckets as usize).div_ceil(BUCKETS_PER_GROUP);
        // Overflow groups reserved for a full table (a quarter of the groups: ~24 %
        // overflow at one connection a bucket), address space until used, on huge
        // pages like the groups; the pool still grows past it if it must.
        let overflow: Vec<Group> = Vec::with_capacity(n / OVERFLOW_RESERVE);
        crate::huge::advise(
            overflow.as_ptr().cast::<u8>(),
            overflow.capacity() * size_of::<Group>(),
        );
        GroupedChains {
            // On huge pages where the kernel gives them: a lookup's group is a random
            // line in megabytes of them.
            groups: HugeArray::new(n, Group::EMPTY),
            overflow,
            free: Vec::new(),
            buckets,
        }
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// Number of (main) groups.
    #[inline(always)]
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The group of `bucket`, and the bucket's slot in it.
    #[inline(always)]
    fn place(bucket: u32) -> (usize, usize) {
        let b = bucket as usize;
        (b / BUCKETS_PER_GROUP, b % BUCKETS_PER_GROUP)
    }

    fn group(&self, at: At) -> &Group {
        match at {
            At::Main(i) => &self.groups[i],
            At::More(i) => &self.overflow[i],
        }
    }

    fn group_mut(&mut self, at: At) -> &mut Group {
        match at {
            At::Main(i) => &mut self.groups[i],
            At::More(i) => &mut self.overflow[i],
        }
    }

    /// The group after `at` in its overflow list.
    fn next(&self, at: At) -> Option<At> {
        let more = self.group(at).more;
        (more != NONE).then_some(At::More(more as usize))
    }

    /// An empty overflow group's index.
    fn new_overflow(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            self.overflow[i as usize] = Group::EMPTY;
            i
        } else {
            self.overflow.push(Group::EMPTY);
            (self.overflow.len() - 1) as u32
        }
    }

    /// Link `node` (with hash tag `tag`, of which [`TAG_BITS`] are kept) at the front
    /// of `bucket`'s chain (kernel `hlist_nulls_add_head_rcu`). A bucket out of range
    /// is ignored.
    #[inline]
    pub fn insert_front(&mut self, bucket: u32, node: u32, tag: u16) {
        self.link(bucket, node, tag, u32::MAX);
    }

    /// [`GroupedChains::insert_front`], the group's bound lowered to `bound` (the
    /// node's deadline or less) if it is above, in one visit of the group.
    #[inline(always)]
    pub fn link(&mut self, bucket: u32, node: u32, tag: u16, bound: u32) {
        if bucket >= self.buckets {
            return;
        }
        let (g, j) = Self::place(bucket);
        let Some(grp) = self.groups.get_mut(g) else {
            return;
        };
        grp.alive = grp.alive.min(bound);
        if usize::from(grp.used) < CELLS {
            grp.push_newest(node, key(j, tag));
            return;
        }
        self.insert_spilling(g, node, key(j, tag));
    }

    /// [`GroupedChains::insert_front`] into the full group `g`: its oldest cell goes
    /// on to the overflow group as that one's newest (and so on down the list), the
    /// new one put first.
    #[cold]
    #[inline(never)]
    fn insert_spilling(&mut self, g: usize, node: u32, key: u16) {
        let mut at = At::Main(g);
        let (mut node, mut key) = (node, key);
        loop {
            let grp = self.group_mut(at);
            let full = usize::from(grp.used) >= CELLS;
            let oldest = if full { grp.pop_oldest() } else { None };
            grp.push_newest(node, key);
            let Some(oldest) = oldest else {
                return;
            };
            (node, key) = oldest;
            at = match self.next(at) {
                Some(next) => next,
                None => {
                    let i = self.new_overflow();
                    self.group_mut(at).more = i;
                    At::More(i as usize)
                }
            };
        }
    }

    /// Unlink `node` from `bucket`'s chain; whether it was there.
    pub fn remove(&mut self, bucket: u32, node: u32) -> bool {
        if bucket >= self.buckets {
            return false;
        }
        let (g, j) = Self::place(bucket);
        let mut at = At::Main(g);
        let mut prev = None;
        loop {
            let grp = self.group(at);
            let (nodes, keys) = grp.cells();
            let found = nodes
                .iter()
                .zip(keys)
                .position(|(&n, &k)| n == node && usize::from(k >> TAG_BITS) == j);
            if let Some(c) = found {
                self.group_mut(at).remove_at(c);
                self.refill(at);
                // An overflow group left empty (the last of its list) is given back.
                if let (Some(p), At::More(i)) = (prev, at) {
                    if self.group(at).used == 0 {
                        let more = self.group(at).more;
                        self.group_mut(p).more = more;
                        self.free.push(i as u32);
                    }
                }
                return true;
            }
            prev = Some(at);
            match self.next(at) {
                Some(next) => at = next,
                None => return false,
            }
        }
    }

    /// After a cell of group `at` was freed: down the overflow list, each group with a
    /// free cell takes the next group's newest cell as its oldest (it is older than
    /// all of its own, newer than the rest of the next group's); an overflow group
    /// left empty is given back. So a group with an overflow group is always full.
    fn refill(&mut self, mut at: At) {
        while let Some(next) = self.next(at) {
            if usize::from(self.group(at).used) < CELLS {
                if let Some((node, key)) = self.group_mut(next).pop_newest() {
                    self.group_mut(at).push_oldest(node, key);
                }
            }
            if self.group(next).used == 0 {
                let more = self.group(next).more;
                if let At::More(i) = next {
                    self.free.push(i as u32);
                }
                self.group_mut(at).more = more;
                continue;
            }
            at = next;
        }
    }

    /// The cells of `bucket`'s group and its overflow groups (none for a bucket out of
    /// range), and the bucket's slot in them.
    #[inline(always)]
    fn cells(&self, bucket: u32, want: u16, care: u16) -> Cells<'_> {
        // A bucket past the last one but in the last group has no cell there: links
        // are only made for buckets in range, and the slot bits tell the buckets apart.
        let (g, _) = Self::place(bucket);
        Cells::from(&self.overflow, self.groups.get(g), want, care)
    }

    /// The key bits of `bucket`'s slot in its groups.
    #[inline(always)]
    fn slot_key(bucket: u32) -> u16 {
        key(Self::place(bucket).1, 0)
    }

    /// `bucket`'s chain in order: (node, tag) of each.
    #[inline]
    pub fn chain(&self, bucket: u32) -> Chain<'_> {
        Chain {
            cells: self.cells(bucket, Self::slot_key(bucket), !TAG_MASK),
        }
    }

    /// Length of `bucket`'s chain.
    pub fn chain_len(&self, bucket: u32) -> usize {
        self.chain(bucket).count()
    }

    /// The lower bound of the deadlines of `bucket`'s group's nodes (0: none known).
    #[inline(always)]
    pub fn alive(&self, bucket: u32) -> u32 {
        let (g, _) = Self::place(bucket);
        self.groups.get(g).map_or(0, |x| x.alive)
    }

    /// Set the bound of `bucket`'s group (it covers its overflow groups): the caller
    /// read every node of [`GroupedChains::for_each_in_group`] and `bound` is at most
    /// all their deadlines.
    pub fn set_alive(&mut self, bucket: u32, bound: u32) {
        let (g, _) = Self::place(bucket);
        if let Some(grp) = self.groups.get_mut(g) {
            grp.alive = bound;
        }
    }

    /// Forget every bound (0 everywhere): what they were bounds of changed (e.g. the
    /// timeouts).
    pub fn forget_alive(&mut self) {
        for g in self.groups.iter_mut() {
            g.alive = 0;
        }
    }

    /// `f` of every node of `bucket`'s group and its overflow groups (all its buckets).
    pub fn for_each_in_group(&self, bucket: u32, mut f: impl FnMut(u32)) {
        self.cells(bucket, 0, 0).for_each(|(n, _)| f(n));
    }

    /// Every node of `bucket`'s group and its overflow groups (all its buckets).
    #[cfg(test)]
    fn nodes_of_group(&self, bucket: u32) -> Vec<u32> {
        let mut out = Vec::new();
        self.for_each_in_group(bucket, |n| out.push(n));
        out
    }

    /// The nodes of `bucket`'s chain carrying `tag`, in chain order.
    #[inline(always)]
    pub fn tagged(&self, bucket: u32, tag: u16) -> Tagged<'_> {
        let want = Self::slot_key(bucket) | tag & TAG_MASK;
        Tagged {
            cells: self.cells(bucket, want, u16::MAX),
        }
    }

    /// Hint the CPU to fetch `bucket`'s group line (a batch's first stage).
    #[inline]
    pub fn prefetch(&self, bucket: u32) {
        let (g, _) = Self::place(bucket);
        crate::table::prefetch_read(self.groups.as_ptr().wrapping_add(g));
    }

    /// The first node of `bucket`'s chain carrying `tag`: a lookup's candidate (the
    /// caller compares its entry's tuple, and reads the entries of the nodes in front
    /// of it unless the group's bound is ahead).
    #[inline(always)]
    pub fn first_with_tag(&self, bucket: u32, tag: u16) -> Option<u32> {
        self.tagged(bucket, tag).next()
    }

    /// The node of the newest cell of `bucket`'s group when it is of `bucket` and
    /// carries `tag` (so it is the chain's first such node), else `None`. One scalar
    /// compare: in groups that hold a node or none (a sparse table), it is the one
    /// to make, and the CPU goes on to the node's entry on a predicted branch instead
    /// of waiting for the vector compare of [`GroupedChains::tagged`].
    #[inline(always)]
    pub fn newest_if_tagged(&self, bucket: u32, tag: u16) -> Option<u32> {
        let (g, _) = Self::place(bucket);
        let grp = self.groups.get(g)?;
        let want = Self::slot_key(bucket) | tag & TAG_MASK;
        (grp.used > 0 && grp.keys[0] == want).then_some(grp.nodes[0])
    }

    /// The length of `bucket`'s chain if no node of it carries `tag` (`None` if one
    /// does): confirm's walk for a tuple expected to clash with nothing.
    #[inline(always)]
    pub fn len_if_untagged(&self, bucket: u32, tag: u16) -> Option<usize> {
        let slot = Self::slot_key(bucket);
        let mut cells = self.cells(bucket, slot, !TAG_MASK);
        let want = slot | tag & TAG_MASK;
        let mut n = 0;
        loop {
            if cells.group.lanes(want, u16::MAX) & cells.mask != 0 {
                return None;
            }
            n += cells.mask.count_ones() as usize;
            if !cells.advance() {
                return Some(n);
            }
        }
    }

    /// Bytes of heap held: the groups, the overflow groups made so far (free ones
    /// included; the reserve beyond them is untouched address space) and the free list.
    pub fn memory_bytes(&self) -> usize {
        self.groups.bytes()
            + self.overflow.len() * size_of::<Group>()
            + self.free.capacity() * size_of::<u32>()
    }

    /// Overflow groups in use.
    pub fn overflow_groups(&self) -> usize {
        self.overflow.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// `Group::lanes` (and its word form) agrees with a compare of each cell in use, on keys that differ
    /// from the wanted one in one bit, in the slot bits only, or not at all, and on
    /// random ones, for every count of cells in use.
    #[test]
    fn lanes_match_each_cell() {
        let mut r = rng(0x1a2e5);
        for round in 0..20_000 {
            let want = r() as u16;
            let care = match round % 3 {
                0 => u16::MAX,
                1 => !TAG_MASK,
                _ => r() as u16,
            };
            let mut g = Group::EMPTY;
            g.used = (r() % (CELLS as u64 + 1)) as u8;
            for k in g.keys.iter_mut() {
                *k = match r() % 4 {
                    0 => want,
                    1 => want ^ 1 << (r() % 16),
                    2 => want ^ (r() as u16 & !TAG_MASK),
                    _ => r() as u16,
                };
            }
            let expected = (0..usize::from(g.used))
                .filter(|&i| (g.keys[i] ^ want) & care == 0)
                .fold(0u32, |m, i| m | 1 << i);
            assert_eq!(
                g.lanes(want, care),
                expected,
                "{g:?} want {want:#x} care {care:#x}"
            );
            assert_eq!(g.lanes_in_words(want, care), expected, "{g:?} in words");
        }
    }

    /// Every bucket's chain equals the model's (front = newest), and the lengths and
    /// group node lists agree with it.
    fn check(c: &GroupedChains, model: &[VecDeque<(u32, u16)>]) {
        for (b, chain) in model.iter().enumerate() {
            let got: Vec<_> = c.chain(b as u32).collect();
            let want: Vec<_> = chain.iter().copied().collect();
            assert_eq!(got, want, "bucket {b}");
            assert_eq!(c.chain_len(b as u32), want.len(), "bucket {b}");
        }
        for g in 0..model.len().div_ceil(BUCKETS_PER_GROUP) {
            let first = g * BUCKETS_PER_GROUP;
            let mut want: Vec<u32> = model[first..(first + BUCKETS_PER_GROUP).min(model.len())]
                .iter()
                .flatten()
                .map(|&(n, _)| n)
                .collect();
            let mut got = c.nodes_of_group(first as u32);
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "group {g}");
        }
    }

    #[test]
    fn a_group_is_one_cache_line() {
        assert_eq!(size_of::<Group>(), 64);
        assert_eq!(align_of::<Group>(), 64);
    }

    /// Random links and unlinks on few buckets (long chains, many overflow groups):
    /// the chains keep the kernel's order, and overflow groups are given back.
    #[test]
    fn chains_keep_their_order_through_links_unlinks_and_overflow() {
        for (buckets, ops, seed) in [
            (1u32, 3000, 1u64),
            (6, 6000, 2),
            (13, 8000, 3),
            (64, 8000, 4),
        ] {
            let mut next = rng(seed);
            let mut c = GroupedChains::new(buckets);
            let mut model = vec![VecDeque::new(); buckets as usize];
            let mut live: Vec<(u32, u32)> = Vec::new();
            let mut id = 0u32;
            let mut most_overflow = 0;
            for op in 0..ops {
                // Grow for the first half, then shrink: chains long, then empty.
                let grow = op < ops / 2;
                if live.is_empty() || next().is_multiple_of(3) != grow {
                    let b = (next() % u64::from(buckets)) as u32;
                    let tag = (next() as u16 | 1) & TAG_MASK;
                    c.insert_front(b, id, tag);
                    model[b as usize].push_front((id, tag));
                    // The node just linked is its group's newest, of its bucket only.
                    assert_eq!(c.newest_if_tagged(b, tag), Some(id));
                    assert_eq!(c.newest_if_tagged(b, tag ^ 2), None);
                    let other = b ^ 1;
                    if other < buckets && other / 4 == b / 4 {
                        assert_eq!(c.newest_if_tagged(other, tag), None);
                    }
                    live.push((b, id));
                    id += 1;
                } else {
                    let (b, n) = live.swap_remove((next() % live.len() as u64) as usize);
                    assert!(c.remove(b, n));
                    let m = &mut model[b as usize];
                    let at = m.iter().position(|&(x, _)| x == n).expect("in the model");
                    m.remove(at);
                }
                most_overflow = most_overflow.max(c.overflow_groups());
                if op % 97 == 0 {
                    check(&c, &model);
                }
            }
            check(&c, &model);
            assert!(most_overflow > 0, "the test reached overflow groups");
            for (b, n) in live.drain(..) {
                assert!(c.remove(b, n));
                let m = &mut model[b as usize];
                let at = m.iter().position(|&(x, _)| x == n).expect("in the model");
                m.remove(at);
            }
            check(&c, &model);
            assert_eq!(c.overflow_groups(), 0, "every overflow group given back");
        }
    }

    /// `first_with_tag` is the chain's first node with the tag (against a model of
    /// the chains, through overflow groups).
    #[test]
    fn first_with_tag_is_the_first_in_chain_order() {
        let mut c = GroupedChains::new(8);
        let mut next = rng(9);
        let mut model = vec![Vec::new(); 8];
        for n in 0..200u32 {
            let b = (next() % 8) as u32;
            let tag = (next() % 5) as u16;
            c.insert_front(b, n, tag);
            model[b as usize].insert(0, (n, tag));
        }
        assert!(c.overflow_groups() > 0);
        for (b, chain) in model.iter().enumerate() {
            for tag in 0..6u16 {
                let want = chain.iter().find(|&&(_, t)| t == tag).map(|&(n, _)| n);
                assert_eq!(
                    c.first_with_tag(b as u32, tag),
                    want,
                    "bucket {b} tag {tag}"
                );
            }
        }
        assert_eq!(c.first_with_tag(99, 0), None);
    }

    /// `first_with_tag`, `newest_if_tagged` and `len_if_untagged` agree with the chain
    /// they scan.
    #[test]
    fn tag_scans_agree_with_the_chain() {
        let mut c = GroupedChains::new(8);
        let mut next = rng(11);
        for n in 0..150u32 {
            c.insert_front((next() % 8) as u32, n, (next() % 7) as u16);
        }
        for b in 0..8u32 {
            for tag in 0..8u16 {
                let chain: Vec<_> = c.chain(b).collect();
                let with: Vec<u32> = chain
                    .iter()
                    .filter(|&&(_, t)| t == tag)
                    .map(|&(n, _)| n)
                    .collect();
                assert_eq!(
                    c.tagged(b, tag).collect::<Vec<_>>(),
                    with,
                    "bucket {b} tag {tag}"
                );
                let first = chain.iter().find(|&&(_, t)| t == tag).map(|&(n, _)| n);
                assert_eq!(c.first_with_tag(b, tag), first, "bucket {b} tag {tag}");
                if let Some(n) = c.newest_if_tagged(b, tag) {
                    assert_eq!(Some(n), first, "the newest is the chain's first");
                }
                let untagged = first.is_none().then_some(chain.len());
                assert_eq!(c.len_if_untagged(b, tag), untagged, "bucket {b} tag {tag}");
            }
        }
    }

    #[test]
    fn removing_what_is_not_there_changes_nothing() {
        let mut c = GroupedChains::new(8);
        c.insert_front(3, 7, 1);
        assert!(!c.remove(3, 8));
        assert!(!c.remove(2, 7));
        assert!(!c.remove(99, 7));
        c.insert_front(99, 5, 1);
        assert_eq!(c.chain(3).collect::<Vec<_>>(), vec![(7, 1)]);
        assert_eq!(c.chain_len(99), 0);
        assert!(c.remove(3, 7));
        assert_eq!(c.chain_len(3), 0);
        // Buckets past the last, in the last group's unused slots, hold nothing.
        let mut c = GroupedChains::new(6);
        c.insert_front(5, 1, 3);
        c.insert_front(7, 2, 3);
        assert_eq!(c.chain(5).collect::<Vec<_>>(), vec![(1, 3)]);
        for b in [6, 7] {
            assert_eq!(c.chain_len(b), 0);
            assert_eq!(c.first_with_tag(b, 3), None);
            assert_eq!(c.newest_if_tagged(b, 3), None);
        }
    }

    /// The bound is per group: lowered by the smaller value (by a link too), kept in
    /// the main group for its overflow groups, set after a scan, forgotten everywhere
    /// at once.
    #[test]
    fn the_deadline_bound_follows_its_group() {
        let mut c = GroupedChains::new(16);
        assert_eq!(c.alive(0), u32::MAX, "no node yet");
        c.set_alive(0, 100);
        assert_eq!(c.alive(3), 100, "same group");
        assert_eq!(c.alive(4), u32::MAX, "next group");
        c.link(1, 50, 1, 150);
        assert_eq!(c.alive(0), 100);
        c.link(2, 51, 1, 40);
        assert_eq!(c.alive(0), 40);
        // Fill group 0 past its cells: the main group's bound stands for all.
        for n in 0..(CELLS as u32 + 3) {
            c.insert_front(n % 4, n, 1);
        }
        assert!(c.overflow_groups() > 0);
        c.set_alive(2, 70);
        c.link(3, 52, 1, 60);
        assert_eq!(c.alive(1), 60);
        c.link(5, 99, 1, 30);
        assert_eq!(
            (c.alive(0), c.alive(4)),
            (60, 30),
            "a link lowers its group's"
        );
        c.link(6, 98, 1, 50);
        assert_eq!(c.alive(4), 30, "never raises it");
        c.forget_alive();
        assert_eq!(c.alive(4), 0);
        assert_eq!(c.alive(0), 0);
        // The nodes linked in group 0: three by `link`, CELLS + 3 by the fill.
        assert_eq!(c.nodes_of_group(2).len(), CELLS + 6);
    }
}
