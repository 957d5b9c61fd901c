//! `ctrack replay --write`: the packets as they leave the router, NAT applied, checked
//! independently of the rewriting code: every IPv4 header, TCP, UDP, ICMP and ICMPv6
//! checksum verified from the bytes with the plain RFC 1071 sum.
//!
//! And the kernel's own verdict on the rewrite: `--write-side client|server` records one
//! wire (what arrived from it, and what was forwarded onto it, NAT applied), a
//! consistent capture; replayed into the live kernel's conntrack (no ruleset), no
//! packet may be invalid, and our engine must agree with the kernel on it.

use ctrack::diff;
use ctrack::input;
use ctrack::kernel::KernelOptions;
use ctrack::replay::ReplayOptions;
use ctrack_capture::Capture;
use ctrack_core::packet::checksum;
use ctrack_core::{Addr, Family};
mod common;

use common::{kernel_ready, manifest, write_rewritten, Entry};

/// Verify every checksum of one IP packet; returns a description of the first bad one.
fn bad_checksum(l3: &[u8]) -> Option<String> {
    let v = l3.first()? >> 4;
    let (family, src, dst, proto, off, end) = match v {
        4 => {
            let ihl = usize::from(l3[0] & 15) * 4;
            if !checksum::verify(&l3[..ihl]) {
                return Some("IPv4 header".into());
            }
            let tot = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            let s = Addr::v4([l3[12], l3[13], l3[14], l3[15]]);
            let d = Addr::v4([l3[16], l3[17], l3[18], l3[19]]);
            if u16::from_be_bytes([l3[6], l3[7]]) & 0x1fff != 0 {
                return None; // a non-first fragment carries no L4 header
            }
            (Family::V4, s, d, l3[9], ihl, tot.min(l3.len()))
        }
        6 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&l3[8..24]);
            d.copy_from_slice(&l3[24..40]);
            let end = (40 + usize::from(u16::from_be_bytes([l3[4], l3[5]]))).min(l3.len());
            (Family::V6, Addr::v6(s), Addr::v6(d), l3[6], 40, end)
        }
        _ => return None,
    };
    let l4 = &l3[off..end];
    let ok = match proto {
        6 => checksum::verify_with_pseudo(family, &src, &dst, 6, l4),
        17 if l4.len() >= 8 && l4[6] == 0 && l4[7] == 0 => family == Family::V4,
        17 => checksum::verify_with_pseudo(family, &src, &dst, 17, l4),
        1 => checksum::verify(l4),
        58 => checksum::verify_with_pseudo(family, &src, &dst, 58, l4),
        _ => true,
    };
    (!ok).then(|| format!("protocol {proto}"))
}

fn nat_entries() -> Vec<Entry> {
    let nat: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.ruleset.starts_with("nat_"))
        .collect();
    assert!(nat.len() >= 8, "the NAT rulesets are in the manifest");
    nat
}

#[test]
fn nat_rewritten_captures_have_valid_checksums() {
    let nat = nat_entries();
    let dir = std::env::temp_dir().join(format!("ctrack-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut packets, mut files) = (0usize, 0usize);
    for e in &nat {
        for s in &e.scenarios {
            for side in [None, Some("client"), Some("server")] {
                let out = dir.join(format!("{}-{s}-{}.pcap", e.ruleset, side.unwrap_or("all")));
                write_rewritten(e, s, &out, side);
                let cap = Capture::open(&out).expect("the written capture reads back");
                let mut recs = cap.records();
                while let Some(r) = recs.next_record() {
                    let r = r.expect("record");
                    let Some(l3) = r.payload.l3() else { continue };
                    packets += 1;
                    if let Some(what) = bad_checksum(l3) {
                        panic!(
                            "{} on {s}: packet {}: bad {what} checksum",
                            e.ruleset, r.index
                        );
                    }
                }
                files += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("--write: {files} rewritten captures, {packets} packets, all checksums valid");
    assert!(packets > 0);
}

/// Each wire of each NAT scenario, rewritten by ctrack, replayed into the live kernel's
/// conntrack: no packet that ctrack rewrote and forwarded is invalid (or untracked) in
/// the kernel, and the engine agrees with the kernel on every packet of the wire.
#[test]
fn rewritten_wires_replay_clean_in_the_kernel() {
    if !kernel_ready("the kernel replay of --write output") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctrack-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut runs, mut packets, mut agree, mut rewritten_total) = (0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for e in &nat_entries() {
        for s in &e.scenarios {
            for side in ["client", "server"] {
                let label = format!("{} on {s}, {side} wire", e.ruleset);
                let out = dir.join(format!("{}-{s}-{side}.pcap", e.ruleset));
                let reports = write_rewritten(e, s, &out, Some(side));
                // Which written records ctrack forwarded onto this wire (rewritten), in
                // order; the others arrived from it as captured.
                let rewritten: Vec<bool> = reports
                    .iter()
                    .filter_map(|p| {
                        if p["side"] == side {
                            Some(false)
                        } else if p["fate"] == "forwarded" && p["verdict"] != "drop" {
                            Some(true)
                        } else {
                            None
                        }
                    })
                    .collect();
                let loaded = input::load(&out, &[]).unwrap_or_else(|err| panic!("{label}: {err}"));
                if loaded.packets.is_empty() {
                    continue; // e.g. redirect: nothing is forwarded to the server
                }
                let r = diff::diff(
                    &format!("{}-{s}-{side}.pcap", e.ruleset),
                    &loaded,
                    &KernelOptions::default(),
                    &ReplayOptions::default(),
                    &[],
                )
                .unwrap_or_else(|err| panic!("{label}: kernel run failed: {err}"));
                runs += 1;
                rewritten_total += rewritten.iter().filter(|w| **w).count();
                packets += r.packets;
                agree += r.agree;
                assert_eq!(rewritten.len(), r.theirs.len(), "{label}: written records");
                for (k, _) in r.theirs.iter().zip(&rewritten).filter(|(_, w)| **w) {
                    if k.ctstate == Some(ctrack_core::CtState::Invalid) || k.ctstate.is_none() {
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
        "--write-side into the kernel: {runs} wires, {packets} packets, {agree} agree with the engine, {rewritten_total} rewritten by ctrack, {} problems",
        failures.len()
    );
    assert!(runs >= 10, "{runs} wires replayed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
