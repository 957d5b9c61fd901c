//! The real captures of the shared corpus: every file reads without error,
//! with the packet count of its manifest; a few are checked record by record
//! against values printed by `tcpdump -r FILE -tt -n -e` (and `--nano`); and
//! when tcpdump is installed, every timestamp and VLAN stack of every file is
//! compared with its output.
//!
//! The corpus is looked for in `$CTRACK_CORPUS`, then in `shared/corpus`
//! beside the repository, then in `/work/shared/corpus`; if it is missing the
//! tests print a note and pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ctrack_capture::{Capture, IpFamily, Payload};

/// Files of the corpus known to be cut short, with why. None is: every one
/// of the 80 files reads to its end (checked by `corpus_reads_without_error`).
/// Frames cut by the snapshot length (caplen < len, e.g.
/// `zeek__truncated-header.pcap`, `zeek__ip4-trunc.pcap`) are complete
/// records, not truncated files.
const KNOWN_TRUNCATED: &[(&str, &str)] = &[];

/// The corpus directory, if present.
fn corpus_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CTRACK_CORPUS") {
        candidates.push(PathBuf::from(dir));
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    candidates.push(manifest_dir.join("../../../shared/corpus"));
    candidates.push(PathBuf::from("/work/shared/corpus"));
    let found = candidates.into_iter().find(|d| d.is_dir());
    if found.is_none() {
        println!("note: corpus directory not found; corpus tests skipped");
    }
    found
}

/// The capture files of the corpus, sorted.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    files
}

/// `file -> packets` from `manifest.json`, read with a plain text scan (no
/// JSON dependency): each entry has `"file": "..."` before `"packets": N`.
fn manifest_counts(dir: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return out;
    };
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("\"file\": \"") {
            current = rest.split('"').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("\"packets\": ") {
            let n: Option<u64> = rest.trim_end_matches(',').parse().ok();
            if let (Some(f), Some(n)) = (current.take(), n) {
                out.insert(f, n);
            }
        }
    }
    out
}

#[test]
fn corpus_reads_without_error() {
    let Some(dir) = corpus_dir() else { return };
    let files = corpus_files(&dir);
    assert!(!files.is_empty(), "no capture in {}", dir.display());
    let counts = manifest_counts(&dir);
    let mut failures = Vec::new();
    let (mut total, mut total_ip) = (0u64, 0u64);
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let cap = match Capture::open(path) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{e}"));
                continue;
            }
        };
        let (mut n, mut ip) = (0u64, 0u64);
        let mut error = None;
        for rec in cap.records() {
            match rec {
                Ok(r) => {
                    assert_eq!(r.index, n, "{name}: index");
                    n += 1;
                    if matches!(r.payload, Payload::Ip { .. }) {
                        ip += 1;
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        total += n;
        total_ip += ip;
        println!("{name}: {:?}, {n} records, {ip} IP", cap.format());
        match (error, KNOWN_TRUNCATED.iter().find(|(f, _)| *f == name)) {
            (None, None) => {}
            (Some(e), Some((_, why))) if e.is_truncation() => {
                println!("  known truncated ({why}): {e}");
            }
            (Some(e), _) => failures.push(format!("{e}")),
            (None, Some(_)) => {
                failures.push(format!("{name}: listed as truncated but reads fully"))
            }
        }
        if let Some(&want) = counts.get(name) {
            if want != n {
                failures.push(format!("{name}: {n} records, manifest says {want}"));
            }
        }
    }
    println!(
        "{} files, {total} records, {total_ip} IP, {} counts checked against the manifest",
        files.len(),
        counts.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The first records of a corpus file as (ts_ns, interface, link type,
/// family, L3 length, VLAN ids).
type Summary = (u64, u32, u32, Option<IpFamily>, usize, Vec<u16>);

/// The first `n` records of a corpus file, summarised.
fn first_records(dir: &Path, name: &str, n: usize) -> Vec<Summary> {
    let cap = Capture::open(&dir.join(name)).expect("opens");
    cap.records()
        .take(n)
        .map(|r| {
            let r = r.expect("record");
            match r.payload {
                Payload::Ip { family, l3, vlans } => (
                    r.ts_ns,
                    r.interface,
                    r.link_type,
                    Some(family),
                    l3.len(),
                    vlans.as_slice().to_vec(),
                ),
                Payload::NonIp { .. } => (r.ts_ns, r.interface, r.link_type, None, 0, vec![]),
            }
        })
        .collect()
}

/// Expected values were read from `tcpdump -r FILE -c 3 -tt -n -e` (with
/// `--nano` for the nanosecond files); L3 length = tcpdump's frame length
/// minus the link header. tcpdump cannot read ppp__many_interfaces-1.pcapng
/// (it refuses interfaces of different link types), so its values come from
/// walking the blocks with a separate Python script.
#[test]
fn corpus_spot_checks_against_tcpdump() {
    let Some(dir) = corpus_dir() else { return };
    use IpFamily::{V4, V6};
    let s = |sec: u64, ns: u64| sec * 1_000_000_000 + ns;

    // Ethernet, 802.1Q x3 (vlan 30, 20, 10): 26-byte link header.
    assert_eq!(
        first_records(&dir, "zeek__vlan-qinqinq.pcap", 3),
        vec![
            (
                s(1362692526, 869_344_000),
                0,
                1,
                Some(V4),
                90 - 26,
                vec![30, 20, 10]
            ),
            (
                s(1362692526, 939_084_000),
                0,
                1,
                Some(V4),
                86 - 26,
                vec![30, 20, 10]
            ),
            (
                s(1362692526, 939_378_000),
                0,
                1,
                Some(V4),
                78 - 26,
                vec![30, 20, 10]
            ),
        ]
    );
    // One tagged frame (vlan 42, p 4, DEI) among untagged ones.
    assert_eq!(
        first_records(&dir, "zeek__vlan-collisions.pcap", 2),
        vec![
            (s(1362692526, 869_344_000), 0, 1, Some(V4), 78 - 14, vec![]),
            (
                s(1362692526, 919_344_000),
                0,
                1,
                Some(V4),
                82 - 18,
                vec![42]
            ),
        ]
    );
    // SLL2: 20-byte header.
    assert_eq!(
        first_records(&dir, "zeek__linux_dlt_sll2.pcap", 3),
        vec![
            (
                s(1660534249, 872_259_000),
                0,
                276,
                Some(V4),
                104 - 20,
                vec![]
            ),
            (
                s(1660534249, 872_288_000),
                0,
                276,
                Some(V4),
                104 - 20,
                vec![]
            ),
            (
                s(1660534264, 88_564_000),
                0,
                276,
                Some(V6),
                124 - 20,
                vec![]
            ),
        ]
    );
    // NFLOG: the payload TLV holds a 60-byte SYN (tcpdump: IP length 60).
    let t = s(1470574779, 148_133_000);
    assert_eq!(
        first_records(&dir, "zeek__nflog-http.pcap", 3),
        vec![
            (t, 0, 239, Some(V4), 60, vec![]),
            (t, 0, 239, Some(V4), 60, vec![]),
            (t, 0, 239, Some(V4), 60, vec![]),
        ]
    );
    // Big-endian nanosecond pcap, Ethernet.
    assert_eq!(
        first_records(&dir, "ppp__nanosecs_big_endian.pcap", 3),
        vec![
            (s(1766361926, 167_647_291), 0, 1, Some(V4), 74 - 14, vec![]),
            (s(1766361926, 167_658_091), 0, 1, Some(V4), 74 - 14, vec![]),
            (s(1766361926, 167_666_291), 0, 1, Some(V4), 66 - 14, vec![]),
        ]
    );
    // Little-endian nanosecond pcap, Linux SLL: 16-byte header.
    assert_eq!(
        first_records(&dir, "tcpd__tcp-handshake-nano.pcap", 3),
        vec![
            (
                s(1418145369, 924_505_488),
                0,
                113,
                Some(V4),
                76 - 16,
                vec![]
            ),
            (s(1418145370, 52_027_262), 0, 113, Some(V4), 76 - 16, vec![]),
            (s(1418145370, 52_115_157), 0, 113, Some(V4), 68 - 16, vec![]),
        ]
    );
    // pcapng, 11 interfaces; the third packet is on interface 10 (lo0, BSD NULL).
    assert_eq!(
        first_records(&dir, "ppp__many_interfaces-1.pcapng", 3),
        vec![
            (s(1439753725, 701_607_000), 0, 1, Some(V4), 178 - 14, vec![]),
            (s(1439753725, 701_855_000), 0, 1, Some(V4), 178 - 14, vec![]),
            (s(1439753725, 701_568_000), 10, 0, Some(V4), 168 - 4, vec![]),
        ]
    );
    // BSD NULL with the Darwin AF_INET6 (30).
    let recs = first_records(&dir, "gopkt__test_loopback.pcap", 1);
    assert_eq!(
        recs,
        vec![(s(1357492952, 275_121_000), 0, 0, Some(V6), 560 - 4, vec![])]
    );
}

/// tcpdump's timestamp (nanoseconds) and link-level VLAN ids of a line of
/// `tcpdump -tt -n -e --nano`, or `None` for a continuation line.
fn parse_tcpdump_line(line: &str) -> Option<(u64, Vec<u16>)> {
    let (ts, rest) = line.split_once(' ')?;
    let (sec, frac) = ts.split_once('.')?;
    if frac.len() != 9 {
        return None;
    }
    let ts_ns = sec.parse::<u64>().ok()? * 1_000_000_000 + frac.parse::<u64>().ok()?;
    // The link part: up to the first IP ethertype (inner headers of tunnels
    // may print their own VLANs later in the line).
    let link = rest
        .find("ethertype IPv")
        .map_or(rest, |i| rest.get(..i).unwrap_or(rest));
    let vlans = link
        .split("vlan ")
        .skip(1)
        .filter_map(|s| s.split(',').next()?.trim().parse().ok())
        .collect();
    Some((ts_ns, vlans))
}

#[test]
fn corpus_matches_tcpdump_everywhere() {
    let Some(dir) = corpus_dir() else { return };
    if Command::new("tcpdump").arg("--version").output().is_err() {
        println!("note: tcpdump not installed; comparison skipped");
        return;
    }
    let mut compared = 0usize;
    let mut failures = Vec::new();
    for path in corpus_files(&dir) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let out = Command::new("tcpdump")
            .args(["-tt", "-n", "-e", "--nano", "-r"])
            .arg(&path)
            .output()
            .expect("run tcpdump");
        if !out.status.success() {
            println!(
                "note: tcpdump cannot read {name} ({}); not compared",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('\n', " / ")
            );
            continue;
        }
        let theirs: Vec<(u64, Vec<u16>)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_tcpdump_line)
            .collect();
        let cap = Capture::open(&path).expect("opens");
        let ours: Vec<_> = cap.records().map(|r| r.expect("record")).collect();
        if ours.len() != theirs.len() {
            failures.push(format!(
                "{name}: {} records, tcpdump {}",
                ours.len(),
                theirs.len()
            ));
            continue;
        }
        for (r, (ts, vlans)) in ours.iter().zip(&theirs) {
            if r.ts_ns != *ts {
                failures.push(format!(
                    "{name} #{}: ts {} vs tcpdump {ts}",
                    r.index, r.ts_ns
                ));
                break;
            }
            if let Payload::Ip { vlans: v, .. } = r.payload {
                if r.link_type == 1 && v.as_slice() != vlans.as_slice() {
                    failures.push(format!(
                        "{name} #{}: vlans {v:?} vs tcpdump {vlans:?}",
                        r.index
                    ));
                    break;
                }
            }
        }
        compared += 1;
    }
    println!("{compared} files compared with tcpdump");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 0);
}
