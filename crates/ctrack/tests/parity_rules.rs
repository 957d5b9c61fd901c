//! Kernel parity with rulesets: every (ruleset, capture) pair of
//! `tests/rulesets/manifest.json` goes through the live kernel with the ruleset loaded
//! in the firewall namespace and through the engine with the same ruleset compiled by
//! `ctrack-rules`; per-packet ctstate, direction, fate (which is where a rule's verdict
//! shows: a dropped packet never reaches POSTROUTING or INPUT) and counter changes, the
//! final table and the summed counters must agree (known differences excepted).
//!
//! Also the round trip: each ruleset is loaded into a kernel namespace, exported with
//! `nft -j list ruleset`, and the engine replays from that JSON exactly as from the
//! text.
//!
//! Needs root and network namespaces. Outside CI it skips (and says so) when those are
//! missing; with `CI=true` a skip is a failure.

use ctrack::diff::{self, DiffResult, KnownDifference};
use ctrack::input;
use ctrack::kernel::KernelOptions;
use ctrack::replay::{Replay, ReplayOptions};
use ctrack_core::topology::{Cidr, Side};
use ctrack_core::Sysctls;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready() -> bool {
    match ctrack_oracle::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("ruleset parity tests cannot run in CI: {why}");
            }
            eprintln!(
                "SKIPPED: ruleset parity needs root and network namespaces ({why}); CI runs it"
            );
            false
        }
    }
}

#[derive(Deserialize)]
struct Entry {
    ruleset: String,
    #[serde(default)]
    scenarios: Vec<String>,
    #[serde(default)]
    corpus: Vec<String>,
    /// The router's interface addresses, `client=ADDR` / `server=ADDR` (NAT: the source
    /// of masquerade, the target of redirect): `--addr` and the oracle's `fw_addrs`.
    #[serde(default)]
    addrs: Vec<String>,
    /// `--client-net` prefixes: with NAT, a reply addressed to the NAT address must
    /// still enter on the server side.
    #[serde(default)]
    client_nets: Vec<String>,
    /// An SNAT rule's explicit range, `ADDR-ADDR:PORT-PORT`: every source-NATed entry of
    /// both tables (ours and the kernel's) must have its reply destination inside it,
    /// whatever port the kernel picked at random.
    #[serde(default)]
    snat_range: Option<String>,
    /// A connlabel map (in tests/rulesets/) the ruleset's label names come from: installed
    /// as /etc/connlabel.conf (nft, ctrack-rules) and /etc/xtables/connlabel.conf
    /// (conntrack -o labels) while the tests run.
    #[serde(default)]
    connlabel: Option<String>,
}

/// Source-NATed lines of a `conntrack -L` table whose reply destination (address, port)
/// falls outside `range` (`A-B:P-Q`, IPv4); returns them with the reason.
fn outside_snat_range(range: &str, table: &[String]) -> Vec<String> {
    let (addrs, ports) = range
        .split_once(':')
        .expect("snat_range ADDR-ADDR:PORT-PORT");
    let (a0, a1) = addrs.split_once('-').unwrap_or((addrs, addrs));
    let (p0, p1) = ports.split_once('-').unwrap_or((ports, ports));
    let a: std::ops::RangeInclusive<std::net::Ipv4Addr> =
        a0.parse().expect("address")..=a1.parse().expect("address");
    let p: std::ops::RangeInclusive<u16> = p0.parse().expect("port")..=p1.parse().expect("port");
    let mut bad = Vec::new();
    for line in table {
        let toks: Vec<&str> = line.split(' ').collect();
        let starts: Vec<usize> = (0..toks.len())
            .filter(|&i| toks[i].starts_with("src="))
            .collect();
        let (Some(&o), Some(&r)) = (starts.first(), starts.get(1)) else {
            continue;
        };
        let get = |from: usize, to: usize, k: &str| {
            toks[from..to]
                .iter()
                .find_map(|t| t.strip_prefix(k))
                .unwrap_or("")
        };
        let (osrc, rdst) = (get(o, r, "src="), get(r, toks.len(), "dst="));
        if osrc == rdst {
            continue; // not source-NATed
        }
        let addr_ok = rdst
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|x| a.contains(&x));
        let rport = get(r, toks.len(), "dport=");
        let port_ok = rport.is_empty() || rport.parse::<u16>().is_ok_and(|x| p.contains(&x));
        if !addr_ok || !port_ok {
            bad.push(format!("outside {range}: {line}"));
        }
    }
    bad
}

impl Entry {
    fn addrs(&self) -> Vec<(Side, std::net::IpAddr)> {
        self.addrs
            .iter()
            .map(|kv| {
                let (side, a) = kv
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{}: addrs: {kv}", self.ruleset));
                let side = match side {
                    "client" => Side::Client,
                    "server" => Side::Server,
                    _ => panic!("{}: addrs: {kv}", self.ruleset),
                };
                (
                    side,
                    a.parse()
                        .unwrap_or_else(|_| panic!("{}: {kv}", self.ruleset)),
                )
            })
            .collect()
    }

    fn nets(&self) -> Vec<Cidr> {
        self.client_nets
            .iter()
            .map(|c| Cidr::parse(c).unwrap_or_else(|e| panic!("{}: {e}", self.ruleset)))
            .collect()
    }
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    file: String,
    #[serde(default)]
    sysctls: BTreeMap<String, String>,
    #[serde(default)]
    global_sysctls: BTreeMap<String, String>,
}

/// Where nft and conntrack read label names.
const CONNLABEL_PATHS: [&str; 2] = ["/etc/connlabel.conf", "/etc/xtables/connlabel.conf"];

/// The files a [`Connlabel`] replaced: (path, previous content or `None` when absent,
/// whether its directory was created).
type Saved = Vec<(PathBuf, Option<Vec<u8>>, bool)>;

/// Users of the installed connlabel map (tests of this binary run in parallel), what
/// the first one replaced, and the cross-process lock held meanwhile.
static CONNLABEL: std::sync::Mutex<(usize, Saved, Option<std::fs::File>)> =
    std::sync::Mutex::new((0, Vec::new(), None));

/// Held (`flock`, exclusive) by the process that has the map installed: another test
/// process on the machine (a second CI run) waits for it instead of replacing or
/// removing the file under this one.
const CONNLABEL_LOCK: &str = "/run/ctrack-tests/connlabel.lock";

/// How long a process waits for another one's connlabel map to go.
const CONNLABEL_WAIT: std::time::Duration = std::time::Duration::from_secs(900);

/// Take [`CONNLABEL_LOCK`]; `None` when the file cannot be opened (not root) or
/// another process holds it past [`CONNLABEL_WAIT`].
fn connlabel_lock() -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = Path::new(CONNLABEL_LOCK);
    std::fs::create_dir_all(path.parent()?).ok()?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()?;
    let deadline = std::time::Instant::now() + CONNLABEL_WAIT;
    loop {
        // SAFETY: flock on the open descriptor of `f`; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Some(f);
        }
        if std::time::Instant::now() > deadline {
            eprintln!("{CONNLABEL_LOCK}: still held by another process; giving up");
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The manifest's connlabel map installed at [`CONNLABEL_PATHS`] while this guard lives;
/// the last guard dropped restores what was there (or removes what was not).
struct Connlabel;

impl Connlabel {
    /// Install `tests/rulesets/<name>`; `None` when that is impossible (not root).
    fn install(name: &str) -> Option<Connlabel> {
        let text = std::fs::read(root().join("tests/rulesets").join(name)).expect("connlabel map");
        let mut g = CONNLABEL.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 == 0 {
            let lock = connlabel_lock()?;
            let mut saved = Vec::new();
            for p in CONNLABEL_PATHS {
                let p = PathBuf::from(p);
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                let made_dir = !dir.exists();
                let old = std::fs::read(&p).ok();
                if std::fs::create_dir_all(&dir).is_err() || std::fs::write(&p, &text).is_err() {
                    restore(&saved);
                    return None;
                }
                saved.push((p, old, made_dir));
            }
            g.1 = saved;
            g.2 = Some(lock);
        }
        g.0 += 1;
        Some(Connlabel)
    }
}

fn restore(saved: &Saved) {
    for (p, old, made_dir) in saved {
        match old {
            Some(t) => {
                let _ = std::fs::write(p, t);
            }
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
        if *made_dir {
            if let Some(d) = p.parent() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

impl Drop for Connlabel {
    fn drop(&mut self) {
        let mut g = CONNLABEL.lock().unwrap_or_else(|p| p.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            restore(&g.1);
            g.1.clear();
            // Released after the files are back: the next process finds them as they
            // were.
            g.2 = None;
        }
    }
}

/// Install the connlabel maps the manifest names; with `required`, failing to is fatal.
fn connlabels(m: &[Entry], required: bool) -> Vec<Connlabel> {
    let mut out = Vec::new();
    for name in m.iter().filter_map(|e| e.connlabel.as_deref()) {
        match Connlabel::install(name) {
            Some(g) => out.push(g),
            None if required => panic!("cannot install {name} as {CONNLABEL_PATHS:?}"),
            None => {}
        }
    }
    out
}

fn manifest() -> Vec<Entry> {
    let p = root().join("tests/rulesets/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("manifest.json"))
        .expect("manifest parses")
}

/// (label, capture path, sysctls, pacing cap).
type Capture = (String, PathBuf, Vec<(String, String)>, Duration);

/// Every capture of an entry.
fn captures(e: &Entry) -> Vec<Capture> {
    let dir = root().join("tests/scenarios");
    let list: Vec<Scenario> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("scenarios.json")).expect("scenarios.json"),
    )
    .expect("scenarios.json parses");
    let mut out = Vec::new();
    for name in &e.scenarios {
        let s = list
            .iter()
            .find(|s| &s.name == name)
            .unwrap_or_else(|| panic!("{}: no scenario {name}", e.ruleset));
        let mut pairs: Vec<(String, String)> = s.sysctls.clone().into_iter().collect();
        pairs.extend(s.global_sysctls.clone());
        out.push((
            name.clone(),
            dir.join(&s.file),
            pairs,
            Duration::from_secs(3),
        ));
    }
    let corpus = root().join("../shared/corpus");
    for c in &e.corpus {
        out.push((
            c.clone(),
            corpus.join(c),
            Vec::new(),
            Duration::from_millis(20),
        ));
    }
    out
}

fn ropts(pairs: &[(String, String)], ruleset: &Path, e: &Entry) -> ReplayOptions {
    let mut sysctls = Sysctls::default();
    for (k, v) in pairs {
        sysctls.set(k, v).expect("sysctl");
    }
    ReplayOptions {
        sysctls,
        ruleset: Some(ctrack_rules::load_file(ruleset).unwrap_or_else(|e| panic!("{e}"))),
        addrs: e.addrs(),
        ..ReplayOptions::default()
    }
}

#[test]
fn every_ruleset_compiles_and_the_manifest_is_complete() {
    let m = manifest();
    assert!(m.len() >= 10, "{} rulesets in the manifest", m.len());
    let maps = connlabels(&m, false);
    for e in &m {
        if e.connlabel.is_some() && maps.is_empty() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{}: cannot install its connlabel map (needs root)",
                    e.ruleset
                );
            }
            eprintln!(
                "SKIPPED: {} (its label names need /etc/connlabel.conf: root)",
                e.ruleset
            );
            continue;
        }
        let p = root().join("tests/rulesets").join(&e.ruleset);
        ctrack_rules::load_file(&p).unwrap_or_else(|err| panic!("{err}"));
        assert!(
            !e.scenarios.is_empty() || !e.corpus.is_empty(),
            "{}",
            e.ruleset
        );
    }
}

#[test]
fn rulesets_match_the_kernel() {
    if !ready() {
        return;
    }
    let known: Vec<KnownDifference> =
        diff::load_known(&root().join("tests/parity/known-differences.json")).expect("known");
    let corpus_present = root().join("../shared/corpus").is_dir();
    let mut results: Vec<(String, DiffResult)> = Vec::new();
    let m = manifest();
    let _maps = connlabels(&m, true);
    for e in m {
        let rpath = root().join("tests/rulesets").join(&e.ruleset);
        for (label, path, pairs, gap) in captures(&e) {
            if !path.exists() && !corpus_present {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("corpus missing: {}", path.display());
                }
                eprintln!("SKIPPED: {} (corpus not found)", path.display());
                continue;
            }
            let loaded =
                input::load(&path, &e.nets()).unwrap_or_else(|err| panic!("{label}: {err}"));
            let kopts = KernelOptions {
                sysctls: pairs.clone(),
                max_gap: gap,
                ruleset: Some(rpath.clone()),
                addrs: e.addrs(),
                ..KernelOptions::default()
            };
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let r = diff::diff(&file, &loaded, &kopts, &ropts(&pairs, &rpath, &e), &known)
                .unwrap_or_else(|err| panic!("{} on {label}: kernel run failed: {err}", e.ruleset));
            if let Some(range) = &e.snat_range {
                let mut checked = 0;
                for (who, table) in [("kernel", &r.kernel_table), ("ctrack", &r.our_table)] {
                    let bad = outside_snat_range(range, table);
                    assert!(bad.is_empty(), "{} on {label}, {who}: {bad:#?}", e.ruleset);
                    checked += table.len();
                }
                assert!(checked > 0, "{} on {label}: empty tables", e.ruleset);
                println!(
                    "{} on {label}: every SNATed entry of both tables inside {range}",
                    e.ruleset
                );
            }
            results.push((format!("{} on {label}", e.ruleset), r));
        }
    }
    let (mut pk, mut ag, mut unknown) = (0, 0, 0);
    for (name, r) in &results {
        let u = r.unknown().count();
        unknown += u;
        pk += r.packets;
        ag += r.agree;
        println!("{name}: {}", r.summary());
        for d in r.unknown().take(20) {
            println!("    {d}");
        }
    }
    println!(
        "ruleset parity: {} (ruleset, capture) pairs, {pk} packets, {ag} agree, {unknown} unknown differences",
        results.len()
    );
    assert_eq!(
        unknown, 0,
        "{unknown} differences from the kernel (see above)"
    );
}

/// `nft -j list ruleset` of `path` loaded into a fresh namespace.
fn export_json(path: &Path, tag: &str) -> String {
    let ns = format!("ctrack-rt-{}-{tag}", std::process::id());
    let run = |args: &[&str]| {
        let o = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("spawn");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let _ = run(&["ip", "netns", "del", &ns]);
    let (ok, _, err) = run(&["ip", "netns", "add", &ns]);
    assert!(ok, "ip netns add: {err}");
    let p = path.to_string_lossy().into_owned();
    let (ok1, _, err1) = run(&["ip", "netns", "exec", &ns, "nft", "-f", &p]);
    let (ok2, json, err2) = run(&["ip", "netns", "exec", &ns, "nft", "-j", "list", "ruleset"]);
    let _ = run(&["ip", "netns", "del", &ns]);
    assert!(ok1, "nft -f {p}: {err1}");
    assert!(ok2, "nft -j list ruleset: {err2}");
    json
}

#[test]
fn json_export_replays_like_the_text() {
    if !ready() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("ctrack-rt-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let mut pairs_checked = 0;
    let m = manifest();
    let _maps = connlabels(&m, true);
    for (i, e) in m.iter().enumerate() {
        let text = root().join("tests/rulesets").join(&e.ruleset);
        let json = export_json(&text, &i.to_string());
        let jpath = tmp.join(format!("{}.json", e.ruleset));
        std::fs::write(&jpath, &json).expect("write json");
        let from_json = ctrack_rules::load_file(&jpath).unwrap_or_else(|err| panic!("{err}"));
        for (label, path, pairs, _) in captures(e) {
            let Ok(loaded) = input::load(&path, &e.nets()) else {
                continue;
            };
            let a = ropts(&pairs, &text, e);
            let mut b = a.clone();
            b.ruleset = Some(from_json.clone());
            let (mut ra, mut rb) = (Replay::new(&a), Replay::new(&b));
            for p in &loaded.packets {
                let x = ra.packet(p.index, p.ts_ns, &p.l3, p.side);
                let y = rb.packet(p.index, p.ts_ns, &p.l3, p.side);
                // The text names the rule's line too; the JSON only its handle.
                let strip = |r: &Option<String>| {
                    r.as_ref()
                        .map(|s| s.split(" (line").next().unwrap_or("").to_string())
                };
                assert_eq!(
                    (
                        x.ctstate,
                        x.direction,
                        x.drop,
                        x.fate,
                        &x.counters,
                        strip(&x.rule),
                        &x.log
                    ),
                    (
                        y.ctstate,
                        y.direction,
                        y.drop,
                        y.fate,
                        &y.counters,
                        strip(&y.rule),
                        &y.log
                    ),
                    "{} on {label}, packet {}",
                    e.ruleset,
                    p.index
                );
            }
            let now = ra.now;
            let fmt = ctrack::output::OutputFormat::default();
            assert_eq!(
                ctrack::output::table_lines(&ra.ct, now, fmt),
                ctrack::output::table_lines(&rb.ct, now, fmt),
                "{} on {label}: final tables",
                e.ruleset
            );
            let labels = |r: &Replay| -> Vec<u128> {
                r.ct.entries(now).iter().map(|e| e.labels()).collect()
            };
            assert_eq!(labels(&ra), labels(&rb), "{} on {label}: labels", e.ruleset);
            assert_eq!(
                ra.pipeline.counters(),
                rb.pipeline.counters(),
                "{} on {label}: rule counters",
                e.ruleset
            );
            pairs_checked += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!("round trip: {pairs_checked} (ruleset, capture) pairs replay the same from nft -j list ruleset");
    assert!(pairs_checked >= 10);
}
