//! Engine-level NAT tests: bindings on real entries, replies un-NATed, port clashes.

use super::*;
use crate::conntrack::{Config, Hook};
use crate::packet::Packet;
use crate::status::CtInfo;

/// A UDP datagram with its checksums, `src:sport` to `dst:dport` (2 payload bytes);
/// the batch's tests build theirs with it too.
pub(crate) fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 30, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&10u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, b'h', b'i']);
    let c = checksum::compute(0, &p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let acc = checksum::pseudo_header(Family::V4, &Addr::v4(src), &Addr::v4(dst), 10, 17);
    let c = checksum::compute(acc, &p[20..]);
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

fn ct() -> Conntrack {
    Conntrack::new(Config {
        seed: 7,
        ..Config::default()
    })
}

fn pool(lo: [u8; 4], hi: [u8; 4]) -> NatRange {
    NatRange {
        flags: flags::MAP_IPS,
        min_addr: Addr::v4(lo),
        max_addr: Addr::v4(hi),
        ..NatRange::default()
    }
}

/// One packet through conntrack, the NAT hooks (dst at prerouting, src at
/// postrouting) and confirm, as the pipeline runs them. Returns the rewritten packet.
fn pass(
    ct: &mut Conntrack,
    now: Instant,
    pkt: &[u8],
    snat: Option<NatRange>,
    dnat: Option<NatRange>,
) -> (Option<CtInfo>, Vec<u8>, bool) {
    let mut buf = pkt.to_vec();
    let t = ct.track(now, pkt, Hook::PreRouting, 0);
    let (Some(id), Some(ci)) = (t.entry, t.ctinfo) else {
        return (t.ctinfo, buf, true);
    };
    for (manip, range) in [(Manip::Dst, dnat), (Manip::Src, snat)] {
        if matches!(ci, CtInfo::New) && !ct.nat_initialized(id, manip) {
            match range {
                Some(r) => assert!(ct.nat_setup(now, id, &r, manip)),
                None => assert!(ct.nat_null_binding(now, id, manip)),
            }
        }
        assert!(ct.nat_packet(id, ci.dir(), manip, &mut buf));
    }
    let ok = !matches!(ct.confirm(now, &t), crate::conntrack::Confirmed::Failed(_));
    (Some(ci), buf, ok)
}

#[test]
fn snat_then_reply_is_un_natted() {
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let out = udp4([10, 0, 0, 3], 40000, [192, 168, 5, 9], 53);
    let r = pool([203, 0, 113, 1], [203, 0, 113, 1]);
    let (ci, w, ok) = pass(&mut c, now, &out, Some(r), None);
    assert_eq!(ci, Some(CtInfo::New));
    assert!(ok);
    assert_eq!(&w[12..16], &[203, 0, 113, 1]);
    assert_eq!(u16::from_be_bytes([w[20], w[21]]), 40000, "identity port");
    let p = Packet::parse(&w).unwrap();
    assert!(p.l4_checksum_ok(17));
    let e = c.entries(now)[0].clone();
    assert!(e
        .status
        .has(Status::SRC_NAT | Status::SRC_NAT_DONE | Status::DST_NAT_DONE));
    assert!(!e.status.has(Status::DST_NAT));
    // The reply to the NAT address goes back to the client.
    let back = udp4([192, 168, 5, 9], 53, [203, 0, 113, 1], 40000);
    let (ci, w, _) = pass(&mut c, now, &back, None, None);
    assert_eq!(ci, Some(CtInfo::EstablishedReply));
    assert_eq!(&w[16..20], &[10, 0, 0, 3]);
    assert!(Packet::parse(&w).unwrap().l4_checksum_ok(17));
}

#[test]
fn dnat_port_forward() {
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let r = NatRange {
        flags: flags::MAP_IPS | flags::PROTO_SPECIFIED,
        min_addr: Addr::v4([172, 17, 0, 2]),
        max_addr: Addr::v4([172, 17, 0, 2]),
        min_port: 80,
        max_port: 80,
        base_port: 0,
    };
    let p = udp4([198, 51, 100, 7], 5555, [192, 0, 2, 10], 8080);
    let (_, w, ok) = pass(&mut c, now, &p, None, Some(r));
    assert!(ok);
    assert_eq!(&w[16..20], &[172, 17, 0, 2]);
    assert_eq!(u16::from_be_bytes([w[22], w[23]]), 80);
    let back = udp4([172, 17, 0, 2], 80, [198, 51, 100, 7], 5555);
    let (ci, w, _) = pass(&mut c, now, &back, None, None);
    assert_eq!(ci, Some(CtInfo::EstablishedReply));
    assert_eq!(&w[12..16], &[192, 0, 2, 10]);
    assert_eq!(u16::from_be_bytes([w[20], w[21]]), 8080);
}

#[test]
fn null_binding_remaps_a_taken_source_port() {
    // Two clients SNATed to one address with the same source port: the second moves.
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let r = pool([203, 0, 113, 1], [203, 0, 113, 1]);
    let a = udp4([10, 0, 0, 3], 40000, [192, 168, 5, 9], 53);
    let b = udp4([10, 0, 0, 4], 40000, [192, 168, 5, 9], 53);
    let (_, wa, _) = pass(&mut c, now, &a, Some(r), None);
    let (_, wb, ok) = pass(&mut c, now, &b, Some(r), None);
    assert!(ok);
    let pa = u16::from_be_bytes([wa[20], wa[21]]);
    let pb = u16::from_be_bytes([wb[20], wb[21]]);
    assert_eq!(pa, 40000);
    assert_ne!(pb, 40000);
    assert!(pb >= 1024);
    assert_eq!(c.stats().found, 1);
}

#[test]
fn bysource_reuses_the_mapping_of_the_same_source() {
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let r = pool([203, 0, 113, 1], [203, 0, 113, 1]);
    // Occupy 203.0.113.1:40000 towards the server so the first flow moves its port.
    let x = udp4([10, 0, 0, 9], 40000, [192, 168, 5, 9], 53);
    pass(&mut c, now, &x, Some(r), None);
    let a = udp4([10, 0, 0, 3], 40000, [192, 168, 5, 9], 53);
    let (_, wa, _) = pass(&mut c, now, &a, Some(r), None);
    let moved = u16::from_be_bytes([wa[20], wa[21]]);
    assert_ne!(moved, 40000);
    // The same source to another server gets the same mapping (bysource).
    let b = udp4([10, 0, 0, 3], 40000, [192, 168, 5, 10], 53);
    let (_, wb, _) = pass(&mut c, now, &b, Some(r), None);
    assert_eq!(u16::from_be_bytes([wb[20], wb[21]]), moved);
}

#[test]
fn racing_udp_queries_through_dnat_merge() {
    // The Kubernetes DNS race: two packets of one socket both miss the table before
    // either is confirmed; both choose the same DNAT mapping and the second merges.
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let r = NatRange::addr(Addr::v4([10, 96, 0, 10]));
    let q = udp4([10, 244, 1, 5], 43000, [10, 96, 0, 1], 53);
    let t1 = c.track(now, &q, Hook::PreRouting, 0);
    let t2 = c.track(now, &q, Hook::PreRouting, 0);
    let (i1, i2) = (t1.entry.unwrap(), t2.entry.unwrap());
    assert_ne!(i1, i2);
    for id in [i1, i2] {
        assert!(c.nat_setup(now, id, &r, Manip::Dst));
        assert!(c.nat_null_binding(now, id, Manip::Src));
    }
    assert_eq!(c.confirm(now, &t1), crate::conntrack::Confirmed::Inserted);
    assert!(matches!(
        c.confirm(now, &t2),
        crate::conntrack::Confirmed::Merged(_)
    ));
    assert_eq!(c.stats().clash_resolve, 1);
    assert_eq!(c.stats().insert_failed, 0);
}

#[test]
fn racing_queries_to_different_backends_insert_the_loser_reply_only() {
    // The Kubernetes case with two backends: both queries of one socket miss the table,
    // the service DNAT picks a different backend for each, so only their original
    // tuples clash. The loser goes in under its reply tuple alone (NAT_CLASH, 1 s,
    // unlisted, no NEW event) and the second backend's answer is still un-NATed.
    let mut c = Conntrack::new(Config {
        seed: 7,
        events: true,
        ..Config::default()
    });
    let now = Instant::from_nanos(1_000_000_000);
    let (client, service) = ([10, 244, 1, 5], [10, 96, 0, 10]);
    let q = udp4(client, 43000, service, 53);
    let t1 = c.track(now, &q, Hook::PreRouting, 0);
    let t2 = c.track(now, &q, Hook::PreRouting, 0);
    let (i1, i2) = (t1.entry.unwrap(), t2.entry.unwrap());
    let backend = |b: [u8; 4]| NatRange {
        flags: flags::MAP_IPS,
        min_addr: Addr::v4(b),
        max_addr: Addr::v4(b),
        ..NatRange::default()
    };
    let (b1, b2) = ([10, 244, 2, 7], [10, 244, 3, 9]);
    for (id, b) in [(i1, b1), (i2, b2)] {
        assert!(c.nat_setup(now, id, &backend(b), Manip::Dst));
        assert!(c.nat_null_binding(now, id, Manip::Src));
    }
    assert_eq!(c.confirm(now, &t1), crate::conntrack::Confirmed::Inserted);
    assert_eq!(c.confirm(now, &t2), crate::conntrack::Confirmed::ReplyOnly);
    assert_eq!(c.stats().clash_resolve, 1);
    assert_eq!((c.stats().insert_failed, c.stats().drop), (0, 0));
    // Both count; only the winner is listed, and only its NEW event was sent.
    assert_eq!(c.count(), 2);
    let listed = c.entries(now);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tuple(Dir::Reply).src, Addr::v4(b1));
    let news = c
        .drain_events()
        .iter()
        .filter(|e| e.kind == crate::event::EventKind::New)
        .count();
    assert_eq!(news, 1);
    let loser = c.table.get(i2).unwrap();
    assert!(loser.status.has(Status::NAT_CLASH) && loser.status.has(Status::FIXED_TIMEOUT));
    assert_eq!(loser.deadline, now + crate::time::secs(1));
    // A third query in the original direction still finds the winner (still NEW: no
    // reply seen yet).
    let t3 = c.track(now, &q, Hook::PreRouting, 0);
    assert_eq!((t3.entry, t3.ctinfo), (Some(i1), Some(CtInfo::New)));
    assert!(c.table.is_linked(i1));
    // The second backend's answer finds the loser and is un-NATed to the service.
    let later = now + crate::time::secs(0);
    let ans = udp4(b2, 53, client, 43000);
    let t4 = c.track(later, &ans, Hook::PreRouting, 0);
    assert_eq!(
        (t4.entry, t4.ctinfo),
        (Some(i2), Some(CtInfo::EstablishedReply))
    );
    let mut buf = ans.clone();
    assert!(c.nat_packet(i2, Dir::Reply, Manip::Src, &mut buf));
    assert_eq!(&buf[12..16], &service);
    assert!(crate::packet::checksum::verify(&buf[..20]));
    // Never ASSURED, and gone after its fixed second.
    assert!(!c.table.get(i2).unwrap().status.has(Status::ASSURED));
    assert_eq!(
        c.expire(now + crate::time::secs(3)),
        1,
        "the loser only: the winner has 30 s"
    );
    assert!(c.table.get(i2).is_none());
    assert_eq!(c.count(), 1);
}

#[test]
fn a_clash_on_the_reply_tuple_too_is_dropped() {
    // The loser's reply tuple matches an entry that is not identical: insert_failed.
    let mut c = ct();
    let now = Instant::from_nanos(1_000_000_000);
    let q = udp4([10, 244, 1, 5], 43000, [10, 96, 0, 10], 53);
    let t1 = c.track(now, &q, Hook::PreRouting, 0);
    let t2 = c.track(now, &q, Hook::PreRouting, 0);
    // The winner keeps its tuples; the loser's reply is made to equal the reply of an
    // unrelated confirmed flow from the backend's side.
    let other = udp4([10, 244, 9, 9], 53, [10, 244, 1, 5], 43000);
    let t0 = c.track(now, &other, Hook::PreRouting, 0);
    assert_eq!(c.confirm(now, &t0), crate::conntrack::Confirmed::Inserted);
    assert!(c.nat_null_binding(now, t1.entry.unwrap(), Manip::Dst));
    // The NAT search would avoid the taken tuple; set the loser's reply directly, as a
    // racing CPU could have left it.
    let i2 = t2.entry.unwrap();
    let taken = c.table.get(t0.entry.unwrap()).unwrap().tuple(Dir::Original);
    c.table.get_mut(i2).unwrap().set_tuple(Dir::Reply, taken);
    assert_eq!(c.confirm(now, &t1), crate::conntrack::Confirmed::Inserted);
    assert!(matches!(
        c.confirm(now, &t2),
        crate::conntrack::Confirmed::Failed(_)
    ));
    assert_eq!((c.stats().insert_failed, c.stats().drop), (1, 1));
    assert_eq!(c.stats().clash_resolve, 0);
}
