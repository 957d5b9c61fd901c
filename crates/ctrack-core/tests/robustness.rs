//! Hostile input never panics the engine and never breaks the table's invariants.
//!
//! Valid packets of every protocol the engine knows are mutated at random (bit flips,
//! truncation, extension, length fields, fragment bits) and driven through the replay
//! path — IP input checks, defrag, track, confirm or discard — with a small table, so
//! that early drop, expiry and the GC worker run too. Deterministic (fixed seeds).

use ctrack_core::conntrack::{Config, Conntrack, Hook, Verdict};
use ctrack_core::defrag::{Defrag, DefragResult};
use ctrack_core::packet::{checksum, ip};
use ctrack_core::{Instant, Sysctls};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8], frag: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, proto, 0, 0];
    let tot = (20 + l4.len()) as u16;
    p[2..4].copy_from_slice(&tot.to_be_bytes());
    p[6..8].copy_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum::compute(0, &p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn ipv6(nh: u8, src: u8, dst: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[nh, 64]);
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[15] = src;
    p.extend_from_slice(&a);
    a[15] = dst;
    p.extend_from_slice(&a);
    p.extend_from_slice(l4);
    p
}

fn seeds(rng: &mut Rng) -> Vec<Vec<u8>> {
    let a = [10, 1, 0, (rng.below(4) + 1) as u8];
    let b = [10, 2, 0, (rng.below(4) + 1) as u8];
    let sp = (1000 + rng.below(8)) as u16;
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sp.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&(rng.next() as u32).to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = [0x02, 0x12, 0x10, 0x11, 0x04, 0x18][rng.below(6) as usize];
    tcp[14] = 0xff;
    let mut udp = vec![0u8; 12];
    udp[0..2].copy_from_slice(&sp.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&12u16.to_be_bytes());
    let icmp = [8, 0, 0, 0, 0, 7, 0, 1];
    let quoted = ipv4(17, a, b, &udp, 0);
    let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&quoted[..28]);
    let sctp = [
        0u8, 5, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 20, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0,
    ];
    let gre = [0u8, 0, 0x08, 0];
    vec![
        ipv4(6, a, b, &tcp, 0),
        ipv4(6, b, a, &tcp, 0),
        ipv4(17, a, b, &udp, 0),
        ipv4(1, a, b, &icmp, 0),
        ipv4(1, b, a, &err, 0),
        ipv4(132, a, b, &sctp, 0),
        ipv4(47, a, b, &gre, 0),
        ipv4(136, a, b, &udp, 0),
        ipv4(17, a, b, &udp, 0x2000),
        ipv4(17, a, b, &udp[..8], 0x0001),
        ipv6(6, a[3], b[3], &tcp),
        ipv6(58, a[3], b[3], &[128, 0, 0, 0, 0, 9, 0, 1]),
        ipv6(58, b[3], a[3], &[1, 4, 0, 0, 0, 0, 0, 0]),
        ipv6(44, a[3], b[3], &[17, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0]),
        ipv6(0, a[3], b[3], &[59, 0, 1, 4, 0, 0, 0, 0]),
    ]
}

fn mutate(rng: &mut Rng, mut p: Vec<u8>) -> Vec<u8> {
    match rng.below(6) {
        0 => {}
        1 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(p.len() as u64) as usize;
                p[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let n = rng.below(p.len() as u64 + 1) as usize;
            p.truncate(n);
        }
        3 => {
            for _ in 0..rng.below(64) {
                p.push(rng.next() as u8);
            }
        }
        4 => {
            let i = rng.below(p.len() as u64) as usize;
            p[i] = rng.next() as u8;
        }
        _ => {
            // A random byte anywhere in the L4 header area.
            let i = (20 + rng.below(40)) as usize;
            if i < p.len() {
                p[i] = rng.next() as u8;
            }
        }
    }
    p
}

fn drive(seed: u64, max: &str, iterations: u32) {
    let mut rng = Rng(seed);
    let mut s = Sysctls::default();
    s.set("nf_conntrack_max", max).unwrap();
    s.set("nf_conntrack_buckets", "512").unwrap();
    s.set("nf_conntrack_acct", "1").unwrap();
    s.set("nf_conntrack_udp_timeout", "3").unwrap();
    let limit: u32 = max.parse().unwrap();
    let mut ct = Conntrack::new(Config {
        sysctls: s.clone(),
        seed,
        events: true,
    });
    let mut defrag = Defrag::new();
    let mut now = Instant::from_secs(1_000);
    for i in 0..iterations {
        now = now + ctrack_core::Duration::from_millis(rng.below(300));
        let base = seeds(&mut rng);
        let pick = rng.below(base.len() as u64) as usize;
        let pkt = mutate(&mut rng, base[pick].clone());
        let checked = match pkt.first().map(|b| b >> 4) {
            Some(6) => ip::check_ipv6(&pkt),
            _ => ip::check_ipv4(&pkt),
        };
        let Ok(data) = checked else { continue };
        let data = match defrag.push(now, data, 0, &s) {
            DefragResult::NotFragment | DefragResult::PassThrough => data.to_vec(),
            DefragResult::Complete(d) => d.to_vec(),
            DefragResult::Held | DefragResult::Dropped(_) => continue,
        };
        let hook = if i % 7 == 0 {
            Hook::LocalOut
        } else {
            Hook::PreRouting
        };
        let t = ct.track(now, &data, hook, 0);
        if t.verdict == Verdict::Accept && rng.below(4) != 0 {
            let _ = ct.confirm(now, &t);
        } else {
            ct.discard(&t);
        }
        ct.gc(now);
        let _ = ct.drain_events();
        assert!(ct.count() <= limit, "count {} > max {limit}", ct.count());
        for e in ct.entries(now) {
            assert!(!e.expired(now), "an expired entry is listed");
            assert!(e.status.has(ctrack_core::Status::CONFIRMED));
        }
    }
}

#[test]
fn mutated_packets_never_panic_small_table() {
    for seed in 1u64..=4 {
        drive(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), "16", 20_000);
    }
}

#[test]
fn mutated_packets_never_panic_large_table() {
    drive(0xdead_beef_1234_5678, "262144", 40_000);
}
