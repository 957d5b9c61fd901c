//! Kernel parity: every scenario of `tests/scenarios`, the differential captures of
//! `tests/fuzz` and every capture of `../shared/corpus` go through the live kernel (ctrack-oracle, network namespaces)
//! and through the engine; any disagreement not listed in
//! `tests/parity/known-differences.json` fails.
//!
//! Needs root and network namespaces. Outside CI it skips (and says so) when those are
//! missing; with `CI=true` a skip is a failure.

use ctrack::diff::{self, DiffResult, KnownDifference};
use ctrack::input;
use ctrack::kernel::KernelOptions;
use ctrack::replay::ReplayOptions;
use ctrack_core::Sysctls;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Kernel runs are serialised: they share the machine's global conntrack limits.
static KERNEL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready() -> bool {
    match ctrack_oracle::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("parity tests cannot run in CI: {why}");
            }
            eprintln!(
                "SKIPPED: kernel parity needs root and network namespaces ({why}); CI runs it"
            );
            false
        }
    }
}

fn known() -> Vec<KnownDifference> {
    diff::load_known(&root().join("tests/parity/known-differences.json"))
        .expect("known differences")
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    file: String,
    #[serde(default)]
    sysctls: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    global_sysctls: std::collections::BTreeMap<String, String>,
}

fn run_one(
    name: &str,
    path: &Path,
    pairs: Vec<(String, String)>,
    max_gap: Duration,
    known: &[KnownDifference],
) -> DiffResult {
    let loaded = input::load(path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut sysctls = Sysctls::default();
    for (k, v) in &pairs {
        sysctls.set(k, v).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let kopts = KernelOptions {
        sysctls: pairs,
        max_gap,
        ..KernelOptions::default()
    };
    let ropts = ReplayOptions {
        sysctls,
        ..ReplayOptions::default()
    };
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    diff::diff(&file, &loaded, &kopts, &ropts, known)
        .unwrap_or_else(|e| panic!("{name}: kernel run failed: {e}"))
}

fn report(results: &[(String, DiffResult)]) -> usize {
    let mut unknown = 0;
    let (mut pk, mut ag, mut kn) = (0, 0, 0);
    for (name, r) in results {
        let u = r.unknown().count();
        unknown += u;
        pk += r.packets;
        ag += r.agree;
        kn += r.differences.len() - u;
        println!("{name}: {}", r.summary());
        for d in r.unknown().take(20) {
            println!("    {d}");
        }
        if u > 20 {
            println!("    ... {} more", u - 20);
        }
    }
    println!(
        "parity: {} captures, {pk} packets, {ag} agree; {kn} known differences, {unknown} unknown",
        results.len()
    );
    unknown
}

#[test]
fn scenarios_match_the_kernel() {
    if !ready() {
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("tests/scenarios");
    let list: Vec<Scenario> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("scenarios.json")).expect("scenarios.json"),
    )
    .expect("scenarios.json parses");
    assert!(
        list.len() >= 40,
        "the scenario library has {} scenarios",
        list.len()
    );
    let known = known();
    let mut results = Vec::new();
    for s in &list {
        let mut pairs: Vec<(String, String)> = s.sysctls.clone().into_iter().collect();
        pairs.extend(s.global_sysctls.clone());
        let r = run_one(
            &s.name,
            &dir.join(&s.file),
            pairs,
            Duration::from_secs(3),
            &known,
        );
        results.push((s.name.clone(), r));
    }
    let unknown = report(&results);
    assert_eq!(
        unknown, 0,
        "{unknown} differences from the kernel (see above)"
    );
}

#[test]
fn corpus_matches_the_kernel() {
    if !ready() {
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("../shared/corpus");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("corpus missing at {}", dir.display());
        }
        eprintln!("SKIPPED: corpus not found at {}", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    let known = known();
    let mut results = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Time is compressed (each gap capped at 20 ms): the engine replays on the
        // kernel's real timeline, so both see the same clock.
        let r = run_one(&name, f, Vec::new(), Duration::from_millis(20), &known);
        results.push((name, r));
    }
    let unknown = report(&results);
    assert_eq!(
        unknown, 0,
        "{unknown} differences from the kernel (see above)"
    );
}

#[test]
fn fuzz_captures_match_the_kernel() {
    if !ready() {
        return;
    }
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("tests/fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fuzz")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    let known = known();
    let mut results = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let r = run_one(&name, f, Vec::new(), Duration::from_millis(10), &known);
        results.push((name, r));
    }
    let unknown = report(&results);
    assert_eq!(
        unknown, 0,
        "{unknown} differences from the kernel (see above)"
    );
}
