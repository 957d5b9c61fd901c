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
use crate::time::Instant;
use crate::tuple::{Dir, Tuple};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

const NIL: u32 = u32::MAX;

/// Handle of an entry in the table (slab index). Valid until the entry is freed.
pub type EntryId = u32;

struct Slot {
    entry: Option<Entry>,
    /// Next node in the chain, per direction (node = id * 2 + dir).
    next: [u32; 2],
    linked: bool,
}

/// The table: bucket heads plus a slab of entries.
pub struct Table {
    heads: Vec<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    keys: (u64, u64),
    /// Allocated entries, including unconfirmed ones (kernel `nf_conntrack_count`).
    count: u32,
}

impl Table {
    /// A table with `buckets` chains (already rounded) and a hash key derived from `seed`.
    pub fn new(buckets: u32, seed: u64) -> Table {
        let k0 = seed ^ 0x736f_6d65_7073_6575;
        let k1 = seed.rotate_left(32) ^ 0x646f_7261_6e64_6f6d;
        Table {
            heads: vec![NIL; buckets.max(1) as usize],
            slots: Vec::new(),
            free: Vec::new(),
            keys: (k0, k1),
            count: 0,
        }
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
        let mut h = SipHasher13::new_with_keys(self.keys.0 ^ u64::from(zone), self.keys.1);
        h.write(&t.hash_bytes());
        let h32 = (h.finish() >> 32) as u32;
        ((u64::from(h32) * self.heads.len() as u64) >> 32) as u32
    }

    /// Store a new (unconfirmed, unlinked) entry; counts it.
    pub fn alloc(&mut self, entry: Entry) -> EntryId {
        self.count += 1;
        let slot = Slot {
            entry: Some(entry),
            next: [NIL; 2],
            linked: false,
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
    pub fn is_linked(&self, id: EntryId) -> bool {
        self.slots.get(id as usize).is_some_and(|s| s.linked)
    }

    /// Link both tuples of `id` into their buckets (confirm).
    pub fn link(&mut self, id: EntryId) {
        let Some(e) = self.get(id) else { return };
        let b = [
            self.bucket(&e.tuples[0], e.zone),
            self.bucket(&e.tuples[1], e.zone),
        ];
        for (dir, &bucket) in b.iter().enumerate() {
            let node = id * 2 + dir as u32;
            let head = &mut self.heads[bucket as usize];
            self.slots[id as usize].next[dir] = *head;
            *head = node;
        }
        self.slots[id as usize].linked = true;
    }

    /// Remove both nodes of `id` from their chains.
    pub fn unlink(&mut self, id: EntryId) {
        let Some(slot) = self.slots.get(id as usize) else {
            return;
        };
        if !slot.linked {
            return;
        }
        let Some(e) = slot.entry.as_ref() else { return };
        let b = [
            self.bucket(&e.tuples[0], e.zone),
            self.bucket(&e.tuples[1], e.zone),
        ];
        for (dir, &bucket) in b.iter().enumerate() {
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
        self.slots[id as usize].linked = false;
        self.slots[id as usize].next = [NIL; 2];
    }

    /// Find a confirmed entry whose tuple of some direction equals `t` in `zone`.
    /// Expired entries met on the way are not returned; their ids are pushed to `expired`
    /// so the caller can delete them (kernel: `nf_ct_gc_expired` during lookup).
    pub fn find(
        &self,
        t: &Tuple,
        zone: u16,
        now: Instant,
        expired: &mut Vec<EntryId>,
    ) -> Option<(EntryId, Dir)> {
        let mut cur = self.heads[self.bucket(t, zone) as usize];
        while cur != NIL {
            let id = cur / 2;
            let dir = if cur & 1 == 0 {
                Dir::Original
            } else {
                Dir::Reply
            };
            let slot = &self.slots[id as usize];
            if let Some(e) = slot.entry.as_ref() {
                if e.expired(now) {
                    if !expired.contains(&id) {
                        expired.push(id);
                    }
                } else if e.zone == zone && e.tuples[dir.index()] == *t {
                    return Some((id, dir));
                }
            }
            cur = slot.next[dir.index()];
        }
        None
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
            .filter(|(_, s)| s.linked && s.entry.is_some())
            .map(|(i, _)| i as u32)
            .collect()
    }
}
