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
mod common;

use common::{kernel_ready, manifest, root, write_rewritten, Entry};

/// The FTP/TFTP NAT entries of the manifest, with the helper ruleset for their wires.
fn entries() -> Vec<(Entry, &'static str)> {
    let v: Vec<(Entry, &'static str)> = manifest()
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

#[test]
fn ftp_nat_wires_replay_clean_through_the_kernels_helper() {
    if !kernel_ready("the kernel replay of FTP NAT wires") {
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
                let reports = write_rewritten(&e, s, &out, Some(side));
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
