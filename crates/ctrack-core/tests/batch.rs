//! The batch path against packet-by-packet tracking on a table large enough for the
//! batch's prefetch stages and crowded enough for long chains: UDP and TCP flows in
//! both directions, bad checksums, and time jumps that leave expired entries in the
//! chains (the express hit path gives way to the general one there). Every packet's
//! result, the counters and the final table must be the same; also when the pipeline
//! source-NATs some new connections (their reply tuples then differ from the inverted
//! ones the batch hashed ahead for confirm).

use ctrack_core::batch::Next;
use ctrack_core::conntrack::{Config, Confirmed, Conntrack, Hook, Tracked, Verdict};
use ctrack_core::nat::{Manip, NatRange};
use ctrack_core::packet::checksum;
use ctrack_core::sysctl::Sysctls;
use ctrack_core::{Addr, Entry, Family, Instant};

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let len = 20 + l4.len() as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum::compute(0, &p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// The L4 checksum over the pseudo-header, written at `at` of `l4`.
fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &mut [u8], at: usize) {
    let ph = checksum::pseudo_header(
        Family::V4,
        &Addr::v4(src),
        &Addr::v4(dst),
        l4.len() as u32,
        proto,
    );
    let c = checksum::compute(ph, l4);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, good_sum: bool) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&12u16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, b'p', b'i', b'n', b'g']);
    l4_checksum(src, dst, 17, &mut l4, 6);
    if !good_sum {
        l4[7] ^= 0x55;
    }
    ipv4(src, dst, 17, &l4)
}

fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(&ack.to_be_bytes());
    l4.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    l4_checksum(src, dst, 6, &mut l4, 16);
    ipv4(src, dst, 6, &l4)
}

/// An IPv6 UDP packet (checksum over the IPv6 pseudo-header): it takes the batch's
/// scalar hash, not the IPv4 SIMD lanes.
fn udp6(src: u16, sport: u16, dst: u16, dport: u16) -> Vec<u8> {
    let addr = |x: u16| {
        let mut a = [0u8; 16];
        a[..2].copy_from_slice(&[0x20, 0x01]);
        a[14..].copy_from_slice(&x.to_be_bytes());
        a
    };
    let (s, d) = (addr(src), addr(dst));
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&12u16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, b'p', b'i', b'n', b'g']);
    let ph = checksum::pseudo_header(Family::V6, &Addr::v6(s), &Addr::v6(d), 12, 17);
    let c = checksum::compute(ph, &l4);
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0, 0, 12, 17, 64];
    p.extend_from_slice(&s);
    p.extend_from_slice(&d);
    p.extend_from_slice(&l4);
    p
}

/// [`udp`] with a 4-byte IP option (NOP padding): a 24-byte header, so the batch
/// parses it the general way.
fn udp_with_option(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let plain = udp(src, sport, dst, dport, true);
    let mut p = plain[..20].to_vec();
    p[0] = 0x46;
    p.extend_from_slice(&[1, 1, 1, 0]);
    let len = (plain.len() + 4) as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::compute(0, &p[..24]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&plain[20..]);
    p
}

fn client(i: u32) -> [u8; 4] {
    [10, 1, (i >> 8) as u8, i as u8]
}

const SERVER: [u8; 4] = [10, 9, 0, 1];

/// Batches of packets, each with its time: rounds over the flows, some rounds far
/// apart so that entries expire and linger in the chains until a walk meets them.
fn workload() -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pkts: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut t = 1_000_000_000u64;
    for round in 0..6u32 {
        // Round 3 comes 40 s later: the UDP entries not yet assured (30 s) expire.
        t += if round == 3 {
            40_000_000_000
        } else {
            1_500_000_000
        };
        for i in 0..3000u32 {
            let c = client(i % 2900);
            let sport = 20000 + (i % 1700) as u16;
            let good = next() % 97 != 0;
            let p = if round % 2 == 0 || next() % 3 == 0 {
                udp(c, sport, SERVER, 53, good)
            } else {
                udp(SERVER, 53, c, sport, good)
            };
            pkts.push((t, p));
        }
        // A few hot flows: several packets of one flow in a batch (the batch's hash
        // memo serves the repeats).
        for i in 0..600u32 {
            let c = client(3000 + i % 5);
            pkts.push((t, udp(c, 7000, SERVER, 123, true)));
        }
        // IPv6 flows and IPv4 packets with options: parsed and hashed outside the
        // IPv4 fast view (and their replies' hashes too).
        for i in 0..300u32 {
            let (c, sport) = (i as u16 % 250, 30000 + i as u16);
            pkts.push((
                t,
                if round % 2 == 0 {
                    udp6(c, sport, 0xffff, 53)
                } else {
                    udp6(0xffff, 53, c, sport)
                },
            ));
            if i % 3 == 0 {
                pkts.push((t, udp_with_option(client(i), 9000, SERVER, 69)));
            }
        }
        for i in 0..400u32 {
            let c = client(i);
            let (cs, ss) = (1000 + i * 7, 5000 + i * 11);
            let sport = 40000 + i as u16;
            let step = match round {
                0 => tcp(c, sport, SERVER, 80, cs, 0, 0x02),
                1 => tcp(SERVER, 80, c, sport, ss, cs + 1, 0x12),
                2 => tcp(c, sport, SERVER, 80, cs + 1, ss + 1, 0x10),
                4 => tcp(c, sport, SERVER, 80, cs + 1, ss + 1, 0x11),
                _ => tcp(SERVER, 80, c, sport, ss + 1, cs + 2, 0x10),
            };
            pkts.push((t, step));
        }
    }
    // Shuffle within each round (same time), then cut into batches of 32 that keep
    // one time each.
    let mut batches: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
    let mut i = 0;
    while i < pkts.len() {
        let t = pkts[i].0;
        let mut j = i;
        while j < pkts.len() && pkts[j].0 == t {
            j += 1;
        }
        let mut group: Vec<Vec<u8>> = pkts[i..j].iter().map(|x| x.1.clone()).collect();
        for k in (1..group.len()).rev() {
            group.swap(k, (next() % (k as u64 + 1)) as usize);
        }
        for (n, chunk) in group.chunks(32).enumerate() {
            batches.push((t + n as u64 * 1000, chunk.to_vec()));
        }
        i = j;
    }
    batches
}

fn engine() -> Conntrack {
    engine_with(&[])
}

/// The engine of [`engine`] with more sysctls set.
fn engine_with(extra: &[(&str, &str)]) -> Conntrack {
    let mut sysctls = Sysctls::default();
    // 3,300 connections in 1,024 buckets: chains of ~6 nodes.
    sysctls.set("nf_conntrack_buckets", "1024").expect("valid");
    for (k, v) in extra {
        sysctls.set(k, v).expect("valid");
    }
    Conntrack::new(Config {
        sysctls,
        seed: 11,
        events: true,
    })
}

/// The pipeline step of both runs: with `nat`, every third packet of a batch that
/// creates a connection has its source mapped to 10.99.0.1 (ports kept when free).
fn pipeline(ct: &mut Conntrack, now: Instant, i: usize, t: &Tracked, nat: bool) {
    let new = t.ctstate() == Some(ctrack_core::CtState::New);
    if let (true, true, Some(id)) = (nat && i.is_multiple_of(3), new, t.entry) {
        let range = NatRange::addr(Addr::v4([10, 99, 0, 1]));
        assert!(ct.nat_setup(now, id, &range, Manip::Src));
    }
}

#[test]
fn the_batch_path_agrees_with_packet_by_packet_on_a_crowded_table() {
    agree(false);
}

#[test]
fn the_batch_path_agrees_with_packet_by_packet_when_the_pipeline_nats() {
    agree(true);
}

/// One packet's result: what `track` gave it, then what confirm did (`None`: dropped).
type Outcome = (Tracked, Option<Confirmed>);

/// The batches through `one` packet by packet and through `batch` with
/// `track_batch`, the same pipeline step in both ([`pipeline`], NAT with `nat`):
/// every packet's result and the counters after every batch must agree (`what` names
/// the run in the failures). Per batch: its results, and whether it started on a
/// small table (≤ 1,024 entries: tracked packet by packet; larger: rounds with the
/// prefetch stages).
fn run_both(
    one: &mut Conntrack,
    batch: &mut Conntrack,
    batches: &[(u64, Vec<Vec<u8>>)],
    nat: bool,
    what: &str,
) -> Vec<(Vec<Outcome>, bool)> {
    let mut out = Vec::new();
    let mut runs = Vec::new();
    for (t, pkts) in batches {
        let now = Instant::from_nanos(*t);
        let small = batch.count() <= 1024;
        let want: Vec<_> = pkts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = one.track(now, p, Hook::PreRouting, 0);
                pipeline(one, now, i, &t, nat);
                let c = (t.verdict == Verdict::Accept).then(|| one.confirm(now, &t));
                if t.verdict != Verdict::Accept {
                    one.discard(&t);
                }
                (t, c)
            })
            .collect();
        let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
        out.clear();
        batch.track_batch(now, &refs, Hook::PreRouting, 0, &mut out, |i, t, ct| {
            pipeline(ct, now, i, t, nat);
            if t.verdict == Verdict::Accept {
                Next::Confirm
            } else {
                Next::Discard
            }
        });
        let got: Vec<_> = out.iter().map(|r| (r.tracked, r.confirmed)).collect();
        assert_eq!(got, want, "{what}batch at {t}");
        assert_eq!(batch.stats(), one.stats(), "{what}counters at {t}");
        runs.push((want, small));
    }
    runs
}

/// The two engines' tables at `end` and their events must agree; the table.
fn same_end_state(
    one: &mut Conntrack,
    batch: &mut Conntrack,
    end: Instant,
    what: &str,
) -> Vec<Entry> {
    let a: Vec<_> = one.entries(end).into_iter().cloned().collect();
    let b: Vec<_> = batch.entries(end).into_iter().cloned().collect();
    assert_eq!(a, b, "{what}the final tables");
    let events = |ct: &mut Conntrack| format!("{:?}", ct.drain_events());
    assert_eq!(events(one), events(batch), "{what}the events");
    a
}

fn agree(nat: bool) {
    let batches = workload();
    let mut one = engine();
    let mut batch = engine();
    let runs = run_both(&mut one, &mut batch, &batches, nat, "");
    let (mut n, mut invalid, mut established) = (0, 0, 0);
    // Batches that start on a small table and on a larger one.
    let (mut small, mut large) = (0, 0);
    for (want, on_small) in &runs {
        if *on_small {
            small += 1;
        } else {
            large += 1;
        }
        for (tr, _) in want {
            n += 1;
            invalid += usize::from(tr.ctinfo.is_none());
            established += usize::from(tr.ctstate().is_some_and(|s| {
                s != ctrack_core::CtState::New && s != ctrack_core::CtState::Invalid
            }));
        }
    }
    let end = Instant::from_nanos(batches.last().map_or(0, |b| b.0));
    let a = same_end_state(&mut one, &mut batch, end, "");
    // The workload is what it claims: crowded, with invalid packets, replies, expiry.
    assert!(a.len() > 1024, "{} entries", a.len());
    assert!(
        invalid > 50 && established > 5000,
        "{n} packets, {invalid} invalid, {established} established"
    );
    assert!(one.stats().invalid > 0);
    assert!(small > 10 && large > 100, "{small} small, {large} large");
    let natted = a
        .iter()
        .filter(|e| e.status.has(ctrack_core::Status::SRC_NAT))
        .count();
    assert_eq!(natted > 100, nat, "{natted} NATed entries");
}

/// A clash at confirm, made in the pipeline: for every other new UDP flow of a batch
/// the pipeline tracks and confirms the same packet first (as a second CPU would in
/// the kernel), so the batch's own entry meets an equal one in its chain at confirm.
/// The batch's quick insert (hashes known, chains without the tuple's tag) must give
/// way to the full confirm, which merges the clash as packet by packet does; the
/// flows without a clash are inserted the quick way. Run on a table past the
/// small-table threshold, so the batch hashes both tuples ahead.
#[test]
fn a_clash_made_in_the_pipeline_is_resolved_in_the_batch_as_packet_by_packet() {
    let now = Instant::from_nanos(1_000_000_000);
    let mut one = engine();
    let mut batch = engine();
    // 1,500 confirmed flows first: the batch then runs its prefetch rounds.
    for ct in [&mut one, &mut batch] {
        for i in 0..1500u32 {
            let t = ct.track(
                now,
                &udp(client(i), 2000, SERVER, 53, true),
                Hook::PreRouting,
                0,
            );
            assert_eq!(ct.confirm(now, &t), Confirmed::Inserted);
        }
    }
    let pkts: Vec<Vec<u8>> = (0..64u32)
        .map(|i| udp(client(i), 3000 + i as u16, SERVER, 53, true))
        .collect();
    // The pipeline's clash: the packet tracked and confirmed again, before its own
    // confirm.
    let clash = |ct: &mut Conntrack, i: usize, p: &[u8]| {
        if i.is_multiple_of(2) {
            let t = ct.track(now, p, Hook::PreRouting, 0);
            assert_eq!(
                ct.confirm(now, &t),
                Confirmed::Inserted,
                "the pipeline's entry"
            );
        }
    };
    let want: Vec<_> = pkts
        .chunks(32)
        .flat_map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let t = one.track(now, p, Hook::PreRouting, 0);
                    clash(&mut one, i, p);
                    (t, Some(one.confirm(now, &t)))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut got = Vec::new();
    for chunk in pkts.chunks(32) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        batch.track_batch(now, &refs, Hook::PreRouting, 0, &mut out, |i, _, ct| {
            clash(ct, i, refs[i]);
            Next::Confirm
        });
        got.extend(out.iter().map(|r| (r.tracked, r.confirmed)));
    }
    assert_eq!(got, want);
    assert!(one.stats().clash_resolve >= 32, "{:?}", one.stats());
    assert_eq!(batch.stats(), one.stats());
    same_end_state(&mut one, &mut batch, now, "");
}

/// The batch path's quick creation of a UDP entry (and its quick confirm) are only
/// for the usual case: with accounting and timestamps on (extensions to allocate),
/// and on a table too small for the workload (early drop, then drops), the batch must
/// still give packet by packet's results, counters, entries and events.
#[test]
fn the_batch_path_agrees_with_packet_by_packet_with_extensions_and_a_full_table() {
    for (extra, what) in [
        (
            &[("nf_conntrack_acct", "1"), ("nf_conntrack_timestamp", "1")][..],
            "extensions",
        ),
        (&[("nf_conntrack_max", "1500")][..], "a full table"),
    ] {
        let batches = workload();
        let mut one = engine_with(extra);
        let mut batch = engine_with(extra);
        let label = format!("{what}: ");
        run_both(&mut one, &mut batch, &batches, false, &label);
        let end = Instant::from_nanos(batches.last().map_or(0, |b| b.0));
        let a = same_end_state(&mut one, &mut batch, end, &label);
        // Each variant is what it claims.
        if what == "extensions" {
            assert!(
                a.len() > 1024
                    && a.iter()
                        .all(|e| e.ext.as_ref().is_some_and(|x| x.acct.is_some())),
                "{what}: {} entries, all with counters",
                a.len()
            );
        } else {
            assert!(one.stats().early_drop > 0, "{what}: {:?}", one.stats());
        }
    }
}

/// A UDP packet with `payload` after its 8-byte header (checksum filled in).
fn udp_payload(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    l4_checksum(src, dst, 17, &mut l4, 6);
    ipv4(src, dst, 17, &l4)
}

/// A new UDP flow that an expectation awaits (TFTP: the client's read request, with
/// the helper attached, expects the server's answer from a new port) must go through
/// the general creation, which matches the expectation: the batch path's quick UDP
/// creation is only for a table without expectations. The batch's answer is RELATED,
/// as packet by packet.
#[test]
fn a_udp_flow_an_expectation_awaits_is_created_in_the_batch_as_packet_by_packet() {
    use ctrack_core::helper::HelperKind;
    let now = Instant::from_nanos(1_000_000_000);
    let client = client(7);
    let mut rrq_payload = vec![0, 1];
    rrq_payload.extend_from_slice(b"boot.img\0octet\0");
    let data = udp_payload(SERVER, 50123, client, 40000, &[0, 3, 0, 1, b'x']);
    let mut results = Vec::new();
    for batched in [false, true] {
        let mut ct = engine();
        let mut rrq = udp_payload(client, 40000, SERVER, 69, &rrq_payload);
        let t = ct.track(now, &rrq, Hook::PreRouting, 0);
        let id = t.entry.expect("an entry for the request");
        assert!(ct.set_helper(id, HelperKind::Tftp, true, false));
        assert_eq!(
            ct.help_and_confirm(now, &t, &mut rrq),
            Ok(Confirmed::Inserted)
        );
        assert_eq!(ct.expectations().len(), 1, "the request's expectation");
        let got = if batched {
            let mut out = Vec::new();
            ct.track_batch(now, &[&data], Hook::PreRouting, 0, &mut out, |_, _, _| {
                Next::Confirm
            });
            (out[0].tracked, out[0].confirmed)
        } else {
            let t = ct.track(now, &data, Hook::PreRouting, 0);
            (t, Some(ct.confirm(now, &t)))
        };
        let entries: Vec<_> = ct.entries(now).into_iter().cloned().collect();
        let events = format!("{:?}", ct.drain_events());
        results.push((got, entries, events, ct.stats()));
    }
    assert_eq!(
        results[0].0 .0.ctinfo,
        Some(ctrack_core::CtInfo::Related),
        "the answer is RELATED"
    );
    assert_eq!(results[1], results[0]);
}

/// A UDP flow's original tuple (client `i` to the server's port 53).
fn flow_tuple(i: u32) -> ctrack_core::Tuple {
    ctrack_core::Tuple {
        src: Addr::v4(client(i)),
        dst: Addr::v4(SERVER),
        src_u: 2000 + (i % 50_000) as u16,
        dst_u: 53,
        family: Family::V4,
        proto: 17,
    }
}

fn flow_packet(i: u32, reply: bool) -> Vec<u8> {
    let t = flow_tuple(i);
    if reply {
        udp(SERVER, 53, client(i), t.src_u, true)
    } else {
        udp(client(i), t.src_u, SERVER, 53, true)
    }
}

/// Both engines through batches whose pipeline step may change the sysctls:
/// `pipeline(ct, i)` after packet `i`'s track, then confirm; per batch, results and
/// counters must agree; at the end the tables and the events.
fn agree_with_sysctl_changes(
    sysctls: &[(&str, &str)],
    batches: &[(u64, Vec<Vec<u8>>)],
    pipeline: impl Fn(&mut Conntrack, usize),
) {
    let mut one = engine_with(sysctls);
    let mut batch = engine_with(sysctls);
    let mut out = Vec::new();
    for (t, pkts) in batches {
        let now = Instant::from_nanos(*t);
        let want: Vec<_> = pkts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = one.track(now, p, Hook::PreRouting, 0);
                pipeline(&mut one, i);
                (t, Some(one.confirm(now, &t)))
            })
            .collect();
        let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
        out.clear();
        batch.track_batch(now, &refs, Hook::PreRouting, 0, &mut out, |i, _, ct| {
            pipeline(ct, i);
            Next::Confirm
        });
        let got: Vec<_> = out.iter().map(|r| (r.tracked, r.confirmed)).collect();
        assert_eq!(got, want, "batch at {t}");
        assert_eq!(batch.stats(), one.stats(), "counters at {t}");
    }
    let end = Instant::from_nanos(batches.last().map_or(0, |b| b.0));
    same_end_state(&mut one, &mut batch, end, "");
}

/// Rounds of 16 that a burst of new flows makes the batch take for misses (it then
/// trusts its walks of a round's chains instead of walking them again), each with
/// five replies of old flows that share a chain with five of the round's new flows:
/// when a reply refreshes its entry with a timeout of 0, the entry expires at once,
/// and the new flow's lookup after it must delete it, as packet by packet.
fn refreshed_to_expiry_workload(probe: &Conntrack) -> Vec<(u64, Vec<Vec<u8>>)> {
    let t0 = 1_000_000_000u64;
    let old = 0..1500u32;
    let mut batches: Vec<(u64, Vec<Vec<u8>>)> = old
        .clone()
        .map(|i| flow_packet(i, false))
        .collect::<Vec<_>>()
        .chunks(32)
        .map(|c| (t0, c.to_vec()))
        .collect();
    // For a new flow, an old one whose original tuple shares its bucket (the probe
    // engine has the same buckets and hash key).
    let bucket = |i: u32| probe.table().bucket(&flow_tuple(i), 0);
    let mut by_bucket = std::collections::HashMap::new();
    for i in old {
        by_bucket.entry(bucket(i)).or_insert(i);
    }
    let mut fresh = 1500u32..;
    let mut round = || {
        let mut pairs = Vec::new();
        let mut singles = Vec::new();
        while pairs.len() < 5 || singles.len() < 6 {
            let n = fresh.next().expect("endless");
            match by_bucket.get(&bucket(n)) {
                Some(&o) if pairs.len() < 5 => pairs.push((o, n)),
                _ if singles.len() < 6 => singles.push(n),
                _ => {}
            }
        }
        let mut r: Vec<Vec<u8>> = pairs.iter().map(|&(o, _)| flow_packet(o, true)).collect();
        r.extend(pairs.iter().map(|&(_, n)| flow_packet(n, false)));
        r.extend(singles.iter().map(|&n| flow_packet(n, false)));
        r
    };
    for b in 0..40u64 {
        let mut pkts = round();
        pkts.extend(round());
        batches.push((t0 + 1_000_000_000 + b * 1000, pkts));
    }
    batches
}

/// Both UDP timeouts (unreplied and stream) set to `secs`.
fn set_udp_timeouts(ct: &mut Conntrack, secs: &str) {
    for name in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        ct.sysctls_mut().set(name, secs).expect("valid");
    }
}

#[test]
fn a_timeout_set_to_0_in_the_pipeline_voids_what_the_rounds_walks_saw() {
    let sysctls = [("nf_conntrack_buckets", "8192")];
    let probe = engine_with(&sysctls);
    let batches = refreshed_to_expiry_workload(&probe);
    // After each round's first packet the UDP timeouts drop to 0 (the next replies
    // refresh their entries to expire at once); after its last they are back.
    agree_with_sysctl_changes(&sysctls, &batches, |ct, i| match i % 16 {
        0 => set_udp_timeouts(ct, "0"),
        15 => set_udp_timeouts(ct, "30"),
        _ => {}
    });
}

#[test]
fn with_a_timeout_of_0_the_rounds_walks_prove_nothing() {
    let sysctls = [("nf_conntrack_buckets", "8192")];
    let probe = engine_with(&sysctls);
    let batches = refreshed_to_expiry_workload(&probe);
    // The old flows are created with the usual timeouts; from the last of them on,
    // the UDP timeouts are 0 for good (each reply then expires its entry at once).
    agree_with_sysctl_changes(&sysctls, &batches, |ct, _| {
        if ct.count() >= 1500 && ct.sysctls().nf_conntrack_udp_timeout != 0 {
            set_udp_timeouts(ct, "0");
        }
    });
}
