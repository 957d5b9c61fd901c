//! `ctrack diff`: the same capture through the engine and through the kernel, compared
//! packet by packet (ctstate, direction, fate, counter changes), then the final table
//! and the expectation table (timeouts within ±1 s) and the summed counters.
//!
//! The engine is replayed on the kernel's real timeline (each packet at the moment it
//! was injected), so timeouts and the UDP 2-second rule see the same clock on both sides.
//! Disagreements listed in a known-differences file are reported but do not fail.

use crate::input::Loaded;
use crate::kernel::{self, KernelOptions};
use crate::output::{event_line, table_lines, OutputFormat};
use crate::replay::{Replay, ReplayOptions};
use crate::report::PacketReport;
use ctrack_core::Instant;
use ctrack_oracle::KernelRun;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One reviewed, known difference (see `tests/parity/known-differences.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct KnownDifference {
    /// Capture file name pattern (`*` wildcards).
    pub capture: String,
    /// Packet index, or none for every packet of the capture.
    #[serde(default)]
    pub index: Option<u64>,
    /// Field: ctstate, direction, fate, reason, counters, table, proc, events, stats,
    /// nat_unique, or `*`.
    pub field: String,
    /// Why it differs, and what will remove the difference.
    pub reason: String,
    /// The issue that will fix it.
    #[serde(default)]
    pub issue: Option<u32>,
}

fn glob(pat: &str, s: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(pos) => rest = &rest[pos + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// One disagreement.
#[derive(Debug, Clone)]
pub struct Difference {
    /// Packet index, or None for the final table / counters.
    pub index: Option<u64>,
    /// What differs.
    pub field: &'static str,
    /// Our value.
    pub ours: String,
    /// The kernel's value.
    pub kernel: String,
    /// Context: our reason and the kernel's log.
    pub detail: String,
    /// The known-difference reason, if listed.
    pub known: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "packet {i}: ")?,
            None => write!(f, "final {}: ", self.field)?,
        }
        write!(
            f,
            "{}: ours {} | kernel {}",
            self.field, self.ours, self.kernel
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        if let Some(k) = &self.known {
            write!(f, " [known: {k}]")?;
        }
        Ok(())
    }
}

/// The outcome of a diff.
#[derive(Debug, Default)]
pub struct DiffResult {
    /// IP packets compared.
    pub packets: usize,
    /// Packets whose every field agrees.
    pub agree: usize,
    /// Packets with at least one difference.
    pub differ: usize,
    /// Every difference (per packet, table, counters).
    pub differences: Vec<Difference>,
    /// Our per-packet reports.
    pub ours: Vec<PacketReport>,
    /// The kernel's per-packet reports.
    pub theirs: Vec<PacketReport>,
    /// Our final table.
    pub our_table: Vec<String>,
    /// The kernel's final table.
    pub kernel_table: Vec<String>,
}

impl DiffResult {
    /// Differences not in the known list.
    pub fn unknown(&self) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(|d| d.known.is_none())
    }

    /// `N packets, M agree, K differ` (plus the known count).
    pub fn summary(&self) -> String {
        let known = self.differences.len() - self.unknown().count();
        format!(
            "{} packets, {} agree, {} differ ({} differences, {} known)",
            self.packets,
            self.agree,
            self.differ,
            self.differences.len(),
            known
        )
    }
}

/// Run the engine on the kernel's timeline.
pub fn engine_on_kernel_timeline(
    loaded: &Loaded,
    run: &KernelRun,
    opts: &ReplayOptions,
) -> EngineRun {
    let base = loaded.packets.first().map_or(0, |p| p.ts_ns);
    let mut opts = opts.clone();
    opts.events = true;
    let mut r = Replay::new(&opts);
    let mut reps = Vec::with_capacity(loaded.packets.len());
    let mut events = Vec::new();
    let mut expect_events = Vec::new();
    let fmt = OutputFormat::default();
    // The kernel side lists with `-o labels` (names from conntrack's connlabel.conf).
    let labels =
        crate::listing::Labels::load(std::path::Path::new(crate::listing::Labels::PATH)).ok();
    let line_of = |e: &ctrack_core::event::Event| {
        let mut l = event_line(e, fmt);
        if e.kind != ctrack_core::event::EventKind::Destroy
            && e.mask & ctrack_core::event::bits::LABEL != 0
        {
            crate::listing::Labels::append_to(&mut l, e.entry.labels(), labels.as_ref());
        }
        l
    };
    for (p, k) in loaded.packets.iter().zip(run.packets.iter()) {
        let mut rep = r.packet(p.index, base + k.inject_offset_ns, &p.l3, p.side);
        rep.ts_ns = p.ts_ns;
        reps.push(rep);
        events.extend(r.ct.drain_events().iter().map(line_of));
        expect_events.extend(
            r.ct.drain_expect_events()
                .iter()
                .map(|e| e.exp.event_line(e.kind, e.time)),
        );
    }
    let now = Instant::from_nanos(base + run.dump_offset_ns);
    r.advance(now);
    events.extend(r.ct.drain_events().iter().map(line_of));
    let mut table = table_lines(&r.ct, now, OutputFormat::default());
    for (line, e) in table.iter_mut().zip(r.ct.entries(now)) {
        crate::listing::Labels::append_to(line, e.labels(), labels.as_ref());
    }
    let proc_fmt = OutputFormat {
        proc: true,
        ..OutputFormat::default()
    };
    expect_events.extend(
        r.ct.drain_expect_events()
            .iter()
            .map(|e| e.exp.event_line(e.kind, e.time)),
    );
    EngineRun {
        reports: reps,
        events,
        expect_events,
        table,
        proc_table: table_lines(&r.ct, now, proc_fmt),
        // What `conntrack -L expect` shows: IPv4 only (the harness reads it without
        // `-f`); /proc below lists both families.
        expect_table: r
            .ct
            .expectations()
            .live(now)
            .filter(|e| e.tuple.family == ctrack_core::Family::V4)
            .map(|e| e.list_line(now))
            .collect(),
        expect_proc: r
            .ct
            .expectations()
            .live(now)
            .map(|e| e.proc_line(now))
            .collect(),
        stats: r.ct.stats(),
    }
}

/// The engine's side of a diff.
#[derive(Debug, Default)]
pub struct EngineRun {
    /// Per-packet reports.
    pub reports: Vec<PacketReport>,
    /// `conntrack -E` lines.
    pub events: Vec<String>,
    /// `conntrack -E expect` lines.
    pub expect_events: Vec<String>,
    /// Final table, `conntrack -L` lines.
    pub table: Vec<String>,
    /// Final table, /proc/net/nf_conntrack lines.
    pub proc_table: Vec<String>,
    /// Expectations, `conntrack -L expect` lines.
    pub expect_table: Vec<String>,
    /// Expectations, /proc/net/nf_conntrack_expect lines.
    pub expect_proc: Vec<String>,
    /// Counters.
    pub stats: ctrack_core::Stats,
}

/// Split a table line into (line without its timeout and delta-time, timeout,
/// delta-time). The timeout is the third token of a `conntrack -L` line and the fifth of
/// a /proc line.
fn split_timeout(line: &str, pos: usize) -> (String, i64, i64) {
    let toks: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    let mut key = Vec::with_capacity(toks.len());
    let mut timeout = 0;
    let mut delta = 0;
    for (i, t) in toks.iter().enumerate() {
        if i == pos {
            timeout = t.parse().unwrap_or(-1);
            key.push("T".to_string());
        } else if let Some(d) = t.strip_prefix("delta-time=") {
            delta = d.parse().unwrap_or(-1);
            key.push("delta-time=D".to_string());
        } else {
            key.push((*t).to_string());
        }
    }
    (key.join(" "), timeout, delta)
}

/// Compare two `conntrack -L` tables: same entries, timeouts within ±1 s.
pub fn compare_tables(ours: &[String], kernel: &[String]) -> Vec<(String, String)> {
    compare_lines(ours, kernel, 2)
}

/// Compare two tables whose timeout is token `pos`: same entries, timeouts within ±1 s.
fn compare_lines(ours: &[String], kernel: &[String], pos: usize) -> Vec<(String, String)> {
    let mut mine: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    for l in ours {
        let (k, t, d) = split_timeout(l, pos);
        mine.entry(k).or_default().push((t, d, l.clone()));
    }
    let mut out = Vec::new();
    for l in kernel {
        let (k, t, d) = split_timeout(l, pos);
        match mine.get_mut(&k) {
            Some(v) if !v.is_empty() => {
                let pos = v
                    .iter()
                    .position(|(ot, od, _)| (ot - t).abs() <= 1 && (od - d).abs() <= 1);
                match pos {
                    Some(p) => {
                        v.remove(p);
                    }
                    None => {
                        let (_, _, ol) = v.remove(0);
                        out.push((ol, l.clone()));
                    }
                }
            }
            // An entry about to expire (≤ 1 s left) may be gone on the other side by the
            // time that side's table was read: within the ±1 s tolerance.
            _ if (0..=1).contains(&t) => {}
            _ => out.push((String::from("-"), l.clone())),
        }
    }
    for v in mine.into_values() {
        for (t, _, l) in v {
            if !(0..=1).contains(&t) {
                out.push((l, String::from("-")));
            }
        }
    }
    out
}

/// Compare `conntrack -E` streams. NEW and UPDATE events come from the packet path and
/// are compared in order (timeouts ±1 s). DESTROY events are compared as a set; a DESTROY
/// without a timeout (the entry expired) is reported by the kernel's GC worker at a time
/// of its own, so such a line present on one side only is tolerated.
pub fn compare_events(ours: &[String], kernel: &[String]) -> Vec<(String, String)> {
    let is_destroy = |l: &&String| l.trim_start().starts_with("[DESTROY]");
    let ou: Vec<String> = ours.iter().filter(|l| !is_destroy(l)).cloned().collect();
    let ku: Vec<String> = kernel.iter().filter(|l| !is_destroy(l)).cloned().collect();
    let mut out = Vec::new();
    let n = ou.len().max(ku.len());
    for i in 0..n {
        match (ou.get(i), ku.get(i)) {
            (Some(a), Some(b)) => {
                let (ka, ta, _) = split_timeout(a, 3);
                let (kb, tb, _) = split_timeout(b, 3);
                if ka != kb || (ta - tb).abs() > 1 {
                    out.push((a.clone(), b.clone()));
                }
            }
            (Some(a), None) => out.push((a.clone(), "-".into())),
            (None, Some(b)) => out.push(("-".into(), b.clone())),
            (None, None) => {}
        }
    }
    // DESTROY: the timeout token is absent for expired entries; drop it from the key.
    let key = |l: &String| -> (String, bool) {
        let toks: Vec<&str> = l.split_whitespace().collect();
        let timed = toks.get(3).is_some_and(|t| t.parse::<u64>().is_ok());
        let k: Vec<&str> = toks
            .iter()
            .enumerate()
            .filter(|(i, t)| !(t.starts_with("delta-time=") || timed && *i == 3))
            .map(|(_, t)| *t)
            .collect();
        (k.join(" "), timed)
    };
    let mut mine: Vec<(String, bool, &String)> = ours
        .iter()
        .filter(is_destroy)
        .map(|l| {
            let (k, t) = key(l);
            (k, t, l)
        })
        .collect();
    for l in kernel.iter().filter(is_destroy) {
        let (k, timed) = key(l);
        if let Some(p) = mine.iter().position(|(mk, _, _)| *mk == k) {
            mine.remove(p);
        } else if timed {
            out.push(("-".into(), l.clone()));
        }
    }
    for (_, timed, l) in mine {
        if timed {
            out.push((l.clone(), "-".into()));
        }
    }
    out
}

/// The kernel's own conntrack log lines in a kernel report's reason (`nf_ct_proto_N: ...`,
/// `nf_ct_sctp: ...`), without their prefix; `None` when it logged none.
fn kernel_conntrack_reasons(reason: Option<&str>) -> Option<Vec<&str>> {
    let lines: Vec<&str> = reason?
        .split("; ")
        .filter_map(|l| {
            let rest = l.strip_prefix("nf_ct_proto_")?;
            let (_, text) = rest.split_once(": ")?;
            Some(text.trim())
        })
        .collect();
    (!lines.is_empty()).then_some(lines)
}

fn counters_text(c: &[(&'static str, u32)]) -> String {
    if c.is_empty() {
        return "{}".into();
    }
    c.iter()
        .map(|(k, v)| format!("{k}+{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Compare per-packet reports, tables and counters.
pub fn compare(
    capture: &str,
    engine: EngineRun,
    theirs: Vec<PacketReport>,
    run: &KernelRun,
    known: &[KnownDifference],
) -> DiffResult {
    let EngineRun {
        reports: ours,
        events: our_events,
        expect_events: our_expect_events,
        table: our_table,
        proc_table: our_proc,
        expect_table: our_expect,
        expect_proc: our_expect_proc,
        stats: our_stats,
    } = engine;
    let is_known = |index: Option<u64>, field: &str| {
        known
            .iter()
            .find(|k| {
                glob(&k.capture, capture)
                    && (k.index.is_none() || k.index == index)
                    && (k.field == "*" || k.field == field)
            })
            .map(|k| k.reason.clone())
    };
    let mut res = DiffResult {
        packets: ours.len(),
        ..DiffResult::default()
    };
    // Which entry early drop evicts depends on the kernel's random hash seed: when either
    // side early-dropped, compare by invariant (ASSURED entries survive, count <= max)
    // instead of by victim.
    let has_early_drop = |v: &[PacketReport]| {
        v.iter()
            .any(|r| r.counters.iter().any(|(k, _)| *k == "early_drop"))
    };
    let hash_dependent = has_early_drop(&ours) || has_early_drop(&theirs);
    const HASH_SEED: &str =
        "early-drop victim choice depends on the kernel's random hash seed (compared by invariant)";
    for (o, k) in ours.iter().zip(theirs.iter()) {
        let mut diffs = Vec::new();
        let detail = format!(
            "ours: {}; kernel: {}",
            o.reason.as_deref().unwrap_or("-"),
            k.reason.as_deref().unwrap_or("-")
        );
        let name = |s: Option<ctrack_core::CtState>| s.map_or("null", |s| s.name()).to_string();
        if o.ctstate != k.ctstate {
            diffs.push(("ctstate", name(o.ctstate), name(k.ctstate)));
        }
        if o.direction != k.direction && o.ctstate == k.ctstate {
            let d = |d: Option<ctrack_core::Dir>| d.map_or("null", |d| d.name()).to_string();
            diffs.push(("direction", d(o.direction), d(k.direction)));
        }
        if o.fate != k.fate {
            diffs.push(("fate", o.fate.name().into(), k.fate.name().into()));
        }
        if let Some(theirs) = kernel_conntrack_reasons(k.reason.as_deref()) {
            // The kernel logged why (nf_conntrack_log_invalid): our reason must be one of
            // its lines, word for word.
            let mine = o.reason.as_deref().unwrap_or("-");
            if !theirs.contains(&mine) {
                diffs.push(("reason", mine.to_string(), theirs.join("; ")));
            }
        }
        if o.counters != k.counters {
            diffs.push((
                "counters",
                counters_text(&o.counters),
                counters_text(&k.counters),
            ));
        }
        if diffs.is_empty() {
            res.agree += 1;
        } else {
            res.differ += 1;
        }
        let alloc_only = hash_dependent && {
            let only = |c: &[(&'static str, u32)]| {
                c.iter().all(|(n, _)| matches!(*n, "drop" | "early_drop"))
            };
            only(&o.counters) && only(&k.counters)
        };
        for (field, a, b) in diffs {
            let known = is_known(Some(o.index), field)
                .or_else(|| alloc_only.then(|| HASH_SEED.to_string()));
            res.differences.push(Difference {
                index: Some(o.index),
                field,
                ours: a,
                kernel: b,
                detail: detail.clone(),
                known,
            });
        }
    }
    let assured = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains("[ASSURED]"))
            .cloned()
            .collect()
    };
    let (tab_ours, tab_kernel, proc_ours, proc_kernel) = if hash_dependent {
        (
            assured(&our_table),
            assured(&run.table),
            assured(&our_proc),
            assured(&run.proc_table),
        )
    } else {
        (
            our_table.clone(),
            run.table.clone(),
            our_proc,
            run.proc_table.clone(),
        )
    };
    // NAT: a randomly remapped source port compares by its class; no two entries of
    // one table may share a reply tuple (crate::natcmp).
    for (side, table) in [("ours", &our_table), ("kernel", &run.table)] {
        for dup in crate::natcmp::duplicate_reply_tuples(table) {
            let (a, b) = if side == "ours" {
                (dup, String::from("-"))
            } else {
                (String::from("-"), dup)
            };
            res.differences.push(Difference {
                index: None,
                field: "nat_unique",
                ours: a,
                kernel: b,
                detail: String::new(),
                known: is_known(None, "nat_unique"),
            });
        }
    }
    let norm = crate::natcmp::normalise_all;
    let (tab_ours, tab_kernel) = (norm(&tab_ours), norm(&tab_kernel));
    let (proc_ours, proc_kernel) = (norm(&proc_ours), norm(&proc_kernel));
    for (field, pairs) in [
        ("table", compare_tables(&tab_ours, &tab_kernel)),
        ("proc", compare_lines(&proc_ours, &proc_kernel, 4)),
        // Expectations: the timeout is the first token of both formats.
        ("expect", compare_lines(&our_expect, &run.expect_table, 0)),
        (
            "expect_proc",
            compare_lines(&our_expect_proc, &run.expect, 0),
        ),
    ] {
        for (a, b) in pairs {
            res.differences.push(Difference {
                index: None,
                field,
                ours: a,
                kernel: b,
                detail: String::new(),
                known: is_known(None, field),
            });
        }
    }
    if !run.events.is_empty() || !our_events.is_empty() {
        let kernel_events: Vec<String> = run.events.iter().map(|e| e.line.clone()).collect();
        for (a, b) in compare_events(&norm(&our_events), &norm(&kernel_events)) {
            res.differences.push(Difference {
                index: None,
                field: "events",
                ours: a,
                kernel: b,
                detail: String::new(),
                known: is_known(None, "events")
                    .or_else(|| hash_dependent.then(|| HASH_SEED.to_string())),
            });
        }
    }
    // `conntrack -E expect`: in order, timeouts (the second token) ±1 s.
    let kernel_expect: Vec<&str> = run.expect_events.iter().map(|e| e.line.as_str()).collect();
    for i in 0..our_expect_events.len().max(kernel_expect.len()) {
        let (a, b) = (our_expect_events.get(i), kernel_expect.get(i));
        let same = match (a, b) {
            (Some(a), Some(b)) => {
                let (ka, ta, _) = split_timeout(a, 1);
                let (kb, tb, _) = split_timeout(b, 1);
                ka == kb && (ta - tb).abs() <= 1
            }
            _ => false,
        };
        if !same {
            res.differences.push(Difference {
                index: None,
                field: "expect_events",
                ours: a.cloned().unwrap_or_else(|| "-".into()),
                kernel: b.map_or_else(|| "-".into(), |s| s.to_string()),
                detail: String::new(),
                known: is_known(None, "expect_events"),
            });
        }
    }
    let k = &run.stats;
    let theirs_stats = [
        ("found", k.found),
        ("invalid", k.invalid),
        ("insert", k.insert),
        ("insert_failed", k.insert_failed),
        ("drop", k.drop),
        ("early_drop", k.early_drop),
        ("error", k.error),
        ("search_restart", k.search_restart),
        ("clash_resolve", k.clash_resolve),
        ("chaintoolong", k.chaintoolong),
        ("expect_new", k.expect_new),
        ("expect_create", k.expect_create),
        ("expect_delete", k.expect_delete),
    ];
    let mut our_fields = our_stats.fields().to_vec();
    our_fields.extend([
        ("expect_new", our_stats.expect_new),
        ("expect_create", our_stats.expect_create),
        ("expect_delete", our_stats.expect_delete),
    ]);
    for ((name, mine), (_, kv)) in our_fields.iter().zip(theirs_stats.iter()) {
        if hash_dependent && matches!(*name, "drop" | "early_drop") {
            continue;
        }
        if u64::from(*mine) != *kv {
            res.differences.push(Difference {
                index: None,
                field: "stats",
                ours: format!("{name}={mine}"),
                kernel: format!("{name}={kv}"),
                detail: String::new(),
                known: is_known(None, "stats"),
            });
        }
    }
    res.ours = ours;
    res.theirs = theirs;
    res.our_table = our_table;
    res.kernel_table = run.table.clone();
    res
}

/// Run both and compare.
pub fn diff(
    capture: &str,
    loaded: &Loaded,
    kopts: &KernelOptions,
    ropts: &ReplayOptions,
    known: &[KnownDifference],
) -> Result<DiffResult, String> {
    let run = kernel::run(loaded, kopts)?;
    let theirs = kernel::reports(&run, loaded);
    let engine = engine_on_kernel_timeline(loaded, &run, ropts);
    Ok(compare(capture, engine, theirs, &run, known))
}

/// Load a known-differences file (JSON list).
pub fn load_known(path: &std::path::Path) -> Result<Vec<KnownDifference>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("*", "x.pcap"));
        assert!(glob("zeek__*", "zeek__a.pcap"));
        assert!(!glob("zeek__*", "ppp__a.pcap"));
        assert!(glob("a*c*e", "abcde"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn tables_compare_with_tolerance() {
        let a = vec!["udp      17 29 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1".to_string()];
        let b = vec!["udp      17 28 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1".to_string()];
        assert!(compare_tables(&a, &b).is_empty());
        let gone = vec!["udp      17 1 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1".to_string()];
        assert!(
            compare_tables(&gone, &[]).is_empty(),
            "about to expire: tolerated"
        );
        let c = vec!["udp      17 25 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1".to_string()];
        assert_eq!(compare_tables(&a, &c).len(), 1);
        assert_eq!(compare_tables(&a, &[]).len(), 1);
    }
}
