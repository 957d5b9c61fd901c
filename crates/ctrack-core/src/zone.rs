//! Conntrack zones (kernel `struct nf_conntrack_zone`, `nf_conntrack_zones.h`): an id and
//! the directions it applies to. A zone set for one direction only (nft `ct original
//! zone set 1`) takes part in the hash and in matching only for that direction's tuple;
//! the other direction uses the default zone 0 (`nf_ct_zone_id`).
//!
//! Layout: 4 bytes (u16 id, u8 direction mask, padding), kept small because every
//! entry carries one.

use crate::tuple::Dir;

/// A zone: its id and the directions it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone {
    /// Zone id (`zone->id`).
    pub id: u16,
    /// Direction mask (`zone->dir`): [`Zone::ORIG`], [`Zone::REPLY`] or both.
    pub dir: u8,
}

impl Zone {
    /// `NF_CT_ZONE_DIR_ORIG`: the zone covers the original direction.
    pub const ORIG: u8 = 1 << 0;
    /// `NF_CT_ZONE_DIR_REPL`: the zone covers the reply direction.
    pub const REPLY: u8 = 1 << 1;
    /// `NF_CT_DEFAULT_ZONE_DIR`: both directions.
    pub const BOTH: u8 = Zone::ORIG | Zone::REPLY;
    /// The default zone (`nf_ct_zone_dflt`: id 0, both directions).
    pub const DEFAULT: Zone = Zone {
        id: 0,
        dir: Zone::BOTH,
    };

    /// Zone `id` in both directions (nft `ct zone set ID`).
    pub const fn new(id: u16) -> Zone {
        Zone {
            id,
            dir: Zone::BOTH,
        }
    }

    /// Zone `id` for one direction only (nft `ct original|reply zone set ID`).
    pub const fn one_way(id: u16, dir: Dir) -> Zone {
        Zone {
            id,
            dir: match dir {
                Dir::Original => Zone::ORIG,
                Dir::Reply => Zone::REPLY,
            },
        }
    }

    /// The id used for a direction's tuple (kernel `nf_ct_zone_id`): the zone's id if it
    /// covers that direction, else the default zone 0.
    #[inline(always)]
    pub fn id_for(self, d: Dir) -> u16 {
        if self.dir & (1 << d.index()) != 0 {
            self.id
        } else {
            0
        }
    }

    /// Whether two zones give the same id for a direction (kernel `nf_ct_zone_equal`).
    #[inline(always)]
    pub fn same_for(self, other: Zone, d: Dir) -> bool {
        self.id_for(d) == other.id_for(d)
    }

    /// Whether the zone covers both directions (`zone=` rather than `zone-orig=` /
    /// `zone-reply=` in listings).
    pub fn is_bidirectional(self) -> bool {
        self.dir == Zone::BOTH
    }

    /// The one direction the zone covers, when it covers exactly one.
    pub fn one_direction(self) -> Option<Dir> {
        match self.dir {
            Zone::ORIG => Some(Dir::Original),
            Zone::REPLY => Some(Dir::Reply),
            _ => None,
        }
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::DEFAULT
    }
}

impl From<u16> for Zone {
    /// A bidirectional zone.
    fn from(id: u16) -> Zone {
        Zone::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_zone_ids_per_direction() {
        let z = Zone::one_way(5, Dir::Original);
        assert_eq!(z.id_for(Dir::Original), 5);
        assert_eq!(z.id_for(Dir::Reply), 0);
        let r = Zone::one_way(6, Dir::Reply);
        assert_eq!(r.id_for(Dir::Original), 0);
        assert_eq!(r.id_for(Dir::Reply), 6);
        assert!(z.same_for(Zone::DEFAULT, Dir::Reply));
        assert!(!z.same_for(Zone::DEFAULT, Dir::Original));
        assert!(z.same_for(Zone::new(5), Dir::Original));
        assert_eq!(Zone::new(7).one_direction(), None);
        assert_eq!(r.one_direction(), Some(Dir::Reply));
        assert_eq!(size_of::<Zone>(), 4);
    }
}
