//! Zones per direction in the engine (kernel `nf_ct_zone_id`, `nf_ct_key_equal`,
//! `resolve_normal_ct`): a zone covering one direction hashes and matches only that
//! direction's tuple; the lookup tries the orig-direction id, then the reply-direction
//! id; confirm compares, for each node met, the zones' ids for that node's direction.
//! The same cases run against the live kernel in tests/rulesets/zones_per_direction.nft.

use ctrack_core::batch::Next;
use ctrack_core::conntrack::{Config, Confirmed, Conntrack, Hook};
use ctrack_core::status::CtInfo;
use ctrack_core::{Dir, Instant, Zone};

const C: [u8; 4] = [10, 1, 0, 1];
const S: [u8; 4] = [10, 2, 0, 1];

/// An IPv4 UDP packet (UDP checksum 0: not checked).
fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 30, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&10u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, b'h', b'i']);
    let mut sum = 0u32;
    for w in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

fn ct() -> Conntrack {
    Conntrack::new(Config {
        seed: 3,
        ..Config::default()
    })
}

/// Track and confirm one packet: (ctinfo, what confirm did).
fn pass(ct: &mut Conntrack, pkt: &[u8], zone: Zone) -> (Option<CtInfo>, Confirmed) {
    let now = Instant::from_secs(1);
    let t = ct.track(now, pkt, Hook::PreRouting, zone);
    let c = ct.confirm(now, &t);
    (t.ctinfo, c)
}

#[test]
fn a_reply_finds_an_orig_only_entry_through_the_reply_zone_id() {
    let mut ct = ct();
    let q = udp(C, 5300, S, 53);
    let a = udp(S, 53, C, 5300);
    assert_eq!(
        pass(&mut ct, &q, Zone::one_way(1, Dir::Original)),
        (Some(CtInfo::New), Confirmed::Inserted)
    );
    // The reply's own template is orig-only zone 2: id 2 misses, its reply id 0 finds
    // the entry's reply tuple (in zone 0, the entry's zone not covering replies).
    assert_eq!(
        pass(&mut ct, &a, Zone::one_way(2, Dir::Original)).0,
        Some(CtInfo::EstablishedReply)
    );
    assert_eq!(
        pass(&mut ct, &a, Zone::DEFAULT).0,
        Some(CtInfo::EstablishedReply)
    );
    // A bidirectional zone 2 has no second id to try: a new entry of its own.
    assert_eq!(
        pass(&mut ct, &a, Zone::new(2)),
        (Some(CtInfo::New), Confirmed::Inserted)
    );
    // The query again in its zone finds its entry.
    assert_eq!(
        pass(&mut ct, &q, Zone::one_way(1, Dir::Original)).0,
        Some(CtInfo::Established)
    );
    assert_eq!(ct.entries(Instant::from_secs(1)).len(), 2);
}

#[test]
fn another_orig_zone_clashes_on_the_shared_reply_zone() {
    let mut ct = ct();
    let q = udp(C, 5300, S, 53);
    pass(&mut ct, &q, Zone::one_way(1, Dir::Original));
    let (ci, c) = pass(&mut ct, &q, Zone::one_way(3, Dir::Original));
    assert_eq!(ci, Some(CtInfo::New), "id 3, then id 0: no match");
    assert!(matches!(c, Confirmed::Failed(_)), "{c:?}");
    let s = ct.stats();
    assert_eq!((s.insert_failed, s.drop, s.clash_resolve), (1, 1, 0));
    // Bidirectional zone 3: both tuples in zone 3, no clash.
    assert_eq!(pass(&mut ct, &q, Zone::new(3)).1, Confirmed::Inserted);
}

#[test]
fn confirm_compares_the_zone_of_the_node_direction() {
    // An entry with a reply-only zone 5: its original tuple C→S sits in zone 0.
    let mut ct = ct();
    let q = udp(C, 5301, S, 54);
    let a = udp(S, 54, C, 5301);
    pass(&mut ct, &q, Zone::one_way(5, Dir::Reply));
    // S→C in orig-only zone 2 misses (the entry's reply tuple is in zone 5) and makes
    // an entry whose reply tuple C→S (zone 0) meets the first entry's original node:
    // for an original node the ids compared are the original ones, 0 and 2: no clash.
    assert_eq!(
        pass(&mut ct, &a, Zone::one_way(2, Dir::Original)),
        (Some(CtInfo::New), Confirmed::Inserted)
    );
    // In the default zone the original ids are 0 and 0: a clash.
    let mut ct2 = self::ct();
    pass(&mut ct2, &q, Zone::one_way(5, Dir::Reply));
    let (ci, c) = pass(&mut ct2, &a, Zone::DEFAULT);
    assert_eq!(ci, Some(CtInfo::New));
    assert!(matches!(c, Confirmed::Failed(_)), "{c:?}");
}

#[test]
fn the_batch_path_agrees_with_packet_by_packet() {
    let pkts: Vec<Vec<u8>> = (0..40u16)
        .flat_map(|i| {
            [
                udp(C, 6000 + i % 7, S, 53),
                udp(S, 53, C, 6000 + i % 7),
                udp(C, 6000 + i % 5, S, 54),
            ]
        })
        .collect();
    let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
    for zone in [
        Zone::one_way(4, Dir::Original),
        Zone::one_way(4, Dir::Reply),
        Zone::new(4),
    ] {
        let now = Instant::from_secs(1);
        let mut one = ct();
        let want: Vec<_> = refs
            .iter()
            .map(|p| {
                let t = one.track(now, p, Hook::PreRouting, zone);
                (t.ctinfo, one.confirm(now, &t))
            })
            .collect();
        let mut batch = ct();
        let mut out = Vec::new();
        batch.track_batch(now, &refs, Hook::PreRouting, zone, &mut out, |_, _, _| {
            Next::Confirm
        });
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.tracked.ctinfo, r.confirmed.unwrap_or(Confirmed::Nothing)))
            .collect();
        assert_eq!(got, want, "{zone:?}");
        assert_eq!(batch.stats(), one.stats(), "{zone:?}");
    }
}
