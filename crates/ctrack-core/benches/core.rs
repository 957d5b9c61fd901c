//! Micro-benchmarks of the engine's hot pieces (divan): the keyed flow hash (one at a
//! time, and a round in SIMD lanes as the batch path hashes), the hit
//! path one packet at a time and in batches, new-flow creation, and a TCP lifecycle.
//! Run with `cargo bench -p ctrack-core`; the workload figures of issue 6 come from
//! `ctrack bench` (BENCHMARKS.md), these isolate the pieces behind them.

use ctrack_core::batch::{BatchResult, Next};
use ctrack_core::conntrack::{Config, Conntrack, Hook, Verdict};
use ctrack_core::sip_lanes::{self, Path};
use ctrack_core::table::FlowHasher;
use ctrack_core::tuple::{Addr, Family, Tuple};
use ctrack_core::{Instant, Sysctls};
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

/// An IPv4 UDP packet with checksum 0 (not verified), 42-byte frame's IP part.
fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&8u16.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    let mut acc: u32 = 0;
    for c in p[..20].chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let c = !(acc as u16);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn client(i: u32) -> [u8; 4] {
    [
        11 + (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]
}

fn engine(flows: u32) -> Conntrack {
    let mut s = Sysctls::default();
    let buckets = flows.next_power_of_two().max(1024);
    s.set("nf_conntrack_buckets", &buckets.to_string())
        .expect("sysctl");
    s.set("nf_conntrack_max", &(buckets * 2).to_string())
        .expect("sysctl");
    Conntrack::new(Config {
        sysctls: s,
        seed: 0x5eed,
        events: false,
    })
}

/// The keyed hash of a tuple (SipHash-1-3 on packed words), IPv4 and IPv6.
#[divan::bench(args = [Family::V4, Family::V6])]
fn flow_hash(b: Bencher, family: Family) {
    let h = FlowHasher::new(7);
    let tuples: Vec<Tuple> = (0..1024u32)
        .map(|i| {
            let (s, d) = match family {
                Family::V4 => (Addr::v4(client(i)), Addr::v4([10, 1, 1, 2])),
                Family::V6 => {
                    let mut a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                    a[12..].copy_from_slice(&i.to_be_bytes());
                    (
                        Addr::v6(a),
                        Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
                    )
                }
            };
            Tuple {
                src: s,
                dst: d,
                src_u: 1000,
                dst_u: 53,
                family,
                proto: 17,
            }
        })
        .collect();
    b.counter(divan::counter::ItemsCount::new(tuples.len()))
        .bench(|| {
            let mut acc = 0u64;
            for t in &tuples {
                acc ^= h.hash(black_box(t), 0);
            }
            acc
        });
}

/// The batch path's hash: 1,024 IPv4 tuples in rounds of 16, hashed together in SIMD
/// lanes on each path this CPU has (the same SipHash-1-3 of the same words).
#[divan::bench(args = [Path::Avx512, Path::Avx2, Path::Scalar])]
fn flow_hash_lanes(b: Bencher, path: Path) {
    let words: Vec<[u64; 2]> = (0..1024u32)
        .map(|i| {
            let t = Tuple {
                src: Addr::v4(client(i)),
                dst: Addr::v4([10, 1, 1, 2]),
                src_u: 1000,
                dst_u: 53,
                family: Family::V4,
                proto: 17,
            };
            FlowHasher::v4_words(&t, 0)
        })
        .collect();
    b.counter(divan::counter::ItemsCount::new(words.len()))
        .bench(|| {
            let mut acc = 0u64;
            sip_lanes::sip13_each(path, 7, 9, black_box(&words), |h| acc ^= h);
            acc
        });
}

/// One UDP flow, one packet at a time: lookup, tracker, refresh, confirm.
#[divan::bench]
fn hit_single(b: Bencher) {
    let mut ct = engine(1);
    let p = udp4([10, 1, 1, 1], 1, [10, 1, 1, 2], 2);
    let mut ns = 1_000_000_000u64;
    b.bench_local(|| {
        ns += 1000;
        let now = Instant::from_nanos(ns);
        let t = ct.track(now, black_box(&p), Hook::PreRouting, 0);
        ct.confirm(now, &t);
        t.verdict == Verdict::Accept
    });
}

/// The same, 32 packets per `track_batch` call.
#[divan::bench]
fn hit_batch32(b: Bencher) {
    let mut ct = engine(1);
    let p = udp4([10, 1, 1, 1], 1, [10, 1, 1, 2], 2);
    let refs: Vec<&[u8]> = vec![&p[..]; 32];
    let mut out: Vec<BatchResult> = Vec::with_capacity(32);
    let mut ns = 1_000_000_000u64;
    b.counter(divan::counter::ItemsCount::new(32usize))
        .bench_local(|| {
            ns += 32_000;
            out.clear();
            ct.track_batch(
                Instant::from_nanos(ns),
                &refs,
                Hook::PreRouting,
                0,
                &mut out,
                |_, _, _| Next::Confirm,
            );
            out.len()
        });
}

/// New UDP flows: allocation, both tuples linked at confirm (10,000 per iteration, a
/// fresh table each time).
#[divan::bench(sample_count = 20)]
fn new_flows_10k(b: Bencher) {
    let pkts: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| udp4(client(i), 1, [10, 1, 1, 2], 2))
        .collect();
    b.counter(divan::counter::ItemsCount::new(pkts.len()))
        .with_inputs(|| engine(10_000))
        .bench_local_values(|mut ct| {
            let now = Instant::from_nanos(1_000_000_000);
            for p in &pkts {
                let t = ct.track(now, p, Hook::PreRouting, 0);
                ct.confirm(now, &t);
            }
            ct.count()
        });
}

/// The same flows through `track_batch`, 32 per call: the batch's round stages, the
/// one-step UDP creation and the one-step confirm (`new_flows_10k` is the general
/// path, one packet at a time, on the same flows).
#[divan::bench(sample_count = 20)]
fn new_flows_10k_batch32(b: Bencher) {
    let pkts: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| udp4(client(i), 1, [10, 1, 1, 2], 2))
        .collect();
    let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
    b.counter(divan::counter::ItemsCount::new(pkts.len()))
        .with_inputs(|| (engine(10_000), Vec::<BatchResult>::with_capacity(32)))
        .bench_local_values(|(mut ct, mut out)| {
            let now = Instant::from_nanos(1_000_000_000);
            for chunk in refs.chunks(32) {
                out.clear();
                ct.track_batch(now, chunk, Hook::PreRouting, 0, &mut out, |_, _, _| {
                    Next::Confirm
                });
            }
            ct.count()
        });
}
