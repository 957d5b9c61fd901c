//! FTP and TFTP through NAT, judged by the live kernel on the bytes ctrack writes
//! (issue 8): each FTP/TFTP NAT scenario of `tests/rulesets/manifest.json` is replayed
//! with its NAT ruleset and `--write-side client|server`, and each wire is replayed into
//! the kernel with the plain helper rulesets (`ftp_helper.nft`, `tftp_helper.nft`:
//! helper attached, forward policy drop, no NAT). On a wire the kernel's own helper
//! reads the commands ctrack rewrote, so:
//! * every data connection must come out RELATED (the rewritten PORT/EPRT/227/229 names
//!   the address and port the connection really uses, and it starts a line where the
//!   kernel's helper expects one: the sequence adjustment is right);
//! * no packet may be invalid (seq/ack/SACK consistent for the kernel's window
//!   tracking) or dropped;
//! * the engine agrees with the kernel on every packet of the wire.
//!
//! Needs root and network namespaces; outside CI it skips, saying so.

use ctrack::diff;
use ctrack::input;
use ctrack::kernel::KernelOptions;
use ctrack::replay::ReplayOptions;
use ctrack_core::CtState;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Deserialize)]
struct Entry {
    ruleset: String,
    scenarios: Vec<String>,
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    client_nets: Vec<String>,
}

/// The FTP/TFTP NAT entries of the manifest, with the helper ruleset for their wires.
fn entries() -> Vec<(Entry, &'static str)> {
    let manifest: Vec<Entry> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/rulesets/manifest.json")).expect("manifest"),
    )
    .expect("manifest parses");
    let v: Vec<(Entry, &'static str)> = manifest
        .into_iter()
        .filter_map(|e| match e.ruleset.as_str() {
            "ftp_snat.nft" | "ftp_dnat.nft" => Some((e, "ftp_helper.nft")),
            "tftp_snat.nft" => Some((e, "tftp_helper.nft")),
            _ => None,
        })
        .collect();
    assert_eq!(
        v.len(),
        3,
        "ftp_snat, ftp_dnat and tftp_snat are in the manifest"
    );
    v
}

fn ready() -> bool {
    match ctrack_oracle::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the kernel replay of FTP NAT wires cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: kernel replay of FTP NAT wires needs root and network namespaces ({why}); CI runs it");
            false
        }
    }
}

/// `ctrack replay --ruleset R --write out --write-side side` of scenario `s`; returns
/// the per-packet JSON reports.
fn write_side(e: &Entry, s: &str, out: &Path, side: &str) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctrack"));
    cmd.arg("replay")
        .args(["--packets", "-o", "json", "--ruleset"])
        .arg(root().join("tests/rulesets").join(&e.ruleset))
        .arg("--write")
        .arg(out)
        .args(["--write-side", side]);
    for a in &e.addrs {
        cmd.arg("--addr").arg(a);
    }
    for n in &e.client_nets {
        cmd.arg("--client-net").arg(n);
    }
    cmd.arg(
        root()
            .join("tests/scenarios/pcap")
            .join(format!("{s}.pcap")),
    );
    let st = cmd.output().expect("run ctrack");
    assert!(
        st.status.success(),
        "{}: {}",
        e.ruleset,
        String::from_utf8_lossy(&st.stderr)
    );
    String::from_utf8_lossy(&st.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON packet report"))
        .collect()
}

#[test]
fn ftp_nat_wires_replay_clean_through_the_kernels_helper() {
    if !ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctrack-ftpwire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut wires, mut packets, mut agree, mut related) = (0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (e, helper_rules) in entries() {
        let helper = root().join("tests/rulesets").join(helper_rules);
        for s in &e.scenarios {
            for side in ["client", "server"] {
                let label = format!("{} on {s}, {side} wire (+{helper_rules})", e.ruleset);
                let out = dir.join(format!("{}-{s}-{side}.pcap", e.ruleset));
                let reports = write_side(&e, s, &out, side);
                // Every data connection's first packet is RELATED in the NAT replay, and
                // it crosses both wires (arriving on one, forwarded onto the other).
                let want_related = reports
                    .iter()
                    .filter(|p| p["ctstate"] == "related" && p["fate"] == "forwarded")
                    .count();
                let loaded = input::load(&out, &[]).unwrap_or_else(|err| panic!("{label}: {err}"));
                let ropts = ReplayOptions {
                    ruleset: Some(ctrack_rules::load_file(&helper).expect("helper ruleset")),
                    ..ReplayOptions::default()
                };
                let kopts = KernelOptions {
                    ruleset: Some(helper.clone()),
                    ..KernelOptions::default()
                };
                let file = format!("{}-{s}-{side}.pcap", e.ruleset);
                let r = diff::diff(&file, &loaded, &kopts, &ropts, &[])
                    .unwrap_or_else(|err| panic!("{label}: kernel run failed: {err}"));
                wires += 1;
                packets += r.packets;
                agree += r.agree;
                let got_related = r
                    .theirs
                    .iter()
                    .filter(|k| k.ctstate == Some(CtState::Related))
                    .count();
                related += got_related;
                if got_related != want_related || want_related == 0 {
                    failures.push(format!(
                        "{label}: {got_related} RELATED in the kernel, {want_related} data connections"
                    ));
                }
                for k in &r.theirs {
                    if k.ctstate == Some(CtState::Invalid) || k.ctstate.is_none() {
                        failures.push(format!(
                            "{label}: packet {} is {:?} in the kernel ({})",
                            k.index,
                            k.ctstate,
                            k.reason.as_deref().unwrap_or("no reason")
                        ));
                    }
                }
                for d in r.unknown() {
                    failures.push(format!("{label}: {d}"));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "FTP/TFTP NAT wires into the kernel's helper: {wires} wires, {packets} packets, {agree} agree with the engine, {related} RELATED data connections, {} problems",
        failures.len()
    );
    assert_eq!(wires, 6);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
