//! The PPTP GRE keymap (kernel `nf_conntrack_proto_gre.c`: `nf_ct_gre_keymap_add`,
//! `gre_keymap_lookup`, `nf_ct_gre_keymap_destroy`; kernel-semantics-2.md §2).
//!
//! Enhanced GRE (version 1, PPTP) carries only the *receiver's* call ID, so a packet
//! alone gives the destination key of its tuple. The PPTP helper, when a call is set
//! up, adds one entry per direction: the expected GRE tuple of that direction, whose
//! source key is the sender's call ID. The tuple builder then looks up every version-1
//! PPP packet by (family, source address, destination address, protocol, destination
//! key) and takes the entry's source key (0 when nothing matches). The first entry in
//! insertion order wins, as the kernel walks its list from the head after adding at
//! the tail.
//!
//! Each master (a PPTP control connection) owns at most one entry per direction (the
//! kernel's `nf_ct_pptp_master.keymap[dir]`). Its entries go when the call is
//! disconnected, when the master dies, and when any GRE connection created from its
//! expectations is freed (`destroy_gre_conntrack`). The map is per network namespace:
//! zones play no part in it.

use crate::table::EntryId;
use crate::tuple::{Dir, Tuple};

/// One keymap entry (kernel `struct nf_ct_gre_keymap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeymapEntry {
    /// The GRE tuple of one direction of a call; `src_u` is the key the lookup returns.
    pub tuple: Tuple,
    /// The master (PPTP control connection) that owns it, with its creation number.
    pub master: (EntryId, u32),
    /// Which of the master's two slots it fills.
    pub dir: Dir,
}

/// Why [`GreKeymap::add`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeymapError {
    /// `EEXIST`: the master's slot for that direction already holds a different tuple
    /// (a second call on the same control connection).
    Exists,
}

/// The keymap of one network namespace.
#[derive(Debug, Clone, Default)]
pub struct GreKeymap {
    list: Vec<KeymapEntry>,
}

/// The fields the lookup compares (kernel `gre_key_cmpfn`): everything but the source
/// key.
fn same_key(km: &Tuple, t: &Tuple) -> bool {
    km.family == t.family
        && km.src == t.src
        && km.dst == t.dst
        && km.proto == t.proto
        && km.dst_u == t.dst_u
}

impl GreKeymap {
    /// Whether the map is empty (the common case: no lookup then).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The entries in insertion (lookup) order.
    pub fn entries(&self) -> impl Iterator<Item = &KeymapEntry> {
        self.list.iter()
    }

    /// The source key for a version-1 GRE tuple `t` whose destination key is the
    /// packet's call ID (kernel `gre_keymap_lookup`): the first matching entry's source
    /// key, 0 when none matches.
    pub fn lookup(&self, t: &Tuple) -> u16 {
        self.list
            .iter()
            .find(|km| same_key(&km.tuple, t))
            .map_or(0, |km| km.tuple.src_u)
    }

    /// The entry `master` holds for `dir`.
    pub fn slot(&self, master: (EntryId, u32), dir: Dir) -> Option<&KeymapEntry> {
        self.list
            .iter()
            .find(|km| km.master == master && km.dir == dir)
    }

    /// Fill `master`'s slot for `dir` with `t` (kernel `nf_ct_gre_keymap_add`). A slot
    /// already holding a tuple that compares equal (source key aside) is a
    /// retransmission: accepted, left unchanged. A slot holding anything else refuses.
    pub fn add(&mut self, master: (EntryId, u32), dir: Dir, t: &Tuple) -> Result<(), KeymapError> {
        if let Some(km) = self.slot(master, dir) {
            return if same_key(&km.tuple, t) {
                Ok(())
            } else {
                Err(KeymapError::Exists)
            };
        }
        self.list.push(KeymapEntry {
            tuple: *t,
            master,
            dir,
        });
        Ok(())
    }

    /// Remove both of `master`'s entries (kernel `nf_ct_gre_keymap_destroy`).
    pub fn destroy(&mut self, master: (EntryId, u32)) {
        self.list.retain(|km| km.master != master);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::{proto, Addr, Family};

    fn gre(src: [u8; 4], dst: [u8; 4], sk: u16, dk: u16) -> Tuple {
        Tuple {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            src_u: sk,
            dst_u: dk,
            family: Family::V4,
            proto: proto::GRE,
        }
    }

    const PNS: [u8; 4] = [10, 1, 0, 1];
    const PAC: [u8; 4] = [10, 2, 0, 1];

    fn master(n: u32) -> (EntryId, u32) {
        (n, n + 100)
    }

    #[test]
    fn keymap_lookup_returns_the_src_key_of_the_direction() {
        let mut km = GreKeymap::default();
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x200)), 0);
        km.add(master(1), Dir::Original, &gre(PNS, PAC, 0x100, 0x200))
            .expect("orig");
        km.add(master(1), Dir::Reply, &gre(PAC, PNS, 0x200, 0x100))
            .expect("reply");
        // A packet's tuple has src key 0 before the lookup: it is not compared.
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x200)), 0x100);
        assert_eq!(km.lookup(&gre(PAC, PNS, 0, 0x100)), 0x200);
        // Another call ID, another address pair, another protocol: no key.
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x201)), 0);
        assert_eq!(km.lookup(&gre(PNS, [10, 2, 0, 2], 0, 0x200)), 0);
        let mut udp = gre(PNS, PAC, 0, 0x200);
        udp.proto = proto::UDP;
        assert_eq!(km.lookup(&udp), 0);
        assert_eq!(km.len(), 2);
    }

    #[test]
    fn keymap_add_retransmission_is_accepted_other_tuple_refused() {
        let mut km = GreKeymap::default();
        km.add(master(1), Dir::Original, &gre(PNS, PAC, 0x100, 0x200))
            .expect("first");
        // Same tuple, or one differing only in the src key: a retransmission.
        assert_eq!(
            km.add(master(1), Dir::Original, &gre(PNS, PAC, 0x100, 0x200)),
            Ok(())
        );
        assert_eq!(
            km.add(master(1), Dir::Original, &gre(PNS, PAC, 0x999, 0x200)),
            Ok(())
        );
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x200)), 0x100, "unchanged");
        // A second call on the same master: refused.
        assert_eq!(
            km.add(master(1), Dir::Original, &gre(PNS, PAC, 0x101, 0x201)),
            Err(KeymapError::Exists)
        );
        // Another master may map the same tuple; the older entry answers first.
        km.add(master(2), Dir::Original, &gre(PNS, PAC, 0x555, 0x200))
            .expect("other master");
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x200)), 0x100);
        km.destroy(master(1));
        assert_eq!(km.lookup(&gre(PNS, PAC, 0, 0x200)), 0x555);
        km.destroy(master(2));
        assert!(km.is_empty());
    }
}
