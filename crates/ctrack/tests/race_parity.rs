//! Kernel parity of clash resolution at confirm (issue #7): two packets of one flow each
//! get an unconfirmed conntrack and their NAT bindings before either is confirmed — the
//! "Kubernetes DNS race" of glibc's parallel A/AAAA queries from one socket through a
//! service DNAT.
//!
//! The kernel side is `ctrack_oracle::race`: both queries are held in an NFQUEUE at
//! postrouting +200 (after conntrack, DNAT and the source null binding, before confirm),
//! then accepted in order. The engine replays the same packets the way the race happens:
//! track both, give each the NAT binding the kernel chose for it (its destination as it
//! left the firewall), confirm in the same order. Then both must agree on which packets
//! passed, each packet after NAT, the counters, `conntrack -L`, /proc, the count, the
//! reply's ct state and its de-NAT, and what is left after the loser's second.
//!
//! Needs root and network namespaces. Outside CI it skips (and says so) when those are
//! missing; with `CI=true` a skip is a failure.

use ctrack::diff::compare_tables;
use ctrack_core::format::{self, ListOptions};
use ctrack_core::nat::{Manip, NatRange};
use ctrack_core::{Addr, Config, Confirmed, Conntrack, Dir, Hook, Instant, Tracked};
use ctrack_oracle::craft::{self, tcp_flags as F, Tcp};
use ctrack_oracle::race::{self, RaceConfig, RacePacket, RaceRun, TableDump};
use ctrack_oracle::{InjectPacket, OracleConfig, Side};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

/// Kernel runs are serialised (two cores shared with other work).
static KERNEL: Mutex<()> = Mutex::new(());

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const B1: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 7);
const B2: Ipv4Addr = Ipv4Addr::new(10, 244, 3, 9);
const SPORT: u16 = 43000;
/// The engine's clock: 1 s + the kernel's offsets.
const BASE_NS: u64 = 1_000_000_000;
/// Long enough for the loser's fixed 1 s to be over.
const LINGER: Duration = Duration::from_millis(1500);

fn ready() -> bool {
    match ctrack_oracle::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("race parity cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: race parity needs root and network namespaces ({why}); CI runs it");
            false
        }
    }
}

/// A service DNAT: one backend, or round robin over two (`numgen inc`: the first new
/// flow gets B1, the second B2 — deterministic in a fresh ruleset).
fn dnat_ruleset(two_backends: bool) -> String {
    let to = if two_backends {
        format!("numgen inc mod 2 map {{ 0 : {B1}, 1 : {B2} }}")
    } else {
        B1.to_string()
    };
    format!(
        "table ip k8s {{\n\
         \tchain pre {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tip daddr {SERVICE} dnat to {to}\n\
         \t}}\n\
         }}\n"
    )
}

fn pkt(index: u64, side: Side, l3: Vec<u8>) -> InjectPacket {
    InjectPacket {
        index,
        ts_ns: index * 1000,
        side,
        l3,
    }
}

fn query() -> Vec<u8> {
    craft::udp4(CLIENT, SERVICE, SPORT, 53, b"\x12\x34 A? svc.cluster.local")
}

fn answer(from: Ipv4Addr) -> Vec<u8> {
    craft::udp4(from, CLIENT, 53, SPORT, b"\x12\x34 answer")
}

fn kernel(ruleset: String, racers: Vec<Vec<u8>>, followups: Vec<Vec<u8>>) -> RaceRun {
    let _serial = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let n = racers.len() as u64;
    let cfg = RaceConfig {
        ruleset,
        queue_num: 7,
        racers: racers
            .into_iter()
            .enumerate()
            .map(|(i, l3)| pkt(i as u64, Side::Client, l3))
            .collect(),
        followups: followups
            .into_iter()
            .enumerate()
            .map(|(i, l3)| pkt(n + i as u64, Side::Server, l3))
            .collect(),
        linger: LINGER,
        oracle: OracleConfig::default(),
    };
    race::run(&cfg).unwrap_or_else(|e| panic!("kernel race run: {e}"))
}

fn ip4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// What forwarding does to a packet besides NAT: TTL − 1, header checksum fixed.
fn forward(buf: &mut [u8]) {
    buf[8] -= 1;
    buf[10..12].copy_from_slice(&[0, 0]);
    let c = craft::checksum(&buf[..20]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
}

/// The engine's `conntrack -L` and /proc lines at `now`.
fn engine_tables(c: &Conntrack, now: Instant) -> (Vec<String>, Vec<String>) {
    let entries = c.entries(now);
    (
        entries
            .iter()
            .map(|e| format::conntrack_line(e, now, ListOptions::default()))
            .collect(),
        entries.iter().map(|e| format::proc_line(e, now)).collect(),
    )
}

/// /proc lines without `use=` (the reader's reference) and with the timeout (token 4)
/// compared within ±1 s.
fn compare_proc(ours: &[String], kernel: &[String]) -> bool {
    let split = |l: &str| {
        let toks: Vec<&str> = l
            .split_whitespace()
            .filter(|t| !t.starts_with("use="))
            .collect();
        let t: i64 = toks.get(4).and_then(|t| t.parse().ok()).unwrap_or(-100);
        let key: Vec<&str> = toks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, t)| *t)
            .collect();
        (key.join(" "), t)
    };
    ours.len() == kernel.len()
        && ours.iter().zip(kernel).all(|(a, b)| {
            let ((ka, ta), (kb, tb)) = (split(a), split(b));
            ka == kb && (ta - tb).abs() <= 1
        })
}

/// Non-zero counter deltas, under the names of `conntrack -S`.
fn counter_delta(before: &ctrack_core::Stats, after: &ctrack_core::Stats) -> BTreeMap<String, u64> {
    before
        .fields()
        .iter()
        .zip(after.fields())
        .filter(|((_, b), (_, a))| a != b)
        .map(|((name, b), (_, a))| (name.to_string(), u64::from(a.wrapping_sub(*b))))
        .collect()
}

/// The kernel's counters of a dump, as `(name, value)` like [`ctrack_core::Stats::fields`].
fn kernel_totals(d: &TableDump) -> BTreeMap<String, u64> {
    let s = &d.stats;
    [
        ("found", s.found),
        ("invalid", s.invalid),
        ("insert", s.insert),
        ("insert_failed", s.insert_failed),
        ("drop", s.drop),
        ("early_drop", s.early_drop),
        ("error", s.error),
        ("search_restart", s.search_restart),
        ("clash_resolve", s.clash_resolve),
        ("chaintoolong", s.chaintoolong),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn engine_totals(c: &Conntrack) -> BTreeMap<String, u64> {
    c.stats()
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), u64::from(v)))
        .collect()
}

/// Collects disagreements instead of stopping at the first.
#[derive(Default)]
struct Diffs(Vec<String>);

impl Diffs {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, engine: T, kernel: T) {
        if engine != kernel {
            self.0
                .push(format!("{what}: engine {engine:?}, kernel {kernel:?}"));
        }
    }
}

fn states(t: &Tracked) -> (Option<&'static str>, Option<&'static str>) {
    (
        t.ctstate().map(|s| s.name()),
        t.direction().map(|d| d.name()),
    )
}

fn kstates(p: &RacePacket) -> (Option<&'static str>, Option<&'static str>) {
    (
        p.packet.ctstate.map(|s| s.as_str()),
        p.packet.direction.map(|d| d.as_str()),
    )
}

/// Runs the engine through the race as the kernel ran it and lists every disagreement.
/// Prints the kernel's outcome on the way (visible with `--nocapture`).
fn engine_vs_kernel(
    name: &str,
    racers: &[Vec<u8>],
    followups: &[Vec<u8>],
    k: &RaceRun,
) -> Vec<String> {
    let at = |ns: u64| Instant::from_nanos(BASE_NS + ns);
    let mut d = Diffs::default();
    let mut c = Conntrack::new(Config {
        seed: 7,
        ..Config::default()
    });
    eprintln!("== {name}: the kernel");
    // 1. Every racer up to the queue: conntrack, DNAT as the kernel chose, SRC null
    //    binding, the packet as it reached postrouting.
    let mut held = Vec::new();
    for (i, (l3, kp)) in racers.iter().zip(&k.racers).enumerate() {
        let now = at(kp.packet.inject_offset_ns);
        let t = c.track(now, l3, Hook::PreRouting, 0);
        d.eq(&format!("racer {i} ct state"), states(&t), kstates(kp));
        let Some(id) = t.entry else {
            d.0.push(format!("racer {i}: the engine made no entry"));
            continue;
        };
        let (orig_dst, dst) = (ip4(l3, 16), ip4(&kp.postrouting_l3, 16));
        eprintln!(
            "racer {i}: ct state {:?}, queued at hook {:?}, DNAT to {dst:?}, left the firewall: {}, counters {:?}",
            kp.packet.ctstate,
            kp.queued_at_hook,
            kp.egress.is_some(),
            kp.packet.counters
        );
        match dst {
            Some(dst) if Some(dst) != orig_dst => {
                let r = NatRange::addr(Addr::v4(dst.octets()));
                d.eq(
                    &format!("racer {i} DNAT set up"),
                    c.nat_setup(now, id, &r, Manip::Dst),
                    true,
                );
            }
            _ => {
                c.nat_null_binding(now, id, Manip::Dst);
            }
        }
        c.nat_null_binding(now, id, Manip::Src);
        let mut buf = l3.clone();
        for m in [Manip::Dst, Manip::Src] {
            d.eq(
                &format!("racer {i} NAT {m:?}"),
                c.nat_packet(id, Dir::Original, m, &mut buf),
                true,
            );
        }
        forward(&mut buf);
        if kp.postrouting_l3.is_empty() {
            d.0.push(format!("racer {i}: no NFLOG copy at postrouting +500"));
        }
        let n = kp.postrouting_l3.len().min(buf.len());
        d.eq(
            &format!("racer {i} at postrouting"),
            &buf[..n],
            &kp.postrouting_l3[..],
        );
        held.push((i, t, buf, kp));
    }
    // 2. Confirm in the verdicts' order.
    let now = at(k.after_verdicts.offset_ns);
    for (i, t, buf, kp) in held {
        let before = c.stats();
        let r = c.confirm(now, &t);
        eprintln!("racer {i}: engine confirm {r:?}");
        let passed = !matches!(r, Confirmed::Failed(_));
        d.eq(
            &format!("racer {i} passed confirm"),
            passed,
            kp.egress.is_some(),
        );
        if passed {
            d.eq(&format!("racer {i} egress"), Some(&buf), kp.egress.as_ref());
        }
        d.eq(
            &format!("racer {i} counters"),
            counter_delta(&before, &c.stats()),
            kp.packet.counters.clone(),
        );
    }
    compare_dump(&mut d, "after the verdicts", &c, now, &k.after_verdicts);
    // 3. The replies.
    for (i, (l3, kp)) in followups.iter().zip(&k.followups).enumerate() {
        let now = at(kp.packet.inject_offset_ns);
        let t = c.track(now, l3, Hook::PreRouting, 0);
        d.eq(&format!("reply {i} ct state"), states(&t), kstates(kp));
        eprintln!(
            "reply {i} from {:?}: ct state {:?} {:?}, left the firewall as {:?} -> {:?}",
            ip4(l3, 12),
            kp.packet.ctstate,
            kp.packet.direction,
            kp.egress.as_deref().and_then(|e| ip4(e, 12)),
            kp.egress.as_deref().and_then(|e| ip4(e, 16)),
        );
        let mut buf = l3.clone();
        if let (Some(id), Some(ci)) = (t.entry, t.ctinfo) {
            for m in [Manip::Dst, Manip::Src] {
                d.eq(
                    &format!("reply {i} NAT {m:?}"),
                    c.nat_packet(id, ci.dir(), m, &mut buf),
                    true,
                );
            }
        }
        forward(&mut buf);
        let _ = c.confirm(now, &t);
        d.eq(&format!("reply {i} egress"), Some(&buf), kp.egress.as_ref());
        d.eq(
            &format!("reply {i} counters"),
            BTreeMap::new(),
            kp.packet.counters.clone(),
        );
    }
    compare_dump(
        &mut d,
        "after the replies",
        &c,
        at(k.after_followups.offset_ns),
        &k.after_followups,
    );
    // 4. After the loser's second: the kernel's count before anything lists the table is
    //    2 or 1 depending on whether its GC worker has been by; listing deletes expired
    //    entries, as the engine's expire() does.
    if let Some(l) = &k.lingered {
        let now = at(l.dump.offset_ns);
        let before = u64::from(c.count());
        c.expire(now);
        let after = u64::from(c.count());
        eprintln!(
            "after {LINGER:?}: count {} before listing (GC-dependent), {} after",
            l.count_before_listing, l.dump.count
        );
        if l.count_before_listing != before && l.count_before_listing != after {
            d.0.push(format!(
                "count before listing after the linger: kernel {}, engine {before} (unexpired) or {after} (expired)",
                l.count_before_listing
            ));
        }
        compare_dump(&mut d, "after the linger", &c, now, &l.dump);
    }
    d.0
}

fn compare_dump(d: &mut Diffs, when: &str, c: &Conntrack, now: Instant, k: &TableDump) {
    let (table, proc) = engine_tables(c, now);
    eprintln!("{when}: count {}, conntrack -L:", k.count);
    for l in &k.table {
        eprintln!("    {l}");
    }
    for (ours, theirs) in compare_tables(&table, &k.table) {
        d.0.push(format!(
            "{when}: conntrack -L: engine {ours:?}, kernel {theirs:?}"
        ));
    }
    if !compare_proc(&proc, &k.proc_table) {
        d.0.push(format!(
            "{when}: /proc: engine {proc:?}, kernel {:?}",
            k.proc_table
        ));
    }
    d.eq(&format!("{when}: count"), u64::from(c.count()), k.count);
    d.eq(
        &format!("{when}: counters"),
        engine_totals(c),
        kernel_totals(k),
    );
}

fn assert_agree(diffs: Vec<String>) {
    assert!(
        diffs.is_empty(),
        "the engine disagrees with the kernel:\n  {}",
        diffs.join("\n  ")
    );
}

#[test]
fn racing_queries_to_one_backend_merge() {
    if !ready() {
        return;
    }
    let racers = vec![query(), query()];
    let followups = vec![answer(B1)];
    let k = kernel(dnat_ruleset(false), racers.clone(), followups.clone());
    let diffs = engine_vs_kernel("one backend", &racers, &followups, &k);
    // What the kernel did: both queries left, the second merged into the first's entry.
    assert!(
        k.racers.iter().all(|p| p.egress.is_some()),
        "both forwarded"
    );
    assert_eq!(k.after_verdicts.table.len(), 1);
    assert_eq!(k.after_verdicts.count, 1, "the loser was merged and freed");
    assert_eq!(k.after_verdicts.stats.clash_resolve, 1);
    assert_eq!(
        (
            k.after_verdicts.stats.insert_failed,
            k.after_verdicts.stats.drop
        ),
        (0, 0)
    );
    let reply = &k.followups[0];
    assert_eq!(
        reply.packet.ctstate,
        Some(ctrack_oracle::CtState::Established)
    );
    assert_eq!(
        reply.packet.direction,
        Some(ctrack_oracle::Direction::Reply)
    );
    assert_eq!(
        reply.egress.as_deref().and_then(|e| ip4(e, 12)),
        Some(SERVICE),
        "de-DNATed"
    );
    assert_agree(diffs);
}

#[test]
fn racing_queries_to_two_backends_insert_the_loser_reply_only() {
    if !ready() {
        return;
    }
    let racers = vec![query(), query()];
    let followups = vec![answer(B2)];
    let k = kernel(dnat_ruleset(true), racers.clone(), followups.clone());
    let diffs = engine_vs_kernel("two backends", &racers, &followups, &k);
    // What the kernel did: each query to its own backend, both left; one listed entry
    // (the winner, to B1) but two counted; the second backend's answer found the
    // unlisted loser (ESTABLISHED reply) and left de-DNATed from the service address.
    let dst = |p: &RacePacket| p.egress.as_deref().and_then(|e| ip4(e, 16));
    assert_eq!(dst(&k.racers[0]), Some(B1));
    assert_eq!(dst(&k.racers[1]), Some(B2));
    assert_eq!(k.after_verdicts.table.len(), 1);
    assert!(k.after_verdicts.table[0].contains(&format!("src={B1} dst={CLIENT}")));
    assert_eq!(k.after_verdicts.count, 2, "the reply-only loser counts");
    assert_eq!(k.after_verdicts.stats.clash_resolve, 1);
    assert_eq!(
        (
            k.after_verdicts.stats.insert_failed,
            k.after_verdicts.stats.drop
        ),
        (0, 0)
    );
    let reply = &k.followups[0];
    assert_eq!(
        reply.packet.ctstate,
        Some(ctrack_oracle::CtState::Established)
    );
    assert_eq!(
        reply.packet.direction,
        Some(ctrack_oracle::Direction::Reply)
    );
    assert_eq!(
        reply.egress.as_deref().and_then(|e| ip4(e, 12)),
        Some(SERVICE),
        "de-DNATed"
    );
    // The answer went to the loser: the winner is still unreplied, both still counted.
    assert!(k.after_followups.table[0].contains("[UNREPLIED]"));
    assert_eq!(k.after_followups.count, 2);
    // After its fixed second the loser is gone once the table is listed.
    let l = k.lingered.as_ref().expect("lingered");
    assert!(matches!(l.count_before_listing, 1 | 2));
    assert_eq!(l.dump.count, 1);
    assert_eq!(l.dump.table.len(), 1);
    assert_agree(diffs);
}

#[test]
fn racing_syns_clash_and_the_second_is_dropped() {
    if !ready() {
        return;
    }
    let syn = craft::tcp4(
        CLIENT,
        SERVICE,
        &Tcp::new(SPORT, 53, F::SYN).seq_ack(1000, 0),
        &[],
    );
    let synack = craft::tcp4(
        B1,
        CLIENT,
        &Tcp::new(53, SPORT, F::SYN | F::ACK).seq_ack(5000, 1001),
        &[],
    );
    let racers = vec![syn.clone(), syn];
    let followups = vec![synack];
    let k = kernel(dnat_ruleset(true), racers.clone(), followups.clone());
    let diffs = engine_vs_kernel("TCP", &racers, &followups, &k);
    // What the kernel did: TCP allows no clash. The second SYN reached postrouting +500
    // (after its own DNAT to B2) but was dropped at confirm.
    assert!(k.racers[0].egress.is_some());
    assert!(k.racers[1].packet.forwarded && k.racers[1].egress.is_none());
    let want: BTreeMap<String, u64> =
        [("drop".to_owned(), 1), ("insert_failed".to_owned(), 1)].into();
    assert_eq!(k.racers[1].packet.counters, want);
    assert_eq!(k.after_verdicts.count, 1);
    assert_eq!(k.after_verdicts.stats.clash_resolve, 0);
    assert!(k.after_followups.table[0].contains("SYN_RECV"));
    assert_agree(diffs);
}
