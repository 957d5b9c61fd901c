//! `ctrack bench`: the synthetic workloads of issue 6, modelled on Open vSwitch's
//! `test-conntrack benchmark` so the figures compare with a known peer.
//!
//! Every workload generates its packets in memory before the clock starts (no file
//! I/O in the timed part), then runs them through the engine exactly as replay does
//! (`track`, then `confirm` for packets that would be forwarded) in batches. With
//! `--baseline`, the same keys go through a bare keyed-hash map (extract the 5-tuple,
//! hash it with the table's keyed hash, find-or-insert in a `std` hash map) in the same
//! run: the "physical limit" proxy, and ctrack's ratio to it is printed.
//!
//! How to run each figure, and the numbers measured, are in `BENCHMARKS.md`.

use anyhow::{bail, Result};
use clap::Args;
use ctrack::replay::{Replay, ReplayOptions};
use ctrack_core::batch::{BatchResult, Next};
use ctrack_core::conntrack::{Config, Conntrack, Hook, Tracked, Verdict};
use ctrack_core::shard::Sharded;
use ctrack_core::table::FlowHasher;
use ctrack_core::tuple::{Addr, Family, Tuple};
use ctrack_core::{Instant, Sysctls};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::process::ExitCode;
use std::time::Instant as Clock;

/// Arguments of `ctrack bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// hit, udp-flows, tcp, new-flows, live, memory, scaling, replay, hash, nat-new,
    /// nat-hit, walk, or all.
    workload: String,
    /// Worker threads (scaling: compared with one thread).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Number of flows (default: the workload's own).
    #[arg(long)]
    flows: Option<usize>,
    /// Number of packets (default: the workload's own).
    #[arg(long)]
    packets: Option<usize>,
    /// Packets per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Also time a bare keyed-hash lookup of the same keys and print the ratio.
    #[arg(long)]
    baseline: bool,
    /// Repeat each timed run and keep the best (the VM is noisy).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// replay: also write the generated capture to this file, so `ctrack replay FILE`
    /// can be timed (or profiled) on the same packets.
    #[arg(long)]
    save: Option<std::path::PathBuf>,
}

/// Generated packets: one flat buffer plus (offset, length) spans, so the timed loop
/// walks memory linearly as a NIC ring would.
#[derive(Default)]
struct Packets {
    buf: Vec<u8>,
    spans: Vec<(u32, u16)>,
}

impl Packets {
    fn push(&mut self, p: &[u8]) {
        let off = u32::try_from(self.buf.len()).expect("bench packets exceed 4 GiB");
        self.buf.extend_from_slice(p);
        self.spans.push((off, p.len() as u16));
    }
    fn len(&self) -> usize {
        self.spans.len()
    }
    #[inline]
    fn get(&self, i: usize) -> &[u8] {
        let (o, l) = self.spans[i];
        &self.buf[o as usize..o as usize + usize::from(l)]
    }
}

/// One result line.
struct Figure {
    name: &'static str,
    packets: usize,
    secs: f64,
    baseline_secs: Option<f64>,
    extra: String,
}

impl Figure {
    fn print(&self) {
        let ns = self.secs * 1e9 / self.packets as f64;
        let mpps = self.packets as f64 / self.secs / 1e6;
        let mut line = format!(
            "{:<10} {:>10} pkts  {:>7.2} Mpps  {:>7.1} ns/pkt",
            self.name, self.packets, mpps, ns
        );
        if let Some(b) = self.baseline_secs {
            let bns = b * 1e9 / self.packets as f64;
            line += &format!("  baseline {bns:>6.1} ns/pkt  ratio {:.2}x", self.secs / b);
        }
        if !self.extra.is_empty() {
            line += "  ";
            line += &self.extra;
        }
        println!("{line}");
    }
}

/// Run `ctrack bench`.
pub(crate) fn run(a: BenchArgs) -> Result<ExitCode> {
    if a.batch == 0 || a.threads == 0 || a.repeat == 0 {
        bail!("--batch, --threads and --repeat must be at least 1");
    }
    let all = [
        "hit",
        "udp-flows",
        "tcp",
        "new-flows",
        "live",
        "memory",
        "scaling",
        "replay",
        "hash",
        "nat-new",
        "nat-hit",
        "walk",
    ];
    let list: Vec<&str> = if a.workload == "all" {
        all.to_vec()
    } else if all.contains(&a.workload.as_str()) {
        vec![a.workload.as_str()]
    } else {
        bail!(
            "unknown workload {:?}: expected one of {} or all",
            a.workload,
            all.join(", ")
        );
    };
    for w in list {
        match w {
            "hit" => hit(&a).print(),
            "udp-flows" => udp_flows(&a).print(),
            "tcp" => tcp(&a).print(),
            "new-flows" => new_flows(&a).print(),
            "live" => live(&a).print(),
            "memory" => memory(&a),
            "scaling" => scaling(&a),
            "replay" => replay(&a)?.print(),
            "hash" => hash_candidates(&a),
            "nat-new" => nat_new(&a).print(),
            "nat-hit" => nat_hit(&a).print(),
            "walk" => walk(&a),
            _ => unreachable!(),
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- packet builders

fn csum(mut acc: u32, data: &[u8]) -> u32 {
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = fold(csum(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..].copy_from_slice(l4);
    p
}

/// A UDP/IPv4 packet with checksum 0 (as OVS's benchmark builds them).
fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

mod tcpf {
    pub(super) const FIN: u8 = 0x01;
    pub(super) const SYN: u8 = 0x02;
    pub(super) const PSH: u8 = 0x08;
    pub(super) const ACK: u8 = 0x10;
}

/// A TCP/IPv4 segment with a correct checksum (PREROUTING verifies it).
#[allow(clippy::too_many_arguments)]
fn tcp4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + payload];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    for (i, b) in l4[20..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    let c = fold(csum(csum(0, &pseudo), &l4));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 6, &l4)
}

/// The client address of flow `i` (unique per flow, routable: 11.0.0.0/8 upward).
fn client(i: usize) -> [u8; 4] {
    let i = i as u32;
    [
        11 + (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]
}

const SERVER: [u8; 4] = [10, 1, 1, 2];

/// Flow `i`'s UDP packet in direction `reply`.
fn udp_flow(i: usize, reply: bool) -> Vec<u8> {
    if reply {
        udp4(SERVER, 2, client(i), 1, 0)
    } else {
        udp4(client(i), 1, SERVER, 2, 0)
    }
}

/// The 8 packets of one TCP lifecycle: SYN, SYN-ACK, ACK, data, ACK, FIN, FIN-ACK, ACK.
fn tcp_life(i: usize) -> [Vec<u8>; 8] {
    use tcpf::*;
    let (c, s) = (client(i), SERVER);
    let (cp, sp) = (1024 + (i % 50000) as u16, 80);
    let (ci, si) = (1000u32, 5000u32);
    [
        tcp4(c, cp, s, sp, ci, 0, SYN, 0),
        tcp4(s, sp, c, cp, si, ci + 1, SYN | ACK, 0),
        tcp4(c, cp, s, sp, ci + 1, si + 1, ACK, 0),
        tcp4(c, cp, s, sp, ci + 1, si + 1, PSH | ACK, 10),
        tcp4(s, sp, c, cp, si + 1, ci + 11, ACK, 0),
        tcp4(c, cp, s, sp, ci + 11, si + 1, FIN | ACK, 0),
        tcp4(s, sp, c, cp, si + 1, ci + 12, FIN | ACK, 0),
        tcp4(c, cp, s, sp, ci + 12, si + 2, ACK, 0),
    ]
}

// ---------------------------------------------------------------- engines

fn sysctls_for(flows: usize) -> Sysctls {
    let mut s = Sysctls::default();
    let buckets = flows.next_power_of_two().max(262_144);
    s.set("nf_conntrack_buckets", &buckets.to_string())
        .expect("valid sysctl");
    s.set("nf_conntrack_max", &(buckets * 2).to_string())
        .expect("valid sysctl");
    s
}

fn engine(flows: usize) -> Conntrack {
    Conntrack::new(Config {
        sysctls: sysctls_for(flows),
        seed: 0x5eed,
        events: false,
    })
}

/// Counts of what the engine did, to show the workload is what it claims to be.
#[derive(Default, Clone, Copy)]
struct Tally {
    new: u64,
    established: u64,
    invalid: u64,
    dropped: u64,
}

impl Tally {
    fn add(&mut self, t: &Tracked) {
        use ctrack_core::CtState;
        match t.ctstate() {
            None => self.dropped += 1,
            Some(CtState::New) => self.new += 1,
            Some(CtState::Invalid) => self.invalid += 1,
            Some(_) => self.established += 1,
        }
    }
    fn show(&self) -> String {
        format!(
            "[new {} est {} invalid {} drop {}]",
            self.new, self.established, self.invalid, self.dropped
        )
    }
}

/// Run `pkts` through `ct` in batches of `batch`: track, then confirm (or discard a
/// dropped packet's entry), as the replay pipeline does. Time advances 1 µs a packet.
fn drive(ct: &mut Conntrack, pkts: &Packets, batch: usize, t0: u64, tally: &mut Tally) -> u64 {
    drive_with(ct, pkts, batch, t0, tally, |_, t, _, _| {
        if t.verdict == Verdict::Drop {
            Next::Discard
        } else {
            Next::Confirm
        }
    })
}

/// [`drive`] with the caller's `pipeline` between each packet's track and confirm: it
/// gets the packet, what `track` gave it, the engine and the batch's time.
fn drive_with<F>(
    ct: &mut Conntrack,
    pkts: &Packets,
    batch: usize,
    t0: u64,
    tally: &mut Tally,
    mut pipeline: F,
) -> u64
where
    F: FnMut(&[u8], &Tracked, &mut Conntrack, Instant) -> Next,
{
    let mut now_ns = t0;
    let mut out: Vec<BatchResult> = Vec::with_capacity(batch);
    let mut refs: Vec<&[u8]> = Vec::with_capacity(batch);
    let n = pkts.len();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        refs.clear();
        refs.extend((i..end).map(|k| pkts.get(k)));
        let now = Instant::from_nanos(now_ns);
        out.clear();
        ct.track_batch(now, &refs, Hook::PreRouting, 0, &mut out, |k, t, ct| {
            pipeline(refs[k], t, ct, now)
        });
        for r in &out {
            tally.add(&r.tracked);
        }
        now_ns += 1000 * (end - i) as u64;
        i = end;
    }
    now_ns
}

/// Seconds (best of `--repeat`) to drive `pkts` through an engine sized for `flows`
/// that `fill` went through first, untimed, followed by `settle` (given the time the
/// fill ended, it returns the time the timed part starts at); `tally` counts the
/// timed packets of the last run.
fn after_fill(
    a: &BenchArgs,
    flows: usize,
    fill: &Packets,
    pkts: &Packets,
    tally: &mut Tally,
    settle: impl Fn(&mut Conntrack, u64) -> u64,
) -> f64 {
    best(
        a.repeat,
        || {
            let mut ct = engine(flows);
            let end = drive(&mut ct, fill, a.batch, 1_000_000_000, &mut Tally::default());
            let start = settle(&mut ct, end);
            (ct, start)
        },
        |(ct, start)| {
            *tally = Tally::default();
            drive(ct, pkts, a.batch, *start, tally)
        },
    )
}

/// Best of `repeat` runs of `f` (each gets a fresh state from `setup`), in seconds.
fn best<S, R>(repeat: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(&mut S) -> R) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let mut s = setup();
        let t = Clock::now();
        std::hint::black_box(f(&mut s));
        best = best.min(t.elapsed().as_secs_f64());
        drop(s);
    }
    best
}

// ---------------------------------------------------------------- baseline

/// A key carrying its precomputed keyed hash, so the map's own hasher only passes it on.
#[derive(PartialEq, Eq)]
struct Prehashed(u64, Tuple);

impl Hash for Prehashed {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0);
    }
}

#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("Prehashed only writes a u64")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[derive(Default, Clone, Copy)]
struct BuildPassThrough;

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// The 5-tuple of an IPv4 TCP/UDP packet, read at fixed offsets (the least a lookup
/// must do).
#[inline]
fn bare_tuple(p: &[u8]) -> Tuple {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    Tuple {
        src: Addr::v4([p[12], p[13], p[14], p[15]]),
        dst: Addr::v4([p[16], p[17], p[18], p[19]]),
        src_u: u16::from_be_bytes([p[ihl], p[ihl + 1]]),
        dst_u: u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]),
        family: Family::V4,
        proto: p[9],
    }
}

/// Bare keyed-hash find-or-insert of every packet's tuple, with a counter update:
/// the physical-limit proxy. Returns seconds (best of `repeat`).
fn baseline(pkts: &Packets, prefill: Option<&Packets>, repeat: usize, cap: usize) -> f64 {
    let hasher = FlowHasher::new(0x5eed);
    best(
        repeat,
        || {
            let mut m: HashMap<Prehashed, u64, BuildPassThrough> =
                HashMap::with_capacity_and_hasher(cap, BuildPassThrough);
            if let Some(pre) = prefill {
                for i in 0..pre.len() {
                    let t = bare_tuple(pre.get(i));
                    m.insert(Prehashed(hasher.hash(&t, 0), t), 0);
                }
            }
            m
        },
        |m| {
            for i in 0..pkts.len() {
                let t = bare_tuple(pkts.get(i));
                *m.entry(Prehashed(hasher.hash(&t, 0), t)).or_insert(0) += 1;
            }
            m.len()
        },
    )
}

// ---------------------------------------------------------------- workloads

/// Time `pkts` through a fresh engine sized for `flows` (best of `--repeat`), with the
/// bare-hash baseline over `cap` keys when `--baseline` asks for it.
fn plain_figure(
    a: &BenchArgs,
    name: &'static str,
    pkts: &Packets,
    flows: usize,
    cap: usize,
) -> Figure {
    let mut tally = Tally::default();
    let secs = best(
        a.repeat,
        || engine(flows),
        |ct| {
            tally = Tally::default();
            drive(ct, pkts, a.batch, 1_000_000_000, &mut tally)
        },
    );
    Figure {
        name,
        packets: pkts.len(),
        secs,
        baseline_secs: a.baseline.then(|| baseline(pkts, None, a.repeat, cap)),
        extra: tally.show(),
    }
}

/// One UDP flow, every packet a full lookup + update + refresh.
fn hit(a: &BenchArgs) -> Figure {
    let n = a.packets.unwrap_or(10_000_000);
    let mut pkts = Packets::default();
    let p = udp_flow(0, false);
    for _ in 0..n {
        pkts.push(&p);
    }
    plain_figure(a, "hit", &pkts, 1, 1)
}

/// `flows` UDP flows × `per_flow` packets: round r sends every flow once,
/// alternating original and reply direction.
fn udp_flows_packets(flows: usize, per_flow: usize) -> Packets {
    let mut pkts = Packets::default();
    for r in 0..per_flow {
        for i in 0..flows {
            pkts.push(&udp_flow(i, r % 2 == 1));
        }
    }
    pkts
}

fn udp_flows(a: &BenchArgs) -> Figure {
    let flows = a.flows.unwrap_or(100_000);
    // `--packets N`: N / flows rounds instead of 10 (e.g. a table that fits in L2
    // run as long as the default one).
    let rounds = a.packets.map_or(10, |n| (n / flows.max(1)).max(1));
    let pkts = udp_flows_packets(flows, rounds);
    plain_figure(a, "udp-flows", &pkts, flows, flows * 2)
}

/// `flows` full TCP lifecycles, 1024 connections in flight at a time.
fn tcp(a: &BenchArgs) -> Figure {
    let flows = a.flows.unwrap_or(100_000);
    let mut pkts = Packets::default();
    for chunk in (0..flows).collect::<Vec<_>>().chunks(1024) {
        let lives: Vec<[Vec<u8>; 8]> = chunk.iter().map(|&i| tcp_life(i)).collect();
        for step in 0..8 {
            for l in &lives {
                pkts.push(&l[step]);
            }
        }
    }
    plain_figure(a, "tcp", &pkts, flows, flows * 2)
}

/// `flows` new UDP flows: creation + confirm of every one, into a fresh engine (its
/// slab's pages are touched for the first time in the timed part). Also timed, on the
/// same line: the same flows into an engine whose slab is warm — as many flows were
/// created and then expired and deleted before the clock starts, so creation reuses
/// freed slots, as in a firewall that has been running for a while.
fn new_flows(a: &BenchArgs) -> Figure {
    let flows = a.flows.unwrap_or(1_000_000);
    let pkts = udp_flows_packets(flows, 1);
    let mut figure = plain_figure(a, "new-flows", &pkts, flows, flows * 2);
    let mut tally = Tally::default();
    let warm = after_fill(a, flows, &pkts, &pkts, &mut tally, |ct, end| {
        // Past the unreplied UDP timeout (30 s): every entry expires.
        let later = end + 60_000_000_000;
        ct.expire(Instant::from_nanos(later));
        assert_eq!(ct.count(), 0, "every entry expired");
        later
    });
    figure.extra = format!(
        "{}; warm slab (as many flows created and expired before): {:.2} M/s, {:.1} ns/flow {}",
        figure.extra,
        pkts.len() as f64 / warm / 1e6,
        warm * 1e9 / pkts.len() as f64,
        tally.show(),
    );
    figure
}

/// Flow `i` of the NAT workloads: a client of its own, source port 1024 + i mod
/// 60,000, to one of 256 DNS servers (so 1,000,000 flows fit a 4-address pool).
fn nat_flow(i: usize) -> Vec<u8> {
    let sport = 1024 + (i % 60_000) as u16;
    udp4(client(i), sport, [10, 1, (i % 256) as u8, 2], 53, 0)
}

/// The SNAT pool of the NAT workloads: `snat to 10.2.0.100-10.2.0.103`.
fn nat_pool() -> ctrack_core::nat::NatRange {
    use ctrack_core::nat::{flags, NatRange};
    NatRange {
        flags: flags::MAP_IPS,
        min_addr: Addr::v4([10, 2, 0, 100]),
        max_addr: Addr::v4([10, 2, 0, 103]),
        min_port: 0,
        max_port: 0,
        base_port: 0,
    }
}

/// [`drive`] through SNAT as the hooks do it: a new entry gets a null DNAT binding
/// (prerouting) and an SNAT binding in `range` (postrouting: the kernel's unique-tuple
/// search, bysource index), then every packet is copied to a scratch buffer (the
/// NIC's) and rewritten by its entry's binding with incremental checksums (original
/// packets at postrouting, replies de-NATed at prerouting), then confirmed.
fn drive_nat(
    ct: &mut Conntrack,
    pkts: &Packets,
    batch: usize,
    t0: u64,
    range: &ctrack_core::nat::NatRange,
    tally: &mut Tally,
) -> u64 {
    use ctrack_core::nat::Manip;
    use ctrack_core::tuple::Dir;
    let mut scratch = [0u8; 2048];
    drive_with(ct, pkts, batch, t0, tally, |p, t, ct, now| {
        if t.verdict == Verdict::Drop {
            return Next::Discard;
        }
        let (Some(id), Some(ci)) = (t.entry, t.ctinfo) else {
            return Next::Confirm;
        };
        let bound = ct.nat_initialized(id, Manip::Src)
            || (ct.nat_null_binding(now, id, Manip::Dst)
                && ct.nat_setup(now, id, range, Manip::Src));
        if !bound {
            return Next::Discard;
        }
        let buf = &mut scratch[..p.len()];
        buf.copy_from_slice(p);
        let manip = if ci.dir() == Dir::Original {
            Manip::Src
        } else {
            Manip::Dst
        };
        if !ct.nat_packet(id, ci.dir(), manip, buf) {
            return Next::Discard;
        }
        std::hint::black_box(&buf);
        Next::Confirm
    })
}

/// `flows` new UDP flows through SNAT to a 4-address pool (creation + binding +
/// rewrite + confirm); the baseline is the same packets without NAT, in the same run.
fn nat_new(a: &BenchArgs) -> Figure {
    let flows = a.flows.unwrap_or(1_000_000);
    let mut pkts = Packets::default();
    for i in 0..flows {
        pkts.push(&nat_flow(i));
    }
    let range = nat_pool();
    let mut tally = Tally::default();
    let secs = best(
        a.repeat,
        || engine(flows),
        |ct| {
            tally = Tally::default();
            drive_nat(ct, &pkts, a.batch, 1_000_000_000, &range, &mut tally)
        },
    );
    // Untimed: how many bindings had to move the source port (the search), so the
    // figure shows the workload exercises it.
    let mut ct = engine(flows);
    let t_end = drive_nat(
        &mut ct,
        &pkts,
        a.batch,
        1_000_000_000,
        &range,
        &mut Tally::default(),
    );
    let entries = ct.entries(Instant::from_nanos(t_end));
    let remapped = entries
        .iter()
        .filter(|e| {
            e.tuple(ctrack_core::Dir::Original).src_u != e.tuple(ctrack_core::Dir::Reply).dst_u
        })
        .count();
    let live = entries.len();
    drop(entries);
    drop(ct);
    let plain = best(
        a.repeat,
        || engine(flows),
        |ct| drive(ct, &pkts, a.batch, 1_000_000_000, &mut Tally::default()),
    );
    let ns = |x: f64| x * 1e9 / pkts.len() as f64;
    Figure {
        name: "nat-new",
        packets: pkts.len(),
        secs,
        baseline_secs: a
            .baseline
            .then(|| baseline(&pkts, None, a.repeat, flows * 2)),
        extra: format!(
            "{} entries {live}, port remapped {remapped}; without NAT {:.1} ns/pkt (NAT costs {:.2}x)",
            tally.show(),
            ns(plain),
            secs / plain
        ),
    }
}

/// One UDP flow through SNAT, both directions: lookup + update + rewrite per packet;
/// the same packets without NAT are timed in the same run.
fn nat_hit(a: &BenchArgs) -> Figure {
    let n = a.packets.unwrap_or(10_000_000);
    let mut pkts = Packets::default();
    let orig = nat_flow(0);
    // The reply comes back to the pool address the binding picks for flow 0.
    let mut probe = engine(1);
    drive_nat(
        &mut probe,
        &{
            let mut p = Packets::default();
            p.push(&orig);
            p
        },
        1,
        1_000_000_000,
        &nat_pool(),
        &mut Tally::default(),
    );
    let pool_addr = probe
        .entries(Instant::from_nanos(1_000_000_000))
        .first()
        .map_or([10, 2, 0, 100], |e| {
            e.tuple(ctrack_core::Dir::Reply).dst.v4_octets()
        });
    let reply = udp4([10, 1, 0, 2], 53, pool_addr, 1024, 0);
    for k in 0..n {
        pkts.push(if k % 2 == 0 { &orig } else { &reply });
    }
    let range = nat_pool();
    let mut tally = Tally::default();
    let secs = best(
        a.repeat,
        || engine(1),
        |ct| {
            tally = Tally::default();
            drive_nat(ct, &pkts, a.batch, 1_000_000_000, &range, &mut tally)
        },
    );
    let plain = best(
        a.repeat,
        || engine(1),
        |ct| drive(ct, &pkts, a.batch, 1_000_000_000, &mut Tally::default()),
    );
    Figure {
        name: "nat-hit",
        packets: n,
        secs,
        baseline_secs: a.baseline.then(|| baseline(&pkts, None, a.repeat, 2)),
        extra: format!(
            "{}; without NAT {:.1} ns/pkt (NAT costs {:.2}x)",
            tally.show(),
            plain * 1e9 / n as f64,
            secs / plain
        ),
    }
}

/// A pseudo-random permutation step (xorshift), deterministic.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Lookup + update with `flows` live connections, packets on random flows.
fn live(a: &BenchArgs) -> Figure {
    let flows = a.flows.unwrap_or(1_000_000);
    let n = a.packets.unwrap_or(5_000_000);
    let fill = udp_flows_packets(flows, 1);
    let mut pkts = Packets::default();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..n {
        let i = (xorshift(&mut s) % flows as u64) as usize;
        pkts.push(&udp_flow(i, s & 1 == 1));
    }
    let mut tally = Tally::default();
    let secs = after_fill(a, flows, &fill, &pkts, &mut tally, |_, end| end);
    Figure {
        name: "live",
        packets: n,
        secs,
        baseline_secs: a
            .baseline
            .then(|| baseline(&pkts, Some(&fill), a.repeat, flows * 2)),
        extra: format!("{} live {}", tally.show(), flows),
    }
}

/// The floor of `live` in this table's design: the same lookups (as many live flows,
/// packets on random flows, in rounds of 16 as the batch makes them) with nothing but
/// the batch's lookup — group lines requested, tag walks, then the lookup itself with
/// its walk's node as the hint — on tuples and hashes made beforehand: no parse, no
/// hashing, no tracker, no update. Beside it: the same lookups in a copy of the
/// chains (`ctrack_core::groups` alone, rebuilt from the table's chains: its first
/// tagged node's entry compared); the memory alone of an index whose lookup reads one
/// bucket word then the entry (two dependent random reads a packet, no chain); and one
/// random entry read a packet, what the memory serves at all.
fn walk(a: &BenchArgs) {
    let flows = a.flows.unwrap_or(1_000_000);
    let n = a.packets.unwrap_or(5_000_000);
    let mut ct = engine(flows);
    let end = drive(
        &mut ct,
        &udp_flows_packets(flows, 1),
        a.batch,
        1_000_000_000,
        &mut Tally::default(),
    );
    let table = ct.table();
    let hasher = table.hasher();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let keys: Vec<(Tuple, u64)> = (0..n)
        .map(|_| {
            let i = (xorshift(&mut s) % flows as u64) as usize;
            let t = bare_tuple(&udp_flow(i, s & 1 == 1));
            (t, hasher.hash(&t, 0))
        })
        .collect();
    let (secs, found) = walk_table(a, table, &keys, Instant::from_nanos(end));
    let grouped = grouped_chains(table);
    let (group_secs, grouped_found) = walk_grouped(a, table, &grouped, &keys);
    let (two, one) = walk_memory(a, table, &keys, flows, &mut s);
    let show = |secs: f64| {
        format!(
            "{:.1} ns ({:.2} Mpps)",
            secs * 1e9 / n as f64,
            n as f64 / secs / 1e6
        )
    };
    println!(
        "walk       {n} lookups on {flows} live flows ({found} found): this table's lookup alone {}; in grouped bucket lines ({grouped_found} found, {} B a connection, {} overflow groups) {}; two dependent random reads (a bucket, then the entry) {}; one random entry read {}",
        show(secs),
        grouped.memory_bytes() / flows.max(1),
        grouped.overflow_groups(),
        show(group_secs),
        show(two),
        show(one)
    );
}

/// Rounds of `walk`'s lookups.
const WALK_ROUND: usize = 16;

/// Seconds (best of `--repeat`) to run `keys` through `round_hits` in rounds of
/// [`WALK_ROUND`], and the hits it counted in the last run.
fn time_rounds(
    a: &BenchArgs,
    keys: &[(Tuple, u64)],
    mut round_hits: impl FnMut(&[(Tuple, u64)]) -> usize,
) -> (f64, usize) {
    let mut found = 0;
    let secs = best(
        a.repeat,
        || (),
        |_| {
            found = keys.chunks(WALK_ROUND).map(&mut round_hits).sum();
            found
        },
    );
    (secs, found)
}

/// `walk`'s lookups in this table as the batch makes them (group lines requested, a
/// tag walk, the lookup with its hint): seconds (best of `--repeat`) and hits.
fn walk_table(
    a: &BenchArgs,
    table: &ctrack_core::table::Table,
    keys: &[(Tuple, u64)],
    now: Instant,
) -> (f64, usize) {
    use ctrack_core::table::TagWalk;
    use ctrack_core::zone::Zone;
    time_rounds(a, keys, |round| {
        for &(_, h) in round {
            table.prefetch(h);
        }
        let mut walks = [TagWalk::Unknown; WALK_ROUND];
        for (w, &(_, h)) in walks.iter_mut().zip(round) {
            *w = table.tag_walk_start(h);
        }
        for (w, &(_, h)) in walks.iter_mut().zip(round) {
            *w = table.tag_step(*w, h, true);
        }
        // Each lookup with its walk's node as the hint, as the batch gives it.
        round
            .iter()
            .zip(walks)
            .filter(|&((t, h), w)| {
                let hint = match w {
                    TagWalk::Tagged(node) => node,
                    _ => ctrack_core::table::NO_NODE,
                };
                matches!(
                    table.find_clean(t, Zone::DEFAULT, *h, now, hint),
                    Some(Some(_))
                )
            })
            .count()
    })
}

/// The table's chains in grouped bucket lines: built from its chains in their order,
/// each node with its tag.
fn grouped_chains(table: &ctrack_core::table::Table) -> ctrack_core::groups::GroupedChains {
    use ctrack_core::tuple::Dir;
    let hasher = table.hasher();
    let mut g = ctrack_core::groups::GroupedChains::new(table.buckets());
    for b in 0..table.buckets() {
        for &(id, dir) in table.bucket_nodes(b).iter().rev() {
            let Some(e) = table.get(id) else { continue };
            let h = hasher.hash(&e.tuple(dir), e.zone.id_for(dir));
            let node = id * 2 + u32::from(dir == Dir::Reply);
            g.insert_front(b, node, h as u16);
        }
    }
    g
}

/// `walk`'s lookups in grouped bucket lines: the bucket's line, its first node with
/// the tag, that entry's tuple compared (the group's deadline bound taken as ahead of
/// the lookups' time, so the nodes in front are passed without their entries).
/// Seconds (best of `--repeat`) and hits.
fn walk_grouped(
    a: &BenchArgs,
    table: &ctrack_core::table::Table,
    grouped: &ctrack_core::groups::GroupedChains,
    keys: &[(Tuple, u64)],
) -> (f64, usize) {
    use ctrack_core::tuple::Dir;
    time_rounds(a, keys, |round| {
        for &(_, h) in round {
            grouped.prefetch(table.bucket_of_hash(h));
        }
        let mut cand = [u32::MAX; WALK_ROUND];
        for (c, &(_, h)) in cand.iter_mut().zip(round) {
            if let Some(node) = grouped.first_with_tag(table.bucket_of_hash(h), h as u16) {
                *c = node;
                table.prefetch_entry(node / 2);
            }
        }
        cand.iter()
            .zip(round)
            .filter(|&(&c, (t, _))| {
                let dir = if c & 1 == 0 {
                    Dir::Original
                } else {
                    Dir::Reply
                };
                table.get(c / 2).is_some_and(|e| e.has_tuple(dir, t))
            })
            .count()
    })
}

/// The memory probes of `walk`: two dependent random reads a packet (an index of one
/// u32 per bucket naming an entry of 104 bytes, the entry's size), then one random
/// entry read a packet; seconds of each (best of `--repeat`).
fn walk_memory(
    a: &BenchArgs,
    table: &ctrack_core::table::Table,
    keys: &[(Tuple, u64)],
    flows: usize,
    s: &mut u64,
) -> (f64, f64) {
    let index: Vec<u32> = (0..table.buckets())
        .map(|_| (xorshift(s) % flows as u64) as u32)
        .collect();
    let mut entries = vec![[0u64; 13]; flows];
    let two = best(
        a.repeat,
        || (),
        |_| {
            // Independent loads within a stage: the CPU has a round's in flight.
            for round in keys.chunks(WALK_ROUND) {
                let mut at = [0usize; WALK_ROUND];
                for (e, &(_, h)) in at.iter_mut().zip(round) {
                    *e = index[table.bucket_of_hash(h) as usize] as usize;
                }
                for &e in &at {
                    entries[e][1] = entries[e][0].wrapping_add(entries[e][12]);
                }
            }
            entries[0][1]
        },
    );
    let ids: Vec<usize> = (0..keys.len())
        .map(|_| (xorshift(s) % flows as u64) as usize)
        .collect();
    let one = best(
        a.repeat,
        || (),
        |_| {
            for &e in &ids {
                entries[e][1] = entries[e][0].wrapping_add(entries[e][12]);
            }
            entries[0][1]
        },
    );
    (two, one)
}

/// Memory per connection entry, all in: entry, both index nodes, the groups, slab
/// slack.
fn memory(a: &BenchArgs) {
    let flows = a.flows.unwrap_or(1_000_000);
    let pkts = udp_flows_packets(flows, 1);
    let mut ct = engine(flows);
    let empty = ct.memory_bytes();
    let mut t = Tally::default();
    drive(&mut ct, &pkts, a.batch, 1_000_000_000, &mut t);
    let full = ct.memory_bytes();
    let n = ct.count() as usize;
    println!(
        "memory     {n} entries  {:.1} B/entry all in ({:.1} B/entry without the empty table's groups for {} buckets)  size_of::<Entry>() = {} B",
        full as f64 / n as f64,
        (full - empty.min(full)) as f64 / n as f64,
        ct.buckets(),
        size_of::<ctrack_core::Entry>(),
    );
}

/// The multi-flow workload on a table sharded by a direction-symmetric hash, one
/// worker per `threads`, against one worker: aggregate Mpps and the speed-up.
fn scaling(a: &BenchArgs) {
    let flows = a.flows.unwrap_or(200_000);
    let pkts = udp_flows_packets(flows, 10);
    let configs = [1, a.threads];
    // Best of `--repeat` runs of each configuration, the runs alternated (1, N, 1, N,
    // ...) so that a slow phase of one vCPU hits both sides of the ratio, not one.
    let mut best_secs = [f64::INFINITY; 2];
    for _ in 0..a.repeat {
        for (b, &threads) in best_secs.iter_mut().zip(&configs) {
            *b = b.min(best(
                1,
                || shards_for(&pkts, flows, threads),
                |(sh, per)| {
                    std::thread::scope(|s| {
                        for (w, mine) in per.iter().enumerate() {
                            let sh = &*sh;
                            let batch = a.batch;
                            s.spawn(move || {
                                let mut tally = Tally::default();
                                sh.with_shard(w, |ct| {
                                    drive(ct, mine, batch, 1_000_000_000, &mut tally)
                                });
                            });
                        }
                    });
                    sh.count()
                },
            ));
        }
    }
    let mut results = Vec::new();
    for (secs, threads) in best_secs.into_iter().zip(configs) {
        let mpps = pkts.len() as f64 / secs / 1e6;
        println!(
            "scaling    {threads} thread(s)  {} pkts  {mpps:.2} Mpps  {:.1} ns/pkt",
            pkts.len(),
            secs * 1e9 / pkts.len() as f64
        );
        results.push(mpps);
    }
    println!(
        "scaling    {} threads vs 1: {:.2}x",
        a.threads,
        results[1] / results[0]
    );
}

/// A table sharded `threads` ways for `flows`, and `pkts` steered to the worker owning
/// each one's shard (symmetric RSS), in capture order within a worker.
fn shards_for(pkts: &Packets, flows: usize, threads: usize) -> (Sharded, Vec<Packets>) {
    let sh = Sharded::new(
        Config {
            sysctls: sysctls_for(flows),
            seed: 0x5eed,
            events: false,
        },
        threads,
    );
    let mut per: Vec<Packets> = (0..threads).map(|_| Packets::default()).collect();
    for i in 0..pkts.len() {
        let p = pkts.get(i);
        per[sh.shard_of(p) % threads].push(p);
    }
    (sh, per)
}

/// Write a classic pcap (µs, Ethernet) of `n` packets in memory: UDP flows, 100
/// packets each, replies interleaved, 60-byte frames.
fn pcap_bytes(n: usize, flows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + n * 76);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut frame = [0u8; 60];
    frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let pkts: Vec<[Vec<u8>; 2]> = (0..flows)
        .map(|i| [udp_flow(i, false), udp_flow(i, true)])
        .collect();
    for k in 0..n {
        let flow = k % flows;
        let round = k / flows;
        let p = &pkts[flow][round % 2];
        frame[14..14 + p.len()].copy_from_slice(p);
        let ts_us = 1_000_000_000_000u64 + k as u64; // 1 µs apart
        out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&60u32.to_le_bytes());
        out.extend_from_slice(&60u32.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// `ctrack replay` end to end on a warm capture (in memory): read records, decapsulate,
/// IP checks, defrag, track, route, confirm (side assignment is skipped, as `ctrack
/// replay` skips it when neither `--packets` nor a ruleset needs it).
fn replay(a: &BenchArgs) -> Result<Figure> {
    // 76 bytes per record: 1 GiB ≈ 14.1 M packets.
    let n = a.packets.unwrap_or((1usize << 30) / 76);
    let flows = a.flows.unwrap_or(100_000);
    let bytes = pcap_bytes(n, flows);
    let size = bytes.len();
    if let Some(path) = &a.save {
        std::fs::write(path, &bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let mut tally = Tally::default();
    // Best time as `ctrack replay` runs (reader thread + look-ahead window), then on one
    // thread with the window, then with neither.
    let mut secs = [f64::INFINITY; 3];
    for _ in 0..a.repeat {
        for (v, mode) in [(0, Mode::Feed), (1, Mode::Window), (2, Mode::Plain)] {
            let cap = ctrack_capture::Capture::from_bytes("bench.pcap", bytes.clone())?;
            let t = Clock::now();
            let tl = replay_once(&cap, mode)?;
            secs[v] = secs[v].min(t.elapsed().as_secs_f64());
            tally = tl;
        }
    }
    let mpps = |s: f64| n as f64 / s / 1e6;
    Ok(Figure {
        name: "replay",
        packets: n,
        secs: secs[0],
        baseline_secs: None,
        extra: format!(
            "{} capture {:.2} GB; one thread: {:.2} Mpps with the look-ahead window, {:.2} Mpps without",
            tally.show(),
            size as f64 / 1e9,
            mpps(secs[1]),
            mpps(secs[2]),
        ),
    })
}

/// How `replay_once` reads the capture.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// As `ctrack replay`: a reader thread parses and hashes ahead, the look-ahead
    /// window prefetches.
    Feed,
    /// One thread, with the look-ahead window.
    Window,
    /// One thread, no window.
    Plain,
}

/// Tally one replayed packet's outcome.
fn tally_outcome(tl: &mut Tally, o: &ctrack_rules::Outcome) {
    match o.ctstate {
        None => tl.dropped += 1,
        Some(ctrack_core::CtState::New) => tl.new += 1,
        Some(ctrack_core::CtState::Invalid) => tl.invalid += 1,
        Some(_) => tl.established += 1,
    }
}

/// One replay of `cap` as `ctrack replay` runs it without `--packets` or a ruleset (so
/// no side assignment), read as `mode` says.
fn replay_once(cap: &ctrack_capture::Capture, mode: Mode) -> Result<Tally> {
    use ctrack_core::topology::Side;
    let mut r = Replay::new(&ReplayOptions::default());
    // As `ctrack replay` without `--write`.
    r.pipeline.keep_last_packet(false);
    let mut tl = Tally::default();
    if mode == Mode::Feed {
        ctrack::feed::replay(
            cap,
            &mut r,
            |_| {},
            |r, (rec, hint)| -> Result<bool> {
                let rec = rec.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(l3) = rec.payload.l3() {
                    let o = r.packet_outcome(rec.ts_ns, l3, Side::Client, *hint);
                    tally_outcome(&mut tl, &o);
                }
                Ok(true)
            },
        )?;
        std::hint::black_box(r.ct.count());
        return Ok(tl);
    }
    let mut window = ctrack_core::lookahead::Lookahead::default();
    let mut recs = cap.records();
    let mut more = true;
    loop {
        let rec = if mode == Mode::Window {
            while more && !window.is_full() {
                match recs.next_record() {
                    Some(rec) => {
                        let l3 = rec.as_ref().ok().and_then(|x| x.payload.l3());
                        more = rec.is_ok();
                        window.push(&r.ct, rec, l3);
                    }
                    None => more = false,
                }
            }
            window.pop(&r.ct)
        } else {
            recs.next_record().map(|x| (x, None))
        };
        let Some((rec, hint)) = rec else { break };
        let rec = rec?;
        let Some(l3) = rec.payload.l3() else { continue };
        tally_outcome(
            &mut tl,
            &r.packet_outcome(rec.ts_ns, l3, Side::Client, hint),
        );
    }
    std::hint::black_box(r.ct.count());
    Ok(tl)
}

/// The keyed-hash candidates on the same tuples: ns per hash (best of `repeat`).
fn hash_candidates(a: &BenchArgs) {
    use std::hash::BuildHasher as _;
    let n = a.flows.unwrap_or(1_000_000);
    let tuples: Vec<Tuple> = (0..n)
        .map(|i| bare_tuple(&udp_flow(i, i % 2 == 1)))
        .collect();
    let time = |f: &dyn Fn(&Tuple) -> u64| {
        best(
            a.repeat,
            || (),
            |_| {
                let mut acc = 0u64;
                for t in &tuples {
                    acc = acc.wrapping_add(f(std::hint::black_box(t)));
                }
                acc
            },
        ) * 1e9
            / n as f64
    };
    let fh = FlowHasher::new(0x5eed);
    let chosen = time(&|t| fh.hash(t, 0));
    let sip_bytes = time(&|t| {
        // std's DefaultHasher is SipHash-1-3 fed through the byte-buffering `Hasher`
        // interface, as `siphasher::SipHasher13::write` was in the first table.
        let mut h = std::hash::DefaultHasher::new();
        h.write(&t.hash_bytes());
        h.finish()
    });
    let rs = std::collections::hash_map::RandomState::new();
    let std_rs = time(&|t| rs.hash_one(t));
    // The batch path's hash: a round's IPv4 tuples in SIMD lanes (each lane the same
    // SipHash-1-3 of the same two words as the scalar hash).
    use ctrack_core::sip_lanes::{self, Path, MAX_LANES};
    let words: Vec<[u64; 2]> = tuples.iter().map(|t| FlowHasher::v4_words(t, 0)).collect();
    let lanes = |path: Path| {
        best(
            a.repeat,
            || (),
            |_| {
                let mut acc = 0u64;
                let words = std::hint::black_box(&words);
                sip_lanes::sip13_each(path, 1, 2, words, |h| acc = acc.wrapping_add(h));
                acc
            },
        ) * 1e9
            / n as f64
    };
    let best_path = sip_lanes::best_path();
    for path in [Path::Avx512, Path::Avx2, Path::Scalar] {
        let label = format!("SipHash-1-3, {MAX_LANES} in {path:?} lanes");
        let runs = if path == best_path {
            "  (the batch path's here)"
        } else {
            ""
        };
        let t = lanes(path);
        println!("hash       {label:<40} {t:>5.1} ns/hash{runs}");
    }
    println!("hash       SipHash-1-3 on packed words (chosen)    {chosen:>5.1} ns/hash");
    println!("hash       SipHash-1-3, 38-byte Hasher::write      {sip_bytes:>5.1} ns/hash");
    println!("hash       std RandomState (derived Hash)          {std_rs:>5.1} ns/hash");
}
