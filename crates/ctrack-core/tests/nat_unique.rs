//! Property: NAT never maps two connections to one reply tuple.
//!
//! 10^6 random UDP and TCP flows (random client addresses and ports, 16 servers, two
//! services) go through conntrack and SNAT to a 4-address pool, as the hook pipeline
//! runs it (DST null binding at prerouting, SNAT at postrouting, confirm). Afterwards no
//! two live entries share a reply tuple, every entry's reply destination is one of the
//! pool's addresses, and every failure to find a free tuple was a counted drop, never a
//! duplicate. In a debug build (no optimisations) 10^5 flows are used to keep
//! `cargo test` fast; `cargo test --release` runs the full 10^6.

use ctrack_core::conntrack::{Config, Confirmed, Conntrack, Hook, Verdict};
use ctrack_core::nat::{flags, Manip, NatRange};
use ctrack_core::packet::checksum;
use ctrack_core::{Addr, CtInfo, Dir, Family, Instant, Sysctls, Tuple};
use std::collections::HashSet;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn packet(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let l4: Vec<u8> = if proto == 17 {
        let mut u = Vec::with_capacity(8);
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&8u16.to_be_bytes());
        u.extend_from_slice(&[0, 0]); // checksum 0: not verified
        u
    } else {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&(u32::from(sport) << 8).to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x02; // SYN
        t[14] = 0xff;
        t[15] = 0xff;
        let acc = checksum::pseudo_header(Family::V4, &Addr::v4(src), &Addr::v4(dst), 20, 6);
        let c = checksum::compute(acc, &t);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    };
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum::compute(0, &p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

#[test]
fn snat_to_a_pool_never_reuses_a_reply_tuple() {
    let flows: u32 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let mut s = Sysctls::default();
    s.set("nf_conntrack_max", "2097152").unwrap();
    s.set("nf_conntrack_buckets", "1048576").unwrap();
    let mut ct = Conntrack::new(Config {
        sysctls: s,
        seed: 42,
        events: false,
    });
    let pool = NatRange {
        flags: flags::MAP_IPS,
        min_addr: Addr::v4([100, 64, 0, 1]),
        max_addr: Addr::v4([100, 64, 0, 4]),
        ..NatRange::default()
    };
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = Instant::from_secs(1_700_000_000);
    let (mut confirmed, mut failed) = (0u32, 0u32);
    for _ in 0..flows {
        let r = rng.next();
        let src = [10, 1 + (r % 4) as u8, (r >> 8) as u8, (r >> 16) as u8];
        let sport = 1 + (r >> 24) as u16 % 65535;
        let dst = [192, 0, 2, 1 + ((r >> 40) % 16) as u8];
        let (proto, dport) = if r >> 63 == 0 { (17, 53) } else { (6, 443) };
        let pkt = packet(proto, src, sport, dst, dport);
        let t = ct.track(now, &pkt, Hook::PreRouting, 0);
        assert_eq!(t.verdict, Verdict::Accept);
        let (Some(id), Some(ci)) = (t.entry, t.ctinfo) else {
            continue;
        };
        if ci != CtInfo::New {
            continue; // the same random flow again: already bound
        }
        if !ct.nat_initialized(id, Manip::Dst) {
            assert!(ct.nat_null_binding(now, id, Manip::Dst));
        }
        if !ct.nat_initialized(id, Manip::Src) {
            assert!(ct.nat_setup(now, id, &pool, Manip::Src));
        }
        match ct.confirm(now, &t) {
            Confirmed::Inserted => confirmed += 1,
            Confirmed::Failed(_) => failed += 1,
            _ => {}
        }
    }
    let mut seen: HashSet<Tuple> = HashSet::new();
    let entries = ct.entries(now);
    for e in &entries {
        let reply = e.tuple(Dir::Reply);
        assert!(
            seen.insert(reply),
            "two entries share the reply tuple {reply:?}"
        );
        let d = reply.dst.v4_octets();
        assert!(
            d[..3] == [100, 64, 0] && (1..=4).contains(&d[3]),
            "reply destination {reply:?} is outside the pool"
        );
    }
    assert_eq!(entries.len() as u32, confirmed);
    assert_eq!(ct.stats().insert_failed, failed, "every failure is counted");
    assert!(
        confirmed > flows / 2,
        "most flows got a mapping: {confirmed} of {flows}"
    );
}
